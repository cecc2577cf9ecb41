"""One read of a file, and the digests that identify its content.

An asset *is* its SHA-256; SHA-1 rides along because Immich keys uploads by it. Both digests are fed
from the same in-memory buffer that the decoder then uses, so a photo is read from disk exactly once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

from photoindex.errors import ErrorCode, MediaError

_STREAM_CHUNK = 1 << 20
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
               | getattr(os, "O_NONBLOCK", 0))


@dataclass(frozen=True)
class FileBytes:
    """The whole content of a file, its digests, and the stat values it was read under."""

    data: bytes
    sha256: str
    sha1: str
    size: int
    mtime_ns: int

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return f"FileBytes(size={self.size}, sha256={self.sha256[:12]}…, mtime_ns={self.mtime_ns})"


def _os_error(path: str | os.PathLike[str], exc: OSError) -> MediaError:
    shown = os.fspath(path)
    if isinstance(exc, FileNotFoundError):
        return MediaError(f"{shown!r} does not exist", code=ErrorCode.FILE_NOT_FOUND)
    if isinstance(exc, IsADirectoryError):
        return MediaError(f"{shown!r} is a directory, not a file", code=ErrorCode.FILE_UNREADABLE)
    if isinstance(exc, PermissionError):
        return MediaError(f"{shown!r} cannot be read: permission denied", code=ErrorCode.FILE_UNREADABLE,
                          hint="check the file's owner and mode")
    if exc.errno == errno.ENOTDIR:
        return MediaError(f"{shown!r} does not exist (a parent is not a folder)",
                          code=ErrorCode.FILE_NOT_FOUND)
    reason = exc.strerror or type(exc).__name__
    return MediaError(f"{shown!r} cannot be read: {reason}", code=ErrorCode.FILE_UNREADABLE)


def _check_stat(path: str | os.PathLike[str], st: os.stat_result, max_bytes: int | None) -> None:
    shown = os.fspath(path)
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(f"{shown!r} is a directory, not a file", code=ErrorCode.FILE_UNREADABLE)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
        raise MediaError(f"{shown!r} is not a regular file", code=ErrorCode.FILE_UNREADABLE)
    if st.st_size == 0:
        raise MediaError(f"{shown!r} is empty (0 bytes)", code=ErrorCode.FILE_EMPTY)
    if max_bytes is not None and st.st_size > max_bytes:
        raise MediaError(
            f"{shown!r} is {st.st_size} bytes, more than the limit of {max_bytes}",
            code=ErrorCode.FILE_TOO_LARGE,
            hint="raise max_file_bytes (PHOTOINDEX_MAX_FILE_BYTES) to index it",
            details={"size": st.st_size, "limit": max_bytes},
        )


def read_and_hash(path: str | os.PathLike[str], *, max_bytes: int) -> FileBytes:
    """Read the whole file once and return its bytes with SHA-256 and SHA-1 (lower-case hex).

    The size limit is checked from `fstat` before anything is read. `size` and `mtime_ns` come from
    the same open file descriptor the bytes were read from. Errors are `MediaError`s: FILE_NOT_FOUND,
    FILE_UNREADABLE (permissions, a directory, not a regular file, I/O errors), FILE_EMPTY,
    FILE_TOO_LARGE.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat below then refuses it);
        # it changes nothing for regular files
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise _os_error(path, exc) from None
        _check_stat(path, st, max_bytes)
        try:
            with open(fd, "rb", buffering=0, closefd=False) as raw:
                # FileIO.readall sizes one buffer from fstat and reads until EOF: one pass, no copies
                data = raw.readall()
        except OSError as exc:
            raise _os_error(path, exc) from None
    finally:
        os.close(fd)
    if not data:
        raise MediaError(f"{os.fspath(path)!r} is empty (0 bytes)", code=ErrorCode.FILE_EMPTY)
    if len(data) > max_bytes:
        raise MediaError(
            f"{os.fspath(path)!r} grew past the limit of {max_bytes} bytes while being read",
            code=ErrorCode.FILE_TOO_LARGE,
            details={"limit": max_bytes},
        )
    return FileBytes(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        size=len(data),
        mtime_ns=st.st_mtime_ns,
    )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = _STREAM_CHUNK) -> str:
    """SHA-256 (hex) of a file of any size, streamed in chunks with constant memory.

    Same errors as `read_and_hash` except FILE_EMPTY and FILE_TOO_LARGE (an empty file has a digest).
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _check_stat(path, st, None)
        digest = hashlib.sha256()
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
        return digest.hexdigest()
    except OSError as exc:
        raise _os_error(path, exc) from None
    finally:
        os.close(fd)


__all__ = ["FileBytes", "read_and_hash", "sha256_bytes", "sha256_file"]

