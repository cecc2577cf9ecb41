"""Benchmark: the web UI's library page on large libraries, through a real `photoindex serve`.

    python bench/bench_web.py                        # 10k and 100k assets
    python bench/bench_web.py --sizes 10000 --runs 5

What it does, per library size:
- writes N assets straight into a SQLite catalog with `Catalog.commit_batch` (what ingest commits),
  each with a small real JPEG thumbnail (hard links; `tests/web/synthetic.py`), 1 in 20 undated;
- starts `photoindex serve --no-worker` in a subprocess;
- API: `GET /api/v1/library` first page (with the total), pages deep in the library by cursor,
  `/library/{id}/neighbours` and `/library/facets`: median and p95 latency over --requests calls;
- browser (Debian's Chromium through Playwright, when installed): --runs cold loads of `/`, each in a
  fresh context (empty cache): first contentful paint, the first page of tiles in the DOM, the first
  12 thumbnails decoded, and how many library pages and thumbnails were requested.

Not part of the test suite (tests/web/test_scale.py asserts the 10k numbers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from web.browser import CHROMIUM_ARGS, chromium_path
from web.synthetic import fill_library

from photoindex.config import load_settings
from photoindex.store.catalog import Catalog

FIRST_SCREEN = """() => [...document.querySelectorAll('#grid .tile img')].slice(0, 12)
  .every(i => i.complete && i.naturalWidth > 0)"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "photoindex.cli.main", "serve", "--port", str(port), "--no-worker"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start; see {log}")


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"{statistics.median(samples):.1f} / {p95:.1f}"


def timed(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return elapsed, r.json()


def bench_api(base: str, requests: int, limit: int) -> list[tuple[str, str]]:
    rows = []
    with httpx.Client(base_url=base + "/api/v1", timeout=60) as c:
        first = [timed(c, "/library", {"limit": limit}) for _ in range(requests)]
        rows.append((f"first page ({limit}, with total)", ms([t for t, _ in first])))
        # cursors spread through the library: walk once, keep every 10th
        cursors, cursor = [], first[0][1]["next_cursor"]
        walk_times = []
        while cursor:
            t, page = timed(c, "/library", {"limit": 500, "cursor": cursor})
            walk_times.append(t)
            cursor = page["next_cursor"]
            if cursor and len(walk_times) % 10 == 0:
                cursors.append(cursor)
        walked = f"{sum(walk_times) / 1000:.1f} s total, {ms(walk_times)} per page"
        rows.append(("walk whole library (500/page)", walked))
        deep = [timed(c, "/library", {"limit": limit, "cursor": cursors[i % len(cursors)]})[0]
                for i in range(requests)] if cursors else []
        if deep:
            rows.append((f"later page ({limit}, by cursor)", ms(deep)))
        ids = [i["id"] for i in first[0][1]["items"]]
        rows.append(("neighbours", ms([timed(c, f"/library/{ids[i % len(ids)]}/neighbours")[0]
                                       for i in range(requests)])))
        rows.append(("facets", ms([timed(c, "/library/facets")[0] for _ in range(max(3, requests // 5))])))
    return rows


def bench_browser(base: str, runs: int) -> list[tuple[str, str]]:
    exe = chromium_path()
    if not os.path.exists(exe):
        return [("browser", f"skipped: no Chromium at {exe}")]
    from playwright.sync_api import sync_playwright

    fcp, first_page, screen, pages, thumbs = [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            urls: list[str] = []
            page.on("request", lambda r, urls=urls: urls.append(r.url))
            t0 = time.perf_counter()
            page.goto(base + "/")
            page.wait_for_function("() => performance.getEntriesByName('photoindex:first-page').length > 0")
            page.wait_for_function(FIRST_SCREEN)
            screen.append((time.perf_counter() - t0) * 1000)
            marks = page.evaluate("""() => [performance.getEntriesByName('first-contentful-paint')[0].startTime,
                                            performance.getEntriesByName('photoindex:first-page')[0].startTime]""")
            fcp.append(marks[0])
            first_page.append(marks[1])
            page.wait_for_load_state("networkidle")
            pages.append(sum("/api/v1/library?" in u for u in urls))
            thumbs.append(sum("/thumbnail" in u for u in urls))
            context.close()
        browser.close()
    return [("first contentful paint", ms(fcp)), ("first page of tiles in the DOM", ms(first_page)),
            ("first 12 thumbnails shown (wall)", ms(screen)),
            ("requests at load", f"{statistics.median(pages):.0f} library pages, {statistics.median(thumbs):.0f} thumbnails")]


def bench_size(n: int, args: argparse.Namespace, work: Path) -> None:
    home = work / f"home-{n}"
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(PHOTOINDEX_HOME=str(home), PHOTOINDEX_CONFIG=str(work / "absent.toml"), HF_HUB_OFFLINE="1")
    settings = load_settings(home=home)
    settings.ensure_home()
    catalog = Catalog.open(settings.resolved_catalog_url)
    t0 = time.perf_counter()
    fill_library(catalog, settings.thumbnails_dir, n)
    catalog.close()
    print(f"\n## {n:,} assets (filled in {time.perf_counter() - t0:.1f} s)\n")
    port = free_port()
    proc = start_server(env, port, work / f"serve-{n}.log")
    try:
        base = f"http://127.0.0.1:{port}"
        rows = bench_api(base, args.requests, args.limit) + bench_browser(base, args.runs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print("| measure | median / p95 ms |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated asset counts")
    ap.add_argument("--requests", type=int, default=50, help="API calls per measure")
    ap.add_argument("--limit", type=int, default=100, help="page size of the API measures")
    ap.add_argument("--runs", type=int, default=5, help="cold browser loads per size")
    ap.add_argument("--workdir", type=Path, default=None, help="keep catalogs and logs here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"photoindex web library benchmark: {os.cpu_count()} CPUs, SQLite catalog")
        for n in (int(s) for s in args.sizes.split(",")):
            bench_size(n, args, work)


if __name__ == "__main__":
    main()
