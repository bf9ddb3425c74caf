"""Tiny synthetic runs for engine tests: 16 identities, 64x32 images, batches of 16, one gallery trial; and the
smaller fault-injection run (8 identities, a 0.5 M-parameter model)."""

from pathlib import Path

from wrim.models import WRIMNet

TINY = [
    "data.dataset_kwargs={num_ids: 16, num_test_ids: 8, images_per_camera: 2}",
    "data.img_size=[64,32]",
    "data.num_ids=4",
    "data.num_instances=2",
    "eval.trials=[0]",
    "eval.final_trials=[0]",
    "eval.batch_size=64",
    "eval.ranklist=false",
    "progress=false",
]


# `wrim eval --dataset synthetic` arguments that rebuild the tiny run's synthetic set
DATASET_ARGS = [
    *("--dataset-arg", "num_ids=16"),
    *("--dataset-arg", "num_test_ids=8"),
    *("--dataset-arg", "images_per_camera=2"),
]


def tiny_overrides(output_dir: Path, run_name: str, *extra: str) -> list[str]:
    """Overrides of the synthetic config for a run of a few seconds in ``output_dir/run_name``."""
    return [*TINY, f"output_dir={output_dir}", f"run_name={run_name}", *extra]


def wrimnet_test_tiny(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on timm's ``test_resnet`` (0.5 M parameters): a training step in a fraction of a second."""
    return WRIMNet(backbone="test_resnet", pretrained=pretrained, **kwargs)


FAULT = [
    "data.dataset_kwargs={num_ids: 8, num_test_ids: 4, images_per_camera: 2}",
    "data.img_size=[64,32]",
    "data.num_ids=4",
    "data.num_instances=2",
    "data.num_workers=0",
    "model.name=wrimnet_test_tiny",
    "epochs=2",
    "eval.every=1",
    "eval.trials=[0]",
    "eval.final_trials=[0]",
    "eval.batch_size=64",
    "eval.ranklist=false",
    "progress=false",
]
