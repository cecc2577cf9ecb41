"""The versioned result cache: a catalog and index rebuilt from it answer every search as before with
zero model calls; a second embedding model computes only its own vectors; manifests are verified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from photoindex import metrics
from photoindex.cache.rebuild import import_cache
from photoindex.cli.main import app
from photoindex.ingest.embed import add_model
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.stages import NullProgress
from photoindex.ml.testing import build_tiny_clip
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters
from photoindex.search.service import search_similar, search_text
from photoindex.store import enrichments
from photoindex.store.result_cache import CacheRow, ResultCache
from support.databases import fresh_pg_database
from support.runtime import make_runtime

QUERIES = [
    ("cat", "image", None),
    ("open 24 hours", "words", None),
    ("motorcycle", "hybrid", None),
    ("rocket", "hybrid", SearchFilters(has_text=False)),
    ("coffee", "image", SearchFilters(tags=["coffee"])),
]


def answers(rt: Runtime, library: Path) -> dict[str, object]:
    """Every search, by content hash and rounded score (asset ids are the catalog's own)."""
    out: dict[str, object] = {}
    for text, mode, filters in QUERIES:
        hits = search_text(rt, text, mode=mode, filters=filters, k=10)
        out[f"{mode}:{text}:{filters}"] = [(h.sha256, h.path, round(h.score, 4)) for h in hits]
    out["similar"] = [(h.sha256, round(h.score, 4)) for h in search_similar(rt, library / "cat.jpg", k=5)]
    coll = rt.collection()
    details = {}
    for sha, aid in rt.catalog.assets_by_sha256(coll.id, [h[0] for h in out["image:cat:None"]]).items():  # type: ignore[index]
        d = enrichments.detail(rt.catalog, aid)
        details[sha] = (sorted((r["kind"], r["label"], r["text"], round(r["score"], 4)) for r in d["regions"]),
                        sorted(t["tag"] for t in d["tags"]), d["ocr_text"])
    out["details"] = details
    return out


def other_catalog(tmp_path: Path, catalog_url: str, pg_url: str | None) -> tuple[str, object]:
    if catalog_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'rebuilt.db'}", lambda: None
    assert pg_url
    return fresh_pg_database(pg_url)


def test_cache_import_rebuilds_everything_without_a_model_call(
        enrich_rt: Runtime, enrich_library: Path, models_path: Path, catalog_url: str, pg_url: str | None,
        tmp_path: Path) -> None:
    rt = enrich_rt
    ingest(rt, [enrich_library])
    before = answers(rt, enrich_library)
    assert before["details"]
    rt.close()
    # The catalog is gone (a new, empty database) and so is the in-memory vector index (a new process).
    url, drop = other_catalog(tmp_path, catalog_url, pg_url)
    try:
        rebuilt = make_runtime(rt.settings.home, models_path, catalog_url=url, rerank_regions=False,
                               labels=rt.settings.labels)
        assert rebuilt.catalog.list_collections() == []
        calls = metrics.model_calls()
        report = import_cache(rebuilt)
        assert metrics.model_calls() == calls  # not one model invocation
        assert report.collections == ["default"] and report.assets == 6 and report.files == 6
        assert report.vectors == {"tiny-clip": 6}
        assert report.enrichments["objects"] == 6 and report.enrichments["text"] == 6
        assert answers(rebuilt, enrich_library) == before
        # and the rebuilt catalog is complete: enriching again computes nothing
        calls = metrics.model_calls()
        from photoindex.enrich.runner import enrich_collection

        assert enrich_collection(rebuilt, rebuilt.collection()).assets == 0
        assert metrics.model_calls() == calls
        # importing twice changes nothing
        import_cache(rebuilt)
        assert answers(rebuilt, enrich_library) == before
        rebuilt.close()
    finally:
        drop()  # type: ignore[operator]


def test_a_second_model_computes_only_its_vectors_and_both_are_kept(
        enrich_rt: Runtime, enrich_library: Path, models_path: Path, photos: dict[str, Image.Image]) -> None:
    rt = enrich_rt
    rt.settings.enrichers = []
    ingest(rt, [enrich_library])
    build_tiny_clip(models_path / "tiny-clip-b", anchors=photos, dim=48, seed=7, name="tiny-clip-b")
    coll = rt.collection()
    first = {a: v.copy() for a, v in rt.catalog.get_vectors(range(1, 7), "tiny-clip").items()}
    calls = metrics.model_calls()
    assert add_model(rt, coll, "tiny-clip-b", NullProgress()) == 6
    assert metrics.model_calls() > calls
    stats = rt.catalog.stats(coll.id)["vectors"]
    assert stats == {"tiny-clip": 6, "tiny-clip-b": 6}
    again = rt.catalog.get_vectors(range(1, 7), "tiny-clip")
    assert all(np.array_equal(first[a], again[a]) for a in first)  # the first model's vectors are untouched
    calls = metrics.model_calls()
    assert add_model(rt, rt.collection(), "tiny-clip-b", NullProgress()) == 0  # nothing missing any more
    assert metrics.model_calls() == calls
    assert search_text(rt, "cat", model="tiny-clip-b", mode="image", k=1)[0].path.endswith("cat.jpg")
    assert search_text(rt, "cat", mode="image", k=1)[0].path.endswith("cat.jpg")
    assert rt.collection().options["extra_models"] == ["tiny-clip-b"]


def test_cli_import_and_verify(enrich_rt: Runtime, enrich_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = enrich_rt
    rt.settings.enrichers = ["quality"]
    ingest(rt, [enrich_library])
    rt.close()
    monkeypatch.setenv("PHOTOINDEX_HOME", str(rt.settings.home))
    monkeypatch.setenv("PHOTOINDEX_MODELS_PATH", os.pathsep.join(map(str, rt.settings.models_path)))
    monkeypatch.setenv("PHOTOINDEX_MODEL", "tiny-clip")
    monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", f"sqlite:///{rt.settings.home / 'fresh.db'}")
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "verify", "--json"])
    assert out.exit_code == 0, out.output
    verified = json.loads(out.stdout)
    assert verified["ok"] and verified["kinds"]["files"] == 6 and verified["kinds"]["quality"] == 6
    out = runner.invoke(app, ["cache", "import", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["assets"] == 6
    out = runner.invoke(app, ["search", "cat", "--json", "-k", "1", "--min-quality", "0"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["path"].endswith("cat.jpg")


def test_verify_finds_damage_and_repair_forgets_partial_batches(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    rows = [CacheRow(key=f"{i:064x}", model="m", revision="1", vector=np.full(4, i, np.float32)) for i in range(40)]
    cache.write("embedding", rows)
    cache.write("embedding", rows[:3])  # a small batch: a diff line
    assert cache.verify().ok
    part = next((tmp_path / "1" / "embedding").glob("part-*.parquet"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    (tmp_path / "1" / "embedding" / "stray.parquet").write_bytes(b"x")
    problems = {(p.file, p.problem) for p in cache.verify().problems}
    assert (part.name, "checksum") in problems and ("stray.parquet", "orphan") in problems
    # a crash between announcing a part and completing it: a partial batch, ignored by readers
    manifest = json.loads(cache.manifest_path.read_text())
    manifest["kinds"]["embedding"]["parts"].append({"file": "part-crashed.parquet", "rows": 5, "state": "writing"})
    cache.manifest_path.write_text(json.dumps(manifest))
    assert ("part-crashed.parquet", "partial") in {(p.file, p.problem) for p in cache.verify().problems}
    repaired = cache.repair()
    assert "part-crashed.parquet" not in {p.file for p in repaired.problems}


def test_newest_row_wins_and_drops_hide_a_key(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.write("files", [CacheRow(key="a", payload={"v": 1}), CacheRow(key="b", payload={"v": 1})])
    cache.write("files", [CacheRow(key="a", payload={"v": 2})])
    cache.write("files", [CacheRow(key="b", op="drop")])
    latest = cache.latest("files")
    assert {k: r.payload for k, r in latest.items()} == {"a": {"v": 2}}
    assert cache.compact() == 4 and cache.latest("files")["a"].payload == {"v": 2}
    # a torn last line (a crash mid-write) is skipped, the lines before it count
    diff = next((tmp_path / "1" / "files").glob("part-*.parquet"))
    assert diff.exists()
    cache.write("files", [CacheRow(key="c", payload={"v": 3})])
    jsonl = next((tmp_path / "1" / "files").glob("diff-*.jsonl"))
    with jsonl.open("ab") as fh:
        fh.write(b'{"key": "d", "mod')
    assert set(cache.latest("files")) == {"a", "c"}
