"""ExactIndex over real catalogs (SQLite file and PostgreSQL database)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photoindex.config import Settings
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.schemas import SearchFilters
from photoindex.store.catalog import Catalog
from photoindex.store.exact_index import ExactIndex, _Space
from photoindex.store.vectors import VectorRecord, VectorSpace, open_vector_index, payload_for


def delete_embeddings(catalog: Catalog, asset_ids: list[int], model: str) -> None:
    catalog.delete_vectors(asset_ids, model)


@pytest.fixture
def index(catalog: Catalog) -> ExactIndex:
    idx = ExactIndex(catalog)
    yield idx
    idx.close()


def test_own_vector_ranks_first(index: ExactIndex, library: Any) -> None:
    for name, vec in library.vectors.items():
        hits = index.search(library.space, vec, k=10)
        assert library.names(hits)[0] == name
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(hits) == len(library.vectors)
        expected = sorted((float(vec @ v) for v in library.vectors.values()), reverse=True)
        assert scores == pytest.approx(expected, abs=1e-5)


def test_scores_are_cosine_for_unnormalized_input(index: ExactIndex, library: Any) -> None:
    q = library.vectors["eos"] * 7.5
    hits = index.search(library.space, q, k=1)
    assert hits == [(library.ids["eos"], pytest.approx(1.0, abs=1e-5))]


def test_k(index: ExactIndex, library: Any) -> None:
    q = library.vectors["nikon"]
    assert len(index.search(library.space, q, k=2)) == 2
    assert len(index.search(library.space, q, k=100)) == 5
    assert index.search(library.space, q, k=0) == []


def test_filters(index: ExactIndex, library: Any, helpers: Any) -> None:
    # one catalog for all cases (a PostgreSQL database per case would dominate the suite's time)
    for filters, expected in helpers.filter_cases:
        hits = index.search(library.space, library.vectors["eos"], k=100, filters=SearchFilters(**filters))
        assert set(library.names(hits)) == expected, filters
        assert len(hits) == len(expected), filters


def test_empty_filters_mean_no_filter(index: ExactIndex, library: Any) -> None:
    assert len(index.search(library.space, library.vectors["eos"], k=100, filters=SearchFilters())) == 5


def test_exclude(index: ExactIndex, library: Any) -> None:
    q = library.vectors["eos"]
    hits = index.search(library.space, q, k=100, exclude=[library.ids["eos"]])
    assert "eos" not in library.names(hits) and len(hits) == 4
    both = index.search(library.space, q, k=100, exclude=[library.ids["eos"], library.ids["nikon"]],
                        filters=SearchFilters(path_prefix="/photos/a"))
    assert set(library.names(both)) == {"powershot"}


def test_count_and_scroll(index: ExactIndex, library: Any) -> None:
    assert index.count(library.space) == 5
    batches = list(index.scroll(library.space, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    records = [r for b in batches for r in b]
    assert [r.asset_id for r in records] == sorted(library.ids.values())
    for r in records:
        np.testing.assert_allclose(r.vector, library.vectors[library.name_of(r.asset_id)], atol=1e-6)
        assert r.payload is None


def test_empty_space(index: ExactIndex, catalog: Catalog) -> None:
    info = catalog.create_collection("empty")
    space = VectorSpace(info.id, info.name, "nothing", 16)
    assert index.search(space, np.ones(16, np.float32)) == []
    assert index.count(space) == 0
    assert list(index.scroll(space)) == []


def test_incremental_refresh(index: ExactIndex, library: Any, helpers: Any) -> None:
    space = library.space
    index.search(space, library.vectors["eos"])
    assert index.stats(space)["full_loads"] == 1
    new = helpers.unit_vectors(3, seed=42)
    ids = helpers.add_assets(library.catalog, space.collection_id,
                             {f"new{i}": (f"/photos/new/{i}.jpg", v) for i, v in enumerate(new)})
    hits = index.search(space, new[1], k=3)
    assert hits[0] == (ids["new1"], pytest.approx(1.0, abs=1e-5))
    stats = index.stats(space)
    assert stats["full_loads"] == 1 and stats["incremental_loads"] == 1 and stats["vectors"] == 8
    # a current copy asks the catalog once and loads nothing
    index.search(space, new[0])
    assert index.stats(space)["incremental_loads"] == 1
    # filters see the new assets as well
    found = index.search(space, new[2], k=10, filters=SearchFilters(path_prefix="/photos/new"))
    assert {i for i, _ in found} == set(ids.values())


def test_refresh_interval(catalog: Catalog, library: Any, helpers: Any) -> None:
    index = ExactIndex(catalog, refresh_interval_s=3600)
    space = library.space
    index.search(space, library.vectors["eos"])
    new = helpers.unit_vectors(1, seed=8)[0]
    ids = helpers.add_assets(catalog, space.collection_id, {"new": ("/photos/new.jpg", new)})
    assert index.search(space, new, k=1)[0][0] != ids["new"]  # within the interval: not asked
    index.refresh_interval_s = 0
    assert index.search(space, new, k=1)[0][0] == ids["new"]


def test_reembedded_asset_replaces_its_vector(index: ExactIndex, library: Any, helpers: Any) -> None:
    space = library.space
    # add one more asset first, so that the re-embedded one is not the newest row (see below)
    helpers.add_assets(library.catalog, space.collection_id,
                       {"later": ("/photos/later.jpg", helpers.unit_vectors(1, seed=7)[0])})
    index.search(space, library.vectors["eos"])
    fresh = helpers.unit_vectors(1, seed=99)[0]
    library.catalog.put_vectors(space.collection_id, space.model, "2", {library.ids["eos"]: fresh})
    hits = index.search(space, fresh, k=100)
    assert hits[0] == (library.ids["eos"], pytest.approx(1.0, abs=1e-5))
    ids = [i for i, _ in hits]
    assert len(ids) == len(set(ids)) == 6
    assert index.count(space) == 6
    old = index.search(space, library.vectors["eos"], k=100)
    assert dict(old)[library.ids["eos"]] == pytest.approx(float(library.vectors["eos"] @ fresh), abs=1e-5)
    stats = index.stats(space)
    assert stats["full_loads"] == 1 and stats["incremental_loads"] == 1


def test_reembedding_the_newest_row(index: ExactIndex, library: Any, helpers: Any) -> None:
    """Re-embedding the asset that holds the highest row id must be seen too: the replacement row
    must get a new id (on SQLite that needs AUTOINCREMENT, or the deleted top id is handed out
    again and (count, max id) would not change)."""
    space = library.space
    newest = max(library.ids.values())
    index.search(space, library.vectors["eos"])
    fresh = helpers.unit_vectors(1, seed=123)[0]
    library.catalog.put_vectors(space.collection_id, space.model, "2", {newest: fresh})
    assert index.search(space, fresh, k=1)[0] == (newest, pytest.approx(1.0, abs=1e-5))


def test_catalog_deletion_triggers_reload(index: ExactIndex, library: Any) -> None:
    space = library.space
    index.search(space, library.vectors["eos"])
    delete_embeddings(library.catalog, [library.ids["nikon"]], space.model)
    hits = index.search(space, library.vectors["nikon"], k=100)
    assert "nikon" not in library.names(hits) and len(hits) == 4
    assert index.stats(space)["full_loads"] == 2
    assert index.count(space) == 4


def test_delete_from_memory(index: ExactIndex, library: Any) -> None:
    space = library.space
    index.search(space, library.vectors["eos"])
    gone = [library.ids["eos"], library.ids["powershot"]]
    delete_embeddings(library.catalog, gone, space.model)
    index.delete(space, gone)
    assert index.stats(space)["vectors"] == 3
    hits = index.search(space, library.vectors["eos"], k=100)
    assert set(library.names(hits)) == {"nikon", "nodata", "gone"}
    assert index.stats(space)["full_loads"] == 1  # memory already agreed with the catalog


def test_delete_before_catalog_is_corrected(index: ExactIndex, library: Any) -> None:
    """Memory never stays behind the catalog: an asset deleted from memory only comes back."""
    space = library.space
    index.search(space, library.vectors["eos"])
    index.delete(space, [library.ids["eos"]])
    assert index.search(space, library.vectors["eos"], k=1)[0][0] == library.ids["eos"]


def test_upsert_writes_nothing_but_checks_dimensions(index: ExactIndex, library: Any) -> None:
    space = library.space
    index.upsert(space, [VectorRecord(library.ids["eos"], library.vectors["eos"])])
    assert index.count(space) == 5
    with pytest.raises(PhotoindexError) as err:
        index.upsert(space, [VectorRecord(1, np.ones(3, np.float32))])
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH


def test_query_dimension_mismatch(index: ExactIndex, library: Any) -> None:
    with pytest.raises(PhotoindexError) as err:
        index.search(library.space, np.ones(5, np.float32))
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH


def test_drop_collection(index: ExactIndex, library: Any) -> None:
    space = library.space
    index.search(space, library.vectors["eos"])
    index.drop_collection(space.collection_id, space.collection)
    assert index.stats(space)["loaded"] is False
    library.catalog.delete_collection(space.collection)
    assert index.search(space, library.vectors["eos"]) == []


def test_models_are_separate_spaces(index: ExactIndex, library: Any, helpers: Any) -> None:
    other = VectorSpace(library.space.collection_id, library.space.collection, "other-model", 4)
    vec = helpers.unit_vectors(1, dim=4, seed=5)[0]
    library.catalog.put_vectors(other.collection_id, other.model, "1", {library.ids["nikon"]: vec})
    assert index.search(other, vec) == [(library.ids["nikon"], pytest.approx(1.0, abs=1e-5))]
    assert index.count(library.space) == 5


def test_concurrent_searches_during_ingest(index: ExactIndex, library: Any, helpers: Any) -> None:
    space = library.space
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                hits = index.search(space, library.vectors["eos"], k=100)
                ids = [i for i, _ in hits]
                assert len(ids) == len(set(ids))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    vecs = helpers.unit_vectors(40, seed=11)
    for batch in range(4):
        helpers.add_assets(library.catalog, space.collection_id,
                           {f"c{batch}-{i}": (f"/photos/c/{batch}/{i}.jpg", vecs[batch * 10 + i]) for i in range(10)})
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.count(space) == 45


def test_payload_for(catalog: Catalog, library: Any) -> None:
    assets = catalog.get_assets(list(library.ids.values()))
    eos = payload_for(assets[library.ids["eos"]])
    assert eos.camera == "Canon EOS 5D" and eos.paths == ("/photos/a/b/1.jpg",)
    assert eos.taken_at is not None and eos.taken_at.tzinfo is None
    assert payload_for(assets[library.ids["gone"]]).paths == ()  # missing files are no paths
    assert payload_for(assets[library.ids["nodata"]]).taken_at is None


def test_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog: Catalog) -> None:
    monkeypatch.setenv("PHOTOINDEX_CONFIG", str(tmp_path / "none.toml"))
    idx = open_vector_index(Settings(home=tmp_path, vector_backend="exact"), catalog)
    assert isinstance(idx, ExactIndex) and idx.stores_vectors is False
    idx.close()


# -- the in-memory structure against brute force (no database) --------------------------------------
def _brute(ids: dict[int, np.ndarray], q: np.ndarray, k: int, allowed: set[int] | None,
           exclude: set[int]) -> list[int]:
    cands = [(float(v @ q), a) for a, v in ids.items()
             if (allowed is None or a in allowed) and a not in exclude]
    cands.sort(key=lambda t: (-t[0], t[1]))
    return [a for _, a in cands[:k]]


def test_space_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    dim = 8
    st = _Space(dim)
    truth: dict[int, np.ndarray] = {}
    capacities = set()
    for step in range(60):
        op = rng.random()
        if op < 0.7 or not truth:  # add new assets and re-embed some existing ones
            new_ids = rng.integers(1, 3000, size=int(rng.integers(1, 80)))
            vecs = rng.standard_normal((new_ids.size, dim)).astype(np.float32)
            st.merge(new_ids, vecs, normalize=True)
            for a, v in zip(new_ids.tolist(), vecs, strict=True):  # later duplicates win
                truth[a] = v / np.linalg.norm(v)
        else:
            victims = rng.choice(list(truth), size=min(len(truth), int(rng.integers(1, 30))), replace=False)
            st.remove(np.append(victims, [999_999]))  # an unknown id is ignored
            for a in victims.tolist():
                truth.pop(a)
        capacities.add(st.capacity)
        assert st.n == len(truth)
        assert np.array_equal(st.sorted_ids, np.array(sorted(truth), dtype=np.int64))
        assert np.array_equal(st.ids[st.sorted_rows], st.sorted_ids)
        q = rng.standard_normal(dim).astype(np.float32)
        keys = np.array(sorted(truth), dtype=np.int64)
        for allowed in (None, set(keys[:: 9].tolist()), set(keys[::2].tolist())):  # gather and mask paths
            exclude = set(keys[:3].tolist())
            allowed_arr = None if allowed is None else np.array(sorted(allowed), dtype=np.int64)
            got = st.top_k(q, 7, allowed_arr, np.array(sorted(exclude), dtype=np.int64))
            assert [a for a, _ in got] == _brute(truth, q, 7, allowed, exclude)
            for a, score in got:
                assert score == pytest.approx(float(truth[a] @ q), abs=1e-5)
    assert len(capacities) < 12  # amortized growth, not one reallocation per merge
