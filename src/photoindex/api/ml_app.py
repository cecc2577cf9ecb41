"""The ML inference service (`photoindex serve-ml`): one machine with the models (a GPU, say) serves
many ingest workers and searchers. Workers point `PHOTOINDEX_ML_URL` at it and use
`photoindex.ml.remote.RemoteEmbedder` in place of in-process models.

Protocol, version 1 (every error body is `{"error": {"code", "message", "hint"?, "details"?}}` with the
codes of `photoindex.errors.ErrorCode`, plus `unauthorized` and `not_available`):

* `GET /health` -> `{"status": "ok"}`; never needs a key.
* `GET /metrics` -> Prometheus exposition (request latency, batch sizes, items/s, queue wait, ...).
* `GET /api/v1/capabilities` -> the loaded models (name, revision, model_id, dim, image_size,
  context_length, preprocess config, `max_batch` probed at start-up, batcher stats), `default_model`,
  `max_batch` (the default model's), device and ONNX Runtime providers, captioners, limits, version.
* `POST /api/v1/embed` -> vectors for images and/or texts, one item per input, in request order:
  - JSON `{"texts": ["a dog", ...], "model": null, "encoding": "base64"}`;
  - `multipart/form-data` with any number of parts `files` (the raw bytes of any photo photoindex reads:
    JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC, RAW ...; decoded here exactly as ingest does), parts `pixels`
    (a file part holding a `.npy` uint8 array [N, S, S, 3] of model inputs from `fit_image`, S being the
    model's `image_size`), parts `texts`, and the fields `model` and `encoding`;
  - a raw `.npy` body (`Content-Type: application/x-npy`) holding such a pixel array: the compact form
    photoindex's own pipeline sends.
  `model` and `encoding` may also come as query parameters. The answer:
  `{"model", "revision", "model_id", "dim", "encoding", "dtype": "<f4", "count", "errors",
  "items": [{"index", "kind": "image"|"text", "filename"?, "vector"} | {"index", "kind", "filename"?,
  "error": {"code", "message"}}]}` where `vector` is L2-normalised float32, as base64 of its
  little-endian bytes (`encoding=base64`, the default: `numpy.frombuffer(base64.b64decode(v), "<f4")`)
  or as a JSON list of numbers (`encoding=list`). A file that cannot be decoded is an item error (never
  a failed request); a malformed request is 400/422, a body over the limit 413, an unknown model 404.
* `POST /api/v1/caption` -> 501 `not_available` until a captioner is loaded (the enrichment models
  bring them: they register a factory in `CAPTIONERS` and are loaded with `captioners=[...]`); then
  `{"captioner", "revision", "items": [{"index", "filename"?, "caption"} | {..., "error"}]}` for `files`
  and `pixels` parts, with the options `captioner`, `prompt`, `max_length`.
* `POST /api/v1/batch_embed_and_caption` -> `files` / `pixels` embedded as by `/embed`, each item also
  with `caption` (null when no captioner is loaded; `notice` then says so) in one call.

When `settings.ml_api_key` is set every route but `/health` needs the header `x-api-key` (compared in
constant time), else 401. Models load and warm up at start-up (the lifespan), where the batch size is
probed (`ml.batching.probe_max_batch`); inference runs in a thread pool behind one `Batcher` per model
and input kind, which merges concurrent requests into shared model calls.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
import numpy as np
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photoindex import __version__, metrics
from photoindex.api.app import AccessLog
from photoindex.config import Settings, load_settings
from photoindex.errors import ErrorCode, ModelError, PhotoindexError
from photoindex.media.decode import decode_image
from photoindex.ml.batching import Batcher, BatcherClosed, ProbeResult, probe_max_batch
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.preprocess import fit_image
from photoindex.ml.registry import ModelRegistry
from photoindex.ml.session import CUDA, TENSORRT, available_providers, default_providers

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
OPEN_PATHS = frozenset({"/health"})
UNAUTHORIZED = "unauthorized"
NOT_AVAILABLE = "not_available"
ENCODINGS = ("base64", "list")
NPY_TYPES = ("application/x-npy", "application/octet-stream")

item_errors_total = Counter(
    "photoindex_ml_item_errors_total",
    "Inputs the ML service could not embed, by code",
    ["code"],
    registry=metrics.REGISTRY,
)
decode_seconds = Histogram(
    "photoindex_ml_decode_seconds",
    "Decoding one uploaded photo on the ML service",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=metrics.REGISTRY,
)


# -- captioners ----------------------------------------------------


@dataclass(frozen=True)
class CaptionOptions:
    prompt: str | None = None
    max_length: int | None = None


class Captioner(Protocol):
    """What the service needs from a captioning model."""

    name: str
    revision: str

    def caption(self, images: Sequence[Image.Image], options: CaptionOptions) -> list[str]: ...


class _ConfiguredCaptioner:
    """The captioner the settings name (BLIP or a VLM endpoint) behind the service's interface."""

    def __init__(self, settings: Settings) -> None:
        from photoindex.enrich.loader import make_captioner
        from photoindex.ml.registry import ModelRegistry

        self.inner = make_captioner(settings, ModelRegistry(settings))
        self.name, self.revision = self.inner.name, self.inner.revision

    def caption(self, images: Sequence[Image.Image], options: CaptionOptions) -> list[str]:
        from photoindex.ml.caption import trim_caption

        texts = self.inner.caption(images, prompt=options.prompt)
        return [trim_caption(t, options.max_length) for t in texts] if options.max_length else texts


#: captioner name -> factory(settings); `serve-ml --captioner NAME` (`MLServiceOptions.captioners`) loads
#: them at start-up. `configured` is the one the settings name (`captioner`, `vlm_url`).
CAPTIONERS: dict[str, Callable[[Settings], Captioner]] = {"configured": _ConfiguredCaptioner}


# -- errors -------------------------------------------------------------------------------------------


class ServiceError(Exception):
    """An HTTP error with photoindex's structured body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(code)
        self.message = message
        self.hint = hint
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            err["hint"] = self.hint
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _invalid(message: str, **details: Any) -> ServiceError:
    return ServiceError(422, ErrorCode.INVALID_REQUEST, message, details=details or None)


_STATUS_BY_CODE = {
    ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.UNKNOWN_MODEL: 404,
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.BACKEND_UNAVAILABLE: 503,
}


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit:,} bytes")
        self.limit = limit


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_response(data: Any, status: int = 200) -> Response:
    return Response(_json_bytes(data), status_code=status, media_type="application/json")


async def _send_error(send: Send, err: ServiceError) -> None:
    body = _json_bytes(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    """API-key check and request-body limit, as one plain ASGI layer (latency and the access log come
    from the REST API's `AccessLog`, wrapped around it)."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path") not in OPEN_PATHS:
            given = headers.get(API_KEY_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self.api_key):
                what = "a wrong" if given else "no"
                await _send_error(
                    send,
                    ServiceError(
                        401,
                        UNAUTHORIZED,
                        f"this ML service needs an API key; the request has {what} {API_KEY_HEADER}",
                        hint="send the shared key in the x-api-key header "
                        "(PHOTOINDEX_ML_API_KEY on the workers)",
                    ),
                )
                return
        length = headers.get(b"content-length")
        limit = self.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_error(
                    send, ServiceError(400, ErrorCode.INVALID_REQUEST, "invalid Content-Length")
                )
                return
            if declared > limit:
                await _send_error(send, _too_large(limit))
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> ServiceError:
    return ServiceError(
        413,
        ErrorCode.FILE_TOO_LARGE,
        f"the request body is larger than the limit of {limit:,} bytes",
        hint="send fewer or smaller images per request",
        details={"limit": limit},
    )


# -- the model host -----------------------------------------------------------------------------------


@dataclass
class MLServiceOptions:
    """How `serve-ml` runs, beyond `Settings` (the CLI's options)."""

    models: Sequence[str] = ()  # loaded besides settings.model (which stays the default)
    max_batch: int | None = None  # None: probe at start-up
    max_batch_cap: int = 256
    batch_wait_ms: float = 5.0
    # batches in flight per model and input kind (default: settings.infer_concurrency)
    concurrency: int | None = None
    decode_threads: int | None = None  # default: one per core
    max_body_bytes: int | None = None  # default: settings.upload_max_bytes
    max_items: int = 4096
    probe_budget_s: float = 20.0
    captioners: Sequence[str] = ()


@dataclass
class ServedModel:
    embedder: ImageTextEmbedder
    max_batch: int
    probe: ProbeResult | None
    images: Batcher
    texts: Batcher
    warmup_s: float = 0.0

    @property
    def name(self) -> str:
        return self.embedder.name

    def describe(self) -> dict[str, Any]:
        e = self.embedder
        providers = e.visual.providers if e.visual_loaded else []
        return {
            "name": e.name,
            "task": "image-text-embedding",
            "revision": e.revision,
            "model_id": e.model_id,
            "dim": e.dim,
            "image_size": e.preprocess.size,
            "context_length": e.context_length,
            "preprocess": e.preprocess.model_dump(mode="json"),
            "max_batch": self.max_batch,
            "probe": self.probe.to_dict() if self.probe else None,
            "providers": providers,
            "warmup_s": round(self.warmup_s, 3),
            "stats": {
                kind: {
                    "submissions": b.stats.submissions,
                    "batches": b.stats.batches,
                    "items": b.stats.items,
                    "largest_batch": b.stats.largest_batch,
                    "waiting": b.waiting,
                }
                for kind, b in (("image", self.images), ("text", self.texts))
            },
        }


def _load_embedder(settings: Settings, name: str, batch_size: int) -> ImageTextEmbedder:
    registry = ModelRegistry(settings)
    local, _ = registry.split_name(name)
    try:
        path = registry.require(name)
    except ModelError as exc:
        if not (settings.auto_pull and exc.code == ErrorCode.MODEL_NOT_FOUND):
            raise
        path = registry.pull(name, progress=False)
    return ImageTextEmbedder.load(
        path,
        name=local,
        providers=default_providers(settings.device),
        intra_op_threads=settings.intra_op_threads,
        batch_size=batch_size,
    )


class ModelHost:
    """The models one service process serves, their batchers and thread pools."""

    def __init__(self, settings: Settings, options: MLServiceOptions) -> None:
        self.settings = settings
        self.options = options
        names: list[str] = []
        for n in [settings.model, *options.models]:
            local = ModelRegistry.split_name(n)[0]
            if local not in [ModelRegistry.split_name(x)[0] for x in names]:
                names.append(n)
        self.requested = names
        self.default = ModelRegistry.split_name(settings.model)[0]
        self.models: dict[str, ServedModel] = {}
        self.captioners: dict[str, Captioner] = {}
        self.concurrency = max(1, options.concurrency or settings.infer_concurrency)
        self.infer_pool = ThreadPoolExecutor(
            max_workers=2 * self.concurrency * len(names) + 1, thread_name_prefix="ml-infer"
        )
        self.decode_pool = ThreadPoolExecutor(
            max_workers=options.decode_threads or os.cpu_count() or 2, thread_name_prefix="ml-decode"
        )
        self.max_body_bytes = options.max_body_bytes or settings.upload_max_bytes
        self.started = time.time()
        self.incoming = 0  # requests being read or decoded (see arriving)

    # start-up (blocking: run in a thread) ----------------------------------------------------------
    def load(self) -> None:
        for name in self.requested:
            served = self._load_one(name)
            self.models[served.name] = served
        for name in self.options.captioners:
            factory = CAPTIONERS.get(name)
            if factory is None:
                raise ModelError(
                    f"unknown captioner {name!r}",
                    code=ErrorCode.UNKNOWN_MODEL,
                    hint=f"known captioners: {', '.join(sorted(CAPTIONERS)) or 'none yet'}",
                )
            self.captioners[name] = factory(self.settings)

    def _load_one(self, name: str) -> ServedModel:
        opts = self.options
        cap = max(1, opts.max_batch or opts.max_batch_cap)
        started = time.perf_counter()
        embedder = _load_embedder(self.settings, name, batch_size=cap)
        size = embedder.preprocess.size
        rng = np.random.default_rng(0)

        def make(n: int) -> np.ndarray:
            return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)

        probe: ProbeResult | None = None
        if opts.max_batch:
            max_batch = opts.max_batch
            embedder.embed_images(make(max_batch))  # warm-up at the size that will run
        else:
            probe = probe_max_batch(embedder.embed_images, make, cap=cap, budget_s=opts.probe_budget_s)
            max_batch = probe.max_batch
        embedder.batch_size = max_batch
        embedder.embed_texts(["a photo"])
        elapsed = time.perf_counter() - started
        log.info(
            "serving %s (%d-d, %d px) with max_batch %d%s on %s in %.1f s",
            embedder.model_id,
            embedder.dim,
            size,
            max_batch,
            f" ({probe.reason})" if probe else "",
            ", ".join(embedder.visual.providers),
            elapsed,
        )
        wait = opts.batch_wait_ms / 1000.0
        images = Batcher(
            embedder.embed_images,
            max_batch=max_batch,
            max_wait_s=wait,
            concurrency=self.concurrency,
            executor=self.infer_pool,
            model=embedder.name,
            kind="image",
            expecting=self._incoming,
        )
        texts = Batcher(
            embedder.embed_texts,
            max_batch=max_batch,
            max_wait_s=wait,
            concurrency=self.concurrency,
            executor=self.infer_pool,
            model=embedder.name,
            kind="text",
            expecting=self._incoming,
        )
        return ServedModel(embedder, max_batch, probe, images, texts, elapsed)

    # in the event loop -----------------------------------------------------------------------------
    def _incoming(self) -> int:
        return self.incoming

    @contextmanager
    def arriving(self) -> Iterator[Callable[[], None]]:
        """Count a request whose inputs are still being read or decoded: batchers wait (up to the batch
        wait) for it to join their batch only while such requests exist. Call the yielded function once
        its inputs are ready, right before they are submitted."""
        self.incoming += 1
        done = False

        def arrived() -> None:
            nonlocal done
            if not done:
                done = True
                self.incoming -= 1

        try:
            yield arrived
        finally:
            if not done:
                arrived()
                for served in self.models.values():  # nobody waits for a request that failed
                    served.images.wake()
                    served.texts.wake()

    def start(self) -> None:
        for served in self.models.values():
            served.images.start()
            served.texts.start()

    async def close(self) -> None:
        for served in self.models.values():
            await served.images.close()
            await served.texts.close()
        self.infer_pool.shutdown(wait=False, cancel_futures=True)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)

    def get(self, name: str | None) -> ServedModel:
        if not name:
            return self.models[self.default]
        try:
            local = ModelRegistry.split_name(name)[0]
        except ModelError as exc:
            raise ServiceError(
                404, ErrorCode.UNKNOWN_MODEL, exc.message, details={"loaded": sorted(self.models)}
            ) from None
        served = self.models.get(local)
        if served is None:
            raise ServiceError(
                404,
                ErrorCode.MODEL_NOT_FOUND,
                f"model {local!r} is not loaded on this ML service",
                hint="start serve-ml with --model NAME to serve it as well",
                details={"loaded": sorted(self.models)},
            )
        return served

    def captioner(self, name: str | None) -> Captioner | None:
        if not self.captioners:
            return None
        if not name:
            return next(iter(self.captioners.values()))
        found = self.captioners.get(name)
        if found is None:
            raise ServiceError(
                404,
                ErrorCode.MODEL_NOT_FOUND,
                f"captioner {name!r} is not loaded on this ML service",
                details={"loaded": sorted(self.captioners)},
            )
        return found

    def capabilities(self) -> dict[str, Any]:
        default = self.models[self.default]
        providers = default.embedder.visual.providers if default.embedder.visual_loaded else []
        device = "tensorrt" if TENSORRT in providers else "cuda" if CUDA in providers else "cpu"
        return {
            "service": "photoindex-ml",
            "version": __version__,
            "api": "v1",
            "default_model": self.default,
            "max_batch": default.max_batch,
            "device": device,
            "providers": providers,
            "available_providers": available_providers(),
            "models": [m.describe() for m in self.models.values()],
            "captioners": {"loaded": sorted(self.captioners), "configurable": sorted(CAPTIONERS)},
            "inputs": {
                "texts": "application/json",
                "files": "multipart/form-data",
                "pixels": "application/x-npy or a multipart part: uint8 [N, S, S, 3]",
            },
            "vector_encodings": list(ENCODINGS),
            "limits": {
                "max_body_bytes": self.max_body_bytes,
                "max_items": self.options.max_items,
                "batch_wait_ms": self.options.batch_wait_ms,
                "concurrency": self.concurrency,
            },
            "uptime_s": round(time.time() - self.started, 1),
        }


# -- request parsing ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Item:
    kind: str  # "image" | "text"
    filename: str | None = None
    data: bytes | None = None  # an uploaded file, not yet decoded
    pixels: np.ndarray | None = None  # (S, S, 3) model input
    block: np.ndarray | None = None  # the uploaded [N, S, S, 3] array `pixels` is row `row` of
    row: int = 0
    image: Image.Image | None = None  # decoded photo (kept only for captions)
    text: str | None = None
    error: dict[str, Any] | None = None
    vector: np.ndarray | None = None
    caption: str | None = None


@dataclass
class _Inputs:
    items: list[_Item] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def _basename(name: str | None) -> str:
    if not name:
        return ""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _parse_npy(data: bytes, size: int, max_items: int) -> np.ndarray:
    """A `.npy` uint8 array [N, S, S, 3] (or one [S, S, 3] image), checked from its header before the
    pixels are read."""
    fmt = np.lib.format
    buf = io.BytesIO(data)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, SyntaxError) as exc:
        raise _invalid(f"the pixels are not a .npy array: {exc}") from None
    if dtype != np.uint8:
        raise _invalid(f"the pixels must be uint8, got {dtype}", dtype=str(dtype))
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or tuple(shape[1:]) != (size, size, 3):
        raise _invalid(
            f"the pixels must have shape [N, {size}, {size}, 3] for this model, got {list(shape)}",
            shape=list(shape),
            image_size=size,
        )
    if shape[0] < 1:
        raise _invalid("the pixel array holds no images")
    if shape[0] > max_items:
        raise _invalid(
            f"{shape[0]} images in one request, more than the limit of {max_items}", limit=max_items
        )
    expected = int(np.prod(shape))
    if len(data) - buf.tell() != expected:
        raise _invalid(
            f"the .npy array holds {len(data) - buf.tell():,} bytes of pixels, its header says {expected:,}"
        )
    array = np.load(io.BytesIO(data), allow_pickle=False)
    return np.ascontiguousarray(array.reshape(shape))


class _Reader:
    """Turns one request (JSON, multipart or a raw .npy body) into items, in request order."""

    def __init__(
        self, host: ModelHost, request: Request, *, texts: bool, images: bool, options: Sequence[str]
    ) -> None:
        self.host, self.request = host, request
        self.allow_texts, self.allow_images = texts, images
        self.options = ("model", "encoding", *options)

    async def read(self) -> _Inputs:
        request = self.request
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        inputs = _Inputs()
        for key in self.options:
            if key in request.query_params:
                inputs.fields[key] = request.query_params[key]
        if ctype == "application/json" or ctype.endswith("+json"):
            await self._json(inputs)
        elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            await self._multipart(inputs)
        elif ctype in NPY_TYPES:
            if not self.allow_images:
                raise _invalid("this route takes no images")
            model = self.host.get(inputs.fields.get("model"))
            self._add_pixels(inputs, await request.body(), model)
        else:
            raise ServiceError(
                415,
                ErrorCode.INVALID_REQUEST,
                f"unsupported Content-Type {ctype or '(none)'}",
                hint='send JSON {"texts": [...]}, a form (multipart/form-data) with files, pixels or texts '
                "parts, or an application/x-npy body",
            )
        if not inputs.items:
            raise _invalid("nothing to embed: the request holds no images and no texts")
        if len(inputs.items) > self.host.options.max_items:
            raise _invalid(
                f"{len(inputs.items)} items in one request, more than the limit of "
                f"{self.host.options.max_items}",
                limit=self.host.options.max_items,
            )
        return inputs

    async def _json(self, inputs: _Inputs) -> None:
        raw = await self.request.body()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _invalid('the JSON body must be an object like {"texts": [...]}')
        unknown = set(body) - {"texts", *self.options}
        if unknown:
            raise _invalid(f"unknown fields: {', '.join(sorted(unknown))}", allowed=["texts", *self.options])
        texts = body.get("texts")
        if not self.allow_texts:
            raise _invalid("this route takes images (multipart files or pixels), not JSON texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _invalid("'texts' must be a non-empty list of strings")
        for key in self.options:
            value = body.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise _invalid(f"'{key}' must be a string")
                inputs.fields[key] = value
        inputs.items.extend(_Item("text", text=t) for t in texts)

    async def _multipart(self, inputs: _Inputs) -> None:
        limit = self.host.options.max_items
        form = await self.request.form(
            max_files=limit, max_fields=limit + 16, max_part_size=self.host.max_body_bytes
        )
        try:
            parts = form.multi_items()
            for key, value in parts:  # options first: the model decides the pixel size
                if key in self.options:
                    if not isinstance(value, str):
                        raise _invalid(f"'{key}' must be a plain form field")
                    inputs.fields[key] = value
            model: ServedModel | None = None
            for key, value in parts:
                if key in self.options:
                    continue
                if key in ("files", "file"):
                    if not self.allow_images:
                        raise _invalid("this route takes no images")
                    if not isinstance(value, UploadFile):
                        raise _invalid(f"'{key}' parts must be file uploads (with a filename)")
                    inputs.items.append(
                        _Item("image", filename=_basename(value.filename), data=await value.read())
                    )
                elif key == "pixels":
                    if not self.allow_images:
                        raise _invalid("this route takes no images")
                    if not isinstance(value, UploadFile):
                        raise _invalid("'pixels' parts must be file uploads (a .npy file with a filename)")
                    model = model or self.host.get(inputs.fields.get("model"))
                    self._add_pixels(inputs, await value.read(), model)
                elif key in ("texts", "text"):
                    if not self.allow_texts:
                        raise _invalid("this route takes no texts")
                    if not isinstance(value, str):
                        raise _invalid(f"'{key}' parts must be plain form fields")
                    inputs.items.append(_Item("text", text=value))
                else:
                    raise _invalid(
                        f"unknown part {key!r}",
                        allowed=["files", "pixels", *(["texts"] if self.allow_texts else []), *self.options],
                    )
        finally:
            await form.close()

    def _add_pixels(self, inputs: _Inputs, data: bytes, model: ServedModel) -> None:
        array = _parse_npy(data, model.embedder.preprocess.size, self.host.options.max_items)
        inputs.items.extend(_Item("image", pixels=array[i], block=array, row=i) for i in range(len(array)))


def _item_error(exc: BaseException, filename: str) -> dict[str, Any]:
    if isinstance(exc, PhotoindexError):
        err = exc.to_dict()
        err.pop("details", None)
    elif isinstance(exc, MemoryError):
        err = {
            "code": str(ErrorCode.IMAGE_TOO_LARGE),
            "message": f"{filename or 'the image'} needs more memory than is available to decode",
        }
    else:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        err = {
            "code": str(ErrorCode.CORRUPT_IMAGE),
            "message": f"{filename or 'the image'} cannot be decoded: {text}",
        }
    item_errors_total.labels(err["code"]).inc()
    return err


def _decode_one(settings: Settings, item: _Item, pre: Any, keep_image: bool) -> None:
    started = time.perf_counter()
    try:
        assert item.data is not None
        decoded = decode_image(
            item.data,
            path=item.filename or "",
            target=max(settings.thumbnail_sizes),
            max_pixels=settings.max_image_pixels,
            raw_preview_min=settings.raw_preview_min_size,
        )
        if pre is not None:
            item.pixels = fit_image(decoded.image, pre)
        if keep_image:
            item.image = decoded.image
    except (
        Exception
    ) as exc:  # any decoder failure (MediaError or worse) is this item's error, never the request's
        item.error = _item_error(exc, item.filename or "")
    finally:
        item.data = None
        decode_seconds.observe(time.perf_counter() - started)


async def _decode_files(host: ModelHost, items: list[_Item], pre: Any, *, keep_images: bool) -> None:
    todo = [it for it in items if it.data is not None]
    if not todo:
        return
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(
            loop.run_in_executor(host.decode_pool, _decode_one, host.settings, it, pre, keep_images)
            for it in todo
        )
    )


async def _embed_items(served: ServedModel, items: list[_Item]) -> None:
    images = [it for it in items if it.kind == "image" and it.error is None and it.pixels is not None]
    texts = [it for it in items if it.kind == "text" and it.error is None]
    jobs: list[tuple[list[_Item], Any]] = []
    if images:
        block = images[0].block
        if (
            block is not None
            and len(images) == len(block)
            and all(it.block is block and it.row == i for i, it in enumerate(images))
        ):
            payload = block  # one uploaded array, all of it: no copy
        else:
            payload = np.stack([it.pixels for it in images if it.pixels is not None])
        jobs.append((images, served.images.submit(payload)))
    if texts:
        jobs.append((texts, served.texts.submit([it.text for it in texts])))
    results = await asyncio.gather(*(job for _, job in jobs))
    for (group, _), vectors in zip(jobs, results, strict=True):
        for it, vector in zip(group, vectors, strict=True):
            it.vector = vector


def _encoding(inputs: _Inputs) -> str:
    encoding = inputs.fields.get("encoding") or "base64"
    if encoding not in ENCODINGS:
        raise _invalid(f"unknown encoding {encoding!r}", allowed=list(ENCODINGS))
    return encoding


def _encode_vector(vector: np.ndarray, encoding: str) -> Any:
    v = np.asarray(vector, dtype="<f4")
    if encoding == "list":
        return v.tolist()
    return base64.b64encode(v.tobytes()).decode("ascii")


def _items_out(items: list[_Item], encoding: str | None, *, captions: bool) -> list[dict[str, Any]]:
    out = []
    for i, it in enumerate(items):
        d: dict[str, Any] = {"index": i, "kind": it.kind}
        if it.filename is not None:
            d["filename"] = it.filename
        if it.error is not None:
            d["error"] = it.error
        else:
            if encoding is not None and it.vector is not None:
                d["vector"] = _encode_vector(it.vector, encoding)
            if captions:
                d["caption"] = it.caption
        out.append(d)
    return out


def _model_header(served: ServedModel, encoding: str) -> dict[str, Any]:
    e = served.embedder
    return {
        "model": e.name,
        "revision": e.revision,
        "model_id": e.model_id,
        "dim": e.dim,
        "encoding": encoding,
        "dtype": "<f4",
    }


def _caption_options(inputs: _Inputs) -> CaptionOptions:
    max_length = inputs.fields.get("max_length")
    if max_length is not None:
        try:
            length = int(max_length)
        except ValueError:
            raise _invalid("'max_length' must be an integer") from None
        if not 1 <= length <= 1024:
            raise _invalid("'max_length' must be between 1 and 1024")
    return CaptionOptions(
        prompt=inputs.fields.get("prompt") or None,
        max_length=int(max_length) if max_length is not None else None,
    )


async def _caption_items(
    host: ModelHost, captioner: Captioner, items: list[_Item], options: CaptionOptions
) -> None:
    todo = [it for it in items if it.error is None and (it.image is not None or it.pixels is not None)]
    if not todo:
        return
    images = [
        it.image if it.image is not None else Image.fromarray(np.asarray(it.pixels, dtype=np.uint8))
        for it in todo
    ]
    loop = asyncio.get_running_loop()
    captions = await loop.run_in_executor(host.infer_pool, captioner.caption, images, options)
    for it, text in zip(todo, captions, strict=True):
        it.caption = text
    for it in todo:
        it.image = None


def _not_available() -> ServiceError:
    return ServiceError(
        501,
        NOT_AVAILABLE,
        "no captioner is loaded on this ML service",
        hint="captioning models arrive with the enrichment models; start serve-ml with --captioner NAME "
        "once one is installed",
        details={"loaded": [], "configurable": sorted(CAPTIONERS)},
    )


# -- documented shapes (for OpenAPI; the handlers build the same JSON directly) -------------------------


class ErrorInfo(BaseModel):
    code: str
    message: str
    hint: str | None = None
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class ItemError(BaseModel):
    code: str = Field(
        description="a photoindex ErrorCode: corrupt_image, truncated_image, unsupported_type, ..."
    )
    message: str
    hint: str | None = None


class EmbedItem(BaseModel):
    index: int = Field(
        description="position of the input in the request (pixels rows, files, texts in part order)"
    )
    kind: Literal["image", "text"]
    filename: str | None = Field(default=None, description="for uploaded files")
    vector: str | list[float] | None = Field(
        default=None, description="L2-normalised float32: base64 of the little-endian bytes, or a list"
    )
    caption: str | None = Field(default=None, description="batch_embed_and_caption only")
    error: ItemError | None = Field(default=None, description="instead of a vector: why this input failed")


class EmbedResponse(BaseModel):
    model: str
    revision: str
    model_id: str
    dim: int
    encoding: Literal["base64", "list"]
    dtype: Literal["<f4"]
    count: int
    errors: int
    items: list[EmbedItem]
    captioner: str | None = Field(default=None, description="batch_embed_and_caption only")
    notice: str | None = Field(default=None, description="batch_embed_and_caption without a captioner")


class CaptionItem(BaseModel):
    index: int
    kind: Literal["image"]
    filename: str | None = None
    caption: str | None = None
    error: ItemError | None = None


class CaptionResponse(BaseModel):
    captioner: str
    revision: str
    count: int
    errors: int
    items: list[CaptionItem]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    task: str
    revision: str
    model_id: str
    dim: int
    image_size: int
    context_length: int
    preprocess: dict[str, Any]
    max_batch: int
    probe: dict[str, Any] | None
    providers: list[str]
    stats: dict[str, Any]


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="allow")

    service: str
    version: str
    api: str
    default_model: str
    max_batch: int
    device: str
    providers: list[str]
    available_providers: list[str]
    models: list[ModelInfo]
    captioners: dict[str, list[str]]
    vector_encodings: list[str]
    limits: dict[str, float]


class Health(BaseModel):
    status: Literal["ok"]


_KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        400: "malformed request",
        401: "missing or wrong x-api-key",
        404: "model not loaded",
        413: "request body over the limit",
        415: "unsupported Content-Type",
        422: "invalid input",
        501: "no captioner loaded",
        503: "shutting down",
    }
    return {s: {"model": ErrorResponse, "description": what[s]} for s in statuses}


# -- the app ------------------------------------------------------------------------------------------

_EMBED_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["texts"],
                    "properties": {
                        "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "model": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "encoding": {
                            "anyOf": [{"type": "string", "enum": list(ENCODINGS)}, {"type": "null"}]
                        },
                    },
                    "additionalProperties": False,
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "pixels": {
                            "type": "string",
                            "format": "binary",
                            "description": ".npy uint8 [N, S, S, 3]",
                        },
                        "texts": {"type": "array", "items": {"type": "string"}},
                        "model": {"type": "string"},
                        "encoding": {"type": "string", "enum": list(ENCODINGS)},
                    },
                }
            },
            "application/x-npy": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": ".npy uint8 [N, S, S, 3] model inputs",
                }
            },
        },
    }
}
_IMAGES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "pixels": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "encoding": {"type": "string", "enum": list(ENCODINGS)},
                        "captioner": {"type": "string"},
                        "prompt": {"type": "string"},
                        "max_length": {"type": "integer"},
                    },
                }
            },
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def create_ml_app(settings: Settings | None = None, options: MLServiceOptions | None = None) -> FastAPI:
    """The ML service's FastAPI app; models load when it starts (its lifespan)."""
    settings = settings or load_settings()
    options = options or MLServiceOptions()
    host = ModelHost(settings, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(host.load)
        host.start()
        try:
            yield
        finally:
            await host.close()

    app = FastAPI(
        title="photoindex ML service",
        version=__version__,
        lifespan=lifespan,
        description="Embeddings (and, later, captions) for photoindex workers. See "
        "photoindex.api.ml_app for the protocol.",
    )
    app.state.host = host
    app.add_middleware(ServiceMiddleware, api_key=settings.ml_api_key, max_body_bytes=host.max_body_bytes)
    app.add_middleware(AccessLog)  # added last: outermost, so refused requests are timed and logged too

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> Response:
        return _json_response(exc.body(), exc.status)

    @app.exception_handler(_BodyTooLarge)
    async def _body_too_large(_: Request, exc: _BodyTooLarge) -> Response:
        return _json_response(_too_large(exc.limit).body(), 413)

    @app.exception_handler(PhotoindexError)
    async def _photoindex_error(_: Request, exc: PhotoindexError) -> Response:
        return _json_response({"error": exc.to_dict()}, _STATUS_BY_CODE.get(exc.code, 500))

    @app.exception_handler(BatcherClosed)
    async def _closed(_: Request, exc: BatcherClosed) -> Response:
        err = ServiceError(503, ErrorCode.BACKEND_UNAVAILABLE, str(exc), hint="retry in a moment")
        return _json_response(err.body(), 503)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _json_response(
            _invalid("invalid request: " + "; ".join(p["msg"] for p in problems), problems=problems).body(),
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: str(ErrorCode.FILE_TOO_LARGE)}.get(
            exc.status_code,
            str(ErrorCode.INVALID_REQUEST) if exc.status_code < 500 else str(ErrorCode.INTERNAL),
        )
        response = _json_response(
            ServiceError(exc.status_code, code, str(exc.detail)).body(), exc.status_code
        )
        response.headers.update(exc.headers or {})  # Allow on 405
        return response

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:
        log.exception("ML service error")
        return _json_response(
            ServiceError(500, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}").body(), 500
        )

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    keyed = (
        [Security(_KEY_SCHEME)] if settings.ml_api_key else []
    )  # documents the key; ServiceMiddleware checks it

    @app.get(
        "/metrics",
        responses={
            200: {
                "description": "Prometheus exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **_errors(401),
        },
        dependencies=keyed,
    )
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/capabilities", responses={200: {"model": Capabilities}, **_errors(401)}, dependencies=keyed
    )
    async def capabilities() -> Response:
        return _json_response(host.capabilities())

    @app.post(
        "/api/v1/embed",
        openapi_extra=_EMBED_BODY,
        responses={200: {"model": EmbedResponse}, **_errors(400, 401, 404, 413, 415, 422, 503)},
        dependencies=keyed,
    )
    async def embed(request: Request) -> Response:
        with host.arriving() as arrived:
            inputs = await _Reader(host, request, texts=True, images=True, options=()).read()
            encoding = _encoding(inputs)
            served = host.get(inputs.fields.get("model"))
            await _decode_files(host, inputs.items, served.embedder.preprocess, keep_images=False)
            arrived()
            await _embed_items(served, inputs.items)
        errors = sum(it.error is not None for it in inputs.items)
        return _json_response(
            {
                **_model_header(served, encoding),
                "count": len(inputs.items),
                "errors": errors,
                "items": _items_out(inputs.items, encoding, captions=False),
            }
        )

    @app.post(
        "/api/v1/caption",
        openapi_extra=_IMAGES_BODY,
        responses={200: {"model": CaptionResponse}, **_errors(400, 401, 404, 413, 415, 422, 501, 503)},
        dependencies=keyed,
    )
    async def caption(request: Request) -> Response:
        if not host.captioners:
            raise _not_available()
        inputs = await _Reader(
            host, request, texts=False, images=True, options=("captioner", "prompt", "max_length")
        ).read()
        captioner = host.captioner(inputs.fields.get("captioner"))
        assert captioner is not None
        opts = _caption_options(inputs)
        await _decode_files(host, inputs.items, None, keep_images=True)
        await _caption_items(host, captioner, inputs.items, opts)
        return _json_response(
            {
                "captioner": captioner.name,
                "revision": captioner.revision,
                "count": len(inputs.items),
                "errors": sum(it.error is not None for it in inputs.items),
                "items": _items_out(inputs.items, None, captions=True),
            }
        )

    @app.post(
        "/api/v1/batch_embed_and_caption",
        openapi_extra=_IMAGES_BODY,
        responses={200: {"model": EmbedResponse}, **_errors(400, 401, 404, 413, 415, 422, 503)},
        dependencies=keyed,
    )
    async def batch_embed_and_caption(request: Request) -> Response:
        with host.arriving() as arrived:
            inputs = await _Reader(
                host, request, texts=False, images=True, options=("captioner", "prompt", "max_length")
            ).read()
            encoding = _encoding(inputs)
            served = host.get(inputs.fields.get("model"))
            captioner = host.captioner(inputs.fields.get("captioner"))
            opts = _caption_options(inputs)
            await _decode_files(
                host, inputs.items, served.embedder.preprocess, keep_images=captioner is not None
            )
            arrived()
            if captioner is not None:
                await asyncio.gather(
                    _embed_items(served, inputs.items), _caption_items(host, captioner, inputs.items, opts)
                )
            else:
                await _embed_items(served, inputs.items)
        body = {
            **_model_header(served, encoding),
            "captioner": captioner.name if captioner else None,
            "count": len(inputs.items),
            "errors": sum(it.error is not None for it in inputs.items),
            "items": _items_out(inputs.items, encoding, captions=True),
        }
        if captioner is None:
            body["notice"] = (
                "no captioner is loaded on this ML service: captions are null "
                f"(configurable: {', '.join(sorted(CAPTIONERS)) or 'none yet'})"
            )
        return _json_response(body)

    return app
