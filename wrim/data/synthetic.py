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
from wrim.data.sysu import SYSUMM01

__all__ = ["GENERATOR_VERSION", "SyntheticVIReID", "default_cache_dir", "generate"]

#: Bump when the renderer changes, so that cached sets are regenerated.
GENERATOR_VERSION = 5
_MANIFEST = "manifest.json"
_RGB_CAMS = (1, 2, 4, 5)
_IR_CAMS = (3, 6)
_JPEG_QUALITY = 92
#: Horizontal stretch of the body: re-id crops (about 1:2.5) are resized to 1:2, so people look wider.
_STRETCH = 1.7


def default_cache_dir() -> Path:
    """``$WRIM_CACHE/synthetic`` if ``WRIM_CACHE`` is set, else ``~/.cache/wrim/synthetic``."""
    base = os.environ.get("WRIM_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "wrim") / "synthetic"


# ---------------------------------------------------------------------------------------------- sampling helpers


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:  # greys, black, white
        return np.full(3, rng.uniform(0.08, 0.92), dtype=np.float32)
    return _hsv_to_rgb(rng.random(), rng.uniform(0.35, 0.95), rng.uniform(0.25, 0.95))


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _garment(rng: np.random.Generator, ir_weight: float) -> dict:
    c1, c2 = _colour(rng), _colour(rng)
    m1 = rng.uniform(0.1, 0.95)
    m2 = float(np.clip(m1 + rng.choice([-1, 1]) * rng.uniform(0.15, 0.5), 0.05, 1.0))
    return {
        "c1": c1,
        "c2": c2,
        "ir1": ir_weight * m1 + (1 - ir_weight) * _luma(c1),
        "ir2": ir_weight * m2 + (1 - ir_weight) * _luma(c2),
        "pattern": int(rng.integers(0, 6)),  # solid, h-stripes, v-stripes, check, dots, two-tone
        "freq": rng.uniform(6.0, 12.0),
        "phase": rng.uniform(0, 1),
        "split": rng.uniform(0.3, 0.7),
    }


def _sample_identity(rng: np.random.Generator, ir_weight: float) -> dict:
    build = rng.uniform(0.85, 1.2)
    skin = _hsv_to_rgb(rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    hair = _hsv_to_rgb(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.6))
    acc = {}
    for name, prob in (("backpack", 0.3), ("bag", 0.25), ("hat", 0.2)):
        if rng.random() < prob:
            acc[name] = _garment(rng, ir_weight)
            acc[name]["pattern"] = 0
            acc[name]["side"] = float(rng.choice([-1.0, 1.0]))
    return {
        "head_r": rng.uniform(0.052, 0.068),
        "shoulder": rng.uniform(0.09, 0.125) * build,
        "waist": rng.uniform(0.07, 0.1) * build,
        "hip": rng.uniform(0.46, 0.54),
        "leg_w": rng.uniform(0.032, 0.048) * build,
        "arm_w": rng.uniform(0.026, 0.036) * build,
        "stature": rng.uniform(0.82, 1.0),
        "skin": skin,
        "skin_ir": rng.uniform(0.8, 0.95),
        "hair": hair,
        "hair_ir": ir_weight * rng.uniform(0.05, 0.35) + (1 - ir_weight) * _luma(hair),
        "long_hair": bool(rng.random() < 0.35),
        "sleeve": float(rng.choice([0.27, 0.47])),  # short or long sleeves (end, in body heights)
        "upper": _garment(rng, ir_weight),
        "lower": _garment(rng, ir_weight),
        "lower_type": int(rng.choice([0, 0, 1, 2])),  # trousers, shorts, skirt
        "shoes": _garment(rng, ir_weight),
        "acc": acc,
    }


def _sample_camera(rng: np.random.Generator, cam: int) -> dict:
    outdoor = cam in (4, 5, 6)
    views = {1: (0.6, 0.2, 0.2), 2: (0.2, 0.2, 0.6), 3: (0.4, 0.4, 0.2), 4: (0.3, 0.5, 0.2), 5: (0.3, 0.3, 0.4)}
    return {
        "infrared": cam in _IR_CAMS,
        "views": views.get(cam, (0.34, 0.33, 0.33)),
        "scale": rng.uniform(0.8, 0.88) if outdoor else rng.uniform(0.88, 0.96),
        "gain": rng.uniform(0.85, 1.15),
        "tint": rng.uniform(0.9, 1.1, size=3).astype(np.float32),
        "wall": 0.5 * _colour(rng) + 0.2,  # muted backgrounds: the person, not the scene, carries identity
        "floor": 0.5 * _colour(rng) + 0.2,
        "horizon": rng.uniform(0.45, 0.8),
        "bg_ir": rng.uniform(0.08, 0.3),
        "blur": rng.uniform(0.3, 1.0),  # Gaussian sigma in pixels of a 128-pixel-high image
        "noise": rng.uniform(0.01, 0.02) + (0.015 if cam in _IR_CAMS else 0.0),
    }


# ---------------------------------------------------------------------------------------------- rendering


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding. img: (H, W, C) -> (H, W, C)."""
    if sigma < 0.25:
        return img
    radius = max(1, int(round(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    height, width = img.shape[:2]
    padded = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    img = sum(w * padded[k : k + height] for k, w in enumerate(taps))
    padded = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(w * padded[:, k : k + width] for k, w in enumerate(taps))


class _Canvas:
    """Paints soft-edged body parts, given in body coordinates, onto an (H, W, C) float image.

    ``u`` (horizontal, body heights from the body axis) is a function of the column only and ``v`` (vertical, 0 at
    the top of the head, 1 at the feet) of the row only, so each part is drawn inside its bounding window.
    """

    def __init__(self, background: np.ndarray, u: np.ndarray, v: np.ndarray, px: float, infrared: bool) -> None:
        self.img, self.u, self.v, self.px, self.infrared = background, u, v, px, infrared  # u: (W,), v: (H,)

    def _window(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice] | None:
        m = 2 * self.px
        cols = np.nonzero((self.u >= u0 - m) & (self.u <= u1 + m))[0]
        rows = np.nonzero((self.v >= v0 - m) & (self.v <= v1 + m))[0]
        if cols.size == 0 or rows.size == 0:
            return None
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)

    def _alpha(self, dist: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - dist / self.px, 0.0, 1.0)[..., None]  # (h, w) -> (h, w, 1)

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple | None:
        win = self._window(u0, u1, v0, v1)
        if win is None:
            return None
        u, v = self.u[None, win[1]], self.v[win[0], None]  # (1, w), (h, 1)
        return win, self._alpha(np.maximum(np.maximum(u0 - u, u - u1), np.maximum(v0 - v, v - v1)))

    def trapezoid(self, w0: float, w1: float, v0: float, v1: float) -> tuple | None:
        win = self._window(-max(w0, w1), max(w0, w1), v0, v1)
        if win is None:
            return None
        u, v = self.u[None, win[1]], self.v[win[0], None]
        half = w0 + (w1 - w0) * np.clip((v - v0) / (v1 - v0), 0, 1)
        return win, self._alpha(np.maximum(np.abs(u) - half, np.maximum(v0 - v, v - v1)))

    def ellipse(self, cv: float, ru: float, rv: float, v_max: float = np.inf) -> tuple | None:
        win = self._window(-ru, ru, cv - rv, min(cv + rv, v_max))
        if win is None:
            return None
        u, v = self.u[None, win[1]], self.v[win[0], None]
        r = np.sqrt((u / ru) ** 2 + ((v - cv) / rv) ** 2)
        return win, self._alpha(np.maximum((r - 1.0) * min(ru, rv), v - v_max))

    def fill(self, part: tuple | None, garment: dict) -> None:
        """Composite a garment (colour pattern in RGB, material pattern in IR) through the part's alpha."""
        if part is None:
            return
        (rows, cols), alpha = part
        u, v, f, ph = self.u[None, cols], self.v[rows, None], garment["freq"], garment["phase"]
        kind = garment["pattern"]
        if kind == 1:
            p = np.sin(2 * np.pi * (f * v + ph)) > 0
        elif kind == 2:
            p = np.sin(2 * np.pi * (f * u + ph)) > 0
        elif kind == 3:
            p = np.sin(2 * np.pi * (f * u + ph)) * np.sin(2 * np.pi * (f * v + ph)) > 0
        elif kind == 4:
            p = (np.mod(f * u + ph, 1) - 0.5) ** 2 + (np.mod(f * v + ph, 1) - 0.5) ** 2 < 0.07
        elif kind == 5:
            p = v > garment["split"]
        else:
            p = np.zeros((1, 1), dtype=bool)
        p = np.broadcast_to(p, alpha.shape[:2]).astype(np.float32)[..., None]  # (h, w, 1)
        if self.infrared:
            value = garment["ir1"] * (1 - p) + garment["ir2"] * p
        else:
            value = garment["c1"] * (1 - p) + garment["c2"] * p
        window = self.img[rows, cols]
        self.img[rows, cols] = window * (1 - alpha) + value * alpha

    def paint(self, part: tuple | None, rgb: np.ndarray, ir: float) -> None:
        """Composite a flat colour (RGB) or intensity (IR) through the part's alpha."""
        if part is None:
            return
        (rows, cols), alpha = part
        value = np.float32(ir) if self.infrared else rgb
        window = self.img[rows, cols]
        self.img[rows, cols] = window * (1 - alpha) + value * alpha


def _render(person: dict, cam: dict, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Render one image of ``person`` seen by camera ``cam``: (H, W, 3) RGB or (H, W, 1) IR, floats in 0..1.

    The steps draw from ``rng`` in a fixed order (pose, background, stride, exposure): the images depend on it.
    """
    ys = np.arange(height, dtype=np.float32) + 0.5  # (H,)
    xs = np.arange(width, dtype=np.float32) + 0.5  # (W,)
    view, h_px, u, v = _pose(person, cam, rng, height, width, xs, ys)
    canvas = _Canvas(_background(cam, rng, height, width), u, v, px=1.2 / h_px, infrared=cam["infrared"])
    stride = rng.uniform(-0.02, 0.02)
    backpack = person["acc"].get("backpack")
    if backpack is not None and view != 1:  # seen behind the body
        neck = 2 * person["head_r"] + 0.01
        sh = person["shoulder"]
        canvas.fill(canvas.box(-sh - 0.015, sh + 0.015, neck + 0.03, person["hip"] - 0.06), backpack)
    _draw_legs(canvas, person, stride)
    _draw_torso(canvas, person, view)
    _draw_head(canvas, person, view)
    return _expose(canvas.img, cam, rng, xs, ys)


def _pose(
    person: dict, cam: dict, rng: np.random.Generator, height: int, width: int, xs: np.ndarray, ys: np.ndarray
) -> tuple[int, float, np.ndarray, np.ndarray]:
    """The view (0 front, 1 back, 2 side), the body height in pixels and the body coordinates ``u`` (W,), ``v`` (H,)
    of the pixel centres."""
    view = int(rng.choice(3, p=cam["views"]))  # 0 front, 1 back, 2 side
    h_px = height * cam["scale"] * person["stature"] * rng.uniform(0.95, 1.05)
    top = (height - h_px) * rng.uniform(0.3, 0.7)
    cx = width / 2 + rng.uniform(-0.06, 0.06) * width
    squeeze = rng.uniform(0.7, 0.8) if view == 2 else rng.uniform(0.95, 1.05)
    v = (ys - top) / h_px
    u = (xs - cx) / (h_px * squeeze * _STRETCH)
    if view == 2 and rng.random() < 0.5:
        u = -u
    return view, h_px, u, v


def _background(cam: dict, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The scene behind the person, (H, W, C): a wall / floor split and up to two clutter boxes."""
    infrared = cam["infrared"]
    ch = 1 if infrared else 3
    horizon = cam["horizon"] + rng.uniform(-0.05, 0.05)
    if infrared:
        wall_c = np.full(1, cam["bg_ir"] + rng.uniform(-0.05, 0.05), dtype=np.float32)
        floor_c = wall_c * 0.8
    else:
        wall_c = (cam["wall"] * rng.uniform(0.85, 1.15)).astype(np.float32)
        floor_c = (cam["floor"] * rng.uniform(0.85, 1.15)).astype(np.float32)
    bg = np.empty((height, width, ch), np.float32)
    split = int(np.clip(round(horizon * height), 0, height))
    bg[:split], bg[split:] = wall_c, floor_c
    for _ in range(int(rng.integers(0, 3))):
        y0, x0 = rng.uniform(0, height), rng.uniform(-width / 2, width)
        y1, x1 = y0 + rng.uniform(5, height / 2), x0 + rng.uniform(5, width / 2)
        clutter = np.float32(rng.uniform(0.05, 0.45)) if infrared else _colour(rng)
        rows, cols = slice(int(max(y0, 0)), int(max(y1, 0))), slice(int(max(x0, 0)), int(max(x1, 0)))
        bg[rows, cols] = np.float32(0.75) * bg[rows, cols] + np.float32(0.25) * clutter
    return bg


def _draw_legs(canvas: _Canvas, p: dict, stride: float) -> None:
    """Legs: skin, then the lower garment (trousers, shorts or skirt), then shoes."""
    wa, hip, lw = p["waist"], p["hip"], p["leg_w"]
    foot = 0.955
    legs = [(-lw - 0.012 + stride, -0.012 + stride), (0.012 - stride, lw + 0.012 - stride)]
    for u0, u1 in legs:
        canvas.paint(canvas.box(u0, u1, hip, foot), p["skin"], p["skin_ir"])
    lower = p["lower"]
    if p["lower_type"] == 0:
        for u0, u1 in legs:
            canvas.fill(canvas.box(u0, u1, hip - 0.02, foot - 0.02), lower)
        canvas.fill(canvas.box(-wa, wa, hip - 0.02, hip + 0.06), lower)
    elif p["lower_type"] == 1:
        for u0, u1 in legs:
            canvas.fill(canvas.box(u0 - 0.006, u1 + 0.006, hip - 0.02, hip + 0.17), lower)
        canvas.fill(canvas.box(-wa, wa, hip - 0.02, hip + 0.06), lower)
    else:
        canvas.fill(canvas.trapezoid(wa, wa + 0.06, hip - 0.02, hip + 0.22), lower)
    for u0, u1 in legs:
        canvas.fill(canvas.box(u0 - 0.006, u1 + 0.01, foot - 0.025, foot + 0.02), p["shoes"])


def _draw_torso(canvas: _Canvas, p: dict, view: int) -> None:
    """Arms (skin, sleeves), neck and torso, then a backpack seen from the back (or its straps) and a bag."""
    sh, wa, hip, aw = p["shoulder"], p["waist"], p["hip"], p["arm_w"]
    neck = 2 * p["head_r"] + 0.01
    for side in (-1.0, 1.0):
        a0, a1 = (sh, sh + aw) if side > 0 else (-sh - aw, -sh)
        canvas.paint(canvas.box(a0, a1, neck + 0.02, hip + 0.01), p["skin"], p["skin_ir"])
        canvas.fill(canvas.box(a0 - 0.004, a1 + 0.004, neck + 0.015, p["sleeve"]), p["upper"])
    canvas.paint(canvas.box(-0.022, 0.022, neck - 0.02, neck + 0.03), p["skin"], p["skin_ir"])
    canvas.fill(canvas.trapezoid(sh, wa, neck + 0.012, hip + 0.01), p["upper"])
    backpack = p["acc"].get("backpack")
    if backpack is not None and view == 1:
        canvas.fill(canvas.box(-sh * 0.8, sh * 0.8, neck + 0.04, hip - 0.08), backpack)
    elif backpack is not None and view == 0:  # straps
        for s in (-1, 1):
            canvas.fill(canvas.box(s * sh * 0.55 - 0.01, s * sh * 0.55 + 0.01, neck + 0.012, neck + 0.16), backpack)
    bag = p["acc"].get("bag")
    if bag is not None:
        s = bag["side"] * (1 if view != 1 else -1)
        canvas.fill(canvas.box(s * sh - 0.05, s * sh + 0.05, hip - 0.07, hip + 0.05), bag)


def _draw_head(canvas: _Canvas, p: dict, view: int) -> None:
    """Head: hair behind (long hair), face (or the back of the head), hair cap, hat."""
    hr = p["head_r"]
    ru = hr * 0.8
    if p["long_hair"]:
        canvas.paint(canvas.box(-ru * 1.1, ru * 1.1, hr, hr + 0.14), p["hair"], p["hair_ir"])
    if view == 1:
        canvas.paint(canvas.ellipse(hr + 0.005, ru, hr), p["hair"], p["hair_ir"])
    else:
        canvas.paint(canvas.ellipse(hr + 0.005, ru, hr), p["skin"], p["skin_ir"])
        canvas.paint(canvas.ellipse(hr + 0.005, ru, hr, v_max=hr * 0.75), p["hair"], p["hair_ir"])
    hat = p["acc"].get("hat")
    if hat is not None:
        canvas.fill(canvas.box(-ru * 1.15, ru * 1.15, -0.01, hr * 0.6), hat)


def _expose(img: np.ndarray, cam: dict, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The camera's exposure of the painted scene (H, W, C): illumination, tint (RGB) or vignette (IR), blur, noise."""
    height, width = len(ys), len(xs)
    xr, yr = xs / width - 0.5, ys / height - 0.5
    shade = 1 + rng.uniform(-0.25, 0.25) * xr[None, :] + rng.uniform(-0.2, 0.2) * yr[:, None]  # (H, W)
    gain = cam["gain"] * rng.uniform(0.9, 1.1)
    if cam["infrared"]:
        vignette = 1 - 0.9 * (xr[None, :] ** 2 + 0.5 * yr[:, None] ** 2)
        img = img * (gain * shade * vignette)[..., None]
    else:
        img = img * (gain * shade)[..., None] * (cam["tint"] * rng.uniform(0.96, 1.04, size=3)).astype(np.float32)
    img = _blur(img.astype(np.float32), cam["blur"] * rng.uniform(0.7, 1.4) * height / 128)
    img = img + np.float32(cam["noise"]) * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 1)


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
    cams = {cam: _sample_camera(np.random.default_rng([seed, 1, cam]), cam) for cam in (*_RGB_CAMS, *_IR_CAMS)}
    count = 0
    for pid in range(1, total + 1):
        id_rng = np.random.default_rng([seed, 2, pid])
        person = _sample_identity(id_rng, ir_material_weight)
        # each identity is seen by ~80 % of the cameras, always by at least one visible and one infrared camera
        seen = {cam for cam in cams if id_rng.random() < 0.8}
        seen.add(int(id_rng.choice(_RGB_CAMS)))
        seen.add(int(id_rng.choice(_IR_CAMS)))
        for cam in sorted(seen):
            n = 1 + int(id_rng.binomial(2 * (images_per_camera - 1), 0.5)) if images_per_camera > 1 else 1
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for k in range(n):
                img = _render(person, cams[cam], np.random.default_rng([seed, 3, pid, cam, k]), height, width)
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
