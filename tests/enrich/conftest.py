"""A library of real photos (one with a sign), the real detector and OCR, MiniLM, the tiny CLIP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from photoindex.runtime import Runtime
from support.library import jpeg_bytes
from support.runtime import make_runtime
from support.text_photos import with_sign

SIGN = ["OPEN 24 HOURS", "FRESH COFFEE"]
ENRICHERS = "objects,tags,ocr,quality,text"


@pytest.fixture
def enrich_library(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("cat", "coffee", "motorcycle", "astronaut", "rocket"):
        (root / f"{name}.jpg").write_bytes(jpeg_bytes(photos[name]))
    (root / "sign.jpg").write_bytes(jpeg_bytes(with_sign(photos["rocket"], SIGN)))
    return root


@pytest.fixture
def models_path(tmp_path: Path, models_dir: Path, shared_models: Path) -> Path:
    """The tiny CLIP and the real YOLOX-Nano side by side, as a user's models folder would hold them."""
    root = tmp_path / "models"
    root.mkdir()
    (root / "tiny-clip").symlink_to(models_dir / "tiny-clip")
    (root / "yolox-nano-coco").symlink_to(shared_models / "yolox-nano-coco")
    return root


@pytest.fixture
def enrich_rt(tmp_path: Path, models_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("PHOTOINDEX_ENRICHERS", ENRICHERS)
    # the tiny CLIP knows only a few words: re-ranking YOLOX's COCO labels with it would garble them
    rt = make_runtime(tmp_path / "home", models_path, catalog_url=catalog_url, rerank_regions=False,
                      labels=["cat", "coffee", "motorcycle", "astronaut", "rocket"])
    yield rt
    rt.close()
    shutil.rmtree(tmp_path / "home", ignore_errors=True)
