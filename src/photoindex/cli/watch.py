"""`photoindex watch`: keep collections up to date as files appear, change, move and disappear."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from photoindex.cli.common import COLLECTION_OPTION, console, handle_errors, runtime
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.ingest.hotfolders import HotFolders


@handle_errors
def watch(
    paths: list[Path] = typer.Argument(None, help="Folders to watch (default: watch_roots from the config)."),
    collection: str = COLLECTION_OPTION,
    queue: bool = typer.Option(False, "--queue", help="Only queue jobs for resident workers (`photoindex worker`)."),
    poll: bool = typer.Option(None, "--poll/--events", help="Force polling, or native events (default: auto; "
                              "network mounts are polled)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every batch of changes."),
) -> None:
    """Watch folders and ingest what changes: a catch-up scan at start, then new and modified photos
    once they stop growing, moves and deletions. Temporary and partial files are ignored. Ctrl-C stops.

    Example: photoindex watch ~/Pictures /mnt/nas/photos
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchfiles.main").setLevel(logging.WARNING)
    rt = runtime()
    roots = list(paths or rt.settings.watch_roots)
    if not roots:
        raise PhotoindexError("no folders to watch", code=ErrorCode.INVALID_REQUEST,
                              hint="give folders: photoindex watch ~/Pictures (or set watch_roots in config.toml)")
    console.print(f"watching {', '.join(map(str, roots))} " + ("(jobs go to the queue)" if queue else "") +
                  " — Ctrl-C to stop")
    HotFolders(rt, roots, collection=collection, to_queue=queue, poll=poll).run()
