"""decode_image on photos made here: sizes, downscaling, orientation, colour modes, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photoindex.errors import ErrorCode, MediaError
from photoindex.media.decode import DEFAULT_SLACK, DecodedImage, decode_image, open_oriented, probe_image
from photoindex.media.formats import MediaFormat


def _check(result: DecodedImage, *, target: int = 1024, slack: float = DEFAULT_SLACK) -> None:
    """The invariants every decode keeps."""
    img = result.image
    assert img.mode == "RGB"
    long_side, orig_long = max(img.size), max(result.width, result.height)
    assert long_side <= max(target, 1) if target > 0 else long_side == orig_long
    if target > 0:
        assert long_side >= min(target * (1 - slack), orig_long) - 1
    # aspect ratio of the decoded image follows the reported (upright) size
    aspect = result.width / result.height
    assert abs(img.size[0] / img.size[1] - aspect) < 0.02 * aspect + 0.02


# -- JPEG ------------------------------------------------------------------------------------------

def test_jpeg_12mp_uses_dct_scaling(synth):
    data = synth.jpeg_photo(4000, 3000, exif=synth.exif_bytes(offset="+01:00"))
    result = decode_image(data, path="IMG_0001.JPG")
    _check(result)
    assert (result.width, result.height) == (4000, 3000)
    assert result.image.size == (1000, 750)  # 1/4 DCT scale, within the 5 % slack: no resampling pass
    assert result.source == "dct"
    assert (result.format, result.mime) == (MediaFormat.JPEG, "image/jpeg")
    assert result.exif.make == "Canon" and result.exif.taken_at.utcoffset().total_seconds() == 3600


def test_jpeg_strict_target_without_slack(synth):
    data = synth.jpeg_photo(4000, 3000)
    result = decode_image(data, target=1024, slack=0)
    assert result.image.size == (1024, 768)
    assert result.source == "dct"


@pytest.mark.parametrize(("size", "target", "expected"), [
    ((4000, 3000), 256, (250, 188)),  # 1/8 DCT = 500 px, then reduce(2): within 5 % of 256
    ((3000, 4000), 512, (375, 500)),  # 1/8 DCT = 375x500, within 5 % of 512
    ((6000, 4000), 1024, (1024, 683)),  # 1/4 DCT = 1500 px, then one bilinear pass
    ((1600, 1200), 1024, (1024, 768)),  # no DCT scale fits: full decode + bilinear
    ((800, 600), 1024, (800, 600)),  # smaller than the target: never enlarged
    ((8192, 2048), 1024, (1024, 256)),  # 1/8 DCT exactly
])
def test_jpeg_sizes(synth, size, target, expected):
    data = synth.jpeg_photo(*size, quality=80)
    result = decode_image(data, target=target)
    _check(result, target=target)
    assert result.image.size == expected
    assert (result.width, result.height) == size


def test_jpeg_content_survives_downscale(synth):
    """The decoded image is the photo, not garbage: compare with a careful full-size resize."""
    data = synth.jpeg_photo(2400, 1800, quality=95)
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize((1024, 768), Image.Resampling.LANCZOS)
    result = decode_image(data, target=1024, slack=0)
    diff = np.abs(np.asarray(result.image, np.float64) - np.asarray(reference, np.float64)).mean()
    assert diff < 4.0


def test_target_zero_is_full_resolution(synth):
    data = synth.jpeg_photo(1200, 900)
    result = decode_image(data, target=0)
    assert result.image.size == (1200, 900)
    assert result.source == "full"
    assert open_oriented(data).size == (1200, 900)


def test_cmyk_jpeg(synth):
    rgb = synth.quadrants(128, 96)
    data = synth.encode(rgb.convert("CMYK"), "JPEG", quality=95)
    result = decode_image(data, path="print.jpg")
    assert result.image.mode == "RGB"
    for got, want in zip(synth.quadrant_colors(result.image), synth.quadrant_colors(rgb), strict=True):
        assert all(abs(a - b) <= 40 for a, b in zip(got, want, strict=True)), (got, want)


def test_grayscale_jpeg(synth):
    data = synth.encode(Image.fromarray(synth.photo_array(1500, 1000)).convert("L"), "JPEG")
    result = decode_image(data)
    _check(result)
    assert result.image.mode == "RGB"
    arr = np.asarray(result.image)
    assert np.array_equal(arr[..., 0], arr[..., 1])


# -- orientation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_every_orientation_comes_out_upright(synth, orientation, fmt):
    upright = synth.quadrants(160, 96)
    op = synth.STORE_FOR_ORIENTATION[orientation]
    stored = upright.transpose(op) if op is not None else upright
    exif = synth.exif_bytes(orientation=orientation)
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "TIFF":
        params["tiffinfo"] = {0x0112: orientation}  # a TIFF keeps Orientation among its own tags
    else:
        params["exif"] = exif
    data = synth.encode(stored, fmt, **params)
    result = decode_image(data, path=f"x.{fmt.lower()}")
    assert (result.width, result.height) == (160, 96)
    assert result.image.size == (160, 96)
    assert result.exif.orientation == orientation
    for got, want in zip(synth.quadrant_colors(result.image), synth.quadrant_colors(upright), strict=True):
        assert all(abs(a - b) <= 30 for a, b in zip(got, want, strict=True)), (orientation, got, want)


def test_decoded_image_carries_no_orientation_to_apply_again(synth):
    from PIL import ImageOps

    upright = synth.quadrants(160, 96)
    stored = upright.transpose(synth.STORE_FOR_ORIENTATION[6])
    data = synth.encode(stored, "JPEG", quality=95, exif=synth.exif_bytes(orientation=6))
    result = decode_image(data)
    assert result.exif.orientation == 6
    assert result.image.getexif().get(0x0112) in (None, 1)
    again = ImageOps.exif_transpose(result.image)  # what a careless caller might do
    assert again.size == (160, 96)


def test_orientation_applies_after_dct_downscale(synth):
    upright = Image.fromarray(synth.photo_array(3000, 4000))  # portrait photo
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # camera held sideways: 4000x3000 sensor
    data = synth.encode(stored, "JPEG", quality=90, exif=synth.exif_bytes(orientation=6))
    result = decode_image(data)
    assert (result.width, result.height) == (3000, 4000)
    assert result.image.size == (750, 1000)
    reference = upright.resize((750, 1000), Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(result.image, np.float64) - np.asarray(reference, np.float64)).mean()
    assert diff < 6.0


# -- other formats and colour modes ----------------------------------------------------------------

def test_png_16_bit_grayscale_scales_not_clips(synth):
    values = np.array([[0, 0x00FF, 0x0100, 0x7FFF], [0x8000, 0xABCD, 0xFF00, 0xFFFF]], dtype=np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    data = synth.png_raw(4, 2, bit_depth=16, color_type=0, rows=rows)
    result = decode_image(data, path="scan.png")
    arr = np.asarray(result.image)
    assert arr.shape == (2, 4, 3)
    assert arr[..., 0].tolist() == (values >> 8).tolist()


def test_png_16_bit_rgb_and_rgba(synth):
    rgb = np.zeros((2, 3, 3), dtype=np.uint16)
    rgb[0, 0] = (0xFFFF, 0, 0)
    rgb[0, 1] = (0, 0x8000, 0)
    rgb[1, 2] = (0x1234, 0x5678, 0x9ABC)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)
    result = decode_image(synth.png_raw(3, 2, bit_depth=16, color_type=2, rows=rows), path="a.png")
    arr = np.asarray(result.image).astype(int)
    assert arr[0, 0].tolist() == [255, 0, 0]
    assert arr[0, 1].tolist() == [0, 128, 0]
    assert arr[1, 2].tolist() == [0x12, 0x56, 0x9A]
    rgba = np.zeros((1, 2, 4), dtype=np.uint16)
    rgba[0, 0] = (0xFFFF, 0, 0, 0xFFFF)  # opaque red
    rgba[0, 1] = (0xFFFF, 0, 0, 0)  # transparent: white background
    rows = b"\x00" + rgba[0].astype(">u2").tobytes()
    png = synth.png_raw(2, 1, bit_depth=16, color_type=6, rows=rows)
    arr = np.asarray(decode_image(png).image).astype(int)
    assert arr[0, 0].tolist() == [255, 0, 0]
    assert arr[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF"])
def test_transparency_is_composited_on_white(synth, fmt):
    img = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    img.paste((200, 0, 0, 255), (0, 0, 20, 20))
    if fmt == "GIF":
        img = img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        img.info["transparency"] = img.getpixel((30, 10))
        data = synth.encode(img, "GIF", transparency=img.getpixel((30, 10)))
    else:
        data = synth.encode(img, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    result = decode_image(data, path=f"t.{fmt.lower()}")
    arr = np.asarray(result.image).astype(int)
    assert arr[10, 5].tolist() == pytest.approx([200, 0, 0], abs=3)
    assert arr[10, 35].tolist() == [255, 255, 255]


def test_semi_transparent_and_la_modes(synth):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    arr = np.asarray(decode_image(synth.encode(rgba, "PNG")).image).astype(int)
    assert arr[0, 0].tolist() == pytest.approx([255, 127, 127], abs=2)
    la = Image.new("LA", (4, 4), (0, 0))  # black, fully transparent
    arr = np.asarray(decode_image(synth.encode(la, "PNG")).image)
    assert (arr == 255).all()


def test_palette_png_with_trns(synth):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    data = synth.encode(img, "PNG", transparency=0)
    arr = np.asarray(decode_image(data).image).astype(int)
    assert arr[0, 0].tolist() == [200, 100, 50]
    assert arr[0, 7].tolist() == [255, 255, 255]


def test_animated_gif_first_frame(synth):
    frames = [Image.new("P", (30, 20), 0) for _ in range(3)]
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 9)
    for i, frame in enumerate(frames):
        frame.putpalette(palette)
        frame.paste(i, (0, 0, 30, 20))
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = decode_image(buf.getvalue(), path="anim.gif")
    assert result.format is MediaFormat.GIF and result.mime == "image/gif"
    assert result.image.size == (30, 20)
    assert np.asarray(result.image)[5, 5].tolist() == [255, 0, 0]


def test_multipage_tiff_first_page(synth):
    pages = [Image.new("RGB", (64, 48), (250, 0, 0)), Image.new("RGB", (20, 10), (0, 250, 0)),
             Image.new("RGB", (99, 99), (0, 0, 250))]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    result = decode_image(buf.getvalue(), path="scan.tiff")
    assert result.format is MediaFormat.TIFF and result.mime == "image/tiff"
    assert (result.width, result.height) == (64, 48)
    assert np.asarray(result.image)[10, 10].tolist() == [250, 0, 0]


def test_tiff_16_bit_gray_and_float(synth):
    gray16 = Image.fromarray(np.full((10, 12), 0x8080, dtype=np.uint16))
    arr = np.asarray(decode_image(synth.encode(gray16, "TIFF"), path="a.tif").image)
    assert arr.shape == (10, 12, 3) and (arr == 0x80).all()
    floats = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "F")
    arr = np.asarray(decode_image(synth.encode(floats, "TIFF"), path="f.tif").image)
    assert arr.min() == 0 and arr.max() == 255


def test_bmp(synth):
    result = decode_image(synth.encode(synth.photo_array(300, 200), "BMP"), path="old.bmp")
    assert (result.format, result.mime, result.image.size) == (MediaFormat.BMP, "image/bmp", (300, 200))


def test_large_png_is_reduced_cheaply(synth):
    data = synth.encode(synth.photo_array(4096, 2048, noise=0), "PNG", compress_level=1)
    result = decode_image(data, target=1024)
    assert result.image.size == (1024, 512)  # reduce(4), nothing else
    result = decode_image(data, target=1000)
    assert result.image.size == (1000, 500)


def test_generated_heic_with_orientation(synth):
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this pillow-heif build has no HEVC encoder")
    upright = synth.quadrants(128, 64)
    stored = upright.transpose(synth.STORE_FOR_ORIENTATION[6])
    heif = pillow_heif.from_pillow(stored)
    buf = io.BytesIO()
    heif.save(buf, quality=90, exif=synth.exif_bytes(orientation=6, make="Apple", model="iPhone 15"))
    data = buf.getvalue()
    result = decode_image(data, path="IMG_0001.HEIC")
    assert (result.format, result.mime) == (MediaFormat.HEIF, "image/heic")
    assert (result.width, result.height) == (128, 64)
    assert result.exif.make == "Apple" and result.exif.orientation == 6
    for got, want in zip(synth.quadrant_colors(result.image), synth.quadrant_colors(upright), strict=True):
        assert all(abs(a - b) <= 30 for a, b in zip(got, want, strict=True)), (got, want)
    probe = probe_image(data, path="IMG_0001.HEIC")
    assert (probe.width, probe.height, probe.exif.orientation) == (128, 64, 6)


# -- names that lie, and bad content ---------------------------------------------------------------

def test_jpeg_named_png_decodes_as_jpeg(synth):
    result = decode_image(synth.jpeg_photo(320, 240), path="holiday.png")
    assert (result.format, result.mime, result.image.size) == (MediaFormat.JPEG, "image/jpeg", (320, 240))


def test_png_named_jpg_decodes_as_png(synth):
    result = decode_image(synth.encode(synth.photo_array(50, 40), "PNG"), path="holiday.jpg")
    assert (result.format, result.mime) == (MediaFormat.PNG, "image/png")


def test_text_named_jpg_fails_cleanly():
    with pytest.raises(MediaError) as info:
        decode_image(b"Dear diary, today I took no photos.\n", path="diary.jpg")
    assert info.value.code is ErrorCode.UNSUPPORTED_TYPE
    assert "diary.jpg" in info.value.message and "text" in info.value.message


def test_zero_bytes():
    with pytest.raises(MediaError) as info:
        decode_image(b"", path="empty.jpg")
    assert info.value.code is ErrorCode.FILE_EMPTY


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "GIF", "BMP", "WEBP"])
def test_truncated_files(synth, fmt):
    data = synth.encode(synth.photo_array(400, 300, noise=20), fmt)
    with pytest.raises(MediaError) as info:
        decode_image(data[: len(data) // 2], path=f"cut.{fmt.lower()}")
    assert info.value.code is ErrorCode.TRUNCATED_IMAGE, info.value.message
    assert "truncated" in info.value.message and "cut." in info.value.message


def test_corrupt_files(synth):
    jpeg = synth.jpeg_photo(200, 150)
    with pytest.raises(MediaError) as info:
        decode_image(jpeg[:20] + bytes(range(256)) * 40, path="bad.jpg")
    assert info.value.code is ErrorCode.CORRUPT_IMAGE
    png = bytearray(synth.encode(synth.photo_array(200, 150), "PNG"))
    png[29] ^= 0xFF  # IHDR checksum
    with pytest.raises(MediaError) as info:
        decode_image(bytes(png), path="bad.png")
    assert info.value.code is ErrorCode.CORRUPT_IMAGE
    png = bytearray(synth.encode(synth.photo_array(200, 150), "PNG"))
    for i in range(200, 4000, 7):
        png[i] ^= 0x5A  # compressed pixel data
    with pytest.raises(MediaError) as info:
        decode_image(bytes(png), path="bad2.png")
    assert info.value.code is ErrorCode.CORRUPT_IMAGE
    assert "bad2.png" in info.value.message


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("kind", "size"), [("png", (100_000, 100_000)), ("jpeg", (65_000, 65_000)),
                                            ("png", (20_000, 15_000))])
def test_huge_header_is_refused_before_decoding(synth, kind, size):
    import tracemalloc

    data = synth.png_raw(*size) if kind == "png" else synth.jpeg_header_claiming(*size)
    tracemalloc.start()
    try:
        with pytest.raises(MediaError) as info:
            decode_image(data, path=f"bomb.{kind}", max_pixels=256_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "limit" in info.value.message
    assert peak < 20_000_000  # nothing near the size of the pixels was allocated


def test_limit_is_ours_not_pillows(synth):
    """A genuine 192-megapixel image passes the header check (Pillow alone would refuse it)."""
    probe = probe_image(synth.png_raw(16_000, 12_000), path="pano.png", max_pixels=256_000_000)
    assert (probe.width, probe.height) == (16_000, 12_000)
    with pytest.raises(MediaError) as info:
        decode_image(synth.jpeg_photo(400, 300), max_pixels=100_000)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert info.value.details == {"width": 400, "height": 300, "limit": 100_000}


def test_probe_reads_headers_only(synth):
    data = synth.jpeg_photo(4000, 3000, exif=synth.exif_bytes(orientation=8))
    probe = probe_image(data, path="p.jpg")
    assert (probe.format, probe.width, probe.height) == (MediaFormat.JPEG, 3000, 4000)
    assert probe.exif.orientation == 8


def test_decode_never_touches_the_file(synth, tmp_path):
    path = tmp_path / "photo.jpg"
    data = synth.jpeg_photo(640, 480)
    path.write_bytes(data)
    path.chmod(0o444)
    before = path.stat()
    result = decode_image(data, path=path)
    result.image.load()
    after = path.stat()
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    assert path.read_bytes() == data
