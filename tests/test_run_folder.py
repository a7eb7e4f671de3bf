"""A run folder never lies: a final save killed midway is refused by every loader until --resume finishes it."""

from __future__ import annotations

import pytest

from speechtl.cli import main
from speechtl.fileio import INCOMPLETE
from speechtl.models import ModelLoadError, load_model

FAST = ["--max-steps", "4", "--eval-every", "2", "--batch-seconds", "4", "--lr", "1e-3", "--quiet"]


class Killed(BaseException):  # like a kill: not an error the CLI would report
    pass


def test_an_interrupted_final_save_is_refused_then_finished_by_resume(tone_data, tiny_model_dir, tmp_path,
                                                                      monkeypatch, capsys):
    import speechtl.adapt.run as run

    args = ["adapt", "--model", str(tiny_model_dir), "--train", str(tone_data["train"]), "--dev",
            str(tone_data["dev"]), "--test", str(tone_data["test"]), "--out", str(tmp_path / "run"), *FAST]

    def die(result):
        raise Killed

    monkeypatch.setattr(run, "render_report", die)  # the weights are written, results.json too, report.md not
    with pytest.raises(Killed):
        main(args)
    out = tmp_path / "run"
    assert (out / INCOMPLETE).is_file() and (out / "model.safetensors").is_file() and (out / "checkpoint").is_dir()
    with pytest.raises(ModelLoadError, match="--resume"):
        load_model(str(out))
    assert main(["evaluate", str(out), str(tone_data["test"])]) == 2
    assert "stopped midway" in capsys.readouterr().err
    monkeypatch.undo()
    assert main([*args, "--resume"]) == 0
    assert not (out / INCOMPLETE).exists() and not (out / "checkpoint").exists() and (out / "report.md").is_file()
    load_model(str(out))
