"""Ctrl-C during a real `photoindex ingest`: what was committed stays consistent, the job is marked
interrupted, the exit code is 130, and running the same command again finishes the work."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from photoindex.ml.testing import build_tiny_clip

COUNT = 150


def test_sigint_mid_run_then_resume(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)
    for i in range(COUNT):
        img = Image.fromarray(np.roll(base, i, axis=1)).resize((2000, 1500))
        img.save(lib / f"{i:03d}.jpg", quality=85)
    build_tiny_clip(tmp_path / "models" / "tiny-clip")
    home = tmp_path / "home"
    env = {**os.environ, "PHOTOINDEX_HOME": str(home), "PHOTOINDEX_MODELS_PATH": str(tmp_path / "models"),
           "PHOTOINDEX_MODEL": "tiny-clip", "PHOTOINDEX_AUTO_PULL": "false", "PHOTOINDEX_COMMIT_BATCH_SIZE": "8",
           "PHOTOINDEX_BATCH_SIZE": "4", "PHOTOINDEX_WORKERS": "2"}
    exe = str(Path(sys.executable).parent / "photoindex")
    proc = subprocess.Popen([exe, "ingest", str(lib), "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    db = home / "catalog.db"
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    committed = conn.execute("SELECT count(*) FROM file").fetchone()[0]
            except sqlite3.OperationalError:  # schema not created yet
                committed = 0
            if committed > 0:
                break
        time.sleep(0.02)
    assert committed > 0 and proc.poll() is None, "the ingest ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] and 0 < report["processed"] < COUNT

    with sqlite3.connect(db) as conn:
        files = conn.execute("SELECT count(*) FROM file").fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM file f LEFT JOIN asset a ON a.id = f.asset_id "
                               "WHERE a.id IS NULL").fetchone()[0]
        status = conn.execute("SELECT status FROM job ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert files == report["processed"] and orphans == 0 and status == "interrupted"

    again = subprocess.run([exe, "ingest", str(lib), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["skipped_unchanged"] == report["processed"]
    assert second["processed"] == COUNT - report["processed"] and second["embeddings_pending"] == 0
