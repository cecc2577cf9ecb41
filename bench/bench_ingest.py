"""Ingest benchmark: photoindex's prepare stage and pipeline against the naive way, in one run.

Generates 12-megapixel JPEGs with EXIF (a real photo from scikit-image, upscaled, with noise so the
encoder can't cheat), then reports medians of:

* non-model CPU per image: read + SHA-256/SHA-1 + EXIF + decode with downscale + 256/1024 px
  thumbnails + model input (`prepare_one`, the function the ingest workers run);
* the naive way: full decode with Pillow, EXIF transpose, default WebP thumbnails, model input from
  the full image — one image at a time — and the ratio between the two;
* end-to-end ingest images/s with the generated tiny model (process pool, batching, commits);
* re-ingest of an unchanged tree of N small files (nothing is read; size + mtime only).

Usage: python bench/bench_ingest.py [--images 16] [--tree 10000] [--out results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import piexif
from PIL import Image, ImageOps

from photoindex.config import load_settings
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.prepare import PrepareConfig, Prepared, prepare_one
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.testing import build_tiny_clip
from photoindex.runtime import Runtime
from photoindex.store.catalog import Catalog


def make_photo(seed: int, size: tuple[int, int] = (4000, 3000)) -> bytes:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    base = Image.fromarray(sources[seed % len(sources)]).resize(size, Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    noisy = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, size=(size[1], size[0], 3), dtype=np.int16)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"Canon EOS R6", piexif.ImageIFD.Orientation: 1},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: f"2024:06:{1 + seed % 28:02d} 10:00:00".encode(),
                 piexif.ExifIFD.OffsetTimeOriginal: b"+02:00", piexif.ExifIFD.ISOSpeedRatings: 400,
                 piexif.ExifIFD.FNumber: (28, 10), piexif.ExifIFD.ExposureTime: (1, 250),
                 piexif.ExifIFD.FocalLength: (50, 1)},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1)),
                piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (0, 1))},
    })
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def naive_prepare(path: Path, size: int, thumbs: Path) -> np.ndarray:
    """How a straightforward script does it: full decode, LANCZOS everywhere, default WebP."""
    import hashlib

    raw = path.read_bytes()
    hashlib.sha256(raw).hexdigest()
    hashlib.sha1(raw).hexdigest()
    img = Image.open(io.BytesIO(raw))
    img.getexif()
    img = ImageOps.exif_transpose(img).convert("RGB")
    for side in (1024, 256):
        t = img.copy()
        t.thumbnail((side, side), Image.Resampling.LANCZOS)
        t.save(thumbs / f"{path.stem}_{side}.webp", "WEBP")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    crop = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(crop)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16, help="12 MP JPEGs to generate")
    ap.add_argument("--tree", type=int, default=10_000, help="files in the unchanged-tree re-ingest test")
    ap.add_argument("--model-size", type=int, default=224, help="model input size for the tiny model")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the photos for the CPU medians")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="photoindex-bench-"))
    photos = work / "photos"
    photos.mkdir()
    print(f"generating {args.images} 12 MP JPEGs in {photos} …", file=sys.stderr)
    for i in range(args.images):
        (photos / f"IMG_{i:04d}.jpg").write_bytes(make_photo(i))
    model_dir = build_tiny_clip(work / "models" / "tiny-clip", image_size=args.model_size)
    model = ImageTextEmbedder.load(model_dir, name="tiny-clip")
    results: dict[str, float | int] = {"images": args.images, "megapixels": 12.0, "cores": os.cpu_count() or 1}

    # 1. non-model CPU per image, photoindex vs naive, same files, alternating to share the noise
    home = work / "home-prepare"
    settings = load_settings(home=home, model="tiny-clip", models_path=[work / "models"])
    catalog = Catalog.open(settings.resolved_catalog_url)
    coll = catalog.active_collection()
    config = PrepareConfig(
        catalog_url=settings.resolved_catalog_url, collection_id=coll.id, thumbnails_dir=settings.thumbnails_dir,
        thumbnail_sizes=tuple(settings.thumbnail_sizes), thumbnail_quality=settings.thumbnail_quality,
        max_file_bytes=settings.max_file_bytes, max_image_pixels=settings.max_image_pixels,
        raw_preview_min=settings.raw_preview_min_size, preprocess=model.preprocess,
    )
    files = sorted(photos.iterdir())
    prepare_one(files[0].as_posix(), config, catalog)  # warm imports and caches once for both
    ours, naive = [], []
    # Rounds of each way over all files (not interleaved: one way's full-size decodes would evict
    # the other's caches, which a real ingest never sees); fresh thumbnail folders every round.
    for round_ in range(args.rounds):
        cfg = dataclasses.replace(config, thumbnails_dir=work / f"thumbs-{round_}")
        for f in files:
            start = time.process_time()
            result = prepare_one(f.as_posix(), cfg, catalog)
            ours.append((time.process_time() - start) * 1000)
            assert isinstance(result, Prepared), result
        naive_dir = work / f"naive-thumbs-{round_}"
        naive_dir.mkdir()
        for f in files:
            start = time.process_time()
            naive_prepare(f, args.model_size, naive_dir)
            naive.append((time.process_time() - start) * 1000)
    results["prepare_cpu_ms_median"] = round(statistics.median(ours), 1)
    results["naive_cpu_ms_median"] = round(statistics.median(naive), 1)
    results["prepare_speedup_vs_naive"] = round(statistics.median(naive) / statistics.median(ours), 2)
    catalog.close()

    # 2. end-to-end ingest with the tiny model (process pool, batching, commits), wall clock
    rt = Runtime(load_settings(home=work / "home-e2e", model="tiny-clip", models_path=[work / "models"]))
    report = ingest(rt, [photos])
    assert report.processed == args.images and report.embedded == args.images, report
    results["ingest_images_per_s"] = round(args.images / report.elapsed_s, 2)
    results["ingest_elapsed_s"] = report.elapsed_s
    rt.close()

    # 3. re-ingest of an unchanged tree of small files
    tree = work / "tree"
    rng = np.random.default_rng(0)
    for i in range(args.tree):
        folder = tree / f"{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=80)
    rt = Runtime(load_settings(home=work / "home-tree", model="tiny-clip", models_path=[work / "models"]))
    first = ingest(rt, [tree])
    assert first.processed == args.tree, first
    times = []
    for _ in range(3):
        again = ingest(rt, [tree])
        assert again.skipped_unchanged == args.tree and again.processed == 0, again
        times.append(again.elapsed_s)
    results["tree_files"] = args.tree
    results["tree_first_ingest_s"] = first.elapsed_s
    results["tree_reingest_s_median"] = round(statistics.median(times), 3)
    rt.close()

    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
