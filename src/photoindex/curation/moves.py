"""The disk side of archiving: moving a file without ever losing or overwriting one, the write-ahead
manifest, and telling where a file's content is.

* Same device: `os.rename` into a path chosen free (a taken name gets a `~N` suffix, never replaced).
* Across devices: copy to a temporary name beside the destination, fsync, verify the copy's SHA-256
  against the catalog's, rename it into place, and only then remove the source. A crash leaves the
  source untouched, or both copies (identical), never neither.
* Contents, modification times and permissions are never changed (the copy gets the source's stat,
  as `shutil.copy2` does).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from photoindex.errors import ErrorCode, MediaError, PhotoindexError
from photoindex.media.hashing import sha256_file

# Test-only fault injection: "POINT:N" kills this process (SIGKILL, as `kill -9` would) the N-th time
# it reaches POINT (after_manifest, after_copy, after_move, after_commit). Never set outside tests.
CRASH_ENV = "PHOTOINDEX_TEST_ARCHIVE_CRASH"
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fsync_dir(path: str | Path) -> None:
    """Make a rename or unlink in this folder durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(dst: str, batch_id: int, item_id: int) -> str:
    """The temporary name a cross-device copy is written under (hidden, ours by its name)."""
    p = Path(dst)
    return str(p.with_name(f".{p.name}.photoindex-{batch_id}-{item_id}.tmp"))


def free_path(dst: str, taken: set[str]) -> str:
    """`dst`, or `stem~N.ext` with the smallest N such that no file has that name (nor `taken`)."""
    p = Path(dst)
    candidate, n = dst, 1
    while candidate in taken or os.path.lexists(candidate):
        candidate = str(p.with_name(f"{p.stem}~{n}{p.suffix}"))
        n += 1
    return candidate


class Where(StrEnum):
    ABSENT = "absent"
    SAME = "same"  # this content
    OTHER = "other"  # another content


def content_at(path: str, sha256: str, size: int, mtime_ns: int, *, verify: bool = False) -> Where:
    """Whether `path` holds the content with this digest. Same size and mtime is taken as the same
    content, as an ingest scan does, unless `verify` (then, and whenever they differ, it is hashed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Where.ABSENT
    except OSError as exc:
        raise PhotoindexError(f"cannot inspect {path}: {exc.strerror or exc}", code=ErrorCode.FILE_UNREADABLE) from exc
    if st.st_size != size:
        return Where.OTHER
    if st.st_mtime_ns == mtime_ns and not verify:
        return Where.SAME
    try:
        return Where.SAME if sha256_file(path) == sha256 else Where.OTHER
    except MediaError:
        return Where.OTHER


@dataclass
class Manifest:
    """`<archive dir>/manifest-<batch>.jsonl`: one JSON line per intended move, flushed and fsynced
    before the move happens, so the archive folder alone tells what went where and why."""

    path: Path

    def append(self, record: dict[str, Any]) -> None:
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if created:
            fsync_dir(self.path.parent)


def same_device(src: str, dst_dir: str) -> bool:
    return os.stat(src).st_dev == os.stat(dst_dir).st_dev


def move(src: str, dst: str, sha256: str, tmp: str) -> str:
    """Move `src` to `dst` (which must not exist); returns "rename" or "copy". Raises
    PhotoindexError (nothing moved, source untouched) when the destination is taken or the copy
    does not verify."""
    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    if os.path.lexists(dst):
        raise PhotoindexError(f"{dst} exists", code=ErrorCode.INVALID_REQUEST, details={"path": dst})
    if same_device(src, parent):
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # bind mounts look like one device but refuse renames
                raise
        else:
            fsync_dir(parent)
            fsync_dir(os.path.dirname(src))
            return "rename"
    copy_verified(src, dst, sha256, tmp)
    crash_point("after_copy")
    os.unlink(src)
    fsync_dir(os.path.dirname(src))
    return "copy"


def copy_verified(src: str, dst: str, sha256: str, tmp: str) -> None:
    """Copy `src` to `dst` through `tmp`: data fsynced, stat copied, SHA-256 of the copy checked,
    then renamed into place. The source is left as it is."""
    if os.path.lexists(tmp):  # ours, from an attempt that did not finish
        os.unlink(tmp)
    try:
        with open(src, "rb") as fi, open(tmp, "xb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
            fo.flush()
            os.fsync(fo.fileno())
        shutil.copystat(src, tmp)  # mtime (ns) and permission bits, as shutil.copy2
        got = sha256_file(tmp)
        if got != sha256:
            raise PhotoindexError(f"the copy of {src} does not match its catalogued content",
                                  code=ErrorCode.FILE_UNREADABLE, details={"expected": sha256, "got": got},
                                  hint="the file changed since it was ingested: ingest it again first")
        if os.path.lexists(dst):
            raise PhotoindexError(f"{dst} exists", code=ErrorCode.INVALID_REQUEST, details={"path": dst})
        os.rename(tmp, dst)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(dst))


def prune_empty_dirs(start: str, stop: str) -> None:
    """Remove empty folders from `start` up to (not including) `stop`: the archive's sub-folders
    that an undo emptied. Folders with anything in them stay."""
    cur, top = Path(start), Path(stop)
    while cur != top and top in cur.parents:
        try:
            cur.rmdir()
        except OSError:
            return
        cur = cur.parent
