"""A small photo library built from real photos that scikit-image ships, with real EXIF (piexif)."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import piexif
from PIL import Image


def skimage_photos() -> dict[str, Image.Image]:
    from skimage import data

    return {
        "astronaut": Image.fromarray(data.astronaut()),
        "coffee": Image.fromarray(data.coffee()),
        "cat": Image.fromarray(data.chelsea()),
        "rocket": Image.fromarray(data.rocket()),
        "motorcycle": Image.fromarray(data.stereo_motorcycle()[0]),
    }


def exif_bytes(make: str | None = None, model: str | None = None, taken: datetime | None = None, *,
               offset: str | None = None, description: str | None = None, subsec: str | None = None) -> bytes:
    """An EXIF payload (piexif) with the fields given; b"" when none is."""
    zeroth: dict = {}
    exif_ifd: dict = {}
    if make:
        zeroth[piexif.ImageIFD.Make] = make.encode()
    if model:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if description:
        zeroth[piexif.ImageIFD.ImageDescription] = description.encode()
    if taken:
        exif_ifd[piexif.ExifIFD.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S").encode()
    if offset:
        exif_ifd[piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if subsec:
        exif_ifd[piexif.ExifIFD.SubSecTimeOriginal] = subsec.encode()
    return piexif.dump({"0th": zeroth, "Exif": exif_ifd}) if (zeroth or exif_ifd) else b""


def jpeg_bytes(img: Image.Image, *, taken: datetime | None = None, make: str | None = None,
               model: str | None = None, offset: str | None = None, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    exif = exif_bytes(make, model, taken, offset=offset)
    img.convert("RGB").save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


# name -> (photo, when, make, model); dates and cameras differ so filters have something to select
LIBRARY = {
    "trips/rocket.jpg": ("rocket", datetime(2021, 5, 4, 9, 30), "NIKON CORPORATION", "NIKON Z 6"),
    "trips/astronaut.jpg": ("astronaut", datetime(2021, 5, 5, 11, 0), "NIKON CORPORATION", "NIKON Z 6"),
    "home/coffee.jpg": ("coffee", datetime(2023, 1, 2, 8, 15), "Apple", "iPhone 13"),
    "home/cat.jpg": ("cat", datetime(2023, 8, 9, 18, 45), "Apple", "iPhone 13"),
    "home/garage/motorcycle.jpg": ("motorcycle", None, None, None),
}


def build_library(root: Path, photos: dict[str, Image.Image] | None = None) -> dict[str, Path]:
    """Write LIBRARY under root; returns name -> path."""
    photos = photos or skimage_photos()
    out = {}
    for rel, (key, taken, make, model) in LIBRARY.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(photos[key], taken=taken, make=make, model=model))
        out[rel] = path
    return out
