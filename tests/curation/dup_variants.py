"""A labelled variant set for duplicate detection, built from real photos.

Families: each base photo is saved as an original with camera EXIF, then varied: a byte copy, metadata-
only edits, JPEG re-encodes at several qualities, resizes, 5-10 % crops, rotations and mirrors. Bursts:
shifted frames (and a tripod burst of near-identical frames) from one camera with capture times under a
second apart. Distinct photos: other real photos, one of them shot by a family's camera minutes later.

Every file carries its truth: the family (or burst) it belongs to and the tier that should explain its
link to the original, so the tests can score precision and recall per tier.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import piexif
from PIL import Image
from support.library import exif_bytes

# the tier that explains a variant's link to its original (and to the other variants of its family)
VARIANTS: dict[str, str] = {
    "copy": "exact",
    "meta_edit": "pixels", "meta_stripped": "pixels",
    "q85": "perceptual", "q70": "perceptual", "q50": "perceptual",
    "half": "perceptual", "quarter": "perceptual",
    "rot90": "perceptual", "rot180": "perceptual", "rot270": "perceptual",
    "mirror": "perceptual", "mirror_rot90": "perceptual",
    "crop5": "near", "crop10": "near",
}
TIER_STRENGTH = {"exact": 0, "pixels": 1, "perceptual": 2, "near": 3}
FAMILY_CAMERAS = {"astronaut": ("NIKON CORPORATION", "NIKON Z 6"), "coffee": ("Apple", "iPhone 13"),
                  "cat": ("Canon", "Canon EOS R5"), "rocket": ("FUJIFILM", "X-T4")}


@dataclass(frozen=True)
class Item:
    path: Path
    family: str | None  # duplicate family (base photo), None for bursts and distinct photos
    variant: str  # "original", a VARIANTS key, "frame<n>" or "distinct"
    burst: str | None = None


def save_jpeg(img: Image.Image, path: Path, quality: int, exif: bytes | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    img.convert("RGB").save(buf, "JPEG", quality=quality, **kwargs)
    path.write_bytes(buf.getvalue())


def _crop(img: Image.Image, fraction: float, *, centred: bool) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * fraction), round(h * fraction)
    if centred:
        return img.crop((dx // 2, dy // 2, w - (dx - dx // 2), h - (dy - dy // 2)))
    return img.crop((dx, dy, w, h))


def _variant(img: Image.Image, name: str) -> Image.Image:
    t = Image.Transpose
    return {
        "half": lambda: img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS),
        "quarter": lambda: img.resize((img.width // 4, img.height // 4), Image.Resampling.LANCZOS),
        "rot90": lambda: img.transpose(t.ROTATE_90),
        "rot180": lambda: img.transpose(t.ROTATE_180),
        "rot270": lambda: img.transpose(t.ROTATE_270),
        "mirror": lambda: img.transpose(t.FLIP_LEFT_RIGHT),
        "mirror_rot90": lambda: img.transpose(t.FLIP_LEFT_RIGHT).transpose(t.ROTATE_90),
        "crop5": lambda: _crop(img, 0.05, centred=True),
        "crop10": lambda: _crop(img, 0.10, centred=False),
    }[name]()


def build_family(root: Path, name: str, photo: Image.Image, taken: datetime) -> list[Item]:
    make, model = FAMILY_CAMERAS[name]
    exif = exif_bytes(make, model, taken)
    original = root / "originals" / f"{name}.jpg"
    save_jpeg(photo, original, 95, exif)
    items = [Item(original, name, "original")]
    data = original.read_bytes()
    copy = root / "backup" / f"{name}.jpg"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(original, copy)
    items.append(Item(copy, name, "copy"))
    edited = io.BytesIO()
    piexif.insert(exif_bytes(make, model, taken, description="edited caption"), data, edited)
    (root / "edited").mkdir(parents=True, exist_ok=True)
    (root / "edited" / f"{name}-caption.jpg").write_bytes(edited.getvalue())
    items.append(Item(root / "edited" / f"{name}-caption.jpg", name, "meta_edit"))
    stripped = io.BytesIO()
    piexif.remove(data, stripped)
    (root / "edited" / f"{name}-noexif.jpg").write_bytes(stripped.getvalue())
    items.append(Item(root / "edited" / f"{name}-noexif.jpg", name, "meta_stripped"))
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    for q in (85, 70, 50):
        path = root / "exports" / f"{name}-q{q}.jpg"
        save_jpeg(decoded, path, q, exif)
        items.append(Item(path, name, f"q{q}"))
    for variant in ("half", "quarter", "rot90", "rot180", "rot270", "mirror", "mirror_rot90", "crop5", "crop10"):
        path = root / "variants" / f"{name}-{variant}.jpg"
        save_jpeg(_variant(decoded, variant), path, 90, exif)
        items.append(Item(path, name, variant))
    return items


def _shifted(img: Image.Image, shift: float, window: float = 0.9) -> Image.Image:
    w, h = img.size
    cw = round(w * window)
    dx = round(w * shift)
    return img.crop((dx, 0, dx + cw, h))


def build_burst(root: Path, name: str, photo: Image.Image, camera: tuple[str, str], start: datetime, *,
                frames: int = 4, tripod: bool = False) -> list[Item]:
    """Frames less than a second apart: panning (shifted crops) or, on a tripod, the same framing with
    sensor noise and a slight exposure drift."""
    items = []
    rng = np.random.default_rng(len(name))
    for n in range(frames):
        when = start + timedelta(milliseconds=450 * n)
        if tripod:
            arr = np.asarray(photo.convert("RGB"), dtype=np.float32) * (1 + 0.01 * n)
            arr += rng.normal(0, 2.0, arr.shape)
            frame = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        else:
            frame = _shifted(photo, 0.02 * n)
        path = root / "bursts" / f"{name}-{n}.jpg"
        save_jpeg(frame, path, 92, exif_bytes(*camera, when.replace(microsecond=0),
                                               subsec=f"{when.microsecond // 1000:03d}"))
        items.append(Item(path, None, f"frame{n}", burst=name))
    return items


def build_variant_set(root: Path, bases: dict[str, Image.Image], bursts: dict[str, Image.Image],
                      distinct: dict[str, Image.Image]) -> list[Item]:
    items: list[Item] = []
    for n, (name, photo) in enumerate(bases.items()):
        items += build_family(root, name, photo, datetime(2022, 3, 1 + n, 10, 0, 0))
    for n, (name, photo) in enumerate(bursts.items()):
        items += build_burst(root, name, photo, ("SONY", "ILCE-7M3"), datetime(2023, 6, 1, 12, n * 5, 0),
                             tripod=n % 2 == 1)
    for n, (name, photo) in enumerate(distinct.items()):
        path = root / "distinct" / f"{name}.jpg"
        # the first one: a family's camera, minutes after that family's original (same camera, no burst)
        exif = exif_bytes(*FAMILY_CAMERAS["astronaut"], datetime(2022, 3, 1, 10, 5, 0)) if n == 0 else None
        save_jpeg(photo, path, 92, exif)
        items.append(Item(path, None, "distinct"))
    return items
