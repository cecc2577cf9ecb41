"""Full-text search over captions, OCR text and tags, on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import delete, func, select, text

from photoindex.errors import CatalogError, ErrorCode
from photoindex.schemas import ExifInfo
from photoindex.store.catalog import Catalog, FileRecord, NewAsset
from photoindex.store.fulltext import (
    MAX_TERMS,
    AssetTextRow,
    delete_texts,
    match,
    parse_query,
    put_texts,
    rebuild_index,
)
from photoindex.store.models import Asset, AssetText

# name → (caption, ocr, tags)
TEXTS: dict[str, tuple[str, str, str]] = {
    "receipt": ("a paper receipt on a table", "BLUE BOTTLE COFFEE  latte 4.50  total 9.00", "receipt paper"),
    "cafe": ("people drinking coffee in a cafe", "", "coffee cup person"),
    "cat": ("a cat sleeping on a sofa", "", "cat sofa"),
    "catalog": ("a printed catalog", "spring catalog 2024", "book"),
    "sign": ("a street at night", "NO PARKING  tow away zone", "street sign car"),
    "beach": ("sunset over the sea", "", "beach sea sky"),
}


def add_assets(catalog: Catalog, collection_id: int, names: list[str], prefix: str = "") -> dict[str, int]:
    """Real asset rows through the ingest commit; returns name → asset id."""
    shas = {n: hashlib.sha256(f"{prefix}{n}".encode()).hexdigest() for n in names}
    assets = [NewAsset(sha256=h, sha1=h[:40], bytes=1000, mime="image/jpeg", width=64, height=48,
                       exif=ExifInfo()) for h in shas.values()]
    files = [FileRecord(path=f"/photos/{prefix}{n}.jpg", size=1000, mtime_ns=1, sha256=h)
             for n, h in shas.items()]
    ids = catalog.commit_batch(collection_id, assets, files)
    return {n: ids[h] for n, h in shas.items()}


def load(catalog: Catalog, collection_id: int, texts: dict[str, tuple[str, str, str]] = TEXTS,
         prefix: str = "") -> dict[str, int]:
    ids = add_assets(catalog, collection_id, list(texts), prefix)
    put_texts(catalog, [AssetTextRow(asset_id=ids[n], collection_id=collection_id, caption=c, ocr=o, tags=t)
                        for n, (c, o, t) in texts.items()])
    return ids


def names(ids: dict[str, int], hits: list[tuple[int, float]]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[i] for i, _ in hits]


def fts_consistent(catalog: Catalog) -> None:
    """SQLite: FTS5 compares its index with the content table and raises when they differ."""
    if catalog.dialect == "sqlite":
        with catalog.session() as s:
            s.execute(text("INSERT INTO asset_text_fts(asset_text_fts, rank) VALUES ('integrity-check', 1)"))


@pytest.fixture
def coll(catalog: Catalog) -> int:
    return catalog.active_collection().id


def test_finds_by_each_field_and_ranks_tags_over_caption_over_ocr(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    assert names(ids, match(catalog, coll, "parking")) == ["sign"]  # OCR text
    assert names(ids, match(catalog, coll, "sleeping")) == ["cat"]  # caption
    assert names(ids, match(catalog, coll, "beach")) == ["beach"]  # tag
    assert match(catalog, coll, "volcano") == []
    # "coffee" is a tag and in the caption of "cafe", only OCR text of "receipt"
    hits = match(catalog, coll, "coffee")
    assert names(ids, hits) == ["cafe", "receipt"]
    assert hits[0][1] > hits[1][1] > 0
    # same word once in each field of otherwise equal photos: tags > caption > ocr
    fields = {"in_tags": ("x y", "", "zebra"), "in_caption": ("zebra", "", "x y"),
              "in_ocr": ("x y", "zebra", "")}
    more = load(catalog, coll, fields, prefix="f")
    assert names(more, match(catalog, coll, "zebra")) == ["in_tags", "in_caption", "in_ocr"]


def test_photos_with_every_word_come_first(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    hits = match(catalog, coll, "coffee receipt")
    assert names(ids, hits)[0] == "receipt"  # both words; "cafe" has "coffee" twice but not "receipt"
    assert set(names(ids, hits)) == {"receipt", "cafe"}
    assert hits[0][1] >= 1.0 > hits[1][1]
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    # case, accents of the query and punctuation do not matter
    assert names(ids, match(catalog, coll, "COFFEE, Receipt!"))[0] == "receipt"


def test_last_word_matches_as_prefix_but_whole_words_rank_first(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    assert names(ids, match(catalog, coll, "park")) == ["sign"]  # "parking", still being typed
    assert match(catalog, coll, "park ") == []  # a finished word is a word
    assert match(catalog, coll, "park", prefix=False) == []
    hits = names(ids, match(catalog, coll, "cat"))
    assert hits == ["cat", "catalog"]  # the word itself before words it begins
    assert names(ids, match(catalog, coll, "ca", limit=10)) == []  # too short to be a prefix


def test_collections_are_isolated(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    other = catalog.create_collection("other").id
    other_ids = load(catalog, other, {"cat2": ("a cat on a roof", "", "cat")}, prefix="o")
    assert names(ids, match(catalog, coll, "cat")) == ["cat", "catalog"]
    assert names(other_ids, match(catalog, other, "cat")) == ["cat2"]
    assert match(catalog, other, "coffee") == []
    with pytest.raises(CatalogError) as exc:  # a row may not put words under another collection
        put_texts(catalog, [AssetTextRow(asset_id=ids["cat"], collection_id=other, caption="x")])
    assert exc.value.code == ErrorCode.INVALID_REQUEST
    with pytest.raises(CatalogError) as exc:
        put_texts(catalog, [AssetTextRow(asset_id=10**9, collection_id=coll, caption="x")])
    assert exc.value.code == ErrorCode.ASSET_NOT_FOUND


def test_asset_id_restriction_and_limit(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    assert names(ids, match(catalog, coll, "coffee", asset_ids={ids["receipt"], ids["beach"]})) == ["receipt"]
    assert match(catalog, coll, "coffee", asset_ids=[]) == []
    assert match(catalog, coll, "coffee", asset_ids=np.array([], dtype=np.int64)) == []
    as_array = np.array([ids["receipt"], ids["cafe"]], dtype=np.int64)  # what Catalog.filter_asset_ids gives
    assert set(names(ids, match(catalog, coll, "coffee", asset_ids=as_array))) == {"receipt", "cafe"}
    assert match(catalog, coll, "coffee", asset_ids=[10**9]) == []
    assert names(ids, match(catalog, coll, "coffee", limit=1)) == ["cafe"]
    assert match(catalog, coll, "coffee", limit=0) == []
    # a restriction larger than any IN list travels as one parameter
    many = set(range(10**6, 10**6 + 50_000)) | {ids["sign"]}
    assert names(ids, match(catalog, coll, "parking", asset_ids=many)) == ["sign"]


def test_limit_keeps_the_best_of_each_group(catalog: Catalog, coll: int) -> None:
    texts = {f"p{i}": ("", "", "red " * (i + 1) + ("car" if i < 3 else "")) for i in range(12)}
    ids = load(catalog, coll, texts)
    hits = names(ids, match(catalog, coll, "red car", limit=5))
    assert set(hits[:3]) == {"p0", "p1", "p2"}  # all three with both words first
    assert len(hits) == 5 and set(hits[3:]) <= {f"p{i}" for i in range(3, 12)}
    assert hits == names(ids, match(catalog, coll, "red car", limit=50))[:5]


HOSTILE = [
    '"', '""', '"coffee', 'coffee"', "*", "coffee*", "NEAR(", "NEAR(coffee receipt, 2)", "OR", "coffee OR",
    "AND NOT", "-", "-coffee", ":", "tags:coffee", "caption : coffee", "^coffee", "coffee + receipt",
    "(", ")",
    "'", "\\", "!coffee", "coffee & receipt | !x", "coffee <-> receipt", "{tags}: coffee", "coffee:*",
    "☕ café ☕", "日本語", "\x00coffee", "\ud800coffee", "_", "   ", "",
]


def test_hostile_queries_are_literal_words(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    for query in HOSTILE:
        hits = match(catalog, coll, query)  # never raises
        words = parse_query(query).terms
        if "coffee" in words:
            assert set(names(ids, hits)) >= {"cafe", "receipt"}, query
        if not words:
            assert hits == [], query
        assert all(isinstance(i, int) and isinstance(s, float) for i, s in hits), query


def test_operator_words_match_as_words(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll, {"ops": ("near or and not", "", ""), "plain": ("nothing here", "", "")})
    assert names(ids, match(catalog, coll, "NEAR")) == ["ops"]
    assert names(ids, match(catalog, coll, "OR")) == ["ops"]
    assert names(ids, match(catalog, coll, "NOT", prefix=False)) == ["ops"]


def test_very_long_query(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    long_query = "parking " + " ".join(f"w{i}" for i in range(2000))
    assert len(long_query) > 10_000
    assert names(ids, match(catalog, coll, long_query)) == ["sign"]  # the first words count
    assert len(parse_query(long_query).terms) == MAX_TERMS
    assert match(catalog, coll, "x" * 10_000) == []  # one giant "word"
    assert match(catalog, coll, "\"*:(" * 3000) == []


def test_unicode_text(catalog: Catalog, coll: int) -> None:
    texts = {"tokyo": ("東京 の 夜", "", "город"), "cafe_fr": ("un café à Paris", "CRÈME BRÛLÉE", "")}
    ids = load(catalog, coll, texts)
    assert names(ids, match(catalog, coll, "東京")) == ["tokyo"]
    assert names(ids, match(catalog, coll, "ГОРОД")) == ["tokyo"]
    assert names(ids, match(catalog, coll, "café")) == ["cafe_fr"]
    assert names(ids, match(catalog, coll, "crème brûlée")) == ["cafe_fr"]


def test_update_replaces_old_words(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    put_texts(catalog, [AssetTextRow(asset_id=ids["sign"], collection_id=coll, caption="a mountain lake",
                                     ocr="", tags="lake")])
    assert match(catalog, coll, "parking") == []
    assert names(ids, match(catalog, coll, "lake")) == ["sign"]
    # the last row for an asset in one call wins
    put_texts(catalog, [AssetTextRow(asset_id=ids["sign"], collection_id=coll, tags="first"),
                        AssetTextRow(asset_id=ids["sign"], collection_id=coll, tags="second")])
    assert match(catalog, coll, "first") == [] and match(catalog, coll, "lake") == []
    assert names(ids, match(catalog, coll, "second")) == ["sign"]
    fts_consistent(catalog)


def test_delete_texts_and_cascades(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    delete_texts(catalog, [ids["cafe"], 10**9])
    assert names(ids, match(catalog, coll, "coffee")) == ["receipt"]
    # deleting the asset row cascades to asset_text (foreign key), whose delete trigger updates FTS5
    with catalog.session() as s:
        s.execute(delete(Asset).where(Asset.id == ids["receipt"]))
    assert match(catalog, coll, "coffee") == []
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(AssetText)) == len(TEXTS) - 2
    fts_consistent(catalog)
    # deleting the collection takes the rest with it
    other = catalog.create_collection("other").id
    catalog.select_collection("other")
    catalog.delete_collection("default")
    assert match(catalog, coll, "cat") == []
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(AssetText)) == 0
        if catalog.dialect == "sqlite":
            assert s.scalar(text("SELECT count(*) FROM asset_text_fts WHERE asset_text_fts MATCH 'cat'")) == 0
    fts_consistent(catalog)
    assert other


def test_put_is_batched_and_atomic(catalog: Catalog, coll: int) -> None:
    texts = {f"n{i}": (f"caption {i}", "", "bulk") for i in range(1200)}  # more than one chunk
    ids = load(catalog, coll, texts)
    assert len(match(catalog, coll, "bulk", limit=5000)) == 1200
    rows = [AssetTextRow(asset_id=ids[f"n{i}"], collection_id=coll, tags="changed") for i in range(1100)]
    rows.append(AssetTextRow(asset_id=10**9, collection_id=coll, tags="changed"))  # in the third chunk
    with pytest.raises(CatalogError):
        put_texts(catalog, rows)
    assert match(catalog, coll, "changed") == []  # nothing of the failed call was kept
    assert len(match(catalog, coll, "bulk", limit=5000)) == 1200


def test_stored_text_is_cleaned_and_capped(catalog: Catalog, coll: int) -> None:
    ids = add_assets(catalog, coll, ["dirty"])
    huge = " ".join(f"word{i}" for i in range(200_000))  # ~1.4 MB: over a tsvector's limit uncapped
    put_texts(catalog, [AssetTextRow(asset_id=ids["dirty"], collection_id=coll, caption="nul\x00byte \ud800x",
                                     ocr=huge, tags="")])
    assert match(catalog, coll, "byte") == [(ids["dirty"], pytest.approx(match(catalog, coll, "byte")[0][1]))]
    assert match(catalog, coll, "word10") and match(catalog, coll, "word199999") == []


def test_rebuild_index(catalog: Catalog, coll: int) -> None:
    ids = load(catalog, coll)
    rebuild_index(catalog)
    assert names(ids, match(catalog, coll, "parking")) == ["sign"]
    fts_consistent(catalog)
