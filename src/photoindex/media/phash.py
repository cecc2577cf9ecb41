"""Perceptual and pixel hashes: what makes two different files the same picture.

* `phash`: a 64-bit DCT hash. The image is reduced to a 32x32 grey square (aspect ratio dropped, box
  filter), transformed with an orthonormal 2-D DCT-II, and the 8x8 lowest frequencies become 64 bits:
  1 where a coefficient is above the block's median. Re-encoding, resizing and small colour changes
  move few bits; different photos differ in about half of them.
* `phash_variants`: the hashes of the image under the 8 rotations and mirrors (the dihedral group),
  from one DCT. Flipping an image left-right multiplies horizontal frequency u by (-1)^u, flipping it
  upside down multiplies vertical frequency v by (-1)^v, and transposing it transposes the coefficient
  block; every rotation and mirror is a composition of those, so a sign pattern and an optional
  transpose of the 8x8 block give each variant's coefficients exactly (the median is taken per
  variant, since signs change the set of values).
* `pixel_hash`: SHA-256 of the decoded pixels (mode, size, bytes): equal for files that differ only
  in metadata.

Hashes are uint64 (bit i = coefficient i of the row-major 8x8 block, v*8 + u); `hamming` counts the
differing bits of uint64 arrays, vectorised and broadcasting.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
from PIL import Image

GRAY_SIZE = 32  # the DCT's input is GRAY_SIZE x GRAY_SIZE
BLOCK = 8  # the low-frequency block kept: BLOCK x BLOCK = 64 bits

# Variant t of an image is that image transformed by TRANSFORMS[t] (Pillow's naming: rotations are
# counter-clockwise; "mirror" flips left-right and is applied before the rotation).
TRANSFORMS: tuple[str, ...] = (
    "none", "rotate_90", "rotate_180", "rotate_270",
    "mirror", "mirror_rotate_90", "mirror_rotate_180", "mirror_rotate_270",
)
# The transform that undoes each one: rotations by 90 and 270 undo each other, the rest are involutions.
INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)


@lru_cache(maxsize=4)
def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix D (n x n): coefficients of a signal x are D @ x."""
    k = np.arange(n, dtype=np.float64)[:, None]
    x = np.arange(n, dtype=np.float64)[None, :]
    d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def gray_square(image: Image.Image, size: int = GRAY_SIZE) -> np.ndarray:
    """The image as a size x size grey float32 array: luma, then a box-filter (area) resize, which
    commutes with flips and transposes, so the variants of one input match the inputs of rotated files."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    gray = image if image.mode == "L" else image.convert("L")
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32)


def low_dct(gray: np.ndarray) -> np.ndarray:
    """The BLOCK x BLOCK lowest DCT coefficients of grey squares, shape (..., GRAY, GRAY) -> (..., 8, 8),
    [v, u] = (vertical, horizontal) frequency. Only the needed rows of the DCT matrix are multiplied."""
    d = dct_matrix(gray.shape[-1])[:BLOCK].astype(np.float64)
    return np.matmul(np.matmul(d, gray.astype(np.float64)), d.T)


def _sign(flip_u: bool, flip_v: bool) -> np.ndarray:
    idx = np.arange(BLOCK)
    su = np.where(idx % 2 == 1, -1.0, 1.0) if flip_u else np.ones(BLOCK)
    sv = np.where(idx % 2 == 1, -1.0, 1.0) if flip_v else np.ones(BLOCK)
    return sv[:, None] * su[None, :]


def variant_coefficients(coeffs: np.ndarray) -> np.ndarray:
    """Coefficient blocks of the 8 transforms, shape (..., 8, 8) -> (..., 8 transforms, 8, 8).

    With M = mirror (u sign flip), F = upside-down flip (v sign flip) and T = transpose: a counter-
    clockwise rotation by 90 is T after M, by 180 is M and F, by 270 is T after F; a mirror then a
    rotation composes the same way."""
    def t(c: np.ndarray) -> np.ndarray:
        return np.swapaxes(c, -1, -2)

    m, f, mf = _sign(True, False), _sign(False, True), _sign(True, True)
    out = [
        coeffs,                 # none
        t(coeffs * m),          # rotate_90: X'[y, x] = X[x, N-1-y]
        coeffs * mf,            # rotate_180
        t(coeffs * f),          # rotate_270: X'[y, x] = X[N-1-x, y]
        coeffs * m,             # mirror
        t(coeffs),              # mirror, then rotate_90: a transpose
        coeffs * f,             # mirror, then rotate_180: an upside-down flip
        t(coeffs * mf),         # mirror, then rotate_270: the anti-transpose
    ]
    return np.stack(out, axis=-3)


def bits_to_hash(coeffs: np.ndarray) -> np.ndarray:
    """(..., 8, 8) coefficient blocks -> (...) uint64 hashes: 1 where a coefficient is above its block's median."""
    flat = coeffs.reshape(*coeffs.shape[:-2], BLOCK * BLOCK)
    bits = flat > np.median(flat, axis=-1, keepdims=True)
    packed = np.packbits(bits, axis=-1, bitorder="little")  # (..., 8) bytes, bit i of the hash = flat[i]
    return np.ascontiguousarray(packed).view("<u8")[..., 0].astype(np.uint64)


def phash_gray(gray: np.ndarray) -> np.ndarray:
    """Hashes of grey squares (..., 32, 32) -> (...) uint64."""
    return bits_to_hash(low_dct(gray))


def variants_gray(gray: np.ndarray) -> np.ndarray:
    """The 8 variant hashes of grey squares (..., 32, 32) -> (..., 8) uint64; [..., 0] is the hash itself."""
    return bits_to_hash(variant_coefficients(low_dct(gray)))


def phash(image: Image.Image) -> int:
    """The 64-bit perceptual hash of an image, as a Python int in 0 .. 2**64-1."""
    return int(phash_gray(gray_square(image)))


def phash_variants(image: Image.Image) -> np.ndarray:
    """The image's hash under each of the 8 `TRANSFORMS` (uint64 array of 8; index 0 = `phash(image)`)."""
    return variants_gray(gray_square(image))


# -- distances -------------------------------------------------------------------------------------

_POPCOUNT8 = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy's bitwise_count where it exists, a byte table otherwise)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.uint8)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
    return _POPCOUNT8[as_bytes].sum(axis=-1, dtype=np.uint8)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Differing bits between uint64 hashes (broadcasting)."""
    return popcount(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def min_distance(variants_a: np.ndarray, hash_b: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Over the 8 transforms, the smallest distance between a transformed and b, and which transform
    (index into TRANSFORMS; the lowest index on ties, so "none" wins). variants_a: (..., 8)."""
    d = hamming(variants_a, np.asarray(hash_b, dtype=np.uint64)[..., None])
    best = np.argmin(d, axis=-1)
    return np.take_along_axis(d, best[..., None], axis=-1)[..., 0], best


# -- storage -------------------------------------------------------------------------------------

def to_signed(h: np.ndarray | int) -> np.ndarray:
    """uint64 -> int64 with the same bits (SQL BIGINT is signed)."""
    return np.asarray(h, dtype=np.uint64).view(np.int64)


def to_unsigned(h: np.ndarray | int) -> np.ndarray:
    return np.asarray(h, dtype=np.int64).view(np.uint64)


def variants_to_bytes(variants: np.ndarray) -> bytes:
    return np.asarray(variants, dtype="<u8").tobytes()


def variants_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


# -- pixels ---------------------------------------------------------------------------------------

def pixel_hash(image: Image.Image) -> str:
    """SHA-256 (hex) of decoded pixels: mode, size and raw bytes. Two files with equal pixel hashes show
    exactly the same picture, whatever their metadata or container."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


__all__ = [
    "BLOCK", "GRAY_SIZE", "INVERSE", "TRANSFORMS", "bits_to_hash", "dct_matrix", "gray_square", "hamming",
    "low_dct", "min_distance", "phash", "phash_gray", "phash_variants", "pixel_hash", "popcount",
    "to_signed", "to_unsigned", "variant_coefficients", "variants_from_bytes", "variants_gray",
    "variants_to_bytes",
]
