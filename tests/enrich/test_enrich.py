"""Enrichment end to end with real models (YOLOX-Nano, RapidOCR, MiniLM) on real photos, on SQLite and
PostgreSQL: what ingest stores, how search finds it, the gate's savings, re-runs that compute nothing."""

from __future__ import annotations

from pathlib import Path

from photoindex import metrics
from photoindex.enrich.runner import enrich_collection
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters
from photoindex.search.service import search_text
from photoindex.store import enrichments


def asset_id(rt: Runtime, library: Path, name: str) -> int:
    coll = rt.collection()
    found = rt.catalog.find_asset_by_path(coll.id, normalize_path(library / name))
    assert found is not None
    return found.id


def test_ingest_enriches_with_objects_text_quality_and_words(enrich_rt: Runtime, enrich_library: Path) -> None:
    rt = enrich_rt
    report = ingest(rt, [enrich_library])
    assert report.errors == [] and report.processed == 6
    assert report.enriched == {"objects": 6, "tags": 6, "ocr": 6, "quality": 6, "text": 6}
    assert report.enrich_failed == 0
    # the gate spares 4 of the 5 photos without text; the astronaut's suit patches look like text to the
    # 480 px detector (recognition then finds no confident line: has_text stays false, see below)
    assert report.ocr_gate_skipped == 4
    cat = enrichments.detail(rt.catalog, asset_id(rt, enrich_library, "cat.jpg"))
    labels = {r["label"] for r in cat["regions"] if r["kind"] == "object"}
    assert "cat" in labels
    box = next(r["box"] for r in cat["regions"] if r["label"] == "cat")
    assert (box["x1"] - box["x0"]) * (box["y1"] - box["y0"]) > 0.2  # the cat fills much of the photo
    sign = enrichments.detail(rt.catalog, asset_id(rt, enrich_library, "sign.jpg"))
    assert "OPEN 24 HOURS" in (sign["ocr_text"] or "").upper()
    assert [r for r in sign["regions"] if r["kind"] == "text"]
    assert sign["enrichments"]["quality"]["status"] == "ok"
    # filters on what the models found
    coll = rt.collection()
    ids = set(rt.catalog.filter_asset_ids(coll.id, SearchFilters(has_text=True)).tolist())
    assert ids == {asset_id(rt, enrich_library, "sign.jpg")}
    motorcycles = rt.catalog.filter_asset_ids(coll.id, SearchFilters(tags=["motorcycle"])).tolist()
    assert asset_id(rt, enrich_library, "motorcycle.jpg") in motorcycles
    assert rt.catalog.filter_asset_ids(coll.id, SearchFilters(min_quality=0.0)).size == 6


def test_text_search_finds_words_of_a_sign_and_tags(enrich_rt: Runtime, enrich_library: Path) -> None:
    rt = enrich_rt
    ingest(rt, [enrich_library])
    sign = asset_id(rt, enrich_library, "sign.jpg")
    hits = search_text(rt, "open 24 hours", mode="words", k=3)
    assert hits[0].asset_id == sign and "words" in hits[0].found_by
    # MiniLM alone (no shared word with the OCR text) still places the sign first
    hits = search_text(rt, "a shop that never closes", mode="words", k=6)
    assert "meaning" in hits[0].found_by
    hybrid = search_text(rt, "open 24 hours", k=3)  # the image model alone knows none of these words
    assert hybrid[0].asset_id == sign
    moto = asset_id(rt, enrich_library, "motorcycle.jpg")
    assert search_text(rt, "motorcycle", mode="words", k=1)[0].asset_id == moto


def test_a_second_run_computes_nothing_and_a_new_label_list_only_tags(enrich_rt: Runtime, enrich_library: Path) -> None:
    rt = enrich_rt
    ingest(rt, [enrich_library])
    coll = rt.collection()
    before = metrics.model_calls()
    again = enrich_collection(rt, coll)
    assert again.assets == 0 and metrics.model_calls() == before
    rt.catalog.put_setting("labels", {"labels": ["cat", "rocket"]})
    changed = enrich_collection(rt, coll)
    # scene tags depend on the labels; the detector, OCR and quality do not. The words of the photos
    # changed with the tags, so their sentence vectors are recomputed (or found in the cache).
    assert set(changed.enrichers) >= {"tags"}
    assert changed.enrichers["tags"].computed == 6
    assert all(st.computed == 0 for name, st in changed.enrichers.items() if name in ("objects", "ocr", "quality"))


def test_missing_models_are_skipped_with_a_notice(enrich_rt: Runtime, enrich_library: Path,
                                                  monkeypatch) -> None:  # noqa: ANN001
    rt = enrich_rt
    rt.settings.detector = "no-such-detector"
    rt.settings.enrichers = ["objects", "quality", "caption"]
    report = ingest(rt, [enrich_library])
    assert report.enriched == {"quality": 6}
    assert any(n.startswith("objects: skipped") and "no-such-detector" in n for n in report.notices)
    assert any(n.startswith("caption: skipped") for n in report.notices)


def test_a_collection_chooses_its_own_enrichers(enrich_rt: Runtime, enrich_library: Path,
                                                monkeypatch) -> None:  # noqa: ANN001
    import json
    import os

    from typer.testing import CliRunner

    from photoindex.cli.main import app

    rt = enrich_rt
    monkeypatch.setenv("PHOTOINDEX_HOME", str(rt.settings.home))
    monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", rt.settings.resolved_catalog_url)
    monkeypatch.setenv("PHOTOINDEX_MODELS_PATH", os.pathsep.join(map(str, rt.settings.models_path)))
    runner = CliRunner()
    assert runner.invoke(app, ["collections", "create", "scans"]).exit_code == 0
    out = runner.invoke(app, ["collections", "enrichers", "scans", "quality", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["enrichers"] == ["quality"]
    bad = runner.invoke(app, ["collections", "enrichers", "scans", "telepathy"])
    assert bad.exit_code != 0 and "unknown enricher" in bad.output
    report = ingest(rt, [enrich_library], collection="scans")
    assert report.enriched == {"quality": 6}  # the environment asks for five; the collection for one
