"""speechtl compare: model specs, the hypothesis cache, known-answer scores through the whole report, the CLI."""

from __future__ import annotations

import importlib.util

import csv
import html
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import make_tone_set
from speechtl.cli import main
from speechtl.compare import CompareConfig
from speechtl.compare.run import run_compare
from speechtl.compare import hyps as hyps_module
from speechtl.compare.hyps import parse_model_spec
from speechtl.config import ConfigError
from speechtl.data.manifest import read_manifest, write_manifest
from speechtl.models import random_model
from speechtl.text import build_vocab


@pytest.fixture(scope="module")
def tone_sets(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("compare_sets")
    return [make_tone_set(folder / "a", 6, seed=11, name="a.jsonl", accent="toneA"),
            make_tone_set(folder / "b", 6, seed=12, name="b.jsonl", accent="toneB")]


def save_random(folder: Path, seed: int) -> Path:
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --- model specs ---------------------------------------------------------------------------------


def test_model_spec_forms(tmp_path: Path):
    (tmp_path / "adapter").mkdir()
    assert parse_model_spec("speechtl/en-us-synth").name == "en-us-synth"
    spec = parse_model_spec(f"scot=speechtl/en-us-synth+{tmp_path / 'adapter'}")
    assert (spec.name, spec.base, spec.adapter) == ("scot", "speechtl/en-us-synth", str(tmp_path / "adapter"))
    assert parse_model_spec(f"runs/base+{tmp_path / 'adapter'}").name == "base+adapter"
    odd = tmp_path / "a+b=c"  # an existing folder is taken whole, whatever it contains
    odd.mkdir()
    assert parse_model_spec(str(odd)) == hyps_module.ModelSpec(str(odd), "a+b=c", str(odd), None)
    with pytest.raises(ConfigError, match="adapter folder not found"):
        parse_model_spec("speechtl/en-us-synth+nowhere")


# --- known answers through the whole pipeline (decoding replaced by scripted transcripts) -----------

SCRIPTS = {
    "oracle": lambda ref: ref,  # every word right
    "drop": lambda ref: " ".join(ref.split()[:-1]),  # last word deleted
    "oracle2": lambda ref: ref.upper() + ".",  # right after normalisation, wrong orthographically
    "first": lambda ref: ref.split()[0] + (" zz" if len(ref) % 2 else ""),  # first word, an insertion on odd lengths
}


@pytest.fixture
def scripted(monkeypatch):
    """Models named in SCRIPTS 'transcribe' by rewriting the reference; counts loads per model."""
    loads: list[str] = []

    def fake_load(spec, device):
        loads.append(spec.name)
        return torch.nn.Linear(3, 2), None  # 8 parameters

    def fake_decode(spec, loaded, test_set, audio, decoding, progress):
        hyps = {u.id: SCRIPTS[spec.name](u.text) for u in test_set.utts}
        return {"hyps": hyps, "skipped": [], "audio_s": 10.0, "compute_s": 1.0}

    monkeypatch.setattr(hyps_module, "_load", fake_load)
    monkeypatch.setattr(hyps_module, "_decode", fake_decode)
    monkeypatch.setattr(hyps_module, "fingerprint", lambda name: {"scripted": name})
    return loads


def test_known_scores_intervals_and_paired_test(tmp_path: Path, tone_sets, scripted):
    cfg = CompareConfig(models=["drop", "oracle", "oracle2"], test=[str(p) for p in tone_sets], out=str(tmp_path),
                        num_bootstrap=200, quiet=True)
    r = run_compare(cfg)
    utts = [u for p in tone_sets for u in read_manifest(p)]
    words = sum(len(u.text.split()) for u in utts)
    rows = {(row["set"], row["model"]): row for row in r["matrix"]}
    drop = rows[("all", "drop")]
    assert drop["num_words"] == words and drop["wer"] == pytest.approx(len(utts) / words)
    assert rows[("all", "oracle")]["wer"] == rows[("all", "oracle")]["wer_high"] == 0.0
    assert rows[("all", "oracle2")]["orth_wer"] == 1.0 and rows[("all", "oracle2")]["wer"] == 0.0
    o = rows[("all", "oracle")]
    assert o["delta_wer"] == pytest.approx(-drop["wer"]) and o["delta_wer_high"] < 0 and o["p_value"] < 0.05
    assert o["resampled"] == "speakers" and o["num_speakers"] == 3
    assert rows[("a", "oracle")]["rtf"] == 0.1
    assert r["changes"]["oracle"]["counts"]["fixed"] == len(utts)  # drop got every utterance wrong
    assert r["errors"]["drop"]["totals"]["deletions"] == len(utts)
    assert r["errors"]["oracle"]["totals"]["hits"] == words
    assert {m["name"]: m["params"] for m in r["models"]} == {"drop": 8, "oracle": 8, "oracle2": 8}
    # breakdowns: accent has two values (one per set), speaker three; language one value → none
    assert sorted({row["accent"] for row in r["breakdowns"]["accent"]}) == ["toneA", "toneB"]
    assert sum(row["num_words"] for row in r["breakdowns"]["speaker"] if row["model"] == "drop") == words
    assert r["not_broken_down"] == {"gender": "not in the manifests", "language": "not in the manifests"}


def test_identical_models_give_delta_zero_and_p_one(tmp_path: Path, tone_sets, scripted):
    r = run_compare(CompareConfig(models=["oracle", "oracle2"], test=[str(tone_sets[0])], out=str(tmp_path),
                                  num_bootstrap=200, quiet=True))
    (row,) = [x for x in r["matrix"] if x["model"] == "oracle2"]
    assert (row["delta_wer"], row["delta_wer_low"], row["delta_wer_high"], row["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_test_gives_the_figures_it_gave_before(tmp_path: Path, tone_sets, scripted):
    # recorded before the statistics moved to speechtl.eval.stats (Δ = model − baseline, 200 resamples, seed 0)
    r = run_compare(CompareConfig(models=["drop", "first"], test=[str(p) for p in tone_sets], out=str(tmp_path),
                                  num_bootstrap=200, quiet=True))
    row = next(x for x in r["matrix"] if x["set"] == "all" and x["model"] == "first")
    keys = ("wer", "wer_low", "wer_high", "delta_wer", "delta_wer_low", "delta_wer_high", "p_value", "delta_cer",
            "p_value_cer")
    assert [row[k] for k in keys] == pytest.approx([
        0.47368421052631576, 0.3333333333333333, 0.5811403508771935, -0.15789473684210525, -0.3333333333333333,
        -0.051315789473683905, 0.05970149253731343, -0.16363636363636364, 0.009950248756218905], abs=1e-12)


def _without_matplotlib(monkeypatch) -> None:
    """Import the report modules afresh as if matplotlib were not installed (restored after the test)."""
    import importlib
    import sys

    import speechtl.compare as package

    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib` raises ImportError
    for name in ("figures", "tables", "report"):
        monkeypatch.delitem(sys.modules, f"speechtl.compare.{name}", raising=False)
        monkeypatch.setattr(package, name, getattr(package, name, None), raising=False)
    for name in ("figures", "tables", "report"):
        importlib.import_module(f"speechtl.compare.{name}")


def test_compare_without_matplotlib_writes_all_but_the_figures(tmp_path: Path, tone_sets, scripted, monkeypatch,
                                                                capsys):
    _without_matplotlib(monkeypatch)
    hint = "pip install 'speechtl[plot]'"
    argv = ["compare", "--models", "drop", "oracle", "--test", *map(str, tone_sets), "--out", str(tmp_path),
            "--num-bootstrap", "100", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert printed.err.count(hint) == 1 and "| set | utts | words | drop | oracle |" in printed.out
    assert not (tmp_path / "figures").exists()
    assert {"results.json", "matrix.csv", "utterances.csv", "report.md", "report.html"} <= {
        p.name for p in tmp_path.iterdir()}
    for page in ("report.md", "report.html"):
        text = html.unescape((tmp_path / page).read_text(encoding="utf-8"))
        assert text.count(hint) == 1 and "figures/" not in text and "data:image/png" not in text


def test_report_files(tmp_path: Path, tone_sets, scripted):
    run_compare(CompareConfig(models=["drop", "oracle"], test=[str(p) for p in tone_sets], out=str(tmp_path),
                              num_bootstrap=200, quiet=True))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"report.md", "report.html", "results.json", "matrix.csv", "models.csv", "breakdown_accent.csv",
            "breakdown_speaker.csv", "errors.csv", "changes.csv", "utterances.csv", "cache"} <= names
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "src='http" not in page and "href=" not in page  # self-contained
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "speechtl compare" in md
    if importlib.util.find_spec("matplotlib") is None:  # the optional plot extra (the no-matplotlib test covers it)
        return
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"wer_by_accent.png", "before_after.png"}
    assert page.count("data:image/png;base64,") == 2 and "![WER per accent and model" in md
    with open(tmp_path / "matrix.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 and {"wer_low", "wer_high", "delta_wer", "p_value", "rtf"} <= set(rows[0])
    assert json.loads((tmp_path / "results.json").read_text())["baseline"] == "drop"


def test_gender_and_set_breakdowns(tmp_path: Path, tone_sets, scripted):
    utts = read_manifest(tone_sets[0])
    import dataclasses

    with_gender = [dataclasses.replace(u, gender="f" if i % 2 else "m") for i, u in enumerate(utts)]
    write_manifest(with_gender, tmp_path / "g.jsonl")
    r = run_compare(CompareConfig(models=["drop", "oracle"], test=[str(tmp_path / "g.jsonl"), str(tone_sets[1])],
                                  by=["gender", "set"], out=str(tmp_path / "out"), num_bootstrap=200, quiet=True))
    assert sorted({row["gender"] for row in r["breakdowns"]["gender"]}) == ["f", "m"]
    assert sorted({row["set"] for row in r["breakdowns"]["set"]}) == ["b", "g"]
    with pytest.raises(ConfigError, match="not a manifest field"):
        run_compare(CompareConfig(models=["drop"], test=[str(tone_sets[0])], by=["mood"], out=str(tmp_path)))


def test_cache_decodes_only_the_new_model(tmp_path: Path, tone_sets, scripted):
    cfg = dict(test=[str(p) for p in tone_sets], out=str(tmp_path), num_bootstrap=200, quiet=True)
    first = run_compare(CompareConfig(models=["drop", "oracle"], **cfg))
    assert scripted == ["drop", "oracle"]
    again = run_compare(CompareConfig(models=["drop", "oracle", "oracle2"], **cfg))
    assert scripted == ["drop", "oracle", "oracle2"]  # only the new model was loaded
    assert [m["decoded"] for m in again["models"]] == [[], [], ["a", "b"]]
    assert again["matrix"][0] == first["matrix"][0]


def test_cache_key_follows_the_weights_and_the_manifest(tmp_path: Path, tone_sets):
    model = save_random(tmp_path / "m", seed=0)
    test = tmp_path / "t.jsonl"
    shutil.copy(tone_sets[0], test)
    shutil.copytree(tone_sets[0].parent / "wav", tmp_path / "wav")
    cfg = dict(models=[str(model)], test=[str(test)], out=str(tmp_path / "out"), num_bootstrap=100, quiet=True)
    assert run_compare(CompareConfig(**cfg))["models"][0]["decoded"] == ["t"]
    assert run_compare(CompareConfig(**cfg))["models"][0]["decoded"] == []
    save_random(model, seed=1)  # new weights in the same folder
    assert run_compare(CompareConfig(**cfg))["models"][0]["decoded"] == ["t"]
    lines = test.read_text().splitlines()
    test.write_text("\n".join(lines[:-1]) + "\n")  # one utterance fewer
    r = run_compare(CompareConfig(**cfg))
    assert r["models"][0]["decoded"] == ["t"] and r["sets"][0]["scored_utts"] == len(lines) - 1


def test_base_plus_adapter_calls_load_model_with_the_adapter(tmp_path: Path, tone_sets, tiny_model_dir, monkeypatch):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    calls = []
    real = hyps_module.load_model

    def fake_load_model(name, adapter=None):
        calls.append((name, adapter))
        return real(name)

    monkeypatch.setattr(hyps_module, "load_model", fake_load_model)
    spec = f"{tiny_model_dir}+{tmp_path / 'adapter'}"
    r = run_compare(CompareConfig(models=[str(tiny_model_dir), spec], test=[str(tone_sets[0])],
                                  out=str(tmp_path / "out"), num_bootstrap=100, quiet=True))
    assert calls == [(str(tiny_model_dir), None), (str(tiny_model_dir), str(tmp_path / "adapter"))]
    assert [m["adapter"] for m in r["models"]] == [None, str(tmp_path / "adapter")]
    assert [m["decoded"] for m in r["models"]] == [["a"], ["a"]]  # the adapter is part of the cache key


def test_cli_smoke_with_real_decoding(tmp_path: Path, tone_sets, tiny_model_dir, capsys):
    other = save_random(tmp_path / "other", seed=3)
    out = tmp_path / "out"
    argv = ["compare", "--models", f"base={tiny_model_dir}", f"other={other}", "--test", *map(str, tone_sets),
            "--out", str(out), "--num-bootstrap", "100", "--quiet", "--precision", "fp32"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| set | utts | words | base | other |" in printed and "report.html" in printed
    assert main(argv + ["--output-format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["decoded"] for m in result["models"]] == [[], []]
    assert main(["compare", "--models", str(tiny_model_dir), "--test", str(tone_sets[0]), "--baseline", "zzz",
                 "--out", str(out)]) == 2
    assert "--baseline 'zzz' is none of the models" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BAR_BLUE = (0x4C, 0x72, 0xB0)  # the first model's bar colour in the figures


@pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                    reason="headless screenshot check needs Chromium: apt-get install chromium (Debian)")
def test_report_renders_in_headless_chromium_with_its_figures(tmp_path: Path, tone_sets, scripted):
    import subprocess

    import matplotlib.image

    run_compare(CompareConfig(models=["drop", "oracle"], test=[str(p) for p in tone_sets], out=str(tmp_path),
                              num_bootstrap=100, quiet=True))
    script = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.sh"
    png = tmp_path / "shot.png"
    subprocess.run(["bash", str(script), str(tmp_path / "report.html"), str(png), "1000", "1400"], check=True,
                   capture_output=True, timeout=120)
    pixels = (matplotlib.image.imread(png)[..., :3] * 255).round().astype(int)
    assert pixels.shape == (1400, 1000, 3)
    blue = (abs(pixels - BAR_BLUE).max(axis=-1) <= 3).sum()
    assert blue > 2000, "the embedded WER figure is not visible in the screenshot"
