"""Progress bars only where a person watches: ``progress=auto`` (the default) draws none into a redirected log."""

import subprocess
import sys

from tests.engine._tiny import TINY
from wrim.cli import main
from wrim.engine.logger import show_progress

# the tiny run with the progress setting left at its default
TINY_DEFAULT_PROGRESS = [o for o in TINY if not o.startswith("progress=")]


def _train_args(tmp_path, run_name, *extra):
    return [
        "train", "--config", "synthetic", *TINY_DEFAULT_PROGRESS, f"output_dir={tmp_path}", f"run_name={run_name}",
        "epochs=1", "data.num_workers=0", *extra,
    ]  # fmt: skip


def test_redirected_train_writes_lines_not_bar_frames(tmp_path):
    log_file = tmp_path / "out.log"
    with log_file.open("w") as out:  # stdout and stderr both redirected to a file, as `wrim train > log 2>&1`
        result = subprocess.run(
            [sys.executable, "-m", "wrim", *_train_args(tmp_path, "auto")], stdout=out, stderr=subprocess.STDOUT
        )
    text = log_file.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text, "bar frames in a redirected log"
    assert "epoch 1/1:" in text and "R1" in text and "final (" in text


def test_progress_true_forces_bars(tmp_path, capsys):
    assert main(_train_args(tmp_path, "forced", "progress=true")) == 0
    assert "\r" in capsys.readouterr().err


def test_show_progress_settings(monkeypatch):
    assert show_progress(True) and not show_progress(False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert show_progress("auto")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not show_progress("auto")


def test_progress_rejects_other_values(tmp_path, capsys):
    assert main(_train_args(tmp_path, "bad", "progress=sometimes")) == 2
    assert "progress must be true, false or auto" in capsys.readouterr().err
