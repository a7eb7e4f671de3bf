"""The training loop learns (overfit test) and resumes exactly (resume test)."""

from __future__ import annotations

import pytest
import torch

from speechtl.adapt.run import labels_for
from speechtl.adapt.train import CHECKPOINT, TrainConfig, train
from speechtl.data.dataset import load_utterance_audio
from speechtl.data.manifest import read_manifest
from speechtl.eval import evaluate
from speechtl.models import load_model


def _train_set(tone_data):
    utts, audio, _ = load_utterance_audio(read_manifest(tone_data["train"]))
    return utts, audio


def test_overfit_drives_loss_down_and_transcripts_to_target(tone_data, tiny_model_dir, tmp_path):
    model, processor = load_model(str(tiny_model_dir))
    utts, audio = _train_set(tone_data)
    before = evaluate(model, processor, utts, audio=audio)
    cfg = TrainConfig(lr=3e-3, max_steps=300, eval_every=100, batch_seconds=8, warmup_ratio=0.1,
                      freeze_feature_encoder=False, seed=0)
    result = train(model, processor, utts, labels_for(utts, processor.tokenizer), tmp_path, cfg,
                   train_audio=audio, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.2 * losses[0], losses
    after = evaluate(model, processor, utts, audio=audio)
    assert before.wer > 0.5
    assert after.wer == 0.0, after.rows
    assert result.steps == 300 and result.trainable_params > 0


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("precision,augment", [("fp32", False), ("bf16", True)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tone_data, tiny_model_dir, tmp_path, precision,
                                                               augment):
    utts, audio = _train_set(tone_data)
    # batch_seconds small enough for several batches per epoch, so resuming mid-epoch is exercised
    cfg = TrainConfig(lr=1e-3, max_steps=12, eval_every=4, batch_seconds=3, freeze_feature_encoder=False,
                      precision=precision, seed=3, **(dict(speed_perturb=[0.9, 1.0, 1.1], noise_snr_db=10,
                                                           mask_time_prob=0.05) if augment else {}))

    def run(out, on_step=None, resume=False):
        model, processor = load_model(str(tiny_model_dir))
        train(model, processor, utts, labels_for(utts, processor.tokenizer), out, cfg, train_audio=audio,
              resume=resume, on_step=on_step, progress=False)
        return model

    reference = run(tmp_path / "straight")

    def interrupt_at_6(state):
        if state.step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "interrupted", on_step=interrupt_at_6)
    assert (tmp_path / "interrupted" / CHECKPOINT / "trainer_state.json").is_file()
    resumed = run(tmp_path / "interrupted", resume=True)

    ref, res = reference.state_dict(), resumed.state_dict()
    assert ref.keys() == res.keys()
    for k in ref:
        assert torch.equal(ref[k], res[k]), k
    # and training did change the weights (the comparison is not vacuous)
    start, _ = load_model(str(tiny_model_dir))
    assert not torch.equal(start.state_dict()["lm_head.weight"], ref["lm_head.weight"])


def test_save_model_moves_files_in_readable_and_leaves_no_temporary_folder(tiny_model_dir, tmp_path):
    import os
    import stat

    from speechtl.adapt.run import save_model
    from speechtl.fileio import _UMASK

    model, processor = load_model(str(tiny_model_dir))
    out = tmp_path / "run"
    save_model(model, processor, out)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # the temporary folder is gone
    mode = stat.S_IMODE(os.stat(out / "model.safetensors").st_mode)
    assert mode == 0o666 & ~_UMASK  # not safetensors' 0600
    again, _ = load_model(str(out))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
