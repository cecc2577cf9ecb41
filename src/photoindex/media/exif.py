"""EXIF → `ExifInfo`: capture time, camera, exposure, GPS, orientation, and the rest as JSON.

Cameras and editors write every field in creative ways (empty strings, `0000:00:00 00:00:00`, 0/0
rationals, bytes where text belongs, references in lower case). Nothing here raises on bad values:
a field that cannot be understood becomes None and the photo is still indexed.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image, TiffImagePlugin

from photoindex.schemas import ExifInfo

# IFD pointers and the tags we read by number (ids from the EXIF 2.32 / TIFF 6 specs).
IFD_EXIF = 0x8769
IFD_GPS = 0x8825
IFD_INTEROP = 0xA005

TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_EXPOSURE_TIME = 0x829A
TAG_F_NUMBER = 0x829D
TAG_ISO = 0x8827  # ISOSpeedRatings / PhotographicSensitivity
TAG_SOS = 0x8831  # StandardOutputSensitivity
TAG_REI = 0x8832  # RecommendedExposureIndex
TAG_ISO_SPEED = 0x8833
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012
TAG_SHUTTER_SPEED_VALUE = 0x9201
TAG_APERTURE_VALUE = 0x9202
TAG_FOCAL_LENGTH = 0x920A
TAG_SUBSEC_TIME = 0x9290
TAG_SUBSEC_TIME_ORIGINAL = 0x9291
TAG_SUBSEC_TIME_DIGITIZED = 0x9292
TAG_USER_COMMENT = 0x9286
TAG_LENS_MODEL = 0xA434

GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

# Never copied into `raw`: pointers, offsets, thumbnails, vendor blobs, embedded documents.
_SKIP_TAGS = frozenset({
    IFD_EXIF, IFD_GPS, IFD_INTEROP,
    0x927C,  # MakerNote
    0x0111, 0x0117, 0x0144, 0x0145,  # Strip/Tile offsets and byte counts
    0x0201, 0x0202,  # JPEGInterchangeFormat(Length): the embedded thumbnail
    0x014A,  # SubIFDs
    0x02BC,  # XMP packet
    0x83BB,  # IPTC
    0x8649,  # Photoshop image resources
    0x8773,  # ICC profile
    0xC4A5,  # PrintImageMatching
    0xC634,  # DNGPrivateData
    0xC612, 0xC613,  # DNGVersion / DNGBackwardVersion (bytes)
    0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F,  # Windows XP* tags (UCS-2 bytes)
    0xEA1C,  # Microsoft padding
    0xA302,  # CFAPattern
    0x9214,  # SubjectArea (vector)
})
_MAX_BYTES_KEPT = 64
_MAX_SEQUENCE_KEPT = 64
_MAX_TEXT_KEPT = 2000

_DATETIME_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+\-]\d{1,2}(?::?\d{2})?)?\s*$"
)
_OFFSET_RE = re.compile(r"^\s*(Z|([+\-])(\d{1,2})(?::?(\d{2}))?)\s*$")


# -- value helpers ---------------------------------------------------------------------------------

def _to_float(value: Any) -> float | None:
    """A finite float from an int, float, IFDRational, (num, den) pair or numeric string."""
    try:
        if isinstance(value, (tuple, list)):
            if len(value) == 2 and all(isinstance(v, int) for v in value):  # raw (num, den)
                num, den = value
                return None if den == 0 else _finite(num / den)
            if len(value) == 1:
                return _to_float(value[0])
            return None
        if isinstance(value, TiffImagePlugin.IFDRational):
            if value.denominator == 0:
                return None
            return _finite(float(value))
        if isinstance(value, bytes):
            value = value.decode("ascii", "ignore")
        if isinstance(value, str):
            value = value.strip().strip("\x00")
            if "/" in value:
                num, _, den = value.partition("/")
                den_f = float(den)
                return None if den_f == 0 else _finite(float(num) / den_f)
        return _finite(float(value))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _to_int(value: Any) -> int | None:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        if len(value) == 1:
            return value[0]
        value = value.decode("ascii", "ignore").strip("\x00 ")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    number = _to_float(value)
    if number is None or abs(number) > 2**53:
        return None
    return round(number)


def _to_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.split("\x00", 1)[0].strip()
    return value or None


# -- dates -----------------------------------------------------------------------------------------

def _parse_offset(value: Any) -> timezone | None:
    text = _to_text(value)
    if not text:
        return None
    match = _OFFSET_RE.match(text)
    if not match:
        return None
    if match.group(1) == "Z":
        return UTC
    sign = -1 if match.group(2) == "-" else 1
    hours, minutes = int(match.group(3)), int(match.group(4) or 0)
    if hours > 18 or minutes >= 60:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_exif_datetime(value: Any, subsec: Any = None, offset: Any = None) -> datetime | None:
    """`YYYY:MM:DD HH:MM:SS` (+ sub-seconds, + `±HH:MM`) → datetime; aware only when an offset is known.

    Returns None for blanks, zeros and impossible dates instead of raising.
    """
    text = _to_text(value)
    if not text:
        return None
    match = _DATETIME_RE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, inline_tz = match.groups()
    try:
        year_i, month_i, day_i = int(year), int(month), int(day)
        if year_i < 1800 or month_i == 0 or day_i == 0:
            return None
        sec = int(second or 0)
        sec = min(sec, 59)  # a leap second (":60") is not worth losing the date over
        micro = 0
        digits = fraction or ""
        if not digits:
            sub = _to_text(subsec)
            if sub:
                sub = sub.strip()
                digits = sub if sub.isdigit() else ""
        if digits:
            micro = int((digits + "000000")[:6])
        result = datetime(year_i, month_i, day_i, int(hour or 0), int(minute or 0), sec, micro)
    except (TypeError, ValueError, OverflowError):
        return None
    tz = _parse_offset(inline_tz) if inline_tz else None
    if tz is None:
        tz = _parse_offset(offset)
    return result.replace(tzinfo=tz) if tz is not None else result


# -- GPS -------------------------------------------------------------------------------------------

def _dms_to_degrees(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)):
        return _to_float(value)
    parts = [_to_float(v) for v in value]
    if not parts or parts[0] is None:
        return None
    degrees = parts[0]
    minutes = parts[1] if len(parts) > 1 and parts[1] is not None else 0.0
    seconds = parts[2] if len(parts) > 2 and parts[2] is not None else 0.0
    if minutes < 0 or seconds < 0 or minutes >= 60 or seconds >= 60:
        return None
    sign = -1.0 if degrees < 0 else 1.0
    return sign * (abs(degrees) + minutes / 60.0 + seconds / 3600.0)


def _ref(value: Any) -> str:
    text = _to_text(value)
    return text[:1].upper() if text else ""


def _gps(gps: Mapping[int, Any]) -> tuple[float | None, float | None, float | None]:
    lat = _dms_to_degrees(gps.get(GPS_LAT))
    lon = _dms_to_degrees(gps.get(GPS_LON))
    if lat is not None:
        lat = -abs(lat) if _ref(gps.get(GPS_LAT_REF)) == "S" else lat
        if abs(lat) > 90:
            lat = None
    if lon is not None:
        lon = -abs(lon) if _ref(gps.get(GPS_LON_REF)) == "W" else lon
        if abs(lon) > 180:
            lon = None
    if lat is None or lon is None:
        lat = lon = None  # half a position is no position
    elif lat == 0.0 and lon == 0.0:
        lat = lon = None  # "no fix" written as zeros, not a photo taken at 0°N 0°E
    alt = _to_float(gps.get(GPS_ALT))
    if alt is not None:
        if _to_int(gps.get(GPS_ALT_REF)) == 1:
            alt = -abs(alt)
        if abs(alt) > 100_000:  # beyond the stratosphere: garbage
            alt = None
    return lat, lon, alt


# -- raw JSON --------------------------------------------------------------------------------------

def _json_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, TiffImagePlugin.IFDRational):
        return _to_float(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, str):
        text = value.split("\x00", 1)[0].strip()
        return text[:_MAX_TEXT_KEPT] if text else None
    if isinstance(value, bytes):
        if len(value) > _MAX_BYTES_KEPT:
            return None
        stripped = value.rstrip(b"\x00")
        if stripped and all(32 <= b < 127 for b in stripped):
            return stripped.decode("ascii").strip() or None
        return value.hex() if value else None
    if isinstance(value, (tuple, list)) and depth < 2:
        if len(value) > _MAX_SEQUENCE_KEPT:
            return None
        items = [_json_value(v, depth + 1) for v in value]
        return items[0] if len(items) == 1 else items
    return None


def _user_comment(value: Any) -> str | None:
    if not isinstance(value, bytes) or len(value) < 8:
        return _to_text(value)
    head, body = value[:8], value[8:]
    try:
        if head.startswith(b"ASCII"):
            text = body.decode("ascii", "replace")
        elif head.startswith(b"UNICODE"):
            text = body.decode("utf-16-be" if body[:1] == b"\x00" else "utf-16-le", "replace")
        elif head == b"\x00" * 8:
            text = body.decode("utf-8", "replace")
        else:
            return None
    except (UnicodeDecodeError, LookupError):
        return None
    text = text.replace("\x00", "").strip()
    return text[:_MAX_TEXT_KEPT] or None


def _raw_tags(ifd0: Mapping[int, Any], exif_ifd: Mapping[int, Any], gps: Mapping[int, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tags, names in ((ifd0, ExifTags.TAGS), (exif_ifd, ExifTags.TAGS), (gps, ExifTags.GPSTAGS)):
        for tag, value in tags.items():
            if tag in _SKIP_TAGS or not isinstance(tag, int):
                continue
            name = names.get(tag)
            if name is None:
                continue
            if tag == TAG_USER_COMMENT and names is ExifTags.TAGS:
                converted = _user_comment(value)
            else:
                converted = _json_value(value)
            if converted is not None and converted != []:
                out[name] = converted
    return out


# -- entry points ----------------------------------------------------------------------------------

def _quiet_pillow() -> None:
    """Inside `catch_warnings`: silence Pillow's "Corrupt EXIF data" UserWarnings (damaged values
    become None here anyway), and nothing else."""
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")


def _safe_ifd(exif: Image.Exif, tag: int) -> Mapping[int, Any]:
    try:
        ifd = exif.get_ifd(tag)
    except Exception:  # noqa: BLE001 - a broken pointer must not cost the other tags
        return {}
    return ifd if isinstance(ifd, Mapping) else {}


def exif_from_exif(exif: Image.Exif | Mapping[int, Any] | None) -> ExifInfo:
    """`ExifInfo` from a Pillow `Image.Exif` (IFD0 with its Exif and GPS sub-IFDs)."""
    with warnings.catch_warnings():
        # Pillow warns ("Corrupt EXIF data") on damaged IFDs; damaged values become None here anyway
        _quiet_pillow()
        return _exif_from_exif(exif)


def _exif_from_exif(exif: Image.Exif | Mapping[int, Any] | None) -> ExifInfo:
    if exif is None:
        return ExifInfo()
    try:
        ifd0: Mapping[int, Any] = dict(exif.items())
    except Exception:  # noqa: BLE001
        return ExifInfo()
    if isinstance(exif, Image.Exif):
        exif_ifd = _safe_ifd(exif, IFD_EXIF)
        gps = _safe_ifd(exif, IFD_GPS)
    else:
        exif_ifd = exif.get(IFD_EXIF) if isinstance(exif.get(IFD_EXIF), Mapping) else {}
        gps = exif.get(IFD_GPS) if isinstance(exif.get(IFD_GPS), Mapping) else {}

    def tag(number: int) -> Any:
        value = exif_ifd.get(number)
        return value if value is not None else ifd0.get(number)

    taken_at = (
        parse_exif_datetime(tag(TAG_DATETIME_ORIGINAL), tag(TAG_SUBSEC_TIME_ORIGINAL),
                            tag(TAG_OFFSET_TIME_ORIGINAL))
        or parse_exif_datetime(tag(TAG_DATETIME_DIGITIZED), tag(TAG_SUBSEC_TIME_DIGITIZED),
                               tag(TAG_OFFSET_TIME_DIGITIZED))
        or parse_exif_datetime(ifd0.get(TAG_DATETIME), tag(TAG_SUBSEC_TIME), tag(TAG_OFFSET_TIME))
    )

    exposure = _to_float(tag(TAG_EXPOSURE_TIME))
    if exposure is None:
        apex = _to_float(tag(TAG_SHUTTER_SPEED_VALUE))
        if apex is not None and -20 < apex < 40:
            exposure = 2.0 ** (-apex)
    if exposure is not None and not 0 < exposure < 86_400:
        exposure = None

    f_number = _to_float(tag(TAG_F_NUMBER))
    if f_number is None or f_number <= 0:
        apex = _to_float(tag(TAG_APERTURE_VALUE))
        f_number = math.sqrt(2.0) ** apex if apex is not None and 0 <= apex < 40 else None
    if f_number is not None and not 0 < f_number < 1000:
        f_number = None

    iso = _to_int(tag(TAG_ISO))
    if iso is None or iso <= 0 or iso == 65535:  # 65535: "too high for this field, see the others"
        better = [v for v in (_to_int(tag(t)) for t in (TAG_REI, TAG_ISO_SPEED, TAG_SOS)) if v and v > 0]
        iso = better[0] if better else iso
    if iso is not None and not 0 < iso < 10_000_000:
        iso = None

    focal = _to_float(tag(TAG_FOCAL_LENGTH))
    if focal is not None and not 0 < focal < 100_000:
        focal = None

    orientation = _to_int(ifd0.get(TAG_ORIENTATION))
    if orientation is not None and not 1 <= orientation <= 8:
        orientation = None

    lat, lon, alt = _gps(gps) if gps else (None, None, None)

    try:
        raw = _raw_tags(ifd0, exif_ifd, gps)
    except Exception:  # noqa: BLE001
        raw = {}

    return ExifInfo(
        taken_at=taken_at,
        make=_to_text(ifd0.get(TAG_MAKE)),
        model=_to_text(ifd0.get(TAG_MODEL)),
        lens=_to_text(tag(TAG_LENS_MODEL)),
        exposure_time=exposure,
        f_number=f_number,
        iso=iso,
        focal_length=focal,
        gps_lat=lat,
        gps_lon=lon,
        gps_alt=alt,
        orientation=orientation,
        raw=raw,
    )


def exif_from_pil(img: Image.Image) -> ExifInfo:
    """`ExifInfo` of an opened Pillow image (JPEG APP1, PNG eXIf, WebP, TIFF tags, HEIF...).

    Cheap for JPEG, WebP, TIFF and HEIF (the header is already parsed). For PNG, call it after
    `load()`: Pillow reads a PNG's eXIf chunk only once the pixels are decoded.
    """
    with warnings.catch_warnings():
        _quiet_pillow()
        try:
            exif = img.getexif()
        except Exception:  # noqa: BLE001 - a corrupt APP1 segment is no reason to lose the photo
            return ExifInfo()
        return _exif_from_exif(exif)


def exif_from_bytes(data: bytes) -> ExifInfo:
    """`ExifInfo` from a TIFF-structured EXIF block (with or without the ``Exif\\0\\0`` prefix).

    Also reads the IFDs of TIFF-based RAW files (DNG, NEF, ARW, CR2, PEF...) given the whole file.
    """
    if not data:
        return ExifInfo()
    exif = Image.Exif()
    with warnings.catch_warnings():
        _quiet_pillow()
        try:
            exif.load(data)
        except Exception:  # noqa: BLE001
            return ExifInfo()
        return _exif_from_exif(exif)


def merge_exif(primary: ExifInfo, fallback: ExifInfo) -> ExifInfo:
    """`primary` with its missing fields taken from `fallback` (raw tags merged, primary wins)."""
    updates: dict[str, Any] = {}
    for name in ExifInfo.model_fields:
        if name == "raw":
            continue
        if getattr(primary, name) is None and getattr(fallback, name) is not None:
            updates[name] = getattr(fallback, name)
    if fallback.raw:
        updates["raw"] = {**fallback.raw, **primary.raw}
    return primary.model_copy(update=updates) if updates else primary


__all__ = [
    "exif_from_bytes",
    "exif_from_exif",
    "exif_from_pil",
    "merge_exif",
    "parse_exif_datetime",
]
