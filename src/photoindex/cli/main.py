"""Entry point: `photoindex COMMAND`. Each command parses, calls a service and renders the result."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from photoindex import __version__
from photoindex.cli import archive, collections, curation, duplicates, enrich, ingest, jobs, ml, models, search, watch
from photoindex.cli import serve
from photoindex.cli.common import State

app = typer.Typer(
    name="photoindex",
    help="Self-hosted photo intelligence: ingest folders of photos, then search them by meaning.\n\n"
    "Quick start:  photoindex models pull  ·  photoindex ingest ~/Pictures  ·  photoindex search \"dog on a beach\"",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"photoindex {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    home: Path = typer.Option(None, "--home", envvar="PHOTOINDEX_HOME",
                              help="Data directory (catalog, thumbnails, models, config.toml)."),
    config: Path = typer.Option(None, "--config", envvar="PHOTOINDEX_CONFIG",
                                help="Config file (default: HOME/config.toml)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    if home is not None:
        os.environ["PHOTOINDEX_HOME"] = str(home.expanduser().resolve())
    if config is not None:
        os.environ["PHOTOINDEX_CONFIG"] = str(config.expanduser().resolve())
    State.runtime = None


app.command("init")(ingest.init)
app.command("ingest")(ingest.ingest)
app.command("status")(ingest.status)
app.command("search")(search.search)
app.command("similar")(search.similar)
app.command("info")(search.info)
app.command("enrich")(enrich.enrich)
app.command("embed")(enrich.embed)
app.command("labels")(enrich.labels)
app.add_typer(enrich.cache_app, name="cache")
app.add_typer(duplicates.app, name="duplicates")
app.add_typer(archive.app, name="archive")
app.add_typer(curation.app, name="curation")
app.command("worker")(jobs.worker)
app.command("watch")(watch.watch)
app.command("serve-ml")(ml.serve_ml)
app.add_typer(jobs.app, name="jobs")
app.add_typer(collections.app, name="collections")
app.add_typer(models.app, name="models")
app.command("serve")(serve.serve)
app.add_typer(serve.apikey_app, name="apikey")


if __name__ == "__main__":  # pragma: no cover
    app()
