"""A tiny random OWL-ViT / OWLv2 detector saved the way Hugging Face model folders are, for tests.

Real OWL-ViT weights can't be downloaded where photoindex is tested, so `build_tiny_owlvit` makes a
randomly initialised `OwlViTForObjectDetection` (or `Owlv2ForObjectDetection`) with a few small layers
and saves it with `save_pretrained`, next to a real CLIP byte-level BPE tokenizer (vocab.json and
merges.txt generated for a handful of words) and the model's image processor at the tiny input size.
The detector under test then loads it through `from_pretrained` like a downloaded model.

`layout="hub"` writes the files as the Hub repositories hold them (`preprocessor_config.json`,
`vocab.json`, `merges.txt`, `tokenizer.json`, ...); `layout="processor"` saves the whole processor
with `save_pretrained` (`processor_config.json`), as transformers 5 does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
WORDS: tuple[str, ...] = (
    "a",
    "photo",
    "of",
    "the",
    "cat",
    "dog",
    "cup",
    "coffee",
    "rocket",
    "person",
    "astronaut",
    "motorcycle",
    "bicycle",
    "car",
    "tree",
)

#: transformers classes per model kind: config, model, processor, image processor (the Pillow one, as
#: torchvision is often missing next to CPU torch builds; it saves the same preprocessor config)
CLASSES = {
    "owlvit": ("OwlViTConfig", "OwlViTForObjectDetection", "OwlViTProcessor", "OwlViTImageProcessorPil"),
    "owlv2": ("Owlv2Config", "Owlv2ForObjectDetection", "Owlv2Processor", "Owlv2ImageProcessorPil"),
}


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE (GPT-2, CLIP) uses for bytes 0..255, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def clip_bpe(words: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """A CLIP-style vocabulary and merge list: every byte symbol alone and word-final (`</w>`), plus
    left-to-right merges that make each of `words` one token."""
    symbols = byte_symbols()
    vocab: dict[str, int] = {}
    for s in [*symbols, *(s + "</w>" for s in symbols)]:
        vocab.setdefault(s, len(vocab))
    merges: list[str] = []
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merge = f"{parts[0]} {parts[1]}"
            if merge not in merges:
                merges.append(merge)
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    for token in (BOS, EOS):
        vocab.setdefault(token, len(vocab))
    return vocab, merges


def _write_bpe(folder: Path, words: Sequence[str]) -> tuple[Path, Path, int]:
    vocab, merges = clip_bpe(words)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file, len(vocab)


def _calm(model, torch) -> None:
    """Random heads give huge outputs: every box saturates to the image edges and every score to 0 or 1.
    Shrink the last layers of the box and score heads so boxes stay near each patch's prior box and
    scores spread out, as in a trained model; the rest stays random."""
    with torch.no_grad():
        for layer in (model.box_head.dense2, model.class_head.logit_scale, model.class_head.logit_shift):
            layer.weight.mul_(0.01)
            layer.bias.zero_()


def build_tiny_owlvit(
    dest: Path,
    *,
    kind: Literal["owlvit", "owlv2"] = "owlvit",
    layout: Literal["hub", "processor"] = "hub",
    words: Sequence[str] = WORDS,
    image_size: int = 64,
    patch_size: int = 16,
    hidden: int = 32,
    layers: int = 2,
    context_length: int = 16,
    seed: int = 0,
) -> Path:
    """Write a tiny random OWL-ViT (or OWLv2) model folder to `dest` and return `dest`."""
    import torch
    import transformers

    config_cls, model_cls, processor_cls, image_processor_cls = (
        getattr(transformers, name) for name in CLASSES[kind]
    )
    dest = Path(dest)
    vocab_file, merges_file, vocab_size = _write_bpe(dest, words)
    tokenizer = transformers.CLIPTokenizer(
        vocab=vocab_file.as_posix(), merges=merges_file.as_posix(), model_max_length=context_length
    )
    square = {"height": image_size, "width": image_size}
    image_processor = image_processor_cls(size=square, crop_size=square)

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = config_cls(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "max_position_embeddings": context_length,
            **special,
        },
        vision_config={
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        projection_dim=hidden,
    )
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    _calm(model, torch)
    model.save_pretrained(dest)
    if layout == "processor":
        processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    else:
        image_processor.save_pretrained(dest)  # preprocessor_config.json
        tokenizer.save_pretrained(dest)  # tokenizer.json, tokenizer_config.json
    return dest
