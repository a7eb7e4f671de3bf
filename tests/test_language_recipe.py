"""Smoke run of recipes/language_adaptation.py: the real path (synthetic Spanish, three conditions, two budgets)
with a tiny random source model and a few steps; every output file is written and consistent."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_recipe():
    spec = importlib.util.spec_from_file_location("language_adaptation", ROOT / "recipes" / "language_adaptation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_language_recipe_smoke(tmp_path, capsys):
    recipe = load_recipe()
    out = tmp_path / "out"
    argv = ["--smoke", "--quiet", "--language", "sv", "--data", str(tmp_path / "data"), "--out", str(out)]
    results = recipe.main(argv)
    table = capsys.readouterr().out
    assert "transfer, shared rows copied WER / CER" in table and "from scratch WER / CER" in table
    assert [(r["condition"], r["minutes"]) for r in results["rows"]] == [
        (c, m) for m in (0.1, 0.2) for c in ("copy", "random", "scratch")]
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == results["rows"] and saved["language"] == "sv"
    assert saved["normalizer"]["language"] == "sv" and saved["command"].endswith(" ".join(argv))
    with open(out / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    if importlib.util.find_spec("matplotlib"):  # the optional plot extra
        assert (out / "wer_cer_vs_minutes.png").stat().st_size > 1000
    assert "python recipes/language_adaptation.py --smoke" in (out / "RESULTS.md").read_text()
    for cond, mode in (("copy", "copy"), ("random", "random"), ("scratch", "random")):
        run = json.loads((out / f"{cond}-0.1min" / "results.json").read_text())
        assert run["head"]["mode"] == mode and "å" in json.loads((out / f"{cond}-0.1min" / "vocab.json").read_text())
    scratch = json.loads((out / "scratch-0.1min" / "run_config.json").read_text())["training"]
    assert scratch["lr"] == 2e-3 and scratch["freeze_feature_encoder"] is False
    # budgets are nested samples of one pool
    pool = next((tmp_path / "data").glob("sv-train-*"))
    ids = {m: {json.loads(line)["id"] for line in (pool / f"train-{m}min.jsonl").read_text().splitlines()}
           for m in ("0.1", "0.2")}
    assert ids["0.1"] < ids["0.2"]


def test_language_recipe_refuses_unknown_conditions(tmp_path):
    from speechtl.config import ConfigError

    recipe = load_recipe()
    with pytest.raises(ConfigError, match="conditions must be some of copy, random, scratch"):
        recipe.main(["--smoke", "--quiet", "--conditions", "copy", "magic", "--data", str(tmp_path), "--out",
                     str(tmp_path / "o")])
