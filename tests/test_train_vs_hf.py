"""benchmarks/train_vs_hf.py end to end at tiny size, its verdict lines, and benchmarks/gpu_check.sh's CPU dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import train_vs_hf  # noqa: E402
import train_vs_hf_table  # noqa: E402


def test_benchmark_runs_every_arm_once_in_tiny_mode(tone_data, tiny_model_dir, tmp_path, capsys):
    """Three arms, each its own process, the same steps and comparable batches; every figure measured."""
    train_vs_hf.main(["--models", str(tiny_model_dir), "--train", str(tone_data["train"]), "--dev",
                      str(tone_data["dev"]), "--steps", "2", "--batch-seconds", "3", "--scaling", "--nproc", "0",
                      "--work", str(tmp_path), "--output-format", "json"])
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [r["arm"] for r in rows] == ["hf_fp32", "hf_bf16", "speechtl"]
    assert [r["precision"] for r in rows[:2]] == ["fp32", "bf16"]
    for r in rows:
        assert r["steps"] == 2 and r["procs"] == 1 and r["audio_s_per_s"] > 0 and r["rss_mb"] > 0
        assert 0 < r["first_step_s"] <= r["total_s"] and r["dev_wer"] >= 0
        assert 0 < r["padded_s_per_batch"] <= 3.0 + 1.5  # the Trainer's count-matched batches land near the budget
    assert rows[0]["hf_batch_size"] >= 1 and rows[2]["hf_batch_size"] is None
    table = train_vs_hf_table.format_table(result)
    assert "load_avg_1min=" in table and "x hf_fp32" in table and table.count("goal >=") == 2


def _row(arm: str, speed: float, wer: float, part: str = "arms") -> dict:
    return {"model": "m", "arm": arm, "part": part, "audio_s_per_s": speed, "dev_wer": wer}


def test_verdict_says_met_only_when_speed_and_wer_both_hold():
    met = train_vs_hf_table.verdict([_row("hf_fp32", 1.0, 0.30), _row("hf_bf16", 2.0, 0.30),
                                     _row("speechtl", 3.5, 0.305)])
    assert [line.endswith(": met") for line in met] == [True, True]
    slow = train_vs_hf_table.verdict([_row("hf_fp32", 1.0, 0.30), _row("speechtl", 2.0, 0.30)])
    assert slow[0].endswith("NOT met") and "2.00x hf_fp32" in slow[0]
    worse = train_vs_hf_table.verdict([_row("hf_fp32", 1.0, 0.30), _row("speechtl", 9.0, 0.32)])
    assert worse[0].endswith("NOT met") and "2.0 points apart" in worse[0]


def test_scaling_rows_compare_with_the_speechtl_arm_else_their_first_row():
    """A lone torchrun row is compared with the one-process arm above it, not with itself."""
    arm, two = _row("speechtl", 50.0, 0.3), _row("speechtl", 90.0, 0.3, "scaling")
    assert train_vs_hf_table._reference([_row("hf_fp32", 25.0, 0.3), arm, two], "m") is arm
    first, bigger = _row("speechtl", 40.0, 0.3, "scaling"), _row("speechtl", 30.0, 0.3, "scaling")
    assert train_vs_hf_table._reference([_row("hf_fp32", 25.0, 0.3), first, bigger], "m") is first


def test_hf_batch_size_matches_the_mean_padded_seconds():
    """The Trainer's batch size is the one whose length-grouped batches pad closest to speechtl's."""
    durs = [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5] * 5
    size, target = train_vs_hf.hf_batch_size(durs, 20.0, seed=0)
    assert 0 < target <= 20.0 and size > 1
    miss = {n: abs(train_vs_hf.hf_padded(durs, n, seed=0) - target) for n in (size - 1, size, size + 1)}
    assert miss[size] == min(miss.values()) and miss[size] < max(durs)


def test_gpu_check_refuses_without_cuda_and_dry_runs_on_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal cannot be seen here")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "no CUDA device" in refused.stderr and "Traceback" not in refused.stderr
    dry = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-2000:]
    for part in ("1/3 device tests", "2/3 adaptation", "3/3 transcription", "gpu_check.sh: done"):
        assert part in dry.stdout


@pytest.mark.parametrize("dropout", ["example", "model"])
def test_every_arm_trains_the_same_model_config(tiny_model_dir, dropout):
    """The Trainer arms as the example loads them and speechtl's arm with its flags: the same dropouts and masking."""
    import hf_ctc_recipe
    from train_vs_hf_worker import _same_config

    from speechtl.adapt.train import _set_dropout, _set_spec_augment, train_config
    from speechtl.models import load_model

    hf, _ = hf_ctc_recipe.load(str(tiny_model_dir), example_config=dropout == "example")
    ours, _ = load_model(str(tiny_model_dir))
    cfg = train_config(**_same_config({"dropout": dropout}))
    _set_spec_augment(ours, cfg.augment.mask_time_prob, cfg.augment.mask_feature_prob)
    _set_dropout(ours, cfg.regularise.dropout)
    for key in hf_ctc_recipe.EXAMPLE_CONFIG:
        assert getattr(hf.config, key) == getattr(ours.config, key), key
    probs = [{n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)} for model in (hf, ours)]
    assert probs[0] == probs[1] and (set(probs[0].values()) == {0.0}) == (dropout == "example")
