"""decode_image on real files that packages ship: camera JPEGs/MPOs, PNG, WebP, TIFF, BMP, GIF, AVIF,
iPhone/Sony/Xiaomi HEIC, a Sony ARW, and a DNG written by pidng."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image
from support.realphotos import write_synthetic_dng

from photoindex.errors import ErrorCode, MediaError
from photoindex.media.decode import decode_image, probe_image
from photoindex.media.formats import MediaFormat, resolve_format


def _decode(path, **kwargs):
    return decode_image(path.read_bytes(), path=path, **kwargs)


def _gray(img: Image.Image, size=(64, 43)) -> np.ndarray:
    return np.asarray(img.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float64)


def _correlation(a: Image.Image, b: Image.Image) -> float:
    x, y = _gray(a).ravel(), _gray(b).ravel()
    return float(np.corrcoef(x, y)[0, 1])


# -- JPEG ------------------------------------------------------------------------------------------

def test_real_camera_jpeg_is_decoded_small_and_true(real, compare):
    """Fujifilm FinePix REAL 3D W3 (10 MP MPO): DCT 1/2, one bilinear pass, content intact."""
    path = real.pillow("fujifilm.mpo")
    result = _decode(path)
    assert (result.format, result.mime, result.source) == (MediaFormat.JPEG, "image/jpeg", "dct")
    assert (result.width, result.height) == (3648, 2736)
    assert result.image.size == (1024, 768)
    assert (result.exif.make, result.exif.model) == ("FUJIFILM", "FinePix REAL 3D W3")
    assert result.exif.taken_at == datetime(2013, 5, 25, 16, 38, 10)
    with Image.open(path) as full:
        reference = full.convert("RGB").resize((1024, 768), Image.Resampling.LANCZOS)
    assert compare.mean_abs_diff(result.image, reference) < 4.0


@pytest.mark.parametrize(("name", "size", "decoded"), [
    ("xmp_test.jpg", (2000, 1072), (1000, 536)),  # Canon EOS Rebel T6: DCT 1/2 lands within 5 %
    ("flower.jpg", (480, 360), (480, 360)),  # Canon PowerShot S40: smaller than the target
    ("iptc.jpg", (640, 480), (640, 480)),  # Nokia N70
    ("frozenpond.mpo", (640, 480), (640, 480)),  # Nintendo 3DS
])
def test_real_jpegs(real, name, size, decoded):
    result = _decode(real.pillow(name))
    assert (result.width, result.height) == size
    assert result.image.size == decoded and result.image.mode == "RGB"
    json.dumps(result.exif.model_dump(mode="json"))


@pytest.mark.parametrize(("name", "size", "decoded"), [
    ("rocket.jpg", (640, 427), (640, 427)),
    ("retina.jpg", (1411, 1411), (1024, 1024)),
    ("hubble_deep_field.jpg", (1000, 872), (1000, 872)),
])
def test_skimage_jpegs(real, name, size, decoded):
    result = _decode(real.skimage(name))
    assert (result.width, result.height) == size and result.image.size == decoded


def test_real_exif_orientation_phone(real):
    """Xiaomi Redmi Note 9S photo with EXIF orientation 6: reported upright."""
    path = real.pillow("empty_gps_ifd.jpg")
    with Image.open(path) as img:
        stored = img.size
    result = _decode(path)
    assert result.exif.orientation == 6
    assert (result.width, result.height) == (stored[1], stored[0])


@pytest.mark.parametrize("ext", ["jpg", "webp"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_real_orientation_files(real, compare, ext, orientation):
    """Pillow's hopper_orientation_N files all show the same upright picture as hopper.*"""
    reference = _decode(real.pillow(f"hopper.{ext}")).image
    path = real.pillow(f"hopper_orientation_{orientation}.{ext}")
    result = _decode(path)
    assert result.exif.orientation == orientation
    assert compare.mean_abs_diff(result.image, reference) < 8.0
    with Image.open(path) as img:  # the stored pixels alone are not upright
        assert compare.mean_abs_diff(img.convert("RGB"), reference) > 15.0


@pytest.mark.parametrize("orientation", range(2, 9))
def test_real_tiff_orientation(real, compare, orientation):
    reference = _decode(real.pillow("g4_orientation_1.tif"))
    result = _decode(real.pillow(f"g4_orientation_{orientation}.tif"))
    assert result.exif.orientation == orientation
    assert (result.width, result.height) == (reference.width, reference.height)
    assert compare.mean_abs_diff(result.image, reference.image) < 2.0


def test_real_cmyk_jpeg(real, compare):
    cmyk = _decode(real.pillow("pil_sample_cmyk.jpg"))
    rgb = _decode(real.pillow("pil_sample_rgb.jpg"))
    assert compare.mean_abs_diff(cmyk.image, rgb.image) < 10.0


@pytest.mark.parametrize("name", ["truncated_jpeg.jpg", "ultrahdr.jpg"])
def test_real_truncated_jpegs(real, name):
    """Pillow's truncated_jpeg.jpg, and its Pixel 6 Ultra HDR JPEG cut after the metadata."""
    with pytest.raises(MediaError) as info:
        _decode(real.pillow(name))
    assert info.value.code is ErrorCode.TRUNCATED_IMAGE
    assert name in info.value.message


# -- PNG, WebP, TIFF, BMP, GIF, AVIF ----------------------------------------------------------------

def test_real_png(real, compare):
    result = _decode(real.skimage("astronaut.png"))
    assert (result.format, result.image.size) == (MediaFormat.PNG, (512, 512))
    plain = _decode(real.pillow("exif.png"))
    rotated = _decode(real.pillow("exif_imagemagick_orientation.png"))  # same pixels + orientation 3
    assert rotated.exif.orientation == 3
    assert compare.mean_abs_diff(rotated.image.rotate(180), plain.image) == 0.0
    assert _decode(real.pillow("xmp_tags_orientation.png")).exif.orientation == 3  # from XMP


def test_real_webp(real):
    flower = _decode(real.pillow("flower.webp"))
    assert (flower.format, flower.mime, flower.image.size) == (MediaFormat.WEBP, "image/webp", (480, 360))
    assert (flower.exif.make, flower.exif.model) == ("Canon", "Canon PowerShot S40")
    transparent = _decode(real.pillow("transparent.webp"))
    assert transparent.image.mode == "RGB"


@pytest.mark.parametrize(("name", "size"), [
    ("hopper.tif", (128, 128)), ("tiff_16bit_RGB.tiff", (100, 40)), ("tiff_16bit_RGBa.tiff", (100, 40)),
    ("16bit.cropped.tif", (64, 64)), ("hopper.Lab.tif", (128, 128)), ("10ct_32bit_128.tiff", (128, 128)),
    ("multipage.tiff", (10, 10)), ("ifd_tag_type.tiff", (640, 512)),
])
def test_real_tiffs(real, name, size):
    result = _decode(real.pillow(name))
    assert (result.format, result.mime) == (MediaFormat.TIFF, "image/tiff")
    assert (result.width, result.height) == size and result.image.size == size
    assert result.image.mode == "RGB"


def test_real_lab_tiff_looks_like_the_rgb_one(real, compare):
    assert compare.mean_abs_diff(_decode(real.pillow("hopper.Lab.tif")).image,
                                 _decode(real.pillow("hopper.tif")).image) < 6.0


def test_real_16_bit_tiff_is_scaled_not_clipped(real):
    path = real.pillow("16bit.cropped.tif")
    with Image.open(path) as img:
        raw16 = np.asarray(img).astype(np.uint16)  # a dark scan: values 291..694 of 65535
    arr = np.asarray(_decode(path).image)
    assert np.array_equal(arr[..., 0], (raw16 >> 8).astype(np.uint8))  # clipping would give 255s


def test_skimage_multipage_tiff(real):
    path = real.skimage("multipage.tif")
    with Image.open(path) as img:
        first = img.size
        assert img.n_frames > 1
    result = _decode(path)
    assert (result.width, result.height) == first


@pytest.mark.parametrize(("name", "size"), [("hopper.bmp", (128, 128)), ("bmp/g/pal8.bmp", (127, 64)),
                                            ("bmp/g/rgb32.bmp", (127, 64))])
def test_real_bmps(real, name, size):
    result = _decode(real.pillow(name))
    assert (result.format, result.mime, result.image.size) == (MediaFormat.BMP, "image/bmp", size)


def test_real_truncated_bmp(real):
    with pytest.raises(MediaError) as info:
        _decode(real.pillow("bmp/b/shortfile.bmp"))
    assert info.value.code is ErrorCode.TRUNCATED_IMAGE


@pytest.mark.parametrize(("name", "size"), [("hopper.gif", (128, 128)), ("transparent.gif", (200, 150)),
                                            ("iss634.gif", (245, 245))])
def test_real_gifs(real, name, size):
    result = _decode(real.pillow(name))
    assert (result.format, result.image.size, result.image.mode) == (MediaFormat.GIF, size, "RGB")


def test_skimage_animated_gif(real):
    path = real.skimage("no_time_for_that_tiny.gif")
    with Image.open(path) as img:
        assert img.n_frames > 1
        first = img.convert("RGB")
    result = _decode(path)
    assert result.image.size == first.size


def test_real_gif_bomb(real):
    with pytest.raises(MediaError) as info:
        _decode(real.pillow("decompression_bomb.gif"))
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE


def test_real_avif(real):
    result = _decode(real.pillow("avif/hopper.avif"))
    assert (result.format, result.mime, result.image.size) == (MediaFormat.HEIF, "image/avif", (128, 128))
    assert _decode(real.pillow("avif/exif.avif")).exif.raw  # its EXIF is read


# -- HEIC / HEIF -----------------------------------------------------------------------------------

def test_real_iphone_heic(real):
    result = _decode(real.heic("heif_other/pug.heic"))
    assert (result.format, result.mime) == (MediaFormat.HEIF, "image/heic")
    assert (result.width, result.height) == (4032, 3024)
    assert result.image.size == (1008, 756)  # reduce(4) lands within 5 % of 1024
    exif = result.exif
    assert (exif.make, exif.model) == ("Apple", "iPhone 13 Pro")
    assert exif.taken_at.utcoffset() == timedelta(hours=3)
    assert exif.gps_lat == pytest.approx(44.8505, abs=1e-3)
    assert exif.gps_lon == pytest.approx(34.9766, abs=1e-3)
    assert exif.lens and "iPhone 13 Pro" in exif.lens


def test_real_heic_is_not_rotated_twice(real):
    """iPhone 8 Plus HEIC: EXIF orientation 6 plus an irot box. libheif applies irot; we must not
    apply the EXIF tag again."""
    import pillow_heif

    path = real.heic("heif_other/arrow.heic")
    result = _decode(path)
    assert result.exif.orientation == 6  # reported as the file states it
    assert (result.width, result.height) == (3024, 4032)  # portrait, as the phone was held
    assert result.image.size == (756, 1008)
    reference = pillow_heif.open_heif(path, convert_hdr_to_8bit=True).to_pillow().convert("RGB")
    assert _correlation(result.image, reference.resize((756, 1008))) > 0.99


def test_real_sony_and_xiaomi_heif(real):
    sony = _decode(real.heic("heif_other/cat.hif"))
    assert (sony.mime, sony.width, sony.height, sony.image.size) == ("image/heif", 4240, 2832, (1024, 684))
    assert (sony.exif.make, sony.exif.model) == ("SONY", "ILCE-7SM3")
    minus_5 = timezone(-timedelta(hours=5))
    assert sony.exif.taken_at == datetime(2020, 9, 14, 11, 9, 34, 641000, tzinfo=minus_5)
    assert sony.exif.lens == "FE 24-70mm F2.8 GM"
    xiaomi = _decode(real.heic("heif_special/xiaomi.heic"))
    assert (xiaomi.width, xiaomi.height, xiaomi.image.size) == (2592, 1944, (1024, 768))
    assert xiaomi.exif.make == "Xiaomi" and xiaomi.exif.gps_lat == pytest.approx(47.2273, abs=1e-3)


def test_heic_samples_helper(real):
    paths = real.heic_samples()
    assert len(paths) == 4
    for path in paths:
        assert resolve_format(path, path.read_bytes()[:64]) is MediaFormat.HEIF


@pytest.mark.parametrize(("name", "size"), [("heif/RGBA_8__128x128.heif", (128, 128)),
                                            ("heif/L_10__29x100.heif", (29, 100)),
                                            ("heif/RGB_10__29x100.heif", (29, 100)),
                                            ("heif_other/nokia/alpha.heic", (1440, 960)),
                                            ("heif_other/L_exif_xmp_iptc.heic", (64, 64))])
def test_real_heif_modes(real, name, size):
    result = _decode(real.heic(name))
    assert (result.width, result.height) == size and result.image.mode == "RGB"


def test_real_corrupt_heic(real):
    with pytest.raises(MediaError) as info:
        _decode(real.heic("heif_corrupted/corrupted.heic"))
    assert info.value.code is ErrorCode.CORRUPT_IMAGE


@pytest.mark.timeout(30)
def test_real_200_megapixel_heic_is_refused_from_its_header(real):
    path = real.heic("heif_special/200MP.heic")
    with pytest.raises(MediaError) as info:
        _decode(path, max_pixels=100_000_000)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert info.value.details["width"] * info.value.details["height"] == 199_756_800
    probe = probe_image(path.read_bytes(), path=path)  # under the default limit the header is fine
    assert probe.width * probe.height == 199_756_800


# -- RAW -------------------------------------------------------------------------------------------

def test_real_sony_arw_uses_the_embedded_preview(real):
    path = real.arw()
    result = _decode(path)
    assert (result.format, result.mime, result.source) == (MediaFormat.RAW, "image/x-sony-arw", "preview")
    assert (result.width, result.height) == (5184, 3464)  # LibRaw's sensor size, not the preview's
    assert result.image.size == (1024, 684)
    exif = result.exif
    assert (exif.make, exif.model, exif.lens) == ("SONY", "ILCE-7RM3", "E 55-210mm F4.5-6.3 OSS")
    assert (exif.iso, exif.f_number, exif.focal_length) == (3200, 6.3, 129.0)
    assert exif.exposure_time == pytest.approx(1 / 640)
    assert exif.taken_at == datetime(2018, 7, 11, 1, 18, 47, tzinfo=UTC)
    assert exif.orientation == 1
    json.dumps(exif.raw)


def test_real_sony_arw_preview_smaller_than_the_target(real):
    result = _decode(real.arw(), target=2000)
    assert (result.source, result.image.size) == ("preview", (1616, 1080))  # never enlarged
    assert np.asarray(result.image).std() > 10  # real pixels, still usable after decode returned


@pytest.mark.timeout(60)
def test_real_sony_arw_demosaic_when_the_preview_is_too_small(real):
    path = real.arw()
    preview = _decode(path)
    demosaiced = _decode(path, raw_preview_min=5000)  # the 1616 px preview is now too small
    assert demosaiced.source == "raw"
    assert (demosaiced.width, demosaiced.height) == (5184, 3464)
    assert demosaiced.image.size == (1024, 684)
    assert demosaiced.exif.model == "ILCE-7RM3"
    assert _correlation(demosaiced.image, preview.image) > 0.8  # the same scene


def test_real_arw_limits_and_damage(real):
    path = real.arw()
    data = path.read_bytes()
    with pytest.raises(MediaError) as info:
        decode_image(data, path=path, max_pixels=10_000_000)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    with pytest.raises(MediaError) as info:
        decode_image(data[:20_000], path=path)
    assert info.value.code is ErrorCode.RAW_DECODE_FAILED
    assert "_DSC2164.ARW" in info.value.message
    probe = probe_image(data, path=path)
    assert (probe.format, probe.width, probe.height) == (MediaFormat.RAW, 5184, 3464)
    assert probe.exif.model == "ILCE-7RM3"


def test_dng_written_by_pidng(tmp_path):
    pytest.importorskip("pidng")
    path = write_synthetic_dng(tmp_path / "ramp.dng", width=512, height=384)
    result = _decode(path)
    assert (result.format, result.mime, result.source) == (MediaFormat.RAW, "image/x-adobe-dng", "raw")
    assert (result.width, result.height) == result.image.size == (512, 384)
    assert (result.exif.make, result.exif.model) == ("Photoindex", "Synthetic DNG")
    red = np.asarray(result.image)[..., 0].astype(float)
    assert red[:, -40:].mean() > red[:, :40].mean() + 60  # red grows to the right


def test_dng_orientation(tmp_path):
    pytest.importorskip("pidng")
    path = write_synthetic_dng(tmp_path / "portrait.dng", width=512, height=384, orientation=6)
    result = _decode(path)
    assert result.exif.orientation == 6
    assert (result.width, result.height) == result.image.size == (384, 512)
    red = np.asarray(result.image)[..., 0].astype(float)
    assert red[-40:, :].mean() > red[:40, :].mean() + 60  # rotated clockwise: "right" is now "down"


def test_dng_demosaic_downscales_large_sensors(tmp_path):
    pytest.importorskip("pidng")
    path = write_synthetic_dng(tmp_path / "big.dng", width=2400, height=1600)
    result = _decode(path, target=1024)
    assert (result.width, result.height) == (2400, 1600)
    assert result.image.size == (1024, 683)  # half-size demosaic (1200 px), then bilinear


@pytest.mark.parametrize(("name", "head"), [
    ("DSC_0001.NEF", b"MM\x00*\x00\x00\x00\x08"),
    ("IMG_0001.CR2", b"II*\x00\x10\x00\x00\x00CR\x02\x00"),
    ("IMG_0001.CR3", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom"),
    ("DSCF0001.RAF", b"FUJIFILMCCD-RAW 0201FF383501"),
    ("P0001.ORF", b"IIRO\x08\x00\x00\x00"),
    ("P0001.RW2", b"IIU\x00\x18\x00\x00\x00"),
    ("IMGP0001.PEF", b"MM\x00*\x00\x00\x00\x08"),
    ("SDIM0001.X3F", b"FOVb\x00\x00\x02\x00"),
])
def test_raw_without_real_sample_routes_and_fails_cleanly(name, head):
    """Formats with no real sample in any package: routing by magic/extension, and a clean error."""
    data = head + bytes(range(256)) * 64
    assert resolve_format(name, data[:64]) is MediaFormat.RAW
    with pytest.raises(MediaError) as info:
        decode_image(data, path=name)
    assert info.value.code is ErrorCode.RAW_DECODE_FAILED
    assert name in info.value.message


def test_plain_tiff_named_like_raw_still_decodes(synth):
    data = synth.encode(synth.photo_array(300, 200), "TIFF")
    result = decode_image(data, path="scan.dng")
    assert (result.format, result.mime, result.image.size) == (MediaFormat.TIFF, "image/tiff", (300, 200))


def test_raf_container_exif(synth):
    """A RAF keeps a full camera JPEG (with EXIF) at the offset its header gives."""
    from photoindex.media.decode import _raw_container_exif

    jpeg = synth.jpeg_photo(64, 48, exif=synth.exif_bytes(make="FUJIFILM", model="X-T5", offset="+09:00"))
    header = bytearray(b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 100)
    header[84:92] = len(header).to_bytes(4, "big") + len(jpeg).to_bytes(4, "big")
    data = bytes(header) + jpeg
    info = _raw_container_exif(data, data[:64])
    assert (info.make, info.model) == ("FUJIFILM", "X-T5")
    assert info.taken_at.utcoffset() == timedelta(hours=9)


def test_text_named_raw_is_unsupported():
    with pytest.raises(MediaError) as info:
        decode_image(b"just some text, really\n" * 4, path="IMG_0001.CR2")
    assert info.value.code is ErrorCode.UNSUPPORTED_TYPE


def test_realphotos_skimage_photo(tmp_path):
    from support.realphotos import skimage_photo

    path = skimage_photo("chelsea", tmp_path / "cat.webp", quality=90)
    result = _decode(path)
    assert (result.format, result.image.size) == (MediaFormat.WEBP, (451, 300))
    path = skimage_photo("coffee", tmp_path / "coffee.jpg", size=(1200, 800), quality=92)
    assert _decode(path).image.size == (1024, 683)
    assert io.BytesIO(path.read_bytes()).getbuffer().nbytes > 0
