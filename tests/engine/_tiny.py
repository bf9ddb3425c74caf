"""A tiny synthetic run for engine tests: 16 identities, 64x32 images, batches of 16, one gallery trial."""

from pathlib import Path

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


def tiny_overrides(output_dir: Path, run_name: str, *extra: str) -> list[str]:
    """Overrides of the synthetic config for a run of a few seconds in ``output_dir/run_name``."""
    return [*TINY, f"output_dir={output_dir}", f"run_name={run_name}", *extra]
