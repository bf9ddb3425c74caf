"""A procedurally rendered VI-ReID set written in SYSU-MM01's native layout (no download needed).

Every identity is a parametric pedestrian: body shape (height, build, shoulder / waist / leg widths, leg length,
head size), hair length and colour, an upper garment (sleeve length, two colours, a pattern: solid, horizontal or
vertical stripes, checks, dots or two-tone, its frequency), a lower garment (trousers, shorts or skirt, with its own
pattern), shoes and accessories (backpack, shoulder bag, hat). Each garment also has a *material*: its near-infrared
reflectance, drawn independently of its colour.

Visible cameras (1, 2, 4, 5) render RGB; infrared cameras (3, 6) render one channel in which colour is gone: a
garment's intensity mixes its material (weight ``ir_material_weight``, 0.2 by default) with its visible luminance,
skin is warm (bright) and the background is cool. Cross-modality matching therefore has to rely on shape, pattern,
garment type, accessories and a partial brightness cue, never on hue. Cameras differ in viewpoint distribution
(front / back / side), person scale and position, background, illumination (gain, tint, shading, infrared
vignetting), blur and noise; each image jitters them.

Written as ``cam<k>/<pid:04d>/<img:04d>.jpg`` (JPEG, fixed quality) plus ``exp/{train,val,test}_id.txt``, then
read by [`SYSUMM01`][wrim.data.SYSUMM01], so the real protocol code runs unchanged on it. Generation is deterministic:
the same arguments give byte-identical files on the same platform (numpy ``SeedSequence`` streams per identity and
per image, JPEG encoding by torchvision.io).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

from wrim._files import umask_mode
from wrim.data._registry import register_dataset
from wrim.data.pedestrian import INFRARED_CAMS, VISIBLE_CAMS, render, sample_camera, sample_identity
from wrim.data.sysu import SYSUMM01

__all__ = ["GENERATOR_VERSION", "SyntheticVIReID", "default_cache_dir", "generate"]

#: Bump when the renderer changes, so that cached sets are regenerated.
GENERATOR_VERSION = 5
_MANIFEST = "manifest.json"
_JPEG_QUALITY = 92


def default_cache_dir() -> Path:
    """``$WRIM_CACHE/synthetic`` if ``WRIM_CACHE`` is set, else ``~/.cache/wrim/synthetic``."""
    base = os.environ.get("WRIM_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "wrim") / "synthetic"


def generate(
    root: Path,
    num_ids: int,
    num_test_ids: int,
    images_per_camera: int,
    img_size: tuple[int, int],
    seed: int,
    ir_material_weight: float,
) -> dict:
    """Write the synthetic set under ``root`` (which must exist) and return its manifest (written last)."""
    height, width = img_size
    total = num_ids + num_test_ids
    rng = np.random.default_rng([seed, 0])
    pids = rng.permutation(np.arange(1, total + 1))
    test_ids = sorted(int(x) for x in pids[:num_test_ids])
    train_all = sorted(int(x) for x in pids[num_test_ids:])
    num_val = num_ids // 5
    val_ids = sorted(int(x) for x in rng.permutation(train_all)[:num_val])
    train_ids = sorted(set(train_all) - set(val_ids))
    cams = {cam: sample_camera(np.random.default_rng([seed, 1, cam]), cam) for cam in (*VISIBLE_CAMS, *INFRARED_CAMS)}
    count = 0
    for pid in range(1, total + 1):
        id_rng = np.random.default_rng([seed, 2, pid])
        person = sample_identity(id_rng, ir_material_weight)
        # each identity is seen by ~80 % of the cameras, always by at least one visible and one infrared camera
        seen = {cam for cam in cams if id_rng.random() < 0.8}
        seen.add(int(id_rng.choice(VISIBLE_CAMS)))
        seen.add(int(id_rng.choice(INFRARED_CAMS)))
        for cam in sorted(seen):
            n = 1 + int(id_rng.binomial(2 * (images_per_camera - 1), 0.5)) if images_per_camera > 1 else 1
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for k in range(n):
                img = render(person, cams[cam], np.random.default_rng([seed, 3, pid, cam, k]), height, width)
                data = torch.from_numpy(np.round(img * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
                (folder / f"{k + 1:04d}.jpg").write_bytes(encode_jpeg(data, quality=_JPEG_QUALITY).numpy().tobytes())
                count += 1
    for cam in cams:
        (root / f"cam{cam}").mkdir(exist_ok=True)
    exp = root / "exp"
    exp.mkdir()
    for name, ids in (("train", train_ids), ("val", val_ids), ("test", test_ids)):
        (exp / f"{name}_id.txt").write_text(",".join(str(i) for i in ids) + "\n")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "num_ids": num_ids,
        "num_test_ids": num_test_ids,
        "images_per_camera": images_per_camera,
        "img_size": [height, width],
        "seed": seed,
        "ir_material_weight": ir_material_weight,
        "num_images": count,
    }
    (root / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


@register_dataset("synthetic")
class SyntheticVIReID(SYSUMM01):
    """Procedurally rendered pedestrians in SYSU-MM01's native layout, read and evaluated as SYSU-MM01.

    The default set (40 train ids, 30 test ids, 6 images per id and camera on average, 64 x 32 images) is 2,205
    JPEG files (4.4 MB), generated in about 3 s of one CPU core. Each identity appears in ~80 % of the six cameras
    (always at least one visible and one infrared one) with ``1 .. 2 * images_per_camera - 1`` images per camera
    (binomial, mean ``images_per_camera``). ``exp/train_id.txt`` / ``exp/val_id.txt`` split the train identities
    80 / 20 (the reader merges them, as for SYSU-MM01); test ids are interleaved with train ids.

    The defaults are sized for a CPU smoke-training run. Measured (IR -> visible, all-search, trial 0) with a
    timm ResNet-18 trained from scratch by cross-entropy (Adam, one-cycle lr 2e-3, batches of 16 ids x 2 x 2
    images, this package's default augmentation, one torch thread): R1 3.9 % / mAP 7.8 % after one epoch (27 steps)
    and R1 24.1 % / mAP 25.0 % after 8 epochs (216 steps, 136 CPU-seconds); a 20-epoch schedule reaches R1 30.9 % /
    mAP 39.3 % (540 steps, 289 CPU-seconds). Chance is about 3 % R1.
    Larger images (e.g. ``img_size=(128, 64)``) cost about 4x more per step; a larger ``ir_material_weight`` widens
    the modality gap (0.5 gave R1 7.2 % after the same 8 epochs).

    Use ``img_size=dataset.img_size`` in the loaders to train at the native resolution.

    With ``root=None`` the set lives in ``$WRIM_CACHE/synthetic/<parameters>`` (default
    ``~/.cache/wrim/synthetic/<parameters>``). A set is generated only when its folder lacks the manifest, which
    is written last: generation happens in a temporary sibling folder that is renamed into place, so concurrent
    processes (e.g. DDP ranks) and interrupted runs never leave a half-written set at ``root``.

    Args:
        root: folder of the set; ``None`` for the cache folder. An existing folder must hold a set generated with
            the same arguments (its ``manifest.json``), or be empty.
        num_ids: number of train identities (``num_classes``).
        num_test_ids: number of test identities (query / gallery).
        images_per_camera: mean number of images per identity and camera.
        img_size: (H, W) of the rendered images.
        seed: generation seed (identities, cameras, images).
        ir_material_weight: how much an infrared garment intensity depends on its material (independent of colour)
            rather than on its visible luminance; ``1.0`` removes every colour cue from the infrared images.
    """

    name = "synthetic"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        num_ids: int = 40,
        num_test_ids: int = 30,
        images_per_camera: int = 6,
        img_size: tuple[int, int] = (64, 32),
        seed: int = 0,
        ir_material_weight: float = 0.2,
    ) -> None:
        if num_ids < 1 or num_test_ids < 1 or images_per_camera < 1:
            raise ValueError(
                f"num_ids, num_test_ids and images_per_camera must be >= 1, got {num_ids}, {num_test_ids}, "
                f"{images_per_camera}"
            )
        height, width = (int(s) for s in img_size)
        if height < 32 or width < 16:
            raise ValueError(f"img_size must be at least (32, 16) (H, W), got {tuple(img_size)}")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        if not 0.0 <= ir_material_weight <= 1.0:
            raise ValueError(f"ir_material_weight must be in [0, 1], got {ir_material_weight}")
        self.img_size = (height, width)
        self.params = {
            "generator_version": GENERATOR_VERSION,
            "num_ids": int(num_ids),
            "num_test_ids": int(num_test_ids),
            "images_per_camera": int(images_per_camera),
            "img_size": [height, width],
            "seed": int(seed),
            "ir_material_weight": float(ir_material_weight),
        }
        if root is None:
            key = (
                f"v{GENERATOR_VERSION}_ids{num_ids}_test{num_test_ids}_n{images_per_camera}_{height}x{width}"
                f"_ir{ir_material_weight:g}_seed{seed}"
            )
            root = default_cache_dir() / key
        root = Path(root).expanduser()
        self._ensure(root)
        super().__init__(root)

    @property
    def version(self) -> str:
        """The renderer's version (``GENERATOR_VERSION``): sets rendered by other versions hold other images."""
        return f"generator {GENERATOR_VERSION}"

    @property
    def split_files(self) -> tuple[Path, ...]:
        """The set's ``manifest.json`` (its generation arguments) and its ``exp/*_id.txt`` id lists."""
        return (self.root / _MANIFEST, *super().split_files)

    def _matches(self, root: Path) -> bool:
        manifest = root / _MANIFEST
        if not manifest.is_file():
            return False
        found = json.loads(manifest.read_text())
        if any(found.get(k) != v for k, v in self.params.items()):
            raise ValueError(
                f"SyntheticVIReID: '{root}' holds a synthetic set generated with different arguments "
                f"({ {k: found.get(k) for k in self.params} }); pass another root, root=None, or delete it."
            )
        return True

    def _ensure(self, root: Path) -> None:
        if self._matches(root):
            return
        if root.exists() and any(root.iterdir()):
            raise ValueError(
                f"SyntheticVIReID: '{root}' exists, is not empty and has no '{_MANIFEST}' (not a complete synthetic "
                "set); delete it or pass another root."
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            generate(tmp, **{k: v for k, v in self.params.items() if k != "generator_version"})
            os.chmod(tmp, umask_mode(0o777))  # mkdtemp's 0700 would hide the set from the group
            try:
                os.replace(tmp, root)  # atomic; replaces an empty folder
            except OSError:
                if not self._matches(root):  # another process may have won the race with the same set
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
