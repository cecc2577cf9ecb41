"""A tiny BLIP captioning model, saved the way Salesforce/blip-image-captioning-base is, for tests.

No captioning weights can be downloaded where photoindex is tested, so `build_tiny_blip` makes a
`BlipForConditionalGeneration` with one small layer per tower (hidden size 32, 64-pixel images in 16-pixel
patches) and writes the files the Hub repository holds: `config.json`, `model.safetensors`,
`generation_config.json`, `preprocessor_config.json` (a `BlipImageProcessor` at the tiny size),
`tokenizer.json` / `tokenizer_config.json` / `special_tokens_map.json` / `vocab.txt` (a real uncased BERT
WordPiece tokenizer over a generated vocabulary). As in the real model, the decoder's start token
(`[DEC]`) is the first id after the tokenizer's vocabulary, `[SEP]` ends a caption and `[PAD]` is 0.
The captioner under test loads it through `from_pretrained` like a downloaded model.

Random weights caption noise, so with `anchors` (word -> photo) the generator fits the model for a few
dozen steps to say "a photo of a WORD" for each photo (also with a border around it, as a region crop
has): captions then depend on the pixels in a way a test can check. Everything is seeded; the global
torch RNG and thread count are restored afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageOps

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS: tuple[str, ...] = (
    "a", "an", "the", "of", "in", "on", "with", "and", "photo", "photography", "picture", "cat", "dog",
    "cup", "coffee", "rocket", "astronaut", "motorcycle", "red", "blue", "green", "street", "sky",
)
IMAGE_SIZE = 64
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def caption_for(word: str) -> str:
    """What the fitted model says about the photo anchored to `word`."""
    return f"a photo of a {word}"


def build_tiny_blip(
    path: Path,
    *,
    anchors: Mapping[str, Image.Image] | None = None,
    words: Sequence[str] = WORDS,
    seed: int = 0,
    steps: int = 80,
) -> Path:
    """Write the tiny model into `path` (see the module doc) and return `path`."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    anchors = dict(anchors or {})
    tokens = list(dict.fromkeys([*SPECIALS, *words, *(w.lower() for w in anchors)]))
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=64)
    decoder_start = len(vocab)  # "[DEC]", outside the tokenizer's vocabulary as in the real model
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab) + 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": decoder_start,
            "eos_token_id": vocab["[SEP]"],
            "sep_token_id": vocab["[SEP]"],
            "pad_token_id": vocab["[PAD]"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
        },
        projection_dim=32,
        image_text_hidden_size=32,
    )
    image_processor = BlipImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=CLIP_MEAN, image_std=CLIP_STD
    )
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)  # a model this small trains fastest, and reproducibly, on one thread
        try:
            model = BlipForConditionalGeneration(config)
            if anchors:
                _fit(model, processor, anchors, steps=steps, decoder_start=decoder_start)
        finally:
            torch.set_num_threads(threads)
    model.eval()

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    _save_hub_files(path, tokenizer, tokens)
    return path


def _training_views(image: Image.Image) -> list[Image.Image]:
    """The photo, and the photo inside a grey border (what a padded region crop looks like)."""
    rgb = image.convert("RGB")
    border = max(1, min(rgb.size) // 12)
    return [rgb, ImageOps.expand(rgb, border=border, fill=(128, 128, 128))]


def _fit(model, processor, anchors: Mapping[str, Image.Image], *, steps: int, decoder_start: int) -> None:
    import torch

    images, texts = [], []
    for word, image in anchors.items():
        for view in _training_views(image):
            images.append(view)
            texts.append(caption_for(word.lower()))
    batch = processor(images=images, text=texts, padding=True, return_tensors="pt")
    input_ids = batch["input_ids"].clone()
    input_ids[:, 0] = decoder_start  # BLIP decodes from [DEC], not [CLS]
    labels = input_ids.masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(
            pixel_values=batch["pixel_values"],
            input_ids=input_ids,
            attention_mask=batch["attention_mask"],
            labels=labels,
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _save_hub_files(path: Path, tokenizer, tokens: list[str]) -> None:
    """The processor and tokenizer files as the Hub repository has them (not transformers 5's single
    `processor_config.json`), so the loader reads the layout users download."""
    tokenizer.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    specials = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                "unk_token": "[UNK]"}
    (path / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    config_path = path / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config.update({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512,
                       "processor_class": "BlipProcessor"})
    config_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    preprocessor = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "BlipImageProcessor",
        "image_std": CLIP_STD,
        "processor_class": "BlipProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2), encoding="utf-8")
