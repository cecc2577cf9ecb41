"""`photoindex serve-ml`: the ML inference service (see photoindex.api.ml_app for its protocol)."""

from __future__ import annotations

import ipaddress
import logging

import typer

from photoindex.cli.common import console, err_console, handle_errors, runtime
from photoindex.errors import ConfigError, ErrorCode, ModelError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def serve_ml(
    host: str = typer.Option(None, "--host", help="Address to listen on (default: ml_host, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default: ml_port, 8001)."),
    model: list[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="Also serve this model (repeatable). The configured model (PHOTOINDEX_MODEL) is always served "
        "and is the default.",
    ),
    max_batch: int = typer.Option(
        None, "--max-batch", min=1, help="Largest batch per model call (default: probed at start-up)."
    ),
    max_batch_cap: int = typer.Option(
        256, "--max-batch-cap", min=1, help="Upper bound for the start-up probe."
    ),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", min=0.0, help="How long a request waits for others to share its batch."
    ),
    concurrency: int = typer.Option(
        None, "--concurrency", min=1, help="Batches in flight per model (default: infer_concurrency, 1)."
    ),
    decode_threads: int = typer.Option(
        None, "--decode-threads", min=1, help="Threads decoding uploaded photos (default: one per core)."
    ),
    max_body_mb: float = typer.Option(
        None, "--max-body-mb", min=0.01, help="Largest request body in MB (default: upload_max_bytes)."
    ),
    captioner: list[str] = typer.Option(None, "--captioner", help="Load this captioner (none exists yet)."),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="PHOTOINDEX_ML_API_KEY",
        show_envvar=True,
        help="Require this key in x-api-key (default: ml_api_key).",
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn / photoindex log level."),
) -> None:
    """Serve the image-text models over HTTP so that one GPU machine serves many ingest workers.

    Workers use it with PHOTOINDEX_ML_URL=http://HOST:PORT (and PHOTOINDEX_ML_API_KEY when a key is set).
    Models load and warm up before the port opens; the batch size is probed unless --max-batch is given.
    """
    import uvicorn

    from photoindex.api.ml_app import MLServiceOptions, create_ml_app
    from photoindex.ml.registry import ModelRegistry

    settings = runtime().settings
    updates: dict[str, object] = {}
    if api_key:
        updates["ml_api_key"] = api_key
    if updates:
        settings = settings.model_copy(update=updates)
    host = host or settings.ml_host
    port = port or settings.ml_port
    if not settings.ml_api_key and not _loopback(host):
        if settings.require_api_key is not False:
            raise ConfigError(
                f"refusing to serve the models on {host} without an API key",
                hint="set PHOTOINDEX_ML_API_KEY (or --api-key) here and on the workers, or "
                "PHOTOINDEX_REQUIRE_API_KEY=false on a trusted network",
            )
        err_console.print(
            f"[yellow]warning[/]: listening on {host} without an API key: anyone who can reach the "
            "port can use the models"
        )
    registry = ModelRegistry(settings)
    for name in [settings.model, *(model or [])]:  # a clear error before the server starts
        try:
            registry.require(name)
        except ModelError as exc:
            if not (settings.auto_pull and exc.code == ErrorCode.MODEL_NOT_FOUND):
                raise
            console.print(f"downloading {name} ...")
            registry.pull(name)
    options = MLServiceOptions(
        models=list(model or []),
        max_batch=max_batch,
        max_batch_cap=max_batch_cap,
        batch_wait_ms=batch_wait_ms,
        concurrency=concurrency,
        decode_threads=decode_threads,
        max_body_bytes=int(max_body_mb * 1024 * 1024) if max_body_mb else None,
        captioners=list(captioner or []),
    )
    level = log_level.lower()
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_ml_app(settings, options)
    console.print(
        f"photoindex ML service on http://{host}:{port} (model {settings.model}"
        f"{', key required' if settings.ml_api_key else ''})"
    )
    uvicorn.run(
        app, host=host, port=port, log_level=level, access_log=level == "debug", timeout_graceful_shutdown=10
    )
