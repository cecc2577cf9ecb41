"""`photoindex enrich`, `photoindex embed`, `photoindex labels` and `photoindex cache …`."""

from __future__ import annotations

import typer
from rich.table import Table

from photoindex.cache.rebuild import import_cache
from photoindex.cli.common import (
    COLLECTION_OPTION,
    JSON_OPTION,
    console,
    emit_json,
    handle_errors,
    progress_bar,
    runtime,
)
from photoindex.enrich import loader
from photoindex.enrich.runner import enrich_collection
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.ingest.embed import add_model

cache_app = typer.Typer(help="The result cache: every model output, from which the catalog can be rebuilt.",
                        no_args_is_help=True)


@handle_errors
def enrich(
    only: list[str] = typer.Option(None, "--only", help=f"Run just these enrichers ({', '.join(loader.ORDER)})."),
    collection: str = COLLECTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Tag, read and describe photos: objects with boxes, scene tags, OCR text, captions, quality.

    Computes only what is missing for the installed models (a model that changed, or one just
    installed, recomputes its own results; the result cache answers for anything computed before).
    Enrichers whose model is absent are skipped with a notice saying how to get it."""
    rt = runtime()
    coll = rt.collection(collection)
    with progress_bar(not as_json) as progress:
        report = enrich_collection(rt, coll, only=only or None, progress=progress)
    if as_json:
        emit_json(report)
        return
    table = Table("enricher", "model", "computed", "from cache", "failed", "seconds")
    for name, st in report.enrichers.items():
        table.add_row(name, st.model, str(st.computed), str(st.cached), str(st.failed), f"{st.infer_s:.1f}")
    console.print(table)
    if "ocr" in report.enrichers:
        console.print(f"OCR gate: recognition skipped on {report.ocr_gate_skipped} photos without text")
    for notice in report.notices:
        console.print(f"[yellow]notice:[/] {notice}")


@handle_errors
def embed(
    model: str = typer.Option(..., "--model", help="An image-text model to add (see `photoindex models list`)."),
    collection: str = COLLECTION_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add the vectors of another model to a collection; the vectors it already has are kept.

    Search it with `photoindex search --model NAME`. Only missing vectors are computed."""
    rt = runtime()
    coll = rt.collection(collection)
    with progress_bar(not as_json) as progress:
        stored = add_model(rt, coll, model, progress)
    if as_json:
        emit_json({"collection": coll.name, "model": model, "stored": stored})
    else:
        console.print(f"{coll.name}: {stored} vectors of {model} stored")


@handle_errors
def labels(
    set_: list[str] = typer.Option(None, "--set", help="Replace the candidate labels (repeat the option)."),
    reset: bool = typer.Option(False, "--reset", help="Go back to the labels of the configuration."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show or change the candidate labels for tags and detection.

    They drive region re-ranking, scene tags and the open-vocabulary detector. Stored in the catalog:
    every worker uses them from its next batch, without a restart."""
    rt = runtime()
    if reset:
        rt.catalog.put_setting(loader.LABELS_KEY, None)
    elif set_:
        cleaned = [w.strip() for w in set_ if w.strip()]
        if not cleaned:
            raise PhotoindexError("no labels given", code=ErrorCode.INVALID_REQUEST)
        rt.catalog.put_setting(loader.LABELS_KEY, {"labels": cleaned})
    current = loader.labels(rt)
    if as_json:
        emit_json({"labels": current})
    else:
        console.print(", ".join(current))


@cache_app.command("import")
@handle_errors
def cache_import(as_json: bool = JSON_OPTION) -> None:
    """Rebuild the catalog and the vector index from the cache, without running a model.

    For a lost or damaged catalog: point PHOTOINDEX_CATALOG_URL at an empty database (or remove the
    SQLite file) and run this. Rows already present are left as they are."""
    rt = runtime()
    with progress_bar(not as_json) as progress:
        report = import_cache(rt, progress)
    if as_json:
        emit_json(report)
        return
    console.print(f"collections {', '.join(report.collections) or '-'}: {report.assets} assets, "
                  f"{report.files} files in {report.elapsed_s:.1f}s")
    for model, n in report.vectors.items():
        console.print(f"  vectors {model}: {n}")
    for name, n in report.enrichments.items():
        console.print(f"  {name}: {n}")


@cache_app.command("verify")
@handle_errors
def cache_verify(
    repair: bool = typer.Option(False, "--repair", help="Forget partial batches a crash left behind."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check the manifest against the files: sizes, checksums, partial batches, stray files."""
    cache = runtime().result_cache
    report = cache.repair() if repair else cache.verify()
    if as_json:
        emit_json(report.model_dump() | {"ok": report.ok})
    else:
        for kind, rows in report.kinds.items():
            console.print(f"{kind}: {rows} rows")
        for p in report.problems:
            console.print(f"[red]{p.problem}[/] {p.kind}/{p.file}")
        console.print("ok" if report.ok else f"{len(report.problems)} problem(s); try --repair for partial batches")
    if not report.ok:
        raise typer.Exit(1)


@cache_app.command("compact")
@handle_errors
def cache_compact(as_json: bool = JSON_OPTION) -> None:
    """Fold the small JSON-lines batches into Parquet parts."""
    moved = runtime().result_cache.compact()
    if as_json:
        emit_json({"rows": moved})
    else:
        console.print(f"{moved} rows compacted")
