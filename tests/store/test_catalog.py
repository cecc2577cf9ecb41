"""Catalog behaviour on SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from photoindex.errors import CatalogError, ErrorCode
from photoindex.schemas import ExifInfo, SearchFilters
from photoindex.store.catalog import Catalog, FileRecord, ModelVectors, NewAsset
from photoindex.store.jobs import JobStore


def asset(sha: str, **exif) -> NewAsset:
    return NewAsset(sha256=sha * 64 if len(sha) == 1 else sha, sha1="b" * 40, bytes=1000, mime="image/jpeg",
                    width=4000, height=3000, exif=ExifInfo(**exif))


def sha(c: str) -> str:
    return c * 64


def unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_open_is_idempotent_and_creates_default(catalog_url: str) -> None:
    first = Catalog.open(catalog_url)
    coll = first.active_collection()
    assert coll.name == "default" and coll.active
    first.close()
    again = Catalog.open(catalog_url)  # migrating an up-to-date schema is a no-op
    assert [c.name for c in again.list_collections()] == ["default"]
    again.close()


def test_collections_crud_and_selection(catalog: Catalog) -> None:
    catalog.create_collection("trips", vector_size=768, distance="Cosine")
    catalog.create_collection("family")
    with pytest.raises(CatalogError) as exc:
        catalog.create_collection("trips")
    assert exc.value.code == ErrorCode.COLLECTION_EXISTS
    with pytest.raises(CatalogError) as exc:
        catalog.create_collection("../etc")
    assert exc.value.code == ErrorCode.INVALID_NAME
    assert catalog.select_collection("family").active
    assert catalog.active_collection().name == "family"
    names = {c.name: c for c in catalog.list_collections()}
    assert names["trips"].vector_size == 768 and names["family"].active and not names["trips"].active
    catalog.delete_collection("family")
    assert catalog.active_collection().name == "trips"  # falls back to the first remaining one
    with pytest.raises(CatalogError) as exc:
        catalog.get_collection("family")
    assert exc.value.code == ErrorCode.COLLECTION_NOT_FOUND
    assert "collections list" in (exc.value.hint or "")


def test_commit_batch_is_idempotent_and_links_duplicates(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    tz = timezone(timedelta(hours=2))
    assets = [asset("a", taken_at=datetime(2024, 7, 1, 12, 0, tzinfo=tz), make="Canon", model="Canon EOS R5"),
              asset("b")]
    files = [FileRecord("/p/a.jpg", 10, 1, sha("a")), FileRecord("/p/copy/a.jpg", 10, 2, sha("a")),
             FileRecord("/p/b.jpg", 11, 3, sha("b"))]
    vecs = ModelVectors("m", "r1", {sha("a"): unit(1), sha("b"): unit(2)})
    ids = catalog.commit_batch(cid, assets, files, vecs)
    again = catalog.commit_batch(cid, assets, files, vecs)
    assert ids == again and len(ids) == 2
    stats = catalog.stats(cid)
    assert stats["assets"] == 2 and stats["files"] == 3 and stats["vectors"] == {"m": 2}
    a = catalog.get_asset(ids[sha("a")])
    assert [f.path for f in a.files] == ["/p/a.jpg", "/p/copy/a.jpg"]
    assert a.camera == "Canon EOS R5"
    assert a.taken_at == datetime(2024, 7, 1, 12, 0, tzinfo=tz)  # offset survives the round trip
    assert a.embedded_models == ["m"]
    assert catalog.find_asset_by_path(cid, "/p/copy/a.jpg").id == a.id


def test_changed_file_points_at_new_content(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    catalog.commit_batch(cid, [asset("a")], [FileRecord("/p/x.jpg", 10, 1, sha("a"))])
    ids = catalog.commit_batch(cid, [asset("c")], [FileRecord("/p/x.jpg", 12, 5, sha("c"))])
    state = catalog.file_states(cid, ["/p"])["/p/x.jpg"]
    assert state.asset_id == ids[sha("c")] and state.size == 12 and state.mtime_ns == 5


def test_file_states_by_folder_are_exact(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    catalog.commit_batch(cid, [asset("a")], [
        FileRecord("/photos/a/1.jpg", 1, 1, sha("a")),
        FileRecord("/photos/ab/2.jpg", 1, 1, sha("a")),  # sibling folder sharing a name prefix
        FileRecord("/photos/a/deep/3.jpg", 1, 1, sha("a")),
    ])
    assert sorted(catalog.file_states(cid, ["/photos/a"])) == ["/photos/a/1.jpg", "/photos/a/deep/3.jpg"]
    assert len(catalog.file_states(cid)) == 3


def test_missing_and_delete_files(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    catalog.commit_batch(cid, [asset("a")], [FileRecord("/p/1.jpg", 1, 1, sha("a")), FileRecord("/p/2.jpg", 1, 1, sha("a"))])
    states = catalog.file_states(cid)
    catalog.set_missing([states["/p/1.jpg"].id])
    assert catalog.file_states(cid)["/p/1.jpg"].missing
    assert catalog.stats(cid)["missing_files"] == 1
    catalog.delete_files([states["/p/2.jpg"].id])
    assert list(catalog.file_states(cid)) == ["/p/1.jpg"]


def test_vectors_reused_across_collections_and_pending(catalog: Catalog) -> None:
    one = catalog.active_collection().id
    two = catalog.create_collection("two").id
    catalog.commit_batch(one, [asset("a")], [FileRecord("/p/a.jpg", 1, 1, sha("a"))],
                         ModelVectors("m", "r1", {sha("a"): unit(1)}))
    catalog.commit_batch(two, [asset("a"), asset("b")], [FileRecord("/q/a.jpg", 1, 1, sha("a")),
                                                         FileRecord("/q/b.jpg", 1, 1, sha("b"))])
    found = catalog.vectors_by_sha256([sha("a"), sha("b")], "m", "r1")
    assert list(found) == [sha("a")] and np.allclose(found[sha("a")], unit(1))
    assert catalog.vectors_by_sha256([sha("a")], "m", "r2") == {}  # another revision is other vectors
    pending = catalog.assets_needing_vectors(two, "m", "r1")
    assert [h for _, h in pending] == [sha("a"), sha("b")]
    assert catalog.count_assets_needing_vectors(two, "m", "r1") == 2
    catalog.put_vectors(two, "m", "r1", {pending[0][0]: unit(1)})
    assert catalog.count_assets_needing_vectors(two, "m", "r1") == 1
    assert catalog.count_assets_needing_vectors(one, "m") == 0


def test_load_vectors_incrementally(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    ids = catalog.commit_batch(cid, [asset("a"), asset("b")],
                               [FileRecord("/p/a.jpg", 1, 1, sha("a")), FileRecord("/p/b.jpg", 1, 1, sha("b"))],
                               ModelVectors("m", "r", {sha("a"): unit(1), sha("b"): unit(2)}))
    first = catalog.load_vectors(cid, "m")
    assert sorted(first.ids.tolist()) == sorted(ids.values()) and first.vectors.shape == (2, 8)
    assert catalog.vector_space_state(cid, "m") == (2, first.last_id)
    catalog.put_vectors(cid, "m", "r", {ids[sha("a")]: unit(3)})  # re-embedded: a new row id
    more = catalog.load_vectors(cid, "m", after_id=first.last_id)
    assert more.ids.tolist() == [ids[sha("a")]] and np.allclose(more.vectors[0], unit(3))
    assert catalog.vector_space_state(cid, "m")[0] == 2
    assert catalog.load_vectors(cid, "m", after_id=more.last_id).ids.size == 0
    assert np.allclose(catalog.get_vector(ids[sha("b")], "m"), unit(2))


def test_filters(catalog: Catalog) -> None:
    cid = catalog.active_collection().id
    ids = catalog.commit_batch(cid, [
        asset("a", taken_at=datetime(2023, 7, 1, 10), make="NIKON CORPORATION", model="NIKON Z 6"),
        asset("b", taken_at=datetime(2024, 1, 5, 9), make="Apple", model="iPhone 15"),
        asset("c"),
    ], [FileRecord("/lib/trips/a.jpg", 1, 1, sha("a")), FileRecord("/lib/tripsX/b.jpg", 1, 1, sha("b")),
        FileRecord("/lib/trips/sub/c.jpg", 1, 1, sha("c"))])

    def q(**kw) -> set[int]:
        return set(catalog.filter_asset_ids(cid, SearchFilters(**kw)).tolist())

    assert q(date_from=datetime(2023, 1, 1), date_to=datetime(2023, 12, 31)) == {ids[sha("a")]}
    assert q(camera="iphone") == {ids[sha("b")]}
    assert q(camera="nikon z") == {ids[sha("a")]}
    assert q(path_prefix="/lib/trips") == {ids[sha("a")], ids[sha("c")]}
    assert q(path_prefix="/lib/trips/") == {ids[sha("a")], ids[sha("c")]}
    assert q(path_prefix="/lib/trips", camera="nikon") == {ids[sha("a")]}
    # a missing file no longer places its asset in a folder
    catalog.set_missing([catalog.file_states(cid)["/lib/trips/sub/c.jpg"].id])
    assert q(path_prefix="/lib/trips") == {ids[sha("a")]}


def test_delete_collection_removes_its_rows_only(catalog: Catalog) -> None:
    one = catalog.active_collection().id
    two = catalog.create_collection("two").id
    for cid in (one, two):
        catalog.commit_batch(cid, [asset("a")], [FileRecord(f"/{cid}/a.jpg", 1, 1, sha("a"))],
                             ModelVectors("m", "r", {sha("a"): unit(1)}))
    job = JobStore(catalog).create_job("ingest", two, {"roots": ["/x"]})
    catalog.delete_collection("two")
    assert catalog.stats(one) == {"assets": 1, "files": 1, "missing_files": 0, "bytes": 1000, "vectors": {"m": 1}}
    assert catalog.stats(two)["assets"] == 0
    assert JobStore(catalog).list_jobs()[0]["id"] == job  # the job history outlives the collection


def test_unreachable_database_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CatalogError) as exc:
        Catalog.open("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert exc.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert "PHOTOINDEX_CATALOG_URL" in (exc.value.hint or "")


def test_space_counters_follow_every_vector_write(catalog: Catalog) -> None:
    from sqlalchemy import func, select

    from photoindex.store.models import Embedding

    def truth(cid: int) -> tuple[int, int]:
        with catalog.session() as s:
            n, top = s.execute(select(func.count(), func.coalesce(func.max(Embedding.id), 0))
                               .where(Embedding.collection_id == cid, Embedding.model == "m")).one()
        return int(n), int(top)

    cid = catalog.active_collection().id
    ids = catalog.commit_batch(cid, [asset("a"), asset("b"), asset("c")],
                               [FileRecord(f"/p/{c}.jpg", 1, 1, sha(c)) for c in "abc"],
                               ModelVectors("m", "r", {sha(c): unit(i) for i, c in enumerate("abc")}))
    assert catalog.vector_space_state(cid, "m") == truth(cid) and truth(cid)[0] == 3
    catalog.put_vectors(cid, "m", "r", {ids[sha("a")]: unit(9)})  # replaced: same count, higher id
    assert catalog.vector_space_state(cid, "m") == truth(cid) and truth(cid)[0] == 3
    catalog.delete_vectors([ids[sha("b")]], "m")
    assert catalog.vector_space_state(cid, "m") == truth(cid) and truth(cid)[0] == 2
    assert catalog.vector_space_state(cid, "other") == (0, 0)
