"""Hot folders: watch library roots and report which folders need a rescan, and why.

`FolderWatcher.run` first hands out one *catch-up* batch naming the roots (the ingest job it triggers
compares size and mtime with the catalog, so it is cheap and covers whatever happened while nobody
was watching). After that it turns file-system events into `ChangeBatch`es:

* a photo file that appears or changes is *pending* until its size and mtime have stood still for
  `settle_s` (judged by our own `stat` calls, so a file that is still being copied stays pending
  however its writer behaves); then it is *changed*;
* deletions are *removed* at once; a move arrives as a deletion plus an addition, so a batch that
  holds a deletion waits (at most about `settle_s`) for files that appeared at the same moment to
  settle, and the two halves of a move land in the same batch;
* one batch goes out per quiet period (no events for `quiet_s`, no file still settling), naming the
  folders to rescan — the parents of the files, or for a deleted folder its nearest surviving
  ancestor inside the root — without overlap.

Each root has its own `watchfiles` watcher in a thread: inotify where it works, polling on network
file systems (NFS, SMB/CIFS, FUSE, 9p...) found in ``/proc/mounts``. The main loop owns all state; the
threads only forward events through a queue. A root that disappears (unmounted, deleted) is logged
once and watched again when it comes back, with a catch-up batch for it if it is not empty.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import watchfiles
from watchfiles import Change

from photoindex.ingest.scan import Walker, normalize_path
from photoindex.media.formats import is_candidate

logger = logging.getLogger("photoindex.watch")

DEFAULT_IGNORE_GLOBS: tuple[str, ...] = (
    "*.tmp", "*.part", "*.partial", "*.crdownload", "*.download", "~$*", ".~*", "*.swp",
)

# File-system types whose changes inotify does not see (they happen on another machine, or behind a
# user-space file system): roots on them are polled. `fuseblk` (NTFS-3G and friends on a local disk)
# is not among them: every change there goes through this kernel.
NETWORK_FS_TYPES: frozenset[str] = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "virtiofs", "ceph", "glusterfs",
    "lustre", "gpfs", "beegfs", "davfs", "sshfs", "fuse",
})

# How long the Rust side waits before handing control back when nothing happens (the first return
# tells us the watches are in place), how often it looks at its stop event, and how long it groups
# a burst of events.
_RUST_TIMEOUT_MS = 200
_STEP_MS = 100
_DEBOUNCE_MS = 500
# The main loop wakes at least this often, so that an external stop event is seen promptly.
_MAX_WAIT_S = 0.25
# mtimes further in the future than this are clock skew (a file server's clock), not fresh writes.
_CLOCK_SKEW_S = 60.0


@dataclass(frozen=True)
class WatchOptions:
    settle_s: float = 2.0
    """A file counts as finished when its size and mtime have not changed for this long."""
    poll: bool | None = None
    """None: native events where they work, polling on network mounts; True: always poll; False: never."""
    poll_interval_s: float = 1.0
    """Polling period for polled roots, and how often roots are checked for disappearing and returning."""
    ignore_globs: tuple[str, ...] = DEFAULT_IGNORE_GLOBS
    """File names (case-insensitive globs) that are never reported: temporary and partial downloads."""
    quiet_s: float = 0.5
    """A batch goes out once no event has arrived for this long (and no file is still settling)."""
    max_delay_s: float = 30.0
    """...or once its oldest item has waited this long, even if the folders never fall quiet."""


@dataclass(frozen=True)
class ChangeBatch:
    folders: tuple[str, ...]
    """Normalized folders to rescan, none inside another."""
    changed: tuple[str, ...] = ()
    """Photo files created or modified, and now stable."""
    removed: tuple[str, ...] = ()
    """Photo files or folders deleted or moved away (a file inside a removed folder is not repeated)."""
    reason: Literal["catch-up", "events"] = "events"


def settled_since(path: str | os.PathLike[str], min_age_s: float, *, now: float | None = None) -> bool:
    """True when the file exists and its content has not been modified for at least `min_age_s`.

    For scans triggered by the watcher: a file modified more recently may still be being written, and
    the watcher reports it again once it has settled. An mtime far in the future (a file server whose
    clock runs ahead) cannot be judged and counts as settled.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    age = (time.time() if now is None else now) - st.st_mtime_ns / 1e9
    return age >= min_age_s or age < -_CLOCK_SKEW_S


# --------------------------------------------------------------------------------------------------
# mounts


def _unescape_mount_field(text: str) -> str:
    """`/proc/mounts` writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def read_mounts(mounts_text: str | None = None) -> list[tuple[str, str]]:
    """(mount point, file-system type) for each line of `/proc/mounts` (or of `mounts_text`)."""
    if mounts_text is None:
        try:
            with open("/proc/mounts", encoding="utf-8", errors="surrogateescape") as fh:
                mounts_text = fh.read()
        except OSError:
            return []
    mounts = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape_mount_field(fields[1]), fields[2]))
    return mounts


def is_network_fs_type(fs_type: str) -> bool:
    fs_type = fs_type.lower()
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith("fuse.")


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def network_mounts_for(root: str, mounts: Iterable[tuple[str, str]]) -> list[str]:
    """The network file systems a watch of `root` depends on: the one holding `root` itself, and any
    mounted below it (inotify sees neither side's remote changes). Empty for a purely local tree."""
    mounts = list(mounts)
    found: list[str] = []
    own = max((m for m in mounts if _is_under(root, m[0])), key=lambda m: len(m[0]), default=None)
    if own is not None and is_network_fs_type(own[1]):
        found.append(f"{own[0]} ({own[1]})")
    for point, fs_type in mounts:
        if point != root and _is_under(point, root) and is_network_fs_type(fs_type):
            found.append(f"{point} ({fs_type})")
    return found


# --------------------------------------------------------------------------------------------------
# the watcher


@dataclass
class _Pending:
    root: str
    signature: tuple[int, int, int]  # size, mtime_ns, inode
    first_seen: float
    stable_since: float


@dataclass
class _Root:
    path: str  # normalized
    ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder being watched
    active: bool = False
    ready: bool = False
    generation: int = 0
    polling: bool = False
    thread: threading.Thread | None = None
    thread_stop: threading.Event = field(default_factory=threading.Event)
    catch_up_when_ready: bool = False
    missing_logged: bool = False
    failures: int = 0
    retry_at: float = 0.0
    forced_polling: bool = False  # native watching failed here; poll from now on


def _out_of_inotify_resources(exc: BaseException) -> bool:
    """Whether native watching failed for lack of inotify watches or instances (polling helps then;
    with other errors, such as a file name that is not UTF-8, the native watch is simply restarted)."""
    text = str(exc).lower()
    return any(s in text for s in ("watch limit", "too many open files", "no space left", "max_user_"))


def _dir_ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def non_overlapping(folders: Iterable[str]) -> tuple[str, ...]:
    """The folders, sorted, without duplicates and without any folder inside another one listed."""
    unique = set(folders)
    kept = []
    for folder in sorted(unique):
        if not any(str(parent) in unique for parent in PurePosixPath(folder).parents):
            kept.append(folder)
    return tuple(kept)


def _default_walker() -> Walker:
    from photoindex.config import Settings  # base layer; defaults only, no environment read here

    fields = Settings.model_fields
    exclude = fields["exclude_dirs"].default_factory()  # type: ignore[misc]
    return Walker.from_names(exclude, archive_dir_name=fields["archive_dir_name"].default)


class FolderWatcher:
    """Watch `roots` and call `on_batch` with what changed; see the module documentation."""

    def __init__(
        self,
        roots: Sequence[str | Path],
        on_batch: Callable[[ChangeBatch], None],
        *,
        options: WatchOptions = WatchOptions(),
        walker: Walker | None = None,
    ) -> None:
        if options.settle_s < 0 or options.poll_interval_s <= 0 or options.quiet_s < 0:
            raise ValueError("settle_s and quiet_s must be >= 0 and poll_interval_s > 0")
        self.options = options
        self.walker = walker or _default_walker()
        self.on_batch = on_batch
        normalized = [normalize_path(r) for r in roots]
        kept = non_overlapping(normalized)
        for root in sorted(set(normalized) - set(kept)):
            logger.info("%s is inside another watched root; watched as part of it", root)
        self._roots: dict[str, _Root] = {p: _Root(p) for p in kept}
        self._globs = tuple(g.lower() for g in options.ignore_globs)
        self._check_s = min(max(options.settle_s / 4, 0.05), 0.5)
        # A batch holding a deletion waits this long at most for the other half of a move to settle.
        self._hold_s = options.settle_s + options.quiet_s + 2 * self._check_s
        self._queue: queue.Queue[tuple] = queue.Queue()
        self._stop = threading.Event()
        # state owned by the run loop
        self._known_dirs: dict[str, set[str]] = {}  # folder -> its known subfolders
        self._pending: dict[str, _Pending] = {}
        self._changed: dict[str, str] = {}  # path -> root
        self._removed: dict[str, str] = {}  # path -> root
        self._ready_since: float | None = None
        self._last_event = 0.0
        self._next_settle_check = 0.0
        self._next_root_check = 0.0

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(self._roots)

    # public control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to return (from any thread). Files still settling are not reported."""
        self._stop.set()
        self._queue.put(("stop",))

    def run(self, stop: threading.Event | None = None) -> None:
        """Watch until `stop` (or `self.stop()`) is set, or Ctrl-C. Never raises for vanished paths."""
        def stopping() -> bool:
            return self._stop.is_set() or (stop is not None and stop.is_set())

        try:
            started = self._start_initial(stopping)
            if stopping():
                return
            self._deliver(ChangeBatch(folders=non_overlapping(started), reason="catch-up"))
            while not stopping():
                self._step(self._wait_time())
        except KeyboardInterrupt:
            logger.info("interrupted; watcher stopping")
        finally:
            self._shutdown()

    # threads ---------------------------------------------------------------------------------------

    def _use_polling(self, root: _Root) -> bool:
        if self.options.poll is not None:
            return self.options.poll
        if root.forced_polling:
            return True
        network = network_mounts_for(root.path, read_mounts())
        if network:
            logger.info("%s is on a network file system (%s); polling every %.1f s",
                        root.path, ", ".join(network), self.options.poll_interval_s)
        return bool(network)

    def _start_root(self, root: _Root, ident: tuple[int, int]) -> None:
        root.generation += 1
        root.ident = ident
        root.active = True
        root.ready = False
        root.polling = self._use_polling(root)
        root.thread_stop = threading.Event()
        self._index_dirs(root.path)
        root.thread = threading.Thread(
            target=self._watch_thread,
            args=(root.path, root.generation, root.polling, root.thread_stop),
            name=f"photoindex-watch:{root.path}",
            daemon=True,
        )
        root.thread.start()

    def _stop_root(self, root: _Root) -> None:
        root.active = False
        root.ready = False
        root.thread_stop.set()
        self._forget_dir(root.path)
        for path in [p for p, entry in self._pending.items() if entry.root == root.path]:
            del self._pending[path]

    def _watch_thread(self, root: str, generation: int, polling: bool, thread_stop: threading.Event) -> None:
        put = self._queue.put
        try:
            first = True
            for changes in watchfiles.watch(
                root,
                watch_filter=self._name_filter(root),
                debounce=_DEBOUNCE_MS,
                step=_STEP_MS,
                stop_event=thread_stop,
                rust_timeout=_RUST_TIMEOUT_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
                force_polling=polling,
                poll_delay_ms=max(1, int(self.options.poll_interval_s * 1000)),
                recursive=True,
                ignore_permission_denied=True,
            ):
                if first:  # the watches exist once watchfiles first hands back control
                    put(("ready", root, generation))
                    first = False
                if changes:
                    put(("events", root, generation, changes))
        except Exception as exc:  # noqa: BLE001 — reported to the run loop, which retries
            put(("failed", root, generation, exc))
        else:
            if not thread_stop.is_set():
                put(("failed", root, generation, RuntimeError("watch ended unexpectedly")))

    def _start_initial(self, stopping: Callable[[], bool]) -> list[str]:
        started = []
        for root in self._roots.values():
            ident = _dir_ident(root.path)
            if ident is None:
                logger.warning("watched folder %s does not exist (yet); waiting for it", root.path)
                root.missing_logged = True
                continue
            self._start_root(root, ident)
            started.append(root.path)
        self._next_root_check = time.monotonic() + self.options.poll_interval_s
        # Catch-up only after the watches are in place, so nothing falls between the two.
        while not stopping() and any(r.active and not r.ready for r in self._roots.values()):
            self._step(_MAX_WAIT_S, emit=False)
        return started

    def _shutdown(self) -> None:
        for root in self._roots.values():
            root.thread_stop.set()
        deadline = time.monotonic() + 3.0
        for root in self._roots.values():
            if root.thread is not None:
                root.thread.join(max(0.0, deadline - time.monotonic()))
                if root.thread.is_alive():
                    logger.warning("watch thread for %s did not stop in time", root.path)
        pending = len(self._pending) + len(self._changed) + len(self._removed)
        if pending:
            logger.info("watcher stopped with %d unreported change(s); the next catch-up covers them", pending)

    # filtering ------------------------------------------------------------------------------------

    def _ignored_name(self, name: str) -> bool:
        if name.startswith("."):
            return True
        lowered = name.lower()
        return any(fnmatch.fnmatchcase(lowered, glob) for glob in self._globs)

    def _relative_parts(self, root: str, path: str) -> list[str] | None:
        """The components of `path` below `root` ([] for the root itself); None outside it."""
        if path == root:
            return []
        prefix = root.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        return path[len(prefix):].split("/")

    def _excluded_location(self, root: str, path: str) -> bool:
        """True for paths in hidden, excluded or archive folders, and for hidden or temporary names."""
        parts = self._relative_parts(root, path)
        if parts is None:
            return True
        if not parts:
            return False
        if any(self.walker.skip_dir(part) for part in parts[:-1]):
            return True
        name = parts[-1]
        return self._ignored_name(name) or self.walker.skip_dir(name)

    def _name_filter(self, root: str) -> Callable[[Change, str], bool]:
        """Cheap, name-only filter run in the watch thread before events are queued."""

        def keep(change: Change, path: str) -> bool:
            if path == root:
                return True  # the root itself: the run loop checks on it
            if self._excluded_location(root, path):
                return False
            # a name that is no photo may still be a folder; only a folder's "modified" is of no use
            return change != Change.modified or is_candidate(path)

        return keep

    # the run loop ----------------------------------------------------------------------------------

    def _wait_time(self) -> float:
        now = time.monotonic()
        deadlines = [self._next_root_check]
        if self._pending:
            deadlines.append(self._next_settle_check)
        if self._ready_since is not None:
            # when _maybe_emit could next say yes; while held for settling files, the settle
            # checks (above) and new events are what change its answer
            cap_at = self._ready_since + self.options.max_delay_s
            quiet_at = self._last_event + self.options.quiet_s
            if quiet_at > now:
                deadlines.append(min(quiet_at, cap_at))
            elif self._pending:
                limit = self._hold_s if self._removed else self.options.max_delay_s
                deadlines.append(min(self._ready_since + limit, cap_at))
            else:
                deadlines.append(now)
        return min(_MAX_WAIT_S, max(0.0, min(deadlines) - now))

    def _step(self, timeout: float, *, emit: bool = True) -> None:
        try:
            message = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            message = None
        while message is not None:
            self._handle_message(message)
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                message = None
        now = time.monotonic()
        if now >= self._next_root_check:
            self._check_roots()
        if self._pending and now >= self._next_settle_check:
            self._settle()
        if emit:
            self._maybe_emit()

    def _handle_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "stop":
            return
        root = self._roots.get(message[1])
        if root is None or message[2] != root.generation or not root.active:
            return  # from a thread we already replaced
        if kind == "ready":
            root.ready = True
            root.failures = 0
            if root.catch_up_when_ready:
                root.catch_up_when_ready = False
                self._catch_up_root(root)
        elif kind == "events":
            self._handle_events(root, message[3])
        elif kind == "failed":
            self._root_failed(root, message[3])

    def _root_failed(self, root: _Root, exc: BaseException) -> None:
        self._stop_root(root)
        root.failures += 1
        if not root.polling and self.options.poll is None and _out_of_inotify_resources(exc):
            root.forced_polling = True
            logger.warning("cannot watch %s with file-system events (%s); polling it instead", root.path, exc)
            root.retry_at = time.monotonic()
        else:
            delay = min(60.0, self.options.poll_interval_s * 2 ** min(root.failures, 6))
            logger.warning("watching %s failed (%s); retrying in %.1f s", root.path, exc, delay)
            root.retry_at = time.monotonic() + delay
        # events may have been lost: the restart (_check_roots) asks for a catch-up of the root
        self._next_root_check = min(self._next_root_check, root.retry_at)

    def _check_roots(self) -> None:
        now = time.monotonic()
        self._next_root_check = now + self.options.poll_interval_s
        for root in self._roots.values():
            ident = _dir_ident(root.path)
            if root.active:
                if ident == root.ident:
                    continue
                self._stop_root(root)
                if ident is None:
                    logger.warning("watched folder %s has disappeared (unmounted or deleted); "
                                   "waiting for it to come back", root.path)
                    root.missing_logged = True
                    continue
                logger.warning("watched folder %s was replaced; watching the new one", root.path)
            if ident is None:
                if not root.missing_logged:
                    logger.warning("watched folder %s is not there; waiting for it", root.path)
                    root.missing_logged = True
                continue
            if now < root.retry_at:
                continue
            if root.missing_logged:
                logger.info("watched folder %s is back", root.path)
                root.missing_logged = False
            root.catch_up_when_ready = True
            self._start_root(root, ident)

    def _catch_up_root(self, root: _Root) -> None:
        """A root came back (or its watch was restarted): rescan it, unless it is an empty folder —
        most likely a mount point without its file system, which must not make the library look gone."""
        try:
            with os.scandir(root.path) as entries:
                empty = next(entries, None) is None
        except OSError:
            return
        if empty:
            logger.info("%s is empty; no catch-up scan until something appears in it", root.path)
            return
        self._deliver(ChangeBatch(folders=(root.path,), reason="catch-up"))

    # events ---------------------------------------------------------------------------------------

    def _handle_events(self, root: _Root, changes: set[tuple[Change, str]]) -> None:
        by_path: dict[str, set[Change]] = {}
        for change, path in changes:
            by_path.setdefault(path, set()).add(change)
        now = time.monotonic()
        for path, kinds in sorted(by_path.items()):
            if path == root.path:
                self._next_root_check = now  # created, deleted or replaced: look at it now
                continue
            if self._excluded_location(root.path, path):
                continue
            if not self.walker.follow_symlinks and os.path.islink(path):
                continue
            try:
                st: os.stat_result | None = os.stat(path)
            except OSError:
                st = None
            # The set from watchfiles has no order: what is on disk now decides.
            if st is None:
                if Change.deleted in kinds:
                    self._on_deleted(root.path, path, now)
                else:  # appeared and went again; its deletion event follows
                    self._pending.pop(path, None)
            elif stat.S_ISDIR(st.st_mode):
                if path not in self._known_dirs or Change.added in kinds or Change.deleted in kinds:
                    self._on_new_dir(root.path, path, now)
            elif stat.S_ISREG(st.st_mode) and is_candidate(path):
                if path in self._known_dirs:  # a folder replaced by a file
                    self._on_deleted(root.path, path, now)
                self._on_file_activity(root.path, path, st, now)

    def _on_file_activity(self, root: str, path: str, st: os.stat_result, now: float) -> None:
        self._last_event = now
        self._removed.pop(path, None)
        self._changed.pop(path, None)
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(root, _signature(st), first_seen=now, stable_since=now)
            if len(self._pending) == 1:
                self._next_settle_check = now + self._check_s
        else:
            entry.signature = _signature(st)
            entry.stable_since = now

    def _on_new_dir(self, root: str, path: str, now: float) -> None:
        """A folder appeared (created, or moved in with its contents, which make no events of their
        own): remember its folders and treat each photo in it as new."""
        self._last_event = now
        self._removed.pop(path, None)
        for folder, files in self._walk_new(path):
            self._remember_dir(folder)
            for file_path, st in files:
                self._on_file_activity(root, file_path, st, now)

    def _on_deleted(self, root: str, path: str, now: float) -> None:
        if path in self._known_dirs:
            prefix = path + "/"
            self._forget_dir(path)
            for inside in [p for p in self._pending if p.startswith(prefix)]:
                del self._pending[inside]
            for inside in [p for p in self._changed if p.startswith(prefix)]:
                del self._changed[inside]
        elif is_candidate(path):
            self._pending.pop(path, None)
            self._changed.pop(path, None)
        else:
            return  # a non-photo file
        self._last_event = now
        self._removed[path] = root
        if self._ready_since is None:
            self._ready_since = now

    def _settle(self) -> None:
        now = time.monotonic()
        self._next_settle_check = now + self._check_s
        for path, entry in list(self._pending.items()):
            try:
                st = os.stat(path)
            except OSError:  # gone; a deletion event tells us if it matters
                del self._pending[path]
                continue
            if not stat.S_ISREG(st.st_mode):
                del self._pending[path]
                continue
            signature = _signature(st)
            if signature != entry.signature:
                entry.signature = signature
                entry.stable_since = now
            elif now - entry.stable_since >= self.options.settle_s:
                del self._pending[path]
                self._changed[path] = entry.root
                if self._ready_since is None:
                    self._ready_since = now

    def _maybe_emit(self) -> None:
        if self._ready_since is None:
            return
        now = time.monotonic()
        waited = now - self._ready_since
        if waited < self.options.max_delay_s:
            if now - self._last_event < self.options.quiet_s:
                return
            if self._pending:
                # Files still settling belong with this batch: the other half of a move, the rest of a
                # copy. Deletions wait only as long as a move's arriving file needs to settle.
                limit = self._hold_s if self._removed else self.options.max_delay_s
                if waited < limit:
                    return
        self._emit()

    def _emit(self) -> None:
        changed, removed = self._changed, self._removed
        self._changed, self._removed = {}, {}
        self._ready_since = None
        active = {path for path, root in self._roots.items() if root.active}
        folders: set[str] = set()
        changed_out: list[str] = []
        removed_out: list[str] = []
        removed_set = set(removed)
        for path, root in changed.items():
            if root not in active:
                continue
            folder = self._surviving_folder(root, path)
            if folder is not None:
                folders.add(folder)
            changed_out.append(normalize_path(path))
        for path, root in removed.items():
            if root not in active:
                continue
            if any(str(parent) in removed_set for parent in PurePosixPath(path).parents):
                continue  # inside a folder that is reported removed
            folder = self._surviving_folder(root, path)
            if folder is not None:
                folders.add(folder)
            removed_out.append(normalize_path(path))
        if not (changed_out or removed_out):
            return
        self._deliver(ChangeBatch(
            folders=non_overlapping(folders),
            changed=tuple(sorted(set(changed_out))),
            removed=tuple(sorted(set(removed_out))),
            reason="events",
        ))

    def _surviving_folder(self, root: str, path: str) -> str | None:
        """The nearest folder above `path`, inside `root`, that still exists (normalized)."""
        folder = os.path.dirname(path)
        while _is_under(folder, root):
            if os.path.isdir(folder):
                return normalize_path(folder)
            if folder == root:
                break
            folder = os.path.dirname(folder)
        return None

    def _deliver(self, batch: ChangeBatch) -> None:
        logger.info("%s: %d folder(s), %d changed, %d removed", batch.reason, len(batch.folders),
                    len(batch.changed), len(batch.removed))
        try:
            self.on_batch(batch)
        except Exception:  # one failed hand-off must not end the watch
            logger.exception("handling a change batch failed; its folders are rescanned at the next catch-up")

    # walking --------------------------------------------------------------------------------------

    def _index_dirs(self, root: str) -> None:
        """Remember the folders below a root, so that a deleted folder is known for what it was."""
        for folder, _files in self._walk(root, with_files=False):
            self._remember_dir(folder)

    def _remember_dir(self, folder: str) -> None:
        self._known_dirs.setdefault(folder, set())
        parent = self._known_dirs.get(os.path.dirname(folder))
        if parent is not None and folder != os.path.dirname(folder):
            parent.add(folder)

    def _forget_dir(self, folder: str) -> None:
        """Forget a folder and everything known below it (in time proportional to that subtree)."""
        parent = self._known_dirs.get(os.path.dirname(folder))
        if parent is not None:
            parent.discard(folder)
        stack = [folder]
        while stack:
            children = self._known_dirs.pop(stack.pop(), None)
            if children:
                stack.extend(children)

    def _walk_new(self, top: str) -> Iterable[tuple[str, list[tuple[str, os.stat_result]]]]:
        return self._walk(top, with_files=True)

    def _walk(self, top: str, *, with_files: bool) -> Iterable[tuple[str, list[tuple[str, os.stat_result]]]]:
        """Folders below `top` (inclusive, by the path the events will use) and their photo files.
        Each folder is entered once (device + inode); unreadable or vanished folders are skipped."""
        seen: set[tuple[int, int]] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                with os.scandir(folder) as entries:
                    children = list(entries)
            except OSError:
                continue
            files: list[tuple[str, os.stat_result]] = []
            for entry in children:
                name = entry.name
                try:
                    if entry.is_symlink() and not self.walker.follow_symlinks:
                        continue
                    if entry.is_dir(follow_symlinks=True):
                        if not self.walker.skip_dir(name):
                            stack.append(entry.path)
                        continue
                    if not with_files or self._ignored_name(name) or not is_candidate(name):
                        continue
                    if entry.is_file(follow_symlinks=True):
                        files.append((entry.path, entry.stat(follow_symlinks=True)))
                except OSError:
                    continue
            yield folder, files


__all__ = [
    "DEFAULT_IGNORE_GLOBS",
    "NETWORK_FS_TYPES",
    "ChangeBatch",
    "FolderWatcher",
    "WatchOptions",
    "is_network_fs_type",
    "network_mounts_for",
    "non_overlapping",
    "read_mounts",
    "settled_since",
]
