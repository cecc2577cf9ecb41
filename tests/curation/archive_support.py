"""Helpers for the archive, report and cluster tests: a library with exact copies, ingested for real,
and digests of the whole catalog and of a folder tree (every byte, mtime and permission)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import MetaData, Table, inspect, select
from support.library import LIBRARY, build_library

from photoindex.ingest.pipeline import ingest
from photoindex.runtime import Runtime
from photoindex.schemas import IngestReport
from photoindex.store.catalog import Catalog

# Tables that record history rather than index state (archive batches, jobs) are left out of the digest.
HISTORY_TABLES = {"archive_batch", "archive_item", "job", "task", "alembic_version"}
COPIES = {"Downloads/rocket.jpg": "trips/rocket.jpg", "trips/rocket copy.jpg": "trips/rocket.jpg",
          "home/old/cat.jpg": "home/cat.jpg"}
N_FILES = len(LIBRARY) + len(COPIES)


def build_with_copies(root: Path, photos: dict[str, Image.Image]) -> Path:
    """The standard library plus exact copies (same bytes; copies written later, as copies are)."""
    build_library(root, photos)
    for i, (copy, original) in enumerate(sorted(COPIES.items())):
        target = root / copy
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / original, target)
        st = (root / original).stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + (i + 1) * 1_000_000_000))
    os.chmod(root / "trips/rocket copy.jpg", 0o640)  # a mode of its own, to see it survive the moves
    return root


def ingest_ok(rt: Runtime, roots: list[Path]) -> IngestReport:
    report = ingest(rt, roots)
    assert report.errors == [], report.errors
    return report


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def catalog_digest(catalog: Catalog) -> dict[str, str]:
    """table -> SHA-256 of all its rows (order-independent), for every table of the catalog that holds
    index state: equal digests mean every row is as it was."""
    engine = catalog.engine
    out = {}
    for name in sorted(inspect(engine).get_table_names()):
        if name in HISTORY_TABLES or name.startswith(("asset_text_fts", "sqlite_")):
            continue
        table = Table(name, MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = [json.dumps([_canonical(v) for v in row], default=str) for row in conn.execute(select(table))]
        out[name] = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest() + f":{len(rows)}"
    return out


def tree_digest(root: Path, *, skip: str | None = None) -> dict[str, tuple[str, int, int, int]]:
    """relative path -> (sha256, size, mtime_ns, mode) of every file below root (not below `skip`)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if d != skip]
        for name in filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size,
                                             st.st_mtime_ns, st.st_mode)
    return out
