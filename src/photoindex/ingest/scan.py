"""What changed on disk: walking the roots (which files are photos, their size and mtime) and
comparing that with the catalog (new, changed, unchanged, gone), then settling what is gone.

Paths are made absolute and symlink-free (`realpath`) so that one file reached two ways is still one
path, and every directory is entered once (by device and inode), so symlink loops end. Only `stat`
is called here; file contents are read later, and only for new or changed files.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from pathlib import Path

from photoindex.cache import observe
from photoindex.errors import ErrorCode
from photoindex.media.formats import is_candidate
from photoindex.schemas import FileError, IngestReport
from photoindex.store.catalog import FileState, folder_range

if TYPE_CHECKING:
    from photoindex.ingest.stages import Progress
    from photoindex.runtime import Runtime


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


@dataclass
class ScanPlan:
    todo: list[ScannedFile] = field(default_factory=list)
    gone: dict[str, FileState] = field(default_factory=dict)  # known paths not found on disk
    reappeared: list[int] = field(default_factory=list)  # file ids marked missing that are back unchanged
    folders: list[str] = field(default_factory=list)  # the folders whose catalog state was compared


def scan(rt: Runtime, report: IngestReport, progress: Progress, *, min_age_s: float | None = None) -> ScanPlan:
    """Walk the roots and compare them with the catalog. `min_age_s` leaves out files modified more
    recently than that (a hot-folder scan must not catch a neighbour that is still being written)."""
    settings = rt.settings
    coll = rt.collection(report.collection)
    walker = Walker.from_names(settings.exclude_dirs, archive_dir_name=settings.archive_dir_name,
                               follow_symlinks=settings.follow_symlinks)
    folders = [r for r in report.roots if Path(r).is_dir()]
    files = [r for r in report.roots if Path(r).is_file()]
    plan = ScanPlan(folders=folders + [Path(f).parent.as_posix() for f in files])
    known = rt.catalog.file_states(coll.id, plan.folders)
    unreadable: list[str] = []

    def on_error(path: str, code: ErrorCode, message: str) -> None:
        if code == ErrorCode.FILE_UNREADABLE and Path(path).is_dir():
            unreadable.append(path)
        report.errors.append(FileError(path=path, code=code, message=message))

    seen: set[str] = set()
    young_before = time.time_ns() - int((min_age_s or 0) * 1e9)
    for f in walker.walk(report.roots, on_error):
        seen.add(f.path)
        if min_age_s and f.mtime_ns > young_before:
            continue  # still being written: its own change event brings it in later
        report.files_seen += 1
        progress.advance()
        state = known.get(f.path)
        if state is not None and state.size == f.size and state.mtime_ns == f.mtime_ns:
            report.skipped_unchanged += 1
            if state.missing:
                plan.reappeared.append(state.id)
            continue
        plan.todo.append(f)
    # A file counts as gone only below a root that was walked and not below a folder we could not list:
    # an unmounted drive or a permission error must not mark a library missing.
    walked = [folder_range(d) for d in folders]
    blind = [folder_range(d) for d in unreadable]
    for path, state in known.items():
        if path in seen or state.missing:
            continue
        inside = path in files or any(lo <= path < hi for lo, hi in walked)
        if inside and not any(lo <= path < hi for lo, hi in blind):
            plan.gone[path] = state
    return plan


def reconcile(rt: Runtime, collection: str, gone: dict[str, FileState], linked_assets: set[int],
              ) -> tuple[set[int], int]:
    """Files gone from disk. A gone path whose content this job linked at a new path was moved: its
    row goes, the asset stays, with the new path. The rest are marked missing (never deleted: the
    drive may come back). Idempotent. Returns (moved asset ids, files marked missing)."""
    still_gone = {p: s for p, s in gone.items() if not os.path.exists(p)}
    moved = [s for s in still_gone.values() if s.asset_id in linked_assets]
    missing = [s.id for s in still_gone.values() if s.asset_id not in linked_assets]
    observe.files_gone(rt.result_cache, collection, [p for p, s in still_gone.items() if s.asset_id in linked_assets])
    rt.catalog.delete_files([s.id for s in moved])
    rt.catalog.set_missing(missing)
    return {s.asset_id for s in moved}, len(missing)
