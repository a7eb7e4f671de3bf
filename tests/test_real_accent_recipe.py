"""Smoke run of recipes/real_accent.py on stand-in corpora (tiny random model, seconds): every cell kind, the
adult/child breakdown, the table, CSV and PNG, resume, and the settings check."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from speechtl.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("real_accent", ROOT / "recipes" / "real_accent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_real_accent_smoke_runs_every_cell_and_resumes(recipe, tmp_path, capsys):
    args = ["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "real")]
    rows = recipe.main(args)
    assert [(r["corpus"], r["recipe"], r["minutes"]) for r in rows] == [
        ("speechocean762", "routed", "0.1min"), ("speechocean762", "routed", "all"),
        ("speechocean762", "full", "0.1min"), ("speechocean762", "full", "all"), ("mboshi", "copy", "all")]
    assert rows[0]["labelled_minutes"] < rows[1]["labelled_minutes"]
    assert rows[0]["replay_minutes"] == 0 < rows[2]["replay_minutes"]  # routed: no replay; full: 8:1 replay
    out = tmp_path / "real"
    results = json.loads((out / "speechocean762-routed-0.1min" / "results.json").read_text())
    assert results["routing"] is not None and results["real_accent"]["recipe"] == "routed"
    mboshi = json.loads((out / "mboshi-copy-all" / "results.json").read_text())
    assert mboshi["head"] is not None and mboshi["source"] is None and mboshi["normalizer"]["language"] == "und"
    for r in rows[:4]:  # English cells: a source test set and both age groups
        assert r["source_wer_after"] is not None and r["adult_wer_after"] is not None
        assert r["child_wer_after"] is not None
    assert rows[4]["source_wer_after"] is None and rows[4]["adult_wer_after"] is None

    with open(out / "learning_curve.csv") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("corpus,recipe,minutes,labelled_minutes") and len(lines) == 6
    if importlib.util.find_spec("matplotlib"):  # the optional plot extra
        assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "learning_curve.md").read_text()
    assert "python recipes/real_accent.py --smoke" in md and "dev figures, not test figures" in md
    first = capsys.readouterr().out
    assert "| speechocean762 | routed | 0.1min |" in first and "| mboshi | copy | all |" in first

    (out / "speechocean762-full-all" / "results.json").unlink()  # as if that cell had been interrupted
    partial = recipe.main([*args, "--finished-only"])  # the table so far: nothing trained
    printed = capsys.readouterr().out
    assert "[4/5] speechocean762 full all: not finished, left out (--finished-only)" in printed
    assert partial == rows[:3] + rows[4:] and not (out / "speechocean762-full-all" / "results.json").exists()
    again = recipe.main(args)
    printed = capsys.readouterr().out
    assert printed.count("done before, not rerun") == 4 and "[4/5] speechocean762 full all ..." in printed
    assert [r["dev_wer_after"] for r in again] == [r["dev_wer_after"] for r in rows]
    assert [r["dev_cer_after"] for r in again] == [r["dev_cer_after"] for r in rows]
    assert again[:3] == rows[:3] and again[4] == rows[4]  # finished cells are read back, not rerun

    # a second run from nothing (new --out and data cache, same seed) prints the same figures
    fresh = recipe.main(["--smoke", "--quiet", "--data", str(tmp_path / "data2"), "--out", str(tmp_path / "real2"),
                         "--recipes", "routed", "--mboshi-minutes"])
    def timeless(rs):
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]
    assert timeless(fresh) == timeless(rows[:2])
    assert "done before" not in capsys.readouterr().out
    recipe.TRAINING["lr"] = 0.5  # changed settings must not reuse old cells
    try:
        with pytest.raises(ConfigError, match=r"routed-0\.1min was run with other \(or unrecorded\) settings"):
            recipe.main(args)
    finally:
        del recipe.TRAINING["lr"]


def test_breakdown_adds_up_to_the_whole_dev_set(recipe, tmp_path):
    """Words and edits by age group sum to the set's: the groups split the dev hypotheses, none counted twice."""
    manifest = tmp_path / "dev.jsonl"
    rows = [("a1", "the cat sat", "the cat sat", "adult"), ("a2", "a dog ran", "a dog", "adult"),
            ("c1", "one two three four", "", "child"), ("x1", "no group here", "no group", "")]
    manifest.write_text("".join(json.dumps({"id": i, "audio_path": f"{i}.wav", "text": ref, "age_group": g}) + "\n"
                                for i, ref, _, g in rows))
    (tmp_path / "hyps").mkdir()
    for when in ("before", "after"):
        (tmp_path / "hyps" / f"dev.{when}.tsv").write_text(
            "id\treference\thypothesis\n" + "".join(f"{i}\t{ref}\t{hyp}\n" for i, ref, hyp, _ in rows))
    groups = recipe.breakdown(tmp_path, "dev", str(manifest))
    assert set(groups) == {"adult", "child"}  # the utterance without a group is in no group
    adult, child = groups["adult"]["after"], groups["child"]["after"]
    assert adult["utts"] == 2 and adult["wer"] == pytest.approx(1 / 6) and adult["hits"] == 5
    assert child["wer"] == 1.0 and child["cer"] == 1.0 and child["empty_share"] == 1.0 and child["hits"] == 0
    assert adult["hyp_ratio"] == pytest.approx(5 / 6)


def test_cells_keep_the_demo_defaults_but_the_recipe_changes(recipe, tmp_path):
    cfg = recipe.RealAccentConfig(out=str(tmp_path), data=str(tmp_path / "data"))
    routed, full = recipe.demo_config(cfg, "speechocean762", "routed"), recipe.demo_config(cfg, "speechocean762", "full")
    mboshi = recipe.demo_config(cfg, "mboshi", "copy")
    assert routed.route_minutes > 0 and routed.replay_ratio == 0
    assert (full.route_minutes, full.replay_ratio) == (0, 8)
    r1 = recipe.demo_config(cfg, "speechocean762", "full-r1")
    assert (r1.route_minutes, r1.replay_ratio, r1.training) == (0, 1, full.training)
    assert "full-r1" not in cfg.recipes  # a candidate: trained only when named
    assert (mboshi.route_minutes, mboshi.replay_ratio) == (0, 0)
    assert routed.training == full.training == mboshi.training
    assert routed.training.optimiser.lr == 1e-3 and routed.training.runtime.threads == 1
    assert recipe.cells(cfg)[-2:] == [("mboshi", "copy", 30.0), ("mboshi", "copy", 60.0)]
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe.cells(recipe.RealAccentConfig(recipes=["lora"]))


def test_a_cell_run_with_other_settings_is_refused(recipe, tmp_path):
    from speechtl.adapt.run import AdaptConfig

    cell = AdaptConfig(train="t.jsonl", dev="d.jsonl", test=["d.jsonl"], out=str(tmp_path / "cell"))
    recipe.check_settings(cell)
    recipe.check_settings(cell)  # the same settings: fine
    with pytest.raises(ConfigError, match="other"):
        recipe.check_settings(AdaptConfig(train="t.jsonl", dev="d.jsonl", test=["d.jsonl"], route_minutes=5.0,
                                          out=str(tmp_path / "cell")))


def test_a_copied_cell_is_read_back_but_not_with_another_sample(recipe, tmp_path):
    """Where a cell lives does not count (a cell folder copied into another --out, with its sample), what it trained
    on does: the same settings with a sample of other content are refused."""
    import shutil

    from speechtl.adapt.run import AdaptConfig

    def cell(name: str) -> AdaptConfig:
        return AdaptConfig(train=str(tmp_path / name / "t.jsonl"), dev="d.jsonl", out=str(tmp_path / name / "cell"))

    for name, text in (("a", "one"), ("b", "one"), ("c", "two")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "t.jsonl").write_text(text)
    recipe.check_settings(cell("a"))
    shutil.copytree(tmp_path / "a" / "cell", tmp_path / "b" / "cell")
    recipe.check_settings(cell("b"))  # the same sample elsewhere: read back
    shutil.copytree(tmp_path / "a" / "cell", tmp_path / "c" / "cell")
    with pytest.raises(ConfigError, match="other"):
        recipe.check_settings(cell("c"))


def test_a_cell_from_before_a_new_setting_with_its_default_is_read_back(recipe, tmp_path):
    """A cell recorded before a setting existed (here ``select_by``) matches while the setting is at its default."""
    from speechtl.adapt.run import AdaptConfig
    from speechtl.adapt.train import train_config

    cell = AdaptConfig(train="t.jsonl", dev="d.jsonl", out=str(tmp_path / "cell"))
    recipe.check_settings(cell)
    path = tmp_path / "cell" / "cell_config.json"
    recorded = json.loads(path.read_text())
    del recorded["training"]["select_by"]
    path.write_text(json.dumps(recorded))
    recipe.check_settings(cell)
    with pytest.raises(ConfigError, match="other"):
        recipe.check_settings(AdaptConfig(train="t.jsonl", dev="d.jsonl", out=str(tmp_path / "cell"),
                                          training=train_config(select_by="wer")))
