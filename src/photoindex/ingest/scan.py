"""Directory walking: which files under the roots are photos, with their size and mtime.

Paths are made absolute and symlink-free (`realpath`) so that one file reached two ways is still one
path, and every directory is entered once (by device and inode), so symlink loops end. Only `stat`
is called here; file contents are read later, and only for new or changed files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from photoindex.errors import ErrorCode
from photoindex.media.formats import is_candidate


@dataclass(frozen=True)
class ScannedFile:
    path: str  # absolute, normalized POSIX path
    size: int
    mtime_ns: int


ErrorSink = Callable[[str, ErrorCode, str], None]


def normalize_path(path: str | Path) -> str:
    """The one spelling of a path in the catalog: absolute, symlinks resolved, POSIX separators."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path)))).as_posix()


@dataclass
class Walker:
    exclude_dirs: frozenset[str]
    follow_symlinks: bool = True

    @classmethod
    def from_names(cls, names: Iterable[str], *, archive_dir_name: str, follow_symlinks: bool = True) -> Walker:
        return cls(frozenset(names) | {archive_dir_name}, follow_symlinks)

    def skip_dir(self, name: str) -> bool:
        return name.startswith(".") or name in self.exclude_dirs

    def walk(self, roots: Iterable[str | Path], on_error: ErrorSink) -> Iterator[ScannedFile]:
        """Yield each photo file below the roots once. Unreadable folders are reported, not fatal."""
        seen_dirs: set[tuple[int, int]] = set()
        seen_files: set[str] = set()
        for root in roots:
            path = normalize_path(root)
            try:
                st = os.stat(path)
            except OSError as exc:
                on_error(path, ErrorCode.FILE_NOT_FOUND, f"cannot open {path}: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(path, st, seen_dirs, seen_files, on_error)
            elif stat.S_ISREG(st.st_mode) and is_candidate(path) and path not in seen_files:
                seen_files.add(path)
                yield ScannedFile(path, st.st_size, st.st_mtime_ns)

    def _walk_dir(
        self,
        top: str,
        top_stat: os.stat_result,
        seen_dirs: set[tuple[int, int]],
        seen_files: set[str],
        on_error: ErrorSink,
    ) -> Iterator[ScannedFile]:
        stack = [(top, (top_stat.st_dev, top_stat.st_ino))]
        while stack:
            folder, ident = stack.pop()
            if ident in seen_dirs:
                continue
            seen_dirs.add(ident)
            try:
                with os.scandir(folder) as entries:
                    children = sorted(entries, key=lambda e: e.name)  # stable order: reports and tests repeat
            except OSError as exc:
                on_error(folder, ErrorCode.FILE_UNREADABLE, f"cannot list folder: {exc.strerror or exc}")
                continue
            subdirs = []
            for entry in children:
                name = entry.name
                try:
                    is_link = entry.is_symlink()
                    if is_link and not self.follow_symlinks:
                        continue
                    if entry.is_dir(follow_symlinks=True):
                        if self.skip_dir(name):
                            continue
                        target = os.path.realpath(entry.path) if is_link else entry.path
                        st = os.stat(target)
                        subdirs.append((target, (st.st_dev, st.st_ino)))
                        continue
                    if name.startswith(".") or not is_candidate(name):
                        continue
                    if not entry.is_file(follow_symlinks=True):
                        continue
                    path = os.path.realpath(entry.path) if is_link else entry.path
                    if path in seen_files:
                        continue
                    seen_files.add(path)
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:  # dangling link, permission, vanished meanwhile
                    on_error(entry.path, ErrorCode.FILE_UNREADABLE, f"cannot stat: {exc.strerror or exc}")
                    continue
                yield ScannedFile(Path(path).as_posix(), st.st_size, st.st_mtime_ns)
            stack.extend(reversed(subdirs))
