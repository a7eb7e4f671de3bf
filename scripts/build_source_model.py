"""Build the shipped offline source model: a small Wav2Vec2ForCTC trained from scratch on synthetic en-us.

    .venv/bin/python scripts/build_source_model.py                  # the shipped model: ~2.5 h on one CPU core
    .venv/bin/python scripts/build_source_model.py --resume         # continue after an interruption
    .venv/bin/python scripts/build_source_model.py --smoke          # seconds: the whole path, tiny budget
    .venv/bin/python scripts/build_source_model.py --augment real   # acoustic augmentation (speechtl.data.augment)

    # continued training: start from the shipped model, add 10 h of multi-engine TTS speech (speechtl.synth_tts)
    .venv/bin/python scripts/build_source_model.py --init speechtl/en-us-synth --tts-hours 10 \
        --lr 5e-4 --max-steps 4000 --out runs/en-us-synth-tts --name speechtl/en-us-synth-tts

    # real speech in training too (docs/real_corpora.md): FSDD's training speakers 8× per epoch, two held out
    .venv/bin/python scripts/build_source_model.py --real-train fsdd_train.jsonl --real-repeat 8 \
        --real-dev fsdd_heldout.jsonl --real-train-note "FSDD: CC BY-SA 4.0 (Jakobovski et al.)" --license cc-by-sa-4.0

It synthesises the training set with speechtl.synth (many en-us voices) — plus, with ``--tts-hours``, a set from
every installed voice of speechtl.synth_tts.TRAIN_VOICES reading KJV verses and grammar sentences (manifests
concatenated, and the dev sets likewise) — trains with the same loop as every adaptation (speechtl.adapt.train;
from a random model, or from ``--init MODEL`` with that model's vocabulary), scores the model on held-out test
sentences of every English accent and a few foreign voices reading English with ``speechtl evaluate``'s library
function, and on the held-out TTS voices (speechtl.synth_tts.HELD_OUT_VOICES, test-pool sentences or, with
``--arctic``, the CMU ARCTIC prompts) and espeak en-us reading KJV test verses, and writes the model folder with
a model card (README.md) holding those figures. Augmentation is the training config's own flags
(``--speed-perturb``, ``--noise-snr-db`` …, every TrainConfig setting is a flag here); the card lists them when set.
Without ``--init`` and with ``--tts-hours 0`` (the defaults) the training data and weights are today's.
``--real-dev MANIFEST…`` adds card rows for real speech the model never trained on (dev speakers; a ``reserved_*``
manifest is refused). ``--real-train MANIFEST…`` mixes real labelled speech into training, each utterance
``--real-repeat`` times per epoch (copies ``ID#rK`` share the audio); before any synthesis such a set is refused if
it is a ``reserved_*`` split, shares a speaker, file or a sentence of 4+ words with a ``--real-dev`` set (shorter
sentences are not compared: FSDD's digit words repeat everywhere) or has a character the model cannot spell
(speechtl.data.real_train). The card lists each real set (and ``--real-train-note``; ``--license`` sets its tag);
dev stays synthetic. The model folder is written beside ``--out`` and replaces it whole once scored, so a build
that fails or is killed at the end leaves the previous model as it was (``--resume`` retrains from the checkpoint).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speechtl.adapt.run import labels_for
from speechtl.adapt.train import DevSets, TrainConfig, TrainData, skipped_warning, train, train_config
from speechtl.adapt.train_config import AugmentConfig, train_config_dict
from speechtl.config import ConfigError, flat_dict, override, parse_config
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest, set_name
from speechtl.data.real_train import check_alphabet, check_real_sets, repeat_utterances, set_stats
from speechtl.errors import exit_status
from speechtl.eval import evaluate_manifests
from speechtl.fileio import atomic_dir, atomic_write_json, atomic_write_text
from speechtl.models import MODEL_SIZES, load_model, random_model
from speechtl.runtime import pick_device, resolve_precision
from speechtl.synth import ENGLISH_ACCENTS, prepare_synthetic
from speechtl.synth_tts import HELD_OUT_VOICES, TRAIN_VOICES, installed, prepare_tts_set
from speechtl.text import ENGLISH_CHARS, build_vocab, find_oov
from speechtl.text_sources import TextSourceError, kjv_verses

# Seeds of the synthetic sets: the demo and recipes draw their test sets with other seeds, and the
# test sentence pool is disjoint from the training pool by construction (speechtl.synth.split_of).
TRAIN_SEED = 1000
EVAL_SEED = 1001


@dataclass(frozen=True)
class SourceModelConfig:
    out: str = "speechtl/pretrained/en-us-synth"  # model folder to write (shipped inside the package)
    name: str = "speechtl/en-us-synth"  # the name on the model card (shipped models load as speechtl/<folder>)
    work: str = "runs/source_model"  # synthetic data, checkpoints
    accent: str = "en-us"  # the source accent
    train_hours: float = 10.0  # synthetic training audio
    num_speakers: int = 600  # voice/pitch/rate combinations in the training set
    dev_minutes: float = 4.0
    test_minutes: float = 4.0  # per evaluated accent, for the model card
    card_accents: list[str] = field(default_factory=lambda: [*ENGLISH_ACCENTS, "de", "fr", "es"])
    size: str = "small"  # architecture, see speechtl.models.MODEL_SIZES
    workers: int = 2  # synthesis processes
    resume: bool = False
    smoke: bool = False  # a tiny run through the whole path (seconds)
    init: str = ""  # start from this model (folder, shipped name or hub id; its vocabulary) instead of a random one
    tts_hours: float = 0.0  # multi-engine TTS training audio added to the espeak set (speechtl.synth_tts; 0: none)
    tts_text: str = "mixed"  # the TTS set's text: kjv | grammar | mixed
    tts_speakers_per_voice: int = 8  # rate/pitch speakers drawn per TTS voice
    held_out_minutes: float = 4.0  # card rows: per held-out TTS voice, and espeak en-us on KJV verses (0: none)
    arctic: str = ""  # cmuarctic.data: the held-out TTS voices read the ARCTIC prompts (else test-pool sentences)
    real_dev: list[str] = field(default_factory=list)  # card rows: manifests of real speech never trained on (dev)
    real_train: list[str] = field(default_factory=list)  # manifests of real labelled speech mixed into training
    real_repeat: int = 1  # each --real-train utterance appears this many times per epoch (copies share the audio)
    real_train_note: str = ""  # free text for the card's real-training section (e.g. the sets' licences)
    license: str = "apache-2.0"  # the card's licence tag: a share-alike training set (FSDD: cc-by-sa-4.0) carries over
    training: TrainConfig = field(default_factory=lambda: train_config(  # the differences from the defaults
        lr=2e-3, max_steps=7000, warmup_ratio=0.05, batch_seconds=60.0, eval_every=500, freeze_feature_encoder=False,
        threads=1,
    ))


def _data(cfg: SourceModelConfig, work: Path) -> dict[str, Path]:
    """Synthesise (once) the training, dev and per-accent test sets; returns manifest paths."""
    sets = {"train": dict(split="train", minutes=cfg.train_hours * 60, seed=TRAIN_SEED, accent=cfg.accent,
                          num_speakers=cfg.num_speakers),
            "dev": dict(split="dev", minutes=cfg.dev_minutes, seed=EVAL_SEED, accent=cfg.accent)}
    for accent in cfg.card_accents:
        sets[f"test-{accent}"] = dict(split="test", minutes=cfg.test_minutes, seed=EVAL_SEED, accent=accent,
                                      language="en")
    paths = {name: prepare_synthetic(work / "data", workers=cfg.workers, **kw) for name, kw in sets.items()}
    return {**paths, **_tts_data(cfg, work)}


def _kjv_installed() -> bool:
    try:
        kjv_verses(min_words=4, max_words=4)
        return True
    except TextSourceError as e:
        print(f"note: {e}")
        return False


def _tts_data(cfg: SourceModelConfig, work: Path) -> dict[str, Path]:
    """The TTS training/dev sets (``tts_hours`` > 0) and the card's held-out test sets, from the voices installed
    here; what is missing is printed and left out (a machine without engines makes none of them)."""
    if cfg.tts_hours <= 0 and cfg.held_out_minutes <= 0:
        return {}
    out, kjv = {}, _kjv_installed()
    train_voices, missing = installed(TRAIN_VOICES)
    held_out, missing_held = installed(HELD_OUT_VOICES)
    if cfg.smoke:  # one voice each: the path, not the figures
        train_voices, held_out = train_voices[:1], held_out[:1]
    for what, voices in (("training", missing), ("held-out", missing_held)):
        if voices:
            print(f"note: {what} TTS voices not installed here, left out: {', '.join(voices)}")
    text = cfg.tts_text if kjv else "grammar"
    if text != cfg.tts_text:
        print(f"note: without the KJV text the TTS sets read grammar sentences only, not {cfg.tts_text}")
    if cfg.tts_hours > 0 and not train_voices:
        print("note: no training TTS voice is installed: the TTS training set is left out")
    elif cfg.tts_hours > 0:
        common = dict(text=text, workers=cfg.workers, speakers_per_voice=cfg.tts_speakers_per_voice)
        out["tts-train"] = prepare_tts_set(work / "data", train_voices, split="train", minutes=cfg.tts_hours * 60,
                                           seed=TRAIN_SEED, **common)
        out["tts-dev"] = prepare_tts_set(work / "data", train_voices, split="dev", minutes=cfg.dev_minutes,
                                         seed=EVAL_SEED, **common)
    if cfg.held_out_minutes > 0:
        held_text = dict(text="arctic", arctic=cfg.arctic) if cfg.arctic else dict(text=text)
        for voice in held_out:
            out[f"test-{voice}"] = prepare_tts_set(work / "data", [voice], split="test", minutes=cfg.held_out_minutes,
                                                   seed=EVAL_SEED, workers=cfg.workers, **held_text)
        if kjv:
            out["test-espeak/en-us-kjv"] = prepare_tts_set(work / "data", ["espeak/en-us"], "kjv", "test",
                                                           cfg.held_out_minutes, EVAL_SEED, workers=cfg.workers)
    return out


def dev_trend(history: list[dict]) -> str:
    """One sentence on the last two dev evaluations: was the model still improving when training stopped?"""
    wers = [h["dev_wer"] for h in history if h.get("dev_wer") is not None]
    if len(wers) < 2:
        return "Too few dev evaluations to say whether more training would help."
    last, prev = 100 * wers[-1], 100 * wers[-2]
    if last < prev:
        return (f"Dev WER was still falling when the schedule ended ({prev:.1f} → {last:.1f} % over the last "
                "evaluation interval): more steps (or hours of audio) are the first lever.")
    return f"Dev WER had stopped falling when the schedule ended ({prev:.1f} → {last:.1f} % over the last interval)."


def _rows(sets: dict) -> str:
    return "\n".join(
        f"| {name.removeprefix('test-').removeprefix('real-')} | {r['num_utts']} | {r['num_words']} "
        f"| {100 * r['wer']:.1f} | {100 * r['cer']:.1f} |"
        for name, r in sets.items()
    )


def _trained_on(cfg: SourceModelConfig, real: list[dict]) -> str:
    """The card's first sentence after the size: from scratch or continued, on which synthetic (and real) speech."""
    start = "trained **from scratch** on" if not cfg.init else f"**continued** from `{cfg.init}` on"
    tts = (f"\nand {cfg.tts_hours:g} h from other offline TTS engines (`speechtl.synth_tts`: the installed voices of\n"
           f"TRAIN_VOICES × {cfg.tts_speakers_per_voice} rate/pitch speakers, {cfg.tts_text} text)"
           if cfg.tts_hours > 0 else "")
    if real:
        tts += (f"\nand {sum(r['minutes'] for r in real):.1f} min of **real** speech by "
                f"{sum(r['speakers'] for r in real)} speaker(s) (below)")
    return (f"{start}\n{cfg.train_hours:g} h of **synthetic** American-English speech (espeak-ng voices through\n"
            f"`speechtl.synth`, {cfg.num_speakers} voice/pitch/rate combinations){tts}.")


def _real_training(cfg: SourceModelConfig, real: list[dict]) -> str:
    """The card's section on the real sets in training (empty without ``--real-train``)."""
    if not real:
        return ""
    rows = "\n".join(f"| {r['name']} | {r['utts']} | {r['minutes']:.1f} | {r['speakers']} "
                     f"({', '.join(r['speaker_names'][:8])}{', …' if r['speakers'] > 8 else ''}) | {r['repeat']} |"
                     for r in real)
    note = f"\n{cfg.real_train_note}\n" if cfg.real_train_note else ""
    return f"""
## Real speech in training

Recordings of people (`--real-train` manifests) mixed into the synthetic training set, each utterance `repeat`
times per epoch; the dev set that chose the checkpoint is synthetic only. No `--real-dev` set below shares a
speaker, a file or a sentence of 4+ words with them.

| set | utts | min | speakers | repeat |
|---|---:|---:|---|---:|
{rows}
{note}"""


def _chosen(info: dict, history: list[dict]) -> str:
    """The card's words on the checkpoint kept: its step, the dev criterion that chose it, its dev WER and CER."""
    entry = next((h for h in history if h.get("step") == info["best_step"] and h.get("dev_wer") is not None), None)
    if entry is None:
        return f"the weights of step {info['best_step']}"
    cer = f", CER {100 * entry['dev_cer']:.1f} %" if entry.get("dev_cer") is not None else ""
    return (f"kept: step {info['best_step']}, chosen by dev {(info.get('criterion') or 'wer').upper()} "
            f"(dev WER {100 * entry['dev_wer']:.1f} %{cer})")


def _augmentation(cfg: SourceModelConfig) -> str:
    """A card line naming the augmentation settings that differ from none (empty when there are none)."""
    none = flat_dict(AugmentConfig())
    changed = [f"{k} {v}" for k, v in flat_dict(cfg.training.augment).items() if v != none[k]]
    return f"\n- augmentation: {', '.join(changed)}" if changed else ""


def _skipped(train_info: dict) -> str:
    """" (N skipped …)" when some optimizer steps were skipped for a non-finite loss/gradients."""
    n = train_info.get("skipped_steps", 0)
    return f" ({n} skipped: non-finite loss/gradients)" if n else ""


def _held_out_table(sets: dict, cfg: SourceModelConfig) -> str:
    if not sets:
        return ""
    text = "the CMU ARCTIC prompts" if cfg.arctic else f"{cfg.tts_text} test-pool sentences"
    return f"""
## WER / CER (%) on held-out TTS voices and other text

TTS voices never trained on (`speechtl.synth_tts.HELD_OUT_VOICES` installed here) reading {text}, and espeak
en-us reading King James verses of the test pool (`espeak/en-us-kjv`: text unlike the espeak grammar).

| voice | utts | words | WER | CER |
|---|---:|---:|---:|---:|
{_rows(sets)}
"""


def _real_table(sets: dict) -> str:
    if not sets:
        return ""
    return f"""
## WER / CER (%) on real speech

Recordings of people (`--real-dev` manifests: dev speakers of real corpora, docs/real_corpora.md); none of their
audio or text is in this model's training data.

| set | utts | words | WER | CER |
|---|---:|---:|---:|---:|
{_rows(sets)}
"""


def model_card(cfg: SourceModelConfig, scores: dict, train_info: dict, command: str, history: list[dict]) -> str:
    arch = MODEL_SIZES[cfg.size] if not cfg.init else f"that of `{cfg.init}`"
    accents = {f"test-{a}" for a in cfg.card_accents}
    espeak = {k: r for k, r in scores["sets"].items() if k in accents}
    real = {k: r for k, r in scores["sets"].items() if k.startswith("real-")}
    real_train = train_info.get("real_train", [])
    other = {k: r for k, r in scores["sets"].items() if k not in accents and k not in real}
    return f"""---
license: {cfg.license}
library_name: transformers
pipeline_tag: automatic-speech-recognition
tags: [wav2vec2, ctc, synthetic-speech, speechtl]
---
# {cfg.name} — a small offline source model

A {train_info['params'] / 1e6:.1f} M-parameter `Wav2Vec2ForCTC` {_trained_on(cfg, real_train)} It exists so that speechtl's
demo, tests and benchmarks have a real pretrained source model offline; it is not a useful English
recogniser for real voices.

- architecture ({cfg.size if not cfg.init else 'start model'}): {arch}
- feature encoder: layer norm (padding-invariant), frame rate 20 ms; vocabulary: a–z, `'`, `|`
- training: {train_info['steps']} steps{_skipped(train_info)}, AdamW lr {cfg.training.optimiser.lr:g}
  (linear warm-up/decay),
  batches of {cfg.training.optimiser.batch_seconds:g} padded seconds, {train_info['precision']} autocast,
  {cfg.training.runtime.threads or 'default'} CPU thread(s), {train_info['wall_min']:.0f} min of training;
  {_chosen(train_info, history)}{_augmentation(cfg)}
- command: `{command}`

The aim for this model was en-us WER ≤ 15 %; this build reaches {100 * scores['sets']['test-en-us']['wer']:.1f} %
(CER {100 * scores['sets']['test-en-us']['cer']:.1f} %). {dev_trend(history)}
{_real_training(cfg, real_train)}
## WER / CER (%) on held-out synthetic test sentences, by accent

Measured by `speechtl evaluate` (greedy CTC, normalised text); test sentences never occur in training.

| accent | utts | words | WER | CER |
|---|---:|---:|---:|---:|
{_rows(espeak)}
{_held_out_table(other, cfg)}{_real_table(real)}"""


def _start_model(cfg: SourceModelConfig, train_utts: list, real_utts: list = ()):
    """A random model of ``cfg.size`` for the synthetic text's alphabet, or ``cfg.init`` (which must spell it);
    the real utterances must fit that vocabulary (they never widen it)."""
    if not cfg.init:
        model, processor = random_model(build_vocab([u.text for u in train_utts], ENGLISH_CHARS), size=cfg.size,
                                        seed=cfg.training.seed)
    else:
        model, processor = load_model(cfg.init, route=False)
        oov = find_oov([(u.id, u.text) for u in train_utts], processor.tokenizer.get_vocab())
        if oov:
            raise ConfigError(f"--init {cfg.init}: {oov.describe()}")
    check_alphabet(real_utts, processor.tokenizer.get_vocab(), "--real-train")
    return model, processor


def _read(paths: dict[str, Path], *names: str) -> list:
    """The utterances of the named sets that were made, concatenated."""
    return [u for name in names if name in paths for u in read_manifest(paths[name])]


def _real_sets(cfg: SourceModelConfig) -> tuple[list, list, list[dict]]:
    """The --real-train utterances (checked against --real-dev, decoded once) and each set's card row."""
    sets = check_real_sets(cfg.real_train, cfg.real_dev, cfg.real_repeat)
    utts, audio, info = [], [], []
    for (name, read), path in zip(sets.items(), cfg.real_train):
        if not cfg.init:  # the synthetic text's alphabet; an --init model's vocabulary is checked once loaded
            check_alphabet(read, build_vocab([], ENGLISH_CHARS), f"--real-train {path}")
        kept, arrays, _ = load_utterance_audio(read, progress=True, desc=f"loading {name}")
        utts, audio = utts + kept, audio + arrays
        info.append(set_stats(name, path, kept, cfg.real_repeat))
    return utts, audio, info


SMOKE = dict(train_hours=0.01, num_speakers=4, dev_minutes=0.1, test_minutes=0.1, card_accents=["en-us", "en-gb-scotland"],
             size="tiny", max_steps=4, eval_every=2, batch_seconds=8.0, tts_hours=0.003, held_out_minutes=0.05,
             tts_speakers_per_voice=2)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(SourceModelConfig, argv, description=__doc__.split("\n")[0])
    if cfg.smoke:
        cfg = override(cfg, **SMOKE)
    work, out = Path(cfg.work), Path(cfg.out)
    real_utts, real_audio, real_info = _real_sets(cfg)  # before hours of synthesis and training
    paths = _data(cfg, work)
    train_utts, train_audio, _ = load_utterance_audio(_read(paths, "train", "tts-train"), progress=True)
    dev_utts, dev_audio, _ = load_utterance_audio(_read(paths, "dev", "tts-dev"))
    model, processor = _start_model(cfg, train_utts, real_utts)
    real_utts, real_audio = repeat_utterances(real_utts, real_audio, cfg.real_repeat)
    train_utts, train_audio = train_utts + real_utts, train_audio + real_audio
    data = TrainData(train_utts, labels_for(train_utts, processor.tokenizer), train_audio)
    result = train(model, processor, data, work / "train", cfg.training, DevSets(dev_utts, dev_audio),
                   resume=cfg.resume)
    skipped = skipped_warning(result.skipped_steps, result.steps, result.first_skipped)
    if skipped:
        print(f"warning: {skipped}", file=sys.stderr)
    tests = {name: path for name, path in paths.items() if name.startswith("test-")}
    tests |= {f"real-{set_name(path)}": Path(path) for path in cfg.real_dev}
    with atomic_dir(out) as folder:  # the model, scored, with its card, replaces out whole (or out stays as it was)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        scores = evaluate_manifests(str(folder.resolve()), [str(p) for p in tests.values()])
        by_folder = {set_name(path): name for name, path in tests.items()}
        scores["sets"] = {by_folder[name]: r for name, r in scores["sets"].items()}  # the card names sets by accent
        info = {"params": sum(p.numel() for p in model.parameters()), "steps": result.steps,
                "best_step": result.best_step, "best_dev_wer": result.best_dev_wer, "criterion": result.criterion,
                "precision": resolve_precision(cfg.training.runtime.precision, pick_device("cpu")),
                "wall_min": result.wall_s / 60, "skipped_steps": result.skipped_steps,
                "first_skipped": result.first_skipped, "train_utterances": len(train_utts),
                "real_train_utterances": len(real_utts), "real_train": real_info}
        args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]  # how to rebuild it
        command = "python scripts/build_source_model.py " + shlex.join(args)
        atomic_write_text(folder / "README.md", model_card(cfg, scores, info, command.strip(), result.history))
        record = {"config": {**asdict(cfg), "training": train_config_dict(cfg.training)}, "info": info,
                  "history": result.history, "scores": scores["sets"]}
        atomic_write_json(folder / "training.json", record)
    for name, r in scores["sets"].items():
        print(f"{name:24} WER {100 * r['wer']:5.1f}  CER {100 * r['cer']:5.1f}")
    return scores


if __name__ == "__main__":
    sys.exit(exit_status("scripts/build_source_model.py", main))
