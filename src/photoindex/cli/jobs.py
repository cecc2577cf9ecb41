"""`photoindex jobs …` and `photoindex worker`."""

from __future__ import annotations

import logging

import typer
from rich.table import Table

from photoindex.cli.common import JSON_OPTION, console, emit_json, handle_errors, runtime
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.jobs import service
from photoindex.store.jobs import JobStore

app = typer.Typer(help="Follow, pause, cancel and retry jobs; inspect the dead-letter queue.", no_args_is_help=True)


def _store() -> JobStore:
    return JobStore(runtime().catalog)


@app.command("list")
@handle_errors
def list_(limit: int = typer.Option(20, "--limit", "-n"), status: str = typer.Option(None, help="Only this status."),
          as_json: bool = JSON_OPTION) -> None:
    """Recent jobs, newest first."""
    items = _store().list_jobs(limit=limit, status=status)
    if as_json:
        emit_json(items)
        return
    table = Table("job", "kind", "status", "created", "tasks", "new", "failed")
    for j in items:
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(j["tasks"].items()))
        c = j["counts"] or {}
        table.add_row(str(j["id"]), j["kind"], j["status"], j["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      tasks or "-", str(c.get("processed", "")), str(c.get("failed", "")))
    console.print(table)


@app.command()
@handle_errors
def status(job_id: int, follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until it ends."),
           as_json: bool = JSON_OPTION) -> None:
    """A job's state, task counts and file progress (and its report once finished)."""
    rt = runtime()
    states = service.follow(rt, job_id) if follow else iter([service.progress(rt, job_id)])
    for state in states:
        if as_json:
            emit_json(state)
            continue
        files = state["files"]
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(state["tasks"].items()))
        console.print(f"job {job_id} [bold]{state['status']}[/]  files {files['done']}/{files['total']}  "
                      f"tasks: {tasks}")
    if not as_json and state["report"]:
        c = state["counts"]
        console.print(f"report: {c.get('processed', 0)} new, {c.get('skipped_unchanged', 0)} unchanged, "
                      f"{c.get('exact_duplicates', 0)} duplicates, {c.get('moved', 0)} moved, "
                      f"{c.get('missing', 0)} missing, {c.get('failed', 0)} failed")


@app.command()
@handle_errors
def dead(job: int = typer.Option(None, "--job", help="Only this job's dead tasks."), as_json: bool = JSON_OPTION) -> None:
    """The dead-letter queue: tasks that failed every attempt, with their last error."""
    items = _store().tasks(job, status="dead")
    if as_json:
        emit_json(items)
        return
    if not items:
        console.print("no dead tasks")
        return
    table = Table("task", "job", "kind", "attempts", "last error")
    for t in items:
        err = t["last_error"] or {}
        table.add_row(str(t["id"]), str(t["job_id"]), t["kind"], str(t["attempts"]),
                      f"{err.get('type', '')}: {err.get('message', '')}")
    console.print(table)


@app.command()
@handle_errors
def retry(task_ids: list[int] = typer.Argument(None, help="Dead task ids (default: all, or --job's)."),
          job: int = typer.Option(None, "--job"), as_json: bool = JSON_OPTION) -> None:
    """Requeue dead tasks with fresh attempts (resident workers pick them up)."""
    rt = runtime()
    ids = JobStore(rt.catalog).requeue_dead(job_id=job, task_ids=task_ids or ())
    jobs = {t["job_id"] for t in JobStore(rt.catalog).tasks(job) if t["id"] in set(ids)} if ids else set()
    for j in jobs:
        service.dispatch(rt, j)
    if as_json:
        emit_json({"requeued": ids})
    else:
        console.print(f"requeued {len(ids)} task(s)")


def _transition(verb: str, job_id: int, as_json: bool) -> None:
    store = _store()
    ok = getattr(store, verb)(job_id)
    if not ok:
        state = store.get_job(job_id)["status"]
        raise PhotoindexError(f"cannot {verb} job {job_id}: it is {state}", code=ErrorCode.INVALID_REQUEST)
    if verb == "resume":
        service.dispatch(runtime(), job_id)
    if as_json:
        emit_json({"job": job_id, "status": store.get_job(job_id)["status"]})
    else:
        console.print(f"job {job_id}: {store.get_job(job_id)['status']}")


@app.command()
@handle_errors
def cancel(job_id: int, as_json: bool = JSON_OPTION) -> None:
    """Cancel a job: its waiting tasks are dropped; tasks running now finish their files."""
    _transition("cancel", job_id, as_json)


@app.command()
@handle_errors
def pause(job_id: int, as_json: bool = JSON_OPTION) -> None:
    """Pause a job: workers take none of its tasks until it is resumed."""
    _transition("pause", job_id, as_json)


@app.command()
@handle_errors
def resume(job_id: int, as_json: bool = JSON_OPTION) -> None:
    """Resume a paused or interrupted job."""
    _transition("resume", job_id, as_json)


@handle_errors
def worker(
    processes: int = typer.Option(None, "--processes", "-p", help="Decode processes (default: one per core)."),
    threads: int = typer.Option(None, "--threads", "-t", help="Tasks run at once (default: worker_threads)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every task."),
) -> None:
    """Run a resident worker: takes tasks from the queue (SQLite in the data directory, or Redis with
    PHOTOINDEX_REDIS_URL), keeps models warm, repairs expired leases. Stop with Ctrl-C or SIGTERM.

    Start one per machine; with PostgreSQL (PHOTOINDEX_CATALOG_URL) and Redis they share the work.
    """
    from photoindex.jobs.transport import Transport
    from photoindex.jobs.worker import Worker

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rt = runtime()
    transport = Transport(rt.settings)
    w = Worker(rt, processes=processes, transport=transport)
    console.print(f"worker {w.owner}: queue {transport.kind}, catalog {rt.catalog.dialect}, "
                  f"{w.pool.processes} decode processes, {threads or rt.settings.worker_threads} task threads")
    w.serve(transport, threads=threads)
