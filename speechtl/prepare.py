"""``speechtl prepare <layout>``: one subcommand per corpus layout, each calling one ``prepare_*`` importer."""

from __future__ import annotations

import argparse

from speechtl.settings import CHILD_BELOW_YEARS, SPEAKER_FROM

__all__ = ["add_prepare_parser", "run_prepare", "LAYOUTS"]

LAYOUTS = ("commonvoice", "kaldi", "folder", "cmu-arctic", "l2-arctic", "hf-audiofolder", "hf-disk", "lhotse",
           "fsdd")


def run_prepare(args) -> int:
    """Call the layout's importer with the parsed flags, print what was written."""
    from speechtl.data import arctic, fsdd, hf_datasets, importers, lhotse_manifests
    from speechtl.runtime import set_threads

    set_threads(getattr(args, "threads", 0))
    common = dict(out=args.out, language=args.language, on_error=args.on_error)
    layout = args.corpus
    if layout == "commonvoice":
        utts = importers.prepare_commonvoice(args.tsv, clips=args.clips, **common)
    elif layout == "kaldi":
        child_below = args.child_below if args.child_below > 0 else None
        utts = importers.prepare_kaldi(args.data_dir, audio_root=args.audio_root, accent=args.accent,
                                       child_below=child_below, **common)
    elif layout == "folder":
        utts = importers.prepare_folder(args.audio_dir, args.transcripts, speaker_from=args.speaker_from,
                                        transcript_suffix=args.transcript_suffix, accent=args.accent,
                                        speaker_separator=args.speaker_separator, **common)
    elif layout == "cmu-arctic":  # ARCTIC is English: "en" unless told otherwise
        utts = arctic.prepare_cmu_arctic(args.voice_dir, speaker=args.speaker, accent=args.accent,
                                         skip_missing=args.skip_missing, out=args.out, language=args.language or "en",
                                         on_error=args.on_error)
    elif layout == "l2-arctic":
        utts = arctic.prepare_l2_arctic(args.root, accent=args.accent, out=args.out, language=args.language or "en",
                                        on_error=args.on_error)
    elif layout == "hf-audiofolder":
        utts = hf_datasets.prepare_hf_audiofolder(args.folder, text_column=args.text_column,
                                                  speaker_column=args.speaker_column, accent=args.accent, **common)
    elif layout == "hf-disk":
        utts = hf_datasets.prepare_hf_disk(args.dataset_dir, args.audio_out, split=args.split,
                                           text_column=args.text_column, speaker_column=args.speaker_column,
                                           audio_column=args.audio_column, accent=args.accent, **common)
    elif layout == "fsdd":  # FSDD is English: "en" unless told otherwise
        utts = fsdd.prepare_fsdd(args.recordings_dir, speakers=args.speakers, exclude_speakers=args.exclude_speakers,
                                 out=args.out, language=args.language or "en", on_error=args.on_error)
    else:
        utts = lhotse_manifests.prepare_lhotse(args.recordings, args.supervisions, audio_root=args.audio_root,
                                               accent=args.accent, **common)
    print(f"wrote {args.out}: {importers.summary(utts)}")
    return 0


def _layout_parsers(corpora) -> list[argparse.ArgumentParser]:
    cv = corpora.add_parser("commonvoice", help="a Common Voice TSV (train.tsv, dev.tsv, ...) with clips/ beside it")
    cv.add_argument("tsv", help="the split's .tsv file")
    cv.add_argument("--clips", default=None, help="audio folder (default: clips/ beside the TSV)")
    kaldi = corpora.add_parser("kaldi", help="a Kaldi data folder: text, wav.scp, utt2spk, spk2gender, spk2age")
    kaldi.add_argument("data_dir", help="folder with text and wav.scp (utt2spk, spk2gender, spk2age optional)")
    kaldi.add_argument("--audio-root", default=None,
                       help="relative wav.scp paths resolve here (default: the first of the data folder, its "
                            "parent, its grandparent, the current folder that holds them all; printed)")
    kaldi.add_argument("--child-below", type=float, default=CHILD_BELOW_YEARS, metavar="YEARS",
                       help=f"spk2age below this is age_group 'child', else 'adult' (default: {CHILD_BELOW_YEARS:g}; "
                            f"0: no age_group)")
    folder = corpora.add_parser("folder", help="a folder of audio plus id<TAB>text lines or a transcript per file")
    folder.add_argument("audio_dir", help="audio folder (searched recursively)")
    folder.add_argument("transcripts", nargs="?", default=None,
                        help="transcript file, one 'id<TAB>text' line per utterance (or use --transcript-suffix)")
    folder.add_argument("--transcript-suffix", default="",
                        help="read each X.wav's transcript from X<SUFFIX> beside it (e.g. .txt, .lab, .mb.cleaned)")
    folder.add_argument("--speaker-from", choices=SPEAKER_FROM, default="none",
                        help="none: an id is a file stem; parent: SPEAKER/UTT.wav, ids SPEAKER-UTT; "
                             "prefix: speaker = stem up to --speaker-separator (default: none)")
    folder.add_argument("--speaker-separator", default="_", help="for --speaker-from prefix (default: _)")
    cmu = corpora.add_parser("cmu-arctic", help="a CMU ARCTIC voice: wav/ and etc/txt.done.data")
    cmu.add_argument("voice_dir", help="the voice folder, e.g. cmu_us_bdl_arctic")
    cmu.add_argument("--speaker", default="", help="speaker name (default: from the folder, cmu_us_bdl_arctic → bdl)")
    cmu.add_argument("--skip-missing", action="store_true", help="import the recorded prompts, skip the others")
    l2 = corpora.add_parser("l2-arctic", help="L2-ARCTIC: SPEAKER/wav/*.wav and SPEAKER/transcript/*.txt")
    l2.add_argument("root", help="folder holding the speaker folders (or one speaker folder)")
    hf = corpora.add_parser("hf-audiofolder", help="a Hugging Face audio folder: audio + metadata.csv/.jsonl")
    hf.add_argument("folder", help="the folder with metadata.csv (file_name + transcript columns), or that file")
    disk = corpora.add_parser("hf-disk", help="a Hugging Face save_to_disk dataset (needs pyarrow)")
    disk.add_argument("dataset_dir", help="the folder save_to_disk wrote")
    disk.add_argument("--audio-out", required=True, help="folder to write the embedded audio files into")
    disk.add_argument("--split", default="", help="the split of a DatasetDict (train, test, ...)")
    disk.add_argument("--audio-column", default="audio", help="the Audio feature's column (default: audio)")
    for q in (hf, disk):
        q.add_argument("--text-column", default="", help="transcript column (default: transcription, text, "
                                                         "sentence, transcript or normalized_text)")
        q.add_argument("--speaker-column", default="", help="speaker column (default: speaker_id, speaker, client_id)")
    lh = corpora.add_parser("lhotse", help="lhotse recording + supervision manifests (.jsonl or .jsonl.gz)")
    lh.add_argument("recordings", help="RecordingSet JSONL(.gz)")
    lh.add_argument("supervisions", help="SupervisionSet JSONL(.gz)")
    lh.add_argument("--audio-root", default=None, help="relative source paths resolve here (default: the first "
                                                       "of the manifest's folder, its parent, the current folder)")
    fsdd = corpora.add_parser("fsdd", help="the Free Spoken Digit Dataset: recordings/{digit}_{speaker}_{index}.wav")
    fsdd.add_argument("recordings_dir", help="FSDD's recordings/ folder (accents from speakers.tsv beside it)")
    fsdd.add_argument("--speakers", nargs="+", default=[], metavar="NAME", help="keep only these speakers")
    fsdd.add_argument("--exclude-speakers", nargs="+", default=[], metavar="NAME", help="leave these speakers out")
    return [cv, kaldi, folder, cmu, l2, hf, disk, lh, fsdd]


def add_prepare_parser(sub) -> list[argparse.ArgumentParser]:
    """The ``prepare`` subcommand and its layouts; returns the layout parsers (for shared flags)."""
    p = sub.add_parser("prepare", help="write a manifest for a corpus on disk (" + ", ".join(LAYOUTS) + ")",
                       description="Read a corpus already on disk and write a JSONL manifest; a malformed row "
                                   "stops with its file and line; a bad audio file stops the import or, with "
                                   "--on-error skip, is left out and listed. Corpus audio is never downloaded.")
    corpora = p.add_subparsers(dest="corpus", required=True, metavar="LAYOUT")
    layouts = _layout_parsers(corpora)
    for q in layouts:
        q.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
        q.add_argument("--language", default="", help="language code for the manifest's language field")
        q.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                       help="an unreadable or cut-short audio file: stop, naming it (fail), or leave it out of the "
                            "manifest with one 'skipped' line per file (skip) (default: fail)")
        if q.prog.split()[-1] not in ("commonvoice", "fsdd"):  # these list an accent per speaker
            q.add_argument("--accent", default="", help="accent for every utterance (e.g. 'zh-L1 English')")
        q.set_defaults(func=run_prepare)
    return layouts
