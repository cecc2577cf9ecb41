"""What curation looks at: a collection's active assets with the files that still exist, in one read.

Assets whose every file is missing are left out: there is nothing left to keep or to archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from photoindex.media.formats import RAW_GENERIC_MIME, RAW_MIME
from photoindex.store.catalog import Catalog
from photoindex.store.models import Asset, File

RAW_MIMES = frozenset({*RAW_MIME.values(), RAW_GENERIC_MIME})


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int


@dataclass
class AssetRow:
    id: int
    sha256: str
    width: int
    height: int
    bytes: int
    mime: str
    taken_at: datetime | None  # wall clock, as the camera recorded it
    camera: str | None
    quality: float | None
    bit_depth: int | None
    files: list[FileRow] = field(default_factory=list)  # present files, oldest first

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def is_raw(self) -> bool:
        return self.mime in RAW_MIMES

    @property
    def path(self) -> str:
        """The asset's main file: the oldest (a copy is made after its original), then the shortest path."""
        return self.files[0].path


def bit_depth(exif: dict[str, Any] | None) -> int | None:
    """Bits per sample from the EXIF the catalog kept (TIFF-based files and RAWs state it; JPEGs rarely)."""
    raw = (exif or {}).get("raw") or {}
    value = raw.get("BitsPerSample")
    if isinstance(value, list):
        value = max((v for v in value if isinstance(v, int | float)), default=None)
    return int(value) if isinstance(value, int | float) and 0 < value <= 64 else None


def _file_order(f: FileRow) -> tuple[int, int, str]:
    return (f.mtime_ns, len(f.path), f.path)


def load_inventory(catalog: Catalog, collection_id: int) -> list[AssetRow]:
    """Active assets of the collection that have at least one present file, by id."""
    cols = (Asset.id, Asset.sha256, Asset.width, Asset.height, Asset.bytes, Asset.mime, Asset.taken_at,
            Asset.camera, Asset.quality, Asset.exif)
    with catalog.session() as s:
        assets = {
            int(r[0]): AssetRow(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], r[6], r[7],
                                None if r[8] is None else float(r[8]), bit_depth(r[9]))
            for r in s.execute(select(*cols).where(Asset.collection_id == collection_id, Asset.status == "active"))
        }
        rows = s.execute(select(File.asset_id, File.id, File.path, File.size, File.mtime_ns).where(
            File.collection_id == collection_id, File.missing.is_(False)))
        for asset_id, file_id, path, size, mtime_ns in rows:
            asset = assets.get(int(asset_id))
            if asset is not None:
                asset.files.append(FileRow(int(file_id), path, int(size), int(mtime_ns)))
    out = [a for _, a in sorted(assets.items()) if a.files]
    for a in out:
        a.files.sort(key=_file_order)
    return out


__all__ = ["RAW_MIMES", "AssetRow", "FileRow", "bit_depth", "load_inventory"]
