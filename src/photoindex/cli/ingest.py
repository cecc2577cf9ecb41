"""`photoindex init | ingest | status`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from photoindex.cli.common import COLLECTION_OPTION, JSON_OPTION, console, emit_json, handle_errors, progress_bar, runtime
from photoindex.config import config_file_path
from photoindex.ingest.pipeline import ingest as run_ingest
from photoindex.ingest.tasks import submit_ingest
from photoindex.jobs.service import dispatch
from photoindex.schemas import IngestReport
from photoindex.store.jobs import JobStore

CONFIG_TEMPLATE = """\
# photoindex configuration. Every key can also be set as an environment variable PHOTOINDEX_<KEY>.
# model = "ViT-B-16-SigLIP2__webli"      # image-text model for new collections (photoindex models list)
# batch_size = 32                         # images per inference batch (alias ML_INFERENCE_BATCH_SIZE)
# workers = 0                             # decode processes, 0 = one per core
# catalog_url = "postgresql+psycopg://user:pass@host/photoindex"   # default: SQLite in this folder
# vector_backend = "exact"                # or "qdrant" with qdrant_url / qdrant_host + qdrant_port
# models_path = ["/srv/models"]           # folders searched for models before the download cache
"""


@handle_errors
def init(as_json: bool = JSON_OPTION) -> None:
    """Create the data directory, the catalog and a commented config file (safe to run again)."""
    rt = runtime()
    home = rt.settings.ensure_home()
    cfg = config_file_path()
    if not cfg.exists():
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(CONFIG_TEMPLATE)
    coll = rt.catalog.active_collection()
    model = rt.registry.status(rt.model_name(coll))
    info = {"home": str(home), "config": str(cfg), "catalog": rt.settings.resolved_catalog_url,
            "collection": coll.name, "model": model.name, "model_installed": model.installed}
    if as_json:
        emit_json(info)
        return
    console.print(f"data directory  {home}\nconfig file     {cfg}\ncatalog         {info['catalog']}\n"
                  f"collection      {coll.name}")
    if not model.installed:
        console.print(f"[yellow]model {model.name} is not installed[/]: run [bold]photoindex models pull[/] "
                      "to enable search (ingest works without it)")


@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="Folders or files to ingest (recursively).", show_default=False),
    collection: str = COLLECTION_OPTION,
    no_embed: bool = typer.Option(False, "--no-embed", help="Catalog and thumbnail only; embed later."),
    workers: int = typer.Option(None, "--workers", "-w", help="Decode processes (default: one per core)."),
    as_json: bool = JSON_OPTION,
    show_errors: int = typer.Option(20, "--show-errors", help="How many failed files to list (0: none)."),
    detach: bool = typer.Option(False, "--detach", "-d",
                                help="Only queue the job for resident workers (`photoindex worker`) and print its id."),
    priority: int = typer.Option(10, "--priority", help="Higher runs first (background rescans use 0)."),
) -> None:
    """Ingest photos: hashes, EXIF, thumbnails and vectors for search.

    Re-running is cheap: unchanged files are skipped without being read, moved or renamed files keep
    their identity, deleted ones are marked missing (nothing on disk is ever modified). Bad files are
    listed with an error code and the run goes on; Ctrl-C keeps what is done.

    Formats: JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF and RAW (DNG, CR2, CR3, NEF, ARW, RW2, ORF, RAF, …).

    Example: photoindex ingest ~/Pictures /mnt/nas/photos --collection family
    """
    rt = runtime()
    if workers:
        rt.settings.workers = workers
    if detach:
        job_id = submit_ingest(rt, paths, collection=collection, embed=not no_embed, priority=priority)
        dispatch(rt, job_id)
        if as_json:
            emit_json({"job_id": job_id})
        else:
            console.print(f"queued job {job_id}: follow it with `photoindex jobs status {job_id} --follow`")
        return
    with progress_bar(enabled=not as_json) as progress:
        report = run_ingest(rt, paths, collection=collection, progress=progress, embed=not no_embed,
                            priority=priority)
    if as_json:
        emit_json(report)
    else:
        render_report(report, show_errors)
    if report.interrupted:
        raise typer.Exit(130)


def render_report(r: IngestReport, show_errors: int) -> None:
    rate = r.processed / r.elapsed_s if r.elapsed_s else 0.0
    console.print(
        f"[bold]{r.collection}[/]: {r.files_seen} files seen in {r.elapsed_s:.1f}s — "
        f"[green]{r.processed} new[/] ({rate:.1f}/s), {r.skipped_unchanged} unchanged, "
        f"{r.exact_duplicates} exact duplicates, {r.moved} moved, {r.missing} missing, "
        + (f"[red]{r.failed} failed[/]" if r.failed else "0 failed")
    )
    console.print(f"vectors: {r.embedded} computed, {r.embeddings_reused} reused, {r.embeddings_pending} pending"
                  + (f" ({r.model})" if r.model else ""))
    for notice in r.notices:
        console.print(f"[yellow]note[/]: {notice}")
    if r.errors and show_errors:
        table = Table("code", title="failed files", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("reason", overflow="fold")
        for e in r.errors[:show_errors]:
            table.add_row(str(e.code), e.path, e.message)
        console.print(table)
        if len(r.errors) > show_errors:
            console.print(f"… and {len(r.errors) - show_errors} more (use --json for all)")
    if r.interrupted:
        console.print("[yellow]interrupted[/]: what was done is saved; run the same command again to resume")


@handle_errors
def status(collection: str = COLLECTION_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show the collection's counts, its model and recent jobs."""
    rt = runtime()
    coll = rt.collection(collection)
    stats = rt.catalog.stats(coll.id)
    model = rt.registry.status(rt.model_name(coll))
    pending = rt.catalog.count_assets_needing_vectors(coll.id, model.name, model.revision)
    jobs = JobStore(rt.catalog).list_jobs(limit=5)
    data = {"collection": coll.name, "home": str(rt.settings.home), **stats, "model": model.name,
            "model_installed": model.installed, "vectors_pending": pending, "recent_jobs": jobs}
    if as_json:
        emit_json(data)
        return
    console.print(f"collection [bold]{coll.name}[/]  ({rt.settings.home})")
    console.print(f"  {stats['assets']} photos, {stats['files']} files ({stats['missing_files']} missing), "
                  f"{stats['bytes'] / 1e9:.2f} GB")
    console.print(f"  model {model.name}: " + ("installed" if model.installed else
                  "[yellow]not installed[/] — run `photoindex models pull`") + f", {pending} photos without vectors")
    if jobs:
        table = Table("job", "kind", "status", "started", "new", "unchanged", "failed", title="recent jobs",
                      title_justify="left")
        for j in jobs:
            c = j["counts"] or {}
            table.add_row(str(j["id"]), j["kind"], j["status"], j["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                          str(c.get("processed", "")), str(c.get("skipped_unchanged", "")), str(c.get("failed", "")))
        console.print(table)
