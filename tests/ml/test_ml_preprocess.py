from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photoindex.ml.preprocess import fit_image, fit_images, to_input_tensor
from photoindex.ml.specs import Preprocess

UNIT = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _bands(width: int, height: int) -> Image.Image:
    """A wide image: left quarter red, middle half green, right quarter blue."""
    a = np.zeros((height, width, 3), np.uint8)
    q = width // 4
    a[:, :q, 0] = 255
    a[:, q : width - q, 1] = 255
    a[:, width - q :, 2] = 255
    return Image.fromarray(a)


def test_shortest_crops_the_centre_and_squash_keeps_everything() -> None:
    img = _bands(400, 100)
    shortest = fit_image(img, Preprocess(size=32, resize_mode="shortest", **UNIT))
    squash = fit_image(img, Preprocess(size=32, resize_mode="squash", **UNIT))
    assert shortest.shape == squash.shape == (32, 32, 3) and shortest.dtype == np.uint8
    # the centre crop of a 4:1 image is the green middle only
    assert shortest[..., 1].min() > 200 and shortest[..., 0].max() < 30 and shortest[..., 2].max() < 30
    # squashing keeps the red and blue edges
    assert squash[:, 0, 0].min() > 200 and squash[:, -1, 2].min() > 200


def test_longest_pads_with_black() -> None:
    img = Image.new("RGB", (100, 50), (255, 255, 255))
    out = fit_image(img, Preprocess(size=20, resize_mode="longest", **UNIT))
    assert out.shape == (20, 20, 3)
    assert out[:5].max() == 0 and out[-5:].max() == 0  # padding above and below
    assert out[7:13].min() > 250  # the image in the middle


def test_exact_shortest_equals_resize_then_centre_crop(photos: dict[str, Image.Image]) -> None:
    """open_clip's reference: torchvision Resize(short side) + CenterCrop on the PIL image."""
    img = photos["coffee"]  # 600x400
    size = 96
    pre = Preprocess(size=size, interpolation="bicubic", resize_mode="shortest", **UNIT)
    w, h = img.size
    new_w, new_h = int(size * w / h), size
    left, top = round((new_w - size) / 2.0), round((new_h - size) / 2.0)
    reference = np.asarray(
        img.resize((new_w, new_h), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))
    )
    exact = fit_image(img, pre, exact=True)
    assert np.abs(exact.astype(int) - reference.astype(int)).max() <= 1
    fast = fit_image(img, pre)
    assert np.abs(fast.astype(int) - reference.astype(int)).mean() < 1.5


def test_fast_path_is_close_to_exact_on_a_large_downscale(photos: dict[str, Image.Image]) -> None:
    img = photos["astronaut"].resize((1024, 1024))
    pre = Preprocess(size=128, resize_mode="squash", **UNIT)
    diff = fit_image(img, pre).astype(int) - fit_image(img, pre, exact=True).astype(int)
    assert np.abs(diff).mean() < 1.0


def test_interpolation_from_the_config_is_used(photos: dict[str, Image.Image]) -> None:
    img = photos["cat"]
    nearest = fit_image(img, Preprocess(size=50, interpolation="nearest", **UNIT))
    bicubic = fit_image(img, Preprocess(size=50, interpolation="bicubic", **UNIT))
    bilinear = fit_image(img, Preprocess(size=50, interpolation="bilinear", **UNIT))
    assert not np.array_equal(nearest, bicubic) and not np.array_equal(bilinear, bicubic)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_any_mode_becomes_rgb(mode: str, photos: dict[str, Image.Image]) -> None:
    img = photos["rocket"].convert(mode) if mode != "I;16" else Image.new("I;16", (40, 30))
    out = fit_image(img, Preprocess(size=16, **UNIT))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_to_input_tensor_normalises_and_goes_channels_first() -> None:
    pre = Preprocess(size=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    batch = np.zeros((2, 4, 4, 3), np.uint8)
    batch[0, ..., 0] = 255
    batch[1, ..., 1] = 51
    out = to_input_tensor(batch, pre)
    assert out.shape == (2, 3, 4, 4) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[0, 0], 1.0, atol=1e-6)  # (1 - .5) / .5
    np.testing.assert_allclose(out[0, 1], -1.0, atol=1e-6)  # (0 - .25) / .25
    np.testing.assert_allclose(out[0, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[1, 1], (0.2 - 0.25) / 0.25, atol=1e-6)
    np.testing.assert_allclose(out[1, 0], -1.0, atol=1e-6)


def test_to_input_tensor_matches_the_obvious_formula(photos: dict[str, Image.Image]) -> None:
    pre = Preprocess(
        size=32, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)
    )
    pixels = fit_images(photos.values(), pre)
    expected = ((pixels / 255.0 - np.array(pre.mean)) / np.array(pre.std)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(to_input_tensor(pixels, pre), expected, atol=1e-5)
    np.testing.assert_allclose(to_input_tensor(pixels[0], pre), expected[:1], atol=1e-5)  # one image


def test_to_input_tensor_rejects_wrong_input() -> None:
    pre = Preprocess(size=8, **UNIT)
    with pytest.raises(ValueError):
        to_input_tensor(np.zeros((1, 9, 8, 3), np.uint8), pre)
    with pytest.raises(ValueError):
        to_input_tensor(np.zeros((1, 8, 8, 3), np.float32), pre)
    assert fit_images([], pre).shape == (0, 8, 8, 3)
