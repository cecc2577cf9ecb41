"""Full-text search over the words of photos (`asset_text`: caption, OCR text, tags).

SQLite indexes them in the FTS5 table `asset_text_fts` (external content, kept in step by triggers
on asset_text, which also fire for foreign-key cascade deletes); PostgreSQL in the generated, weighted
`tsv` column (migration 0005). Both rank tags above captions above OCR text, with the same weights.

User text never reaches either query language as syntax: it is cut into words (runs of Unicode
letters and digits), each quoted as a literal term, and combined here. A query matches photos with
any of its words; photos with all of them come first, then by relevance (BM25 on SQLite, cover
density on PostgreSQL). The last word also matches as a prefix while it is being typed.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from photoindex.errors import CatalogError, ErrorCode
from photoindex.store.catalog import Catalog
from photoindex.store.models import Asset, AssetText

#: relevance weight per field, the same on both dialects (PostgreSQL's default A, B, C weights)
FIELD_WEIGHTS = {"tags": 1.0, "caption": 0.4, "ocr": 0.2}
MAX_TERMS = 32  # distinct words of a query that count; the rest of a pasted page adds nothing
MAX_TERM_CHARS = 128  # longer "words" are noise (base64, hashes); PostgreSQL would not index them either
MIN_PREFIX_CHARS = 3  # a prefix of one or two letters matches half the vocabulary
# Per field. A tsvector holds at most 1 MB of lexemes: three fields of 4-byte characters stay below
# that, and OCR text of a full page is a few thousand characters.
MAX_FIELD_CHARS = 50_000
_CHUNK = 500

_WORD = re.compile(r"[^\W_]+")  # letters and digits; everything else separates words, as in unicode61
_BAD_CHARS = re.compile(r"[\x00]")  # PostgreSQL text cannot hold NUL


class AssetTextRow(BaseModel):
    """The searchable words of one photo."""

    model_config = ConfigDict(frozen=True)

    asset_id: int
    collection_id: int
    caption: str = ""
    ocr: str = ""
    tags: str = ""


@dataclass(frozen=True)
class TextQuery:
    """A user query cut into literal words; `prefix` says whether the last one also matches as a prefix."""

    terms: tuple[str, ...]
    prefix: bool

    def __bool__(self) -> bool:
        return bool(self.terms)


def parse_query(query: str, *, prefix: bool = True) -> TextQuery:
    """Words of `query` (NFKC, lower case, distinct, in order). The last word is a prefix when the query
    does not end in a separator (the user may still be typing it) and it is long enough."""
    normalized = unicodedata.normalize("NFKC", _clean(query)).lower()
    words = _WORD.findall(normalized)
    terms = tuple(dict.fromkeys(w for w in words if len(w) <= MAX_TERM_CHARS))[:MAX_TERMS]
    # the word being typed: the query's last word, unless a separator follows it
    typing = words[-1] if words and normalized.endswith(words[-1]) else None
    use_prefix = (prefix and typing is not None and bool(terms) and terms[-1] == typing
                  and len(typing) >= MIN_PREFIX_CHARS)
    return TextQuery(terms, use_prefix)


# --- writes --------------------------------------------------------------------------------------

def put_texts(catalog: Catalog, rows: Sequence[AssetTextRow]) -> None:
    """Insert or replace the words of each photo, in one transaction. A later row for the same asset
    wins. Unknown assets raise `CatalogError(ASSET_NOT_FOUND)`; a row naming another collection than
    its asset's raises `CatalogError(INVALID_REQUEST)`."""
    latest = {row.asset_id: row for row in rows}
    if not latest:
        return
    insert = (postgresql.insert if catalog.dialect == "postgresql" else sqlite.insert)(AssetText)
    # ON CONFLICT DO UPDATE (not INSERT OR REPLACE): it fires the UPDATE trigger that moves the FTS5
    # entry; REPLACE deletes without firing delete triggers and would leave the old words findable.
    upsert = insert.on_conflict_do_update(
        index_elements=["asset_id"],
        set_={k: insert.excluded[k] for k in ("collection_id", "caption", "ocr", "tags")},
    )
    with catalog.session() as s:
        for chunk in _chunks(list(latest.values())):
            _check_assets(s, chunk)
            s.execute(upsert, [_values(row) for row in chunk])


def delete_texts(catalog: Catalog, asset_ids: Collection[int]) -> None:
    """Forget the words of these photos (unknown ids are ignored)."""
    ids = sorted({int(i) for i in asset_ids})
    with catalog.session() as s:
        for chunk in _chunks(ids):
            s.execute(delete(AssetText).where(AssetText.asset_id.in_(chunk)))


def rebuild_index(catalog: Catalog) -> None:
    """Rebuild the SQLite FTS5 index from asset_text (after bulk loads that bypassed the triggers).
    PostgreSQL's column is generated, so there is nothing to rebuild there."""
    if catalog.dialect == "sqlite":
        with catalog.session() as s:
            s.execute(text("INSERT INTO asset_text_fts(asset_text_fts) VALUES ('rebuild')"))


def _check_assets(s: Session, rows: Sequence[AssetTextRow]) -> None:
    ids = [row.asset_id for row in rows]
    owners = dict(s.execute(select(Asset.id, Asset.collection_id).where(Asset.id.in_(ids))).all())
    unknown = [i for i in ids if i not in owners]
    if unknown:
        raise CatalogError(f"no asset with id {unknown[0]}", code=ErrorCode.ASSET_NOT_FOUND,
                           details={"asset_ids": unknown[:10]})
    wrong = [row for row in rows if owners[row.asset_id] != row.collection_id]
    if wrong:
        row = wrong[0]
        raise CatalogError(
            f"asset {row.asset_id} belongs to collection {owners[row.asset_id]}, not {row.collection_id}",
            code=ErrorCode.INVALID_REQUEST,
        )


def _values(row: AssetTextRow) -> dict[str, Any]:
    return {"asset_id": row.asset_id, "collection_id": row.collection_id, "caption": _field(row.caption),
            "ocr": _field(row.ocr), "tags": _field(row.tags)}


def _field(value: str) -> str:
    return _clean(value[:MAX_FIELD_CHARS])


def _clean(value: str) -> str:
    """Text both databases accept: no NUL, no lone surrogates (from broken decoders)."""
    value = _BAD_CHARS.sub(" ", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


# --- search --------------------------------------------------------------------------------------

def match(
    catalog: Catalog,
    collection_id: int,
    query: str,
    *,
    limit: int = 200,
    asset_ids: Collection[int] | None = None,
    prefix: bool = True,
) -> list[tuple[int, float]]:
    """Photos of the collection whose words match `query`, best first, as (asset id, score).

    Photos holding every word of the query come before those holding only some; within each group
    by relevance. Scores are in [1, 2) for the first group and [0, 1) for the second, comparable only
    within one call. `asset_ids` (filters resolved elsewhere) restricts the candidates; empty: none."""
    parsed = parse_query(query, prefix=prefix)
    ids = None if asset_ids is None else sorted({int(i) for i in asset_ids})  # also numpy arrays
    if not parsed or limit <= 0 or ids == []:
        return []
    with catalog.session() as s:
        if catalog.dialect == "postgresql":
            return _match_pg(s, collection_id, parsed, limit, ids)
        return _match_sqlite(s, collection_id, parsed, limit, ids)


def _relevance_score(all_terms: bool, relevance: float) -> float:
    """One number that orders like (all terms matched, relevance): relevance ≥ 0 squashed into [0, 1)."""
    relevance = max(relevance, 0.0)
    return (1.0 if all_terms else 0.0) + relevance / (1.0 + relevance)


# SQLite -------------------------------------------------------------------------------------------

def _fts5_term(term: str, prefix: bool) -> str:
    # Terms hold only letters and digits, so quoting them can never close the quote early.
    if prefix:
        # The exact word matches twice (as itself and as its prefix), so it outranks longer words.
        return f'("{term}" OR "{term}"*)'
    return f'"{term}"'


def _fts5_expression(parsed: TextQuery, op: str) -> str:
    last = len(parsed.terms) - 1
    return f" {op} ".join(_fts5_term(t, parsed.prefix and i == last) for i, t in enumerate(parsed.terms))


def _match_sqlite(s: Session, collection_id: int, parsed: TextQuery, limit: int,
                  ids: list[int] | None) -> list[tuple[int, float]]:
    everything = _sqlite_query(s, collection_id, _fts5_expression(parsed, "AND"), limit, ids)
    if len(parsed.terms) == 1:
        return [(aid, _relevance_score(True, -bm25)) for aid, bm25 in everything]
    # All-word hits are a subset of any-word hits: asking for `limit` more than them leaves at least
    # `limit` others, the best of which are the best others.
    some = _sqlite_query(s, collection_id, _fts5_expression(parsed, "OR"), limit + len(everything), ids)
    first = {aid for aid, _ in everything}
    out = [(aid, _relevance_score(True, -bm25)) for aid, bm25 in everything]
    out += [(aid, _relevance_score(False, -bm25)) for aid, bm25 in some if aid not in first]
    return out[:limit]


def _sqlite_query(s: Session, collection_id: int, expression: str, limit: int,
                  ids: list[int] | None) -> list[tuple[int, float]]:
    weights = ", ".join(str(FIELD_WEIGHTS[c]) for c in ("caption", "ocr", "tags"))  # FTS5 column order
    restrict = " AND t.asset_id IN (SELECT value FROM json_each(:ids))" if ids is not None else ""
    sql = text(
        f"SELECT f.rowid, bm25(asset_text_fts, {weights}) AS r "
        "FROM asset_text_fts AS f JOIN asset_text AS t ON t.asset_id = f.rowid "
        f"WHERE asset_text_fts MATCH :q AND t.collection_id = :cid{restrict} "
        "ORDER BY r, f.rowid LIMIT :limit"
    )
    params: dict[str, Any] = {"q": expression, "cid": collection_id, "limit": limit}
    if ids is not None:
        params["ids"] = json.dumps(ids)
    return [(int(aid), float(r)) for aid, r in s.execute(sql, params)]


# PostgreSQL ---------------------------------------------------------------------------------------

def _tsquery(parsed: TextQuery, op: str) -> str:
    # Terms hold only letters and digits; quoted, each is one literal lexeme (or a phrase of the parts
    # PostgreSQL's parser finds in it), never an operator.
    last = len(parsed.terms) - 1
    parts = [f"('{t}' | '{t}':*)" if parsed.prefix and i == last else f"'{t}'"
             for i, t in enumerate(parsed.terms)]
    return f" {op} ".join(parts)


# ts_rank_cd's weight array runs D, C, B, A; D is unused
_PG_WEIGHTS = [0.1, FIELD_WEIGHTS["ocr"], FIELD_WEIGHTS["caption"], FIELD_WEIGHTS["tags"]]


def _match_pg(s: Session, collection_id: int, parsed: TextQuery, limit: int,
              ids: list[int] | None) -> list[tuple[int, float]]:
    restrict = " AND t.asset_id = ANY(:ids)" if ids is not None else ""
    sql = text(
        "SELECT t.asset_id, t.tsv @@ q_all AS all_terms, "
        "ts_rank_cd(CAST(:weights AS float4[]), t.tsv, q_any, 1) AS r "
        "FROM asset_text AS t, to_tsquery('simple', :any) AS q_any, to_tsquery('simple', :all) AS q_all "
        f"WHERE t.collection_id = :cid AND t.tsv @@ q_any{restrict} "
        "ORDER BY all_terms DESC, r DESC, t.asset_id LIMIT :limit"
    )
    params: dict[str, Any] = {"weights": _PG_WEIGHTS, "any": _tsquery(parsed, "|"),
                              "all": _tsquery(parsed, "&"), "cid": collection_id, "limit": limit}
    if ids is not None:
        params["ids"] = ids
    rows = s.execute(sql, params)
    return [(int(aid), _relevance_score(bool(all_terms), float(r))) for aid, all_terms, r in rows]


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
