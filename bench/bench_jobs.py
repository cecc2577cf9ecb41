"""Queue benchmark: what durable tasks cost, and ingest throughput through resident workers.

Reports, in one run (medians where repeated):
* catalog overhead per task: claim under a lease + complete + job bookkeeping, for no-op tasks;
* transport overhead per message: SqliteHuey enqueue + dequeue;
* end-to-end photos/s for the same folder: one-shot `ingest()` vs one resident worker process vs
  two resident worker processes (the decode processes split so the CPU budget is the same).

Usage: python bench/bench_jobs.py [--photos 300] [--tasks 500]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from photoindex.config import load_settings
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.tasks import submit_ingest
from photoindex.jobs.service import dispatch
from photoindex.jobs.transport import Transport
from photoindex.jobs.worker import Worker, handler
from photoindex.ml.testing import build_tiny_clip
from photoindex.runtime import Runtime
from photoindex.store.jobs import JobStore, TaskSpec

EXE = str(Path(sys.executable).parent / "photoindex")


@handler("bench.noop")
def noop(worker: Worker, task) -> dict:  # noqa: ANN001
    return {}


def photos(root: Path, n: int) -> None:
    from skimage import data

    base = np.asarray(Image.fromarray(data.astronaut()).resize((1600, 1200)))
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    for i in range(n):
        noisy = np.clip(base.astype(np.int16) + rng.integers(-20, 21, base.shape, dtype=np.int16), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(root / f"P{i:04d}.jpg", quality=88)


def task_overhead(work: Path, n: int) -> float:
    rt = Runtime(load_settings(home=work / "home-noop"))
    jobs = JobStore(rt.catalog)
    job = jobs.create_job("bench", None, {}, tasks=[TaskSpec(key=f"n{i}", kind="bench.noop") for i in range(n)])
    worker = Worker(rt, processes=1)
    start = time.perf_counter()
    worker.run_job(job)
    elapsed = time.perf_counter() - start
    worker.close()
    rt.close()
    return elapsed / n * 1000


def transport_overhead(work: Path, n: int) -> float:
    transport = Transport(load_settings(home=work / "home-transport"))
    start = time.perf_counter()
    for i in range(n):
        transport.enqueue(i)
    while transport.huey.dequeue() is not None:
        pass
    return (time.perf_counter() - start) / n * 1000


def resident(work: Path, lib: Path, models: Path, workers: int, processes_each: int, tag: str) -> float:
    home = work / f"home-{tag}"
    env = {**os.environ, "PHOTOINDEX_HOME": str(home), "PHOTOINDEX_MODELS_PATH": str(models),
           "PHOTOINDEX_MODEL": "tiny-clip", "PHOTOINDEX_AUTO_PULL": "false", "PHOTOINDEX_TASK_FILES": "25",
           "PHOTOINDEX_WORKERS": str(processes_each)}
    subprocess.run([EXE, "init"], env=env, capture_output=True, check=True)
    procs = [subprocess.Popen([EXE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while len(list((home / "workers").glob("*.json"))) < workers and time.monotonic() < deadline:
            time.sleep(0.1)  # every worker has booted (model loaded and warmed up)
        rt = Runtime(load_settings(home=home, model="tiny-clip", models_path=[models], task_files=25))
        start = time.perf_counter()
        job_id = submit_ingest(rt, [lib])
        dispatch(rt, job_id)
        jobs = JobStore(rt.catalog)
        while jobs.get_job(job_id)["status"] not in ("completed", "failed"):
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        rt.close()
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="photoindex-bench-jobs-"))
    models = work / "models"
    build_tiny_clip(models / "tiny-clip")
    lib = work / "lib"
    print(f"generating {args.photos} 2 MP photos …", file=sys.stderr)
    photos(lib, args.photos)
    cores = os.cpu_count() or 1

    results: dict[str, float | int] = {"photos": args.photos, "cores": cores}
    results["task_overhead_ms"] = round(statistics.median(task_overhead(work / f"r{i}", args.tasks)
                                                          for i in range(3)), 3)
    results["transport_ms_per_message"] = round(statistics.median(transport_overhead(work / f"t{i}", args.tasks)
                                                                  for i in range(3)), 3)
    rt = Runtime(load_settings(home=work / "home-oneshot", model="tiny-clip", models_path=[models]))
    rt.embedder("tiny-clip")
    report = ingest(rt, [lib])
    rt.close()
    assert report.processed == args.photos, report
    results["oneshot_photos_per_s"] = round(args.photos / report.elapsed_s, 1)
    t1 = resident(work, lib, models, workers=1, processes_each=cores, tag="one")
    results["one_worker_photos_per_s"] = round(args.photos / t1, 1)
    t2 = resident(work, lib, models, workers=2, processes_each=max(1, cores // 2), tag="two")
    results["two_workers_photos_per_s"] = round(args.photos / t2, 1)
    results["one_worker_vs_oneshot"] = round(results["one_worker_photos_per_s"] / results["oneshot_photos_per_s"], 2)
    results["two_workers_vs_oneshot"] = round(results["two_workers_photos_per_s"] / results["oneshot_photos_per_s"], 2)
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
