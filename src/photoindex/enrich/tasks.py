"""Enrichment as a job (`POST /api/v1/enrich`, or queued for resident workers): one task that runs a
collection's enrichers where results are missing. A retry after a crash redoes only what was not
stored: results are marked done per asset as each batch lands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from photoindex.enrich.runner import enrich_collection
from photoindex.jobs.progress import JobProgress
from photoindex.jobs.worker import handler
from photoindex.runtime import Runtime
from photoindex.store.jobs import ClaimedTask, JobStore, TaskSpec

if TYPE_CHECKING:
    from photoindex.jobs.worker import Worker

RUN = "enrich.run"


def submit_enrich(rt: Runtime, *, collection: str | None = None, only: list[str] | None = None,
                  priority: int = 0) -> int:
    coll = rt.collection(collection)
    params = {"collection": coll.name, "collection_id": coll.id, "only": only or None}
    jobs = JobStore(rt.catalog)
    job_id = jobs.create_job("enrich", coll.id, params, priority=priority)
    jobs.add_tasks(job_id, [TaskSpec(key=f"job{job_id}:enrich", kind=RUN, payload=params, priority=priority,
                                     max_attempts=rt.settings.max_attempts)])
    return job_id


@handler(RUN)
def run_enrich(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    rt, p = worker.rt, task.payload
    progress = JobProgress(worker.jobs, task.job_id, worker.progress)
    report = enrich_collection(rt, rt.collection(p["collection"]), only=p.get("only"), progress=progress)
    worker.jobs.set_job(task.job_id, report=report.model_dump(mode="json"),
                        counts={name: st.computed + st.cached for name, st in report.enrichers.items()})
    return report.model_dump(mode="json")
