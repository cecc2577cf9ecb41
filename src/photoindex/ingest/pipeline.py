"""`ingest()`: the one-shot run of an ingest job, here and now.

An ingest is a job of tasks (`tasks.py`): scan → files → finalize. `ingest()` submits that job and
runs an embedded worker on it until it is done, so a one-shot command and a fleet of resident
workers run exactly the same code. The stages inside a files task are in `stages.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from photoindex.ingest.stages import NullProgress, Progress
from photoindex.ingest.tasks import job_report, submit_ingest
from photoindex.jobs.worker import Worker
from photoindex.runtime import Runtime
from photoindex.schemas import IngestReport
from photoindex.store.jobs import JobStore

__all__ = ["NullProgress", "Progress", "ingest"]


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
