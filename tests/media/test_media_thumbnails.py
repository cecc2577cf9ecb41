"""Content-addressed, atomic, idempotent JPEG thumbnails."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoindex.errors import ErrorCode, MediaError
from photoindex.media import thumbnails
from photoindex.media.decode import decode_image
from photoindex.media.thumbnails import thumbnail_path, write_thumbnails

SHA = hashlib.sha256(b"a photo").hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_path_layout(tmp_path):
    path = thumbnail_path(tmp_path, SHA, 256)
    assert path == tmp_path / "256" / SHA[:2] / SHA[2:4] / f"{SHA}.jpg"
    assert thumbnail_path(str(tmp_path), SHA, 1024).parts[-4:] == ("1024", SHA[:2], SHA[2:4], f"{SHA}.jpg")


@pytest.mark.parametrize("bad", ["", "abc", "../" * 21 + "x", SHA.upper(), SHA[:-1] + "g", SHA + "0"])
def test_path_rejects_non_digests(tmp_path, bad):
    with pytest.raises(MediaError) as info:
        thumbnail_path(tmp_path, bad, 256)
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_sizes_from_a_large_decode(tmp_path, synth):
    decoded = decode_image(synth.jpeg_photo(4000, 3000), target=1024, slack=0)
    paths = write_thumbnails(decoded.image, SHA, tmp_path, (256, 1024), 82)
    assert set(paths) == {256, 1024}
    assert paths[256] == thumbnail_path(tmp_path, SHA, 256)
    with Image.open(paths[1024]) as big, Image.open(paths[256]) as small:
        assert (big.format, big.size, big.mode) == ("JPEG", (1024, 768), "RGB")
        assert (small.format, small.size) == ("JPEG", (256, 192))
        assert not big.info.get("progressive")
        assert "exif" not in big.info  # upright pixels, no orientation tag to confuse viewers
        small_arr = np.asarray(small, dtype=np.float64)
        reference = np.asarray(big.convert("RGB").resize((256, 192), Image.Resampling.LANCZOS), np.float64)
    assert np.abs(small_arr - reference).mean() < 5.0
    assert _files(tmp_path) == sorted(paths.values())  # no temporary files left behind


def test_default_decode_and_the_never_enlarge_rule(tmp_path, synth):
    decoded = decode_image(synth.jpeg_photo(4000, 3000))  # 1000x750 with the default 5 % slack
    paths = write_thumbnails(decoded.image, SHA, tmp_path)
    with Image.open(paths[1024]) as big, Image.open(paths[256]) as small:
        assert big.size == (1000, 750)
        assert small.size == (256, 192)


def test_small_image_is_never_upscaled(tmp_path, synth):
    img = Image.fromarray(synth.photo_array(200, 120))
    paths = write_thumbnails(img, SHA, tmp_path, (256, 1024))
    for path in paths.values():
        with Image.open(path) as thumb:
            assert thumb.size == (200, 120)


def test_portrait_and_odd_sizes(tmp_path, synth):
    img = Image.fromarray(synth.photo_array(683, 1024))
    paths = write_thumbnails(img, SHA, tmp_path, [64, 300, 1024, 300])
    assert set(paths) == {64, 300, 1024}
    sizes = {}
    for size, path in paths.items():
        with Image.open(path) as thumb:
            sizes[size] = thumb.size
    assert sizes == {1024: (683, 1024), 300: (200, 300), 64: (43, 64)}


def test_other_modes_are_converted(tmp_path):
    rgba = Image.new("RGBA", (600, 400), (0, 0, 255, 0))
    paths = write_thumbnails(rgba, SHA, tmp_path, (256,))
    with Image.open(paths[256]) as thumb:
        assert thumb.mode == "RGB"
        assert np.asarray(thumb)[10, 10].tolist() == pytest.approx([255, 255, 255], abs=2)
    gray = Image.new("L", (300, 300), 77)
    paths = write_thumbnails(gray, "b" * 64, tmp_path, (128,))
    with Image.open(paths[128]) as thumb:
        assert thumb.mode == "RGB" and thumb.size == (128, 128)


def test_icc_profile_is_kept(tmp_path, real):
    decoded = decode_image(real.pillow("pil_sample_rgb.jpg").read_bytes())
    icc = decoded.image.info.get("icc_profile")
    assert icc and icc[16:20] == b"RGB "
    paths = write_thumbnails(decoded.image, SHA, tmp_path, (64,))
    with Image.open(paths[64]) as thumb:
        assert thumb.info.get("icc_profile") == icc


def test_non_rgb_icc_profile_is_not_carried_over(tmp_path, synth):
    """A CMYK JPEG's CMYK profile must not end up in the RGB thumbnail."""
    from PIL import ImageCms

    cmyk = synth.quadrants(64, 64).convert("CMYK")
    fake_cmyk_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    fake_cmyk_profile = fake_cmyk_profile[:16] + b"CMYK" + fake_cmyk_profile[20:]
    data = synth.encode(cmyk, "JPEG", icc_profile=fake_cmyk_profile)
    decoded = decode_image(data)
    assert "icc_profile" not in decoded.image.info
    paths = write_thumbnails(decoded.image, SHA, tmp_path, (64,))
    with Image.open(paths[64]) as thumb:
        assert thumb.info.get("icc_profile") is None


def test_idempotent_and_existing_files_are_kept(tmp_path, synth, monkeypatch):
    img = Image.fromarray(synth.photo_array(800, 600))
    first = write_thumbnails(img, SHA, tmp_path, (256, 1024))
    stats = {size: path.stat() for size, path in first.items()}
    calls: list[Path] = []
    original = thumbnails._write_atomic
    def counting(im, path, *args):
        calls.append(path)
        return original(im, path, *args)

    monkeypatch.setattr(thumbnails, "_write_atomic", counting)
    second = write_thumbnails(img, SHA, tmp_path, (256, 1024))
    assert second == first
    assert calls == []  # nothing re-encoded
    assert all(path.stat().st_mtime_ns == stats[size].st_mtime_ns for size, path in second.items())
    # one size missing: only that one is written
    first[256].unlink()
    write_thumbnails(img, SHA, tmp_path, (256, 1024))
    assert calls == [first[256]]
    assert first[1024].stat().st_mtime_ns == stats[1024].st_mtime_ns


def test_failed_write_leaves_nothing_behind(tmp_path, synth, monkeypatch):
    img = Image.fromarray(synth.photo_array(800, 600))

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\xff\xd8\xff partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(MediaError) as info:
        write_thumbnails(img, SHA, tmp_path, (256, 1024))
    assert info.value.code is ErrorCode.INTERNAL
    assert "No space left" in info.value.message
    assert _files(tmp_path) == []  # no partial JPEG, no temporary file
    monkeypatch.undo()
    paths = write_thumbnails(img, SHA, tmp_path, (256, 1024))  # and a retry works
    assert all(p.is_file() for p in paths.values())


def test_concurrent_writers_agree(tmp_path, synth):
    img = Image.fromarray(synth.photo_array(1024, 768))
    errors: list[BaseException] = []

    def work():
        try:
            write_thumbnails(img.copy(), SHA, tmp_path, (256, 1024))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = _files(tmp_path)
    assert [p.name for p in files] == [f"{SHA}.jpg"] * 2
    for path in files:
        with Image.open(path) as thumb:
            thumb.load()  # a whole JPEG, never a half-written one


def test_quality_is_validated(tmp_path, synth):
    img = Image.fromarray(synth.photo_array(64, 64))
    with pytest.raises(MediaError):
        write_thumbnails(img, SHA, tmp_path, (32,), quality=0)
    low = write_thumbnails(img, "c" * 64, tmp_path, (64,), quality=30)[64]
    high = write_thumbnails(img, "d" * 64, tmp_path, (64,), quality=95)[64]
    assert os.path.getsize(low) < os.path.getsize(high)


def test_real_photo_end_to_end(tmp_path, real):
    """Read, hash, decode and thumbnail a real HEIC the way ingest does."""
    from photoindex.media.hashing import read_and_hash

    path = real.heic("heif_other/arrow.heic")
    data = read_and_hash(path, max_bytes=1 << 30)
    decoded = decode_image(data.data, path=path, target=1024)
    paths = write_thumbnails(decoded.image, data.sha256, tmp_path, (256, 1024))
    assert paths[256].parts[-4:] == ("256", data.sha256[:2], data.sha256[2:4], f"{data.sha256}.jpg")
    with Image.open(paths[256]) as thumb:
        assert thumb.size == (192, 256)  # portrait, upright
