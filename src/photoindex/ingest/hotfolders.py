"""Hot folders: the watcher's change batches become ingest jobs.

Each batch names the folders to rescan; an ingest job of those folders compares size and mtime with
the catalog, so only what changed is read, moves are recognised (both folders are in one batch) and
deletions are marked missing. Jobs run here, one after another, on one warm worker — or, with
`to_queue`, go to the queue for resident workers (`photoindex worker`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from photoindex.ingest.scan import Walker
from photoindex.ingest.tasks import submit_ingest
from photoindex.ingest.watch import ChangeBatch, FolderWatcher, WatchOptions
from photoindex.jobs.service import dispatch
from photoindex.jobs.worker import Worker
from photoindex.runtime import Runtime

log = logging.getLogger("photoindex.watch")
WATCH_PRIORITY = 5  # after a person's own ingest (10), before background rescans (0)


class HotFolders:
    def __init__(self, rt: Runtime, roots: Sequence[str | Path], *, collection: str | None = None,
                 to_queue: bool = False, poll: bool | None = None) -> None:
        self.rt, self.collection, self.to_queue = rt, collection, to_queue
        s = rt.settings
        options = WatchOptions(settle_s=s.watch_settle_s, poll=s.watch_poll if poll is None else poll,
                               poll_interval_s=s.watch_poll_interval_s)
        walker = Walker.from_names(s.exclude_dirs, archive_dir_name=s.archive_dir_name,
                                   follow_symlinks=s.follow_symlinks)
        self.watcher = FolderWatcher(roots, self.on_batch, options=options, walker=walker)
        self.jobs: queue.Queue[int | None] = queue.Queue()
        self.submitted: list[int] = []

    def on_batch(self, batch: ChangeBatch) -> None:
        min_age = None if batch.reason == "catch-up" else self.rt.settings.watch_settle_s
        job_id = submit_ingest(self.rt, list(batch.folders), collection=self.collection, min_age_s=min_age,
                               priority=WATCH_PRIORITY)
        self.submitted.append(job_id)
        log.info("%s: job %s for %d folder(s), %d changed, %d removed", batch.reason, job_id,
                 len(batch.folders), len(batch.changed), len(batch.removed))
        if self.to_queue:
            dispatch(self.rt, job_id)
        else:
            self.jobs.put(job_id)

    def _run_jobs(self) -> None:
        worker = Worker(self.rt)
        try:
            while (job_id := self.jobs.get()) is not None:
                try:
                    worker.run_job(job_id)
                except Exception:  # one job's failure must not stop the watching
                    log.exception("job %s failed", job_id)
        finally:
            worker.close()

    def run(self, stop: threading.Event | None = None) -> None:
        runner = None
        if not self.to_queue:
            runner = threading.Thread(target=self._run_jobs, name="hotfolder-jobs", daemon=True)
            runner.start()
        try:
            self.watcher.run(stop)
        finally:
            if runner is not None:
                self.jobs.put(None)
                runner.join()
