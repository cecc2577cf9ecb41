"""A collection's summary as JSON or CSV: what it holds (by camera, year, type), its duplicates, the
files that failed to ingest, and what is missing or archived.

Counts by camera, year and type are over the assets that show in the library (`active`); archived
assets and files are counted on their own. Exact copies come from the catalog (one content at several
present paths); the other duplicate tiers from the newest finished `duplicates` job of the collection,
when there is one. Failures are the errors of the collection's ingest job reports, the newest per
path, less the paths that have since been ingested.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import extract, func, select

from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, UtcDateTime
from photoindex.store import archives
from photoindex.store.archive_models import ArchiveBatch
from photoindex.store.models import Asset, File, Job

UNKNOWN = "unknown"
DUPLICATES_JOB = "duplicates"  # the job kind of duplicate searches (curation/tasks.py)


class Count(BaseModel):
    key: str
    count: int
    bytes: int = 0


class Duplicates(BaseModel):
    exact_groups: int = Field(default=0, description="contents present at two or more paths")
    exact_extra_files: int = Field(default=0, description="copies beyond one per content")
    exact_extra_bytes: int = Field(default=0, description="bytes those extra copies take")
    job_id: int | None = Field(default=None, description="the duplicate search the other tiers come from")
    job_finished_at: UtcDateTime | None = None
    tiers: dict[str, dict[str, int]] = Field(default_factory=dict,
                                             description="per tier of that search: groups, assets, archive_files...")


class Failure(BaseModel):
    path: str
    code: str
    message: str
    job_id: int


class CollectionReport(BaseModel):
    collection: str
    generated_at: UtcDateTime
    assets: int = Field(description="assets shown in the library (active)")
    bytes: int
    files: int = Field(description="file rows: present and missing (archived files have none)")
    missing_files: int
    archived_files: int
    archived_bytes: int
    archived_assets: int
    by_camera: list[Count]
    by_year: list[Count]
    by_type: list[Count]
    duplicates: Duplicates
    failures: list[Failure]
    failures_by_code: dict[str, int]
    batches: dict[str, int] = Field(description="archive batches by status")


def collection_report(rt: Runtime, collection: str | None = None) -> CollectionReport:
    coll = rt.collection(collection)
    archived = archives.archived_counts(rt.catalog, coll.id)
    failures = _failures(rt, coll)
    by_code: dict[str, int] = {}
    for f in failures:
        by_code[f.code] = by_code.get(f.code, 0) + 1
    files, missing = _file_counts(rt, coll.id)
    assets, total = _asset_totals(rt, coll.id)
    return CollectionReport(
        collection=coll.name, generated_at=datetime.now(UTC), assets=assets, bytes=total, files=files, missing_files=missing,
        archived_files=archived["files"], archived_bytes=archived["bytes"], archived_assets=archived["assets"],
        by_camera=_grouped(rt, coll.id, Asset.camera), by_year=_grouped(rt, coll.id, extract("year", Asset.taken_at)),
        by_type=_grouped(rt, coll.id, Asset.mime), duplicates=_duplicates(rt, coll), failures=failures,
        failures_by_code=dict(sorted(by_code.items())), batches=_batches(rt, coll.id))


def _active(collection_id: int) -> tuple[Any, ...]:
    return (Asset.collection_id == collection_id, Asset.status == archives.ACTIVE)


def _asset_totals(rt: Runtime, collection_id: int) -> tuple[int, int]:
    with rt.catalog.session() as s:
        n, size = s.execute(select(func.count(), func.coalesce(func.sum(Asset.bytes), 0))
                            .where(*_active(collection_id))).one()
    return int(n), int(size)


def _file_counts(rt: Runtime, collection_id: int) -> tuple[int, int]:
    stats = rt.catalog.stats(collection_id)
    return stats["files"], stats["missing_files"]


def _grouped(rt: Runtime, collection_id: int, column: Any) -> list[Count]:
    """Active assets counted by one column, most first (then by key); NULL counts as 'unknown'."""
    with rt.catalog.session() as s:
        rows = s.execute(select(column, func.count(), func.coalesce(func.sum(Asset.bytes), 0))
                         .where(*_active(collection_id)).group_by(column)).all()
    # a year comes back as an integer (SQLite) or a numeric (PostgreSQL)
    out = [Count(key=UNKNOWN if k is None else k if isinstance(k, str) else str(int(k)), count=int(n), bytes=int(b))
           for k, n, b in rows]
    return sorted(out, key=lambda c: (-c.count, c.key))


def _duplicates(rt: Runtime, coll: CollectionInfo) -> Duplicates:
    with rt.catalog.session() as s:
        present = (File.collection_id == coll.id, File.missing.is_(False))
        per_asset = (select(File.asset_id, func.count().label("n"), func.max(File.size).label("size"))
                     .where(*present).group_by(File.asset_id).having(func.count() > 1).subquery())
        groups, extra, extra_bytes = s.execute(select(
            func.count(), func.coalesce(func.sum(per_asset.c.n - 1), 0),
            func.coalesce(func.sum((per_asset.c.n - 1) * per_asset.c.size), 0))).one()
        job = s.execute(select(Job.id, Job.finished_at, Job.report).where(
            Job.kind == DUPLICATES_JOB, Job.collection_id == coll.id, Job.status == "completed")
            .order_by(Job.id.desc()).limit(1)).one_or_none()
    out = Duplicates(exact_groups=int(groups), exact_extra_files=int(extra), exact_extra_bytes=int(extra_bytes))
    if job is not None:
        out.job_id = int(job[0])
        out.job_finished_at = job[1].replace(tzinfo=UTC) if job[1] is not None else None
        counts = (job[2] or {}).get("counts") or {}
        out.tiers = {str(t): {k: int(v) for k, v in c.items() if isinstance(v, int | float)}
                     for t, c in counts.items() if isinstance(c, dict)}
    return out


def _failures(rt: Runtime, coll: CollectionInfo) -> list[Failure]:
    newest: dict[str, Failure] = {}
    with rt.catalog.session() as s:
        jobs = s.execute(select(Job.id, Job.report).where(Job.kind == "ingest", Job.collection_id == coll.id)
                         .order_by(Job.id.desc())).all()
    for job_id, report in jobs:
        for e in (report or {}).get("errors", []) or []:
            path = e.get("path")
            if isinstance(path, str) and path not in newest:
                newest[path] = Failure(path=path, code=str(e.get("code", "")), message=str(e.get("message", "")),
                                       job_id=int(job_id))
    if not newest:
        return []
    present = {p for p, st in rt.catalog.file_states(coll.id).items() if not st.missing}
    return sorted((f for p, f in newest.items() if p not in present), key=lambda f: f.path)


def _batches(rt: Runtime, collection_id: int) -> dict[str, int]:
    with rt.catalog.session() as s:
        rows = s.execute(select(ArchiveBatch.status, func.count()).where(ArchiveBatch.collection_id == collection_id)
                         .group_by(ArchiveBatch.status)).all()
    return {str(k): int(v) for k, v in sorted(rows)}


CSV_COLUMNS = ("section", "key", "count", "bytes", "detail")


def report_csv(report: CollectionReport) -> str:
    """The report as one long table (section, key, count, bytes, detail): opens in any spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerow(("summary", "assets", report.assets, report.bytes, ""))
    w.writerow(("summary", "files", report.files, "", ""))
    w.writerow(("summary", "missing_files", report.missing_files, "", ""))
    w.writerow(("summary", "archived_files", report.archived_files, report.archived_bytes, ""))
    w.writerow(("summary", "archived_assets", report.archived_assets, "", ""))
    for section, counts in (("camera", report.by_camera), ("year", report.by_year), ("type", report.by_type)):
        for c in counts:
            w.writerow((section, c.key, c.count, c.bytes, ""))
    d = report.duplicates
    w.writerow(("duplicates", "exact", d.exact_groups, d.exact_extra_bytes, f"{d.exact_extra_files} extra copies"))
    for tier, tc in sorted(d.tiers.items()):
        w.writerow(("duplicates", tier, tc.get("groups", 0), tc.get("archive_bytes", ""), f"duplicate job {d.job_id}"))
    for code, n in report.failures_by_code.items():
        w.writerow(("failures", code, n, "", ""))
    for f in report.failures:
        w.writerow(("failure", f.path, 1, "", f"{f.code}: {f.message}"))
    for status, n in report.batches.items():
        w.writerow(("archive_batches", status, n, "", ""))
    return buf.getvalue()
