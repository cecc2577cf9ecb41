"""Benchmark: `POST /api/v1/search` (text) through a real `photoindex serve` (uvicorn), by library size
and number of concurrent clients.

    python bench/bench_api_search.py                       # 10k and 100k assets, 1 / 4 / 8 clients
    python bench/bench_api_search.py --sizes 10000 --clients 1,2 --seconds 5

What it does, per library size:
- builds the tiny test model (`photoindex.ml.testing.build_tiny_clip`, --dim-d vectors: the text
  side is real ONNX inference, only very small);
- writes N assets with files and random unit vectors straight into a SQLite catalog with
  `Catalog.commit_batch` (what ingest commits), under that model's name and revision;
- starts `photoindex serve --no-worker` in a subprocess and warms it (the first search loads the
  vector space into memory);
- for each client count: that many threads, each with its own keep-alive httpx client, send
  searches (random vocabulary words, k=20) for --seconds; requests/s and p50 / p95 latency are
  recorded; --runs repetitions, the table shows medians;
- the same search called in-process (`search.service.search_text`, no HTTP) as a baseline.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from photoindex.config import load_settings
from photoindex.ml.registry import model_revision
from photoindex.ml.testing import DEFAULT_WORDS, build_tiny_clip
from photoindex.runtime import Runtime
from photoindex.schemas import ExifInfo
from photoindex.search.service import search_text
from photoindex.store.catalog import Catalog, FileRecord, ModelVectors, NewAsset

MODEL = "tiny-clip"
WORDS = [w for w in DEFAULT_WORDS if len(w) > 3]


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def fill_catalog(url: str, n: int, dim: int, revision: str, batch: int = 2000) -> float:
    catalog = Catalog.open(url)
    coll = catalog.create_collection("bench", vector_size=dim, model=MODEL)
    catalog.select_collection("bench")
    vectors = unit_vectors(n, dim, seed=1)
    cameras = ["Apple iPhone 13", "NIKON Z 6", "SONY ILCE-7RM3", None]
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        assets, files, by_sha = [], [], {}
        for i in range(start, min(start + batch, n)):
            sha = f"{i:064x}"
            make, _, model = (cameras[i % 4] or "").partition(" ")
            assets.append(NewAsset(sha256=sha, sha1=sha[:40], bytes=1000 + i, mime="image/jpeg", width=4000,
                                   height=3000, exif=ExifInfo(make=make or None, model=model or None)))
            files.append(FileRecord(path=f"/bench/folder{i % 10}/{i}.jpg", size=1000 + i, mtime_ns=1, sha256=sha))
            by_sha[sha] = vectors[i]
        catalog.commit_batch(coll.id, assets, files, ModelVectors(MODEL, revision, by_sha))
    secs = time.perf_counter() - t0
    catalog.close()
    return secs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "photoindex.cli.main", "serve", "--port", str(port),
                             "--no-worker"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}/api/v1/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start; see {log}")


def load(base: str, clients: int, seconds: float, k: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p95 ms, errors) for `clients` threads searching for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base, timeout=30) as c:
            start.wait()
            while time.perf_counter() < stop_at[0]:
                body = {"text": f"a photo of a {rng.choice(WORDS)}", "k": k}
                t0 = time.perf_counter()
                r = c.post("/search", json=body)
                latencies[i].append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = sorted(x for lat in latencies for x in lat)
    p95 = every[min(len(every) - 1, int(0.95 * len(every)))]
    return len(every) / wall, statistics.median(every), p95, sum(errors)


def bench_size(n: int, args: argparse.Namespace, work: Path, models: Path, revision: str) -> list[str]:
    home = work / f"home-{n}"
    url = f"sqlite:///{(home / 'catalog.db').as_posix()}"
    home.mkdir(parents=True, exist_ok=True)
    secs = fill_catalog(url, n, args.dim, revision)
    print(f"\n== {n:,} assets x {args.dim}-d: catalog filled in {secs:.1f} s ==", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update({"PHOTOINDEX_HOME": str(home), "PHOTOINDEX_MODELS_PATH": str(models), "PHOTOINDEX_MODEL": MODEL,
                "PHOTOINDEX_AUTO_PULL": "false", "PHOTOINDEX_CONFIG": str(work / "absent.toml")})

    # in-process baseline: the same service call without HTTP
    rt = Runtime(load_settings(home=home, model=MODEL, models_path=[models], auto_pull=False))
    search_text(rt, "a photo", k=args.k)
    rng = random.Random(0)
    direct = []
    for _ in range(args.direct):
        t0 = time.perf_counter()
        search_text(rt, f"a photo of a {rng.choice(WORDS)}", k=args.k)
        direct.append((time.perf_counter() - t0) * 1000)
    rt.close()

    port = free_port()
    proc = start_server(env, port, work / f"server-{n}.log")
    base = f"http://127.0.0.1:{port}/api/v1"
    rows = []
    try:
        t0 = time.perf_counter()
        r = httpx.post(base + "/search", json={"text": "a photo", "k": args.k}, timeout=120)
        assert r.status_code == 200 and len(r.json()["hits"]) == args.k, r.text
        first = (time.perf_counter() - t0) * 1000
        load(base, 1, 1.0, args.k)  # warm-up
        print(f"  first search (loads the vector space): {first:.0f} ms; in-process search_text median "
              f"{statistics.median(direct):.2f} ms", flush=True)
        print(f"  {'clients':>7} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9}   (median of {args.runs} runs of "
              f"{args.seconds:g} s)")
        for clients in args.clients:
            runs = [load(base, clients, args.seconds, args.k) for _ in range(args.runs)]
            rps, p50, p95 = (statistics.median(r[i] for r in runs) for i in range(3))
            errs = sum(r[3] for r in runs)
            line = f"  {clients:>7} {rps:>9.1f} {p50:>9.2f} {p95:>9.2f}" + (f"   {errs} errors" if errs else "")
            print(line, flush=True)
            rows.append(f"| {n:,} | {clients} | {rps:.1f} | {p50:.2f} | {p95:.2f} |")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return [f"| {n:,} | in-process | – | {statistics.median(direct):.2f} | – |", *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated asset counts")
    ap.add_argument("--clients", default="1,4,8", help="comma-separated concurrent client counts")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of one run")
    ap.add_argument("--runs", type=int, default=3, help="runs per client count (medians are shown)")
    ap.add_argument("--dim", type=int, default=512, help="vector size of the generated model")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--direct", type=int, default=200, help="in-process searches for the baseline")
    ap.add_argument("--workdir", type=Path, default=None, help="keep catalogs and logs here")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models = work / "models"
        path = build_tiny_clip(models / MODEL, dim=args.dim)
        revision = model_revision(path)
        print(f"photoindex API search benchmark: {os.cpu_count()} CPUs, model {MODEL} ({args.dim}-d, "
              f"revision {revision}), SQLite catalog, exact index, k={args.k}")
        table = ["| assets | clients | req/s | p50 ms | p95 ms |", "|---:|---:|---:|---:|---:|"]
        for n in sizes:
            table += bench_size(n, args, work, models, revision)
        print("\n" + "\n".join(table))


if __name__ == "__main__":
    main()
