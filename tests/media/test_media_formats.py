"""File type detection: names (cheap, for the walker) and magic bytes (what the content really is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoindex.errors import ErrorCode, MediaError
from photoindex.media.formats import (
    IMAGE_EXTENSIONS,
    MIME,
    RAW_EXTENSIONS,
    RAW_MIME,
    SNIFF_BYTES,
    MediaFormat,
    is_candidate,
    mime_for,
    resolve_format,
    sniff,
)

CONTRACT_RAW = {".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".rw2", ".orf", ".raf",
                ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mrw", ".rwl"}
CONTRACT_IMAGE = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".gif",
                  ".heic", ".heif", ".hif"}


def test_extension_tables_cover_the_contract():
    assert CONTRACT_RAW <= RAW_EXTENSIONS
    assert CONTRACT_IMAGE <= set(IMAGE_EXTENSIONS)
    assert all(IMAGE_EXTENSIONS[ext] is MediaFormat.RAW for ext in RAW_EXTENSIONS)
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert set(MIME) == set(MediaFormat)
    assert [f.value for f in MediaFormat] == ["jpeg", "png", "webp", "tiff", "bmp", "gif", "heif", "raw"]


@pytest.mark.parametrize("name", [
    "IMG_0001.JPG", "a.jpeg", "b.Jpe", "c.jfif", "d.png", "e.webp", "f.TIF", "g.tiff", "h.bmp", "i.dib",
    "j.gif", "k.HEIC", "l.heif", "m.hif", "n.avif", "o.mpo", "DSC_0001.NEF", "x.cr3", "x.CR2", "x.dng",
    "x.arw", "x.raf",
    "/photos/2023/holiday.beach.jpg", "folder.jpg/inner.png",
])
def test_is_candidate_accepts_image_names(name):
    assert is_candidate(name)
    assert is_candidate(Path(name))


@pytest.mark.parametrize("name", [
    "notes.txt", "movie.mp4", "clip.MOV", "archive.tar.gz", "noext", "photo.jpg.bak", ".jpg", "/a/b/.png",
    "._IMG_0001.JPG", "/Volumes/x/._DSC_0001.NEF", "folder.jpg/readme", "",
])
def test_is_candidate_rejects_other_names(name):
    assert not is_candidate(name)


def test_every_raw_extension_routes_to_raw_with_a_mime():
    tiff_head = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 56
    for ext in RAW_EXTENSIONS:
        assert is_candidate(f"photo{ext.upper()}")
        assert mime_for(MediaFormat.RAW, f"photo{ext}").startswith("image/x-")
    for ext in CONTRACT_RAW:
        if ext in (".x3f", ".mrw"):
            continue  # not TIFF-structured, see test_sniff_raw_signatures
        assert resolve_format(f"photo{ext}", tiff_head) is MediaFormat.RAW, ext
    assert mime_for(MediaFormat.RAW, "a.CR2") == "image/x-canon-cr2"
    assert mime_for(MediaFormat.RAW, "a.dng") == "image/x-adobe-dng"
    assert mime_for(MediaFormat.RAW, "a.nef") == "image/x-nikon-nef"
    assert mime_for(MediaFormat.RAW, "a.unknownraw") == "image/x-dcraw"
    assert RAW_MIME[".arw"] == "image/x-sony-arw"


def _bmff(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 16


@pytest.mark.parametrize(("head", "expected"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", MediaFormat.JPEG),
    (b"\xff\xd8\xff\xe1\x2a\x00Exif\x00\x00", MediaFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", MediaFormat.PNG),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", MediaFormat.WEBP),
    (b"GIF89a\x01\x00\x01\x00", MediaFormat.GIF),
    (b"GIF87a\x01\x00\x01\x00", MediaFormat.GIF),
    (b"II*\x00\x08\x00\x00\x00", MediaFormat.TIFF),
    (b"MM\x00*\x00\x00\x00\x08", MediaFormat.TIFF),
    (b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00", MediaFormat.TIFF),  # BigTIFF
    (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 8, MediaFormat.BMP),
    (b"BM" + b"\x00" * 12 + (124).to_bytes(4, "little") + b"\x00" * 8, MediaFormat.BMP),
    (_bmff(b"heic", b"mif1", b"heic"), MediaFormat.HEIF),
    (_bmff(b"heix", b"mif1"), MediaFormat.HEIF),
    (_bmff(b"mif1", b"mif1", b"heic"), MediaFormat.HEIF),
    (_bmff(b"msf1", b"msf1", b"hevc"), MediaFormat.HEIF),
    (_bmff(b"avif", b"mif1", b"avif"), MediaFormat.HEIF),
    (_bmff(b"crx ", b"crx ", b"isom"), MediaFormat.RAW),  # Canon CR3
])
def test_sniff_magic_bytes(head, expected):
    assert sniff(head) is expected


@pytest.mark.parametrize("head", [
    b"FUJIFILMCCD-RAW 0201FF383501",  # RAF
    b"IIRO\x08\x00\x00\x00",  # Olympus ORF
    b"IIRS\x08\x00\x00\x00",
    b"MMOR\x00\x00\x00\x08",
    b"IIU\x00\x08\x00\x00\x00",  # Panasonic RW2
    b"II*\x00\x10\x00\x00\x00CR\x02\x00",  # Canon CR2
    b"FOVb\x02\x00\x01\x00",  # Sigma X3F
    b"\x00MRM\x00\x00\x00\x10",  # Minolta MRW
])
def test_sniff_raw_signatures(head):
    assert sniff(head + b"\x00" * 40) is MediaFormat.RAW


@pytest.mark.parametrize("head", [
    b"", b"\xff\xd8", b"hello world, this is text\n", b"%PDF-1.7\n", b"PK\x03\x04\x14\x00",
    _bmff(b"isom", b"isom", b"mp41"),  # MP4 video
    _bmff(b"qt  ", b"qt  "),  # QuickTime
    b"BM" + b"\x00" * 30,  # "BM" without a DIB header
    b"\x00" * 64,
])
def test_sniff_rejects_non_images(head):
    assert sniff(head) is None


def test_sniff_real_files(real, synth):
    cases = {
        real.pillow("hopper.jpg"): MediaFormat.JPEG,
        real.pillow("fujifilm.mpo"): MediaFormat.JPEG,
        real.skimage("astronaut.png"): MediaFormat.PNG,
        real.pillow("hopper.webp"): MediaFormat.WEBP,
        real.pillow("hopper.tif"): MediaFormat.TIFF,
        real.pillow("hopper.bmp"): MediaFormat.BMP,
        real.pillow("hopper.gif"): MediaFormat.GIF,
        real.heic("heif_other/pug.heic"): MediaFormat.HEIF,
        real.heic("heif_other/cat.hif"): MediaFormat.HEIF,
        real.pillow("avif/hopper.avif"): MediaFormat.HEIF,
        real.arw(): MediaFormat.TIFF,  # TIFF-structured: the extension makes it RAW
    }
    for path, fmt in cases.items():
        head = path.read_bytes()[:SNIFF_BYTES]
        assert sniff(head) is fmt, path.name
        expected = MediaFormat.RAW if path.suffix.lower() == ".arw" else fmt
        assert resolve_format(path, head) is expected, path.name
    avif, heic, hif = (real.pillow("avif/hopper.avif"), real.heic("heif_other/pug.heic"),
                       real.heic("heif_other/cat.hif"))
    assert mime_for(MediaFormat.HEIF, "x.avif", avif.read_bytes()[:64]) == "image/avif"
    assert mime_for(MediaFormat.HEIF, "x.heic", heic.read_bytes()[:64]) == "image/heic"
    assert mime_for(MediaFormat.HEIF, "x.hif", hif.read_bytes()[:64]) == "image/heif"
    assert mime_for(MediaFormat.RAW, real.arw(), b"II*\x00") == "image/x-sony-arw"


def test_content_wins_over_extension(synth):
    jpeg = synth.jpeg_photo(64, 48)[:SNIFF_BYTES]
    png = synth.encode(synth.photo_array(64, 48), "PNG")[:SNIFF_BYTES]
    assert resolve_format("photo.png", jpeg) is MediaFormat.JPEG
    assert resolve_format("photo.jpg", png) is MediaFormat.PNG
    assert resolve_format("photo.nef", jpeg) is MediaFormat.JPEG  # a JPEG is a JPEG, whatever its name
    assert resolve_format("scan.tif", b"II*\x00" + b"\x00" * 12) is MediaFormat.TIFF
    assert resolve_format("DSC_0001.NEF", b"MM\x00*" + b"\x00" * 12) is MediaFormat.RAW
    assert resolve_format("no_extension", jpeg) is MediaFormat.JPEG


def test_raw_extension_without_known_signature_is_left_to_libraw():
    head = bytes([0x00, 0x10, 0xBA, 0xB0, 0xAC, 0xBB, 0x00, 0x02]) + bytes(range(56))
    assert resolve_format("P0001.IIQ", head) is MediaFormat.RAW
    assert resolve_format("img.kdc", head) is MediaFormat.RAW


@pytest.mark.parametrize(("name", "head", "words"), [
    ("holiday.jpg", b"this is not a photo, just some notes\n", ["holiday.jpg", "named .jpg", "text"]),
    ("holiday.nef", b"plain text in a RAW costume\n", ["holiday.nef", "text"]),
    ("report.png", b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", ["PDF"]),
    ("clip.heic", _bmff(b"isom", b"isom", b"mp41"), ["video"]),
    ("zeros.jpg", b"\x00" * 64, ["zero bytes"]),
])
def test_non_images_fail_cleanly(name, head, words):
    with pytest.raises(MediaError) as info:
        resolve_format(name, head)
    assert info.value.code is ErrorCode.UNSUPPORTED_TYPE
    for word in words:
        assert word in info.value.message


def test_empty_content_is_file_empty():
    with pytest.raises(MediaError) as info:
        resolve_format("empty.jpg", b"")
    assert info.value.code is ErrorCode.FILE_EMPTY
    assert "empty" in info.value.message
