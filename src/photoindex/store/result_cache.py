"""The versioned result cache: every model output (and every file observation) is written here first,
so the catalog and the vector index can be rebuilt from it without running a model.

Layout, under `Settings.cache_dir`:

    <pipeline-version>/manifest.json            what is here: per kind the schema hash, the models
                                                 and revisions, and every part with its row count,
                                                 size, SHA-256 and state
    <pipeline-version>/<kind>/part-*.parquet    batches of rows (one Parquet file per batch)
    <pipeline-version>/<kind>/diff-*.jsonl      small batches appended as JSON lines (hot folders
                                                 send one file at a time); `compact` folds them
                                                 into Parquet

Every row has the same columns: `key` (the content SHA-256 for model outputs, `collection/path` for
file observations), `model`, `revision`, `seq` (a nanosecond clock: the newest row for a key wins),
`op` (`put` or `drop`), `payload` (the result as JSON) and `vector` (float32 bytes, or null).

Crash safety: a part is announced in the manifest as `writing` before it is written, written to a
temporary name, fsynced and renamed, and only then marked `complete`; a part still `writing` after a
crash is a partial batch that `verify` reports and readers ignore. A diff line is one `write` of a
whole line; a torn last line is skipped. The manifest itself is replaced atomically under a file lock
shared by every process and thread that writes here.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from photoindex.errors import ErrorCode, PhotoindexError

#: Bump when the meaning of a stored result changes; a new version starts an empty cache beside the old.
PIPELINE_VERSION = "1"
#: Batches smaller than this go to the JSON-lines diff instead of a Parquet part of their own.
DIFF_ROWS = 32

SCHEMA = pa.schema([
    ("key", pa.string()),
    ("model", pa.string()),
    ("revision", pa.string()),
    ("seq", pa.int64()),
    ("op", pa.string()),
    ("payload", pa.string()),
    ("vector", pa.binary()),
])


@dataclass(frozen=True)
class CacheRow:
    key: str
    model: str = ""
    revision: str = ""
    payload: dict[str, Any] | None = None
    vector: np.ndarray | None = None
    op: str = "put"
    seq: int = 0


class PartInfo(BaseModel):
    file: str
    rows: int = 0
    bytes: int = 0
    sha256: str | None = None
    state: str = "writing"  # writing | complete
    models: dict[str, list[str]] = Field(default_factory=dict)  # model -> revisions in this part


class KindInfo(BaseModel):
    schema_hash: str
    models: dict[str, list[str]] = Field(default_factory=dict)
    parts: list[PartInfo] = Field(default_factory=list)
    diffs: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    pipeline_version: str = PIPELINE_VERSION
    updated_at: float = 0.0
    kinds: dict[str, KindInfo] = Field(default_factory=dict)


class VerifyProblem(BaseModel):
    kind: str
    file: str
    problem: str  # missing | size | checksum | partial | orphan | unreadable | schema


class VerifyReport(BaseModel):
    root: str
    kinds: dict[str, int] = Field(default_factory=dict, description="rows per kind")
    parts: int = 0
    diffs: int = 0
    problems: list[VerifyProblem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def schema_hash(kind: str) -> str:
    """Identifies the row layout of a kind; a reader refuses parts written under another one."""
    text = json.dumps({"pipeline": PIPELINE_VERSION, "kind": kind, "schema": SCHEMA.to_string()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Clock:
    """Strictly increasing nanosecond sequence numbers across the threads of a process."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, n: int = 1) -> int:
        with self._lock:
            start = max(time.time_ns(), self._last + 1)
            self._last = start + n - 1
            return start


_clock = _Clock()


class ResultCache:
    def __init__(self, root: Path, *, version: str = PIPELINE_VERSION) -> None:
        self.base = Path(root)
        self.root = self.base / version
        self._local = threading.Lock()
        self._tag = f"{socket.gethostname()}-{os.getpid()}"

    # -- manifest --------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> Manifest:
        try:
            return Manifest.model_validate_json(self.manifest_path.read_bytes())
        except FileNotFoundError:
            return Manifest()
        except ValueError as exc:
            raise PhotoindexError(f"the result cache manifest {self.manifest_path} is damaged: {exc}",
                                  code=ErrorCode.CACHE_DAMAGED,
                                  hint="run `photoindex cache verify`; a copy of the cache folder can be restored") from exc

    @contextmanager
    def _locked_manifest(self) -> Iterator[Manifest]:
        """Read-modify-write of the manifest under an exclusive lock (processes: flock; threads: a lock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._local, (self.root / ".lock").open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = self.manifest()
            yield manifest
            manifest.updated_at = time.time()
            tmp = self.manifest_path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(manifest.model_dump_json(indent=1))
            os.replace(tmp, self.manifest_path)

    @staticmethod
    def _kind(manifest: Manifest, kind: str) -> KindInfo:
        info = manifest.kinds.get(kind)
        if info is None:
            info = manifest.kinds[kind] = KindInfo(schema_hash=schema_hash(kind))
        elif info.schema_hash != schema_hash(kind):
            raise PhotoindexError(f"result cache kind {kind!r} was written with another layout",
                                  code=ErrorCode.CACHE_DAMAGED,
                                  hint="bump PIPELINE_VERSION or move the old cache folder away")
        return info

    # -- writing ---------------------------------------------------------------------------------
    def write(self, kind: str, rows: Sequence[CacheRow]) -> None:
        """Append rows durably; returns once they are on disk."""
        if not rows:
            return
        seq = _clock.next(len(rows))
        table = _to_table(rows, seq)
        if len(rows) < DIFF_ROWS:
            self._append_diff(kind, table)
        else:
            self._write_part(kind, table)

    def _write_part(self, kind: str, table: pa.Table) -> None:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        models = _models_of(table)
        with self._locked_manifest() as m:
            info = self._kind(m, kind)
            info.parts.append(PartInfo(file=name, rows=table.num_rows, models=models))
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
        _fsync_dir(folder)
        size, digest = (folder / name).stat().st_size, _file_sha256(folder / name)
        with self._locked_manifest() as m:
            info = self._kind(m, kind)
            for part in info.parts:
                if part.file == name:
                    part.state, part.bytes, part.sha256 = "complete", size, digest
            _merge_models(info.models, models)

    def _append_diff(self, kind: str, table: pa.Table) -> None:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = f"diff-{self._tag}.jsonl"
        with self._locked_manifest() as m:
            info = self._kind(m, kind)
            if name not in info.diffs:
                info.diffs.append(name)
            _merge_models(info.models, _models_of(table))
        lines = "".join(json.dumps(_row_json(r)) + "\n" for r in table.to_pylist())
        with self._local, (folder / name).open("ab") as fh:
            fh.write(lines.encode())
            fh.flush()
            os.fsync(fh.fileno())

    def compact(self, kind: str | None = None) -> int:
        """Fold the JSON-lines diffs of `kind` (default: every kind) into Parquet parts; returns rows moved."""
        moved = 0
        for name in [kind] if kind else list(self.manifest().kinds):
            info = self.manifest().kinds.get(name)
            if info is None or not info.diffs:
                continue
            tables = [t for d in info.diffs if (t := self._read_diff(self.root / name / d)) is not None]
            if tables:
                self._write_part(name, pa.concat_tables(tables))
                moved += sum(t.num_rows for t in tables)
            with self._locked_manifest() as m:
                done = set(info.diffs)
                m.kinds[name].diffs = [d for d in m.kinds[name].diffs if d not in done]
            for d in info.diffs:
                (self.root / name / d).unlink(missing_ok=True)
        return moved

    # -- reading ---------------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        return sorted(self.manifest().kinds)

    def models(self, kind: str) -> dict[str, list[str]]:
        info = self.manifest().kinds.get(kind)
        return dict(info.models) if info else {}

    def _tables(self, kind: str, model: str | None = None) -> Iterator[pa.Table]:
        info = self.manifest().kinds.get(kind)
        if info is None:
            return
        if info.schema_hash != schema_hash(kind):
            raise PhotoindexError(f"result cache kind {kind!r} was written with another layout",
                                  code=ErrorCode.CACHE_DAMAGED, hint="run `photoindex cache verify`")
        for part in info.parts:
            if part.state != "complete" or (model is not None and part.models and model not in part.models):
                continue
            yield pq.read_table(self.root / kind / part.file, schema=SCHEMA)
        for diff in info.diffs:
            table = self._read_diff(self.root / kind / diff)
            if table is not None:
                yield table

    def _read_diff(self, path: Path) -> pa.Table | None:
        rows = []
        try:
            with path.open("rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # a line torn by a crash: never acknowledged, so never relied on
                    rows.append(_row_from_json(json.loads(line)))
        except FileNotFoundError:
            return None
        return pa.Table.from_pylist(rows, schema=SCHEMA) if rows else None

    def keys(self, kind: str, *, model: str, revision: str) -> set[str]:
        """Keys with rows from this model revision (reads only the key columns): lets a run skip
        lookups for content the cache has never seen."""
        out: set[str] = set()
        info = self.manifest().kinds.get(kind)
        if info is None:
            return out
        columns = ["key", "model", "revision"]
        for part in info.parts:
            if part.state != "complete" or (part.models and model not in part.models):
                continue
            table = pq.read_table(self.root / kind / part.file, columns=columns)
            mask = pc.and_(pc.equal(table["model"], model), pc.equal(table["revision"], revision))
            out.update(table.filter(mask)["key"].to_pylist())
        for diff in info.diffs:
            table = self._read_diff(self.root / kind / diff)
            if table is not None:
                mask = pc.and_(pc.equal(table["model"], model), pc.equal(table["revision"], revision))
                out.update(table.filter(mask)["key"].to_pylist())
        return out

    def latest(self, kind: str, *, model: str | None = None, revision: str | None = None,
               keys: Iterable[str] | None = None) -> dict[str, CacheRow]:
        """The newest row per key (for `model`/`revision` when given); keys whose newest row is a drop
        are left out."""
        wanted = set(keys) if keys is not None else None
        best: dict[str, tuple[int, dict[str, Any]]] = {}
        for table in self._tables(kind, model):
            if model is not None:
                table = table.filter(pc.equal(table["model"], model))
            if revision is not None:
                table = table.filter(pc.equal(table["revision"], revision))
            if wanted is not None:
                table = table.filter(pc.is_in(table["key"], value_set=pa.array(list(wanted), pa.string())))
            for row in table.to_pylist():
                prev = best.get(row["key"])
                if prev is None or row["seq"] > prev[0]:
                    best[row["key"]] = (row["seq"], row)
        return {k: _cache_row(r) for k, (_, r) in best.items() if r["op"] == "put"}

    # -- checking --------------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Compare the manifest with the files: sizes, checksums, readability, partial batches, orphans."""
        report = VerifyReport(root=str(self.root))
        manifest = self.manifest()
        for kind, info in manifest.kinds.items():
            folder = self.root / kind
            rows = 0
            if info.schema_hash != schema_hash(kind):
                report.problems.append(VerifyProblem(kind=kind, file="", problem="schema"))
                continue
            listed = {p.file for p in info.parts} | set(info.diffs)
            for part in info.parts:
                path = folder / part.file
                if part.state != "complete":
                    report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="partial"))
                elif not path.is_file():
                    report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="missing"))
                elif path.stat().st_size != part.bytes:
                    report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="size"))
                elif _file_sha256(path) != part.sha256:
                    report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="checksum"))
                else:
                    try:
                        n = pq.ParquetFile(path).metadata.num_rows
                    except Exception:  # pyarrow raises several types for a damaged file
                        report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="unreadable"))
                        continue
                    if n != part.rows:
                        report.problems.append(VerifyProblem(kind=kind, file=part.file, problem="size"))
                    rows += n
                    report.parts += 1
            for diff in info.diffs:
                table = self._read_diff(folder / diff)
                rows += table.num_rows if table is not None else 0
                report.diffs += 1
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.name not in listed and not path.name.startswith("."):
                        report.problems.append(VerifyProblem(kind=kind, file=path.name, problem="orphan"))
            report.kinds[kind] = rows
        return report

    def repair(self) -> VerifyReport:
        """Forget partial batches (their rows were never acknowledged, so they are recomputed or
        re-observed), then verify again."""
        with self._locked_manifest() as m:
            for kind, info in m.kinds.items():
                for part in info.parts:
                    if part.state != "complete":
                        (self.root / kind / part.file).unlink(missing_ok=True)
                        (self.root / kind / f".{part.file}.tmp").unlink(missing_ok=True)
                info.parts = [p for p in info.parts if p.state == "complete"]
        return self.verify()


# -- row conversion ------------------------------------------------------------------------------
def _to_table(rows: Sequence[CacheRow], seq: int) -> pa.Table:
    return pa.table({
        "key": [r.key for r in rows],
        "model": [r.model for r in rows],
        "revision": [r.revision for r in rows],
        "seq": [r.seq or seq + i for i, r in enumerate(rows)],
        "op": [r.op for r in rows],
        "payload": [json.dumps(r.payload, separators=(",", ":")) if r.payload is not None else None for r in rows],
        "vector": [np.asarray(r.vector, dtype="<f4").tobytes() if r.vector is not None else None for r in rows],
    }, schema=SCHEMA)


def _cache_row(row: dict[str, Any]) -> CacheRow:
    return CacheRow(
        key=row["key"], model=row["model"], revision=row["revision"], seq=row["seq"], op=row["op"],
        payload=json.loads(row["payload"]) if row["payload"] is not None else None,
        vector=np.frombuffer(row["vector"], dtype="<f4").copy() if row["vector"] is not None else None,
    )


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    vec = row["vector"]
    return {**row, "vector": base64.b64encode(vec).decode() if vec is not None else None}


def _row_from_json(row: dict[str, Any]) -> dict[str, Any]:
    vec = row.get("vector")
    return {**row, "vector": base64.b64decode(vec) if vec is not None else None}


def _models_of(table: pa.Table) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for model, revision in zip(table["model"].to_pylist(), table["revision"].to_pylist(), strict=True):
        if model:
            out.setdefault(model, set()).add(revision)
    return {m: sorted(r) for m, r in out.items()}


def _merge_models(into: dict[str, list[str]], new: dict[str, list[str]]) -> None:
    for model, revisions in new.items():
        into[model] = sorted(set(into.get(model, [])) | set(revisions))
