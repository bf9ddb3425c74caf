"""``wrim train`` with one fault injected at a controlled point (run as a script by ``test_faults.py``).

Usage: ``python _fault_driver.py POINT NTH SIGNAL wrim-train-args...``: at the NTH time the program reaches POINT,
it sends itself SIGNAL (``SIGKILL`` or ``SIGINT``) by pid. Points: ``step`` (a training step), ``weights`` (the
weights file of a checkpoint set is written, the rest is not), ``manifest`` (the set is complete but not yet
renamed), ``publish`` (the set is renamed, ``last.json`` not yet replaced) and ``eval`` (``last`` is published, the
epoch's evaluation starts).
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.engine._tiny import wrimnet_test_tiny  # noqa: E402
from wrim.cli import main  # noqa: E402
from wrim.engine import checkpoint, step, trainer  # noqa: E402
from wrim.models import register_model  # noqa: E402

register_model(wrimnet_test_tiny)
point, nth, sig, args = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3]), sys.argv[4:]
calls = {"n": 0}


def hit() -> None:
    calls["n"] += 1
    if calls["n"] == nth:
        os.kill(os.getpid(), sig)


write_file, publish, evaluate, losses = (
    checkpoint._write_file, trainer.publish_checkpoint, trainer.Trainer.evaluate, step.TrainStep.compute_losses
)  # fmt: skip


def faulty_write(path, write):
    write_file(path, write)
    if path.name == {"weights": "model.safetensors", "manifest": "manifest.json"}.get(point):
        hit()


def faulty_publish(directory, tag, set_dir, **info):
    if point == "publish" and tag == "last":
        hit()
    publish(directory, tag, set_dir, **info)


def faulty_evaluate(self, trials):
    if point == "eval":
        hit()
    return evaluate(self, trials)


def faulty_losses(self, *a):
    if point == "step":
        hit()
    return losses(self, *a)


checkpoint._write_file = faulty_write
trainer.publish_checkpoint = faulty_publish
trainer.Trainer.evaluate = faulty_evaluate
step.TrainStep.compute_losses = faulty_losses
sys.exit(main(["train", *args]))
