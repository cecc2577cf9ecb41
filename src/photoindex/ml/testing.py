"""A tiny CLIP-like model in the exact on-disk layout of the real exports, for tests and benchmarks.

Real CLIP/SigLIP weights can't be fetched where photoindex is built and tested, so `build_tiny_clip`
writes a small model that the real loader (`ImageTextEmbedder.load`) runs like any other:

* `visual/model.onnx`: average-pool the normalised image to 8x8 per channel, flatten (192 values),
  multiply by a fixed random projection. A genuine function of the pixels: near-identical photos get
  near-identical vectors, different photos different ones. Outputs are deliberately not unit length.
* `textual/model.onnx`: look up one embedding row per token (the pad token's row is zero) and sum
  over the sequence.
* `textual/tokenizer.json`: a word-level tokenizer built with the `tokenizers` library (lowercase,
  split on whitespace and punctuation, `<start> ... <end>` template, `<pad>` / `<unk>`).

Anchors tie words to images: for each `word -> image` the generator embeds the image through the real
`fit_image` + `to_input_tensor` path and the built image encoder, and makes that vector the word's
embedding row, so `embed_texts(["word"])` equals `embed_pil([image])` (cosine 1).

Needs the `onnx` package (a test extra), imported only when a model is built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from photoindex.ml.preprocess import fit_image, to_input_tensor
from photoindex.ml.specs import Preprocess

OPSET = 17
IR_VERSION = 8  # the IR of opset 17; loads in every onnxruntime photoindex supports
POOLED = 8  # the image encoder sees an 8x8 thumbnail per channel

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DEFAULT_WORDS: tuple[str, ...] = (
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "with",
    "and",
    "photo",
    "picture",
    "dog",
    "cat",
    "bird",
    "horse",
    "person",
    "child",
    "woman",
    "man",
    "face",
    "beach",
    "sea",
    "lake",
    "river",
    "mountain",
    "forest",
    "tree",
    "flower",
    "garden",
    "snow",
    "sky",
    "sunset",
    "night",
    "city",
    "street",
    "building",
    "house",
    "car",
    "bicycle",
    "boat",
    "train",
    "food",
    "cake",
    "coffee",
    "book",
    "rocket",
    "red",
    "green",
    "blue",
    "yellow",
)


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is in the test extra
        raise ImportError("build_tiny_clip needs the 'onnx' package: pip install 'photoindex[test]'") from exc
    return onnx


def _save(model, path: Path) -> None:
    onnx = _import_onnx()
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path.as_posix())


def _visual_model(projection: np.ndarray, image_size: int, scale: float, batch: int | str):
    _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    kernel = image_size // POOLED
    dim = projection.shape[1]
    graph = helper.make_graph(
        nodes=[
            helper.make_node(
                "AveragePool", ["image"], ["pooled"], kernel_shape=[kernel, kernel], strides=[kernel, kernel]
            ),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "projection"], ["projected"]),
            helper.make_node("Mul", ["projected", "scale"], ["embedding"]),
        ],
        name="tiny_clip_visual",
        inputs=[
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, image_size, image_size])
        ],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        initializer=[
            numpy_helper.from_array(projection.astype(np.float32), "projection"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="photoindex.ml.testing"
    )
    model.ir_version = IR_VERSION
    return model


def _textual_model(table: np.ndarray, context_length: int, batch: int | str):
    _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    dim = table.shape[1]
    graph = helper.make_graph(
        nodes=[
            helper.make_node("Gather", ["token_embedding", "text"], ["tokens"], axis=0),
            helper.make_node("ReduceSum", ["tokens", "sum_axes"], ["embedding"], keepdims=0),
        ],
        name="tiny_clip_textual",
        inputs=[helper.make_tensor_value_info("text", TensorProto.INT32, [batch, context_length])],
        outputs=[helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        initializer=[
            numpy_helper.from_array(table.astype(np.float32), "token_embedding"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "sum_axes"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="photoindex.ml.testing"
    )
    model.ir_version = IR_VERSION
    return model


def _tokenizer(vocab: dict[str, int]):
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}",
        pair=f"{START} $A {END} $B {END}",
        special_tokens=[(START, vocab[START]), (END, vocab[END])],
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in (PAD, UNK, START, END)])
    return tokenizer


def _as_image(value: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    array = np.asarray(value)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def build_tiny_clip(
    dest: Path,
    *,
    anchors: Mapping[str, Image.Image | np.ndarray] | None = None,
    dim: int = 32,
    image_size: int = 64,
    context_length: int = 16,
    words: Sequence[str] = DEFAULT_WORDS,
    seed: int = 0,
    name: str = "tiny-clip",
    resize_mode: Literal["shortest", "squash", "longest"] = "shortest",
    interpolation: str = "bicubic",
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    canonicalize: bool = False,
    static_batch: int | None = None,
) -> Path:
    """Write a tiny image-text model in the Immich CLIP layout to `dest` (created) and return `dest`.

    `anchors` maps words to the images they should retrieve (see the module doc). `static_batch` fixes
    the graphs' batch axis, as Immich's newer exports do (None: any batch size). `canonicalize` sets
    open_clip's `tokenizer_kwargs.clean = "canonicalize"` (SigLIP's text cleaning).
    """
    if image_size % POOLED or image_size < POOLED:
        raise ValueError(f"image_size must be a multiple of {POOLED}")
    if context_length < 3:
        raise ValueError("context_length must leave room for the start and end tokens")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batch: int | str = static_batch if static_batch else "batch"
    anchors = dict(anchors or {})

    vocab: dict[str, int] = {PAD: 0, UNK: 1, START: 2, END: 3}
    for word in [*words, *anchors]:
        key = word.lower()
        if not key or key.split() != [key]:
            raise ValueError(f"vocabulary entries must be single words, got {word!r}")
        vocab.setdefault(key, len(vocab))

    # image encoder
    features = 3 * POOLED * POOLED
    projection = rng.standard_normal((features, dim)) / np.sqrt(features)
    visual_path = dest / "visual" / "model.onnx"
    _save(_visual_model(projection, image_size, scale=2.5, batch=batch), visual_path)
    pre = Preprocess(
        size=image_size, mean=mean, std=std, interpolation=interpolation, resize_mode=resize_mode
    )
    _write_json(
        dest / "visual" / "preprocess_cfg.json",
        {
            "size": [image_size, image_size],
            "mode": "RGB",
            "mean": list(mean),
            "std": list(std),
            "interpolation": interpolation,
            "resize_mode": resize_mode,
            "fill_color": 0,
        },
    )

    # text encoder: random unit rows, a zero row for padding, anchored rows from the image encoder
    table = rng.standard_normal((len(vocab), dim))
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    table[vocab[PAD]] = 0.0
    framing = table[vocab[START]] + table[vocab[END]]  # every text has these two around its words
    if anchors:
        from photoindex.ml.session import CPU, OrtSession

        session = OrtSession(visual_path, providers=[CPU], intra_op_threads=1)
        pixels = np.stack([fit_image(_as_image(img).convert("RGB"), pre) for img in anchors.values()])
        tensor = to_input_tensor(pixels, pre)
        if static_batch:
            vectors = np.concatenate(
                [
                    session.run({"image": tensor[i : i + 1].repeat(static_batch, 0)})[0][:1]
                    for i in range(len(tensor))
                ]
            )
        else:
            vectors = session.run({"image": tensor})[0]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        for word, vector in zip(anchors, vectors, strict=True):
            # "<start> word <end>" then sums to exactly the image's vector
            table[vocab[word.lower()]] = vector - framing
    _save(_textual_model(table, context_length, batch=batch), dest / "textual" / "model.onnx")

    _tokenizer(vocab).save((dest / "textual" / "tokenizer.json").as_posix())
    _write_json(
        dest / "textual" / "tokenizer_config.json",
        {
            "pad_token": PAD,
            "unk_token": UNK,
            "bos_token": START,
            "eos_token": END,
            "model_max_length": context_length,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write_json(
        dest / "textual" / "special_tokens_map.json",
        {"pad_token": PAD, "unk_token": UNK, "bos_token": START, "eos_token": END},
    )

    text_cfg: dict[str, object] = {
        "context_length": context_length,
        "vocab_size": len(vocab),
        "width": dim,
        "heads": 1,
        "layers": 0,
    }
    if canonicalize:
        text_cfg["tokenizer_kwargs"] = {"clean": "canonicalize"}
    _write_json(
        dest / "config.json",
        {
            "embed_dim": dim,
            "vision_cfg": {
                "image_size": image_size,
                "layers": 0,
                "width": features,
                "patch_size": image_size // POOLED,
            },
            "text_cfg": text_cfg,
        },
    )
    (dest / "README.md").write_text(
        f"# {name}\n\nA tiny random image-text model generated by photoindex.ml.testing (seed {seed}) "
        "for tests. It has no semantic knowledge beyond its anchor words.\n",
        encoding="utf-8",
    )
    return dest
