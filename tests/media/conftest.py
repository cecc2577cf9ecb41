"""Fixtures for the media tests: real photos from packages, and synthetic photos made here.

Synthetic photos start from a real photograph (scikit-image's astronaut) so that encoders and
decoders see photo-like content, and carry EXIF written by piexif, the way cameras lay it out.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import piexif
import pytest
from PIL import Image
from support import realphotos
from support.realphotos import RealPhotoUnavailable


def _real(fn: Callable[..., Path], *args: Any) -> Path:
    try:
        return fn(*args)
    except RealPhotoUnavailable as exc:
        if os.environ.get("CI") or os.environ.get("PHOTOINDEX_REQUIRE_REAL_PHOTOS"):
            pytest.fail(f"real test photo unavailable: {exc}")
        pytest.skip(f"real test photo unavailable: {exc}")


@pytest.fixture(scope="session")
def real() -> SimpleNamespace:
    """Real photo files; a fetch failure skips the test (fails it under CI)."""
    return SimpleNamespace(
        pillow=lambda name: _real(realphotos.pillow_test_image, name),
        heic=lambda name: _real(realphotos.heic_sample, name),
        heic_samples=lambda: _real(realphotos.heic_samples),
        arw=lambda: _real(realphotos.arw_sample),
        skimage=lambda name: _real(realphotos.skimage_file, name),
    )


# -- synthetic photos ------------------------------------------------------------------------------

_PHOTO_CACHE: dict[tuple[int, int], np.ndarray] = {}


def photo_array(width: int, height: int, *, noise: float = 4.0, seed: int = 0) -> np.ndarray:
    """A photo-like RGB uint8 array: scikit-image's astronaut resized, plus mild sensor noise."""
    key = (width, height)
    if key not in _PHOTO_CACHE:
        from skimage import data

        base = Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(base).astype(np.int16)
        if noise:  # a 509x509 noise tile repeated over the frame: cheap, and no visible period
            tile = np.random.default_rng(seed).normal(0, noise, (509, 509, 3)).astype(np.int16)
            reps = (-(-height // 509), -(-width // 509), 1)
            arr = arr + np.tile(tile, reps)[:height, :width]
        _PHOTO_CACHE[key] = np.clip(arr, 0, 255).astype(np.uint8)
    return _PHOTO_CACHE[key]


def exif_bytes(
    *,
    make: str | None = "Canon",
    model: str | None = "Canon EOS 5D Mark IV",
    orientation: int | None = None,
    original: str | None = "2023:05:01 10:00:00",
    offset: str | None = None,
    subsec: str | None = None,
    digitized: str | None = None,
    datetime_0th: str | None = None,
    gps: dict[int, Any] | None = None,
    extra_0th: dict[int, Any] | None = None,
    extra_exif: dict[int, Any] | None = None,
) -> bytes:
    """An EXIF APP1 payload written by piexif (None leaves a field out)."""
    zeroth: dict[int, Any] = {}
    if make is not None:
        zeroth[piexif.ImageIFD.Make] = make.encode()
    if model is not None:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if orientation is not None:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    if datetime_0th is not None:
        zeroth[piexif.ImageIFD.DateTime] = datetime_0th.encode()
    zeroth.update(extra_0th or {})
    exif: dict[int, Any] = {}
    if original is not None:
        exif[piexif.ExifIFD.DateTimeOriginal] = original.encode()
    if offset is not None:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if subsec is not None:
        exif[piexif.ExifIFD.SubSecTimeOriginal] = subsec.encode()
    if digitized is not None:
        exif[piexif.ExifIFD.DateTimeDigitized] = digitized.encode()
    exif.update(extra_exif or {})
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps or {}, "1st": {}, "thumbnail": None})


def encode(img: Image.Image | np.ndarray, fmt: str = "JPEG", **params: Any) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_photo(width: int = 640, height: int = 480, *, quality: int = 90, exif: bytes | None = None,
               **params: Any) -> bytes:
    if exif is not None:
        params["exif"] = exif
    return encode(photo_array(width, height), "JPEG", quality=quality, **params)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_raw(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2,
            rows: bytes | None = None) -> bytes:
    """A PNG written by hand (any bit depth / colour type Pillow cannot write, or a lying header).

    Without `rows` the file has no IDAT at all: only the header, for size checks."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    if rows is not None:
        out += _png_chunk(b"IDAT", zlib.compress(rows))
    return out + _png_chunk(b"IEND", b"")


def jpeg_header_claiming(width: int, height: int) -> bytes:
    """A baseline JPEG whose SOF0 segment claims `width` x `height` (and no image data)."""
    soi = b"\xff\xd8"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return soi + app0 + sof + b"\xff\xd9"


def quadrants(width: int, height: int) -> Image.Image:
    """An upright test card: red top-left, green top-right, blue bottom-left, white bottom-right."""
    img = Image.new("RGB", (width, height))
    w2, h2 = width // 2, height // 2
    img.paste((220, 20, 20), (0, 0, w2, h2))
    img.paste((20, 200, 20), (w2, 0, width, h2))
    img.paste((20, 20, 220), (0, h2, w2, height))
    img.paste((240, 240, 240), (w2, h2, width, height))
    return img


def quadrant_colors(img: Image.Image) -> list[tuple[int, int, int]]:
    """Mean colour of the centre of each quadrant: top-left, top-right, bottom-left, bottom-right."""
    arr = np.asarray(img.convert("RGB")).astype(np.float64)
    h, w = arr.shape[:2]
    out = []
    for y0, x0 in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
        patch = arr[y0 + h // 8: y0 + h // 2 - h // 8, x0 + w // 8: x0 + w // 2 - w // 8]
        out.append(tuple(round(float(v)) for v in patch.reshape(-1, 3).mean(axis=0)))
    return out


# The transform that *stores* an upright picture so that EXIF orientation N shows it upright again.
STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    return SimpleNamespace(
        photo_array=photo_array,
        exif_bytes=exif_bytes,
        encode=encode,
        jpeg_photo=jpeg_photo,
        png_raw=png_raw,
        jpeg_header_claiming=jpeg_header_claiming,
        quadrants=quadrants,
        quadrant_colors=quadrant_colors,
        STORE_FOR_ORIENTATION=STORE_FOR_ORIENTATION,
    )


def close_colors(a: tuple[int, ...], b: tuple[int, ...], tol: int = 30) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    return float(np.abs(x - y).mean())


@pytest.fixture(scope="session")
def compare() -> SimpleNamespace:
    return SimpleNamespace(close_colors=close_colors, mean_abs_diff=mean_abs_diff)
