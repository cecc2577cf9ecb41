"""Qdrant backend for scale-out: a Qdrant server holds the vectors and the filter payloads.

Layout
------
One Qdrant collection per photoindex collection (`<prefix><collection name>`, prefix
"photoindex_" by default), one *named vector* per model (the model name with characters outside
`[A-Za-z0-9_.-]` replaced by "_"). Point id = asset id. The payload carries what the filters need:

- `taken_ts`: capture time as seconds since 1970 of the naive wall-clock time (wall clock read as
  if it were UTC: date filters compare wall-clock times, like the catalog), float index;
  `taken_at`: the same time as an ISO string, for people and for `scroll`;
- `camera`: "Make Model" as stored; `camera_lc`: its lowercase form, keyword index;
- `paths`: the present files' paths; `dirs`: every ancestor folder of every path ("/", "/a",
  "/a/b" for "/a/b/c.jpg"), keyword index, so a path_prefix filter is one exact keyword match and
  "/a/b" never matches "/a/bc".

Several models in one collection (the named-vector question)
------------------------------------------------------------
Qdrant used to require every named vector at collection creation (qdrant#1132). Qdrant 1.18
added `PUT /collections/{name}/vectors/{vector}` and qdrant-client (1.20 here) exposes it as
`create_vector_name`; local mode supports it too. So a model added later is a new named vector on
the existing collection, created on its first upsert; payloads are stored once per asset, not once
per model. A server older than 1.18 refuses that call: we report BACKEND_UNAVAILABLE with a hint
(upgrade the server, or drop the Qdrant collection and re-sync it from the catalog with every
model present from the start), rather than silently rebuilding a large collection.

Because a point holds several models' vectors, writes never replace whole points: new points are
inserted payload-only with `update_mode=insert_only` (a concurrent writer of another model cannot
be overwritten), then this model's vectors are set with `update_vectors`, and payloads of points
that already existed are refreshed with `set_payload`, all in one `batch_update_points` request
per batch. `delete` removes this model's vector and then the points left with no vector at all.
Those operations need a server >= 1.17 (`update_mode`) and >= 1.13 (`has_vector` filters): in all,
this backend wants Qdrant server >= 1.18, the version the named-vector API above arrived in.

Camera filter
-------------
The catalog matches a case-insensitive substring of "Make Model". Qdrant's full-text match is
token based, not substring based, so instead: the distinct `camera_lc` values are listed with the
facet API (served by the keyword index; a library has few cameras), the substring test runs here,
and the query filters on `camera_lc` being one of the matching values: the same semantics as the
exact backend, served by an index. If there are more distinct cameras than `camera_facet_limit`,
it falls back to Qdrant's `MatchSubstring` on `camera_lc` (same semantics; a newer condition
than the rest, from the qdrant-client 1.20 API, so older servers reject it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ApiException

from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.schemas import SearchFilters
from photoindex.store.vectors import (
    VectorIndex,
    VectorPayload,
    VectorRecord,
    VectorSpace,
    as_query_vector,
)

if TYPE_CHECKING:
    from photoindex.config import Settings

_EPOCH = datetime(1970, 1, 1)
_VECTOR_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")
_DISTANCES = {"Cosine": qm.Distance.COSINE, "Dot": qm.Distance.DOT, "Euclid": qm.Distance.EUCLID}

try:  # gRPC errors exist only when grpcio is installed (prefer_grpc clients)
    from grpc import RpcError as _RpcError
except ImportError:  # pragma: no cover
    _RpcError = ApiException  # type: ignore[misc,assignment]

_BACKEND_ERRORS: tuple[type[BaseException], ...] = (ApiException, _RpcError, OSError, ValueError, RuntimeError)
try:
    import httpx

    _BACKEND_ERRORS += (httpx.HTTPError,)
except ImportError:  # pragma: no cover
    pass


class _NothingMatches(Exception):
    """A filter no point can satisfy (e.g. no camera of the collection contains the text)."""


def vector_name(model: str) -> str:
    """The named vector of a model: the model name with unusual characters replaced by '_'."""
    return _VECTOR_NAME_RE.sub("_", model) or "_"


def wall_clock_ts(value: datetime) -> float:
    """Seconds since 1970 of a wall-clock time (any UTC offset is dropped, not applied)."""
    return (value.replace(tzinfo=None) - _EPOCH).total_seconds()


def ancestor_dirs(paths: Sequence[str]) -> list[str]:
    """Every folder above every path: "/a/b/c.jpg" gives "/", "/a", "/a/b"."""
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if path.startswith("/"):
            out.add("/")
        for i in range(1, len(parts) - 1):
            folder = "/".join(parts[: i + 1])
            if folder and folder != "/":
                out.add(folder)
    return sorted(out)


def folder_key(prefix: str) -> str:
    """A path_prefix filter as the `dirs` value it must match."""
    return prefix.rstrip("/") or "/"


def payload_dict(payload: VectorPayload) -> dict[str, Any]:
    taken = payload.taken_at.replace(tzinfo=None) if payload.taken_at is not None else None
    return {
        "taken_at": taken.isoformat() if taken is not None else None,
        "taken_ts": wall_clock_ts(taken) if taken is not None else None,
        "camera": payload.camera,
        "camera_lc": payload.camera.lower() if payload.camera else None,
        "paths": list(payload.paths),
        "dirs": ancestor_dirs(payload.paths),
    }


def payload_from_dict(data: dict[str, Any] | None) -> VectorPayload | None:
    if not data:
        return None
    taken = data.get("taken_at")
    return VectorPayload(
        taken_at=datetime.fromisoformat(taken) if taken else None,
        camera=data.get("camera"),
        paths=tuple(data.get("paths") or ()),
    )


class QdrantIndex(VectorIndex):
    """Vectors and filter payloads in Qdrant (see the module docstring for the layout)."""

    stores_vectors = True
    camera_facet_limit = 10_000

    def __init__(
        self,
        client: QdrantClient,
        *,
        distance: str = "Cosine",
        upsert_batch_size: int = 256,
        prefix: str = "photoindex_",
        expected_dim: int | None = None,
        owns_client: bool = True,
    ) -> None:
        if distance not in _DISTANCES:
            raise PhotoindexError(
                f"unknown Qdrant distance {distance!r}", code=ErrorCode.CONFIG_INVALID,
                hint="use Cosine, Dot or Euclid",
            )
        self.client = client
        self.distance = distance
        self.upsert_batch_size = max(1, int(upsert_batch_size))
        self.prefix = prefix
        self.expected_dim = expected_dim
        self._owns_client = owns_client
        self._known: dict[str, dict[str, int]] = {}  # collection → {vector name: size}, as seen
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> QdrantIndex:
        return cls(
            build_client(settings),
            distance=settings.qdrant_distance,
            upsert_batch_size=settings.qdrant_upsert_batch_size,
            expected_dim=settings.qdrant_vector_size,
        )

    # -- names and errors -------------------------------------------------------------------------
    def collection_name(self, collection: str) -> str:
        return f"{self.prefix}{collection}"

    @contextmanager
    def _errors(self, action: str, collection: str | None = None) -> Iterator[None]:
        """Qdrant and transport errors as BACKEND_UNAVAILABLE; a failure on a collection also forgets
        what we knew about it (it may have been dropped or changed by another process)."""
        try:
            yield
        except PhotoindexError:
            if collection is not None:
                self._known.pop(collection, None)
            raise
        except _BACKEND_ERRORS as exc:
            if collection is not None:
                self._known.pop(collection, None)
            raise PhotoindexError(
                f"Qdrant could not {action}: {exc}",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint="check that the Qdrant server is running and reachable (qdrant_url, or qdrant_host "
                "and qdrant_port, and qdrant_api_key), or set vector_backend = 'exact'",
            ) from exc

    # -- collections and vector names ---------------------------------------------------------------
    def _vectors_of(self, name: str) -> dict[str, int] | None:
        """{vector name: size} of an existing collection, None when it does not exist."""
        with self._errors(f"read collection {name!r}"):
            if not self.client.collection_exists(name):
                return None
            params = self.client.get_collection(name).config.params.vectors
        if not isinstance(params, dict):
            raise PhotoindexError(
                f"Qdrant collection {name!r} has a single unnamed vector; photoindex needs named vectors",
                code=ErrorCode.CONFIG_INVALID,
                hint="drop that Qdrant collection (it is rebuilt from the catalog) or use another prefix",
            )
        return {key: int(p.size) for key, p in params.items()}

    def _lookup(self, space: VectorSpace) -> tuple[str, str] | None:
        """(collection, vector name) when the space exists in Qdrant, else None (read paths)."""
        name, vname = self.collection_name(space.collection), vector_name(space.model)
        known = self._known.get(name)
        if known is None or vname not in known:
            known = self._vectors_of(name)
            if known is None:
                return None
            self._known[name] = known
        if vname not in known:
            return None
        self._check_size(space, known[vname])
        return name, vname

    def _check_size(self, space: VectorSpace, size: int) -> None:
        if size != space.dim:
            raise PhotoindexError(
                f"Qdrant vector {vector_name(space.model)!r} of collection {space.collection!r} has size "
                f"{size}, the model gives {space.dim}",
                code=ErrorCode.DIMENSION_MISMATCH,
                hint="drop the Qdrant collection and re-sync it from the catalog",
            )

    def _ensure(self, space: VectorSpace) -> tuple[str, str]:
        """Create the collection or the model's named vector when missing (write paths)."""
        if self.expected_dim is not None and self.expected_dim != space.dim:
            raise PhotoindexError(
                f"model {space.model!r} gives {space.dim}-d vectors, qdrant_vector_size says {self.expected_dim}",
                code=ErrorCode.DIMENSION_MISMATCH,
                hint="fix qdrant_vector_size (QDRANT_VECTOR_SIZE) or unset it",
            )
        found = self._lookup(space)
        if found is not None:
            return found
        name, vname = self.collection_name(space.collection), vector_name(space.model)
        with self._lock:  # one creator per process; other processes are handled by re-reading
            known = self._vectors_of(name)
            if known is None:
                self._create_collection(name, vname, space.dim)
            elif vname not in known:
                self._add_vector(name, vname, space.dim)
            known = self._vectors_of(name) or {}
            if vname not in known:
                raise PhotoindexError(
                    f"Qdrant collection {name!r} has no vector {vname!r} after creating it",
                    code=ErrorCode.BACKEND_UNAVAILABLE,
                )
            self._known[name] = known
        self._check_size(space, known[vname])
        return name, vname

    def _create_collection(self, name: str, vname: str, dim: int) -> None:
        params = {vname: qm.VectorParams(size=dim, distance=_DISTANCES[self.distance])}
        try:
            with self._errors(f"create collection {name!r}"):
                self.client.create_collection(name, vectors_config=params)
        except PhotoindexError:
            if self._vectors_of(name) is None:  # not a lost race with another process
                raise
            return
        with self._errors(f"create payload indexes on {name!r}"):
            for field_name, schema in (
                ("taken_ts", qm.PayloadSchemaType.FLOAT),
                ("camera_lc", qm.PayloadSchemaType.KEYWORD),
                ("dirs", qm.PayloadSchemaType.KEYWORD),
            ):
                self.client.create_payload_index(name, field_name, field_schema=schema, wait=True)

    def _add_vector(self, name: str, vname: str, dim: int) -> None:
        config = qm.DenseVectorNameConfig(
            dense=qm.DenseVectorConfig(size=dim, distance=_DISTANCES[self.distance])
        )
        try:
            self.client.create_vector_name(name, vname, config, wait=True)
        except _BACKEND_ERRORS as exc:
            known = self._vectors_of(name) or {}
            if vname in known:  # another process added it first
                return
            raise PhotoindexError(
                f"cannot add vector {vname!r} to Qdrant collection {name!r}: {exc}",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint="adding a model to an existing collection needs Qdrant server >= 1.18; upgrade it, or "
                "drop the Qdrant collection and re-sync it from the catalog",
            ) from exc

    # -- filters ------------------------------------------------------------------------------------
    def _filter(self, name: str, filters: SearchFilters | None, exclude: Sequence[int]) -> qm.Filter | None:
        """The Qdrant filter (None: nothing to filter). Raises _NothingMatches when no point can match."""
        must: list[Any] = []
        if filters is not None:
            if filters.date_from is not None or filters.date_to is not None:
                must.append(qm.FieldCondition(key="taken_ts", range=qm.Range(
                    gte=wall_clock_ts(filters.date_from) if filters.date_from is not None else None,
                    lte=wall_clock_ts(filters.date_to) if filters.date_to is not None else None,
                )))
            if filters.camera:
                camera = self._camera_condition(name, filters.camera.lower())
                if camera is None:
                    raise _NothingMatches
                must.append(camera)
            if filters.path_prefix:
                must.append(qm.FieldCondition(key="dirs", match=qm.MatchValue(value=folder_key(filters.path_prefix))))
            if filters.asset_ids is not None:  # the search service resolves catalog-only filters to ids
                if not filters.asset_ids:
                    raise _NothingMatches
                must.append(qm.HasIdCondition(has_id=[int(i) for i in filters.asset_ids]))
        excluded: list[qm.ExtendedPointId] = [int(i) for i in exclude]
        must_not: list[Any] = [qm.HasIdCondition(has_id=excluded)] if excluded else []
        if not must and not must_not:
            return None
        return qm.Filter(must=must or None, must_not=must_not or None)

    def _camera_condition(self, name: str, needle: str) -> qm.FieldCondition | None:
        with self._errors(f"list the cameras of {name!r}", name):
            hits = self.client.facet(name, key="camera_lc", limit=self.camera_facet_limit).hits
        if len(hits) >= self.camera_facet_limit:  # maybe truncated: let the server test substrings
            return qm.FieldCondition(key="camera_lc", match=qm.MatchSubstring(substring=needle))
        values = sorted(str(h.value) for h in hits if needle in str(h.value))
        if not values:  # no camera of the collection matches
            return None
        return qm.FieldCondition(key="camera_lc", match=qm.MatchAny(any=values))

    # -- VectorIndex --------------------------------------------------------------------------------
    def upsert(self, space: VectorSpace, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        vectors = {r.asset_id: as_query_vector(r.vector, space.dim) for r in records}  # checks sizes
        name, vname = self._ensure(space)
        latest = list({r.asset_id: r for r in records}.values())  # the last record of an asset wins
        for start in range(0, len(latest), self.upsert_batch_size):
            batch = latest[start : start + self.upsert_batch_size]
            ids = [int(r.asset_id) for r in batch]
            with self._errors(f"write {len(batch)} vectors to {name!r}", name):
                existing = {int(p.id) for p in self.client.retrieve(name, ids, with_payload=False, with_vectors=False)}
                ops: list[Any] = []
                new = [
                    qm.PointStruct(id=int(r.asset_id), vector={},
                                   payload=payload_dict(r.payload) if r.payload is not None else {})
                    for r in batch if r.asset_id not in existing
                ]
                if new:
                    ops.append(qm.UpsertOperation(upsert=qm.PointsList(points=new, update_mode=qm.UpdateMode.INSERT_ONLY)))
                ops.append(qm.UpdateVectorsOperation(update_vectors=qm.UpdateVectors(points=[
                    qm.PointVectors(id=int(r.asset_id), vector={vname: vectors[r.asset_id].tolist()}) for r in batch
                ])))
                ops.extend(
                    qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=payload_dict(r.payload),
                                                                     points=[int(r.asset_id)]))
                    for r in batch if r.asset_id in existing and r.payload is not None
                )
                self.client.batch_update_points(name, ops, wait=True)

    def delete(self, space: VectorSpace, asset_ids: Sequence[int]) -> None:
        ids: list[qm.ExtendedPointId] = sorted({int(i) for i in asset_ids})
        found = self._lookup(space)
        if not ids or found is None:
            return
        name, vname = found
        # read the vector names afresh: another process may have added a model since we looked
        vnames = list(self._vectors_of(name) or {vname: space.dim})
        with self._errors(f"delete vectors from {name!r}", name):
            for start in range(0, len(ids), self.upsert_batch_size):
                chunk = ids[start : start + self.upsert_batch_size]
                self.client.delete_vectors(name, vectors=[vname], points=qm.PointIdsList(points=chunk), wait=True)
                # points that no model has a vector for any more go away with their payload
                self.client.delete(name, points_selector=qm.FilterSelector(filter=qm.Filter(
                    must=[qm.HasIdCondition(has_id=chunk)],
                    must_not=[qm.HasVectorCondition(has_vector=v) for v in vnames],
                )), wait=True)

    def search(
        self,
        space: VectorSpace,
        vector: np.ndarray,
        k: int = 20,
        filters: SearchFilters | None = None,
        *,
        exclude: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        q = as_query_vector(vector, space.dim)
        found = self._lookup(space)
        if k <= 0 or found is None:
            return []
        name, vname = found
        try:
            query_filter = self._filter(name, filters, exclude)
        except _NothingMatches:
            return []
        try:
            with self._errors(f"search {name!r}", name):
                points = self.client.query_points(
                    name, query=q.tolist(), using=vname, limit=int(k), query_filter=query_filter,
                    with_payload=False, with_vectors=False,
                ).points
        except PhotoindexError:
            if self._lookup(space) is None:  # dropped meanwhile (by another process): nothing to find
                return []
            raise
        return [(int(p.id), float(p.score)) for p in points]

    def count(self, space: VectorSpace) -> int:
        found = self._lookup(space)
        if found is None:
            return 0
        name, vname = found
        with self._errors(f"count points of {name!r}", name):
            result = self.client.count(
                name, count_filter=qm.Filter(must=[qm.HasVectorCondition(has_vector=vname)]), exact=True
            )
        return int(result.count)

    def scroll(self, space: VectorSpace, batch_size: int = 1000) -> Iterator[list[VectorRecord]]:
        found = self._lookup(space)
        if found is None:
            return
        name, vname = found
        has_vector = qm.Filter(must=[qm.HasVectorCondition(has_vector=vname)])
        offset: Any = None
        while True:
            with self._errors(f"scroll {name!r}", name):
                points, offset = self.client.scroll(
                    name, scroll_filter=has_vector, limit=max(1, int(batch_size)), offset=offset,
                    with_payload=True, with_vectors=[vname],
                )
            batch = []
            for p in points:
                vec = p.vector.get(vname) if isinstance(p.vector, dict) else None
                if vec is None:
                    continue
                batch.append(VectorRecord(int(p.id), np.asarray(vec, dtype=np.float32), payload_from_dict(p.payload)))
            if batch:
                yield batch
            if offset is None:
                return

    def drop_collection(self, collection_id: int, collection: str) -> None:
        name = self.collection_name(collection)
        with self._errors(f"delete collection {name!r}"):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)
        self._known.pop(name, None)

    def close(self) -> None:
        self._known.clear()
        if self._owns_client:
            with self._errors("close the connection"):
                self.client.close()


def build_client(settings: Settings) -> QdrantClient:
    """A client for the configured server: qdrant_url (":memory:" gives the in-process test double),
    else qdrant_host (default localhost) and qdrant_port; qdrant_api_key when set."""
    url = settings.qdrant_url
    try:
        if url == ":memory:":
            return QdrantClient(location=":memory:")
        if url:
            return QdrantClient(url=url, api_key=settings.qdrant_api_key)
        return QdrantClient(host=settings.qdrant_host or "localhost", port=settings.qdrant_port,
                            api_key=settings.qdrant_api_key)
    except _BACKEND_ERRORS as exc:
        raise PhotoindexError(
            f"cannot set up the Qdrant client: {exc}",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            hint="check qdrant_url (or qdrant_host / qdrant_port) and qdrant_api_key",
        ) from exc
