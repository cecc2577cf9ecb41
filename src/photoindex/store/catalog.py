"""The catalog: collections, assets, files, embeddings and jobs in SQLite (WAL) or PostgreSQL.

All writes go through a few batched methods so that the ingest pipeline commits hundreds of files
per transaction. Every method opens its own short transaction; `Catalog` objects are safe to share
between threads (SQLAlchemy pools connections), and each process opens its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, and_, case, create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from photoindex.errors import CatalogError, ErrorCode
from photoindex.schemas import AssetInfo, CollectionInfo, ExifInfo, FileInfo, SearchFilters
from photoindex.store.models import Asset, AssetTag, AssetText, Collection, Embedding, File, Job, Setting, VectorSpace, utcnow

ACTIVE_COLLECTION_KEY = "active_collection"
DEFAULT_COLLECTION = "default"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CHUNK = 500  # bound on IN (...) lists; SQLite's variable limit is far above this


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def folder_range(folder: str) -> tuple[str, str]:
    """Bounds such that lo <= path < hi exactly when path lies below `folder` ('0' follows '/')."""
    base = folder.rstrip("/")
    return base + "/", base + "0"


@dataclass(frozen=True)
class FileState:
    id: int
    asset_id: int
    size: int
    mtime_ns: int
    missing: bool


@dataclass(frozen=True)
class NewAsset:
    sha256: str
    sha1: str
    bytes: int
    mime: str
    width: int
    height: int
    exif: ExifInfo


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class ModelVectors:
    """Vectors of one model keyed by content hash (asset ids are only known inside the commit)."""

    model: str
    revision: str
    by_sha256: dict[str, np.ndarray]


@dataclass(frozen=True)
class VectorChunk:
    ids: np.ndarray  # int64 asset ids
    vectors: np.ndarray  # float32 [N, D]
    last_id: int  # highest embedding row id included


def _exif_columns(exif: ExifInfo) -> dict[str, Any]:
    taken, offset = exif.taken_at, None
    if taken is not None and taken.tzinfo is not None:
        delta = taken.utcoffset()
        offset = int(delta.total_seconds() // 60) if delta is not None else None
        taken = taken.replace(tzinfo=None)
    return {
        "taken_at": taken,
        "tz_offset_min": offset,
        "camera": exif.camera,
        "lens": exif.lens,
        "gps_lat": exif.gps_lat,
        "gps_lon": exif.gps_lon,
        "gps_alt": exif.gps_alt,
        "exif": exif.model_dump(mode="json", exclude_none=True),
    }


def _taken_at(asset: Asset) -> datetime | None:
    if asset.taken_at is None or asset.tz_offset_min is None:
        return asset.taken_at
    return asset.taken_at.replace(tzinfo=timezone(timedelta(minutes=asset.tz_offset_min)))


def _asset_info(asset: Asset, files: Iterable[File] = (), models: Iterable[str] = ()) -> AssetInfo:
    return AssetInfo(
        id=asset.id,
        collection_id=asset.collection_id,
        sha256=asset.sha256,
        sha1=asset.sha1,
        bytes=asset.bytes,
        mime=asset.mime,
        width=asset.width,
        height=asset.height,
        taken_at=_taken_at(asset),
        camera=asset.camera,
        lens=asset.lens,
        gps_lat=asset.gps_lat,
        gps_lon=asset.gps_lon,
        exif=asset.exif or {},
        status=asset.status,
        files=[FileInfo.model_validate(f) for f in sorted(files, key=lambda f: (f.missing, f.path))],
        embedded_models=sorted(models),
        quality=asset.quality,
        aesthetic=asset.aesthetic,
        has_text=asset.has_text,
    )


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Catalog:
        """Connect, and bring the schema to the newest migration (idempotent, cheap when current)."""
        parsed = make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = create_engine(url, **kwargs)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            catalog = cls(engine)
            if migrate:
                catalog.migrate()
        except CatalogError:
            raise
        except Exception as exc:  # driver errors: unreachable server, bad credentials, unwritable file
            raise CatalogError(
                f"cannot open the catalog at {parsed.render_as_string(hide_password=True)}: {exc}",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint="check PHOTOINDEX_CATALOG_URL (or catalog_url in config.toml) and that the database is reachable",
            ) from exc
        return catalog

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("photoindex.store") / "migrations"))
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Several processes may open a fresh catalog at once; one migrates, the others wait.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7291843)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- collections ------------------------------------------------------------------------------
    def create_collection(
        self, name: str, *, vector_size: int | None = None, distance: str = "Cosine", model: str | None = None
    ) -> CollectionInfo:
        if not _NAME_RE.match(name):
            raise CatalogError(
                f"invalid collection name {name!r}",
                code=ErrorCode.INVALID_NAME,
                hint="use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit",
            )
        with self.session() as s:
            if s.scalar(select(Collection.id).where(Collection.name == name)) is not None:
                raise CatalogError(f"collection {name!r} already exists", code=ErrorCode.COLLECTION_EXISTS)
            row = Collection(name=name, vector_size=vector_size, distance=distance, model=model, options={})
            s.add(row)
            s.flush()
            return self._collection_info(s, row)

    def list_collections(self) -> list[CollectionInfo]:
        with self.session() as s:
            counts = dict(s.execute(select(Asset.collection_id, func.count()).group_by(Asset.collection_id)).all())
            active = self._active_name(s)
            return [
                CollectionInfo(
                    id=c.id, name=c.name, created_at=c.created_at, vector_size=c.vector_size,
                    distance=c.distance, model=c.model, active=c.name == active, asset_count=counts.get(c.id, 0),
                    options=c.options or {},
                )
                for c in s.scalars(select(Collection).order_by(Collection.name))
            ]

    def get_collection(self, name: str) -> CollectionInfo:
        with self.session() as s:
            return self._collection_info(s, self._collection_row(s, name))

    def update_collection(self, name: str, *, vector_size: int | None = None, model: str | None = None) -> None:
        with self.session() as s:
            row = self._collection_row(s, name)
            if vector_size is not None:
                row.vector_size = vector_size
            if model is not None:
                row.model = model

    def set_collection_options(self, name: str, **options: Any) -> CollectionInfo:
        """Merge options (e.g. `enrichers`, `extra_models`) into a collection's; None removes one."""
        with self.session() as s:
            row = self._collection_row(s, name)
            merged = {**(row.options or {}), **options}
            row.options = {k: v for k, v in merged.items() if v is not None}
            s.flush()
            return self._collection_info(s, row)

    def get_setting(self, key: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(Setting, key)
            return dict(row.value) if row else None

    def put_setting(self, key: str, value: dict[str, Any] | None) -> None:
        with self.session() as s:
            if value is None:
                s.execute(delete(Setting).where(Setting.key == key))
            else:
                s.merge(Setting(key=key, value=value))

    def delete_collection(self, name: str) -> None:
        with self.session() as s:
            row = self._collection_row(s, name)
            # Bulk deletes in dependency order: faster than ORM cascades and right on both backends.
            for table in (VectorSpace, Embedding, File, Asset):
                s.execute(delete(table).where(table.collection_id == row.id))
            # Its unfinished jobs cannot finish any more; the history stays, without the collection.
            s.execute(update(Job).where(Job.collection_id == row.id, Job.status.in_(("queued", "running", "paused")))
                      .values(status="cancelled", finished_at=utcnow()))
            s.execute(update(Job).where(Job.collection_id == row.id).values(collection_id=None))
            s.delete(row)
            if self._active_name(s) == name:
                s.execute(delete(Setting).where(Setting.key == ACTIVE_COLLECTION_KEY))

    def select_collection(self, name: str) -> CollectionInfo:
        with self.session() as s:
            row = self._collection_row(s, name)
            s.merge(Setting(key=ACTIVE_COLLECTION_KEY, value={"name": name}))
            return self._collection_info(s, row, active=True)

    def active_collection(self) -> CollectionInfo:
        """The selected collection; a fresh catalog gets a 'default' one, created and selected."""
        with self.session() as s:
            name = self._active_name(s)
            if name is not None:
                row = s.scalar(select(Collection).where(Collection.name == name))
                if row is not None:
                    return self._collection_info(s, row, active=True)
            first = s.scalar(select(Collection).order_by(Collection.id))
            if first is None:
                first = Collection(name=DEFAULT_COLLECTION, distance="Cosine", options={})
                s.add(first)
                s.flush()
            s.merge(Setting(key=ACTIVE_COLLECTION_KEY, value={"name": first.name}))
            return self._collection_info(s, first, active=True)

    def resolve_collection(self, name: str | None) -> CollectionInfo:
        return self.get_collection(name) if name else self.active_collection()

    @staticmethod
    def _active_name(s: Session) -> str | None:
        row = s.get(Setting, ACTIVE_COLLECTION_KEY)
        return row.value.get("name") if row else None

    @staticmethod
    def _collection_row(s: Session, name: str) -> Collection:
        row = s.scalar(select(Collection).where(Collection.name == name))
        if row is None:
            raise CatalogError(
                f"no collection named {name!r}",
                code=ErrorCode.COLLECTION_NOT_FOUND,
                hint="list them with `photoindex collections list` or create it with `photoindex collections create`",
            )
        return row

    def _collection_info(self, s: Session, row: Collection, active: bool | None = None) -> CollectionInfo:
        count = s.scalar(select(func.count()).select_from(Asset).where(Asset.collection_id == row.id)) or 0
        return CollectionInfo(
            id=row.id, name=row.name, created_at=row.created_at, vector_size=row.vector_size,
            distance=row.distance, model=row.model,
            active=active if active is not None else self._active_name(s) == row.name, asset_count=count,
            options=row.options or {},
        )

    # -- ingest -----------------------------------------------------------------------------------
    def file_states(self, collection_id: int, folders: Sequence[str] | None = None) -> dict[str, FileState]:
        """Every known file of the collection (below `folders` when given), keyed by path."""
        cols = (File.path, File.id, File.asset_id, File.size, File.mtime_ns, File.missing)
        out: dict[str, FileState] = {}
        with self.session() as s:
            queries = [select(*cols).where(File.collection_id == collection_id)]
            if folders:
                queries = [
                    select(*cols).where(File.collection_id == collection_id, File.path >= lo, File.path < hi)
                    for lo, hi in map(folder_range, folders)
                ]
            for query in queries:
                for path, *rest in s.execute(query):
                    out[path] = FileState(*rest)
        return out

    def assets_by_sha256(self, collection_id: int, hashes: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.session() as s:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                rows = s.execute(
                    select(Asset.sha256, Asset.id).where(Asset.collection_id == collection_id, Asset.sha256.in_(chunk))
                )
                out.update(dict(rows.all()))
        return out

    def commit_batch(
        self,
        collection_id: int,
        assets: Sequence[NewAsset],
        files: Sequence[FileRecord],
        vectors: ModelVectors | None = None,
    ) -> dict[str, int]:
        """Insert new content, point paths at content, store vectors: one transaction. Idempotent:
        committing the same batch twice changes nothing. Returns sha256 → asset id for every hash
        named by `files` or `vectors`."""
        now = utcnow()
        with self.session() as s:
            if assets:
                rows = [
                    {
                        "collection_id": collection_id, "sha256": a.sha256, "sha1": a.sha1, "bytes": a.bytes,
                        "mime": a.mime, "width": a.width, "height": a.height, "status": "active",
                        "created_at": now, **_exif_columns(a.exif),
                    }
                    for a in {a.sha256: a for a in assets}.values()
                ]
                s.execute(self._insert(Asset).on_conflict_do_nothing(index_elements=["collection_id", "sha256"]), rows)
            hashes = {f.sha256 for f in files} | set(vectors.by_sha256 if vectors else ())
            ids: dict[str, int] = {}
            for chunk in _chunks(sorted(hashes)):
                ids.update(s.execute(select(Asset.sha256, Asset.id).where(
                    Asset.collection_id == collection_id, Asset.sha256.in_(chunk))).all())
            missing = hashes - ids.keys()
            if missing:
                raise CatalogError(f"files refer to unknown content {sorted(missing)[:3]}", code=ErrorCode.ASSET_NOT_FOUND)
            if files:
                rows = [
                    {"collection_id": collection_id, "asset_id": ids[f.sha256], "path": f.path, "size": f.size,
                     "mtime_ns": f.mtime_ns, "seen_at": now, "missing": False}
                    for f in {f.path: f for f in files}.values()
                ]
                stmt = self._insert(File)
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["collection_id", "path"],
                        set_={k: stmt.excluded[k] for k in ("asset_id", "size", "mtime_ns", "seen_at", "missing")},
                    ),
                    rows,
                )
                # content archived earlier that is back in the library (copied back by hand) is live again
                s.execute(update(Asset).where(Asset.id.in_({ids[f.sha256] for f in files}),
                                              Asset.status == "archived").values(status="active"))
            if vectors and vectors.by_sha256:
                self._put_vectors(s, collection_id, vectors.model, vectors.revision,
                                  {ids[h]: v for h, v in vectors.by_sha256.items()})
        return ids

    def set_missing(self, file_ids: Sequence[int], missing: bool = True) -> None:
        with self.session() as s:
            for chunk in _chunks(list(file_ids)):
                s.execute(update(File).where(File.id.in_(chunk)).values(missing=missing, seen_at=utcnow()))

    def delete_files(self, file_ids: Sequence[int]) -> None:
        with self.session() as s:
            for chunk in _chunks(list(file_ids)):
                s.execute(delete(File).where(File.id.in_(chunk)))

    # -- embeddings -------------------------------------------------------------------------------
    def put_vectors(self, collection_id: int, model: str, revision: str, by_asset: dict[int, np.ndarray]) -> None:
        with self.session() as s:
            self._put_vectors(s, collection_id, model, revision, by_asset)

    def _put_vectors(self, s: Session, collection_id: int, model: str, revision: str,
                     by_asset: dict[int, np.ndarray]) -> None:
        asset_ids = list(by_asset)
        replaced = 0
        for chunk in _chunks(asset_ids):
            replaced += s.execute(delete(Embedding).where(Embedding.model == model,
                                                          Embedding.asset_id.in_(chunk))).rowcount
        now = utcnow()
        rows = []
        for asset_id, vec in by_asset.items():
            arr = np.ascontiguousarray(vec, dtype="<f4").ravel()
            rows.append({"asset_id": asset_id, "collection_id": collection_id, "model": model, "revision": revision,
                         "dim": int(arr.shape[0]), "vector": arr.tobytes(), "created_at": now})
        if rows:
            s.execute(self._insert(Embedding), rows)
        self._count_space(s, collection_id, model, len(rows) - replaced)

    def _count_space(self, s: Session, collection_id: int, model: str, delta: int) -> None:
        """Apply a row-count change to a space's counters, in the caller's transaction. The increment
        and the max are computed by the database, so concurrent writers on PostgreSQL add up."""
        top = s.scalar(select(func.coalesce(func.max(Embedding.id), 0)).where(
            Embedding.collection_id == collection_id, Embedding.model == model)) or 0
        stmt = self._insert(VectorSpace).values(collection_id=collection_id, model=model, rows=delta, top_id=top)
        bigger = func.greatest if self.dialect == "postgresql" else func.max  # SQLite's max() of two values
        s.execute(stmt.on_conflict_do_update(
            index_elements=["collection_id", "model"],
            set_={"rows": VectorSpace.rows + stmt.excluded.rows,
                  "top_id": bigger(VectorSpace.top_id, stmt.excluded.top_id)},
        ))

    def delete_vectors(self, asset_ids: Sequence[int], model: str | None = None) -> None:
        """Remove vectors of these assets (of one model, or all). In-memory indexes notice the lower
        row count and reload."""
        with self.session() as s:
            for chunk in _chunks(list(asset_ids)):
                cond = [Embedding.asset_id.in_(chunk)] + ([Embedding.model == model] if model else [])
                counts = s.execute(select(Embedding.collection_id, Embedding.model, func.count())
                                   .where(*cond).group_by(Embedding.collection_id, Embedding.model)).all()
                s.execute(delete(Embedding).where(*cond))
                for collection_id, space_model, n in counts:
                    self._count_space(s, collection_id, space_model, -int(n))

    def vectors_by_sha256(self, hashes: Sequence[str], model: str, revision: str) -> dict[str, np.ndarray]:
        """Vectors already computed for this content by this model revision, in any collection."""
        out: dict[str, np.ndarray] = {}
        with self.session() as s:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                rows = s.execute(
                    select(Asset.sha256, Embedding.vector)
                    .join(Embedding, Embedding.asset_id == Asset.id)
                    .where(Asset.sha256.in_(chunk), Embedding.model == model, Embedding.revision == revision)
                )
                for sha, blob in rows:
                    out.setdefault(sha, np.frombuffer(blob, dtype="<f4"))
        return out

    def assets_needing_vectors(self, collection_id: int, model: str, revision: str) -> list[tuple[int, str]]:
        """(asset id, sha256) of active assets with no vector from this model revision."""
        with self.session() as s:
            have = select(Embedding.asset_id).where(
                Embedding.collection_id == collection_id, Embedding.model == model, Embedding.revision == revision
            )
            rows = s.execute(
                select(Asset.id, Asset.sha256)
                .where(Asset.collection_id == collection_id, Asset.status == "active", Asset.id.not_in(have))
                .order_by(Asset.id)
            )
            return [(int(i), h) for i, h in rows]

    def count_assets_needing_vectors(self, collection_id: int, model: str, revision: str | None = None) -> int:
        with self.session() as s:
            conds = [Embedding.collection_id == collection_id, Embedding.model == model]
            if revision is not None:
                conds.append(Embedding.revision == revision)
            have = select(Embedding.asset_id).where(*conds)
            return s.scalar(
                select(func.count()).select_from(Asset).where(
                    Asset.collection_id == collection_id, Asset.status == "active", Asset.id.not_in(have))
            ) or 0

    def get_vector(self, asset_id: int, model: str) -> np.ndarray | None:
        with self.session() as s:
            blob = s.scalar(select(Embedding.vector).where(Embedding.asset_id == asset_id, Embedding.model == model))
        return None if blob is None else np.frombuffer(blob, dtype="<f4").copy()

    def has_texts(self, collection_id: int) -> bool:
        """Whether any asset has searchable words (captions, OCR text, tags): one index probe, since
        every text search asks."""
        with self.session() as s:
            first = s.scalar(select(AssetText.asset_id).where(AssetText.collection_id == collection_id).limit(1))
        return first is not None

    def get_vectors(self, asset_ids: Sequence[int], model: str) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with self.session() as s:
            for chunk in _chunks(list(asset_ids)):
                rows = s.execute(select(Embedding.asset_id, Embedding.vector).where(
                    Embedding.asset_id.in_(chunk), Embedding.model == model))
                out.update({int(a): np.frombuffer(blob, dtype="<f4").copy() for a, blob in rows})
        return out

    def load_vectors(self, collection_id: int, model: str, after_id: int = 0) -> VectorChunk:
        """Vectors of one space whose row id is above `after_id` (incremental refresh of in-memory indexes)."""
        with self.session() as s:
            rows = s.execute(
                select(Embedding.id, Embedding.asset_id, Embedding.vector)
                .where(Embedding.collection_id == collection_id, Embedding.model == model, Embedding.id > after_id)
                .order_by(Embedding.id)
            ).all()
        if not rows:
            return VectorChunk(np.empty(0, np.int64), np.empty((0, 0), np.float32), after_id)
        ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return VectorChunk(ids, vectors.astype(np.float32, copy=False), int(rows[-1][0]))

    def vector_space_state(self, collection_id: int, model: str) -> tuple[int, int]:
        """(row count, highest row id) of one space: enough to tell whether a loaded copy is current.
        Read from the space's counters: one primary-key lookup, however large the space."""
        with self.session() as s:
            row = s.execute(select(VectorSpace.rows, VectorSpace.top_id).where(
                VectorSpace.collection_id == collection_id, VectorSpace.model == model)).one_or_none()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def filter_asset_ids(self, collection_id: int, filters: SearchFilters) -> np.ndarray:
        """Active assets matching the filters, as sorted int64 ids."""
        conds: list[Any] = [Asset.collection_id == collection_id, Asset.status == "active"]
        if filters.date_from is not None:
            conds.append(Asset.taken_at >= filters.date_from.replace(tzinfo=None))
        if filters.date_to is not None:
            conds.append(Asset.taken_at <= filters.date_to.replace(tzinfo=None))
        if filters.camera:
            conds.append(func.lower(Asset.camera).contains(filters.camera.lower(), autoescape=True))
        if filters.path_prefix:
            # Start from the folder's range of the (collection, path) index rather than probing every
            # asset's files: the folder is usually a small part of the library.
            lo, hi = folder_range(filters.path_prefix)
            conds.append(Asset.id.in_(select(File.asset_id).where(
                File.collection_id == collection_id, File.path >= lo, File.path < hi, File.missing.is_(False))))
        for tag in filters.tags:
            conds.append(Asset.id.in_(select(AssetTag.asset_id).where(
                AssetTag.collection_id == collection_id, AssetTag.tag == tag.strip().lower())))
        if filters.has_text is not None:
            conds.append(Asset.has_text.is_(True) if filters.has_text else Asset.has_text.is_not(True))
        if filters.min_quality is not None:
            conds.append(Asset.quality >= filters.min_quality)
        if filters.min_aesthetic is not None:
            conds.append(Asset.aesthetic >= filters.min_aesthetic)
        if filters.asset_ids is not None:
            conds.append(Asset.id.in_([int(i) for i in filters.asset_ids]))
        with self.session() as s:
            ids = s.scalars(select(Asset.id).where(and_(*conds)).order_by(Asset.id)).all()
        return np.asarray(ids, dtype=np.int64)

    # -- reads ------------------------------------------------------------------------------------
    def get_asset(self, asset_id: int) -> AssetInfo:
        found = self.get_assets([asset_id])
        if asset_id not in found:
            raise CatalogError(f"no asset with id {asset_id}", code=ErrorCode.ASSET_NOT_FOUND)
        return found[asset_id]

    def get_assets(self, asset_ids: Sequence[int]) -> dict[int, AssetInfo]:
        out: dict[int, AssetInfo] = {}
        with self.session() as s:
            for chunk in _chunks(list(dict.fromkeys(int(i) for i in asset_ids))):
                assets = s.scalars(select(Asset).where(Asset.id.in_(chunk))).all()
                files: dict[int, list[File]] = {}
                for f in s.scalars(select(File).where(File.asset_id.in_(chunk))):
                    files.setdefault(f.asset_id, []).append(f)
                models: dict[int, list[str]] = {}
                for aid, model in s.execute(select(Embedding.asset_id, Embedding.model).where(Embedding.asset_id.in_(chunk))):
                    models.setdefault(aid, []).append(model)
                for a in assets:
                    out[a.id] = _asset_info(a, files.get(a.id, ()), models.get(a.id, ()))
        return out

    def find_asset_by_path(self, collection_id: int, path: str) -> AssetInfo | None:
        with self.session() as s:
            asset_id = s.scalar(select(File.asset_id).where(File.collection_id == collection_id, File.path == path))
        return None if asset_id is None else self.get_asset(asset_id)

    def find_asset_by_sha256(self, collection_id: int, sha256: str) -> AssetInfo | None:
        found = self.assets_by_sha256(collection_id, [sha256])
        return self.get_asset(found[sha256]) if sha256 in found else None

    def stats(self, collection_id: int) -> dict[str, Any]:
        with self.session() as s:
            assets = s.scalar(select(func.count()).select_from(Asset).where(Asset.collection_id == collection_id))
            files, missing = s.execute(
                select(func.count(), func.coalesce(func.sum(case((File.missing.is_(True), 1), else_=0)), 0))
                .where(File.collection_id == collection_id)
            ).one()
            total_bytes = s.scalar(select(func.coalesce(func.sum(Asset.bytes), 0)).where(Asset.collection_id == collection_id))
            by_model = dict(s.execute(
                select(Embedding.model, func.count()).where(Embedding.collection_id == collection_id)
                .group_by(Embedding.model)).all())
        return {"assets": int(assets or 0), "files": int(files or 0), "missing_files": int(missing or 0),
                "bytes": int(total_bytes or 0), "vectors": {k: int(v) for k, v in by_model.items()}}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and vice versa
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps the file consistent
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
