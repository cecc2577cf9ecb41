"""Image-text embeddings from CLIP / SigLIP ONNX exports (the Immich layout).

    model-dir/config.json                    open_clip config: embed_dim, vision_cfg, text_cfg
    model-dir/visual/model.onnx              "image" float32 [N,3,S,S] -> [N,D]
    model-dir/visual/preprocess_cfg.json     size, mean, std, interpolation, resize_mode
    model-dir/textual/model.onnx             "text" int32 [N,L] -> [N,D]
    model-dir/textual/tokenizer.json         Hugging Face `tokenizers` file
    model-dir/textual/tokenizer_config.json  pad_token
    model-dir/textual/special_tokens_map.json

The two ONNX sessions load on first use: ingest only needs the image encoder, search mostly the text
encoder. Every embedding comes back L2-normalised (exports are not trusted to do it). Exports whose
batch axis is fixed (Immich's newer ones take one item at a time) are fed chunks of that size.
"""

from __future__ import annotations

import json
import logging
import string
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.preprocess import fit_images, to_input_tensor
from photoindex.ml.registry import (
    CONFIG,
    SPECIAL_TOKENS,
    TEXTUAL_MODEL,
    TOKENIZER,
    TOKENIZER_CONFIG,
    VISUAL_MODEL,
    VISUAL_PREPROCESS,
    ModelRegistry,
    model_revision,
)
from photoindex.ml.session import OrtSession
from photoindex.ml.specs import Preprocess

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from photoindex.config import Settings

log = logging.getLogger(__name__)

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def clean_text(text: str, *, canonicalize: bool = False) -> str:
    """Collapse whitespace; with `canonicalize` (SigLIP's open_clip setting) also drop ASCII punctuation
    and lowercase."""
    text = " ".join(text.split())
    if canonicalize:
        text = text.translate(_PUNCTUATION).lower()
    return text


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def _invalid(path: Path, what: str, exc: BaseException | None = None) -> ModelError:
    message = f"model file {path} {what}"
    if exc is not None:
        message += f": {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}"
    model_dir = path.parent.parent if path.parent.name in ("visual", "textual") else path.parent
    return ModelError(
        message,
        code=ErrorCode.MODEL_INVALID,
        hint=f"download it again with `photoindex models pull {model_dir.name}` (or replace {model_dir})",
        details={"file": str(path)},
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _invalid(path, "is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, "is not valid JSON", exc) from exc
    if not isinstance(data, dict):
        raise _invalid(path, "is not a JSON object")
    return data


def _token_name(value: Any) -> str | None:
    """A special token as tokenizer configs store it: a string or an AddedToken-like {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


class ImageTextEmbedder:
    """A CLIP/SigLIP model: images and texts into one L2-normalised embedding space."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        revision: str,
        dim: int,
        preprocess: Preprocess,
        context_length: int,
        canonicalize: bool,
        providers: Sequence[str] | None,
        intra_op_threads: int,
        batch_size: int,
    ) -> None:
        self.path = path
        self.name = name
        self.revision = revision
        self.dim = dim
        self.preprocess = preprocess
        self.context_length = context_length
        self.canonicalize = canonicalize
        self.providers = list(providers) if providers is not None else None
        self.intra_op_threads = intra_op_threads
        self.batch_size = max(1, int(batch_size))
        self._visual: OrtSession | None = None
        self._textual: OrtSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._pad_token = ""
        self._lock = threading.Lock()

    # loading ---------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: Path,
        *,
        name: str | None = None,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        batch_size: int = 32,
    ) -> ImageTextEmbedder:
        """Check the folder's layout and read its configs; the ONNX sessions load on first use.

        Any missing or malformed file raises `ModelError(MODEL_INVALID)` naming it.
        """
        path = Path(path)
        if not path.is_dir():
            raise ModelError(
                f"model folder {path} does not exist",
                code=ErrorCode.MODEL_NOT_FOUND,
                hint=f"run `photoindex models pull {name or path.name}`, or set PHOTOINDEX_MODELS_PATH",
                details={"path": str(path)},
            )
        for rel in (VISUAL_MODEL, TEXTUAL_MODEL, TOKENIZER):
            file = path / rel
            if not file.is_file():
                raise _invalid(file, "is missing")
            if file.stat().st_size == 0:
                raise _invalid(file, "is empty")

        config_path = path / CONFIG
        config = _read_json(config_path)
        dim = config.get("embed_dim")
        if not isinstance(dim, int) or dim <= 0:
            raise _invalid(config_path, f"has no valid 'embed_dim' (got {dim!r})")
        text_cfg = config.get("text_cfg") or {}
        if not isinstance(text_cfg, dict):
            raise _invalid(config_path, "has a 'text_cfg' that is not an object")
        context_length = text_cfg.get("context_length", 77)
        if not isinstance(context_length, int) or context_length <= 0:
            raise _invalid(config_path, f"has no valid text_cfg.context_length (got {context_length!r})")
        tokenizer_kwargs = text_cfg.get("tokenizer_kwargs") or {}
        canonicalize = isinstance(tokenizer_kwargs, dict) and tokenizer_kwargs.get("clean") == "canonicalize"

        pre_path = path / VISUAL_PREPROCESS
        try:
            preprocess = Preprocess.from_cfg(_read_json(pre_path))
        except ValueError as exc:
            raise _invalid(pre_path, "is not a valid preprocessing config", exc) from exc
        vision_cfg = config.get("vision_cfg")
        vision_size = vision_cfg.get("image_size") if isinstance(vision_cfg, dict) else None
        if isinstance(vision_size, list | tuple) and vision_size:
            vision_size = vision_size[0]
        if isinstance(vision_size, int) and vision_size != preprocess.size:
            log.warning(
                "%s: vision_cfg.image_size %s differs from preprocess size %s; using the latter",
                path,
                vision_size,
                preprocess.size,
            )

        embedder = cls(
            path,
            name=name or path.name,
            revision=model_revision(path),
            dim=dim,
            preprocess=preprocess,
            context_length=context_length,
            canonicalize=canonicalize,
            providers=providers,
            intra_op_threads=intra_op_threads,
            batch_size=batch_size,
        )
        embedder._check_tokenizer_configs()
        return embedder

    def _check_tokenizer_configs(self) -> None:
        # small JSON files: parse now so that a broken one fails at load, not at the first search
        tok_cfg = _read_json(self.path / TOKENIZER_CONFIG)
        special_path = self.path / SPECIAL_TOKENS
        special = _read_json(special_path) if special_path.exists() else {}
        pad = _token_name(tok_cfg.get("pad_token")) or _token_name(special.get("pad_token"))
        if pad is None:
            raise _invalid(self.path / TOKENIZER_CONFIG, "names no pad_token")
        self._pad_token = pad

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def visual_loaded(self) -> bool:
        return self._visual is not None

    @property
    def textual_loaded(self) -> bool:
        return self._textual is not None

    @property
    def visual(self) -> OrtSession:
        if self._visual is None:
            with self._lock:
                if self._visual is None:
                    session = OrtSession(
                        self.path / VISUAL_MODEL,
                        providers=self.providers,
                        intra_op_threads=self.intra_op_threads,
                    )
                    self._check_visual(session)
                    self._visual = session
        return self._visual

    @property
    def textual(self) -> OrtSession:
        if self._textual is None:
            with self._lock:
                if self._textual is None:
                    session = OrtSession(
                        self.path / TEXTUAL_MODEL,
                        providers=self.providers,
                        intra_op_threads=self.intra_op_threads,
                    )
                    self._check_textual(session)
                    self._textual = session
        return self._textual

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = self._load_tokenizer()
        return self._tokenizer

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        file = self.path / TOKENIZER
        try:
            tokenizer = Tokenizer.from_file(file.as_posix())
        except Exception as exc:  # tokenizers raises a bare Exception for parse errors
            raise _invalid(file, "cannot be read by the tokenizers library", exc) from exc
        pad_id = tokenizer.token_to_id(self._pad_token)
        if pad_id is None:
            raise _invalid(
                self.path / TOKENIZER_CONFIG, f"names pad_token {self._pad_token!r}, which {TOKENIZER} lacks"
            )
        tokenizer.enable_padding(length=self.context_length, pad_id=pad_id, pad_token=self._pad_token)
        tokenizer.enable_truncation(max_length=self.context_length)
        return tokenizer

    def _check_visual(self, session: OrtSession) -> None:
        file = self.path / VISUAL_MODEL
        if len(session.inputs) != 1:
            raise _invalid(file, f"should take one image input, takes {session.input_names}")
        shape = session.inputs[0].shape
        size = self.preprocess.size
        if len(shape) != 4 or any(
            isinstance(d, int) and d != want for d, want in zip(shape[1:], (3, size, size), strict=True)
        ):
            raise _invalid(file, f"takes input of shape {list(shape)}, expected [N, 3, {size}, {size}]")
        self._check_output(session, file)

    def _check_textual(self, session: OrtSession) -> None:
        file = self.path / TEXTUAL_MODEL
        names = set(session.input_names)
        if not (len(names) == 1 or names == {"input_ids", "attention_mask"}):
            raise _invalid(file, f"should take token ids, takes {session.input_names}")
        shape = session.inputs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != self.context_length):
            raise _invalid(file, f"takes input of shape {list(shape)}, expected [N, {self.context_length}]")
        self._check_output(session, file)

    def _check_output(self, session: OrtSession, file: Path) -> None:
        shape = session.outputs[0].shape
        last = shape[-1] if shape else None
        if isinstance(last, int) and last != self.dim:
            raise _invalid(file, f"outputs {last}-d vectors but config.json says embed_dim {self.dim}")

    def warmup(self) -> None:
        """Load both sessions and run each once (the first run of a session is slow)."""
        size = self.preprocess.size
        self.embed_images(np.zeros((1, size, size, 3), dtype=np.uint8))
        self.embed_texts(["a photo"])

    # running ---------------------------------------------------------------------------------------
    def _run_chunks(self, session: OrtSession, feeds: dict[str, np.ndarray], file: Path) -> np.ndarray:
        """Run `session` over the batch in `feeds`, in chunks of batch_size (or the graph's fixed batch)."""
        n = next(iter(feeds.values())).shape[0]
        fixed = session.inputs[0].static_batch
        step = fixed or self.batch_size
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, step):
            chunk = {k: v[start : start + step] for k, v in feeds.items()}
            m = next(iter(chunk.values())).shape[0]
            if fixed and m < fixed:  # pad the last chunk up to the graph's batch size
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], fixed - m, axis=0)]) for k, v in chunk.items()
                }
            result = np.asarray(session.run(chunk)[0])
            result = result.reshape(result.shape[0], -1)[:m]
            if result.shape[1] != self.dim:
                raise _invalid(
                    file, f"outputs {result.shape[1]}-d vectors but config.json says embed_dim {self.dim}"
                )
            out[start : start + m] = result
        return l2_normalize(out)

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) from `fit_image` -> float32 (N, D), L2-normalised."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        size = self.preprocess.size
        if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected pixels of shape (N, {size}, {size}, 3) from fit_image, got {pixels.shape}"
            )
        if pixels.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        session = self.visual
        name = session.input_names[0]
        n = pixels.shape[0]
        step = session.inputs[0].static_batch or self.batch_size
        out = np.empty((n, self.dim), dtype=np.float32)
        # normalise chunk by chunk so memory stays bounded by the batch size
        for start in range(0, n, step):
            tensor = to_input_tensor(pixels[start : start + step], self.preprocess)
            out[start : start + tensor.shape[0]] = self._run_chunks(
                session, {name: tensor}, self.path / VISUAL_MODEL
            )
        return out

    def embed_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Convenience for whole images: `fit_image` each, then `embed_images`."""
        return self.embed_images(fit_images(images, self.preprocess))

    def _encode(self, texts: Sequence[str] | str) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        tokenizer = self.tokenizer
        if not texts:
            empty = np.empty((0, self.context_length), dtype=np.int32)
            return empty, empty.copy()
        encodings = tokenizer.encode_batch([clean_text(t, canonicalize=self.canonicalize) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int32)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int32)
        return ids, mask

    def tokenize(self, texts: Sequence[str] | str) -> np.ndarray:
        """Token ids, int32 (N, context_length): cleaned, padded with the pad id, truncated."""
        return self._encode(texts)[0]

    def embed_texts(self, texts: Sequence[str] | str) -> np.ndarray:
        """float32 (N, D), L2-normalised."""
        ids, mask = self._encode(texts)
        if ids.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        session = self.textual
        names = session.input_names
        if set(names) == {"input_ids", "attention_mask"}:  # M-CLIP style text encoders
            feeds = {"input_ids": ids, "attention_mask": mask}
        else:
            feeds = {names[0]: ids}
        return self._run_chunks(session, feeds, self.path / TEXTUAL_MODEL)

    def __repr__(self) -> str:
        return f"ImageTextEmbedder({self.model_id}, dim={self.dim}, size={self.preprocess.size}, {self.path})"


def load_embedder(settings: Settings, name: str | None = None, **kwargs: Any) -> ImageTextEmbedder:
    """The configured image-text model (`Settings.model` unless `name` is given), found through the
    registry; `ModelError(MODEL_NOT_FOUND)` with the pull command when it is not installed."""
    model = name or settings.model
    path = ModelRegistry(settings).require(model)
    local, _ = ModelRegistry.split_name(model)
    kwargs.setdefault("intra_op_threads", settings.intra_op_threads)
    kwargs.setdefault("batch_size", settings.batch_size)
    return ImageTextEmbedder.load(path, name=local, **kwargs)
