from __future__ import annotations

import pytest
from PIL import Image

from photoindex.config import DEFAULT_MODEL
from photoindex.ml.specs import KNOWN_MODELS, Preprocess, default_spec


def test_known_models_have_real_dimensions() -> None:
    expected = {
        "ViT-B-16-SigLIP2__webli": (768, 224),
        "ViT-B-32__openai": (512, 224),
        "ViT-SO400M-16-SigLIP2-384__webli": (1152, 384),
        "ViT-B-16-SigLIP__webli": (768, 224),
    }
    for name, (dim, size) in expected.items():
        spec = KNOWN_MODELS[name]
        assert (spec.dim, spec.image_size) == (dim, size)
        assert spec.hf_repo == f"immich-app/{name}"
        assert spec.task == "image-text"
        assert spec.licence and spec.description


def test_exactly_one_default_and_it_is_the_configured_one() -> None:
    defaults = [s.name for s in KNOWN_MODELS.values() if s.default]
    assert defaults == [DEFAULT_MODEL] == [default_spec().name]
    assert "recall" in default_spec().description  # says why it is the default


def test_preprocess_from_open_clip_cfg() -> None:
    pre = Preprocess.from_cfg(
        {
            "size": [224, 224],
            "mode": "RGB",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "resize_mode": "squash",
            "fill_color": 0,
        }
    )
    assert pre.size == 224 and pre.mean == (0.5, 0.5, 0.5) and pre.resize_mode == "squash"
    assert pre.resample == Image.Resampling.BICUBIC


def test_preprocess_defaults_for_old_configs() -> None:
    # configs written before open_clip had resize_mode/interpolation resize the short side, bicubic
    pre = Preprocess.from_cfg({"size": 336, "mean": [0.1, 0.2, 0.3], "std": [0.3, 0.2, 0.1]})
    assert (pre.size, pre.resize_mode, pre.interpolation) == (336, "shortest", "bicubic")


@pytest.mark.parametrize(
    "name,resample",
    [
        ("bilinear", Image.Resampling.BILINEAR),
        ("BICUBIC", Image.Resampling.BICUBIC),
        ("nearest", Image.Resampling.NEAREST),
        ("lanczos", Image.Resampling.LANCZOS),
    ],
)
def test_interpolation_names(name: str, resample: Image.Resampling) -> None:
    pre = Preprocess(size=8, mean=(0, 0, 0), std=(1, 1, 1), interpolation=name)
    assert pre.resample == resample


@pytest.mark.parametrize(
    "cfg",
    [
        {"mean": [0, 0, 0], "std": [1, 1, 1]},  # no size
        {"size": [224, 256], "mean": [0, 0, 0], "std": [1, 1, 1]},  # not square
        {"size": 224, "mean": [0, 0], "std": [1, 1, 1]},
        {"size": 224, "mean": [0, 0, 0], "std": [1, 0, 1]},
        {"size": 224, "mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": "magic"},
        {"size": 224, "mean": [0, 0, 0], "std": [1, 1, 1], "resize_mode": "stretch"},
    ],
)
def test_bad_preprocess_cfgs_raise_value_error(cfg: dict) -> None:
    with pytest.raises(ValueError):
        Preprocess.from_cfg(cfg)
