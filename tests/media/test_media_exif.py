"""EXIF → ExifInfo: dates with time zones, GPS signs, exposure, and garbage that must not raise."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import piexif
import pytest
from PIL import Image

from photoindex.media.exif import exif_from_bytes, exif_from_pil, merge_exif, parse_exif_datetime
from photoindex.schemas import ExifInfo


def _info(synth, **kwargs) -> ExifInfo:
    data = synth.jpeg_photo(32, 24, exif=synth.exif_bytes(**kwargs))
    return exif_from_pil(Image.open(io.BytesIO(data)))


def _file_exif(path) -> ExifInfo:
    with Image.open(path) as img:
        return exif_from_pil(img)


def _gps(lat, lat_ref, lon, lon_ref, alt=None, alt_ref=None):
    out = {piexif.GPSIFD.GPSLatitudeRef: lat_ref, piexif.GPSIFD.GPSLatitude: lat,
           piexif.GPSIFD.GPSLongitudeRef: lon_ref, piexif.GPSIFD.GPSLongitude: lon}
    if alt is not None:
        out[piexif.GPSIFD.GPSAltitude] = alt
    if alt_ref is not None:
        out[piexif.GPSIFD.GPSAltitudeRef] = alt_ref
    return out


def test_camera_fields(synth):
    info = _info(
        synth, make="NIKON CORPORATION", model="NIKON D850", orientation=6,
        extra_exif={
            piexif.ExifIFD.ExposureTime: (1, 250), piexif.ExifIFD.FNumber: (28, 10),
            piexif.ExifIFD.ISOSpeedRatings: 400, piexif.ExifIFD.FocalLength: (850, 10),
            piexif.ExifIFD.LensModel: b"24-70mm f/2.8\x00", piexif.ExifIFD.MakerNote: b"\x01" * 5000,
            piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00hello there",
        },
    )
    assert (info.make, info.model, info.lens) == ("NIKON CORPORATION", "NIKON D850", "24-70mm f/2.8")
    assert info.exposure_time == pytest.approx(0.004)
    assert info.f_number == pytest.approx(2.8)
    assert info.iso == 400
    assert info.focal_length == pytest.approx(85.0)
    assert info.orientation == 6
    assert info.taken_at == datetime(2023, 5, 1, 10, 0, 0)
    assert "MakerNote" not in info.raw
    assert info.raw["UserComment"] == "hello there"
    assert info.raw["ExposureTime"] == pytest.approx(0.004)
    json.dumps(info.raw)  # JSON-safe
    json.dumps(info.model_dump(mode="json"))


@pytest.mark.parametrize(("offset", "delta"), [
    ("+02:00", timedelta(hours=2)),
    ("-03:30", -timedelta(hours=3, minutes=30)),
    ("+05:45", timedelta(hours=5, minutes=45)),
    ("+00:00", timedelta(0)),
    ("Z", timedelta(0)),
])
def test_time_zone_makes_an_aware_datetime(synth, offset, delta):
    info = _info(synth, original="2021:12:31 23:59:58", offset=offset, subsec="25")
    assert info.taken_at == datetime(2021, 12, 31, 23, 59, 58, 250000, tzinfo=timezone(delta))
    assert info.taken_at.utcoffset() == delta


def test_without_offset_the_datetime_is_naive(synth):
    info = _info(synth, original="2019:07:04 18:30:05", subsec="123456789")
    assert info.taken_at == datetime(2019, 7, 4, 18, 30, 5, 123456)
    assert info.taken_at.tzinfo is None


def test_date_fallbacks(synth):
    digitized = _info(synth, original=None, digitized="2018:01:02 03:04:05")
    assert digitized.taken_at == datetime(2018, 1, 2, 3, 4, 5)
    modified = _info(synth, original=None, datetime_0th="2017:06:07 08:09:10")
    assert modified.taken_at == datetime(2017, 6, 7, 8, 9, 10)
    # a blank DateTimeOriginal falls through to the next one
    info = _info(synth, original="    :  :     :  :  ", digitized="2016:02:29 12:00:00")
    assert info.taken_at == datetime(2016, 2, 29, 12, 0)
    assert _info(synth, original=None).taken_at is None


@pytest.mark.parametrize("value", [
    "0000:00:00 00:00:00", "    :  :     :  :  ", "", "garbage", "2023:13:45 10:00:00", "2023:02:30 10:00:00",
    "2023:05:01 25:00:00",
])
def test_bad_dates_become_none(value):
    assert parse_exif_datetime(value) is None


def test_date_parsing_variants():
    assert parse_exif_datetime("2023:05:01 10:00:00\x00") == datetime(2023, 5, 1, 10)
    assert parse_exif_datetime(b"2023:05:01 10:00:00") == datetime(2023, 5, 1, 10)
    assert parse_exif_datetime("2023-05-01T10:00:00") == datetime(2023, 5, 1, 10)
    assert parse_exif_datetime("2023:05:01 10:00") == datetime(2023, 5, 1, 10)
    assert parse_exif_datetime("2023:05:01") == datetime(2023, 5, 1)
    assert parse_exif_datetime("2023:05:01 10:00:00.5") == datetime(2023, 5, 1, 10, 0, 0, 500000)
    assert parse_exif_datetime("2023:05:01 10:00:00+0130") == datetime(
        2023, 5, 1, 10, tzinfo=timezone(timedelta(hours=1, minutes=30)))
    assert parse_exif_datetime("2023:05:01 10:00:60") == datetime(2023, 5, 1, 10, 0, 59)  # leap second
    assert parse_exif_datetime("2023:05:01 10:00:00", offset="nonsense").tzinfo is None
    assert parse_exif_datetime("2023:05:01 10:00:00", offset="+25:00").tzinfo is None
    assert parse_exif_datetime("2023:05:01 10:00:00", subsec="abc") == datetime(2023, 5, 1, 10)
    assert parse_exif_datetime(12345) is None


@pytest.mark.parametrize(("lat_ref", "lon_ref", "sign_lat", "sign_lon"), [
    (b"N", b"E", 1, 1), (b"S", b"E", -1, 1), (b"N", b"W", 1, -1), (b"S", b"W", -1, -1), (b"s", b"w", -1, -1),
])
def test_gps_signs(synth, lat_ref, lon_ref, sign_lat, sign_lon):
    gps = _gps(((33, 1), (51, 1), (5400, 100)), lat_ref, ((151, 1), (12, 1), (3000, 100)), lon_ref)
    info = _info(synth, gps=gps)
    assert info.gps_lat == pytest.approx(sign_lat * (33 + 51 / 60 + 54 / 3600))
    assert info.gps_lon == pytest.approx(sign_lon * (151 + 12 / 60 + 30 / 3600))


def test_gps_altitude_below_sea_level(synth):
    gps = _gps(((31, 1), (30, 1), (0, 1)), b"N", ((35, 1), (30, 1), (0, 1)), b"E", alt=(4300, 10), alt_ref=1)
    info = _info(synth, gps=gps)
    assert info.gps_alt == pytest.approx(-430.0)  # the Dead Sea shore
    gps[piexif.GPSIFD.GPSAltitudeRef] = 0
    assert _info(synth, gps=gps).gps_alt == pytest.approx(430.0)


@pytest.mark.parametrize("gps", [
    _gps(((0, 0), (0, 0), (0, 0)), b"N", ((0, 0), (0, 0), (0, 0)), b"E"),  # 0/0 rationals
    _gps(((95, 1), (0, 1), (0, 1)), b"N", ((10, 1), (0, 1), (0, 1)), b"E"),  # latitude out of range
    _gps(((10, 1), (75, 1), (0, 1)), b"N", ((10, 1), (0, 1), (0, 1)), b"E"),  # 75 minutes
    _gps(((0, 1), (0, 1), (0, 1)), b"N", ((0, 1), (0, 1), (0, 1)), b"E"),  # "no fix" zeros
    {piexif.GPSIFD.GPSLatitudeRef: b"N",
     piexif.GPSIFD.GPSLatitude: ((10, 1), (0, 1), (0, 1))},  # no longitude
])
def test_gps_garbage_becomes_none(synth, gps):
    info = _info(synth, gps=gps)
    assert info.gps_lat is None and info.gps_lon is None


def test_garbage_values_never_raise(synth):
    info = _info(
        synth, make="\x00\x00", model="   ", orientation=9,
        extra_exif={
            piexif.ExifIFD.ExposureTime: (1, 0), piexif.ExifIFD.FNumber: (0, 0),
            piexif.ExifIFD.FocalLength: (0, 0),
            piexif.ExifIFD.ISOSpeedRatings: 0, piexif.ExifIFD.LensModel: b"",
            piexif.ExifIFD.ShutterSpeedValue: (1, 0), piexif.ExifIFD.ApertureValue: (0, 0),
        },
    )
    assert info.make is None and info.model is None and info.camera is None
    assert info.orientation is None
    assert info.exposure_time is None and info.f_number is None and info.focal_length is None
    assert info.iso is None and info.lens is None
    json.dumps(info.raw)


def test_apex_and_iso_fallbacks(synth):
    info = _info(synth, extra_exif={
        piexif.ExifIFD.ShutterSpeedValue: (8, 1),  # 2^-8 s
        piexif.ExifIFD.ApertureValue: (4, 1),  # sqrt(2)^4 = f/4
        piexif.ExifIFD.ISOSpeedRatings: 65535, piexif.ExifIFD.RecommendedExposureIndex: 102400,
    })
    assert info.exposure_time == pytest.approx(1 / 256)
    assert info.f_number == pytest.approx(4.0)
    assert info.iso == 102400


def test_no_exif_at_all(synth):
    img = Image.open(io.BytesIO(synth.encode(synth.photo_array(16, 16), "JPEG")))
    info = exif_from_pil(img)
    assert info == ExifInfo()
    assert exif_from_bytes(b"") == ExifInfo()
    assert exif_from_bytes(b"not a tiff at all") == ExifInfo()


def test_exif_from_bytes_reads_a_raw_exif_block(synth):
    block = synth.exif_bytes(make="FUJIFILM", model="X-T5", offset="+09:00")
    for data in (block, block[6:] if block.startswith(b"Exif\x00\x00") else block):
        info = exif_from_bytes(data)
        assert info.make == "FUJIFILM"
        assert info.taken_at.utcoffset() == timedelta(hours=9)


def test_merge_keeps_primary_and_fills_gaps():
    primary = ExifInfo(make="SONY", iso=100, raw={"Make": "SONY"})
    fallback = ExifInfo(make="Sony", model="ILCE-7RM3", iso=3200, lens="FE 85mm",
                        raw={"Make": "Sony", "X": 1})
    merged = merge_exif(primary, fallback)
    assert (merged.make, merged.model, merged.iso, merged.lens) == ("SONY", "ILCE-7RM3", 100, "FE 85mm")
    assert merged.raw == {"Make": "SONY", "X": 1}


# -- real camera files -----------------------------------------------------------------------------

def test_real_pixel_phone_jpeg_with_time_zone_and_gps(real):
    """Google Pixel 6 (Ultra HDR JPEG from Pillow's tests): +08:00, GPS N/E, altitude, lens."""
    info = _file_exif(real.pillow("ultrahdr.jpg"))
    assert (info.make, info.model) == ("Google", "Pixel 6")
    assert info.taken_at == datetime(2024, 5, 7, 9, 33, 4, 46000, tzinfo=timezone(timedelta(hours=8)))
    assert info.gps_lat == pytest.approx(30.62765, abs=1e-4)
    assert info.gps_lon == pytest.approx(119.73877, abs=1e-4)
    assert info.gps_alt == pytest.approx(98.9, abs=0.1)
    assert info.lens and "Pixel 6" in info.lens
    assert info.f_number == pytest.approx(1.85)
    assert info.iso == 89
    json.dumps(info.raw)


def test_real_drone_tiff_has_a_western_longitude(real):
    """FLIR Duo Pro R (a drone camera) GeoTIFF: longitude W must come out negative."""
    info = _file_exif(real.pillow("ifd_tag_type.tiff"))
    assert info.make == "FLIR"
    assert info.gps_lat == pytest.approx(35.6, abs=0.01)
    assert info.gps_lon == pytest.approx(-111.66, abs=0.01)
    assert info.gps_alt == pytest.approx(1845.7, abs=0.5)


def test_real_iphone_negative_offset(real):
    info = _file_exif(real.pillow("frame_size.mpo"))
    assert (info.make, info.model) == ("Apple", "iPhone 14 Pro Max")
    assert info.taken_at.utcoffset() == -timedelta(hours=4)
    assert info.iso == 640


def test_real_dslr_files(real):
    nikon = _file_exif(real.pillow("broken_exif_dpi.jpg"))
    assert (nikon.make, nikon.model, nikon.lens) == ("NIKON CORPORATION", "NIKON D800", "14.0-24.0 mm f/2.8")
    assert nikon.taken_at == datetime(2013, 9, 11, 16, 45, 13, 900000)
    assert (nikon.exposure_time, nikon.f_number, nikon.iso, nikon.focal_length) == (0.004, 8.0, 400, 14.0)
    canon = _file_exif(real.pillow("xmp_test.jpg"))
    assert canon.camera == "Canon EOS Rebel T6"
    assert canon.lens == "EF-S18-55mm f/3.5-5.6 III"
    xiaomi = _file_exif(real.pillow("empty_gps_ifd.jpg"))
    assert (xiaomi.make, xiaomi.orientation, xiaomi.iso) == ("Xiaomi", 6, 25600)
    assert xiaomi.gps_lat is None  # an empty GPS IFD is no position
    nokia = _file_exif(real.pillow("iptc.jpg"))
    assert (nokia.make, nokia.model) == ("Nokia", "N70-1")


@pytest.mark.parametrize("name", ["hopper_bad_exif.jpg", "invalid-exif.jpg", "exif_typeerror.jpg",
                                  "exif_gps_typeerror.jpg", "exif_gps.jpg", "truncated_jpeg.jpg"])
def test_real_broken_exif_never_raises(real, name):
    info = _file_exif(real.pillow(name))
    json.dumps(info.model_dump(mode="json"))
