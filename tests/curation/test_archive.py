"""Archive = move, never delete; undo restores every byte and every catalog row (checked by hashes);
a batch killed halfway (kill -9 at each point of a move) is recoverable with undo. Real ingest of real
photos, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from archive_support import COPIES, N_FILES, build_with_copies, catalog_digest, ingest_ok, tree_digest
from PIL import Image
from support.runtime import make_runtime

from photoindex.curation import archive
from photoindex.curation.moves import CRASH_ENV
from photoindex.errors import PhotoindexError
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters
from photoindex.store import archives
from photoindex.store.archives import FileRow

ARCHIVE = "photoindex-archive"


@pytest.fixture
def rt(tmp_path: Path, models_dir: Path, catalog_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "home", models_dir, catalog_url=catalog_url)
    yield runtime
    runtime.close()


@pytest.fixture
def lib(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    return build_with_copies(tmp_path / "library", photos)


def _path(lib: Path, rel: str) -> str:
    return normalize_path(lib / rel)


def _asset_of(rt: Runtime, lib: Path, rel: str) -> int:
    found = rt.catalog.find_asset_by_path(rt.collection().id, _path(lib, rel))
    assert found is not None
    return found.id


def test_archive_exact_then_undo_restores_every_byte_and_row(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)

    dry = archive.archive_exact(rt, dry_run=True)
    assert dry.batch_id is None and dry.status == "planned" and dry.files == len(COPIES)
    assert tree_digest(lib) == disk0 and catalog_digest(rt.catalog) == rows0  # a dry run touches nothing

    out = archive.archive_exact(rt)
    assert out.status == "done" and out.counts == {"moved": len(COPIES)}
    moved = {Path(i.src).relative_to(lib).as_posix(): i.dst for i in out.items or []}
    assert set(moved) == set(COPIES)  # the originals are kept: oldest, outside Downloads, not named "copy"
    for rel, dst in moved.items():
        assert dst == _path(lib, f"{ARCHIVE}/{rel}")
        assert not (lib / rel).exists()
        assert tree_digest(lib)[f"{ARCHIVE}/{rel}"] == disk0[rel]  # same bytes, mtime and mode
    # the manifest: written before each move, one line per file
    [manifest] = out.manifest_paths
    assert manifest == _path(lib, f"{ARCHIVE}/manifest-{out.batch_id}.jsonl")
    lines = [json.loads(line) for line in Path(manifest).read_text().splitlines()]
    assert {(r["from"], r["to"]) for r in lines} == {(i.src, i.dst) for i in out.items or []}
    assert all(r["why"] == "exact duplicates" and len(r["sha256"]) == 64 and r["when"] for r in lines)
    # catalog: the copies' rows are gone, the assets stay active with their kept file
    coll = rt.collection()
    states = rt.catalog.file_states(coll.id)
    assert len(states) == N_FILES - len(COPIES) and not any(s.missing for s in states.values())
    assert rt.catalog.get_asset(_asset_of(rt, lib, "trips/rocket.jpg")).status == "active"
    assert archives.archived_counts(rt.catalog, coll.id)["files"] == len(COPIES)

    undone = archive.undo(rt, out.batch_id)
    assert undone.status == "undone" and undone.verified is True and undone.counts == {"restored": len(COPIES)}
    assert tree_digest(lib, skip=ARCHIVE) == disk0
    assert sorted(p.name for p in (lib / ARCHIVE).rglob("*")) == [Path(manifest).name]  # only the record stays
    assert catalog_digest(rt.catalog) == rows0
    with pytest.raises(PhotoindexError) as err:
        archive.undo(rt, out.batch_id)
    assert err.value.code == archive.CONFLICT and err.value.details["reason"] == archive.ALREADY_UNDONE


def test_archived_asset_is_hidden_and_two_batches_undo_in_any_order(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    coll = rt.collection()
    cat = _asset_of(rt, lib, "home/cat.jpg")
    first = archive.archive_exact(rt)  # home/old/cat.jpg goes; home/cat.jpg stays
    second = archive.archive_selection(rt, asset_ids=[cat], reason="not wanted")
    assert second.counts == {"moved": 1} and second.assets_archived == 1
    assert rt.catalog.get_asset(cat).status == "archived"
    # hidden from listings and filtered search; unfiltered search excludes `hidden_asset_ids`
    assert cat in archives.hidden_asset_ids(rt.catalog, coll.id).tolist()
    assert cat not in rt.catalog.filter_asset_ids(coll.id, SearchFilters(camera="iphone")).tolist()
    model = rt.embedder("tiny-clip")
    space = rt.space(rt.collection(), model)
    vector = rt.catalog.get_vector(cat, "tiny-clip")
    assert vector is not None  # vectors stay, for an exact undo
    hits = rt.index.search(space, vector, 10, exclude=archives.hidden_asset_ids(rt.catalog, coll.id).tolist())
    assert cat not in [a for a, _ in hits] and len(hits) == 4

    archive.undo(rt, first.batch_id)  # the older batch first: the cat's copy is back, so it shows again
    assert rt.catalog.get_asset(cat).status == "active"
    assert cat not in archives.hidden_asset_ids(rt.catalog, coll.id).tolist()
    archive.undo(rt, second.batch_id)
    assert rt.catalog.get_asset(cat).status == "active"
    assert tree_digest(lib, skip=ARCHIVE) == disk0 and catalog_digest(rt.catalog) == rows0
    assert [b.status for b in archive.list_batches(rt)] == ["undone", "undone"]


def test_reingest_after_archive_neither_readds_nor_marks_missing(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    rows0 = catalog_digest(rt.catalog)
    out = archive.archive_exact(rt)
    again = ingest_ok(rt, [lib])
    assert (again.files_seen, again.processed, again.missing, again.moved) == (N_FILES - len(COPIES), 0, 0, 0)
    states = rt.catalog.file_states(rt.collection().id)
    assert not any(ARCHIVE in p for p in states) and not any(s.missing for s in states.values())
    undone = archive.undo(rt, out.batch_id)
    assert undone.verified is True  # an unchanged tree is not written to: the kept rows are as they were
    states = rt.catalog.file_states(rt.collection().id)
    assert len(states) == N_FILES and not any(s.missing for s in states.values())
    assert catalog_digest(rt.catalog) == rows0


def test_undo_refuses_when_the_source_path_holds_other_content(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    rows0 = catalog_digest(rt.catalog)
    out = archive.archive_selection(rt, file_ids=[_file_id(rt, lib, "Downloads/rocket.jpg")], reason="manual")
    intruder = lib / "Downloads/rocket.jpg"
    intruder.write_bytes(b"someone else's photo")
    archived_rows = catalog_digest(rt.catalog)
    with pytest.raises(PhotoindexError) as err:
        archive.undo(rt, out.batch_id)
    assert err.value.code == archive.CONFLICT and err.value.details["reason"] == archive.PATHS_TAKEN
    [conflict] = err.value.details["conflicts"]
    assert conflict["problem"] == "!occupied" and conflict["src"] == str(intruder)
    assert intruder.read_bytes() == b"someone else's photo"  # nothing was overwritten or moved
    assert (lib / ARCHIVE / "Downloads/rocket.jpg").exists() and catalog_digest(rt.catalog) == archived_rows
    intruder.unlink()
    assert archive.undo(rt, out.batch_id).status == "undone"
    assert catalog_digest(rt.catalog) == rows0


def test_taken_archive_name_gets_a_suffix_and_changed_files_are_skipped(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    squatter = lib / ARCHIVE / "Downloads/rocket.jpg"
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"an older archive's file")
    changed = lib / "home/old/cat.jpg"
    changed.write_bytes(changed.read_bytes() + b"edited")  # changed since the ingest
    out = archive.archive_exact(rt)
    by_src = {Path(i.src).relative_to(lib).as_posix(): i for i in out.items or []}
    assert by_src["Downloads/rocket.jpg"].dst == _path(lib, f"{ARCHIVE}/Downloads/rocket~1.jpg")
    assert squatter.read_bytes() == b"an older archive's file"
    assert by_src["home/old/cat.jpg"].status == "skipped" and changed.exists()
    assert out.counts == {"moved": 2, "skipped": 1}


def _file_id(rt: Runtime, lib: Path, rel: str) -> int:
    return rt.catalog.file_states(rt.collection().id)[_path(lib, rel)].id


def _other_device_dir(lib: Path) -> Path | None:
    """A folder on another device than `lib` (tmpfs), or None."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(lib).st_dev or not os.access(shm, os.W_OK):
        return None
    return Path(tempfile.mkdtemp(prefix="photoindex-archive-test-", dir=shm))


@pytest.fixture
def cross_device_lib(lib: Path) -> Iterator[Path]:
    """The library whose archive folder lives on another device (a symlink to tmpfs)."""
    other = _other_device_dir(lib)
    if other is None:
        pytest.skip("no second device (/dev/shm on the same device as the test folder)")
    (lib / ARCHIVE).symlink_to(other, target_is_directory=True)
    yield lib
    import shutil

    shutil.rmtree(other, ignore_errors=True)


def test_cross_device_moves_copy_verify_then_remove(rt: Runtime, cross_device_lib: Path) -> None:
    lib = cross_device_lib
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    out = archive.archive_exact(rt)
    assert out.counts == {"moved": len(COPIES)}
    for rel in COPIES:
        target = lib / ARCHIVE / rel
        assert os.stat(target).st_dev != os.stat(lib).st_dev and not (lib / rel).exists()
        st = target.stat()
        assert (st.st_size, st.st_mtime_ns, st.st_mode) == disk0[rel][1:]  # copied with its stat
        assert hashlib.sha256(target.read_bytes()).hexdigest() == disk0[rel][0]
    assert not [p for p in (lib / ARCHIVE).rglob(".*.tmp")]
    archive.undo(rt, out.batch_id)
    assert tree_digest(lib, skip=ARCHIVE) == disk0 and catalog_digest(rt.catalog) == rows0


# -- crashes -------------------------------------------------------------------------------------
_CHILD = """
import sys
from photoindex.config import load_settings
from photoindex.curation import archive
from photoindex.runtime import Runtime
rt = Runtime(load_settings(home=sys.argv[1], catalog_url=sys.argv[2], auto_pull=False))
archive.archive_exact(rt)
print("finished")
"""


def _archive_in_child(rt: Runtime, crash: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env[CRASH_ENV] = crash
    return subprocess.run([sys.executable, "-c", _CHILD, str(rt.settings.home), rt.settings.resolved_catalog_url],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("crash", ["after_manifest:1", "after_move:2", "after_commit:2", "after_manifest:3"])
def test_batch_killed_halfway_is_undone(rt: Runtime, lib: Path, crash: str) -> None:
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    proc = _archive_in_child(rt, crash)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # killed as by kill -9, mid-batch
    [batch] = archive.list_batches(rt)
    assert batch.status == "pending"
    # a scan meanwhile marks the half-moved files missing; undo must set that right too
    ingest_ok(rt, [lib])
    undone = archive.undo(rt, batch.batch_id)
    assert undone.status == "undone"
    assert tree_digest(lib, skip=ARCHIVE) == disk0
    assert catalog_digest(rt.catalog) == rows0  # rows the scan marked missing are back as they were


def test_batch_killed_without_a_scan_restores_rows_exactly(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    assert _archive_in_child(rt, "after_move:2").returncode == -9
    [batch] = archive.list_batches(rt)
    undone = archive.undo(rt, batch.batch_id)
    assert undone.verified is True
    assert tree_digest(lib, skip=ARCHIVE) == disk0 and catalog_digest(rt.catalog) == rows0


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("crash", ["after_copy:1", "after_copy:2", "after_manifest:2"])
def test_cross_device_batch_killed_between_copy_and_remove(rt: Runtime, cross_device_lib: Path, crash: str) -> None:
    lib = cross_device_lib
    ingest_ok(rt, [lib])
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    assert _archive_in_child(rt, crash).returncode == -9
    if crash.startswith("after_copy"):  # the verified copy is in place and the source still there
        n = int(crash.split(":")[1])
        both = [rel for rel in COPIES if (lib / rel).exists() and (lib / ARCHIVE / rel).exists()]
        assert len(both) == 1 and n >= 1
    [batch] = archive.list_batches(rt)
    archive.undo(rt, batch.batch_id)
    assert tree_digest(lib, skip=ARCHIVE) == disk0 and catalog_digest(rt.catalog) == rows0
    assert not [p for p in (lib / ARCHIVE).rglob("*.tmp")]


# -- rules ----------------------------------------------------------------------------------------
def _row(path: str, mtime: int) -> FileRow:
    from datetime import datetime

    return FileRow(1, 1, 1, path, 10, mtime, datetime(2024, 1, 1), False)


def test_keep_rank_prefers_library_folders_then_original_names_then_oldest_then_shortest() -> None:
    rows = [_row("/p/Downloads/a.jpg", 1), _row("/p/2021/a copy.jpg", 2), _row("/p/2021/deep/a.jpg", 5),
            _row("/p/2021/a.jpg", 5), _row("/p/tmp/x/a.jpg", 0), _row("/p/2021/a (1).jpg", 0)]
    ranked = [r.path for r in sorted(rows, key=archive.keep_rank)]
    assert ranked == ["/p/2021/a.jpg", "/p/2021/deep/a.jpg", "/p/2021/a (1).jpg", "/p/2021/a copy.jpg",
                      "/p/tmp/x/a.jpg", "/p/Downloads/a.jpg"]


def test_destination_uses_the_outermost_ingest_root() -> None:
    roots = ["/lib/2023/trip", "/lib", "/other"]
    assert archive.destination("/lib/2023/trip/a.jpg", roots, "arch") == ("/lib/arch", "/lib/arch/2023/trip/a.jpg")
    assert archive.destination("/elsewhere/b.jpg", roots, "arch") == ("/elsewhere/arch", "/elsewhere/arch/b.jpg")
    assert archive.destination("/library/c.jpg", roots, "arch")[0] == "/library/arch"  # not below "/lib"


def test_bad_selections_are_structured_errors(rt: Runtime, lib: Path) -> None:
    ingest_ok(rt, [lib])
    empty = archive.archive_selection(rt, asset_ids=[], file_ids=[])
    assert (empty.batch_id, empty.files, empty.items) == (None, 0, []) and archive.list_batches(rt) == []
    with pytest.raises(PhotoindexError) as err:
        archive.archive_selection(rt, file_ids=[999_999])
    assert err.value.code == "asset_not_found" and err.value.details["file_ids"] == [999_999]
    with pytest.raises(PhotoindexError) as err:
        archive.undo(rt, 424242)
    assert err.value.code == archive.NOT_FOUND
    assert np.array_equal(archives.hidden_asset_ids(rt.catalog, rt.collection().id), np.empty(0, np.int64))
