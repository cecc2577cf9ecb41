"""`photoindex archive …` and `photoindex curation …` as a person and a script use them (real ingest,
real catalog, tiny model)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from archive_support import COPIES, build_with_copies, ingest_ok, tree_digest
from PIL import Image
from typer.testing import CliRunner

from photoindex.cli import archive as archive_cli
from photoindex.cli import curation as curation_cli
from photoindex.cli.common import State
from photoindex.config import load_settings
from photoindex.runtime import Runtime

app = typer.Typer()
app.add_typer(archive_cli.app, name="archive")
app.add_typer(curation_cli.app, name="curation")


@pytest.fixture
def lib(tmp_path: Path, models_dir: Path, photos: dict[str, Image.Image],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = build_with_copies(tmp_path / "library", photos)
    values = {"PHOTOINDEX_HOME": str(tmp_path / "home"), "PHOTOINDEX_MODELS_PATH": str(models_dir),
              "PHOTOINDEX_MODEL": "tiny-clip", "PHOTOINDEX_AUTO_PULL": "false"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    rt = Runtime(load_settings())
    ingest_ok(rt, [root])
    rt.close()
    State.runtime = None
    yield root
    if State.runtime is not None:
        State.runtime.close()
    State.runtime = None


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_archive_exact_list_show_and_undo(lib: Path) -> None:
    disk0 = tree_digest(lib)
    code, out = run("archive", "exact", "--dry-run")
    assert code == 0 and "would archive 3 file(s)" in out and "nothing was moved" in out
    code, out = run("archive", "exact", "--json")
    assert code == 0, out
    batch = json.loads(out)
    assert batch["status"] == "done" and batch["counts"] == {"moved": len(COPIES)}
    code, out = run("archive", "list")
    assert code == 0 and "exact" in out and "moved" in out and "done" in out
    code, out = run("archive", "list", "--json")
    assert [b["batch_id"] for b in json.loads(out)] == [batch["batch_id"]]
    code, out = run("archive", "show", str(batch["batch_id"]), "--json")
    assert {i["status"] for i in json.loads(out)["items"]} == {"moved"}
    code, out = run("archive", "undo", str(batch["batch_id"]))
    assert code == 0 and "undone" in out and "verified" in out
    assert tree_digest(lib, skip="photoindex-archive") == disk0
    code, out = run("archive", "undo", str(batch["batch_id"]), "--json")
    assert code == 1 and json.loads(out)["error"]["details"]["reason"] == "already_undone"
    code, out = run("archive", "undo", "777")
    assert code == 1 and "no archive batch 777" in out


def test_archive_select_files_and_keep(lib: Path) -> None:
    rt = Runtime(load_settings())
    coll = rt.collection()
    states = rt.catalog.file_states(coll.id)
    rocket = states[str(lib / "trips/rocket.jpg")]
    downloads = states[str(lib / "Downloads/rocket.jpg")]
    rt.close()
    code, out = run("archive", "select", str(rocket.asset_id), "--keep", f"{rocket.asset_id}:{downloads.id}",
                    "--json")
    assert code == 0, out
    moved = sorted(i["src"] for i in json.loads(out)["items"])
    assert moved == sorted([str(lib / "trips/rocket.jpg"), str(lib / "trips/rocket copy.jpg")])
    code, out = run("archive", "select", "--files", str(downloads.id), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["items"][0]["src"] == str(lib / "Downloads/rocket.jpg")
    code, out = run("archive", "select", "1", "--keep", "oops")
    assert code == 1 and "ASSET:FILE" in out


def test_report_and_clusters(lib: Path, tmp_path: Path) -> None:
    code, out = run("curation", "report")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["section"], r["key"], r["count"]) for r in rows} >= {("summary", "assets", "5"), ("type", "image/jpeg", "5")}
    target = tmp_path / "report.json"
    code, out = run("curation", "report", "--format", "json", "--out", str(target))
    assert code == 0 and json.loads(target.read_text())["duplicates"]["exact_extra_files"] == len(COPIES)
    code, out = run("curation", "report", "--format", "xml")
    assert code == 1 and "unknown format" in out

    code, out = run("curation", "clusters", "--k", "2", "--json", "--points")
    assert code == 0, out
    result = json.loads(out)
    assert result["k"] == 2 and len(result["points"]) == 5
    code, out = run("curation", "clusters", "--k", "2")
    assert code == 0 and "5 photos in 2 clusters" in out
    first = result["clusters"][0]
    code, out = run("curation", "clusters", "--k", "2", "--save", "firstgroup", str(first["id"]), "--json")
    assert code == 0, out
    assert json.loads(out)["assets"] == first["size"]
    code, out = run("curation", "clusters", "--k", "2", "--save", "other", "9")
    assert code == 1 and "no cluster 9" in out
