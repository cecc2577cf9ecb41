"""A synthetic library for scale tests and the web benchmark: N assets written straight into the
catalog with `Catalog.commit_batch` (what ingest commits), each with a small real JPEG thumbnail in
the content-addressed thumbnail folder. No ingest runs: the photos' files do not exist on disk."""

from __future__ import annotations

import hashlib
import io
import os
import random
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from photoindex.media.thumbnails import thumbnail_path
from photoindex.schemas import ExifInfo
from photoindex.store.catalog import Catalog, FileRecord, NewAsset

CAMERAS = [("Apple", "iPhone 13"), ("NIKON CORPORATION", "NIKON Z 6"), ("Canon", "Canon EOS R5"),
           ("FUJIFILM", "X-T4"), ("SONY", "ILCE-7M3"), (None, None)]
SHAPES = [(4000, 3000), (3000, 4000), (4000, 2250), (3000, 3000), (2250, 4000)]
COLOURS = [(200, 80, 60), (60, 140, 200), (90, 170, 90), (220, 190, 70), (140, 90, 170), (70, 70, 70)]


def _jpeg(size: tuple[int, int], colour: tuple[int, int, int], thumb: int) -> bytes:
    w, h = size
    scale = thumb / max(w, h)
    im = Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))), colour)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def fill_library(catalog: Catalog, thumbnails_dir: Path, n: int, *, collection: str = "default",
                 thumb_sizes: tuple[int, ...] = (256,), seed: int = 7, batch: int = 2000,
                 undated_every: int = 20) -> list[str]:
    """Add `n` assets to `collection` (created when missing); returns their SHA-256s. Thumbnails are
    hard links to one small JPEG per (shape, colour), so 100k of them take seconds and little disk."""
    rng = random.Random(seed)
    names = {c.name for c in catalog.list_collections()}
    coll = catalog.get_collection(collection) if collection in names else catalog.create_collection(collection)
    templates: dict[tuple[int, int, int], Path] = {}
    start = datetime(2015, 1, 1)
    hashes: list[str] = []
    for first in range(0, n, batch):
        assets, files = [], []
        for i in range(first, min(n, first + batch)):
            sha = hashlib.sha256(f"{collection}-{seed}-{i}".encode()).hexdigest()
            shape_i, colour_i = rng.randrange(len(SHAPES)), rng.randrange(len(COLOURS))
            make, model = CAMERAS[rng.randrange(len(CAMERAS))]
            taken = None if undated_every and i % undated_every == 0 else start + timedelta(
                seconds=rng.randrange(10 * 365 * 86400))
            w, h = SHAPES[shape_i]
            assets.append(NewAsset(sha256=sha, sha1=sha[:40], bytes=1_000_000 + i, mime="image/jpeg", width=w,
                                   height=h, exif=ExifInfo(taken_at=taken, make=make, model=model)))
            files.append(FileRecord(path=f"/synthetic/{collection}/{i // 1000:03d}/img_{i:06d}.jpg",
                                    size=1_000_000 + i, mtime_ns=1_700_000_000_000_000_000 + i, sha256=sha))
            for size in thumb_sizes:
                template = templates.get((size, shape_i, colour_i))
                if template is None:
                    template = thumbnails_dir / ".synthetic" / f"{size}-{shape_i}-{colour_i}.jpg"
                    template.parent.mkdir(parents=True, exist_ok=True)
                    template.write_bytes(_jpeg(SHAPES[shape_i], COLOURS[colour_i], size))
                    templates[(size, shape_i, colour_i)] = template
                dest = thumbnail_path(thumbnails_dir, sha, size)
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    os.link(template, dest)
            hashes.append(sha)
        catalog.commit_batch(coll.id, assets, files)
    return hashes
