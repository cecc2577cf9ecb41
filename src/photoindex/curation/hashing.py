"""Computing the hashes duplicate detection needs, for the assets that lack them.

Perceptual hashes come from the 256 px thumbnail every asset has (a few kB to decode), or from the
original when the thumbnail is gone. Pixel hashes need the full decode of the original and are only
computed for the few assets that could be pixel-identical. Both run on a thread pool: Pillow releases
the GIL while it decodes and resizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from photoindex.config import Settings
from photoindex.curation.inventory import AssetRow
from photoindex.errors import ErrorCode, MediaError, PhotoindexError
from photoindex.ingest.stages import NullProgress, Progress
from photoindex.media.decode import decode_image
from photoindex.media.hashing import read_and_hash
from photoindex.media.phash import gray_square, pixel_hash, variants_gray
from photoindex.media.thumbnails import thumbnail_path
from photoindex.schemas import FileError
from photoindex.store.catalog import Catalog
from photoindex.store.hashes import put_phashes, put_pixel_hashes

THUMBNAIL_SIZE = 256
BATCH = 256


def _threads(settings: Settings) -> int:
    return max(2, min(8, settings.prepare_workers))


def _error(path: str, exc: Exception) -> FileError:
    if isinstance(exc, PhotoindexError):
        return FileError(path=path, code=exc.code, message=exc.message)
    if isinstance(exc, OSError):
        return FileError(path=path, code=ErrorCode.FILE_UNREADABLE, message=str(exc))
    return FileError(path=path, code=ErrorCode.CORRUPT_IMAGE, message=f"{type(exc).__name__}: {exc}")


def _read_original(settings: Settings, asset: AssetRow) -> tuple[bytes, str]:
    """The bytes of the asset's first present file that still holds its content."""
    last: Exception | None = None
    for f in asset.files:
        try:
            data = read_and_hash(f.path, max_bytes=settings.max_file_bytes)
        except MediaError as exc:
            last = exc
            continue
        if data.sha256 == asset.sha256:
            return data.data, f.path
        last = MediaError(f"{f.path!r} changed since it was catalogued", code=ErrorCode.FILE_UNREADABLE,
                          hint="ingest the folder again")
    raise last or MediaError("no file", code=ErrorCode.FILE_NOT_FOUND)


def _gray(settings: Settings, asset: AssetRow) -> np.ndarray:
    thumb = thumbnail_path(settings.thumbnails_dir, asset.sha256, THUMBNAIL_SIZE)
    try:
        with Image.open(thumb) as im:
            im.load()
            return gray_square(im)
    except (OSError, ValueError):
        pass  # gone or damaged: the original says the same
    data, path = _read_original(settings, asset)
    decoded = decode_image(data, path=path, target=THUMBNAIL_SIZE, max_pixels=settings.max_image_pixels,
                           raw_preview_min=settings.raw_preview_min_size)
    return gray_square(decoded.image)


def _guarded(fn: Callable[[AssetRow], object], asset: AssetRow) -> object:
    try:
        return fn(asset)
    except Exception as exc:  # noqa: BLE001 - one bad file is reported and the run goes on
        return _error(asset.path, exc)


def _batches(items: Sequence[AssetRow], size: int) -> Iterable[Sequence[AssetRow]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def compute_phashes(catalog: Catalog, settings: Settings, collection_id: int, assets: Sequence[AssetRow],
                    progress: Progress | None = None) -> tuple[int, list[FileError]]:
    """Hash and store these assets; returns (how many were stored, the files that failed)."""
    progress = progress or NullProgress()
    stored, errors = 0, []
    with ThreadPoolExecutor(_threads(settings), thread_name_prefix="phash") as pool:
        for batch in _batches(assets, BATCH):
            results = list(pool.map(lambda a: _guarded(lambda x: _gray(settings, x), a), batch))
            good = [(a.id, r) for a, r in zip(batch, results, strict=True) if isinstance(r, np.ndarray)]
            errors += [r for r in results if isinstance(r, FileError)]
            if good:
                variants = variants_gray(np.stack([g for _, g in good]))
                stored += put_phashes(catalog, collection_id, {aid: variants[i] for i, (aid, _) in enumerate(good)})
            progress.advance(len(batch))
    return stored, errors


def _pixels(settings: Settings, asset: AssetRow) -> str:
    data, path = _read_original(settings, asset)
    decoded = decode_image(data, path=path, target=0, max_pixels=settings.max_image_pixels, raw_preview_min=1 << 30)
    return pixel_hash(decoded.image)


def compute_pixel_hashes(catalog: Catalog, settings: Settings, assets: Sequence[AssetRow],
                         progress: Progress | None = None) -> tuple[dict[int, str], list[FileError]]:
    """Decode these assets' originals at full size (upright 8-bit RGB, as they are shown), hash the
    pixels and store the hashes; returns asset id -> pixel hash and the files that failed."""
    progress = progress or NullProgress()
    out: dict[int, str] = {}
    errors: list[FileError] = []
    with ThreadPoolExecutor(_threads(settings), thread_name_prefix="pixels") as pool:
        for batch in _batches(assets, 16):  # full decodes: keep the memory in flight small
            results = list(pool.map(lambda a: _guarded(lambda x: _pixels(settings, x), a), batch))
            found = {a.id: r for a, r in zip(batch, results, strict=True) if isinstance(r, str)}
            errors += [r for r in results if isinstance(r, FileError)]
            put_pixel_hashes(catalog, found)
            out.update(found)
            progress.advance(len(batch))
    return out, errors


__all__ = ["THUMBNAIL_SIZE", "compute_phashes", "compute_pixel_hashes"]
