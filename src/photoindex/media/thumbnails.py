"""Content-addressed JPEG thumbnails: ``root/<size>/<sha[0:2]>/<sha[2:4]>/<sha>.jpg``.

Same content → same path, whatever the file was called or wherever it lives, so a thumbnail is made
once ever and two workers racing on the same photo write identical bytes. Each file appears
atomically (temporary file in the same folder, then `os.replace`): readers never see half a JPEG,
and a crash leaves at most a stray ``.tmp`` file behind.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from photoindex.errors import ErrorCode, MediaError
from photoindex.media.decode import rgb_icc_profile, to_rgb

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
REDUCING_GAP = 1.0
"""A smaller thumbnail made from the previous one first shrinks by the integer part of the scale
factor (`Image.reduce`, a cheap box filter), then resamples the remaining < 2x bilinearly."""


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise MediaError(f"not a SHA-256 hex digest: {sha256!r}", code=ErrorCode.INVALID_REQUEST)
    return sha256


def thumbnail_path(root: Path | str, sha256: str, size: int) -> Path:
    """Where the `size` px thumbnail of the content `sha256` lives (whether or not it exists yet)."""
    sha = _check_sha(sha256)
    if not isinstance(size, int) or size <= 0:
        raise MediaError(f"thumbnail size must be a positive integer, not {size!r}",
                         code=ErrorCode.INVALID_REQUEST)
    return Path(root) / str(size) / sha[0:2] / sha[2:4] / f"{sha}.jpg"


def _fit(im: Image.Image, size: int) -> Image.Image:
    """Long side = `size`, aspect kept; never enlarges."""
    width, height = im.size
    long_side = max(width, height)
    if long_side <= size:
        return im
    ratio = size / long_side
    new = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return im.resize(new, Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP)


def _write_atomic(im: Image.Image, path: Path, quality: int, icc: bytes | None) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            # baseline JPEG, 4:2:0, no optimize/progressive pass: the fastest libjpeg-turbo path
            params: dict[str, object] = {"quality": quality, "optimize": False, "progressive": False}
            if icc:
                params["icc_profile"] = icc
            im.save(f, "JPEG", **params)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_thumbnails(
    image: Image.Image,
    sha256: str,
    root: Path | str,
    sizes: Sequence[int] = (256, 1024),
    quality: int = 82,
) -> dict[int, Path]:
    """Write the JPEG thumbnails of `image` (already upright) for each size; return size → path.

    Largest first, each smaller one resampled from the previous. A thumbnail that already exists is
    kept as it is (content addressing makes it the same picture). An image smaller than a size is
    written as it is, never enlarged. Errors writing become `MediaError(INTERNAL)` naming the path.
    """
    _check_sha(sha256)
    if not 1 <= quality <= 100:
        raise MediaError(f"JPEG quality must be within 1..100, not {quality}", code=ErrorCode.INVALID_REQUEST)
    wanted = sorted({int(s) for s in sizes}, reverse=True)
    paths = {size: thumbnail_path(root, sha256, size) for size in wanted}
    missing = [size for size in wanted if not paths[size].exists()]
    if not missing:
        return {int(size): paths[int(size)] for size in sizes}

    icc = rgb_icc_profile(image)
    current = image if image.mode == "RGB" else to_rgb(image)
    smallest_missing = missing[-1]
    for size in wanted:
        if size < smallest_missing:
            break
        current = _fit(current, size)
        if size in missing:
            try:
                _write_atomic(current, paths[size], quality, icc)
            except OSError as exc:
                raise MediaError(f"cannot write thumbnail {str(paths[size])!r}: {exc.strerror or exc}",
                                 code=ErrorCode.INTERNAL) from exc
    return {int(size): paths[int(size)] for size in sizes}


__all__ = ["REDUCING_GAP", "thumbnail_path", "write_thumbnails"]
