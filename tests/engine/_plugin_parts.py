"""A user's plugin, as ``wrim train --import tests/engine/_plugin_parts.py`` loads it: the ResNet-18 + four MIIMs
of ``_user_network.py`` registered as model ``resnet18_miim`` (its entrypoint has exactly the documented signature),
a small synthetic set registered as dataset ``tiny_synth``, and the same set read by a reader written without
``default_trials``, ``tiny_no_trials``. Importing it registers them (tests import it in a subprocess, or through
the ``plugin`` fixture of test_parts.py, which restores the registries)."""

import sys
from pathlib import Path

import wrim
from wrim.data import SyntheticVIReID, TestSplit, VIReIDDataset, register_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.engine
from tests.engine._user_network import ResNetMIIM  # noqa: E402


@wrim.register_model
def resnet18_miim(pretrained: bool = False, num_classes: int = 0, img_size: tuple[int, int] = (64, 32)) -> ResNetMIIM:
    """The engine's keyword arguments: ``pretrained`` and ``img_size`` are not used by this model."""
    return ResNetMIIM(num_classes)


@register_dataset("tiny_synth")
def tiny_synth(root: str | None = None, seed: int = 0) -> SyntheticVIReID:
    """8 training identities, 4 test identities, 2 images per camera."""
    return SyntheticVIReID(root, num_ids=8, num_test_ids=4, images_per_camera=2, seed=seed)


@register_dataset("tiny_no_trials")
class TinyNoTrials(VIReIDDataset):
    """``tiny_synth`` read by a reader that declares no ``default_trials``."""

    name = "tiny_no_trials"

    def __init__(self, root: str | None = None) -> None:
        self.source = tiny_synth(root)
        super().__init__(self.source.root)
        self.train = self.source.train

    def test_split(self, trial: int | None = 0) -> TestSplit:
        return self.source.test_split(trial)
