"""Ingest: the scan and reconcile steps, and `ingest()`, the one-shot run of an ingest job.

An ingest is a job of tasks (`tasks.py`): scan → files → finalize. `ingest()` submits that job and
runs an embedded worker on it until it is done, so a one-shot command and a fleet of resident
workers run exactly the same code. The stages inside a files task are in `stages.py`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photoindex.errors import ErrorCode
from photoindex.ingest.scan import ScannedFile, Walker
from photoindex.ingest.stages import NullProgress, Progress
from photoindex.runtime import Runtime
from photoindex.schemas import FileError, IngestReport
from photoindex.store.catalog import FileState, folder_range
from photoindex.store.jobs import JobStore

__all__ = ["NullProgress", "Progress", "ScanPlan", "ingest", "reconcile", "scan"]


@dataclass
class ScanPlan:
    todo: list[ScannedFile] = field(default_factory=list)
    gone: dict[str, FileState] = field(default_factory=dict)  # known paths not found on disk
    reappeared: list[int] = field(default_factory=list)  # file ids marked missing that are back unchanged
    folders: list[str] = field(default_factory=list)  # the folders whose catalog state was compared


def ingest(
    rt: Runtime,
    roots: Sequence[str | Path],
    *,
    collection: str | None = None,
    progress: Progress | None = None,
    embed: bool = True,
    priority: int = 0,
) -> IngestReport:
    """Ingest the photos below `roots` into a collection (the active one by default), here and now."""
    from photoindex.ingest.tasks import job_report, submit_ingest
    from photoindex.jobs.worker import Worker

    job_id = submit_ingest(rt, list(roots), collection=collection, embed=embed, priority=priority)
    jobs = JobStore(rt.catalog)
    worker = Worker(rt, progress=progress)
    try:
        if embed:  # fetch the model up front (first run), with the user's progress display
            rt.try_embedder(rt.model_name(rt.collection(collection)),
                            progress=not isinstance(progress or NullProgress(), NullProgress))
        worker.run_job(job_id)
    except KeyboardInterrupt:
        jobs.set_job(job_id, status="interrupted", only_if=("queued", "running"))
    finally:
        worker.close()
    return job_report(rt, job_id)


# -- scan ---------------------------------------------------------------------------------------------
def scan(rt: Runtime, report: IngestReport, progress: Progress, *, min_age_s: float | None = None) -> ScanPlan:
    """Walk the roots and compare them with the catalog. `min_age_s` leaves out files modified more
    recently than that (a hot-folder scan must not catch a neighbour that is still being written)."""
    settings = rt.settings
    coll = rt.collection(report.collection)
    walker = Walker.from_names(settings.exclude_dirs, archive_dir_name=settings.archive_dir_name,
                               follow_symlinks=settings.follow_symlinks)
    folders = [r for r in report.roots if Path(r).is_dir()]
    files = [r for r in report.roots if Path(r).is_file()]
    plan = ScanPlan(folders=folders + [Path(f).parent.as_posix() for f in files])
    known = rt.catalog.file_states(coll.id, plan.folders)
    unreadable: list[str] = []

    def on_error(path: str, code: ErrorCode, message: str) -> None:
        if code == ErrorCode.FILE_UNREADABLE and Path(path).is_dir():
            unreadable.append(path)
        report.errors.append(FileError(path=path, code=code, message=message))

    seen: set[str] = set()
    young_before = time.time_ns() - int((min_age_s or 0) * 1e9)
    for f in walker.walk(report.roots, on_error):
        seen.add(f.path)
        if min_age_s and f.mtime_ns > young_before:
            continue  # still being written: its own change event brings it in later
        report.files_seen += 1
        progress.advance()
        state = known.get(f.path)
        if state is not None and state.size == f.size and state.mtime_ns == f.mtime_ns:
            report.skipped_unchanged += 1
            if state.missing:
                plan.reappeared.append(state.id)
            continue
        plan.todo.append(f)
    # A file counts as gone only below a root that was walked and not below a folder we could not list:
    # an unmounted drive or a permission error must not mark a library missing.
    walked = [folder_range(d) for d in folders]
    blind = [folder_range(d) for d in unreadable]
    for path, state in known.items():
        if path in seen or state.missing:
            continue
        inside = path in files or any(lo <= path < hi for lo, hi in walked)
        if inside and not any(lo <= path < hi for lo, hi in blind):
            plan.gone[path] = state
    return plan


def reconcile(rt: Runtime, gone: dict[str, FileState], linked_assets: set[int]) -> tuple[set[int], int]:
    """Files gone from disk. A gone path whose content this job linked at a new path was moved: its
    row goes, the asset stays, with the new path. The rest are marked missing (never deleted: the
    drive may come back). Idempotent. Returns (moved asset ids, files marked missing)."""
    still_gone = {p: s for p, s in gone.items() if not os.path.exists(p)}
    moved = [s for s in still_gone.values() if s.asset_id in linked_assets]
    missing = [s.id for s in still_gone.values() if s.asset_id not in linked_assets]
    rt.catalog.delete_files([s.id for s in moved])
    rt.catalog.set_missing(missing)
    return {s.asset_id for s in moved}, len(missing)
