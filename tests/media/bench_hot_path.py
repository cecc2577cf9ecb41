"""Time the per-photo CPU work of ingest's prepare stage on a 12-megapixel JPEG (not a test).

    python tests/media/bench_hot_path.py [--runs 30] [--slack 0.05] [--photo PATH]

Prints the median milliseconds of: read + SHA-256 + SHA-1, decode_image(target=1024),
write_thumbnails(256, 1024), a 384x384 model input (`photoindex.ml.preprocess.fit_image`, SigLIP
squash), and the total. Without --photo it makes a 4000x3000 q90 JPEG with EXIF from scikit-image's astronaut
photo, upscaled, with sensor-like noise.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import piexif
from PIL import Image

from photoindex.media.decode import decode_image
from photoindex.media.hashing import read_and_hash
from photoindex.media.thumbnails import write_thumbnails


def make_photo(dest: Path) -> Path:
    from skimage import data

    rng = np.random.default_rng(0)
    base = Image.fromarray(data.astronaut()).resize((4000, 3000), Image.Resampling.BICUBIC)
    noisy = np.asarray(base).astype(np.int16) + rng.normal(0, 6, (3000, 4000, 3)).astype(np.int16)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    exif = {
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"Canon EOS 5D Mark IV",
                piexif.ImageIFD.Orientation: 1},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2023:05:01 10:00:00",
                 piexif.ExifIFD.OffsetTimeOriginal: b"+02:00", piexif.ExifIFD.ExposureTime: (1, 250),
                 piexif.ExifIFD.FNumber: (28, 10), piexif.ExifIFD.ISOSpeedRatings: 200,
                 piexif.ExifIFD.FocalLength: (50, 1)},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N",
                piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2400, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"W", piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (0, 1))},
    }
    img.save(dest, quality=90, exif=piexif.dump(exif))
    return dest


def model_input(img: Image.Image, size: int = 384) -> np.ndarray:
    """The ML layer's own preprocessing (SigLIP-style 384 px squash) when it is importable."""
    try:
        from photoindex.ml.preprocess import fit_image
        from photoindex.ml.specs import Preprocess
    except ImportError:
        return _centre_crop(img, size)
    spec = Preprocess(size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic",
                      resize_mode="squash")
    return fit_image(img, spec)


def _centre_crop(img: Image.Image, size: int) -> np.ndarray:
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    box = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--slack", type=float, default=None)
    parser.add_argument("--photo", type=Path)
    args = parser.parse_args()
    kwargs = {} if args.slack is None else {"slack": args.slack}
    with tempfile.TemporaryDirectory() as tmp:
        photo = args.photo or make_photo(Path(tmp) / "big.jpg")
        stages = ("hash", "decode", "thumbnails", "model_input", "total")
        times: dict[str, list[float]] = {stage: [] for stage in stages}
        for run in range(args.runs + 3):
            root = Path(tmp) / f"thumbs{run}"
            t0 = time.perf_counter()
            fb = read_and_hash(photo, max_bytes=1 << 31)
            t1 = time.perf_counter()
            decoded = decode_image(fb.data, path=photo, target=1024, **kwargs)
            t2 = time.perf_counter()
            write_thumbnails(decoded.image, fb.sha256, root, (256, 1024), 82)
            t3 = time.perf_counter()
            model_input(decoded.image)
            t4 = time.perf_counter()
            if run < 3:
                continue  # warm-up: imports, page cache
            for key, value in (("hash", t1 - t0), ("decode", t2 - t1), ("thumbnails", t3 - t2),
                               ("model_input", t4 - t3), ("total", t4 - t0)):
                times[key].append(value * 1000)
        print(f"photo {photo} ({photo.stat().st_size} bytes), decoded {decoded.image.size} "
              f"from {decoded.width}x{decoded.height} via {decoded.source}")
        for key, values in times.items():
            print(f"{key:12s} median {statistics.median(values):6.2f} ms   min {min(values):6.2f} ms")


if __name__ == "__main__":
    main()
