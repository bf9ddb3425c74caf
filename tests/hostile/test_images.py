"""Image files (``wrim.data.read_image``, which the loaders, ``wrim check-data`` and ``wrim search`` use), hostile.

Properties: a uint8 (3, H, W) tensor of the image's size, or a one-line ``UnreadableImageError`` (a ValueError)
naming the file; no other exception escapes; an image of more pixels than Pillow's limit is refused from its header,
before any pixel is decoded (memory stays bounded); every mode becomes 8-bit RGB or is refused.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.hostile._props import assert_confined, assert_one_line_naming, peak_growth_mb, refusal, watched
from wrim.data import UnreadableImageError, read_image

pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),  # Pillow's own notice below 2x its limit
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data"),  # damaged TIFF headers
]


def _png(width: int, height: int) -> bytes:
    """A valid 8-bit gray PNG of ``width`` x ``height`` black pixels, compressed in memory (a decompression bomb
    for large sizes: 90 M pixels in about 90 kB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, compressor = b"\0" * (width + 1), zlib.compressobj(9)
    rows = [compressor.compress(row * min(500, height - i)) for i in range(0, height, 500)]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = b"".join(rows) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bmp_header(width: int, height: int) -> bytes:
    """A gray BMP that claims ``width`` x ``height`` pixels and holds none."""
    header = bytearray(_encoded(Image.new("L", (1, 1)), "BMP"))
    header[18:26] = struct.pack("<ii", width, height)
    return bytes(header)


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """9500 x 9500 pixels (over Pillow's default limit of 89 478 485) in about 90 kB."""
    return _png(9500, 9500)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, bomb) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with peak_growth_mb() as growth, pytest.raises(UnreadableImageError, match="exceed PIL.Image.MAX_IMAGE_PIXELS"):
        read_image(path)
    assert growth[0] is None or growth[0] < 64, f"peak memory grew by {growth[0]:.0f} MB (decoded: 270 MB)"


def test_a_bomb_through_pil_is_refused_at_pillows_limit(tmp_path) -> None:
    """Between 1x and 2x the limit Pillow itself only warns: wrim refuses from the limit on, whatever the format."""
    path = tmp_path / "bomb.bmp"
    path.write_bytes(_bmp_header(10_000, 9_000))
    with pytest.raises(UnreadableImageError, match="10000x9000 pixels exceed PIL.Image.MAX_IMAGE_PIXELS"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["png", "jpg", "gif", "webp", "bmp", "tiff"])
def test_the_pixel_limit_holds_for_every_format(tmp_path, monkeypatch, fmt) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 - 1)
    path = tmp_path / f"big.{fmt}"
    path.write_bytes(_encoded(Image.new("RGB", (40, 40)), "JPEG" if fmt == "jpg" else fmt.upper()))
    with pytest.raises(UnreadableImageError, match="40x40 pixels exceed PIL.Image.MAX_IMAGE_PIXELS = 1599") as info:
        read_image(path)
    assert_one_line_naming(info.value, path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    assert read_image(path).shape == (3, 40, 40)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("zero.jpg", b"", "the file is empty"),
        ("zero.png", b"", "the file is empty"),
        ("zero.bmp", b"", "the file is empty"),
        ("new\nline.jpg", b"", "the file is empty"),
        ("text.jpg", b"not an image\n", "not an image"),
        ("png_header_only.png", _png(8, 8)[:33], "not an image"),
        ("truncated.png", _png(64, 64)[:-30], "cannot decode image"),
        ("truncated.jpg", None, "cannot decode image"),
        ("truncated.bmp", _encoded(Image.new("RGB", (16, 16)), "BMP")[:80], "cannot decode image"),
        ("claims.bmp", _bmp_header(4000, 4000), "cannot decode image"),
        ("missing.jpg", "missing", "No such file or directory"),
    ],
)
def test_damaged_files_are_one_line_naming_the_file(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    if content is None:
        good = _encoded(Image.new("RGB", (64, 64), (9, 90, 200)), "JPEG")
        content = good[: len(good) // 2]
    if content != "missing":
        path.write_bytes(content)
    with watched() as events, pytest.raises(UnreadableImageError, match=message) as info:
        read_image(path)
    assert_one_line_naming(info.value, path)
    assert_confined(events, tmp_path)


def _png_failing_its_data_check() -> bytes:
    """A 10x12 PNG whose compressed pixel data fails zlib's check (its Adler-32 flipped), every chunk CRC intact:
    torchvision 0.29.1's PNG decoder kills the process on it (libpng: "IDAT: incorrect data check")."""
    pixels = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8))
    raw = bytearray(_encoded(pixels, "PNG"))
    tag = raw.index(b"IDAT")
    end = tag + 4 + struct.unpack(">I", raw[tag - 4 : tag])[0]  # the chunk's data ends here, its CRC follows
    raw[end - 4 : end] = bytes(b ^ 0xFF for b in raw[end - 4 : end])  # the zlib stream's Adler-32
    raw[end : end + 4] = struct.pack(">I", zlib.crc32(raw[tag:end]))
    return bytes(raw)


def test_a_png_failing_its_data_check_is_refused_not_a_crash(tmp_path) -> None:
    """In a child process, so that a decoder that crashes fails this test instead of ending the suite."""
    path = tmp_path / "damaged.png"
    path.write_bytes(_png_failing_its_data_check())
    script = (
        "import sys\nfrom wrim.data import UnreadableImageError, read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept UnreadableImageError as err:\n    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"read_image ended the process with {result.returncode}: {result.stderr[-500:]}"
    assert result.stdout.startswith(f"cannot decode image {str(path)!r}") and result.stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("mode", "fmt", "pixel", "expected"),
    [
        ("1", "PNG", 1, [255, 255, 255]),
        ("L", "PNG", 7, [7, 7, 7]),
        ("LA", "PNG", (7, 0), [7, 7, 7]),
        ("P", "PNG", 3, None),
        ("RGBA", "PNG", (1, 2, 3, 0), [1, 2, 3]),
        ("CMYK", "JPEG", (0, 0, 0, 0), None),
        ("I;16", "PNG", 257 * 100, [100, 100, 100]),
        ("I;16", "TIFF", 257 * 100, [100, 100, 100]),
        ("L", "BMP", 7, [7, 7, 7]),
        ("RGB", "TIFF", (1, 2, 3), [1, 2, 3]),
    ],
)
def test_every_mode_becomes_8_bit_rgb(tmp_path, mode, fmt, pixel, expected) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(_encoded(Image.new(mode, (5, 6), pixel), fmt))
    image = read_image(path)
    assert image.dtype == torch.uint8 and image.shape == (3, 6, 5)
    if expected is not None:
        assert image[:, 0, 0].tolist() == expected


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32_bit_pixels_of_no_fixed_range_are_refused(tmp_path, mode) -> None:
    path = tmp_path / "image.tiff"
    path.write_bytes(_encoded(Image.new(mode, (5, 6), 1000), "TIFF"))
    with pytest.raises(UnreadableImageError, match=f"mode {mode} \\(32-bit pixels of no fixed range\\)") as info:
        read_image(path)
    assert_one_line_naming(info.value, path)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_gives_its_first_frame(tmp_path, fmt) -> None:
    frames = [Image.new("RGB", (8, 6), (200, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 200))]
    path = tmp_path / f"animated.{fmt.lower()}"
    path.write_bytes(_encoded(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True))
    image = read_image(path)
    assert image.shape == (3, 6, 8) and image[0, 0, 0] > 150 and image[2, 0, 0] < 50


# ------------------------------------------------------------------------------------------------ by property

_MODES = {"1": 1, "L": 7, "LA": (7, 9), "P": 5, "RGB": (1, 2, 3), "RGBA": (1, 2, 3, 4), "CMYK": (1, 2, 3, 4),
          "I;16": 300, "I": 5, "F": 0.5}  # fmt: skip
_FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP", "tiff": "TIFF"}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(sorted(_MODES)),
    suffix=st.sampled_from(sorted(_FORMATS)),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
)
@example(mode="I;16", suffix="png", size=(3, 2))
def test_any_mode_and_format_is_rgb_of_its_size_or_refused(tmp_path_factory, mode, suffix, size) -> None:
    try:
        content = _encoded(Image.new(mode, size, _MODES[mode]), _FORMATS[suffix])
    except (OSError, ValueError, KeyError):  # Pillow cannot write this mode in this format: nothing to read
        return
    folder = tmp_path_factory.mktemp("image")
    path = folder / f"image.{suffix}"
    path.write_bytes(content)
    with watched() as events:
        image, err = refusal(lambda: read_image(path), path)
    assert_confined(events, folder)
    if err is None:
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, size[1], size[0])
    else:  # refused: 32-bit pixels, or a file Pillow wrote and cannot read back (seen: a 1x1 P-mode BMP)
        assert mode in ("I", "F") or not _pillow_reads_back(content), err


def _pillow_reads_back(content: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()
    except Exception:  # any failure of Pillow's own decoder
        return False
    return True


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffix=st.sampled_from(sorted(_FORMATS)),
    at=st.integers(min_value=0),
    data=st.binary(max_size=12),
    cut=st.integers(min_value=0),
)
@example(suffix="png", at=16, data=b"\x7f\xff\xff\xff\x7f\xff\xff\xff", cut=0)  # IHDR claims 2**31 - 1 squared
@example(suffix="png", at=222, data=b"k\xdd\ns", cut=9)  # crashed torchvision's PNG decoder (IDAT data check)
def test_any_damaged_image_decodes_or_is_refused_in_one_line(tmp_path_factory, suffix, at, data, cut) -> None:
    rng = np.random.default_rng(at)
    pixels = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    raw = bytearray(_encoded(pixels, _FORMATS[suffix]))
    raw[at % len(raw) : at % len(raw) + len(data)] = data
    path = tmp_path_factory.mktemp("damaged") / f"image.{suffix}"
    path.write_bytes(bytes(raw[: len(raw) - cut % len(raw)]))
    image, _ = refusal(lambda: read_image(path), path)
    assert image is None or (image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3)
