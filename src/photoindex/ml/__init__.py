"""Models: specs, the registry (find / list / pull), ONNX Runtime sessions, preprocessing, embedders.

Names are imported on first use, so `import photoindex.ml` (and listing models) does not load ONNX
Runtime or the tokenizers library.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Preprocess": "specs",
    "ModelSpec": "specs",
    "KNOWN_MODELS": "specs",
    "ModelRegistry": "registry",
    "ModelStatus": "registry",
    "model_revision": "registry",
    "is_model_dir": "registry",
    "OrtSession": "session",
    "default_providers": "session",
    "fit_image": "preprocess",
    "fit_images": "preprocess",
    "to_input_tensor": "preprocess",
    "ImageTextEmbedder": "clip",
    "load_embedder": "clip",
}

__all__ = [
    "KNOWN_MODELS",
    "ImageTextEmbedder",
    "ModelRegistry",
    "ModelSpec",
    "ModelStatus",
    "OrtSession",
    "Preprocess",
    "default_providers",
    "fit_image",
    "fit_images",
    "is_model_dir",
    "load_embedder",
    "model_revision",
    "to_input_tensor",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from photoindex.ml.clip import ImageTextEmbedder, load_embedder
    from photoindex.ml.preprocess import fit_image, fit_images, to_input_tensor
    from photoindex.ml.registry import ModelRegistry, ModelStatus, is_model_dir, model_revision
    from photoindex.ml.session import OrtSession, default_providers
    from photoindex.ml.specs import KNOWN_MODELS, ModelSpec, Preprocess


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'photoindex.ml' has no attribute {name!r}")
    value = getattr(import_module(f"photoindex.ml.{module}"), name)
    globals()[name] = value
    return value
