"""What a model is: its specification (where it comes from, what it outputs) and its preprocessing.

Nothing here touches the disk or ONNX Runtime; `registry` finds model folders and `clip` runs them.

The image-text models are CLIP/SigLIP exports in the layout the Immich project publishes on Hugging
Face (`immich-app/<name>`): `config.json` (the open_clip model config), `visual/` (image encoder,
`preprocess_cfg.json`) and `textual/` (text encoder, tokenizer files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from photoindex.config import DEFAULT_MODEL

#: interpolation names used by open_clip / torchvision configs -> Pillow resampling filters
RESAMPLING: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "linear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "cubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class Preprocess(BaseModel):
    """How a photo becomes the image encoder's input tensor (read from `visual/preprocess_cfg.json`).

    `shortest`: scale the short side to `size`, then take the centre `size`x`size` square (CLIP).
    `squash`: scale both sides to `size`, ignoring the aspect ratio (SigLIP, SigLIP2).
    `longest`: scale the long side to `size` and pad the short side with black, centred.
    Pixels are then scaled to 0..1 and normalised per channel: `(x - mean) / std`.
    """

    model_config = ConfigDict(frozen=True)

    size: int = Field(gt=0, le=4096)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: Literal["shortest", "squash", "longest"] = "shortest"

    @field_validator("interpolation", mode="before")
    @classmethod
    def _known_interpolation(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.strip().lower()
            if name not in RESAMPLING:
                raise ValueError(
                    f"unsupported interpolation {value!r} (known: {', '.join(sorted(RESAMPLING))})"
                )
            return name
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError(f"std must be positive, got {value}")
        return value

    @property
    def resample(self) -> Image.Resampling:
        return RESAMPLING[self.interpolation]

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Preprocess:
        """Read an open_clip `preprocess_cfg.json` mapping. Raises `ValueError` when it is malformed."""
        if not isinstance(cfg, Mapping):
            raise ValueError("preprocessing config must be a JSON object")
        if "size" not in cfg:
            raise ValueError("preprocessing config has no 'size'")
        size = cfg["size"]
        if isinstance(size, list | tuple):
            if not size or any(s != size[0] for s in size):
                raise ValueError(f"only square inputs are supported, got size {size!r}")
            size = size[0]
        return cls(
            size=size,
            mean=_three(cfg.get("mean"), "mean"),
            std=_three(cfg.get("std"), "std"),
            interpolation=cfg.get("interpolation") or "bicubic",
            # open_clip wrote no resize_mode before it had one; those models resize the short side
            resize_mode=cfg.get("resize_mode") or "shortest",
        )


def _three(value: Any, what: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return (float(value),) * 3
    if isinstance(value, list | tuple) and len(value) == 3:
        return (float(value[0]), float(value[1]), float(value[2]))
    raise ValueError(f"preprocessing config needs '{what}' as 3 numbers, got {value!r}")


class ModelSpec(BaseModel):
    """A model photoindex knows how to get and run."""

    model_config = ConfigDict(frozen=True)

    name: str
    task: Literal["image-text"] = "image-text"
    hf_repo: str | None = None
    revision: str | None = Field(default=None, description="Pinned Hugging Face revision; None = latest.")
    dim: int | None = Field(default=None, description="Embedding size.")
    image_size: int | None = Field(default=None, description="Side of the square image input, pixels.")
    description: str = ""
    licence: str = ""
    size_mb: float | None = Field(default=None, description="Approximate download size (fp32 ONNX), MB.")
    default: bool = False


def _immich(name: str, **kwargs: Any) -> ModelSpec:
    return ModelSpec(
        name=name, task="image-text", hf_repo=f"immich-app/{name}", default=name == DEFAULT_MODEL, **kwargs
    )


# Recall figures: Immich's published table (docs "Searching" page), English, Crossmodal-3600,
# mean of zero-shot image retrieval recall@1/5/10, and its CPU time per image (7800X3D, fp32).
# Download sizes are estimates from parameter counts (4 bytes per fp32 weight).
_SPECS = [
    _immich(
        "ViT-B-16-SigLIP2__webli",
        dim=768,
        image_size=224,
        licence="Apache-2.0",
        size_mb=1500,
        description=(
            "SigLIP2 base, patch 16, 224 px (Google, WebLI). The default: in Immich's published recall table "
            "it scores 75.2 % English recall, within a point of the best model (ViT-H-14-378 dfn5b, 75.7 %) "
            "and above SO400M SigLIP2 384 (75.1 %), while it needs ~5.8 ms per image on a CPU, about ten "
            "times less than those."
        ),
    ),
    _immich(
        "ViT-B-32__openai",
        dim=512,
        image_size=224,
        licence="MIT",
        size_mb=605,
        description=(
            "The original OpenAI CLIP, base, patch 32, 224 px. Fastest and smallest (~2.3 ms per image on a "
            "CPU), English only and clearly weaker: 59.4 % English recall in Immich's table."
        ),
    ),
    _immich(
        "ViT-B-32__laion2b-s34b-b79k",
        dim=512,
        image_size=224,
        licence="MIT",
        size_mb=605,
        description=(
            "OpenCLIP base, patch 32, trained on LAION-2B. As fast as ViT-B-32__openai but much better "
            "(68.8 % English recall): the pick for slow CPUs."
        ),
    ),
    _immich(
        "ViT-B-16-SigLIP__webli",
        dim=768,
        image_size=224,
        licence="Apache-2.0",
        size_mb=815,
        description=(
            "The first SigLIP, base, patch 16, 224 px. Smaller than SigLIP2 (English vocabulary only), "
            "71.6 % English recall at a similar speed."
        ),
    ),
    _immich(
        "ViT-L-16-SigLIP2-256__webli",
        dim=1024,
        image_size=256,
        licence="Apache-2.0",
        size_mb=3530,
        description=(
            "SigLIP2 large, patch 16, 256 px. Better multilingual recall than the base model, about four "
            "times slower (74.3 % English recall, ~24 ms per image on a CPU). Suits a GPU."
        ),
    ),
    _immich(
        "ViT-SO400M-16-SigLIP2-384__webli",
        dim=1152,
        image_size=384,
        licence="Apache-2.0",
        size_mb=4550,
        description=(
            "SigLIP2 shape-optimised 400M, patch 16, 384 px. Much better than the base model in many "
            "non-English languages (Arabic 69.3 % vs 61.7 % recall in Immich's table); in English it equals "
            "the base model (75.1 %) at ten times the cost (~57 ms per image on a CPU). Use with a GPU."
        ),
    ),
]

KNOWN_MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}

assert DEFAULT_MODEL in KNOWN_MODELS, "config.DEFAULT_MODEL must be a known model"


def default_spec() -> ModelSpec:
    return KNOWN_MODELS[DEFAULT_MODEL]
