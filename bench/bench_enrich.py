"""Benchmark: what each enricher costs per photo on this CPU, and what the OCR gate saves, in one run.

    python bench/bench_enrich.py                          # models from ../shared/models
    python bench/bench_enrich.py --models PATH --text-share 0.2 --photos 60

The photo set: the real photos scikit-image ships, cycled, at their own sizes and at 1024 px, with
`--text-share` of them carrying a drawn sign (the OCR gate's job is to tell those apart). Every
enricher engine runs on the same decoded previews, one photo per call for per-photo latency
(median, ms); YOLOX-Nano with 1 ONNX thread and with the default. OCR: the naive way (recognition on
every photo) against the gated way (text detection everywhere, recognition where it passes), in the
same run, with the share of photos the gate skipped and whether it missed any sign. MiniLM: a batch
of 64 captions. The tiny generated CLIP stands in for scene tags (a real SigLIP costs its own
inference; see bench_ingest.py). Medians; machines here are noisy.

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


def per_photo_ms(fn: Callable[[object], object], items: list, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        for item in items:
            started = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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
        photos.append(with_sign(img, SIGNS[i % len(SIGNS)]) if sign else img)
        has_sign.append(sign)
    print(f"{len(photos)} photos, {sum(has_sign)} with a sign; sizes {min(p.width for p in photos)}-"
          f"{max(p.width for p in photos)} px wide\n")

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

    reader = TextReader.load(max_side_len=1024)
    reader.read(photos[:1])
    gate_ms = per_photo_ms(lambda p: reader.gate([p]), photos)
    read_ms = per_photo_ms(lambda p: reader.read([p]), photos)
    rows.append(("ocr: text detection (the gate)", gate_ms, "per photo"))
    rows.append(("ocr: detection + recognition", read_ms, "per photo"))
    threshold = 0.82
    started = time.perf_counter()
    naive = reader.read(photos)
    naive_s = time.perf_counter() - started
    started = time.perf_counter()
    gated = reader.read_gated(photos, threshold=threshold)
    gated_s = time.perf_counter() - started
    skipped = sum(not r.recognized for r in gated)
    missed = sum(1 for r, s in zip(gated, has_sign, strict=True) if s and not r.lines)
    false_pass = sum(1 for r, s in zip(gated, has_sign, strict=True) if not s and r.recognized)

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
    print(f"\nOCR gate (threshold {threshold}): naive (recognise every photo) {naive_s * 1000 / len(photos):.1f} ms/photo, "
          f"gated {gated_s * 1000 / len(photos):.1f} ms/photo -> {naive_s / gated_s:.2f}x faster; "
          f"{skipped}/{len(photos)} photos skipped ({skipped / len(photos):.0%}), "
          f"signs missed {missed}/{sum(has_sign)}, photos without a sign read anyway {false_pass}")
    naive_lines = sum(len(r.lines) for r, s in zip(naive, has_sign, strict=True) if not s)
    print(f"lines the naive way 'read' on photos without a sign (false text): {naive_lines}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
