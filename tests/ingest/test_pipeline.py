"""The ingest pipeline end to end, on SQLite and PostgreSQL, with the tiny model and real photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from photoindex.errors import ErrorCode
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.media.thumbnails import thumbnail_path
from photoindex.runtime import Runtime
from photoindex.store.jobs import JobStore
from support.library import LIBRARY, jpeg_bytes
from support.runtime import make_runtime

N = len(LIBRARY)


def files_of(rt: Runtime) -> dict[str, int]:
    coll = rt.collection()
    return {p: s.asset_id for p, s in rt.catalog.file_states(coll.id).items() if not s.missing}


def test_first_ingest_catalogs_thumbnails_and_embeds(rt: Runtime, library: Path) -> None:
    report = ingest(rt, [library])
    assert report.errors == []
    assert (report.files_seen, report.processed, report.embedded, report.embeddings_pending) == (N, N, N, 0)
    assert report.model and report.model.startswith("tiny-clip@")
    coll = rt.collection()
    assert rt.catalog.stats(coll.id)["vectors"] == {"tiny-clip": N}
    assert coll.model == "tiny-clip" and coll.vector_size == 32  # bound on first use
    rocket = rt.catalog.find_asset_by_path(coll.id, normalize_path(library / "trips/rocket.jpg"))
    assert rocket is not None and rocket.camera == "NIKON Z 6" and rocket.mime == "image/jpeg"
    assert (rocket.width, rocket.height) == Image.open(library / "trips/rocket.jpg").size
    assert rocket.taken_at is not None and rocket.taken_at.year == 2021
    for size in (256, 1024):
        thumb = thumbnail_path(rt.settings.thumbnails_dir, rocket.sha256, size)
        with Image.open(thumb) as t:
            assert max(t.size) == min(size, max(rocket.width, rocket.height))
    [job] = JobStore(rt.catalog).list_jobs()
    assert job["status"] == "completed" and job["counts"]["processed"] == N


def test_unchanged_tree_is_not_read_again(rt: Runtime, library: Path) -> None:
    ingest(rt, [library])
    # Replace a file's bytes but keep its size and mtime: a re-ingest that read contents would notice.
    target = library / "home/coffee.jpg"
    st = target.stat()
    target.write_bytes(b"\0" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = ingest(rt, [library])
    assert (again.skipped_unchanged, again.processed, again.failed, again.embedded) == (N, 0, 0, 0)


def test_moved_renamed_duplicated_changed_and_deleted_files(rt: Runtime, library: Path, photos) -> None:
    ingest(rt, [library])
    before = files_of(rt)
    cat_id = before[normalize_path(library / "home/cat.jpg")]
    (library / "archive2023").mkdir()
    shutil.move(library / "home/cat.jpg", library / "archive2023/chelsea.jpg")  # moved + renamed
    shutil.copy(library / "trips/rocket.jpg", library / "home/rocket-copy.jpg")  # exact duplicate
    (library / "home/coffee.jpg").write_bytes(jpeg_bytes(photos["coffee"], quality=60))  # edited in place
    (library / "trips/astronaut.jpg").unlink()  # deleted
    report = ingest(rt, [library])
    assert report.errors == []
    assert (report.moved, report.exact_duplicates, report.processed, report.missing) == (1, 1, 1, 1)
    after = files_of(rt)
    assert after[normalize_path(library / "archive2023/chelsea.jpg")] == cat_id  # the asset kept its identity
    assert normalize_path(library / "home/cat.jpg") not in after
    assert after[normalize_path(library / "home/rocket-copy.jpg")] == after[normalize_path(library / "trips/rocket.jpg")]
    assert after[normalize_path(library / "home/coffee.jpg")] != before[normalize_path(library / "home/coffee.jpg")]
    states = rt.catalog.file_states(rt.collection().id)
    assert states[normalize_path(library / "trips/astronaut.jpg")].missing


def test_missing_file_that_returns_is_live_again(rt: Runtime, library: Path) -> None:
    ingest(rt, [library])
    src = library / "home/cat.jpg"
    keep = src.read_bytes()
    st = src.stat()
    src.unlink()
    assert ingest(rt, [library]).missing == 1
    src.write_bytes(keep)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    back = ingest(rt, [library])
    assert back.skipped_unchanged == N and back.processed == 0
    assert not rt.catalog.file_states(rt.collection().id)[normalize_path(src)].missing


def test_unmounted_root_marks_nothing_missing(rt_sqlite: Runtime, library: Path, tmp_path: Path) -> None:
    ingest(rt_sqlite, [library])
    moved_away = tmp_path / "unplugged"
    library.rename(moved_away)  # the drive is gone
    report = ingest(rt_sqlite, [library])
    assert report.missing == 0 and report.errors[0].code == ErrorCode.FILE_NOT_FOUND
    assert not any(s.missing for s in rt_sqlite.catalog.file_states(rt_sqlite.collection().id).values())


def test_bad_files_are_reported_and_the_run_goes_on(rt_sqlite: Runtime, library: Path) -> None:
    good = (library / "trips/rocket.jpg").read_bytes()
    bad = library / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("this is not a photo")
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (bad / "jpeg-named.png").write_bytes(good)  # wrong extension: decoded by its content
    report = ingest(rt_sqlite, [library])
    codes = {Path(e.path).name: e.code for e in report.errors}
    assert codes == {
        "empty.jpg": ErrorCode.FILE_EMPTY,
        "text.jpg": ErrorCode.UNSUPPORTED_TYPE,
        "truncated.jpg": ErrorCode.TRUNCATED_IMAGE,
        "corrupt.png": ErrorCode.CORRUPT_IMAGE,
    }
    assert report.failed == 4
    # the mislabelled JPEG is the same content as rocket.jpg: an exact duplicate, not an error
    assert report.processed == N and report.exact_duplicates == 1
    assert all(e.message for e in report.errors)


def test_without_a_model_everything_else_runs_and_vectors_wait(tmp_path: Path, library: Path, models_dir: Path) -> None:
    bare = make_runtime(tmp_path / "home", None)
    report = ingest(bare, [library])
    assert report.processed == N and report.embedded == 0 and report.embeddings_pending == N
    assert any("photoindex models pull" in n and "PHOTOINDEX_MODELS_PATH" in n for n in report.notices)
    bare.close()
    # the model arrives later: the next ingest embeds the pending photos from their thumbnails
    later = make_runtime(tmp_path / "home", models_dir)
    again = ingest(later, [library])
    assert (again.skipped_unchanged, again.processed, again.embedded, again.embeddings_pending) == (N, 0, N, 0)
    later.close()


def test_skips_hidden_system_and_archive_folders_and_survives_symlink_loops(rt_sqlite: Runtime, library: Path) -> None:
    one = (library / "trips/rocket.jpg").read_bytes()
    for folder in (".git", "@eaDir", "node_modules", "photoindex-archive", ".hidden"):
        (library / folder).mkdir()
        (library / folder / "x.jpg").write_bytes(one)
    (library / "trips/loop").symlink_to(library)  # a loop back to the root
    (library / "home/link-to-rocket.jpg").symlink_to(library / "trips/rocket.jpg")
    report = ingest(rt_sqlite, [library, library / "trips"])  # overlapping roots
    assert report.errors == []
    assert report.files_seen == N and report.processed == N  # each file once, by its real path
    assert all("/." not in p and "@eaDir" not in p and "archive" not in p for p in files_of(rt_sqlite))


def test_interrupted_run_commits_what_was_done_and_resumes(rt_sqlite: Runtime, library: Path, monkeypatch) -> None:
    from photoindex.ingest.stages import FileStages

    calls = {"n": 0}
    real_emit = FileStages._emit

    def interrupt_after_two(self, results):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        real_emit(self, results)

    monkeypatch.setattr(FileStages, "_emit", interrupt_after_two)
    first = ingest(rt_sqlite, [library])
    assert first.interrupted and first.processed == 2
    assert JobStore(rt_sqlite.catalog).list_jobs()[0]["status"] == "interrupted"
    monkeypatch.setattr(FileStages, "_emit", real_emit)
    second = ingest(rt_sqlite, [library])
    assert not second.interrupted and second.processed == N - 2 and second.skipped_unchanged == 2
    assert rt_sqlite.catalog.stats(rt_sqlite.collection().id)["vectors"] == {"tiny-clip": N}


def test_process_pool_path(tmp_path: Path, models_dir: Path, photos) -> None:
    """Enough files to use the worker processes, including duplicates within one run."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(24):
        img = photos["coffee"].rotate(i * 7)
        (root / f"{i:02d}.jpg").write_bytes(jpeg_bytes(img))
    shutil.copy(root / "00.jpg", root / "00-again.jpg")
    runtime = make_runtime(tmp_path / "home", models_dir, workers=2, batch_size=5, commit_batch_size=7)
    report = ingest(runtime, [root])
    assert report.errors == [] and report.processed == 24 and report.exact_duplicates == 1
    assert report.embedded == 24 and report.embeddings_pending == 0
    runtime.close()


def test_vectors_are_reused_across_collections(rt_sqlite: Runtime, library: Path) -> None:
    ingest(rt_sqlite, [library])
    rt_sqlite.catalog.create_collection("second")
    report = ingest(rt_sqlite, [library], collection="second")
    assert report.processed == N and report.embeddings_reused == N and report.embedded == 0


def test_a_file_that_kills_its_worker_is_reported_and_the_rest_goes_through(
        tmp_path: Path, models_dir: Path, photos, monkeypatch) -> None:  # noqa: ANN001
    from photoindex.ingest.pool import PreparePool
    from support.crashy import prepare_or_die

    root = tmp_path / "many"
    root.mkdir()
    for i in range(20):
        (root / f"{i:02d}.jpg").write_bytes(jpeg_bytes(photos["cat"].rotate(i * 11)))
    (root / "07-crash.jpg").write_bytes(jpeg_bytes(photos["rocket"]))
    monkeypatch.setattr(PreparePool, "prepare_fn", staticmethod(prepare_or_die))
    runtime = make_runtime(tmp_path / "home", models_dir, workers=2)
    report = ingest(runtime, [root])
    assert [(Path(e.path).name, e.code) for e in report.errors] == [("07-crash.jpg", ErrorCode.DECODER_CRASHED)]
    assert report.processed == 20 and report.embedded == 20
    runtime.close()


def test_a_task_that_fails_halfway_redoes_only_the_rest(tmp_path: Path, models_dir: Path, photos,
                                                         monkeypatch) -> None:  # noqa: ANN001
    from photoindex.ingest.stages import FileStages

    root = tmp_path / "lib"
    root.mkdir()
    for i in range(12):
        (root / f"{i:02d}.jpg").write_bytes(jpeg_bytes(photos["coffee"].rotate(i * 13)))
    real_commit = FileStages._commit
    commits = {"n": 0}

    def commit_then_fail(self, parts):  # noqa: ANN001
        commits["n"] += 1
        if commits["n"] == 2:
            raise ConnectionError("database went away")  # after the first batch was committed
        real_commit(self, parts)

    monkeypatch.setattr(FileStages, "_commit", commit_then_fail)
    runtime = make_runtime(tmp_path / "home", models_dir, workers=1, batch_size=5, commit_batch_size=5,
                             retry_base_s=0.05)
    report = ingest(runtime, [root])
    assert report.errors == [] and report.processed == 12 and report.embedded == 12
    [task] = [t for t in JobStore(runtime.catalog).tasks(report.job_id) if t["kind"] == "ingest.files"]
    assert task["status"] == "done" and task["attempts"] == 2
    assert task["result"]["already_done"] == 5  # the second attempt skipped what the first committed
    assert runtime.catalog.stats(runtime.collection().id)["assets"] == 12
    runtime.close()
