"""`photoindex duplicates find | report`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from photoindex.cli.common import (
    COLLECTION_OPTION,
    JSON_OPTION,
    console,
    emit_json,
    handle_errors,
    progress_bar,
    runtime,
)
from photoindex.curation.models import ALL_TIERS, TIER_HELP, DuplicateParams, DuplicateReport
from photoindex.curation.tasks import find_here, job_report, submit_find
from photoindex.jobs.service import dispatch

app = typer.Typer(help="Find duplicates (exact, identical pixels, re-encoded/rotated, near-identical) and "
                  "burst stacks. Nothing is moved here: see `photoindex archive`.", no_args_is_help=True)

TierName = StrEnum("TierName", {t: t for t in ALL_TIERS})  # type: ignore[misc]
SHOW_OPTION = typer.Option(20, "--show", help="How many groups to list (0: only the counts).")


@app.command("find")
@handle_errors
def find(
    collection: str = COLLECTION_OPTION,
    tier: list[TierName] = typer.Option(None, "--tier", "-t", help="Only these tiers (repeatable): "
                                        + "; ".join(f"{t}: {h}" for t, h in TIER_HELP.items())),
    threshold: float = typer.Option(None, "--threshold", min=0.5, max=1.0,
                                    help="Near-duplicate cosine threshold (default: near_duplicate_threshold)."),
    max_distance: int = typer.Option(None, "--max-distance", min=0, max=12,
                                     help="Perceptual-hash bits that may differ (default: phash_max_distance)."),
    burst_window: float = typer.Option(None, "--burst-window", min=0.0, help="Seconds between burst shots."),
    detach: bool = typer.Option(False, "--detach", "-d",
                                help="Only queue the search for resident workers and print its id."),
    show: int = SHOW_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Search a collection for duplicates and burst stacks, and suggest which copy to keep.

    Perceptual hashes are computed once per photo (from its thumbnail) and stored; identical pixels
    are confirmed by decoding the originals of the few candidates; near duplicates use the stored
    image embeddings. Burst frames (one camera, seconds apart) are stacked, never proposed for archiving.

    Example: photoindex duplicates find --tier exact --tier perceptual
    """
    rt = runtime()
    params = DuplicateParams(tiers=[t.value for t in tier] if tier else list(ALL_TIERS),  # type: ignore[misc]
                             near_threshold=threshold,
                             phash_max_distance=max_distance, burst_window_s=burst_window)
    if detach:
        job_id = submit_find(rt, collection, params)
        dispatch(rt, job_id)
        if as_json:
            emit_json({"task_id": job_id, "job_id": job_id})
        else:
            console.print(f"queued duplicate search {job_id}: `photoindex duplicates report {job_id}` shows it")
        return
    try:
        with progress_bar(enabled=not as_json) as progress:
            report = find_here(rt, collection, params, progress=progress)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: hashes computed so far are kept; run it again to finish")
        raise typer.Exit(130) from None
    _render(report, show, as_json)


@app.command("report")
@handle_errors
def report(
    job: int = typer.Argument(..., help="The duplicate search's id (job id) from `duplicates find`."),
    tier: list[TierName] = typer.Option(None, "--tier", "-t", help="Only groups of these tiers."),
    show: int = SHOW_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a duplicate search: its progress, or its groups once it has finished."""
    out = job_report(runtime(), job)
    if tier:
        wanted = {t.value for t in tier}
        out.groups = [g for g in out.groups if g.tier in wanted]
    _render(out, show, as_json)


def _render(report: DuplicateReport, show: int, as_json: bool) -> None:
    if as_json:
        emit_json(report)
        return
    if not report.finished:
        p = report.progress
        done = f"{p.done}/{p.total}" if p.total is not None else str(p.done)
        console.print(f"duplicate search {report.job_id} is {report.status}: {p.phase} {done}")
        return
    if report.status == "failed":
        console.print(f"[red]duplicate search {report.job_id} failed[/]: {(report.error or {}).get('message', '')}")
        return
    console.print(f"[bold]{report.collection}[/]: {report.assets} photos looked at in {report.elapsed_s:.1f}s "
                  f"({report.hashed} hashed now)")
    counts = Table("tier", "groups", "photos", "to archive", "reclaimable", title="duplicates", title_justify="left")
    for name, c in report.counts.items():
        counts.add_row(name, str(c.groups), str(c.assets), str(c.archive_files), f"{c.archive_bytes / 1e6:.1f} MB")
    console.print(counts)
    if show and report.groups:
        table = Table("group", title="groups (folder/file; --json has full paths)", title_justify="left")
        for column in ("keep", "others", "evidence"):
            table.add_column(column, overflow="fold")
        for g in report.groups[:show]:
            others = ", ".join(_short(m.path) + ("" if m.archivable else " (stays)")
                               for m in g.assets if not (m.keep and m.path == g.keep_path))
            table.add_row(g.id, _short(g.keep_path), others, _evidence(g.evidence))
        console.print(table)
        if len(report.groups) > show:
            console.print(f"… and {len(report.groups) - show} more (use --json for all)")
    for notice in report.notices:
        console.print(f"[yellow]note[/]: {notice}")
    if report.errors:
        console.print(f"[red]{len(report.errors)} photos could not be hashed[/] (use --json for the list)")


def _short(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _evidence(evidence: dict[str, object]) -> str:
    parts = []
    for key in ("max_distance", "transforms", "min_cosine", "frames", "span_s", "sha256"):
        if key in evidence:
            value = evidence[key]
            parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, list) else str(value)[:16]}")
    return " ".join(parts)
