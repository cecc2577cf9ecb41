"""QdrantIndex against qdrant-client's in-memory mode (the documented stand-in for a server)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from photoindex.config import Settings
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.schemas import SearchFilters
from photoindex.store.catalog import Catalog
from photoindex.store.exact_index import ExactIndex
from photoindex.store.qdrant_index import QdrantIndex, ancestor_dirs, vector_name
from photoindex.store.vectors import (
    VectorPayload,
    VectorRecord,
    VectorSpace,
    open_vector_index,
    sync_from_catalog,
)

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

SPACE = VectorSpace(1, "lib", "test-model@1", 16)


@pytest.fixture
def index() -> QdrantIndex:
    idx = QdrantIndex(QdrantClient(":memory:"), upsert_batch_size=2)  # small batches: several requests
    yield idx
    idx.close()


@pytest.fixture
def loaded(index: QdrantIndex, helpers: Any) -> dict[str, Any]:
    """The shared library as records with payloads, as the pipeline would upsert them."""
    vecs = helpers.unit_vectors(len(helpers.specs))
    names, records = {}, []
    for asset_id, ((name, path, make, model, taken), vec) in enumerate(zip(helpers.specs, vecs, strict=True), 1):
        camera = helpers.new_asset(name, make, model).exif.camera
        paths = () if name == "gone" else (path,)  # its only file is missing
        records.append(VectorRecord(asset_id, vec, VectorPayload(taken, camera, paths)))
        names[asset_id] = name
    index.upsert(SPACE, records)
    return {"names": names, "ids": {v: k for k, v in names.items()},
            "vectors": {names[r.asset_id]: r.vector for r in records}, "records": records}


def names(loaded: dict[str, Any], hits: list[tuple[int, float]]) -> list[str]:
    return [loaded["names"][i] for i, _ in hits]


def test_own_vector_ranks_first(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    for name, vec in loaded["vectors"].items():
        hits = index.search(SPACE, vec, k=10)
        assert names(loaded, hits)[0] == name
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        assert len(hits) == 5


def test_k(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    q = loaded["vectors"]["nikon"]
    assert len(index.search(SPACE, q, k=2)) == 2
    assert len(index.search(SPACE, q, k=100)) == 5
    assert index.search(SPACE, q, k=0) == []


def test_filters(index: QdrantIndex, loaded: dict[str, Any], filter_case: tuple[dict[str, Any], set[str]]) -> None:
    filters, expected = filter_case
    hits = index.search(SPACE, loaded["vectors"]["eos"], k=100, filters=SearchFilters(**filters))
    assert set(names(loaded, hits)) == expected
    assert len(hits) == len(expected)


def test_camera_filter_beyond_facet_limit(index: QdrantIndex, loaded: dict[str, Any],
                                          filter_case: tuple[dict[str, Any], set[str]]) -> None:
    """More cameras than the facet lists: the server-side substring match gives the same answers."""
    index.camera_facet_limit = 1
    filters, expected = filter_case
    hits = index.search(SPACE, loaded["vectors"]["eos"], k=100, filters=SearchFilters(**filters))
    assert set(names(loaded, hits)) == expected


def test_aware_date_filters_compare_wall_clock(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    from datetime import timedelta, timezone

    tz = timezone(timedelta(hours=-7))
    filters = SearchFilters(date_from=datetime(2023, 7, 1, 10, 0, tzinfo=tz), date_to=datetime(2023, 7, 1, 10, 0, tzinfo=tz))
    assert names(loaded, index.search(SPACE, loaded["vectors"]["eos"], filters=filters)) == ["eos"]


def test_exclude(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    ids = loaded["ids"]
    hits = index.search(SPACE, loaded["vectors"]["eos"], k=100, exclude=[ids["eos"]])
    assert "eos" not in names(loaded, hits) and len(hits) == 4
    both = index.search(SPACE, loaded["vectors"]["eos"], k=100, exclude=[ids["eos"], ids["nikon"]],
                        filters=SearchFilters(path_prefix="/photos/a"))
    assert names(loaded, both) == ["powershot"]


def test_count_and_scroll(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    assert index.count(SPACE) == 5
    batches = list(index.scroll(SPACE, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    got = {r.asset_id: r for b in batches for r in b}
    for rec in loaded["records"]:
        np.testing.assert_allclose(got[rec.asset_id].vector, rec.vector, atol=1e-6)
        assert got[rec.asset_id].payload == rec.payload


def test_empty_space(index: QdrantIndex) -> None:
    assert index.search(SPACE, np.ones(16, np.float32)) == []
    assert index.count(SPACE) == 0
    assert list(index.scroll(SPACE)) == []
    index.delete(SPACE, [1, 2])  # nothing to delete is fine


def test_upsert_replaces_vector_and_payload(index: QdrantIndex, loaded: dict[str, Any], helpers: Any) -> None:
    eos = loaded["ids"]["eos"]
    fresh = helpers.unit_vectors(1, seed=77)[0]
    moved = VectorPayload(datetime(2024, 5, 5), "Canon EOS 5D", ("/elsewhere/1.jpg",))
    index.upsert(SPACE, [VectorRecord(eos, fresh, moved)])
    assert index.count(SPACE) == 5
    assert index.search(SPACE, fresh, k=1) == [(eos, pytest.approx(1.0, abs=1e-5))]
    assert names(loaded, index.search(SPACE, fresh, k=10, filters=SearchFilters(path_prefix="/elsewhere"))) == ["eos"]
    assert "eos" not in names(loaded, index.search(SPACE, fresh, k=10, filters=SearchFilters(path_prefix="/photos/a/b")))


def test_delete(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    ids = loaded["ids"]
    index.delete(SPACE, [ids["eos"], ids["nikon"]])
    assert index.count(SPACE) == 3
    hits = index.search(SPACE, loaded["vectors"]["eos"], k=100)
    assert set(names(loaded, hits)) == {"powershot", "nodata", "gone"}
    points = index.client.retrieve(index.collection_name("lib"), [ids["eos"]])
    assert points == []  # no model has a vector for it any more: the point is gone


def test_several_models_share_points(index: QdrantIndex, loaded: dict[str, Any], helpers: Any) -> None:
    """A model added later becomes a new named vector on the existing collection; writing it never
    touches the other model's vectors, and deleting it keeps points the other model still has."""
    other = VectorSpace(SPACE.collection_id, SPACE.collection, "other/model:v2", 4)
    vecs = helpers.unit_vectors(2, dim=4, seed=9)
    ids = loaded["ids"]
    index.upsert(other, [VectorRecord(ids["eos"], vecs[0]), VectorRecord(ids["nikon"], vecs[1])])
    name = index.collection_name("lib")
    assert set(index.client.get_collection(name).config.params.vectors) == {
        vector_name(SPACE.model), vector_name(other.model)}
    assert index.count(other) == 2 and index.count(SPACE) == 5
    assert index.search(other, vecs[1], k=1) == [(ids["nikon"], pytest.approx(1.0, abs=1e-5))]
    assert index.search(SPACE, loaded["vectors"]["eos"], k=1)[0][0] == ids["eos"]
    # the payload written with the first model still filters the second
    assert index.search(other, vecs[0], k=5, filters=SearchFilters(camera="nikon")) == [
        (ids["nikon"], pytest.approx(float(vecs[0] @ vecs[1]), abs=1e-5))]
    index.delete(other, [ids["eos"]])
    assert index.count(other) == 1
    assert index.search(SPACE, loaded["vectors"]["eos"], k=1)[0][0] == ids["eos"]  # still there
    index.delete(SPACE, [ids["nikon"]])
    assert index.count(other) == 1 and index.count(SPACE) == 4
    assert len(index.client.retrieve(name, [ids["nikon"]])) == 1  # the other model keeps the point


def test_new_asset_of_second_model_only(index: QdrantIndex, loaded: dict[str, Any], helpers: Any) -> None:
    other = VectorSpace(SPACE.collection_id, SPACE.collection, "m2", 4)
    vec = helpers.unit_vectors(1, dim=4)[0]
    index.upsert(other, [VectorRecord(99, vec, VectorPayload(None, None, ("/new/x.jpg",)))])
    assert index.count(other) == 1 and index.count(SPACE) == 5
    assert index.search(other, vec, filters=SearchFilters(path_prefix="/new")) == [(99, pytest.approx(1.0, abs=1e-5))]


def test_dimension_checks(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    with pytest.raises(PhotoindexError) as err:
        index.search(SPACE, np.ones(3, np.float32))
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH
    wrong = VectorSpace(SPACE.collection_id, SPACE.collection, SPACE.model, 8)
    with pytest.raises(PhotoindexError) as err:
        index.upsert(wrong, [VectorRecord(1, np.ones(8, np.float32))])
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH


def test_drop_collection(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    index.drop_collection(SPACE.collection_id, SPACE.collection)
    assert not index.client.collection_exists(index.collection_name("lib"))
    assert index.count(SPACE) == 0
    assert index.search(SPACE, loaded["vectors"]["eos"]) == []
    index.drop_collection(SPACE.collection_id, SPACE.collection)  # twice is fine


def test_unreachable_server_is_a_clear_error() -> None:
    client = QdrantClient(url="http://127.0.0.1:9", timeout=2, check_compatibility=False)
    index = QdrantIndex(client)
    with pytest.raises(PhotoindexError) as err:
        index.search(SPACE, np.ones(16, np.float32))
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert err.value.hint and "Qdrant" in err.value.hint
    index.close()


def test_helpers() -> None:
    assert ancestor_dirs(["/a/b/c.jpg", "/a/bc/d.jpg"]) == ["/", "/a", "/a/b", "/a/bc"]
    assert vector_name("ViT-B-16-SigLIP2__webli") == "ViT-B-16-SigLIP2__webli"
    assert vector_name("org/model:v1 x") == "org_model_v1_x"


def test_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_catalog: Catalog) -> None:
    monkeypatch.setenv("PHOTOINDEX_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings(home=tmp_path, vector_backend="qdrant", qdrant_url=":memory:",
                        qdrant_distance="cosine", qdrant_upsert_batch_size=7)
    idx = open_vector_index(settings, sqlite_catalog)
    assert isinstance(idx, QdrantIndex) and idx.stores_vectors is True
    assert idx.upsert_batch_size == 7 and idx.distance == "Cosine"
    idx.upsert(SPACE, [VectorRecord(1, np.ones(16, np.float32))])
    assert idx.count(SPACE) == 1
    idx.close()
    sized = QdrantIndex.from_settings(Settings(home=tmp_path, qdrant_url=":memory:", qdrant_vector_size=512))
    with pytest.raises(PhotoindexError) as err:
        sized.upsert(SPACE, [VectorRecord(1, np.ones(16, np.float32))])
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH
    sized.close()


def test_same_answers_as_exact_index(sqlite_catalog: Catalog, helpers: Any,
                                    filter_case: tuple[dict[str, Any], set[str]]) -> None:
    """Both backends fed from one real catalog (Qdrant rebuilt with `sync_from_catalog`, payloads
    from `payload_for`) give the same hits and scores."""
    lib = helpers.build_library(sqlite_catalog)
    exact = ExactIndex(sqlite_catalog)
    qdrant = QdrantIndex(QdrantClient(":memory:"))
    assert sync_from_catalog(qdrant, sqlite_catalog, lib.space, batch_size=2) == 5
    assert sync_from_catalog(exact, sqlite_catalog, lib.space) == 0  # reads the catalog itself
    assert qdrant.count(lib.space) == 5
    filters = SearchFilters(**filter_case[0])
    for name, vec in lib.vectors.items():
        a = exact.search(lib.space, vec, k=100, filters=filters, exclude=[lib.ids[name]])
        b = qdrant.search(lib.space, vec, k=100, filters=filters, exclude=[lib.ids[name]])
        assert [i for i, _ in a] == [i for i, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)
    exact.close()
    qdrant.close()


def test_collection_dropped_by_another_process(index: QdrantIndex, loaded: dict[str, Any]) -> None:
    other = QdrantIndex(index.client, owns_client=False)  # a second process sharing the server
    other.drop_collection(SPACE.collection_id, SPACE.collection)
    assert index.search(SPACE, loaded["vectors"]["eos"]) == []  # this one believed it existed
    assert index.count(SPACE) == 0
    index.upsert(SPACE, loaded["records"][:1])  # and writing recreates it
    assert index.count(SPACE) == 1
