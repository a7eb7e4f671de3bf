"""A non-finite loss or gradient skips the optimizer step (speechtl.adapt.nonfinite): the weights stay finite, the
skips are counted and named, training goes on learning, a resume stays exact, and too many in a row stop the run
with a one-line error. The objective is made non-finite on chosen steps by a patch (fp32, the tests' tiny model)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from speechtl.adapt.losses import Objective
from speechtl.adapt.run import labels_for
from speechtl.adapt.train import TrainData, skipped_warning, train, train_config
from speechtl.cli import main
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.models import load_model
from speechtl.settings import MAX_SKIPPED_IN_A_ROW

ORIGINAL = Objective.__call__


def poison(monkeypatch, bad, how: str = "loss") -> None:
    """Make the objective non-finite where ``bad(call_number, batch)`` (calls count from 1): "loss" gives a NaN
    loss (gradients finite), "grad" a finite loss with NaN gradients (d sqrt(x)/dx at 0, times 0)."""
    calls = [0]

    def call(self, batch, logits, lengths):
        calls[0] += 1
        loss = ORIGINAL(self, batch, logits, lengths)
        if not bad(calls[0], batch):
            return loss
        return loss + float("nan") if how == "loss" else loss + torch.sqrt(logits.float().sum() * 0.0)

    monkeypatch.setattr(Objective, "__call__", call)


def _data(tone_data, processor):
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    return TrainData(utts, labels_for(utts, processor.tokenizer), audio)


@pytest.mark.parametrize("how,max_grad_norm,grad_accum", [("loss", 1.0, 1), ("grad", 0.0, 1), ("grad", 1.0, 2)])
def test_non_finite_steps_are_skipped_counted_and_training_still_learns(how, max_grad_norm, grad_accum, tone_data,
                                                                        tiny_model_dir, tmp_path, monkeypatch):
    calls = {5, 6, 31}  # with grad_accum 2, 5 and 6 are one optimizer step
    poison(monkeypatch, lambda n, batch: n in calls, how)
    model, processor = load_model(str(tiny_model_dir))
    data = _data(tone_data, processor)
    cfg = train_config(lr=3e-3, max_steps=60 // grad_accum, eval_every=20 // grad_accum, batch_seconds=8,
                       grad_accum=grad_accum, max_grad_norm=max_grad_norm, freeze_feature_encoder=False,
                       precision="fp32")
    result = train(model, processor, data, tmp_path, cfg, progress=False)
    skipped = sorted({(n - 1) // grad_accum + 1 for n in calls})
    assert result.skipped_steps == len(skipped) and result.first_skipped["step"] == skipped[0]
    assert result.first_skipped["ids"] and set(result.first_skipped["ids"]) <= {u.id for u in data.utts}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    losses = [h["train_loss"] for h in result.history]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.7 * losses[0], losses
    assert skipped_warning(result.skipped_steps, result.steps, result.first_skipped).startswith(
        f"{len(skipped)} of {result.steps} steps skipped: non-finite loss/gradients (the first at step {skipped[0]}: ")


def test_resume_with_skipped_steps_gives_the_same_weights(tone_data, tiny_model_dir, tmp_path, monkeypatch):
    """The skips follow the data (a batch holding one utterance), so the straight and the resumed run skip alike."""
    model, processor = load_model(str(tiny_model_dir))
    data = _data(tone_data, processor)
    poison(monkeypatch, lambda n, batch: data.utts[0].id in batch["ids"], "grad")
    cfg = train_config(lr=1e-3, max_steps=12, eval_every=4, batch_seconds=3, seed=3, precision="fp32",
                       freeze_feature_encoder=False)

    class Interrupt(Exception):
        pass

    def run(out, on_step=None, resume=False):
        m, p = load_model(str(tiny_model_dir))
        return m, train(m, p, data, out, cfg, resume=resume, on_step=on_step, progress=False)

    reference, straight = run(tmp_path / "straight")
    assert straight.skipped_steps >= 2  # one per epoch at least, in the first and the second half

    def interrupt_at_6(state):
        if state.step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "interrupted", on_step=interrupt_at_6)
    resumed, again = run(tmp_path / "interrupted", resume=True)
    assert (again.skipped_steps, again.first_skipped) == (straight.skipped_steps, straight.first_skipped)
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def _adapt(tone_data, tiny_model_dir, out, max_steps: int) -> int:
    return main(["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]),
                 "--test", str(tone_data["test"]), "--out", str(out), "--max-steps", str(max_steps),
                 "--eval-every", "100", "--batch-seconds", "4", "--lr", "1e-3", "--precision", "fp32", "--quiet"])


def test_a_run_with_skipped_steps_reports_them(tone_data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    poison(monkeypatch, lambda n, batch: n in (2, 4), "grad")
    assert _adapt(tone_data, tiny_model_dir, tmp_path / "run", 6) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train"]["skipped_steps"] == 2 and results["train"]["first_skipped"]["step"] == 2
    assert any(w.startswith("2 of 6 steps skipped: non-finite loss/gradients") for w in results["warnings"])
    assert "2 of 6 steps skipped" in capsys.readouterr().err


def test_too_many_skipped_steps_in_a_row_stop_with_a_one_line_error(tone_data, tiny_model_dir, tmp_path,
                                                                    monkeypatch, capsys):
    poison(monkeypatch, lambda n, batch: n >= 3, "loss")
    assert _adapt(tone_data, tiny_model_dir, tmp_path / "run", MAX_SKIPPED_IN_A_ROW + 10) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if "error:" in line]
    assert line.startswith(f"speechtl adapt: error: training stopped at step {MAX_SKIPPED_IN_A_ROW + 2}: ")
    assert "--precision fp32" in line and "--lr" in line and "tone-1-" in line  # the causes, the batch's utterances
    assert not (tmp_path / "run" / "results.json").exists()


def test_ctc_ignores_a_row_too_short_for_its_labels_without_going_non_finite():
    """A sped-up utterance can end with fewer frames than its labels need: CTC cannot align it (infinite loss);
    the objective's ``zero_infinity`` makes that row's loss and gradient 0 and leaves the other rows alone."""
    from speechtl.adapt.losses import ctc_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 20, 6, requires_grad=True)
    labels = (torch.arange(30).reshape(2, 15) % 5 + 1)  # no equal neighbours: 15 frames suffice
    loss = ctc_loss(logits, torch.tensor([20, 8]), labels, torch.tensor([15, 15]), blank=0)  # row 1: 8 frames < 15
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(logits.grad).all()
    assert logits.grad[1].abs().max() == 0 and logits.grad[0].abs().max() > 0
