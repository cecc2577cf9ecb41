"""`photoindex archive …`: move exact copies or chosen photos into the archive folder, list batches,
undo one. Files are moved, never deleted; every batch can be undone."""

from __future__ import annotations

import typer
from rich.table import Table

from photoindex.cli.common import COLLECTION_OPTION, JSON_OPTION, console, emit_json, handle_errors, runtime
from photoindex.curation import archive as service
from photoindex.curation.archive import ArchiveBatchOut
from photoindex.errors import ErrorCode, PhotoindexError

app = typer.Typer(help="Archive photos (moves with a manifest, never deletes) and undo batches.",
                  no_args_is_help=True)
DRY_RUN = typer.Option(False, "--dry-run", help="Only show what would move.")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _show(out: ArchiveBatchOut, *, verb: str) -> None:
    if out.items:
        table = Table("status", "from", "to", "size")
        for i in out.items:
            status = i.status if not i.error else f"{i.status}: {i.error.get('message', '')}"
            table.add_row(status, i.src, i.dst, _size(i.size))
        console.print(table)
    if out.dry_run:
        console.print(f"dry run: would {verb} {out.files} file(s), {_size(out.bytes)}; nothing was moved")
    elif out.batch_id is None:
        console.print("nothing to archive")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(out.counts.items()))
        console.print(f"batch [bold]{out.batch_id}[/] {out.status}: {counts} ({_size(out.bytes)})")
        for path in out.manifest_paths:
            console.print(f"[dim]manifest: {path}[/]")
        if out.status != "undone":
            console.print(f"undo with: [bold]photoindex archive undo {out.batch_id}[/]")
        elif out.verified is not None:
            console.print("catalog rows verified against the snapshot" if out.verified
                          else "[yellow]catalog rows differ from the snapshot (changed since the batch)[/]")


def _render(out: ArchiveBatchOut, as_json: bool, verb: str = "archive") -> None:
    if as_json:
        emit_json(out)
    else:
        _show(out, verb=verb)


@app.command()
@handle_errors
def exact(
    collection: str = COLLECTION_OPTION,
    dry_run: bool = DRY_RUN,
    reason: str = typer.Option("exact duplicates", "--reason", help="Why (kept in the manifest)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Archive the extra copies of every photo stored at several paths; the best path stays (outside
    download/tmp folders, not named like a copy, oldest, shortest)."""
    _render(service.archive_exact(runtime(), collection, dry_run=dry_run, reason=reason), as_json)


def _keep(values: list[str]) -> dict[int, int]:
    out = {}
    for v in values:
        asset, sep, file = v.partition(":")
        if not sep or not asset.isdigit() or not file.isdigit():
            raise PhotoindexError(f"--keep {v!r}: expected ASSET:FILE (two ids)", code=ErrorCode.INVALID_REQUEST)
        out[int(asset)] = int(file)
    return out


@app.command()
@handle_errors
def select(
    ids: list[int] = typer.Argument(..., help="Asset ids (or file ids with --files)."),
    files: bool = typer.Option(False, "--files", help="The ids are file ids: archive just those files."),
    keep: list[str] = typer.Option([], "--keep", help="ASSET:FILE — keep this file of that asset (repeatable)."),
    collection: str = COLLECTION_OPTION,
    dry_run: bool = DRY_RUN,
    reason: str = typer.Option("selection", "--reason", help="Why (kept in the manifest)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Archive chosen photos (every file of each, but a kept one) or single files."""
    rt = runtime()
    kwargs = {"file_ids": ids} if files else {"asset_ids": ids}
    out = service.archive_selection(rt, collection, keep=_keep(keep), reason=reason, dry_run=dry_run, **kwargs)
    _render(out, as_json)


@app.command()
@handle_errors
def undo(batch: int = typer.Argument(..., help="The batch id (see `photoindex archive list`)."),
         as_json: bool = JSON_OPTION) -> None:
    """Move a batch's files back and restore the catalog as it was (also for a batch a crash cut short)."""
    out = service.undo(runtime(), batch)
    if as_json:
        emit_json(out)
        return
    out.items = None
    _show(out, verb="restore")


@app.command("list")
@handle_errors
def list_(
    collection: str = COLLECTION_OPTION,
    all_collections: bool = typer.Option(False, "--all", help="Batches of every collection."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=500),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent archive batches, newest first."""
    batches = service.list_batches(runtime(), collection, limit=limit, all_collections=all_collections)
    if as_json:
        emit_json(batches)
        return
    table = Table("batch", "collection", "when", "status", "files", "size", "reason")
    for b in batches:
        when = b.created_at.strftime("%Y-%m-%d %H:%M") if b.created_at else "-"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(b.counts.items()))
        table.add_row(str(b.batch_id), b.collection, when, b.status, counts, _size(b.bytes), b.reason)
    console.print(table if batches else "no archive batches yet")


@app.command()
@handle_errors
def show(batch: int = typer.Argument(..., help="The batch id."), as_json: bool = JSON_OPTION) -> None:
    """One batch with its files."""
    _render(service.batch_out(runtime(), batch, items=True), as_json)
