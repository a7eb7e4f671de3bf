"""Transcribe audio files: paths and folders in, one transcript per readable file out.

Any length: short files are batched together, long ones streamed in overlapping chunks
(:mod:`speechtl.decode.longform`). Decoding is greedy or a beam search with a word n-gram LM
(:mod:`speechtl.decode.lm`); every transcript carries timed words with confidences
(:mod:`speechtl.decode.timestamps`), written as txt, json, srt, vtt or tsv (:mod:`speechtl.writers`).
A file that cannot be read is reported and skipped (``on_error="skip"``, the default), the rest go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from speechtl.audio import AUDIO_SUFFIXES, SAMPLE_RATE, AudioError, find_audio_files, locate_audio_files
from speechtl.config import ConfigError
from speechtl.data.dataset import ON_ERROR
from speechtl.decode.chunking import frame_hop
from speechtl.decode.lm import LmSettings, load_lm_decoder
from speechtl.decode.longform import file_log_probs
from speechtl.decode.timestamps import Word, greedy_words
from speechtl.fileio import atomic_write_text, output_path
from speechtl.models import load_model, model_text_language
from speechtl.runtime import pick_device, resolve_precision
from speechtl.writers import OUTPUT_FORMATS, format_transcript

__all__ = ["output_names", "FileTranscript", "TranscribeOptions", "transcribe_files"]


def output_names(paths: Sequence[str | Path]) -> list[str]:
    """Per found file, a unique output name without suffix: its path below the folder it was found in
    (its bare stem when given as a file), with ``_2``, ``_3``... where names repeat."""
    names: list[str] = []
    for f, root in locate_audio_files(paths):
        base = (f.relative_to(root).with_suffix("") if root else Path(f.stem)).as_posix()
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


@dataclass(frozen=True)
class FileTranscript:
    path: str
    text: str  # as the model wrote it, normalised (lowercase, single spaces)
    duration_s: float
    words: list[Word] = field(default_factory=list)  # timed words with confidences


@dataclass(frozen=True)
class TranscribeOptions:
    chunk_s: float = 30.0  # files longer than this are streamed in chunks of this many seconds
    stride_s: float = 3.0  # context on each side of a chunk whose frames are dropped
    batch_seconds: float = 60.0  # padded audio seconds per forward pass (two 30-s chunks: flat memory, no slower on CPU)
    lm: str | None = None  # ARPA file from `speechtl lm build`: beam search with it instead of greedy
    lm_settings: LmSettings = LmSettings()
    output_format: str = "txt"
    output_dir: str | None = None  # write one file per input here (else the caller prints)
    adapter: str | None = None  # adapter to load onto the model
    route: bool = True  # False: a routed run folder's adapted model alone
    compile: bool = False  # long files' chunks through torch.compile (~1 min once): pays on long fp32 jobs, not bf16
    int8: bool = False  # linear layers as dynamic int8 (CPU; speechtl.models.quantize): faster where bf16 is slow


def _load(model: str, adapter: str | None, route: bool = True):
    kwargs = ({"adapter": adapter} if adapter else {}) | ({} if route else {"route": False})
    return load_model(model, **kwargs)


def _decoder(net, processor, opts: TranscribeOptions) -> Callable:
    """(log_probs (T, V), duration_s) -> timed words, greedy or with the LM."""
    frame_s = frame_hop(net) / SAMPLE_RATE
    if opts.lm:
        lm = load_lm_decoder(opts.lm, processor.tokenizer, opts.lm_settings)
        return lambda lp, dur: lm.words(lp, frame_s, dur)
    language = model_text_language(net)  # a model adapted to another language keeps that language's rules
    return lambda lp, dur: greedy_words(lp, processor.tokenizer, frame_s, dur, language)


def _check(opts: TranscribeOptions, on_error: str, num_files: int) -> None:
    if opts.output_format not in OUTPUT_FORMATS:
        raise ConfigError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {opts.output_format!r}")
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if opts.int8 and opts.compile:
        raise ConfigError("--int8 and --compile do not go together (torch.compile does not take the int8 layers); "
                          "choose one")
    if opts.output_format in ("srt", "vtt", "tsv") and not opts.output_dir and num_files > 1:
        raise ConfigError(f"{num_files} files as {opts.output_format}: give --output-dir for one file each")


def transcribe_files(
    model: str,
    paths: Sequence[str | Path],
    on_error: str = "skip",
    precision: str = "auto",
    device: str | None = None,
    progress: bool = True,
    options: TranscribeOptions = TranscribeOptions(),
) -> tuple[list[FileTranscript], list[dict]]:
    """Transcripts of audio files (in input order), and the skipped files as {"path", "reason"}.

    With ``options.output_dir`` each transcript is written there as it is finished (atomically).
    """
    files = find_audio_files(paths)
    if not files:
        raise AudioError(f"no audio files found in {[str(p) for p in paths]} (suffixes: {', '.join(AUDIO_SUFFIXES)})")
    _check(options, on_error, len(files))
    names = output_names(paths)
    outs = [output_path(options.output_dir, f"{n}.{options.output_format}", "--output-dir") for n in names] \
        if options.output_dir else []  # a link out of the output folder is refused before any work
    net, processor = _load(model, options.adapter, options.route)
    dev = pick_device(device)
    net.to(dev)
    if options.int8:
        from speechtl.models.quantize import quantize_int8

        quantize_int8(net)
    decode = _decoder(net, processor, options)
    done: dict[int, FileTranscript] = {}
    skipped: list[dict] = []
    for r in file_log_probs(net, processor, files, options.chunk_s, options.stride_s, options.batch_seconds,
                            resolve_precision(precision, dev), progress, options.compile):
        if r.error is not None:
            if on_error == "fail":
                raise AudioError(f"{r.error} (use --on-error skip to leave such files out)")
            skipped.append({"path": str(files[r.index]), "reason": r.error})
            continue
        words = decode(r.log_probs, r.duration_s)
        t = FileTranscript(str(files[r.index]), " ".join(w.word for w in words), round(r.duration_s, 3), words)
        done[r.index] = t
        if options.output_dir:
            atomic_write_text(outs[r.index], format_transcript(t, options.output_format))
    if not done:
        raise AudioError(f"none of the {len(files)} file(s) could be transcribed: {skipped[0]['reason']}"
                         + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
    return [done[i] for i in sorted(done)], skipped
