"""Several accents behind one router: choosing a member, combining routed runs, serving the combined folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtl.cli import main
from speechtl.config import ConfigError
from speechtl.decode import transcribe_arrays
from speechtl.models import ModelLoadError, load_model, random_model
from speechtl.models.combine import MANIFEST, combine_runs
from speechtl.models.multiroute import BASE, MultiRoutedCTC, choose
from speechtl.models.router import Router, fit_gate, fit_router, weights_digest
from speechtl.text import build_vocab

from conftest import adapt_routed, make_tone_set

# three "accents" of the tone language: tones scaled by these factors; the members are adapted to low and high,
# the router's source audio (and the base's accent) sits between them
PITCH = {"low": 0.6, "src": 1.0, "high": 1.6}
STRATEGY = {"low": "lora", "high": "adapter", "full": "full"}


@pytest.fixture(scope="module")
def accents(tiny_model_dir, tmp_path_factory):
    """Train/test sets per accent, and routed runs (fp32) of the base: low (lora), high (adapter), high (full)."""
    root = tmp_path_factory.mktemp("accents")
    sets = {}
    for i, (accent, pitch) in enumerate(PITCH.items()):
        for part, n in (("train", 12), ("test", 10)):
            sets[f"{accent}_{part}"] = make_tone_set(root / f"{accent}_{part}", n, seed=10 * i + len(part), pitch=pitch,
                                                     name=f"{accent}.jsonl" if part == "test" else "train.jsonl", accent=accent)
    runs = {}
    for member, strategy in STRATEGY.items():
        accent = "high" if member == "full" else member
        runs[member] = root / f"run_{member}"
        result = adapt_routed(tiny_model_dir, sets[f"{accent}_train"], sets["src_train"], runs[member],
                              sets[f"{accent}_test"], strategy=strategy, lora_r=4, adapter_dim=8, precision="fp32")
        assert min(result.routing["train_accuracy"].values()) >= 0.9  # the routers are confident on their own data
    return root, sets, runs


def _clouds(center: float, n: int, rng) -> np.ndarray:
    return rng.normal(center, 0.3, size=(n, 4))


def test_a_row_goes_to_the_routing_member_nearest_its_own_target_and_else_to_the_base():
    rng = np.random.default_rng(0)
    source = _clouds(0.0, 200, rng)
    routers = []
    for center in (-2.0, +2.0):  # two accents on either side of the source
        target = _clouds(center, 200, rng)
        routers.append(fit_router(target, source))
        fit_gate(routers[-1], target, keep=0.95)
    points = torch.tensor([[-2.0] * 4, [2.0] * 4, [0.0] * 4, [40.0] * 4], dtype=torch.float32)
    choice = choose(routers, points)
    assert choice.member.tolist() == [0, 1, BASE, BASE]  # own accent, own accent, source, far off
    assert choice.abstained.tolist() == [False, False, False, True]  # the last: classified target, gated out
    assert choice.probability.shape == (2, 4)
    for r in routers:  # without gates the highest p(target) (as a logit) picks among the routing members
        r.gate_threshold.fill_(float("inf"))
    plain = choose(routers, points)
    logits = torch.stack([r.logit(points) for r in routers])
    routed = logits > 0
    expect = torch.where(routed.any(0), torch.where(routed, logits, -torch.inf).argmax(0), BASE)
    assert torch.equal(plain.member, expect) and plain.member[3] == 1 and not plain.abstained.any()


def test_p_target_does_not_pick_between_members_nearness_to_their_own_target_does():
    """Each classifier learned "my accent vs the source": its p(target) says how unlike the source a row is. A
    member whose accent lies further out (or whose classifier is steeper) has the higher p on the other's rows."""
    routers = [Router(2), Router(2)]
    for r, weight, centre, threshold in zip(routers, (1.0, 5.0), (1.0, 3.0), (1.0, 4.0)):
        r.std.fill_(1.0)
        r.weight.copy_(torch.tensor([weight, 0.0]))
        r.gate_mean.copy_(torch.tensor([centre, 0.0]))
        r.gate_threshold.fill_(threshold)
    row = torch.tensor([[1.0, 0.0]])  # member 0's own target; member 1 routes it too, with the higher p(target)
    choice = choose(routers, row)
    assert choice.probability[1, 0] > choice.probability[0, 0] and choice.member.tolist() == [0]


def _combine(tmp_path, *specs, name="combined") -> tuple[int, str]:
    out = tmp_path / name
    return main(["combine", *map(str, specs), "--out", str(out)]), out


def test_each_accent_goes_to_its_member_and_source_speech_to_the_base(accents, tmp_path, capsys):
    root, sets, runs = accents
    rc, out = _combine(tmp_path, runs["low"], runs["high"])
    assert rc == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == "speechtl-multiroute/1" and [m["name"] for m in manifest["members"]] == ["low", "high"]
    assert [m["kind"] for m in manifest["members"]] == ["lora", "adapter"]
    assert all(m["path"] == str(runs[m["name"]].resolve()) for m in manifest["members"])
    assert sorted(p.name for p in out.iterdir()) == [".speechtl.lock", MANIFEST]  # no weights copied
    capsys.readouterr()
    tests = [str(sets[f"{a}_test"]) for a in PITCH]  # each set is named by its file: low, src, high
    assert main(["evaluate", str(out), *tests, "--output-format", "json", "--quiet", "--precision", "fp32"]) == 0
    scored = json.loads(capsys.readouterr().out)["sets"]
    for accent in ("low", "high"):
        assert scored[accent]["member_shares"][accent] >= 0.75, scored[accent]
    assert scored["src"]["routed_share"] <= 0.25, scored["src"]
    for r in scored.values():
        assert sum(r["member_shares"].values()) == pytest.approx(r["routed_share"], abs=1e-3)
        assert 0 <= r["abstained_share"] <= 1 - r["routed_share"] + 1e-3


def test_compare_reports_the_share_each_member_served(accents, tmp_path):
    _, sets, runs = accents
    _, out = _combine(tmp_path, runs["low"], runs["high"])
    report = tmp_path / "cmp"
    assert main(["compare", "--models", str(out), "--test", f"low={sets['low_test']}", f"src={sets['src_test']}",
                 "--out", str(report), "--num-bootstrap", "100", "--quiet", "--precision", "fp32"]) == 0
    routing = json.loads((report / "results.json").read_text())["models"][0]["routing"]
    assert set(routing) == {"low", "src"} and set(routing["low"]["member_shares"]) == {"low", "high"}


@pytest.mark.parametrize("member", ["low", "high", "full"])
def test_one_member_combined_transcribes_as_its_own_routed_folder(member, accents, tmp_path, capsys):
    root, sets, runs = accents
    rc, out = _combine(tmp_path, runs[member])
    assert rc == 0
    arrays = [sf.read(p)[0].astype(np.float32) for p in sorted(root.glob("*_test/wav/*.wav"))]
    combined, processor = load_model(str(out))
    routed, _ = load_model(str(runs[member]))
    assert isinstance(combined, MultiRoutedCTC)
    assert transcribe_arrays(combined, processor, arrays).texts == transcribe_arrays(routed, processor, arrays).texts
    assert 0 < combined.pop_share() == routed.pop_share() < 1  # both accents' audio and the source's: split alike
    long = tmp_path / "long.wav"  # long-form: chunked, each chunk routed on its own
    sf.write(long, np.concatenate(arrays), 16_000)
    capsys.readouterr()
    texts = []
    for model in (out, runs[member]):
        assert main(["transcribe", str(model), str(long), "--chunk-s", "1", "--stride-s", "0.2", "--quiet",
                     "--precision", "fp32"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].strip()


def test_adapter_members_share_the_base_weights_and_never_write_them(accents, tmp_path, tiny_model_dir):
    _, _, runs = accents
    _, out = _combine(tmp_path, runs["low"], runs["high"], f"full={runs['full']}")
    model, _ = load_model(str(out))
    base_before = weights_digest(load_model(str(tiny_model_dir))[0])
    assert weights_digest(model.base) == base_before  # no member's adapter or head was written into the base
    shared = {p.data_ptr() for n, p in model.base.named_parameters() if not n.startswith("lm_head.")}
    low, high, full = model.members
    for adapted in (low, high):
        assert shared <= {p.data_ptr() for p in adapted.parameters()}  # only the adapter and the head are new
    assert not shared & {p.data_ptr() for p in full.parameters()}  # a full member is a whole model
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # an unmerged LoRA member computes what the run's merged model does
        merged = load_model(str(runs["low"]), route=False)[0].eval()
        assert torch.allclose(low(x).logits, merged(x).logits, atol=1e-4)


def test_a_changed_or_missing_member_is_refused_at_load(accents, tmp_path, capsys):
    _, sets, runs = accents
    copy = tmp_path / "run_copy"
    shutil.copytree(runs["low"], copy)
    _, out = _combine(tmp_path, copy, runs["high"])
    (copy / "adapter" / "adapter_model.safetensors").write_bytes(
        (runs["high"] / "adapter" / "adapter.safetensors").read_bytes())
    with pytest.raises(ModelLoadError, match=r"member 'low' .* changed since it was combined \(adapter/"):
        load_model(str(out))
    capsys.readouterr()
    assert main(["evaluate", str(out), str(sets["low_test"]), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed since it was combined" in err
    shutil.rmtree(copy)
    with pytest.raises(ModelLoadError, match=r"member 'low' .* is gone"):
        load_model(str(out))
    with pytest.raises(ModelLoadError, match="takes no --adapter and has no single adapted model"):
        load_model(str(_combine(tmp_path, runs["high"], name="again")[1]), route=False)


def test_combine_refuses_another_base_and_writes_nothing(accents, tmp_path, capsys):
    root, sets, runs = accents
    other = tmp_path / "other_base"
    model, processor = random_model(build_vocab(["abc"]), size="tiny", seed=5)
    model.save_pretrained(other)
    processor.save_pretrained(other)
    foreign = tmp_path / "foreign"
    adapt_routed(other, sets["high_train"], sets["src_train"], foreign, sets["high_test"], precision="fp32")
    capsys.readouterr()
    empty = tmp_path / "existing"
    empty.mkdir()
    for out in (tmp_path / "new", empty):
        assert main(["combine", str(runs["low"]), str(foreign), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{foreign}: adapted from" in err and "same base model" in err
    # nothing written: a folder made for it is gone, an existing one keeps only the lock every verb leaves
    assert not (tmp_path / "new").exists() and {p.name for p in empty.iterdir()} <= {".speechtl.lock"}
    for specs, message in (([runs["low"], other], "not a routed run folder"),
                           ([runs["high"], runs["full"]], "the name of two members: name members with NAME=RUN"),
                           ([runs["low"], runs["low"]], "the folder of two members")):
        with pytest.raises(ConfigError, match=message):
            combine_runs([str(s) for s in specs], tmp_path / "never")
        assert not (tmp_path / "never").exists()
    named = combine_runs([str(runs["high"]), f"hifull={runs['full']}"], tmp_path / "named")
    assert [m["name"] for m in named["members"]] == ["high", "hifull"]
    with pytest.raises(ConfigError, match="holds a combined folder already; --overwrite"):
        combine_runs([str(runs["high"])], tmp_path / "named")


def test_adapt_refuses_a_combined_folder_as_its_start(accents, tmp_path):
    from speechtl.adapt.run import AdaptConfig, run_adaptation

    _, sets, runs = accents
    _, out = _combine(tmp_path, runs["low"])
    cfg = AdaptConfig(model=str(out), train=str(sets["low_train"]), test=[str(sets["low_test"])],
                      out=str(tmp_path / "again"))
    with pytest.raises(ConfigError, match="is a combined folder .* adapt its base model"):
        run_adaptation(cfg, progress=False)


def test_a_member_without_a_recorded_text_language_is_english_and_another_language_is_refused(accents, tmp_path):
    """Run folders written before the text language was recorded in config.json normalise as English (as
    evaluate reads them): they combine with English members; a member of another language is refused."""
    _, _, runs = accents
    older = tmp_path / "older"
    shutil.copytree(runs["low"], older)
    config = json.loads((older / "config.json").read_text())
    assert config.get("text_language") in (None, "en")
    config.pop("text_language", None)
    (older / "config.json").write_text(json.dumps(config))
    combined = combine_runs([f"older={older}", str(runs["high"])], tmp_path / "ok")
    assert combined["text_language"] == "en"
    config["text_language"] = "de"
    (older / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"text language differs from .*\('de' vs 'en'\)"):
        combine_runs([str(runs["high"]), f"older={older}"], tmp_path / "never")
