"""Scoring: transcribe and score test sets (corpus WER and CER on normalised text, per-utterance rows, real-time
factor).

scoring.py counts edits (jiwer) and the figures a WER near 100 % hides (words correct, hypothesis/reference words,
empty outputs), caveats.py says when a WER misleads, stats.py holds the bootstrap statistics, bootstrap.py the
paired WER difference of two hypothesis lists; ``speechtl.compare`` builds on them (never the reverse)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from speechtl.audio import load_audio
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import ManifestError, Utterance, read_manifest, unique_names
from speechtl.decode import Transcripts, transcribe_arrays
from speechtl.decode.chunking import model_receptive_field
from speechtl.eval.scoring import ErrorRates, error_rates, utterance_edits, utterance_hits, word_figures
from speechtl.fileio import atomic_write_csv, atomic_write_json, output_path
from speechtl.models import TEXT_LANGUAGE_KEY, load_model, model_text_language
from speechtl.models.multiroute import MultiRoutedCTC
from speechtl.models.router import RoutedCTC
from speechtl.runtime import pick_device, resolve_precision
from speechtl.text import normalize, text_rules

__all__ = ["ErrorRates", "error_rates", "utterance_edits", "utterance_hits", "word_figures", "EvalResult", "evaluate",
           "score_transcripts", "write_hypotheses",
           "evaluate_manifests", "empty_references", "scorable", "TEXT_LANGUAGE_KEY", "model_text_language", "set_text_language"]


def set_text_language(model, language: str | None) -> str | None:
    """Record ``language`` in the model's config (saved with it, so later scoring uses the same normaliser);
    returns the language in effect (the given one, else the model's own, else None = English)."""
    if language:
        text_rules(language)  # an unknown language stops here, before any work
        setattr(model.config, TEXT_LANGUAGE_KEY, language)
    return model_text_language(model)


@dataclass
class EvalResult:
    wer: float
    cer: float
    num_utts: int
    num_words: int
    audio_s: float
    rtf: float
    # what a WER near 100 % hides (speechtl.eval.scoring.word_figures): new keys after the old ones in summary()
    hits: int = 0  # reference words right
    hyp_words: int = 0  # words written
    hyp_ratio: float = 0.0  # hypothesis / reference words
    empty_share: float = 0.0  # share of utterances with an empty output
    rows: list[dict] = field(default_factory=list, repr=False)  # id, reference, hypothesis (normalised)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("rows")
        return d


def evaluate(
    model,
    processor,
    utts: Sequence[Utterance],
    batch_seconds: float = 60.0,
    precision: str = "fp32",
    progress: bool = False,
    audio: Sequence | None = None,
    desc: str = "evaluating",
    language: str | None = None,
    decode=None,
) -> EvalResult:
    """Transcribe ``utts`` (greedy, or ``decode`` as in :func:`transcribe_arrays`) and score them.
    ``audio`` may hold the already-loaded arrays.

    ``language`` picks the normaliser; by default the model's own (:func:`model_text_language`)."""
    language = language or model_text_language(model)
    _check_scorable(utts, language)  # before the transcription, not after it
    arrays = list(audio) if audio is not None else [load_audio(u.audio_path) for u in utts]
    out = transcribe_arrays(model, processor, arrays, batch_seconds, precision, progress, desc, decode)
    return score_transcripts(utts, out, language)


def score_transcripts(utts: Sequence[Utterance], out: Transcripts, language: str | None = None) -> EvalResult:
    """Score ``out`` (one transcript per utterance, in order) against the references of ``utts``."""
    _check_scorable(utts, language)
    refs = [u.text for u in utts]
    rates = error_rates(refs, out.texts, language)
    rows = [{"id": u.id, "reference": normalize(u.text, language), "hypothesis": normalize(h, language)}
            for u, h in zip(utts, out.texts)]
    hits, hyp_words = utterance_hits([r["reference"] for r in rows], [r["hypothesis"] for r in rows])
    return EvalResult(
        wer=rates.wer,
        cer=rates.cer,
        num_utts=len(utts),
        num_words=rates.num_words,
        audio_s=out.audio_s,
        rtf=out.rtf,
        **word_figures(hits, hyp_words, rates.num_words),
        rows=rows,
    )


def _check_scorable(utts: Sequence[Utterance], language: str | None) -> None:
    unscorable = empty_references(utts, language)
    if unscorable:
        raise ManifestError(f"utterance {unscorable[0].id!r}: reference {unscorable[0].text!r} is empty after "
                            f"normalisation; WER needs words to count")


def empty_references(utts: Sequence[Utterance], language: str | None = None) -> list[Utterance]:
    """The utterances whose transcript normalises to nothing (e.g. "[noise]", "...")."""
    return [u for u in utts if not normalize(u.text, language)]


def scorable(utts: Sequence[Utterance], language: str | None, on_error: str, where: str
             ) -> tuple[list[Utterance], list[dict]]:
    """``utts`` without those whose reference is empty after normalisation (:func:`empty_references`), and those
    as skip records (``on_error="skip"``); with "fail", :class:`ManifestError` naming the first one."""
    empty = empty_references(utts, language)
    if empty and on_error != "skip":
        raise ManifestError(f"{where}: utterance {empty[0].id!r} has reference {empty[0].text!r}, empty after "
                            f"normalisation ({len(empty)} such): WER needs words; fix the transcript, remove the "
                            f"utterance, or pass --on-error skip to leave such utterances out and list them")
    if empty and len(empty) == len(utts):
        raise ManifestError(f"{where}: every reference is empty after normalisation ({len(utts)} utterances): "
                            f"nothing to score")
    dropped = {u.id for u in empty}
    return ([u for u in utts if u.id not in dropped],
            [{"id": u.id, "audio_path": str(u.audio_path), "reason": f"reference {u.text!r} is empty after "
              f"normalisation"} for u in empty])


def write_hypotheses(result: EvalResult, path) -> None:
    """Per-utterance TSV: id, reference, hypothesis (both normalised); a cell a spreadsheet would run as a
    formula (an id ``=HYPERLINK(…)``) is written as text (:func:`speechtl.fileio.spreadsheet_safe`)."""
    atomic_write_csv(path, result.rows, ["id", "reference", "hypothesis"], delimiter="\t")


def evaluate_manifests(
    model: str,
    manifests: Sequence[str],
    out: str | None = None,
    on_error: str = "fail",
    batch_seconds: float = 120.0,
    precision: str = "auto",
    device: str | None = None,
    progress: bool = True,
    language: str | None = None,
    lm: str | None = None,
    lm_settings=None,
    adapter: str | None = None,
    route: bool = True,
    int8: bool = False,
) -> dict:
    """Score a model on manifests; with ``out``, write ``results.json`` and per-utterance hypotheses there.

    ``language`` picks the normaliser (default: the model's own, else English); results.json names it.
    With ``lm`` (an ARPA file) decoding is a beam search with that LM (``lm_settings``: an ``LmSettings``).
    ``adapter``: an adapter folder applied to ``model`` (see :func:`speechtl.models.load_model`); ``route=False``
    scores a routed run folder's adapted model alone; ``int8``: its linear layers as dynamic int8 on CPU
    (:mod:`speechtl.models.quantize`), to measure what ``transcribe --int8`` costs."""
    sets = {name: (str(path), read_manifest(path)) for name, path in zip(unique_names(manifests), manifests)}
    hyps = {name: output_path(out, f"hyps/{name}.tsv") for name in sets} if out else {}  # no link out of ``out``
    net, processor = load_model(model, adapter=adapter, **({} if route else {"route": False}))
    decode = None
    if lm:
        from speechtl.decode.lm import LmSettings, load_lm_decoder

        decode = load_lm_decoder(lm, processor.tokenizer, lm_settings or LmSettings()).batch_decoder()
    dev = pick_device(device)
    net.to(dev)
    if int8:
        from speechtl.models.quantize import quantize_int8

        quantize_int8(net)
    precision = resolve_precision(precision, dev)
    language = language or model_text_language(net)
    results: dict = {"model": model, "adapter": adapter, "sets": {}, "skipped": [], "precision": precision, "device": str(dev),
                     "int8": int8,
                     "normalizer": asdict(text_rules(language))}
    if lm:
        results["lm"] = {"path": str(lm), **asdict(lm_settings or LmSettings())}
    for name, (path, utts) in sets.items():
        utts, empty = scorable(utts, language, on_error, path)
        results["skipped"] += [dict(s, set=name) for s in empty]
        utts, audio, bad = load_utterance_audio(utts, on_error, progress, f"loading {name}",
                                                model_receptive_field(net))
        results["skipped"] += [dict(s, set=name) for s in bad]
        r = evaluate(net, processor, utts, batch_seconds, precision, progress, audio, f"evaluating {name}",
                     language, decode)
        results["sets"][name] = {"manifest": path, **r.summary()}
        if isinstance(net, (RoutedCTC, MultiRoutedCTC)):  # shares sent to the adapted model(s) / kept by the gate
            results["sets"][name].update(net.pop_stats())
        if out:
            write_hypotheses(r, hyps[name])
    if out:
        atomic_write_json(Path(out) / "results.json", results)
    return results
