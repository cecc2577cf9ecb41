"""Hot folders end to end: the watcher's batches become ingest jobs that keep the catalog current —
with real files written slowly, renamed across folders and deleted, with native events and polling."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from photoindex.ingest.hotfolders import HotFolders
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime
from photoindex.store.jobs import JobStore
from support.library import LIBRARY, jpeg_bytes
from support.runtime import make_runtime


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def states(rt: Runtime) -> dict:
    return rt.catalog.file_states(rt.collection().id)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_hot_folder_follows_writes_moves_and_deletes(tmp_path: Path, models_dir: Path, library: Path,
                                                     photos, poll: bool) -> None:  # noqa: ANN001
    rt = make_runtime(tmp_path / "home", models_dir, watch_settle_s=0.4, watch_poll_interval_s=0.2)
    hot = HotFolders(rt, [library], poll=poll)
    stop = threading.Event()
    thread = threading.Thread(target=hot.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(lambda: len(states(rt)) == len(LIBRARY))  # the catch-up scan

        new = library / "trips" / "new-cat.jpg"
        data = jpeg_bytes(photos["cat"].rotate(90, expand=True))
        with open(new, "wb") as fh:  # written slowly, in pieces, like a copy over a network
            for i in range(0, len(data), len(data) // 5 + 1):
                fh.write(data[i : i + len(data) // 5 + 1])
                fh.flush()
                time.sleep(0.25)
        eventually(lambda: normalize_path(new) in states(rt))
        assert states(rt)[normalize_path(new)].size == len(data)  # taken only once complete
        asset = rt.catalog.find_asset_by_path(rt.collection().id, normalize_path(new))
        assert asset is not None and asset.embedded_models == ["tiny-clip"]

        moved_to = library / "home" / "garage" / "renamed.jpg"
        shutil.move(library / "trips" / "rocket.jpg", moved_to)
        eventually(lambda: normalize_path(moved_to) in states(rt)
                   and normalize_path(library / "trips" / "rocket.jpg") not in states(rt))

        (library / "home" / "coffee.jpg").unlink()
        eventually(lambda: states(rt)[normalize_path(library / "home" / "coffee.jpg")].missing)

        (library / "trips" / "partial.jpg.part").write_bytes(data[:1000])  # never ingested
        time.sleep(1.5)
        assert not any(p.endswith(".part") for p in states(rt))
        assert rt.catalog.stats(rt.collection().id)["assets"] == len(LIBRARY) + 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    statuses = {j["id"]: j["status"] for j in JobStore(rt.catalog).list_jobs(limit=100)}
    assert hot.submitted and all(statuses[j] == "completed" for j in hot.submitted)
    rt.close()
