"""`photoindex curation …`: the collection report (CSV / JSON) and clusters (saved as collections)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from photoindex.cli.common import COLLECTION_OPTION, JSON_OPTION, console, emit_json, handle_errors, runtime
from photoindex.curation.clusters import cluster_collection, cluster_members, save_collection
from photoindex.curation.reports import collection_report, report_csv
from photoindex.errors import ErrorCode, PhotoindexError

app = typer.Typer(help="Reports and clusters of a collection.", no_args_is_help=True)


@app.command()
@handle_errors
def report(
    collection: str = COLLECTION_OPTION,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json."),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of the screen."),
) -> None:
    """Summary of a collection: counts by camera, year and type, duplicates, failures, missing and
    archived files."""
    if fmt not in ("csv", "json"):
        raise PhotoindexError(f"unknown format {fmt!r}", code=ErrorCode.INVALID_REQUEST, hint="use csv or json")
    summary = collection_report(runtime(), collection)
    text = report_csv(summary) if fmt == "csv" else json.dumps(summary.model_dump(mode="json"), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PhotoindexError(f"cannot write {out}: {exc.strerror or exc}", code=ErrorCode.FILE_UNREADABLE) from None
    console.print(f"wrote the {fmt} report of [bold]{summary.collection}[/] to {out}")


@app.command()
@handle_errors
def clusters(
    collection: str = COLLECTION_OPTION,
    k: int = typer.Option(None, "--k", "-k", min=1, max=1000, help="Number of clusters (default: sqrt(n/2))."),
    save: tuple[str, int] | None = typer.Option(None, "--save", metavar="NAME CLUSTER",
                                                help="Save cluster CLUSTER as a new collection NAME."),
    points: bool = typer.Option(False, "--points", help="With --json: each photo's map position."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Group the collection's photos by what they show, name each group from its tags, captions or
    EXIF; optionally save one group as a new collection."""
    rt = runtime()
    if save is not None:
        name, cluster = save
        ids = cluster_members(rt, collection, cluster, k=k)
        saved = save_collection(rt, name, ids, source=collection)
        if as_json:
            emit_json(saved)
        else:
            console.print(f"saved cluster {cluster} as collection [bold]{saved.collection}[/]: {saved.assets} photos, "
                          f"{saved.files} files, {saved.vectors} vectors")
        return
    result = cluster_collection(rt, collection, k=k, points=points)
    if as_json:
        emit_json(result)
        return
    table = Table("id", "name", "photos", "from", "examples")
    for c in result.clusters:
        table.add_row(str(c.id), c.name, str(c.size), c.label_source, " ".join(map(str, c.examples[:4])))
    console.print(table)
    console.print(f"[dim]{result.n} photos in {result.k} clusters ({result.algorithm}, {result.elapsed_s:.2f} s); "
                  f"save one with --save NAME ID[/]")
