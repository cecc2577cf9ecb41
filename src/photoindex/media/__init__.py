"""Media engine: file formats, one-read hashing, decoding with downscale, EXIF, thumbnails."""

from photoindex.media.decode import DecodedImage, ImageProbe, decode_image, open_oriented, probe_image
from photoindex.media.exif import exif_from_bytes, exif_from_pil
from photoindex.media.formats import (
    IMAGE_EXTENSIONS,
    MIME,
    RAW_EXTENSIONS,
    MediaFormat,
    is_candidate,
    mime_for,
    resolve_format,
    sniff,
)
from photoindex.media.hashing import FileBytes, read_and_hash, sha256_file
from photoindex.media.thumbnails import thumbnail_path, write_thumbnails

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIME",
    "RAW_EXTENSIONS",
    "DecodedImage",
    "FileBytes",
    "ImageProbe",
    "MediaFormat",
    "decode_image",
    "exif_from_bytes",
    "exif_from_pil",
    "is_candidate",
    "mime_for",
    "open_oriented",
    "probe_image",
    "read_and_hash",
    "resolve_format",
    "sha256_file",
    "sniff",
    "thumbnail_path",
    "write_thumbnails",
]
