"""Ingest as a job of tasks: scan → files (chunks of paths, in parallel, anywhere) → finalize.

* `ingest.scan` walks the roots and compares them with the catalog, then creates one `ingest.files`
  task per chunk of new or changed paths and a blocked `ingest.finalize` task, in one transaction
  (a retried scan creates the same keys, which are no-ops).
* `ingest.files` runs the stages for its paths. A retry re-checks every path against the catalog, so
  the files an earlier attempt committed are skipped and only the rest is redone.
* `ingest.finalize` runs once nothing else of the job is pending: moves and missing files, vectors
  still pending, and the job's report.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoindex.enrich.runner import enrich_collection
from photoindex.errors import ErrorCode
from photoindex.ingest.embed import embed_pending
from photoindex.ingest.scan import normalize_path, reconcile, scan
from photoindex.ingest.stages import FileStages, FilesOutcome
from photoindex.jobs.worker import handler
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, FileError, IngestReport
from photoindex.store.catalog import FileState
from photoindex.store.jobs import ClaimedTask, JobStore, TaskSpec
from photoindex.store.models import utcnow

if TYPE_CHECKING:
    from photoindex.jobs.worker import Worker

SCAN, FILES, FINALIZE = "ingest.scan", "ingest.files", "ingest.finalize"


def submit_ingest(rt: Runtime, roots: list[str | Path], *, collection: str | None = None, embed: bool = True,
                  priority: int = 0, min_age_s: float | None = None) -> int:
    """Create an ingest job (its scan task queued) and return its id."""
    coll = rt.collection(collection)
    params = {"roots": [normalize_path(r) for r in roots], "collection": coll.name, "collection_id": coll.id,
              "embed": embed, "min_age_s": min_age_s}
    jobs = JobStore(rt.catalog)
    job_id = jobs.create_job("ingest", coll.id, params, priority=priority)
    jobs.add_tasks(job_id, [TaskSpec(key=f"job{job_id}:scan", kind=SCAN, payload=params, priority=priority,
                                     max_attempts=rt.settings.max_attempts)])
    return job_id


def _model(worker: Worker, coll_name: str, embed: bool) -> tuple[Any, str | None]:
    if not embed:
        return None, None
    rt = worker.rt
    coll = rt.collection(coll_name)
    model, notice = rt.try_embedder(rt.model_name(coll), progress=False)
    if model is not None:
        rt.bind_model(coll, model)
    return model, notice


@handler(SCAN)
def run_scan(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    rt, p = worker.rt, task.payload
    report = IngestReport(collection=p["collection"], roots=p["roots"])
    worker.progress.phase("scanning", None)
    plan = scan(rt, report, worker.progress, min_age_s=p.get("min_age_s"))
    if plan.reappeared:
        rt.catalog.set_missing(plan.reappeared, missing=False)
    model, notice = _model(worker, p["collection"], p["embed"])
    size = rt.settings.task_files
    paths = [f.path for f in plan.todo]
    specs = [
        TaskSpec(key=f"job{task.job_id}:files:{i // size}", kind=FILES, priority=task.priority,
                 max_attempts=rt.settings.max_attempts,
                 payload={"collection": p["collection"], "embed": p["embed"], "paths": paths[i : i + size]})
        for i in range(0, len(paths), size)
    ]
    gone = [[path, s.id, s.asset_id] for path, s in plan.gone.items()]
    specs.append(TaskSpec(key=f"job{task.job_id}:finalize", kind=FINALIZE, priority=task.priority, blocked=True,
                          max_attempts=rt.settings.max_attempts,
                          payload={"collection": p["collection"], "embed": p["embed"], "gone": gone}))
    worker.jobs.add_tasks(task.job_id, specs)
    worker.progress.phase("ingesting", len(paths))
    return {"files_seen": report.files_seen, "skipped_unchanged": report.skipped_unchanged,
            "todo": len(paths), "tasks": len(specs) - 1, "model": model.model_id if model else None,
            "notices": [f"{notice}; embeddings stay pending until then"] if notice else [],
            "errors": [e.model_dump(mode="json") for e in report.errors]}


@handler(FILES)
def run_files(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    rt, p = worker.rt, task.payload
    coll = rt.collection(p["collection"])
    model, _ = _model(worker, p["collection"], p["embed"])
    paths = _still_to_do(rt, coll.id, p["paths"])
    started = time.monotonic()
    stages = FileStages(rt, coll, model, worker.pool, worker.progress, worker.infer_lock)
    if task.previous:  # an earlier attempt stopped halfway: its committed files count, the rest is redone
        previous = FilesOutcome.model_validate(_outcome_fields(task.previous))
        retried = set(paths)
        previous.errors = [e for e in previous.errors if e.path not in retried]
        stages.out = previous
    else:
        worker.progress.advance(len(p["paths"]) - len(paths))
    try:
        out = stages.run(paths)
    except KeyboardInterrupt:
        worker.jobs.release(task.id, worker.owner, partial=stages.out.model_dump(mode="json"))
        raise
    except Exception:
        worker.jobs.save_partial(task.id, worker.owner, stages.out.model_dump(mode="json"))
        raise
    result = out.model_dump(mode="json")
    if p["embed"]:
        result["enrich"] = _enrich(worker, coll, _asset_ids(rt, coll.id, p["paths"]))
    result["files"] = len(p["paths"])
    result["already_done"] = len(p["paths"]) - len(paths)  # skipped: committed by an earlier attempt
    result["wall_s"] = round(time.monotonic() - started, 3)
    return result


def _asset_ids(rt: Runtime, collection_id: int, paths: list[str]) -> list[int]:
    known = rt.catalog.file_states(collection_id, sorted({str(Path(p).parent) for p in paths}))
    return sorted({known[p].asset_id for p in paths if p in known})


def _enrich(worker: Worker, coll: CollectionInfo, asset_ids: list[int] | None) -> dict[str, Any]:
    """Run the collection's enrichers where results are missing; a compact summary for the report."""
    report = enrich_collection(worker.rt, coll, asset_ids=asset_ids,
                               progress=worker.progress if asset_ids is None else None)
    return {"done": {name: st.computed + st.cached for name, st in report.enrichers.items()},
            "failed": sum(st.failed for st in report.enrichers.values()),
            "ocr_gate_skipped": report.ocr_gate_skipped, "notices": report.notices}


def _outcome_fields(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k in FilesOutcome.model_fields}


def _still_to_do(rt: Runtime, collection_id: int, paths: list[str]) -> list[str]:
    """Paths whose current size and mtime the catalog does not have yet (an earlier attempt of this
    task may have committed some). Vanished paths are left to the finalizer."""
    known = rt.catalog.file_states(collection_id, sorted({str(Path(p).parent) for p in paths}))
    todo = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        state = known.get(path)
        if state is None or state.size != st.st_size or state.mtime_ns != st.st_mtime_ns or state.missing:
            todo.append(path)
    return todo


@handler(FINALIZE)
def run_finalize(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    rt, p = worker.rt, task.payload
    coll = rt.collection(p["collection"])
    gone = {path: FileState(id=fid, asset_id=aid, size=0, mtime_ns=0, missing=False) for path, fid, aid in p["gone"]}
    linked = {a for res in worker.jobs.results(task.job_id, FILES) for a in res.get("linked_assets", [])}
    moved_assets, missing = reconcile(rt, p["collection"], gone, linked)
    model, _ = _model(worker, p["collection"], p["embed"])
    embedded = embed_pending(rt, coll, model, worker.progress) if model is not None else 0
    result = {"moved": len(moved_assets), "moved_assets": sorted(moved_assets), "missing": missing,
              "embedded": embedded}
    if p["embed"]:  # catch up on what the files tasks left (an enricher's model installed since...)
        result["enrich"] = _enrich(worker, coll, None)
    report = job_report(rt, task.job_id, finalize=result)
    worker.jobs.set_job(task.job_id, report=report.model_dump(mode="json"), counts=report_counts(report))
    return result


def report_counts(report: IngestReport) -> dict[str, int]:
    return report.model_dump(include={"files_seen", "processed", "skipped_unchanged", "exact_duplicates",
                                      "moved", "missing", "failed", "embedded", "embeddings_pending"})


def job_report(rt: Runtime, job_id: int, *, finalize: dict[str, Any] | None = None) -> IngestReport:
    """The ingest report of a job, summed from its tasks' results (as far as they have got)."""
    jobs = JobStore(rt.catalog)
    job = jobs.get_job(job_id)
    params = job["params"]
    report = IngestReport(job_id=job_id, collection=params.get("collection", ""), roots=params.get("roots", []))
    for scanned in jobs.results(job_id, SCAN):
        report.files_seen += scanned.get("files_seen", 0)
        report.skipped_unchanged += scanned.get("skipped_unchanged", 0)
        report.model = scanned.get("model")
        report.notices += scanned.get("notices", [])
        report.errors += [FileError.model_validate(e) for e in scanned.get("errors", [])]
    fin = finalize if finalize is not None else next(iter(jobs.results(job_id, FINALIZE)), {})
    moved_assets = set(fin.get("moved_assets", []))
    for res in jobs.results(job_id, FILES):
        out = FilesOutcome.model_validate(_outcome_fields(res))
        report.processed += out.processed
        report.exact_duplicates += out.exact_duplicates - sum(a in moved_assets for a in out.linked_assets)
        report.embedded += out.embedded
        report.embeddings_reused += out.embeddings_reused
        report.errors += out.errors
    for dead in jobs.tasks(job_id, status="dead"):
        error = dead["last_error"] or {}
        message = f"gave up after {dead['attempts']} attempts: {error.get('message', 'unknown error')}"
        paths = jobs.payload(dead["id"]).get("paths", [])
        for path in _still_to_do(rt, params["collection_id"], paths) if paths else []:
            report.errors.append(FileError(path=path, code=ErrorCode.TASK_FAILED, message=message))
    for res in [*jobs.results(job_id, FILES), fin]:
        enriched = res.get("enrich") or {}
        for name, n in enriched.get("done", {}).items():
            report.enriched[name] = report.enriched.get(name, 0) + n
        report.enrich_failed += enriched.get("failed", 0)
        report.ocr_gate_skipped += enriched.get("ocr_gate_skipped", 0)
        report.notices += [n for n in enriched.get("notices", []) if n not in report.notices]
    report.moved = fin.get("moved", 0)
    report.missing = fin.get("missing", 0)
    report.embedded += fin.get("embedded", 0)
    coll_id = params.get("collection_id")
    if coll_id is not None:
        model = report.model.split("@", 1)[0] if report.model else rt.model_name(rt.collection(report.collection))
        revision = report.model.split("@", 1)[1] if report.model else None
        report.embeddings_pending = rt.catalog.count_assets_needing_vectors(coll_id, model, revision)
    report.failed = len(report.errors)
    end = job["finished_at"] or utcnow()
    report.elapsed_s = round(max(0.0, (end - job["created_at"]).total_seconds()), 3)
    report.interrupted = job["status"] == "interrupted"
    return report
