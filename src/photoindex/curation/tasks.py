"""Duplicate search as a job: kind `duplicates`, one task `duplicates.find`.

The job's id is the "task id" of `POST /api/v1/duplicates/find-similar`: jobs are what the catalog
tracks, lists, follows (SSE) and cancels, so one number serves every endpoint. While the task runs it
writes its progress (phase, done, total) into the job's report, throttled; when it finishes, the
report is the whole `DuplicateReport` with its groups. A retried task starts over: stored hashes
make the second run cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photoindex.curation.duplicates import find_duplicates
from photoindex.curation.models import DuplicateParams, DuplicateProgress, DuplicateReport
from photoindex.errors import CatalogError, ErrorCode
from photoindex.ingest.stages import Progress
from photoindex.jobs.progress import JobProgress
from photoindex.jobs.worker import handler
from photoindex.runtime import Runtime
from photoindex.store.jobs import FINISHED_JOB, ClaimedTask, JobStore, TaskSpec
from photoindex.store.models import utcnow

if TYPE_CHECKING:
    from photoindex.jobs.worker import Worker

JOB_KIND = "duplicates"
FIND = "duplicates.find"


def submit_find(rt: Runtime, collection: str | None = None, params: DuplicateParams | None = None, *,
                priority: int = 0) -> int:
    """Queue a duplicate search of a collection (the selected one by default); returns the job id."""
    coll = rt.collection(collection)
    payload = {"collection": coll.name, "params": (params or DuplicateParams()).model_dump(mode="json")}
    jobs = JobStore(rt.catalog)
    job_id = jobs.create_job(JOB_KIND, coll.id, payload, priority=priority)
    jobs.add_tasks(job_id, [TaskSpec(key=f"job{job_id}:find", kind=FIND, payload=payload, priority=priority,
                                     max_attempts=rt.settings.max_attempts)])
    return job_id


@handler(FIND)
def run_find(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    p = task.payload
    progress = JobProgress(worker.jobs, task.job_id, worker.progress)
    detection = find_duplicates(worker.rt, p["collection"], DuplicateParams.model_validate(p.get("params") or {}),
                                progress=progress)
    report = detection.report
    report.task_id = report.job_id = task.job_id
    counts = {t: c.groups for t, c in report.counts.items()}
    worker.jobs.set_job(task.job_id, report=report.model_dump(mode="json"), counts=counts)
    return {"groups": len(report.groups), "assets": report.assets, "hashed": report.hashed,
            "pixel_hashed": report.pixel_hashed, "failed": len(report.errors), "elapsed_s": report.elapsed_s}


def job_report(rt: Runtime, job_id: int) -> DuplicateReport:
    """The report of a duplicate job: progress while it runs, groups once it is done."""
    jobs = JobStore(rt.catalog)
    job = jobs.get_job(job_id)
    if job["kind"] != JOB_KIND:
        raise CatalogError(f"job {job_id} is a {job['kind']} job, not a duplicate search",
                           code=ErrorCode.JOB_NOT_FOUND, hint="use the id that find-similar returned")
    stored = job["report"] or {}
    finished = job["status"] in FINISHED_JOB
    if finished and "groups" in stored:
        report = DuplicateReport.model_validate(stored)
    else:
        params = DuplicateParams.model_validate((job["params"] or {}).get("params") or {})
        report = DuplicateReport(collection=(job["params"] or {}).get("collection", ""), tiers=params.tiers,
                                 progress=DuplicateProgress.model_validate(stored.get("progress") or {}))
        if job["status"] == "queued":
            report.progress = DuplicateProgress(phase="queued")
    report.task_id = report.job_id = job_id
    report.status, report.finished = job["status"], finished
    if job["status"] == "failed":
        dead = jobs.tasks(job_id, status="dead", limit=1)
        error = (dead[0]["last_error"] if dead else None) or {}
        report.error = {k: error[k] for k in ("code", "message", "attempt") if k in error}
    if not finished:
        report.elapsed_s = round(max(0.0, (utcnow() - job["created_at"]).total_seconds()), 3)
    return report


def find_here(rt: Runtime, collection: str | None = None, params: DuplicateParams | None = None, *,
              progress: Progress | None = None, priority: int = 10) -> DuplicateReport:
    """Run a duplicate search now, in this process, through the same job and task as a queued one."""
    from photoindex.jobs.worker import Worker

    job_id = submit_find(rt, collection, params, priority=priority)
    jobs = JobStore(rt.catalog)
    worker = Worker(rt, progress=progress, processes=1)
    try:
        worker.run_job(job_id)
    except KeyboardInterrupt:
        jobs.set_job(job_id, status="interrupted", only_if=("queued", "running"))
        raise
    finally:
        worker.close()
    return job_report(rt, job_id)


__all__ = ["FIND", "JOB_KIND", "JobProgress", "find_here", "job_report", "run_find", "submit_find"]
