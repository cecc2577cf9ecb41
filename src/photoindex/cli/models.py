"""`photoindex models list | pull | info`."""

from __future__ import annotations

import typer
from rich.table import Table

from photoindex.cli.common import JSON_OPTION, console, emit_json, handle_errors, runtime

app = typer.Typer(help="List, download and inspect the models photoindex uses.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(as_json: bool = JSON_OPTION) -> None:
    """Known and installed models; * marks the configured one."""
    rt = runtime()
    items = rt.registry.list()
    if as_json:
        emit_json(items)
        return
    table = Table("", "name", "installed", "dim", "size", "source", "description")
    for m in items:
        spec = m.spec
        table.add_row(
            "*" if m.name == rt.settings.model else "", m.name,
            "[green]yes[/]" if m.installed else "no",
            str(spec.dim) if spec and spec.dim else "-",
            f"{spec.size_mb:.0f} MB" if spec and spec.size_mb else "-",
            str(m.path) if m.path else (spec.hf_repo if spec and spec.hf_repo else "-"),
            spec.description if spec else "",
        )
    console.print(table)
    console.print("Models are searched in PHOTOINDEX_MODELS_PATH, then in the data directory's cache; "
                  "`photoindex models pull NAME` downloads one.")


@app.command()
@handle_errors
def pull(
    name: str = typer.Argument(None, help="Model name (default: the configured model)."),
    revision: str = typer.Option(None, help="A specific revision (commit) of the model repository."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Download a model into the data directory's model cache."""
    rt = runtime()
    name = name or rt.settings.model
    path = rt.registry.pull(name, revision=revision, progress=not as_json)
    status = rt.registry.status(name)
    if as_json:
        emit_json(status)
    else:
        console.print(f"[green]installed[/] {name} → {path} (revision {status.revision})")


@app.command()
@handle_errors
def info(name: str = typer.Argument(None, help="Model name (default: the configured model)."),
         as_json: bool = JSON_OPTION) -> None:
    """Where a model is, its revision, and what it produces."""
    rt = runtime()
    status = rt.registry.status(name or rt.settings.model)
    if as_json:
        emit_json(status)
        return
    table = Table(show_header=False, box=None)
    for key, value in status.model_dump(exclude={"spec"}).items():
        table.add_row(f"[dim]{key}[/]", str(value))
    if status.spec:
        for key, value in status.spec.model_dump().items():
            table.add_row(f"[dim]{key}[/]", str(value))
    console.print(table)
    if not status.installed:
        console.print(f"not installed: run [bold]photoindex models pull {status.name}[/]")
