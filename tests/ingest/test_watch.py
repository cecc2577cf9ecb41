"""Hot folders: the watcher against real files and real file-system events (inotify and polling)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from photoindex.ingest.scan import Walker, normalize_path
from photoindex.ingest.watch import (
    ChangeBatch,
    FolderWatcher,
    WatchOptions,
    network_mounts_for,
    non_overlapping,
    read_mounts,
    settled_since,
)

SETTLE_S = 0.5
WAIT_S = 10.0  # the longest any single expectation may take


def fast_options(mode: str) -> WatchOptions:
    return WatchOptions(settle_s=SETTLE_S, poll=(mode == "poll"), poll_interval_s=0.1, quiet_s=0.1)


@dataclass
class Recorder:
    """The on_batch callback: keeps every batch, with when it came and the sizes of its files then."""

    batches: list[tuple[float, ChangeBatch, dict[str, int]]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, batch: ChangeBatch) -> None:
        sizes = {p: os.stat(p).st_size for p in batch.changed if os.path.exists(p)}
        with self.cond:
            self.batches.append((time.monotonic(), batch, sizes))
            self.cond.notify_all()

    def wait_for(
        self, predicate: Callable[[ChangeBatch], bool], timeout: float = WAIT_S, *, after: int = 0
    ) -> ChangeBatch:
        """The first batch (from index `after` on) that satisfies `predicate`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, batch, _ in self.batches[after:]:
                    if predicate(batch):
                        return batch
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching batch within {timeout} s; got {self.all()}")
                self.cond.wait(left)

    def all(self) -> list[ChangeBatch]:
        with self.cond:
            return [b for _, b, _ in self.batches]

    def reported(self) -> set[str]:
        return {p for b in self.all() for p in (*b.changed, *b.removed)}


@dataclass
class Running:
    watcher: FolderWatcher
    recorder: Recorder
    thread: threading.Thread


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    """Start a watcher in a thread and wait for its catch-up batch; stop it (bounded) afterwards."""
    started: list[tuple[Running, threading.Event]] = []

    def _start(roots: list[Path], options: WatchOptions, *, wait_catch_up: bool = True) -> Running:
        recorder = Recorder()
        stop = threading.Event()
        watcher = FolderWatcher(roots, recorder, options=options)
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        running = Running(watcher, recorder, thread)
        started.append((running, stop))
        if wait_catch_up:
            recorder.wait_for(lambda b: b.reason == "catch-up")
        return running

    yield _start
    for running, stop in started:
        stop.set()
        running.thread.join(5)
        assert not running.thread.is_alive(), "the watcher did not stop"


@pytest.fixture(params=["native", "poll"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def photo(path: Path, data: bytes = b"\xff\xd8\xff photo") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def n(path: Path) -> str:
    return normalize_path(path)


# --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_catch_up_comes_first_and_names_the_roots(tmp_path: Path, start: Callable[..., Running]) -> None:
    lib = tmp_path / "lib"
    photo(lib / "a" / "old.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    later = tmp_path / "later"

    running = start([lib, lib / "a", link, later], WatchOptions(settle_s=SETTLE_S, poll_interval_s=0.1, quiet_s=0.1))
    first = running.recorder.all()[0]
    # the nested root is covered by its parent, the symlink is resolved, the missing root left out
    assert first == ChangeBatch(folders=(n(elsewhere), n(lib)), changed=(), removed=(), reason="catch-up")
    assert running.watcher.roots == (n(elsewhere), n(later), n(lib))

    # a root that appears later gets its own catch-up once it has something in it
    photo(later / "new.jpg")
    running.recorder.wait_for(lambda b: b.reason == "catch-up" and b.folders == (n(later),))
    # and is watched from then on
    photo(later / "second.jpg")
    batch = running.recorder.wait_for(lambda b: n(later / "second.jpg") in b.changed)
    assert batch.folders == (n(later),)


@pytest.mark.timeout(60)
def test_a_file_written_slowly_is_reported_once_when_finished(
    tmp_path: Path, start: Callable[..., Running], mode: str
) -> None:
    lib = tmp_path / "lib"
    (lib / "in").mkdir(parents=True)
    running = start([lib], fast_options(mode))
    target = lib / "in" / "IMG_0001.JPG"
    chunk = b"\x00" * 4096
    with open(target, "wb") as fh:
        for i in range(10):  # 1.5 s of writing, each pause shorter than settle_s
            if i:
                time.sleep(0.15)
            fh.write(chunk)
            fh.flush()
    finished = time.monotonic()
    final_size = target.stat().st_size

    running.recorder.wait_for(lambda b: n(target) in b.changed)
    time.sleep(SETTLE_S + 0.5)  # a second report would have come by now
    reports = [(t, b, sizes) for t, b, sizes in running.recorder.batches if n(target) in b.changed]
    assert len(reports) == 1
    when, batch, sizes = reports[0]
    assert sizes[n(target)] == final_size == 40960
    assert when >= finished + SETTLE_S * 0.9
    assert batch.folders == (n(lib / "in"),) and batch.removed == () and batch.reason == "events"


@pytest.mark.timeout(60)
def test_renames_and_moves_land_in_one_batch(tmp_path: Path, start: Callable[..., Running], mode: str) -> None:
    lib = tmp_path / "lib"
    photo(lib / "a" / "x.jpg")
    photo(lib / "a" / "album" / "1.jpg")
    photo(lib / "a" / "album" / "2.heic")
    (lib / "b").mkdir()
    running = start([lib], fast_options(mode))
    a, b = lib / "a", lib / "b"

    (a / "x.jpg").rename(a / "y.jpg")
    batch = running.recorder.wait_for(lambda bt: n(a / "x.jpg") in bt.removed)
    assert batch == ChangeBatch(folders=(n(a),), changed=(n(a / "y.jpg"),), removed=(n(a / "x.jpg"),))

    (a / "y.jpg").rename(b / "y.jpg")
    batch = running.recorder.wait_for(lambda bt: n(a / "y.jpg") in bt.removed)
    assert batch == ChangeBatch(folders=(n(a), n(b)), changed=(n(b / "y.jpg"),), removed=(n(a / "y.jpg"),))

    # a whole folder moved: inotify says only "album went, album came"; its photos are found anyway
    (a / "album").rename(b / "album")
    batch = running.recorder.wait_for(lambda bt: n(a / "album") in bt.removed)
    assert batch.removed == (n(a / "album"),)
    assert batch.changed == (n(b / "album" / "1.jpg"), n(b / "album" / "2.heic"))
    assert batch.folders == (n(a), n(b / "album"))


@pytest.mark.timeout(60)
def test_deletions(tmp_path: Path, start: Callable[..., Running], mode: str) -> None:
    lib = tmp_path / "lib"
    a = lib / "a"
    photo(a / "keep.jpg")
    photo(a / "gone.png")
    photo(a / "sub" / "deep" / "s1.jpg")
    photo(a / "sub" / "s2.jpg")
    (a / "notes.txt").write_text("not a photo")
    running = start([lib], fast_options(mode))

    (a / "gone.png").unlink()
    batch = running.recorder.wait_for(lambda b: bool(b.removed))
    assert batch == ChangeBatch(folders=(n(a),), changed=(), removed=(n(a / "gone.png"),))

    # a folder with photos in it: reported as the folder, rescanned from its surviving parent
    shutil.rmtree(a / "sub")
    batch = running.recorder.wait_for(lambda b: n(a / "sub") in b.removed)
    assert batch == ChangeBatch(folders=(n(a),), changed=(), removed=(n(a / "sub"),))

    # a file that vanishes before it settles is never "changed", and does not upset the watcher
    flash = photo(a / "flash.jpg")
    flash.unlink()
    (a / "notes.txt").unlink()
    photo(a / "after.jpg")
    running.recorder.wait_for(lambda b: n(a / "after.jpg") in b.changed)
    assert all(n(flash) not in b.changed for b in running.recorder.all())
    assert all(n(a / "notes.txt") not in b.removed for b in running.recorder.all())
    assert running.thread.is_alive()


@pytest.mark.timeout(60)
def test_temporary_hidden_excluded_and_non_photo_files_are_never_reported(
    tmp_path: Path, start: Callable[..., Running], mode: str
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    running = start([lib], fast_options(mode))
    junk = [
        lib / "foo.jpg.part",
        lib / "bar.JPG.crdownload",
        lib / ".~lock.foo.jpg#",
        lib / "x.tmp",
        lib / "~$draft.jpg",
        lib / ".hidden.jpg",
        lib / "._IMG_0001.JPG",  # macOS resource fork
        lib / "@eaDir" / "IMG_0001.JPG" / "SYNOPHOTO_THUMB_XL.jpg",
        lib / ".git" / "logo.png",
        lib / "photoindex-archive" / "old.jpg",
        lib / ".cache" / "deep" / "thumb.jpg",
        lib / "notes.txt",
        lib / "clip.mp4",
    ]
    for path in junk:
        photo(path)
    # a download that completes by renaming its partial file is reported, under its final name
    (lib / "foo.jpg.part").rename(lib / "foo.jpg")
    # deletions of junk are no news either
    (lib / "x.tmp").unlink()
    shutil.rmtree(lib / ".git")
    photo(lib / "real.jpg")

    running.recorder.wait_for(lambda b: n(lib / "real.jpg") in b.changed and n(lib / "foo.jpg") in b.changed)
    time.sleep(SETTLE_S + 0.4)  # anything else would have settled by now
    assert running.recorder.reported() == {n(lib / "real.jpg"), n(lib / "foo.jpg")}


@pytest.mark.timeout(60)
def test_a_root_that_disappears_and_comes_back(
    tmp_path: Path, start: Callable[..., Running], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="photoindex.watch")
    lib = tmp_path / "lib"
    photo(lib / "a" / "one.jpg")
    running = start([lib], fast_options(mode))

    shutil.rmtree(lib)
    time.sleep(0.8)  # several root checks while it is gone
    assert running.thread.is_alive()
    vanished = [r for r in caplog.records if "disappeared" in r.getMessage()]
    assert len(vanished) == 1 and vanished[0].levelno == logging.WARNING
    # what happened to an unmounted root is not reported as deletions of its files
    assert all(not b.removed for b in running.recorder.all())

    photo(lib / "b" / "two.jpg")
    running.recorder.wait_for(lambda b: b.reason == "catch-up" and b.folders == (n(lib),), after=1)
    photo(lib / "b" / "three.jpg")
    batch = running.recorder.wait_for(lambda b: n(lib / "b" / "three.jpg") in b.changed)
    assert batch.folders == (n(lib / "b"),)
    assert running.thread.is_alive()


@pytest.mark.timeout(60)
def test_a_failing_callback_does_not_stop_the_watch(tmp_path: Path, start: Callable[..., Running]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    calls: list[ChangeBatch] = []
    got = threading.Event()

    def on_batch(batch: ChangeBatch) -> None:
        calls.append(batch)
        if batch.reason == "catch-up":
            raise RuntimeError("queue is down")
        got.set()

    stop = threading.Event()
    watcher = FolderWatcher([lib], on_batch, options=fast_options("native"))
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        photo(lib / "new.jpg")
        assert got.wait(WAIT_S)
        assert calls[-1].changed == (n(lib / "new.jpg"),)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_watcher_cleanly(tmp_path: Path) -> None:
    caught_up = threading.Event()
    watcher = FolderWatcher([tmp_path], lambda b: caught_up.set(), options=fast_options("native"))

    def interrupt() -> None:
        if caught_up.wait(WAIT_S):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    safety = threading.Timer(20, watcher.stop)  # never hang, even if the signal went astray
    safety.start()
    began = time.monotonic()
    try:
        watcher.run()  # returns, does not raise
    finally:
        safety.cancel()
    assert caught_up.is_set() and time.monotonic() - began < 15
    assert not [t for t in threading.enumerate() if t.name.startswith("photoindex-watch") and t.is_alive()]


# --------------------------------------------------------------------------------------------------
# helpers


def test_network_mounts_are_found_for_the_root_and_below_it() -> None:
    mounts = read_mounts(
        "/dev/sda1 / ext4 rw 0 0\n"
        "nas:/volume1/photos /mnt/nas\\040photos nfs4 rw 0 0\n"
        "//nas/share /srv/lib/smb cifs rw 0 0\n"
        "rclone: /srv/cloud fuse.rclone rw 0 0\n"
        "/dev/sdb1 /media/usb fuseblk rw 0 0\n"
    )
    assert ("/mnt/nas photos", "nfs4") in mounts
    assert network_mounts_for("/mnt/nas photos/2024", mounts) == ["/mnt/nas photos (nfs4)"]
    assert network_mounts_for("/srv/lib", mounts) == ["/srv/lib/smb (cifs)"]
    assert network_mounts_for("/srv/cloud", mounts) == ["/srv/cloud (fuse.rclone)"]
    assert network_mounts_for("/media/usb/DCIM", mounts) == []
    assert network_mounts_for("/home/me/Pictures", mounts) == []
    assert network_mounts_for("/srv/library", mounts) == []  # a prefix of a name is not a parent


def test_settled_since(tmp_path: Path) -> None:
    path = photo(tmp_path / "a.jpg")
    assert not settled_since(path, 5.0)
    assert settled_since(path, 0.0)
    old = time.time() - 10
    os.utime(path, (old, old))
    assert settled_since(path, 5.0)
    assert not settled_since(tmp_path / "missing.jpg", 0.0)
    assert not settled_since(tmp_path, 0.0)


def test_non_overlapping() -> None:
    assert non_overlapping(["/a/b", "/a", "/a/b/c", "/ab", "/a-b", "/a"]) == ("/a", "/a-b", "/ab")
    assert non_overlapping(["/", "/x"]) == ("/",)


@pytest.mark.timeout(60)
def test_custom_walker_exclusions_apply(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    walker = Walker.from_names(["Private"], archive_dir_name="done")
    recorder = Recorder()
    stop = threading.Event()
    watcher = FolderWatcher([lib], recorder, options=fast_options("native"), walker=walker)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        recorder.wait_for(lambda b: b.reason == "catch-up")
        photo(lib / "Private" / "p.jpg")
        photo(lib / "done" / "d.jpg")
        photo(lib / "@eaDir" / "e.jpg")  # not excluded by this walker
        recorder.wait_for(lambda b: n(lib / "@eaDir" / "e.jpg") in b.changed)
        time.sleep(SETTLE_S)
        assert recorder.reported() == {n(lib / "@eaDir" / "e.jpg")}
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
