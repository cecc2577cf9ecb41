"""The CPU stage of ingest, run in worker processes: one read → hashes → (known content? done) →
decode with downscale → EXIF → thumbnails → model input.

Each call carries its `PrepareConfig` (a resident worker serves several collections and models) and
handles a few files, returning plain picklable results. Errors become `Failed` results with a code,
never exceptions, so one bad file never stops a run.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.media.decode import decode_image
from photoindex.media.formats import resolve_format
from photoindex.media.hashing import read_and_hash
from photoindex.media.thumbnails import write_thumbnails
from photoindex.ml.preprocess import fit_image
from photoindex.ml.specs import Preprocess
from photoindex.schemas import ExifInfo
from photoindex.store.catalog import Catalog


@dataclass(frozen=True)
class PrepareConfig:
    catalog_url: str
    collection_id: int
    thumbnails_dir: Path
    thumbnail_sizes: tuple[int, ...]
    thumbnail_quality: int
    max_file_bytes: int
    max_image_pixels: int
    raw_preview_min: int
    preprocess: Preprocess | None  # None: no model available, skip model inputs


@dataclass(frozen=True)
class Known:
    """Content the collection already has: only the path needs linking."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class Prepared:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    sha1: str
    mime: str
    width: int
    height: int
    exif: ExifInfo
    pixels: np.ndarray | None  # uint8 model input (S, S, 3), or None without a model


@dataclass(frozen=True)
class Failed:
    path: str
    code: ErrorCode
    message: str


Result = Known | Prepared | Failed

_catalogs: dict[str, Catalog] = {}


def init_worker() -> None:
    """Process-pool initializer. Ctrl-C is the parent's to handle: pool workers ignore it so that the
    parent can stop feeding them and commit what is done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _catalog_for(url: str) -> Catalog:
    """One catalog connection per process and URL (a resident worker serves several collections)."""
    if url not in _catalogs:
        _catalogs[url] = Catalog.open(url, migrate=False)
    return _catalogs[url]


def prepare_many(paths: list[str], config: PrepareConfig) -> list[Result]:
    catalog = _catalog_for(config.catalog_url)
    return [prepare_one(p, config, catalog) for p in paths]


def prepare_one(path: str, config: PrepareConfig, catalog: Catalog) -> Result:
    try:
        data = read_and_hash(path, max_bytes=config.max_file_bytes)
        if catalog.assets_by_sha256(config.collection_id, [data.sha256]):
            return Known(path, data.size, data.mtime_ns, data.sha256)
        fmt = resolve_format(path, data.data[:64])
        target = max(config.thumbnail_sizes)
        decoded = decode_image(
            data.data, path=path, fmt=fmt, target=target,
            max_pixels=config.max_image_pixels, raw_preview_min=config.raw_preview_min,
        )
        write_thumbnails(decoded.image, data.sha256, config.thumbnails_dir, config.thumbnail_sizes,
                         config.thumbnail_quality)
        pixels = fit_image(decoded.image, config.preprocess) if config.preprocess else None
        return Prepared(
            path=path, size=data.size, mtime_ns=data.mtime_ns, sha256=data.sha256, sha1=data.sha1,
            mime=decoded.mime, width=decoded.width, height=decoded.height, exif=decoded.exif, pixels=pixels,
        )
    except PhotoindexError as exc:
        return Failed(path, exc.code, exc.message)
    except MemoryError:
        return Failed(path, ErrorCode.IMAGE_TOO_LARGE, "not enough memory to decode this image")
    except Exception as exc:  # a decoder bug must not end the run; the report keeps the reason
        return Failed(path, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
