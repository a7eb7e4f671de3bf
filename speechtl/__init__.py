"""speechtl: transfer learning for wav2vec2-family CTC speech recognition.

Pipeline (one module per stage): manifest → Utterance → dataset/collator → model → logits →
decoder → normalised text → error rates → report.
"""

__version__ = "0.1.0"
