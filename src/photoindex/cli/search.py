"""`photoindex search | similar | info`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from photoindex.cli.common import COLLECTION_OPTION, JSON_OPTION, console, emit_json, handle_errors, runtime
from photoindex.ingest.scan import normalize_path
from photoindex.schemas import SearchFilters, SearchHit
from photoindex.search.service import resolve_asset, search_similar, search_text

K_OPTION = typer.Option(20, "--limit", "-k", min=1, max=10_000, help="How many results.")
FROM_OPTION = typer.Option(None, "--from", help="Taken on or after (YYYY-MM-DD[THH:MM]).")
TO_OPTION = typer.Option(None, "--to", help="Taken on or before (YYYY-MM-DD[THH:MM]).")
CAMERA_OPTION = typer.Option(None, "--camera", help="Camera make/model contains this (case-insensitive).")
PATH_OPTION = typer.Option(None, "--in", help="Only photos in this folder (recursively).")
TAG_OPTION = typer.Option(None, "--tag", help="Only photos with this tag or object (repeatable: all of them).")
TEXT_OPTION = typer.Option(None, "--has-text/--no-text", help="Only photos with (or without) text found by OCR.")
QUALITY_OPTION = typer.Option(None, "--min-quality", min=0.0, max=1.0, help="Technical quality at least (0-1).")


def _filters(date_from: datetime | None, date_to: datetime | None, camera: str | None,
             folder: Path | None, tags: list[str] | None = None, has_text: bool | None = None,
             min_quality: float | None = None) -> SearchFilters:
    if date_to is not None and date_to.hour == date_to.minute == date_to.second == 0:
        date_to = date_to.replace(hour=23, minute=59, second=59)  # a bare date means the whole day
    return SearchFilters(date_from=date_from, date_to=date_to, camera=camera,
                         path_prefix=normalize_path(folder) if folder else None, tags=tags or [],
                         has_text=has_text, min_quality=min_quality)


def _render(hits: list[SearchHit], as_json: bool) -> None:
    if as_json:
        emit_json(hits)
        return
    if not hits:
        console.print("no matches")
        return
    table = Table("#", "score", "taken", "camera", "found by")
    table.add_column("path", overflow="fold")  # a path is what people act on: never cut it
    table.add_column("id")
    for i, h in enumerate(hits, 1):
        table.add_row(str(i), f"{h.score:.3f}", h.taken_at.strftime("%Y-%m-%d %H:%M") if h.taken_at else "-",
                      h.camera or "-", ", ".join(h.found_by) or "image", h.path or "-", str(h.asset_id))
    console.print(table)


@handle_errors
def search(
    text: str = typer.Argument(..., help='What to look for, in words: "red car at night".'),
    k: int = K_OPTION,
    date_from: datetime = FROM_OPTION,
    date_to: datetime = TO_OPTION,
    camera: str = CAMERA_OPTION,
    folder: Path = PATH_OPTION,
    tags: list[str] = TAG_OPTION,
    has_text: bool = TEXT_OPTION,
    min_quality: float = QUALITY_OPTION,
    mode: str = typer.Option("hybrid", "--mode", help="hybrid: pixels + words found in photos (captions, OCR "
                             "text, tags); image: pixels only; words: found words only."),
    model: str = typer.Option(None, "--model", help="Search the vectors of another model the collection has."),
    collection: str = COLLECTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Find photos by describing them.

    Hybrid search (the default) also finds a photo by the words on it (a sign, a receipt) and by its
    caption and tags once `photoindex enrich` (or an ingest with enrichers) has run."""
    hits = search_text(runtime(), text, collection=collection, k=k, model=model, mode=mode,
                       filters=_filters(date_from, date_to, camera, folder, tags, has_text, min_quality))
    _render(hits, as_json)


@handle_errors
def similar(
    target: str = typer.Argument(..., help="An image file (in the catalog or not), an asset id or a SHA-256."),
    k: int = K_OPTION,
    date_from: datetime = FROM_OPTION,
    date_to: datetime = TO_OPTION,
    camera: str = CAMERA_OPTION,
    folder: Path = PATH_OPTION,
    collection: str = COLLECTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Find photos that look like TARGET."""
    hits = search_similar(runtime(), target, collection=collection, k=k,
                          filters=_filters(date_from, date_to, camera, folder))
    _render(hits, as_json)


@handle_errors
def info(
    target: str = typer.Argument(..., help="A path that was ingested, an asset id or a SHA-256."),
    collection: str = COLLECTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show what the catalog knows about one photo: hashes, size, EXIF, files, vectors."""
    rt = runtime()
    asset = resolve_asset(rt, rt.collection(collection), target)
    assert asset is not None
    if as_json:
        emit_json(asset)
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "sha256", "mime", "width", "height", "bytes", "taken_at", "camera", "lens", "gps_lat",
                "gps_lon", "status"):
        value = getattr(asset, key)
        if value is not None:
            table.add_row(f"[dim]{key}[/]", str(value))
    for f in asset.files:
        table.add_row("[dim]file[/]", f.path + (" [red](missing)[/]" if f.missing else ""))
    table.add_row("[dim]vectors[/]", ", ".join(asset.embedded_models) or "none yet")
    for key in ("exposure_time", "f_number", "iso", "focal_length"):
        if key in asset.exif:
            table.add_row(f"[dim]{key}[/]", str(asset.exif[key]))
    console.print(table)
