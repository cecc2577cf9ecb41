"""Kill -9 at random moments, several times, during an ingest of 2,000 files; then let a worker
finish. Every file must be indexed exactly once, every asset embedded, no task left in a lease.

Real processes (`photoindex worker`), real queues (SqliteHuey; Redis) and real catalogs (SQLite;
PostgreSQL). Each worker runs in its own process group, so SIGKILL takes its decode processes and
forkserver with it, as a power cut would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoindex.ml.testing import build_tiny_clip
from photoindex.store.catalog import Catalog
from photoindex.store.jobs import JobStore
from support.databases import fresh_pg_database

FILES = 2000
EXE = str(Path(sys.executable).parent / "photoindex")


def make_library(root: Path, n: int) -> set[str]:
    rng = np.random.default_rng(7)
    paths = set()
    for i in range(n):
        folder = root / f"roll{i // 250:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"IMG_{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, quality=80)
        paths.add(path.resolve().as_posix())
    return paths


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    build_tiny_clip(tmp / "models" / "tiny-clip")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_") or k.startswith("PHOTOINDEX_TEST")}
    env.update({
        "PHOTOINDEX_MODELS_PATH": str(tmp / "models"), "PHOTOINDEX_MODEL": "tiny-clip",
        "PHOTOINDEX_AUTO_PULL": "false", "PHOTOINDEX_LEASE_S": "3", "PHOTOINDEX_REAP_INTERVAL_S": "0.5",
        "PHOTOINDEX_ENRICHERS": "",  # crash safety of ingest itself; enrichment has its own tests
        "PHOTOINDEX_STALE_ENQUEUE_S": "2", "PHOTOINDEX_TASK_FILES": "50", "PHOTOINDEX_MAX_ATTEMPTS": "25",
        "PHOTOINDEX_WORKERS": "2", "PHOTOINDEX_RETRY_BASE_S": "0.2", "PYTHONUNBUFFERED": "1",
        "PHOTOINDEX_THUMBNAILS_PATH": str(tmp / "thumbs"),
    })
    env.update(extra)
    return env


class Workers:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.count = 0

    def start(self, env: dict[str, str], name: str = "w") -> subprocess.Popen:
        self.count += 1
        cwd = self.tmp / f"cwd-{name}"
        cwd.mkdir(exist_ok=True)
        log = open(self.tmp / f"{name}-{self.count}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([EXE, "worker"], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                self.kill(p)


def submit(env: dict[str, str], lib: Path) -> int:
    out = subprocess.run([EXE, "ingest", str(lib), "--detach", "--json"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["job_id"]


def wait_for(catalog_url: str, job_id: int, timeout: float) -> dict:
    catalog = Catalog.open(catalog_url, migrate=False)
    jobs = JobStore(catalog)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            job = jobs.get_job(job_id)
            if job["status"] in ("completed", "failed"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not finish: {jobs.get_job(job_id)}")
    finally:
        catalog.close()


def verify_exactly_once(catalog_url: str, job_id: int, expected: set[str]) -> None:
    catalog = Catalog.open(catalog_url, migrate=False)
    try:
        coll = catalog.active_collection()
        states = catalog.file_states(coll.id)
        assert set(states) == expected, (len(states), len(expected))  # no file missing, none extra
        assert not any(s.missing for s in states.values())
        stats = catalog.stats(coll.id)
        assert stats["assets"] == len(expected) and stats["files"] == len(expected)  # none duplicated
        assert stats["vectors"] == {"tiny-clip": len(expected)}
        jobs = JobStore(catalog)
        job = jobs.get_job(job_id)
        assert job["status"] == "completed", job
        assert set(job["tasks"]) == {"done"}, job["tasks"]  # nothing queued, leased, blocked or dead
        assert job["counts"]["processed"] + job["counts"]["exact_duplicates"] <= len(expected) + 50
    finally:
        catalog.close()


def crash_and_finish(tmp: Path, env: dict[str, str], catalog_url: str, *, second_env: dict[str, str] | None = None,
                     rounds: int = 4) -> int:
    lib = tmp / "lib"
    expected = make_library(lib, FILES)
    job_id = submit(env, lib)
    workers = Workers(tmp)
    rng = random.Random(int(time.time()))
    try:
        for i in range(rounds):  # kill -9 at random moments, then start again (each machine in turn)
            proc = workers.start(env if i % 2 == 0 or second_env is None else second_env, name=f"a{i}")
            time.sleep(rng.uniform(1.5, 4.0))
            workers.kill(proc)
        # a "reboot": two workers busy at once, every process killed together
        both = [workers.start(env, "r1"), workers.start(second_env or env, "r2")]
        time.sleep(rng.uniform(2.0, 4.0))
        for p in both:
            workers.kill(p)
        finishers = [workers.start(env, "f1"), workers.start(second_env or env, "f2")]
        wait_for(catalog_url, job_id, timeout=240)
        for p in finishers:
            workers.kill(p, signal.SIGTERM)
    finally:
        workers.kill_all()
    verify_exactly_once(catalog_url, job_id, expected)
    return job_id


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_sqlite_and_sqlitehuey(tmp_path: Path) -> None:
    env = base_env(tmp_path, PHOTOINDEX_HOME=str(tmp_path / "home"))
    crash_and_finish(tmp_path, env, f"sqlite:///{tmp_path / 'home' / 'catalog.db'}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_postgres_and_redis_two_machines(tmp_path: Path, pg_url: str | None, redis_url: str) -> None:
    """Two 'machines': separate data directories and working directories, one PostgreSQL catalog, one
    Redis queue, shared thumbnail storage. Both must take part in the job."""
    if not pg_url:
        pytest.skip("no PostgreSQL server")
    url, drop = fresh_pg_database(pg_url)
    try:
        shared = {"PHOTOINDEX_CATALOG_URL": url, "PHOTOINDEX_REDIS_URL": redis_url}
        one = base_env(tmp_path, PHOTOINDEX_HOME=str(tmp_path / "home-one"), **shared)
        two = base_env(tmp_path, PHOTOINDEX_HOME=str(tmp_path / "home-two"), **shared)
        crash_and_finish(tmp_path, one, url, second_env=two)
    finally:
        drop()


def homes_that_worked(tmp: Path, job_id: int, homes: tuple[str, ...]) -> dict[str, int]:
    done: dict[str, int] = {}
    for home in homes:
        for log in (tmp / home / "logs").glob("perf-*.jsonl"):
            for line in log.read_text().splitlines():
                rec = json.loads(line)
                if rec.get("job") == job_id and rec.get("status") == "done" and rec.get("kind") == "ingest.files":
                    done[home] = done.get(home, 0) + 1
    return done


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_on_postgres_and_redis_split_one_job(tmp_path: Path, pg_url: str | None, redis_url: str) -> None:
    if not pg_url:
        pytest.skip("no PostgreSQL server")
    url, drop = fresh_pg_database(pg_url)
    workers = Workers(tmp_path)
    try:
        shared = {"PHOTOINDEX_CATALOG_URL": url, "PHOTOINDEX_REDIS_URL": redis_url, "PHOTOINDEX_TASK_FILES": "25"}
        one = base_env(tmp_path, PHOTOINDEX_HOME=str(tmp_path / "home-one"), **shared)
        two = base_env(tmp_path, PHOTOINDEX_HOME=str(tmp_path / "home-two"), **shared)
        expected = make_library(tmp_path / "lib", 600)
        procs = [workers.start(one, "one"), workers.start(two, "two")]
        time.sleep(2.0)  # both are up and waiting on the queue
        job_id = submit(one, tmp_path / "lib")
        wait_for(url, job_id, timeout=180)
        for p in procs:
            workers.kill(p, signal.SIGTERM)
        verify_exactly_once(url, job_id, expected)
        done = homes_that_worked(tmp_path, job_id, ("home-one", "home-two"))
        assert set(done) == {"home-one", "home-two"} and sum(done.values()) == 24, done
    finally:
        workers.kill_all()
        drop()
