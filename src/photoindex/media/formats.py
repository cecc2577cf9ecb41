"""Which files are photos, and what they really are.

Two questions with two costs:

* `is_candidate(path)` looks at the name only. The directory walker asks it for every file it meets,
  so it never touches the disk.
* `sniff(head)` / `resolve_format(path, head)` look at the first bytes of the content. Content wins
  over the name: a JPEG saved as ``.png`` is a JPEG. The name still matters in one case: most RAW
  formats (NEF, ARW, DNG, PEF...) are TIFF files as far as their magic bytes go, and only the
  extension tells them apart from a plain TIFF.
"""

from __future__ import annotations

import os
from enum import StrEnum

from photoindex.errors import ErrorCode, MediaError


class MediaFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    TIFF = "tiff"
    BMP = "bmp"
    GIF = "gif"
    HEIF = "heif"  # HEIC / HEIF, and AVIF (same ISO-BMFF container family)
    RAW = "raw"


# RAW extension -> MIME type (the freedesktop.org shared-mime-info names).
RAW_MIME: dict[str, str] = {
    ".dng": "image/x-adobe-dng",
    ".cr2": "image/x-canon-cr2",
    ".cr3": "image/x-canon-cr3",
    ".crw": "image/x-canon-crw",
    ".nef": "image/x-nikon-nef",
    ".nrw": "image/x-nikon-nrw",
    ".arw": "image/x-sony-arw",
    ".srf": "image/x-sony-srf",
    ".sr2": "image/x-sony-sr2",
    ".rw2": "image/x-panasonic-rw2",
    ".raw": "image/x-panasonic-raw",
    ".orf": "image/x-olympus-orf",
    ".raf": "image/x-fuji-raf",
    ".pef": "image/x-pentax-pef",
    ".srw": "image/x-samsung-srw",
    ".x3f": "image/x-sigma-x3f",
    ".3fr": "image/x-hasselblad-3fr",
    ".fff": "image/x-hasselblad-fff",
    ".iiq": "image/x-phaseone-iiq",
    ".erf": "image/x-epson-erf",
    ".kdc": "image/x-kodak-kdc",
    ".dcr": "image/x-kodak-dcr",
    ".mrw": "image/x-minolta-mrw",
    ".rwl": "image/x-leica-rwl",
    ".mos": "image/x-leaf-mos",
    ".mef": "image/x-mamiya-mef",
    ".gpr": "image/x-gopro-gpr",
}
RAW_GENERIC_MIME = "image/x-dcraw"

RAW_EXTENSIONS: frozenset[str] = frozenset(RAW_MIME)

IMAGE_EXTENSIONS: dict[str, MediaFormat] = {
    ".jpg": MediaFormat.JPEG,
    ".jpeg": MediaFormat.JPEG,
    ".jpe": MediaFormat.JPEG,
    ".jfif": MediaFormat.JPEG,
    ".jif": MediaFormat.JPEG,
    ".mpo": MediaFormat.JPEG,  # multi-picture JPEG (3D cameras); the first picture is the photo
    ".png": MediaFormat.PNG,
    ".apng": MediaFormat.PNG,
    ".webp": MediaFormat.WEBP,
    ".tif": MediaFormat.TIFF,
    ".tiff": MediaFormat.TIFF,
    ".bmp": MediaFormat.BMP,
    ".dib": MediaFormat.BMP,
    ".gif": MediaFormat.GIF,
    ".heic": MediaFormat.HEIF,
    ".heif": MediaFormat.HEIF,
    ".hif": MediaFormat.HEIF,
    ".heics": MediaFormat.HEIF,
    ".heifs": MediaFormat.HEIF,
    ".avif": MediaFormat.HEIF,
    **{ext: MediaFormat.RAW for ext in RAW_MIME},
}

MIME: dict[MediaFormat, str] = {
    MediaFormat.JPEG: "image/jpeg",
    MediaFormat.PNG: "image/png",
    MediaFormat.WEBP: "image/webp",
    MediaFormat.TIFF: "image/tiff",
    MediaFormat.BMP: "image/bmp",
    MediaFormat.GIF: "image/gif",
    MediaFormat.HEIF: "image/heic",
    MediaFormat.RAW: RAW_GENERIC_MIME,
}

SNIFF_BYTES = 64
"""How many leading bytes `sniff` and `resolve_format` want to see."""

# ISO-BMFF brands. HEVC-coded HEIF first; `mif1`/`msf1` are the generic "image file" brands that
# both HEIC and AVIF files use as major brand (the compatible brands then say which codec).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1",
                          b"msf1", b"mif2", b"MiHE", b"MiHA", b"MiHB"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_CR3_BRANDS = frozenset({b"crx "})

# TIFF-structured RAW files whose magic bytes already give them away.
_RAW_MAGIC_PREFIXES = (
    b"IIRO",  # Olympus ORF
    b"IIRS",  # Olympus ORF (older)
    b"MMOR",  # Olympus ORF (big-endian)
    b"IIU\x00",  # Panasonic RW2 / RAW / RWL
    b"FUJIFILMCCD-RAW",  # Fujifilm RAF
    b"FOVb",  # Sigma X3F
    b"\x00MRM",  # Minolta MRW
)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def _suffix(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    dot = name.rfind(".")
    if dot < 0:
        return ""
    sep = max(name.rfind("/"), name.rfind(os.sep))
    if dot < sep + 2:  # no dot in the file name, or a dot-file such as ".jpg"
        return ""
    return name[dot:].lower()


def extension_format(path: str | os.PathLike[str]) -> MediaFormat | None:
    """The format a file name claims (by extension only), or None."""
    return IMAGE_EXTENSIONS.get(_suffix(path))


def is_candidate(path: str | os.PathLike[str]) -> bool:
    """True when the file name has an image extension we can decode. Never touches the disk.

    macOS resource-fork companions (``._IMG_0001.JPG`` on non-Apple file systems) are not photos.
    """
    name = os.fspath(path)
    if _suffix(name) not in IMAGE_EXTENSIONS:
        return False
    base = name[max(name.rfind("/"), name.rfind(os.sep)) + 1:]
    return not base.startswith("._")


def _bmff_brands(head: bytes) -> tuple[bytes, frozenset[bytes]] | None:
    """Major brand and compatible brands of an ISO-BMFF `ftyp` box at the start of `head`."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    end = min(len(head), box_size if box_size >= 16 else len(head))
    compatible = frozenset(head[i:i + 4] for i in range(16, end - 3, 4))
    return head[8:12], compatible


def _is_avif(head: bytes) -> bool:
    brands = _bmff_brands(head)
    if brands is None:
        return False
    major, compatible = brands
    if major in _AVIF_BRANDS:
        return True
    hevc = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
    return major in (b"mif1", b"msf1") and bool(compatible & _AVIF_BRANDS) and not (compatible & hevc)


def _is_cr2(head: bytes) -> bool:
    return head[:4] == b"II*\x00" and head[8:10] == b"CR"


def sniff(head: bytes) -> MediaFormat | None:
    """The format given away by the first bytes of a file (see `SNIFF_BYTES`), or None.

    TIFF magic alone says TIFF: whether it is a RAW file is the extension's call (`resolve_format`),
    except for formats with their own signature (CR2, CR3, ORF, RW2, RAF, X3F, MRW), which are RAW.
    """
    if len(head) < 4:
        return None
    if head[:3] == b"\xff\xd8\xff":
        return MediaFormat.JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return MediaFormat.PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaFormat.WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return MediaFormat.GIF
    if head.startswith(_RAW_MAGIC_PREFIXES) or _is_cr2(head):
        return MediaFormat.RAW
    if head[:4] in _TIFF_MAGIC:
        return MediaFormat.TIFF
    brands = _bmff_brands(head)
    if brands is not None:
        major, compatible = brands
        if major in _CR3_BRANDS:
            return MediaFormat.RAW
        if major in _HEIF_BRANDS or major in _AVIF_BRANDS or compatible & (_HEIF_BRANDS | _AVIF_BRANDS):
            return MediaFormat.HEIF
        return None  # MP4, MOV, 3GP...: video
    if head[:2] == b"BM" and len(head) >= 18:
        # BITMAPFILEHEADER is followed by a DIB header whose first field is its own size
        dib_size = int.from_bytes(head[14:18], "little")
        if dib_size in (12, 16, 40, 52, 56, 64, 108, 124):
            return MediaFormat.BMP
    return None


def _describe(head: bytes) -> str:
    """A few words on what non-image content looks like, for error messages."""
    if not head.strip(b"\x00"):
        return "only zero bytes"
    if head[:4] == b"%PDF":
        return "a PDF document"
    if head[:2] == b"PK":
        return "a ZIP archive"
    if _bmff_brands(head) is not None:
        return "an ISO media file (video?)"
    if _looks_like_text(head):
        return "text"
    return f"unknown content starting with {head[:8].hex(' ')}"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # the window may cut a multi-byte character at its end
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def resolve_format(path: str | os.PathLike[str], head: bytes) -> MediaFormat:
    """The format to decode `head`'s file as. Content wins over the extension.

    Raises `MediaError` with FILE_EMPTY for no bytes at all and UNSUPPORTED_TYPE for content that is no
    image we can decode (text named .jpg, a video, a PDF...).
    """
    ext = _suffix(path)
    if not head:
        raise MediaError(f"{_name(path)} is empty (0 bytes)", code=ErrorCode.FILE_EMPTY)
    fmt = sniff(head)
    if fmt is MediaFormat.TIFF and ext in RAW_EXTENSIONS:
        return MediaFormat.RAW
    if fmt is not None:
        return fmt
    # RAW formats without a signature we know (KDC, DCR, 3FR, IIQ, MOS...): let LibRaw judge, unless
    # the content is plainly no binary image at all.
    if ext in RAW_EXTENSIONS and head.strip(b"\x00") and not _looks_like_text(head):
        return MediaFormat.RAW
    claimed = f" although it is named {ext}" if ext in IMAGE_EXTENSIONS else ""
    raise MediaError(
        f"{_name(path)} is not a supported image{claimed}: the content is {_describe(head)}",
        code=ErrorCode.UNSUPPORTED_TYPE,
        details={"extension": ext} if ext else None,
    )


def _name(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return repr(text) if text else "the data"


def mime_for(fmt: MediaFormat, path: str | os.PathLike[str] = "", head: bytes = b"") -> str:
    """MIME type of a file of format `fmt`. RAW and HEIF need the name (or the head) to be precise."""
    ext = _suffix(path) if path else ""
    if fmt is MediaFormat.RAW:
        if head.startswith((b"IIRO", b"IIRS", b"MMOR")):
            return RAW_MIME[".orf"]
        if head.startswith(b"FUJIFILMCCD-RAW"):
            return RAW_MIME[".raf"]
        if _is_cr2(head):
            return RAW_MIME[".cr2"]
        brands = _bmff_brands(head)
        if brands is not None and brands[0] in _CR3_BRANDS:
            return RAW_MIME[".cr3"]
        if head.startswith(b"FOVb"):
            return RAW_MIME[".x3f"]
        if head.startswith(b"\x00MRM"):
            return RAW_MIME[".mrw"]
        return RAW_MIME.get(ext, RAW_GENERIC_MIME)
    if fmt is MediaFormat.HEIF:
        if (head and _is_avif(head)) or (not head and ext == ".avif"):
            return "image/avif"
        if ext in (".heif", ".hif", ".heifs"):
            return "image/heif"
        return "image/heic"
    return MIME[fmt]


def is_avif(head: bytes) -> bool:
    """True for an AV1-coded HEIF (AVIF) file; False for HEVC-coded HEIC and anything else."""
    return _is_avif(head)


__all__ = [
    "IMAGE_EXTENSIONS",
    "MIME",
    "RAW_EXTENSIONS",
    "RAW_MIME",
    "SNIFF_BYTES",
    "MediaFormat",
    "extension_format",
    "is_avif",
    "is_candidate",
    "mime_for",
    "resolve_format",
    "sniff",
]
