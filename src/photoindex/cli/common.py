"""What every command shares: the runtime, JSON output, error rendering and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from photoindex.config import config_file_path
from photoindex.errors import ConfigError, PhotoindexError
from photoindex.runtime import Runtime

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
COLLECTION_OPTION = typer.Option(None, "--collection", "-c", help="Collection to use (default: the selected one).")


class State:
    runtime: Runtime | None = None


def runtime() -> Runtime:
    if State.runtime is None:
        try:
            State.runtime = Runtime()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid configuration: {problems}",
                              hint=f"check the PHOTOINDEX_* environment variables and {config_file_path()}") from None
    return State.runtime


def emit_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def handle_errors(func: F) -> F:
    """Turn PhotoindexError into a one-line message with a hint (or a JSON error object) and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PhotoindexError as exc:
            if kwargs.get("as_json"):
                sys.stdout.write(json.dumps({"error": exc.to_dict()}, indent=2) + "\n")
            else:
                err_console.print(f"[bold red]error[/] [dim]({exc.code})[/]: {exc.message}")
                if exc.hint:
                    err_console.print(f"[yellow]hint[/]: {exc.hint}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


class RateColumn(ProgressColumn):
    """Items per second over the whole phase: commits arrive in bursts, so a windowed rate jumps."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        speed = task.completed / elapsed if elapsed else None
        return Text(f"{speed:,.1f}/s" if speed else "–/s", style="progress.data.speed")


class RichProgress:
    """The pipeline's Progress protocol on a Rich progress bar (on stderr, so --json stays clean)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def phase(self, description: str, total: int | None) -> None:
        if self._task is not None:  # close the previous phase where it stands
            done = self._progress._tasks[self._task].completed
            self._progress.update(self._task, total=done, completed=done)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[RichProgress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield RichProgress(progress)
