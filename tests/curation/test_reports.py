"""The collection report (JSON and CSV) over a real ingest: counts by camera, year and type, exact
copies, the tiers of a finished duplicate search, ingest failures, missing and archived files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_support import build_with_copies, ingest_ok
from PIL import Image
from support.runtime import make_runtime

from photoindex.curation import archive
from photoindex.curation.reports import CSV_COLUMNS, collection_report, report_csv
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime
from photoindex.store.jobs import JobStore


@pytest.fixture
def rt(tmp_path: Path, models_dir: Path, catalog_url: str) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "home", models_dir, catalog_url=catalog_url)
    yield runtime
    runtime.close()


def test_report_counts_duplicates_failures_missing_and_archived(rt: Runtime, tmp_path: Path,
                                                               photos: dict[str, Image.Image]) -> None:
    lib = build_with_copies(tmp_path / "library", photos)
    broken = lib / "home/broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    first = ingest(rt, [lib])
    assert [e.path for e in first.errors] == [normalize_path(broken)]

    report = collection_report(rt)
    assert (report.assets, report.files, report.missing_files, report.archived_files) == (5, 8, 0, 0)
    assert [(c.key, c.count) for c in report.by_camera] == [("Apple iPhone 13", 2), ("NIKON Z 6", 2), ("unknown", 1)]
    assert [(c.key, c.count) for c in report.by_year] == [("2021", 2), ("2023", 2), ("unknown", 1)]
    assert [(c.key, c.count) for c in report.by_type] == [("image/jpeg", 5)]
    assert sum(c.bytes for c in report.by_type) == report.bytes > 0
    d = report.duplicates
    assert (d.exact_groups, d.exact_extra_files) == (2, 3) and d.exact_extra_bytes > 0 and d.job_id is None
    [failure] = report.failures
    assert failure.path == normalize_path(broken) and failure.job_id == first.job_id
    assert report.failures_by_code == {failure.code: 1}

    # archive the copies and one whole photo; lose another file; fix the broken one
    archive.archive_exact(rt)
    coffee = rt.catalog.find_asset_by_path(rt.collection().id, normalize_path(lib / "home/coffee.jpg"))
    assert coffee is not None
    archive.archive_selection(rt, asset_ids=[coffee.id])
    (lib / "trips/astronaut.jpg").unlink()
    broken.write_bytes((lib / "home/cat.jpg").read_bytes())  # now an exact copy of the cat
    ingest(rt, [lib])

    after = collection_report(rt)
    assert (after.assets, after.archived_assets, after.archived_files, after.missing_files) == (4, 1, 4, 1)
    assert after.failures == [] and after.batches == {"done": 2}
    assert [(c.key, c.count) for c in after.by_camera] == [("NIKON Z 6", 2), ("Apple iPhone 13", 1), ("unknown", 1)]
    assert (after.duplicates.exact_groups, after.duplicates.exact_extra_files) == (1, 1)


def test_report_takes_tiers_from_the_newest_finished_duplicate_search(rt: Runtime, library: Path) -> None:
    ingest_ok(rt, [library])
    coll = rt.collection()
    jobs = JobStore(rt.catalog)
    old = jobs.create_job("duplicates", coll.id, {"collection": coll.name})
    jobs.set_job(old, status="completed", report={"counts": {"near": {"groups": 9, "assets": 18}}})
    new = jobs.create_job("duplicates", coll.id, {"collection": coll.name})
    jobs.set_job(new, status="completed", report={"counts": {
        "perceptual": {"groups": 2, "assets": 5, "archive_files": 3, "archive_bytes": 1000},
        "burst": {"groups": 1, "assets": 3, "archive_files": 0, "archive_bytes": 0}}})
    running = jobs.create_job("duplicates", coll.id, {"collection": coll.name})  # not finished: ignored
    assert running > new

    report = collection_report(rt)
    assert report.duplicates.job_id == new
    assert report.duplicates.tiers["perceptual"] == {"groups": 2, "assets": 5, "archive_files": 3,
                                                    "archive_bytes": 1000}
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    dup = {r["key"]: r for r in rows if r["section"] == "duplicates"}
    assert dup["perceptual"]["count"] == "2" and dup["burst"]["count"] == "1" and dup["exact"]["count"] == "0"
    by_section = {(r["section"], r["key"]): r["count"] for r in rows}
    assert by_section[("summary", "assets")] == "5" and by_section[("camera", "NIKON Z 6")] == "2"
    assert by_section[("year", "2023")] == "2" and by_section[("type", "image/jpeg")] == "5"


def test_report_of_an_unknown_collection_is_a_structured_error(rt: Runtime) -> None:
    from photoindex.errors import PhotoindexError

    with pytest.raises(PhotoindexError) as err:
        collection_report(rt, "nope")
    assert err.value.code == "collection_not_found"
