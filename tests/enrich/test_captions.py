"""Captions through the enrichment runner: the tiny BLIP through the real transformers loader, an
OpenAI-compatible endpoint (the stub), and an endpoint that goes away (photos stay pending)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from photoindex.enrich.runner import enrich_collection
from photoindex.ingest.pipeline import ingest
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters
from photoindex.search.service import search_text
from photoindex.store import enrichments
from support.vlm_stub import VlmStub


def test_blip_captions_are_stored_and_searchable(enrich_rt: Runtime, enrich_library: Path, models_path: Path,
                                                 photos: dict[str, Image.Image]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from support.tiny_blip import build_tiny_blip, caption_for

    build_tiny_blip(models_path / "tiny-blip",
                    anchors={k: photos[k] for k in ("cat", "coffee", "rocket", "astronaut", "motorcycle")})
    rt = enrich_rt
    rt.settings.enrichers = ["caption"]
    rt.settings.captioner = "tiny-blip"
    report = ingest(rt, [enrich_library])
    assert report.enriched == {"caption": 6} and report.enrich_failed == 0
    hit = search_text(rt, "cat", mode="words", k=1)[0]
    assert hit.path and hit.path.endswith("cat.jpg")
    assert enrichments.detail(rt.catalog, hit.asset_id)["caption"] == caption_for("cat")


def test_vlm_captions_and_an_endpoint_that_goes_away(enrich_rt: Runtime, enrich_library: Path) -> None:
    rt = enrich_rt
    rt.settings.enrichers = ["caption"]
    with VlmStub() as vlm:
        rt.settings.captioner = "vlm:stub-vision-1"
        rt.settings.vlm_url = vlm.url
        rt.settings.caption_prompt = "One short sentence, please."
        vlm.fail_next(503, times=50)  # down for good during this run: retries give up
        first = ingest(rt, [enrich_library])
        assert first.enriched == {"caption": 0} and any("caption: stopped" in n for n in first.notices)
        coll = rt.collection()
        assert len(enrichments.pending(rt.catalog, coll.id, "caption", _revision(rt))) == 6  # nothing lost
        vlm.reset()
        again = enrich_collection(rt, coll)
        assert again.enrichers["caption"].computed == 6
        assert vlm.prompts and all("One short sentence" in p for p in vlm.prompts)
    captions = enrichments.results(rt.catalog, rt.catalog.filter_asset_ids(coll.id, SearchFilters()).tolist(),
                                   "caption")
    assert len(captions) == 6 and all(c["text"].startswith("A mostly") for c in captions.values())


def _revision(rt: Runtime) -> str:
    from photoindex.enrich.loader import load_enrichers

    [caption], _ = load_enrichers(rt, rt.collection(), ["caption"])
    return caption.revision
