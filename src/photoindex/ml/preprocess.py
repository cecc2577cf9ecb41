"""The one place that knows how a photo becomes a model input.

Two steps, split so that the expensive one can run where the photo is decoded:

* `fit_image` (ingest worker processes): resize + centre crop / squash / pad to the model's square input,
  giving a small uint8 array (224x224x3 is 150 KB) that is cheap to send between processes.
* `to_input_tensor` (next to the model): scale to 0..1, normalise with the model's mean/std, HWC -> CHW,
  for a whole batch at once.

Resizing follows open_clip's (torchvision's) transforms on PIL images, which is what the models saw in
training: "shortest" scales the short side to S with the long side truncated to an integer, then crops
the centre SxS with torchvision's rounding; "squash" scales to SxS; "longest" scales the long side to S and
pads the short side with black, centred.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from photoindex.ml.specs import Preprocess

#: Before the final filter, shrink by an integer factor with a box filter while at least this much
#: scaling is left for the filter. Pillow's two-step resize; halves the cost of 1024 px -> 224 px and
#: differs from the one-step result by less than half a grey level on average.
REDUCING_GAP = 1.5


def _resized_shortest(width: int, height: int, size: int) -> tuple[int, int]:
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def fit_image(img: Image.Image, pre: Preprocess, *, exact: bool = False) -> np.ndarray:
    """Resize and crop (or squash, or pad) an image to the model's input: uint8 array (S, S, 3), RGB.

    `exact=True` resamples in one step exactly as open_clip does (slower on large images); by default
    a large downscale first shrinks by an integer factor (see `REDUCING_GAP`). In both cases only the
    part of the image that survives the crop is resampled.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    size = pre.size
    width, height = img.size
    if width < 1 or height < 1:
        raise ValueError("empty image")
    gap = None if exact else REDUCING_GAP

    if pre.resize_mode == "squash" or (width == height and pre.resize_mode == "shortest"):
        out = (
            img
            if (width, height) == (size, size)
            else img.resize((size, size), pre.resample, reducing_gap=gap)
        )
    elif pre.resize_mode == "shortest":
        new_w, new_h = _resized_shortest(width, height, size)
        left = round((new_w - size) / 2.0)
        top = round((new_h - size) / 2.0)
        sx, sy = width / new_w, height / new_h
        # resampling just the crop window with the full image's scale gives the same pixels as
        # resizing the whole image and cropping afterwards
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        out = img.resize((size, size), pre.resample, box=box, reducing_gap=gap)
    else:  # longest
        scale = size / max(width, height)
        new_w = min(size, max(1, round(width * scale)))
        new_h = min(size, max(1, round(height * scale)))
        scaled = img.resize((new_w, new_h), pre.resample, reducing_gap=gap)
        out = Image.new("RGB", (size, size))
        out.paste(scaled, ((size - new_w) // 2, (size - new_h) // 2))
    return np.asarray(out, dtype=np.uint8)


def fit_images(images: Iterable[Image.Image], pre: Preprocess, *, exact: bool = False) -> np.ndarray:
    """`fit_image` for several images, stacked: uint8 (N, S, S, 3)."""
    fitted = [fit_image(img, pre, exact=exact) for img in images]
    if not fitted:
        return np.empty((0, pre.size, pre.size, 3), dtype=np.uint8)
    return np.stack(fitted)


def to_input_tensor(batch: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 (N, S, S, 3) (or one (S, S, 3) image) -> float32 (N, 3, S, S), normalised with mean/std."""
    batch = np.asarray(batch)
    if batch.ndim == 3:
        batch = batch[None]
    size = pre.size
    if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 pixels of shape (N, {size}, {size}, 3), got {batch.shape}")
    if batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {batch.dtype}")
    std = np.asarray(pre.std, dtype=np.float32)
    mean = np.asarray(pre.mean, dtype=np.float32)
    scale = (1.0 / (255.0 * std)).reshape(1, 3, 1, 1)
    shift = (mean / std).reshape(1, 3, 1, 1)
    out = np.empty((batch.shape[0], 3, size, size), dtype=np.float32)
    # one pass that reads HWC and writes CHW, then one in-place subtraction
    np.multiply(batch.transpose(0, 3, 1, 2), scale, out=out, dtype=np.float32, casting="unsafe")
    out -= shift
    return out
