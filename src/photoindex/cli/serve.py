"""`photoindex serve` (the REST API) and `photoindex apikey …` (its keys)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.table import Table

from photoindex.cli.common import JSON_OPTION, console, emit_json, handle_errors, runtime
from photoindex.errors import ConfigError

apikey_app = typer.Typer(help="Create, list and revoke API keys for `photoindex serve`.", no_args_is_help=True)


@handle_errors
def serve(
    host: str = typer.Option(None, "--host", help="Address to listen on (default: api_host, 127.0.0.1). "
                             "Off loopback, API keys are required."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default: api_port, 8002)."),
    worker: bool = typer.Option(None, "--worker/--no-worker",
                                help="Also run queued jobs in this process (default: serve_worker, on)."),
    require_key: bool = typer.Option(None, "--require-key/--no-require-key",
                                     help="Require x-api-key (default: only off loopback)."),
    allow: list[Path] = typer.Option(None, "--allow", help="A folder POST /ingest/scan may read (repeatable; "
                                     "adds to allowed_roots)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the REST API (FastAPI + uvicorn) under /api/v1; OpenAPI at /api/v1/openapi.json.

    Examples:  photoindex serve  ·  photoindex serve --host 0.0.0.0 --allow /srv/photos  (then
    `photoindex apikey create laptop` and send its secret as the x-api-key header)
    """
    import uvicorn
    from pydantic import ValidationError

    from photoindex.api.app import configure_logging, create_app
    from photoindex.api.auth import keys_required
    from photoindex.config import load_settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    if worker is not None:
        overrides["serve_worker"] = worker
    if require_key is not None:
        overrides["require_api_key"] = require_key
    try:
        settings = load_settings(**overrides)
        if allow:
            settings.allowed_roots = [*settings.allowed_roots, *(p.expanduser().resolve() for p in allow)]
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc.errors()[0]['msg']}") from None
    level = getattr(logging, log_level.upper(), logging.INFO)
    configure_logging(level)
    need = keys_required(settings)
    logging.getLogger("photoindex.api").info(
        "serving", extra={"fields": {"event": "start", "host": settings.api_host, "port": settings.api_port,
                                     "api_keys": "required" if need else "not required",
                                     "worker": settings.serve_worker,
                                     "allowed_roots": [str(p) for p in settings.allowed_roots]}})
    if need:
        from photoindex.runtime import Runtime
        from photoindex.store.apikeys import ApiKeyStore

        rt = Runtime(settings)
        try:
            if ApiKeyStore(rt.catalog).active_count() == 0:
                logging.getLogger("photoindex.api").warning(
                    "no API key exists yet: every request but /healthz will be refused; "
                    "create one with `photoindex apikey create NAME`")
        finally:
            rt.close()
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False,
                log_level=level, timeout_graceful_shutdown=5, proxy_headers=False)


def _store():
    from photoindex.store.apikeys import ApiKeyStore

    return ApiKeyStore(runtime().catalog)


def _row(info) -> dict[str, object]:
    return {"id": info.id, "name": info.name, "prefix": info.prefix, "created_at": info.created_at,
            "last_used_at": info.last_used_at, "revoked_at": info.revoked_at, "active": info.active}


@apikey_app.command("create")
@handle_errors
def create(name: str = typer.Argument(..., help="What the key is for (e.g. 'laptop', 'immich-sync')."),
           as_json: bool = JSON_OPTION) -> None:
    """Create a key and print its secret. The secret is shown this once: only its hash is stored."""
    info, secret = _store().create(name)
    if as_json:
        emit_json({**_row(info), "secret": secret})
        return
    console.print(f"created API key {info.id} [bold]{info.name}[/] ({info.prefix}…)")
    console.print("secret (shown once, store it now; send it as the x-api-key header):")
    typer.echo(secret)


@apikey_app.command("list")
@handle_errors
def list_(as_json: bool = JSON_OPTION) -> None:
    """Keys with their prefix, creation, last use and revocation times (never the secrets)."""
    items = _store().list()
    if as_json:
        emit_json([_row(i) for i in items])
        return
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    fmt = "%Y-%m-%d %H:%M"
    for i in items:
        table.add_row(str(i.id), i.name, i.prefix + "…", i.created_at.strftime(fmt),
                      i.last_used_at.strftime(fmt) if i.last_used_at else "-",
                      i.revoked_at.strftime(fmt) if i.revoked_at else "-")
    console.print(table)


@apikey_app.command("revoke")
@handle_errors
def revoke(key: str = typer.Argument(..., help="The key's id or its prefix (as `apikey list` shows)."),
           as_json: bool = JSON_OPTION) -> None:
    """Revoke a key: requests with it are refused from now on."""
    info = _store().revoke(key)
    if as_json:
        emit_json(_row(info))
    else:
        console.print(f"revoked API key {info.id} [bold]{info.name}[/] ({info.prefix}…)")
