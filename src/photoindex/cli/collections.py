"""`photoindex collections …`: libraries with their own model and vectors."""

from __future__ import annotations

import typer
from rich.table import Table

from photoindex.cli.common import JSON_OPTION, console, emit_json, handle_errors, runtime

app = typer.Typer(help="Create, list, select and delete collections (separate libraries).", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(as_json: bool = JSON_OPTION) -> None:
    """List collections; the selected one is marked with *."""
    rt = runtime()
    rt.catalog.active_collection()
    items = rt.catalog.list_collections()
    if as_json:
        emit_json(items)
        return
    table = Table("", "name", "assets", "model", "vector size", "distance", "created")
    for c in items:
        table.add_row("*" if c.active else "", c.name, str(c.asset_count), c.model or "-",
                      str(c.vector_size or "-"), c.distance, c.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@app.command()
@handle_errors
def create(
    name: str = typer.Argument(..., help="Letters, digits, '_', '-', '.'"),
    vector_size: int = typer.Option(None, help="Expected embedding size (checked against the model)."),
    distance: str = typer.Option("Cosine", help="Cosine, Dot or Euclid."),
    model: str = typer.Option(None, help="Image-text model for this collection (default: the configured one)."),
    select: bool = typer.Option(False, "--select", help="Also make it the selected collection."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a collection."""
    rt = runtime()
    info = rt.catalog.create_collection(name, vector_size=vector_size, distance=distance, model=model)
    if select:
        info = rt.catalog.select_collection(name)
    if as_json:
        emit_json(info)
    else:
        console.print(f"created collection [bold]{name}[/]" + (" (selected)" if select else ""))


@app.command()
@handle_errors
def enrichers(
    name: str = typer.Argument(..., help="The collection."),
    names: list[str] = typer.Argument(None, help="Enrichers to run (objects tags ocr caption quality aesthetic "
                                      "text); none: show them."),
    default: bool = typer.Option(False, "--default", help="Follow the configuration's `enrichers` again."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Choose which enrichers run for one collection (e.g. OCR only for a scans collection)."""
    from photoindex.enrich.loader import enabled

    rt = runtime()
    coll = rt.catalog.get_collection(name)
    if default or names:
        wanted = None if default else [n for part in names for n in part.split(",") if n]
        if wanted is not None:
            enabled(rt, coll, wanted)  # an unknown name is an error now, not a skipped run later
        coll = rt.catalog.set_collection_options(name, enrichers=wanted)
    current = enabled(rt, coll)
    if as_json:
        emit_json({"collection": name, "enrichers": current, "own": "enrichers" in coll.options})
    else:
        console.print(f"{name}: {', '.join(current) or 'none'}"
                      + ("" if "enrichers" in coll.options else " (from the configuration)"))


@app.command()
@handle_errors
def select(name: str, as_json: bool = JSON_OPTION) -> None:
    """Make NAME the collection that commands use by default."""
    info = runtime().catalog.select_collection(name)
    if as_json:
        emit_json(info)
    else:
        console.print(f"selected collection [bold]{name}[/]")


@app.command()
@handle_errors
def delete(
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a collection from the catalog and the vector index. Photo files are never touched."""
    rt = runtime()
    info = rt.catalog.get_collection(name)
    if not yes and not as_json:
        typer.confirm(f"Delete collection {name!r} ({info.asset_count} photos) from the catalog? Files stay.",
                      abort=True)
    rt.index.drop_collection(info.id, info.name)
    rt.catalog.delete_collection(name)
    if as_json:
        emit_json({"deleted": name})
    else:
        console.print(f"deleted collection [bold]{name}[/] (files on disk untouched)")
