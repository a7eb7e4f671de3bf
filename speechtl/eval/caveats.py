"""When a WER misleads: rules that read the figures of :func:`speechtl.eval.scoring.word_figures` and say so.

An empty transcript scores exactly 100 % WER, and a system that stops writing words lowers a WER above 100 %
without recognising anything. So a WER "gain" is suspect when the system writes far fewer words and the errors
fell by fewer than the words it stopped writing; and a WER near 100 % with almost no word right says nothing
about recognition. A bootstrap interval resampled from a handful of speakers is rough. Each rule returns ""
when it does not apply, else one sentence naming the set; the adaptation runs (verdict, ``warnings``) and
``speechtl compare`` (``warnings``, headline) use the same rules.

The figures are dicts with ``wer``, ``num_words``, ``hits`` and ``hyp_words`` (an ``EvalResult.summary()``
or a compare matrix row).
"""

from __future__ import annotations

__all__ = ["DELETION_RATIO", "SATURATED_WER", "MIN_HIT_SHARE", "MIN_SPEAKERS", "deletion_gain", "saturated",
           "few_speakers", "caveats"]

DELETION_RATIO = 0.7  # after / before hypothesis words below this: the system writes markedly fewer words
SATURATED_WER = 0.9  # a WER at or above this is near what an empty transcript scores (100 %)
MIN_HIT_SHARE = 0.05  # with fewer reference words right than this share, a saturated WER says nothing
MIN_SPEAKERS = 10  # a bootstrap interval resampled from fewer speakers than this is rough


def deletion_gain(name: str, before: dict, after: dict, short: bool = False) -> str:
    """The WER fell, the system now writes under :data:`DELETION_RATIO` of its former words, and the errors fell
    by fewer words than it stopped writing: the gain is deletions, not recognition. (Dropping only inserted words
    lowers the errors by exactly the words dropped: that is a real gain and passes.)"""
    if not before["hyp_words"] or after["wer"] >= before["wer"]:
        return ""
    ratio = after["hyp_words"] / before["hyp_words"]
    fewer_errors = (before["wer"] - after["wer"]) * before["num_words"]
    fewer_words = before["hyp_words"] - after["hyp_words"]
    if ratio >= DELETION_RATIO or fewer_errors >= fewer_words - 1e-6:
        return ""
    words = f"hypothesis words {before['hyp_words']:,} → {after['hyp_words']:,} for {before['num_words']:,} reference words"
    if short:
        return f"the gain on {name} comes from deleting words ({words})"
    return (f"{name}: the WER gain {100 * before['wer']:.1f}% → {100 * after['wer']:.1f}% comes from deleting words, "
            f"not from recognising them: {words} ({100 * ratio:.0f}% as many; under {100 * DELETION_RATIO:.0f}%), "
            f"and the errors fell by {fewer_errors:,.0f} words, fewer than the {fewer_words:,} it stopped writing")


def saturated(name: str, scores: dict, short: bool = False) -> str:
    """WER ≥ :data:`SATURATED_WER` with fewer than :data:`MIN_HIT_SHARE` of the reference words right: the WER is
    about what an empty transcript scores."""
    share = scores["hits"] / max(scores["num_words"], 1)
    if scores["wer"] < SATURATED_WER or share >= MIN_HIT_SHARE:
        return ""
    if short:
        return f"{name}'s WER {100 * scores['wer']:.1f}% is near an empty transcript's ({100 * share:.1f}% of words right)"
    return (f"{name}: WER {100 * scores['wer']:.1f}% is near what an empty transcript scores (100%): only "
            f"{scores['hits']:,} of {scores['num_words']:,} reference words ({100 * share:.1f}%) are right; judge it by "
            f"CER and words correct, not by WER")


def few_speakers(name: str, speakers: int | None) -> str:
    """An interval resampled from fewer than :data:`MIN_SPEAKERS` speakers (``speakers``: those resampled)."""
    if not speakers or speakers >= MIN_SPEAKERS:
        return ""
    return (f"{name}: the 95% interval resamples only {speakers} speaker(s) (fewer than {MIN_SPEAKERS}): it is rough, "
            f"and a difference it calls clear may not hold on other speakers")


def caveats(name: str, before: dict, after: dict, short: bool = False) -> list[str]:
    """The deletion and saturation rules for one set scored before and after a change (``short``: verdict phrases)."""
    return [c for c in (deletion_gain(name, before, after, short), saturated(name, after, short)) if c]
