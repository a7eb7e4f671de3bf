"""The table ``train_vs_hf.py`` prints: the arms with their ratios and the goal's verdict, then speechtl's scaling."""

from __future__ import annotations

GOALS = {"hf_fp32": 3.0, "hf_bf16": 1.3}  # speechtl's throughput over each baseline, at dev WER within 1 point
WER_POINTS = 1.0
DROPOUT = {"example": "the HF CTC example's defaults (dropouts 0, time masks 0.05)", "model": "the model's own config"}


def _row(r: dict, ratios: str) -> str:
    wer = f"{100 * r['dev_wer']:.1f}" if r["dev_wer"] is not None else "-"
    batch = f"{r['batch_seconds']:g}" + (f" ({r['hf_batch_size']} utt)" if r.get("hf_batch_size") else "")
    return (f"{r['model']:<8} {r['arm']:<9} {r['precision']:<5} {r['procs']:>5} {batch:>12} "
            f"{r['padded_s_per_batch']:>8.1f} {r['steps']:>5} {r['audio_s_per_s']:>9.1f} {ratios} "
            f"{r['first_step_s']:>8.1f} {r['total_s']:>7.1f} {r['rss_mb']:>7.0f} {wer:>7}"
            + (f"  GPU peak {r['gpu_mb']:.0f} MB" if r.get("gpu_mb") else ""))


def verdict(rows: list[dict]) -> list[str]:
    """One line per model: each goal met or the gap said plainly."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        arms = {r["arm"]: r for r in rows if r["model"] == model and r["part"] == "arms"}
        ours = arms.get("speechtl")
        if ours is None:
            continue
        for arm, goal in GOALS.items():
            if arm not in arms:
                continue
            ratio = ours["audio_s_per_s"] / arms[arm]["audio_s_per_s"]
            gap = 100 * abs(ours["dev_wer"] - arms[arm]["dev_wer"])
            met = ratio >= goal and gap <= WER_POINTS
            lines.append(f"{model}: speechtl {ratio:.2f}x {arm} (goal >= {goal:g}x), dev WER "
                         f"{100 * ours['dev_wer']:.1f} vs {100 * arms[arm]['dev_wer']:.1f} ({gap:.1f} points apart, "
                         f"goal <= {WER_POINTS:g}): {'met' if met else 'NOT met'}")
    return lines


def _reference(rows: list[dict], model: str) -> dict:
    """What a scaling row is compared with: the model's speechtl arm (one process, the arms' batch), else the first
    of its scaling rows (rows come arms first)."""
    mine = [x for x in rows if x["model"] == model and x["arm"] == "speechtl"]
    return next((x for x in mine if x["part"] == "arms"), mine[0])


def format_table(result: dict) -> str:
    m = result["machine"]
    head = (f"{'model':<8} {'arm':<9} {'prec':<5} {'procs':>5} {'batch s':>12} {'padded s':>8} {'steps':>5} "
            f"{'audio-s/s':>9} {'x hf_fp32':>9} {'x hf_bf16':>9} {'1st step s':>8} {'total s':>7} {'RSS MB':>7} "
            f"{'dev WER':>7}")
    lines = [f"$ {result['command']}",
             f"device={m['device']} threads={m['threads']} torch={m['torch']} cpu={m['cpu']} "
             f"cpu_bf16={m['cpu_bf16']} cores={m['cores']} load_avg_1min={m['load_avg_1min']} "
             f"(at the end: {result['load_avg_end']:.2f})",
             f"training set: {result['train_utts']} utterances, {result['train_audio_s'] / 60:.1f} min; "
             f"dropouts and SpecAugment in every arm: {DROPOUT[result.get('dropout', 'model')]}", "", head]
    rows = result["rows"]
    for r in rows:
        if r["part"] != "arms":
            continue
        base = {x["arm"]: x for x in rows if x["model"] == r["model"] and x["part"] == "arms"}
        ratios = " ".join(f"{r['audio_s_per_s'] / base[a]['audio_s_per_s']:>9.2f}" if a in base else f"{'-':>9}"
                          for a in GOALS)
        lines.append(_row(r, ratios))
    lines += ["", *verdict(rows)]
    scaling = [r for r in rows if r["part"] == "scaling"]
    if scaling:
        lines += ["", "speechtl alone: batch size and processes (x ref, RSS/ref: throughput and memory over the "
                  "model's speechtl arm above, else its first row here)",
                  head.replace("x hf_fp32", "    x ref").replace("x hf_bf16", "  RSS/ref")]
        for r in scaling:
            ref = _reference(rows, r["model"])
            ratios = f"{r['audio_s_per_s'] / ref['audio_s_per_s']:>9.2f} {r['rss_mb'] / ref['rss_mb']:>9.2f}"
            lines.append(_row(r, ratios))
    lines.append("audio-s/s: real audio seconds of steps 2..N per wall second; padded s: mean padded seconds per "
                 "batch; 1st step s: launch to the end of step 1; total s: launch to the end of step N; RSS MB: peak "
                 "resident memory of the training process(es); dev WER %: after the last step, fp32")
    return "\n".join(lines)
