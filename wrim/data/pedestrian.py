"""The parametric pedestrian renderer behind [`SyntheticVIReID`][wrim.data.SyntheticVIReID].

`sample_identity()` draws a person (body shape, hair, garments with their colours, patterns and near-infrared
materials, accessories), `sample_camera()` a camera (viewpoints, scale, background, illumination, blur, noise) and
`render()` one image of a person seen by a camera: (H, W, 3) RGB for the visible cameras (1, 2, 4, 5), (H, W, 1) for
the infrared ones (3, 6). Everything is drawn from the numpy generators it is given, in a fixed order, so the same
generators give the same pixels. ``wrim.data.synthetic`` writes the set.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INFRARED_CAMS", "VISIBLE_CAMS", "render", "sample_camera", "sample_identity"]

VISIBLE_CAMS = (1, 2, 4, 5)
INFRARED_CAMS = (3, 6)
#: Horizontal stretch of the body: re-id crops (about 1:2.5) are resized to 1:2, so people look wider.
_STRETCH = 1.7


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


def sample_identity(rng: np.random.Generator, ir_weight: float) -> dict:
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


def sample_camera(rng: np.random.Generator, cam: int) -> dict:
    outdoor = cam in (4, 5, 6)
    views = {1: (0.6, 0.2, 0.2), 2: (0.2, 0.2, 0.6), 3: (0.4, 0.4, 0.2), 4: (0.3, 0.5, 0.2), 5: (0.3, 0.3, 0.4)}
    return {
        "infrared": cam in INFRARED_CAMS,
        "views": views.get(cam, (0.34, 0.33, 0.33)),
        "scale": rng.uniform(0.8, 0.88) if outdoor else rng.uniform(0.88, 0.96),
        "gain": rng.uniform(0.85, 1.15),
        "tint": rng.uniform(0.9, 1.1, size=3).astype(np.float32),
        "wall": 0.5 * _colour(rng) + 0.2,  # muted backgrounds: the person, not the scene, carries identity
        "floor": 0.5 * _colour(rng) + 0.2,
        "horizon": rng.uniform(0.45, 0.8),
        "bg_ir": rng.uniform(0.08, 0.3),
        "blur": rng.uniform(0.3, 1.0),  # Gaussian sigma in pixels of a 128-pixel-high image
        "noise": rng.uniform(0.01, 0.02) + (0.015 if cam in INFRARED_CAMS else 0.0),
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


def render(person: dict, cam: dict, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
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
