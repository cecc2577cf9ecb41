"""Benchmark: what each enricher costs per photo on this CPU, and what the OCR gate saves, in one run.

    python bench/bench_enrich.py                          # models from ../shared/models
    python bench/bench_enrich.py --models PATH --text-share 0.2 --photos 60

The photo set: the real photos scikit-image ships, cycled, at their own sizes and at 1024 px, with
`--text-share` of them carrying a drawn sign (56, 14 or 20 px glyphs; the OCR gate's job is to tell
those apart). Every enricher engine runs on the same decoded previews, one photo per call for
per-photo latency (median, ms); YOLOX-Nano with 1 ONNX thread and with the default. OCR: the cheap
gate (text detection at 480 px), the full-size detection, and a full read (detection + recognition)
per photo; then, timed photo by photo and summed over sets with 10 % and `--text-share` signs, the
naive way (read every photo) against the cheap gate (read where it passes) and the full-size gate
(recognise where it passes, reusing its detection), with the photos each skipped, signs missed and
text-free photos read anyway. MiniLM: a batch of 64 captions. The tiny generated CLIP stands in for
scene tags (a real SigLIP costs its own inference; see bench_ingest.py). Medians; machines here are
noisy, so the load average is printed at the start and the end.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from photoindex.ml.clip import ImageTextEmbedder  # noqa: E402
from photoindex.ml.detect import ObjectDetector  # noqa: E402
from photoindex.ml.ocr import TextReader  # noqa: E402
from photoindex.ml.quality import technical_quality  # noqa: E402
from photoindex.ml.testing import build_tiny_clip  # noqa: E402
from photoindex.ml.text_embed import SentenceEmbedder, default_text_model_path  # noqa: E402
from photoindex.ml.zeroshot import zero_shot_tags  # noqa: E402
from support.library import skimage_photos  # noqa: E402
from support.text_photos import with_sign  # noqa: E402

SIGNS = [["OPEN 24 HOURS"], ["EXIT", "PLATFORM 2"], ["FRESH COFFEE", "2.50"], ["NO PARKING"]]
SIGN_SIZES = (None, 14, 20)  # glyph px; None: with_sign's default, 1/18 of the photo's width


def per_photo_ms(fn: Callable[[object], object], items: list, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        for item in items:
            started = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def timed(fn: Callable[[object], object], items: list) -> tuple[list, list[float]]:
    """Each item's result and milliseconds, one call per item."""
    results, ms = [], []
    for item in items:
        started = time.perf_counter()
        results.append(fn(item))
        ms.append((time.perf_counter() - started) * 1000)
    return results, ms


def bench_ocr(photos: list, has_sign: list[bool], rows: list[tuple[str, float, str]]) -> list[str]:
    """Per-photo OCR costs into `rows`; returns the report of naive against gated reading."""
    cheap = TextReader.load(max_side_len=1024)  # the default: a 480 px gate
    full = TextReader.load(max_side_len=1024, gate_side_len=None)
    cheap.read_gated(photos[:1], hints=[True])
    full.read(photos[:1])
    rows.append((f"ocr: cheap gate (detection at {cheap.gate_side_len} px)",
                 per_photo_ms(lambda p: cheap.gate([p]), photos), "per photo"))
    rows.append(("ocr: full-size detection (1024 px)", per_photo_ms(lambda p: full.gate([p]), photos),
                 "per photo"))
    naive, naive_ms = timed(lambda p: cheap.read([p])[0], photos)
    rows.append(("ocr: full read, detection + recognition", statistics.median(naive_ms), "per photo"))
    ways = {
        f"cheap gate ({cheap.gate_side_len} px, >= {cheap.default_threshold})":
            timed(lambda p: cheap.read_gated([p])[0], photos),
        f"full-size gate (>= {full.default_threshold})": timed(lambda p: full.read_gated([p])[0], photos),
    }
    signed = [i for i, s in enumerate(has_sign) if s]
    plain = [i for i, s in enumerate(has_sign) if not s]
    report = []
    for share in sorted({0.10, sum(has_sign) / len(photos)}):
        chosen = plain + signed[: round(len(plain) * share / (1 - share))]
        naive_total = sum(naive_ms[i] for i in chosen)
        n_signs = len(chosen) - len(plain)
        report.append(f"\n{len(chosen)} photos, {n_signs} with a sign ({n_signs / len(chosen):.0%}); naive "
                      f"(read every photo) {naive_total / len(chosen):.0f} ms/photo, text-free photos with "
                      f"some line read: {sum(bool(naive[i].lines) for i in plain)}/{len(plain)}")
        for way, (results, ms) in ways.items():
            total = sum(ms[i] for i in chosen)
            skipped = sum(not results[i].recognized for i in chosen)
            missed = sum(not results[i].recognized for i in chosen if has_sign[i])
            false_pass = sum(results[i].recognized for i in plain)
            report.append(f"  {way:<34} {total / len(chosen):6.0f} ms/photo -> {naive_total / total:.2f}x "
                          f"faster than naive; skipped {skipped}/{len(chosen)}, signs missed "
                          f"{missed}/{n_signs}, text-free photos read anyway {false_pass}/{len(plain)}")
    return report


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path,
                        default=Path(os.environ.get("PHOTOINDEX_TEST_SHARED_MODELS") or here.parent / "shared" / "models"))
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--text-share", type=float, default=0.25)
    args = parser.parse_args()

    base = skimage_photos()
    names = sorted(base)
    photos, has_sign = [], []
    for i in range(args.photos):
        img = base[names[i % len(names)]].convert("RGB")
        if i % 2:
            img = img.resize((1024, round(1024 * img.height / img.width)))
        sign = i < round(args.photos * args.text_share)
        size = SIGN_SIZES[(i // 2) % len(SIGN_SIZES)]
        photos.append(with_sign(img, SIGNS[i % len(SIGNS)], size=size) if sign else img)
        has_sign.append(sign)
    print(f"{len(photos)} photos, {sum(has_sign)} with a sign; sizes {min(p.width for p in photos)}-"
          f"{max(p.width for p in photos)} px wide; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs\n")

    rows: list[tuple[str, float, str]] = []
    det1 = ObjectDetector.load(args.models / "yolox-nano-coco", intra_op_threads=1)
    det1.detect(photos[:1])
    rows.append(("objects: YOLOX-Nano (1 thread)", per_photo_ms(lambda p: det1.detect([p]), photos), "per photo"))
    det = ObjectDetector.load(args.models / "yolox-nano-coco")
    det.detect(photos[:1])
    rows.append(("objects: YOLOX-Nano (default threads)", per_photo_ms(lambda p: det.detect([p]), photos), "per photo"))

    with tempfile.TemporaryDirectory() as tmp:
        clip = ImageTextEmbedder.load(build_tiny_clip(Path(tmp) / "tiny-clip", anchors=base), name="tiny-clip")
        vectors = clip.embed_pil(photos)
        labels = ["person", "cat", "cup", "rocket", "motorcycle", "sign", "street", "beach"]
        zero_shot_tags(vectors[:1], clip, labels, threshold=0.2)
        started = time.perf_counter()
        zero_shot_tags(vectors, clip, labels, threshold=0.2)
        rows.append(("tags: zero-shot from stored vectors", (time.perf_counter() - started) * 1000 / len(photos),
                     "per photo, no decode"))

    rows.append(("quality: sharpness/exposure/noise", per_photo_ms(technical_quality, photos), "per photo"))

    ocr_report = bench_ocr(photos, has_sign, rows)

    path = default_text_model_path()
    if path is not None:
        text = SentenceEmbedder.load(path)
        captions = [f"a photo of a {n} on a sunny day, with a sign that reads open" for n in names] * 13
        text.embed(captions[:8])
        started = time.perf_counter()
        text.embed(captions[:64])
        rows.append(("text: MiniLM sentence vector", (time.perf_counter() - started) * 1000 / 64, "per photo, batch 64"))

    print(f"{'enricher':<42}{'ms':>9}  unit")
    for name, ms, unit in rows:
        print(f"{name:<42}{ms:>9.1f}  {unit}")
    print("\n".join(ocr_report))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
