"""Bytes of a photo → an upright RGB image of about the size we need, its true size, and its EXIF.

This is the hot path of ingest, so each format takes its cheapest road to a *small* image:

* JPEG: libjpeg's DCT scaling (`Image.draft`) decodes at 1/2, 1/4 or 1/8 of the size directly,
  then at most one integer `reduce` and one bilinear resize bring it to the target.
* RAW: the JPEG preview that the camera embedded, when it is large enough; otherwise LibRaw's
  half-size demosaic.
* HEIF: an embedded thumbnail when one is large enough (Sony, Canon), otherwise the full decode.
* everything else: full decode, then integer `reduce` + bilinear resize.

The size check against `max_pixels` runs on the header, before any pixel is decoded. Orientation
is applied after downscaling (cheaper), and `width`/`height` report the original, upright size.

Nothing here reads or writes files: the caller hands over the bytes it read (and hashed) once.
"""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from photoindex.errors import ErrorCode, MediaError
from photoindex.media.exif import exif_from_bytes, exif_from_pil, merge_exif
from photoindex.media.formats import SNIFF_BYTES, MediaFormat, is_avif, mime_for, resolve_format, sniff
from photoindex.schemas import ExifInfo

DEFAULT_SLACK = 0.05
"""How far below `target` the long side of a decoded image may stay to avoid a resampling pass.

Resampling a 12-megapixel photo's 2000 px DCT-scaled decode down to 1024 px costs more than decoding
it at 1/4 scale (1000 px) in the first place; a 1000 px image for a 1024 px target is within 5 %.
`slack=0` makes the long side at least `min(target, original)` exactly.
"""

# EXIF orientation -> the transpose that makes the image upright (EXIF 2.32, 4.6.4 A)
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# LibRaw's `sizes.flip` -> EXIF orientation
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}

_PIL_FORMATS: dict[MediaFormat, list[str]] = {
    MediaFormat.JPEG: ["JPEG"],  # Pillow's JPEG opener returns an MPO image for multi-picture files
    MediaFormat.PNG: ["PNG"],
    MediaFormat.WEBP: ["WEBP"],
    MediaFormat.TIFF: ["TIFF"],
    MediaFormat.BMP: ["BMP", "DIB"],
    MediaFormat.GIF: ["GIF"],
    MediaFormat.HEIF: ["HEIF"],
}
_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

_heif_lock = threading.Lock()
_heif_registered = False


@dataclass
class DecodedImage:
    """A decoded photo. `image` is RGB, upright, and small (see `decode_image`); `width` and `height`
    are the original photo's size, upright."""

    image: Image.Image
    width: int
    height: int
    format: MediaFormat
    mime: str
    exif: ExifInfo = field(default_factory=ExifInfo)
    source: str = "full"
    """Which pixels were decoded: "full", "dct" (JPEG DCT scaling), "thumbnail" (HEIF embedded
    thumbnail), "preview" (RAW embedded preview) or "raw" (RAW half-size demosaic)."""


@dataclass(frozen=True)
class ImageProbe:
    """What the header says, without decoding pixels."""

    format: MediaFormat
    mime: str
    width: int
    height: int
    exif: ExifInfo


# -- errors ----------------------------------------------------------------------------------------

def _label(path: str | Path) -> str:
    text = str(path)
    return repr(text) if text else "the image"


def _classify(exc: BaseException, fmt: MediaFormat, path: str | Path, stage: str) -> MediaError:
    """Turn a decoder exception into a MediaError with the right code and a readable message."""
    if isinstance(exc, MediaError):
        return exc
    text = str(exc) or type(exc).__name__
    low = text.lower()
    name = f"{_label(path)} ({fmt.value})"
    if isinstance(exc, Image.DecompressionBombError):
        return MediaError(f"{name} is too large to decode safely: {text}", code=ErrorCode.IMAGE_TOO_LARGE)
    if "security limit" in low or "exceeds the maximum" in low or "too large" in low:
        return MediaError(f"{name} is too large to decode safely: {text}", code=ErrorCode.IMAGE_TOO_LARGE)
    if isinstance(exc, MemoryError):
        return MediaError(f"{name} needs more memory than is available to decode",
                          code=ErrorCode.IMAGE_TOO_LARGE)
    truncated_words = ("truncated", "premature end", "unexpected end", "not enough data", "end of file",
                       "end of data", "buffer is too small", "incomplete")
    if isinstance(exc, EOFError) or any(word in low for word in truncated_words):
        return MediaError(f"{name} is truncated (the file ends before the image does): {text}",
                          code=ErrorCode.TRUNCATED_IMAGE, hint="the copy may be incomplete; copy it again")
    if isinstance(exc, UnidentifiedImageError):
        return MediaError(f"{name} has a {fmt.value.upper()} signature but its header cannot be read",
                          code=ErrorCode.CORRUPT_IMAGE)
    return MediaError(f"{name} is corrupt: {stage} failed: {text}", code=ErrorCode.CORRUPT_IMAGE)


def _too_large(path: str | Path, width: int, height: int, max_pixels: int) -> MediaError:
    return MediaError(
        f"{_label(path)} is {width}x{height} = {width * height:,} pixels, more than the limit of "
        f"{max_pixels:,} (a decompression bomb, or a really big image)",
        code=ErrorCode.IMAGE_TOO_LARGE,
        hint="raise max_image_pixels (PHOTOINDEX_MAX_IMAGE_PIXELS) if the image is genuine",
        details={"width": width, "height": height, "limit": max_pixels},
    )


# -- Pillow plumbing -------------------------------------------------------------------------------

def _ensure_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if _heif_registered:
            return
        try:
            import pillow_heif
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MediaError("HEIC/HEIF support needs the pillow-heif package",
                             code=ErrorCode.UNSUPPORTED_TYPE, hint="pip install pillow-heif") from exc
        # depth maps and auxiliary images (HDR gain maps...) are never needed here: skip parsing them
        pillow_heif.register_heif_opener(thumbnails=True, depth_images=False, aux_images=False)
        _heif_registered = True


def _ensure_pillow_limit(max_pixels: int) -> None:
    """Let our own check decide: Pillow refuses images above 2 x MAX_IMAGE_PIXELS at open time,
    which would turn away genuine images below `max_pixels`."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _declared_short(data: bytes, fmt: MediaFormat) -> bool:
    """True when the container states a length that the data does not reach (RIFF/WebP)."""
    if fmt is MediaFormat.WEBP and len(data) >= 12:
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    return False


def _open_pil(data: bytes, fmt: MediaFormat, head: bytes, path: str | Path, max_pixels: int) -> Image.Image:
    formats = _PIL_FORMATS[fmt]
    if fmt is MediaFormat.HEIF:
        if is_avif(head):
            from PIL import features

            if not features.check("avif"):
                raise MediaError(f"{_label(path)} is AVIF, which this Pillow build cannot decode",
                                 code=ErrorCode.UNSUPPORTED_TYPE, hint="install Pillow >= 11.3 wheels")
            formats = ["AVIF"]
        else:
            _ensure_heif()
    _ensure_pillow_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # we check the pixel count ourselves, right after this, against our own limit; and
            # Pillow's remarks on odd-but-readable files ("malformed MPO"...) are no failure
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
            return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired first (beyond twice its limit): report it in our words
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(match.group(1)) if match else None
        raise MediaError(
            f"{_label(path)} claims {pixels:,} pixels, more than the limit of {max_pixels:,} "
            "(a decompression bomb, or a really big image)" if pixels else
            f"{_label(path)} is too large to decode safely: {exc}",
            code=ErrorCode.IMAGE_TOO_LARGE,
            hint="raise max_image_pixels (PHOTOINDEX_MAX_IMAGE_PIXELS) if the image is genuine",
            details={"pixels": pixels, "limit": max_pixels} if pixels else {"limit": max_pixels},
        ) from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a MediaError
        if _declared_short(data, fmt):
            exc = EOFError(str(exc))
        raise _classify(exc, fmt, path, "reading the header") from None


def _load(im: Image.Image, data: bytes, fmt: MediaFormat, path: str | Path) -> None:
    try:
        im.load()
    except Exception as exc:  # noqa: BLE001
        if _declared_short(data, fmt):
            exc = EOFError(str(exc))
        raise _classify(exc, fmt, path, "decoding") from None


def _dct_scale(width: int, height: int, target: int, slack: float) -> int:
    """The largest JPEG DCT scale denominator (8, 4, 2, 1) whose result keeps a long side of at least
    target * (1 - slack)."""
    long_side = max(width, height)
    need = target * (1.0 - slack)
    for scale in (8, 4, 2):
        if -(-long_side // scale) >= need:
            return scale
    return 1


def _shrink(im: Image.Image, target: int, slack: float) -> Image.Image:
    """Bring the long side to `target` (or within `slack` below it) with an integer box `reduce`
    and at most one bilinear pass. Never enlarges."""
    width, height = im.size
    long_side = max(width, height)
    if target <= 0 or long_side <= target:
        return im
    need = max(1.0, target * (1.0 - slack))
    factor = int(long_side // need)
    if factor >= 2:
        # ceil(long/factor) >= need still holds: Pillow's reduce rounds up
        im = im.reduce(factor)
        width, height = im.size
        long_side = max(width, height)
    if long_side > target:
        ratio = target / long_side
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        im = im.resize(size, Image.Resampling.BILINEAR)
    return im


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return rgba.convert("RGB")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba.convert("RGB"), mask=alpha)
    return background


def _gray_to_rgb(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), "L").convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB: alpha composited on white, palettes expanded, 16-bit and float
    greyscale scaled (not clipped) to 8 bits, CMYK/YCbCr/LAB converted."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("L", "1", "CMYK", "YCbCr", "HSV"):
        return im.convert("RGB")
    if mode == "P":
        if "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA":
            return _on_white(im.convert("RGBA"))
        return im.convert("RGB")
    if mode in _ALPHA_MODES:
        return _on_white(im)
    if mode.startswith("I;16"):
        arr = np.asarray(im)
        return _gray_to_rgb(arr.astype(np.uint16, copy=False) >> 8)
    if mode == "I":
        arr = np.asarray(im)
        top = int(arr.max()) if arr.size else 0
        if top <= 255:
            return _gray_to_rgb(np.clip(arr, 0, 255))
        if top <= 65535:
            return _gray_to_rgb(np.clip(arr, 0, 65535) >> 8)
        return _gray_to_rgb(np.clip(arr, 0, None) * (255.0 / top))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 0.0
        scale = 255.0 if 0 < top <= 1.0 else (255.0 / top if top > 0 else 0.0)
        return _gray_to_rgb(np.clip(arr * scale, 0, 255))
    if mode == "LAB":
        from PIL import ImageCms

        lab_to_srgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                              "LAB", "RGB")
        return ImageCms.applyTransform(im, lab_to_srgb) or im.convert("RGB")
    return im.convert("RGB")


def rgb_icc_profile(im: Image.Image) -> bytes | None:
    """The image's ICC profile when it describes RGB data (a CMYK, grey or Lab profile left over
    from a conversion to RGB would make viewers show wrong colours)."""
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and len(icc) >= 20 and icc[16:20] == b"RGB ":
        return icc
    return None


def _finish(im: Image.Image) -> None:
    """Metadata hygiene on a decoded image: the pixels are upright now, so no EXIF/XMP orientation
    may travel with them (a later `exif_transpose` would turn them again), and an ICC profile stays
    only when it describes RGB."""
    for key in ("exif", "xmp", "XML:com.adobe.xmp"):
        im.info.pop(key, None)
    if "icc_profile" in im.info and rgb_icc_profile(im) is None:
        del im.info["icc_profile"]


def orient(im: Image.Image, orientation: int | None) -> Image.Image:
    """Apply an EXIF orientation (1-8) to pixels; anything else leaves them as they are."""
    op = _TRANSPOSE.get(orientation or 1)
    return im.transpose(op) if op is not None else im


_pillow_orients_tiff: bool | None = None


def pillow_orients_tiff() -> bool:
    """Whether this Pillow applies a TIFF's Orientation tag itself (Pillow 13 does, on open and load;
    earlier versions leave it to the caller, like every other format). Found out once, by trying."""
    global _pillow_orients_tiff
    if _pillow_orients_tiff is None:
        buf = io.BytesIO()
        Image.new("L", (2, 1)).save(buf, "TIFF", tiffinfo={0x0112: 6})
        buf.seek(0)
        with Image.open(buf) as probe:
            _pillow_orients_tiff = probe.size == (1, 2)
    return _pillow_orients_tiff


def _oriented_size(width: int, height: int, orientation: int | None) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# -- Pillow formats --------------------------------------------------------------------------------

def _orientation_to_apply(im: Image.Image, fmt: MediaFormat, exif: ExifInfo) -> tuple[ExifInfo, int]:
    """(EXIF as reported, orientation still to apply to the pixels and to the header size)."""
    if fmt is MediaFormat.HEIF and im.format == "HEIF":
        # libheif already applied the irot/imir transforms (and pillow-heif reset the EXIF tag)
        original = im.info.get("original_orientation")
        if isinstance(original, int) and 1 <= original <= 8:
            exif = exif.model_copy(update={"orientation": original})
        return exif, 1
    if fmt is MediaFormat.TIFF and pillow_orients_tiff():
        return exif, 1  # Pillow already did (size at open and pixels at load)
    return exif, exif.orientation or 1


def _decode_pil(data: bytes, fmt: MediaFormat, head: bytes, path: str | Path, target: int, max_pixels: int,
                slack: float) -> DecodedImage:
    im = _open_pil(data, fmt, head, path, max_pixels)
    width, height = im.size
    if width <= 0 or height <= 0:
        raise MediaError(f"{_label(path)} says it is {width}x{height} pixels", code=ErrorCode.CORRUPT_IMAGE)
    if width * height > max_pixels:
        raise _too_large(path, width, height, max_pixels)

    pillow_heif_image = fmt is MediaFormat.HEIF and im.format == "HEIF"
    # PNG keeps eXIf wherever it likes (even after the pixels): read it after load, not twice
    exif = None if fmt is MediaFormat.PNG else exif_from_pil(im)

    source = "full"
    if target > 0 and fmt is MediaFormat.JPEG:
        scale = _dct_scale(width, height, target, slack)
        if scale > 1 and im.draft("RGB", (width // scale, height // scale)) is not None:
            source = "dct"
    elif target > 0 and pillow_heif_image:
        need = target * (1.0 - slack)
        ratio = need / max(width, height)
        if ratio < 1.0 and im.draft(None, (math.ceil(width * ratio), math.ceil(height * ratio))):
            source = "thumbnail"

    _load(im, data, fmt, path)
    if exif is None:
        exif = exif_from_pil(im)

    try:
        if im.mode in ("RGB", "L", "CMYK"):  # cheap to resample as they are: shrink first
            small = to_rgb(_shrink(im, target, slack))
        else:
            small = _shrink(to_rgb(im), target, slack)
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - unusual modes that Pillow cannot convert
        raise _classify(exc, fmt, path, "converting to RGB") from None

    exif, applied = _orientation_to_apply(im, fmt, exif)
    # (when nothing had to change, `upright` is the opened image itself: it is not closed, so its
    # pixels stay valid for the caller, and reference counting frees it with the last user)
    upright = orient(small, applied)
    _finish(upright)
    out_w, out_h = _oriented_size(width, height, applied)
    return DecodedImage(upright, out_w, out_h, fmt, mime_for(fmt, path, head), exif, source)


# -- RAW -------------------------------------------------------------------------------------------

def _rawpy() -> Any:
    try:
        import rawpy
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MediaError("RAW support needs the rawpy package", code=ErrorCode.RAW_DECODE_FAILED,
                         hint="pip install rawpy") from exc
    return rawpy


def _raw_container_exif(data: bytes, head: bytes) -> ExifInfo:
    """EXIF straight from the RAW container: TIFF-based files (DNG, NEF, ARW, CR2, PEF, ORF, RW2...)
    carry full IFDs; a RAF carries a JPEG with an APP1 segment."""
    try:
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return exif_from_bytes(data)
        if head[:4] in (b"IIRO", b"IIRS", b"IIU\x00"):  # TIFF with a private magic number
            return exif_from_bytes(b"II*\x00" + data[4:])
        if head[:4] == b"MMOR":
            return exif_from_bytes(b"MM\x00*" + data[4:])
        if head.startswith(b"FUJIFILMCCD-RAW") and len(data) >= 92:
            offset, length = struct.unpack(">II", data[84:92])
            jpeg = data[offset:offset + length]
            if jpeg[:3] == b"\xff\xd8\xff":
                with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as preview:
                    return exif_from_pil(preview)
    except Exception:  # noqa: BLE001 - EXIF is a bonus; the pixels matter more
        return ExifInfo()
    return ExifInfo()


_RAWPY_FIELDS = ("taken_at", "lens", "exposure_time", "f_number", "iso", "focal_length")


def _rawpy_exif(raw: Any) -> ExifInfo:
    """What LibRaw itself parsed (covers formats whose container we do not read, like CR3)."""
    fields: dict[str, Any] = {}
    other = getattr(raw, "other", None)
    if other is not None:
        iso = getattr(other, "iso_speed", None)
        if iso and iso > 0:
            fields["iso"] = round(iso)
        shutter = getattr(other, "shutter_speed", None)
        if shutter and shutter > 0:
            fields["exposure_time"] = float(shutter)
        aperture = getattr(other, "aperture", None)
        if aperture and aperture > 0:
            fields["f_number"] = round(float(aperture), 2)
        focal = getattr(other, "focal_length", None)
        if focal and focal > 0:
            fields["focal_length"] = float(focal)
        stamp = getattr(other, "timestamp", None)
        if stamp is not None and getattr(stamp, "year", 0) > 1970:
            fields["taken_at"] = stamp  # LibRaw's clock reading, without a time zone
    lens = getattr(raw, "lens", None)
    model = getattr(lens, "model", None) if lens is not None else None
    if isinstance(model, str) and model.strip():
        fields["lens"] = model.strip()
    try:
        return ExifInfo(**fields)
    except Exception:  # noqa: BLE001
        return ExifInfo()


def _libraw_text(exc: BaseException) -> str:
    """LibRaw's messages arrive as bytes reprs (b'Unsupported file format...'): make them text."""
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg) or type(exc).__name__


def _raw_preview(raw: Any, rawpy: Any) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawError, MemoryError, ValueError, RuntimeError):
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            data = bytes(thumb.data)
            if data[:3] != b"\xff\xd8\xff":
                return None
            return Image.open(io.BytesIO(data), formats=["JPEG"])
        if thumb.format == rawpy.ThumbFormat.BITMAP:
            arr = np.asarray(thumb.data)
            if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
                return Image.fromarray(arr, "RGB")
            if arr.ndim == 2 and arr.dtype == np.uint8:
                return Image.fromarray(arr, "L")
    except Exception:  # noqa: BLE001 - a broken preview: demosaic instead
        return None
    return None


def _decode_raw(data: bytes, head: bytes, path: str | Path, target: int, max_pixels: int,
                raw_preview_min: int, slack: float) -> DecodedImage:
    rawpy = _rawpy()
    mime = mime_for(MediaFormat.RAW, path, head)
    name = _label(path)
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise MediaError(f"{name} cannot be read as a RAW photo: {_libraw_text(exc)}",
                         code=ErrorCode.RAW_DECODE_FAILED, details={"reason": "unsupported"},
                         hint="LibRaw does not know this file, or it is no RAW file") from None
    except rawpy.LibRawError as exc:
        raise MediaError(f"{name} cannot be read as a RAW photo: {_libraw_text(exc)}",
                         code=ErrorCode.RAW_DECODE_FAILED,
                         hint="the file may be damaged or cut short") from None
    except (MemoryError, ValueError, RuntimeError, OSError) as exc:
        raise MediaError(f"{name} cannot be read as a RAW photo: {exc}",
                         code=ErrorCode.RAW_DECODE_FAILED) from None
    with raw:
        try:
            sizes = raw.sizes
            flip = int(sizes.flip)
            width, height = int(sizes.width), int(sizes.height)
        except (rawpy.LibRawError, AttributeError, ValueError) as exc:
            raise MediaError(f"{name}: LibRaw could not read the image size: {exc}",
                             code=ErrorCode.RAW_DECODE_FAILED) from None
        if width <= 0 or height <= 0:
            raise MediaError(f"{name}: LibRaw reports a size of {width}x{height}",
                             code=ErrorCode.RAW_DECODE_FAILED)
        if width * height > max_pixels:
            raise _too_large(path, width, height, max_pixels)
        orientation = _FLIP_TO_ORIENTATION.get(flip, 1)
        out_w, out_h = _oriented_size(width, height, orientation)

        exif = _raw_container_exif(data, head)
        preview = _raw_preview(raw, rawpy)
        image: Image.Image | None = None
        source = "preview"
        if preview is not None:
            try:
                p_w, p_h = preview.size
                big_enough = max(p_w, p_h) >= min(raw_preview_min, max(width, height))
                if big_enough and p_w * p_h <= max_pixels:
                    exif = merge_exif(exif, exif_from_pil(preview))
                    if target > 0 and preview.format in ("JPEG", "MPO"):
                        scale = _dct_scale(p_w, p_h, target, slack)
                        if scale > 1:
                            preview.draft("RGB", (p_w // scale, p_h // scale))
                    preview.load()
                    image = orient(_shrink(to_rgb(preview), target, slack), orientation)
            except Exception:  # noqa: BLE001 - a broken preview: demosaic instead
                image = None
            finally:
                if image is not preview:  # (it is when the preview needed no change at all)
                    preview.close()
        if image is None:
            source = "raw"
            # half-size skips demosaicing (each 2x2 Bayer block becomes one pixel): fast, and
            # still large enough unless the target asks for more
            half = target > 0 and max(width, height) / 2 >= target * (1.0 - slack)
            try:
                rgb = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)
            except (rawpy.LibRawError, MemoryError, ValueError, RuntimeError) as exc:
                raise MediaError(f"{name}: LibRaw could not demosaic the RAW data: {_libraw_text(exc)}",
                                 code=ErrorCode.RAW_DECODE_FAILED) from None
            # postprocess already applied the camera's orientation (LibRaw's user_flip default)
            image = _shrink(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), target, slack)
        if any(getattr(exif, field_name) is None for field_name in _RAWPY_FIELDS):
            # LibRaw's own metadata (CR3 and other containers we do not parse); asking for it costs
            # LibRaw an unpack of the sensor data, so only when the container left gaps
            exif = merge_exif(exif, _rawpy_exif(raw))
        _finish(image)
        # report the orientation that was applied: LibRaw's reading of the file is the one used
        exif = exif.model_copy(update={"orientation": orientation})
    return DecodedImage(image, out_w, out_h, MediaFormat.RAW, mime, exif, source)


# -- public API ------------------------------------------------------------------------------------

def decode_image(
    data: bytes,
    *,
    path: str | Path = "",
    fmt: MediaFormat | None = None,
    target: int = 1024,
    max_pixels: int = 256_000_000,
    raw_preview_min: int = 1024,
    slack: float = DEFAULT_SLACK,
) -> DecodedImage:
    """Decode `data` (the file's bytes; the file itself is never touched) into an upright RGB image
    whose long side is `target` (or up to `slack` below it), never larger than needed and never
    enlarged. `target <= 0` decodes at full size.

    `path` is only used for the extension (RAW flavours) and for messages. Errors are `MediaError`s:
    FILE_EMPTY, UNSUPPORTED_TYPE, IMAGE_TOO_LARGE (from the header, before decoding), CORRUPT_IMAGE,
    TRUNCATED_IMAGE, RAW_DECODE_FAILED.
    """
    if not data:
        raise MediaError(f"{_label(path)} is empty (0 bytes)", code=ErrorCode.FILE_EMPTY)
    head = bytes(data[:SNIFF_BYTES])
    if fmt is None:
        fmt = resolve_format(path, head)
    if not 0.0 <= slack < 1.0:
        raise ValueError("slack must be in [0, 1)")
    if fmt is MediaFormat.RAW:
        try:
            return _decode_raw(data, head, path, target, max_pixels, raw_preview_min, slack)
        except MediaError as exc:
            # a plain TIFF with a RAW extension (a scan saved as .dng, say): content wins
            if exc.details.get("reason") == "unsupported" and sniff(head) is MediaFormat.TIFF:
                try:
                    return _decode_pil(data, MediaFormat.TIFF, head, path, target, max_pixels, slack)
                except MediaError:
                    pass
            raise
    return _decode_pil(data, fmt, head, path, target, max_pixels, slack)


def probe_image(data: bytes, *, path: str | Path = "", fmt: MediaFormat | None = None,
                max_pixels: int = 256_000_000) -> ImageProbe:
    """Format, upright size and EXIF from the header only (no pixels are decoded).

    PNG EXIF is not read here (Pillow finds it only after decoding the pixels)."""
    if not data:
        raise MediaError(f"{_label(path)} is empty (0 bytes)", code=ErrorCode.FILE_EMPTY)
    head = bytes(data[:SNIFF_BYTES])
    if fmt is None:
        fmt = resolve_format(path, head)
    if fmt is MediaFormat.RAW:
        rawpy = _rawpy()
        try:
            with rawpy.imread(io.BytesIO(data)) as raw:
                sizes = raw.sizes
                orientation = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
                width, height = _oriented_size(int(sizes.width), int(sizes.height), orientation)
                exif = _raw_container_exif(data, head)
                if any(getattr(exif, field_name) is None for field_name in _RAWPY_FIELDS):
                    exif = merge_exif(exif, _rawpy_exif(raw))
                exif = exif.model_copy(update={"orientation": orientation})
        except rawpy.LibRawError as exc:
            raise MediaError(f"{_label(path)} cannot be read as a RAW photo: {exc}",
                             code=ErrorCode.RAW_DECODE_FAILED) from None
        return ImageProbe(fmt, mime_for(fmt, path, head), width, height, exif)
    im = _open_pil(data, fmt, head, path, max_pixels)
    with im:
        width, height = im.size
        exif = ExifInfo() if fmt is MediaFormat.PNG and "exif" not in im.info else exif_from_pil(im)
        exif, applied = _orientation_to_apply(im, fmt, exif)
        width, height = _oriented_size(width, height, applied)
    return ImageProbe(fmt, mime_for(fmt, path, head), width, height, exif)


def open_oriented(data: bytes, *, path: str | Path = "", fmt: MediaFormat | None = None,
                  max_pixels: int = 256_000_000) -> Image.Image:
    """The full-resolution image, RGB and upright (for edits and exports, not the hot path)."""
    decoded = decode_image(data, path=path, fmt=fmt, target=0, max_pixels=max_pixels, raw_preview_min=1 << 30)
    return decoded.image


__all__ = [
    "DEFAULT_SLACK",
    "DecodedImage",
    "ImageProbe",
    "decode_image",
    "open_oriented",
    "orient",
    "probe_image",
    "rgb_icc_profile",
    "to_rgb",
]
