"""`RemoteEmbedder`: an image-text model that lives in a `photoindex serve-ml` service.

It has the interface the pipeline and search use on `ImageTextEmbedder` (`name`, `revision`,
`model_id`, `dim`, `preprocess`, `batch_size`, `embed_images`, `embed_pil`, `embed_texts`, `warmup`),
so `Runtime.embedder` hands out one of these instead of loading ONNX sessions when `ml_url` is set.

* What the model is (revision, dim, preprocessing, the service's probed `max_batch`) comes from
  `GET /api/v1/capabilities`, fetched when the embedder is made and again on use once it is older than
  `poll_interval_s` (10 s). Batches are `ml_batch_size` when set, else the service's `max_batch`.
* Images travel as the model inputs ingest already made (`fit_image`, uint8 [N, S, S, 3]) in a raw
  `.npy` body per batch (up to `parallel_requests` batches in flight); texts as JSON. Vectors come back
  as base64 little-endian float32.
* The service going away is waited out: connection errors, timeouts and 502/503/504 are retried with
  exponential backoff and jitter, logged once per outage, and the call carries on by itself when the
  service is back. Image embedding (ingest) waits without limit by default (`ingest_deadline_s=None`);
  text and single-image embedding (interactive search) give up after `interactive_deadline_s` (30 s)
  with `ModelError(BACKEND_UNAVAILABLE)`. A 500 is retried `max_server_errors` times, then raised, so a
  request that always fails reaches the job's own retry and dead-letter handling instead of hanging.
"""

from __future__ import annotations

import base64
import io
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.preprocess import fit_images
from photoindex.ml.specs import Preprocess

if TYPE_CHECKING:
    from photoindex.config import Settings

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
RETRY_STATUSES = frozenset({502, 503, 504})


def _split_name(name: str) -> str:
    return name.strip().rsplit("/", 1)[-1]


class RemoteEmbedder:
    """An image-text model served by `photoindex serve-ml` at `url` (see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        api_key: str | None = None,
        batch_size: int | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        interactive_deadline_s: float | None = 30.0,
        ingest_deadline_s: float | None = None,
        connect_deadline_s: float | None = None,
        poll_interval_s: float = 10.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        max_server_errors: int = 5,
        parallel_requests: int = 4,
    ) -> None:
        if not url.strip():
            raise ModelError(
                "the ML service URL is empty",
                code=ErrorCode.CONFIG_INVALID,
                hint="set PHOTOINDEX_ML_URL to http://HOST:8001",
            )
        self.url = url.strip().rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        if not self.url.startswith(("http://", "https://")):
            raise ModelError(
                f"the ML service URL {self.url!r} is not an http(s) URL",
                code=ErrorCode.CONFIG_INVALID,
                hint="set PHOTOINDEX_ML_URL to http://HOST:8001",
            )
        self.requested = _split_name(name) if name else None
        self.batch_size_override = batch_size
        self.interactive_deadline_s = interactive_deadline_s
        self.ingest_deadline_s = ingest_deadline_s
        self.poll_interval_s = poll_interval_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_server_errors = max(1, max_server_errors)
        self.parallel_requests = max(1, parallel_requests)
        self._pool: ThreadPoolExecutor | None = None
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._state_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._down_since: float | None = None
        self.outages = 0  # how many times the service went away (for tests and status displays)
        self.retries = 0
        self.capabilities: dict[str, Any] = {}
        self._fetched_at = 0.0
        # filled from the capabilities
        self.name = self.requested or ""
        self.revision = ""
        self.dim = 0
        self.preprocess: Preprocess | None = None
        self.context_length = 0
        self.max_batch = 1
        self.providers: list[str] = []
        self.device = ""
        deadline = connect_deadline_s if connect_deadline_s is not None else interactive_deadline_s
        try:
            self.refresh(deadline_s=deadline)
        except BaseException:
            self._client.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None, **kwargs: Any) -> RemoteEmbedder:
        """The model `name` (default: the service's default model) from the service at `settings.ml_url`."""
        if not settings.ml_url:
            raise ModelError(
                "no ML service is configured",
                code=ErrorCode.CONFIG_INVALID,
                hint="set PHOTOINDEX_ML_URL (or ML_INFERENCE_SERVICE_URL) to http://HOST:8001",
            )
        kwargs.setdefault("api_key", settings.ml_api_key)
        kwargs.setdefault("batch_size", settings.ml_batch_size)
        return cls(settings.ml_url, name=name, **kwargs)

    # what the model is ------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def batch_size(self) -> int:
        return max(1, self.batch_size_override or self.max_batch)

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.batch_size_override = value

    def refresh(self, *, deadline_s: float | None = None) -> None:
        """Read the service's capabilities now (waiting for the service up to `deadline_s`)."""
        resp = self._call("GET", "/api/v1/capabilities", deadline_s=deadline_s)
        caps = self._json(resp, "/api/v1/capabilities")
        self._apply(caps)

    def _apply(self, caps: dict[str, Any]) -> None:
        models = caps.get("models")
        if not isinstance(models, list) or not models:
            raise ModelError(
                f"{self.url} answered capabilities without models; is it a photoindex ML service?",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            )
        wanted = self.requested or caps.get("default_model")
        entry = next((m for m in models if m.get("name") == wanted), None)
        if entry is None:
            raise ModelError(
                f"the ML service at {self.url} does not serve model {wanted!r} "
                f"(it serves {', '.join(str(m.get('name')) for m in models)})",
                code=ErrorCode.UNKNOWN_MODEL,
                hint=f"start serve-ml with --model {wanted} (or PHOTOINDEX_MODEL={wanted}) on the ML machine",
                details={"url": self.url, "model": wanted},
            )
        try:
            preprocess = Preprocess(**entry["preprocess"])
            dim = int(entry["dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"the ML service at {self.url} described {wanted!r} in a form this client cannot read: {exc}",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            ) from None
        with self._state_lock:
            if self.dim and dim != self.dim:
                log.error("the ML service's %s now makes %d-d vectors (was %d-d)", wanted, dim, self.dim)
            if self.revision and entry.get("revision") != self.revision:
                log.warning(
                    "the ML service's %s changed revision: %s -> %s",
                    wanted,
                    self.revision,
                    entry.get("revision"),
                )
            self.capabilities = caps
            self.name = str(entry["name"])
            self.revision = str(entry.get("revision") or "")
            self.dim = dim
            self.preprocess = preprocess
            self.context_length = int(entry.get("context_length") or 0)
            self.max_batch = max(1, int(entry.get("max_batch") or caps.get("max_batch") or 1))
            self.providers = list(entry.get("providers") or caps.get("providers") or [])
            self.device = str(caps.get("device") or "")
            self._fetched_at = time.monotonic()

    def _maybe_refresh(self) -> None:
        """Poll the capabilities when they are older than `poll_interval_s` (one thread at a time; a
        failure is left to the embedding call that follows)."""
        if time.monotonic() - self._fetched_at < self.poll_interval_s:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            resp = self._client.get("/api/v1/capabilities")
            if resp.status_code == 200:
                self._apply(resp.json())
        except (httpx.HTTPError, ValueError, ModelError) as exc:
            log.debug("capabilities poll of %s failed: %s", self.url, exc)
        finally:
            self._fetched_at = max(self._fetched_at, time.monotonic() - self.poll_interval_s / 2)
            self._refresh_lock.release()

    # transport --------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, deadline_s: float | None, **kwargs: Any) -> httpx.Response:
        """One request, retried while the service is away (see the module doc)."""
        started = time.monotonic()
        attempt = 0
        server_errors = 0
        while True:
            try:
                resp = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # refused, reset, timed out, cut off mid-answer
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if resp.status_code not in RETRY_STATUSES and resp.status_code != 500:
                    self._up()
                    return resp
                problem = f"HTTP {resp.status_code}: {_error_message(resp)}"
                if resp.status_code == 500:
                    server_errors += 1
                    if server_errors >= self.max_server_errors:
                        self._up()
                        raise ModelError(
                            f"the ML service at {self.url} failed {server_errors} times on {path}: {problem}",
                            code=ErrorCode.BACKEND_UNAVAILABLE,
                            hint="see the ML service's log",
                            details={"url": self.url},
                        )
            waited = time.monotonic() - started
            if deadline_s is not None and waited >= deadline_s:
                raise ModelError(
                    f"the ML service at {self.url} did not answer for {waited:.0f} s ({problem})",
                    code=ErrorCode.BACKEND_UNAVAILABLE,
                    hint="start it with `photoindex serve-ml` on the ML machine, or unset PHOTOINDEX_ML_URL "
                    "to run models in this process",
                    details={"url": self.url},
                )
            self._down(problem)
            delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** min(attempt, 16)))
            delay = random.uniform(
                delay / 2, delay
            )  # jitter: workers that lost the service together spread out
            if deadline_s is not None:
                delay = min(delay, max(0.0, deadline_s - waited))
            self.retries += 1
            attempt += 1
            time.sleep(delay)

    def _down(self, problem: str) -> None:
        with self._state_lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self.outages += 1
        log.warning("ML service %s is unavailable (%s); waiting for it to come back", self.url, problem)

    def _up(self) -> None:
        if self._down_since is None:
            return
        with self._state_lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("ML service %s is back after %.1f s", self.url, time.monotonic() - since)

    def _json(self, resp: httpx.Response, path: str) -> dict[str, Any]:
        if resp.status_code != 200:
            raise self._error(resp, path)
        try:
            data = resp.json()
        except ValueError:
            raise ModelError(
                f"{self.url}{path} did not answer JSON; is it a photoindex ML service?",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                details={"url": self.url},
            ) from None
        if not isinstance(data, dict):
            raise ModelError(
                f"{self.url}{path} answered {type(data).__name__}, not an object",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            )
        return data

    def _error(self, resp: httpx.Response, path: str) -> ModelError:
        status = resp.status_code
        code = _error_code(resp)
        message = _error_message(resp)
        details = {"url": self.url, "status": status, "path": path}
        if status in (401, 403):
            return ModelError(
                f"the ML service at {self.url} refused the request: {message}",
                code=ErrorCode.CONFIG_INVALID,
                hint="set PHOTOINDEX_ML_API_KEY to the key the ML service was started with",
                details=details,
            )
        if status == 404 and code in (ErrorCode.MODEL_NOT_FOUND, ErrorCode.UNKNOWN_MODEL):
            return ModelError(
                message,
                code=ErrorCode.UNKNOWN_MODEL,
                hint="start serve-ml with --model NAME on the ML machine",
                details=details,
            )
        if status == 404:
            return ModelError(
                f"{self.url} has no {path}; is PHOTOINDEX_ML_URL a photoindex ML service?",
                code=ErrorCode.CONFIG_INVALID,
                details=details,
            )
        if status in (400, 413, 415, 422):
            return ModelError(
                f"the ML service refused the request: {message}",
                code=ErrorCode.INVALID_REQUEST,
                details=details,
            )
        return ModelError(
            f"the ML service answered HTTP {status}: {message}",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            details=details,
        )

    # embedding --------------------------------------------------------------------------------------
    def _vectors(self, data: dict[str, Any], n: int) -> np.ndarray:
        dim = data.get("dim")
        if dim != self.dim:
            raise ModelError(
                f"the ML service returned {dim}-d vectors for {self.name}, expected {self.dim}-d",
                code=ErrorCode.DIMENSION_MISMATCH,
                hint="the service's model changed; restart the workers",
            )
        revision = data.get("revision")
        if revision and revision != self.revision:
            log.warning("the ML service's %s changed revision: %s -> %s", self.name, self.revision, revision)
            self.revision = str(revision)
        items = data.get("items") or []
        if len(items) != n:
            raise ModelError(
                f"the ML service returned {len(items)} vectors for {n} inputs",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            )
        out = np.empty((n, self.dim), dtype=np.float32)
        for i, item in enumerate(items):
            if "error" in item:
                err = item["error"] or {}
                raise ModelError(
                    f"the ML service could not embed input {i}: {err.get('message')}",
                    code=ErrorCode.INVALID_REQUEST,
                    details={"item": err},
                )
            vector = item.get("vector")
            if isinstance(vector, str):
                row = np.frombuffer(base64.b64decode(vector), dtype="<f4")
            else:
                row = np.asarray(vector, dtype=np.float32)
            if row.shape != (self.dim,):
                raise ModelError(
                    f"the ML service returned a vector of {row.size} values, expected {self.dim}",
                    code=ErrorCode.DIMENSION_MISMATCH,
                )
            out[i] = row
        return out

    def _post_pixels(self, pixels: np.ndarray, deadline_s: float | None) -> np.ndarray:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(pixels), allow_pickle=False)
        resp = self._call(
            "POST",
            "/api/v1/embed",
            deadline_s=deadline_s,
            content=buf.getvalue(),
            params={"model": self.name},
            headers={"content-type": "application/x-npy"},
        )
        if resp.status_code == 413 and len(pixels) > 1:  # over the service's body limit: halve
            half = len(pixels) // 2
            return np.concatenate(
                [self._post_pixels(pixels[:half], deadline_s), self._post_pixels(pixels[half:], deadline_s)]
            )
        return self._vectors(self._json(resp, "/api/v1/embed"), len(pixels))

    def _embed_pixels(self, pixels: np.ndarray, deadline_s: float | None) -> np.ndarray:
        self._maybe_refresh()
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        assert self.preprocess is not None
        size = self.preprocess.size
        if pixels.ndim != 4 or pixels.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected pixels of shape (N, {size}, {size}, 3) from fit_image, got {pixels.shape}"
            )
        if pixels.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
        n = pixels.shape[0]
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        step = self.batch_size
        chunks = [pixels[start : start + step] for start in range(0, n, step)]
        if len(chunks) == 1 or self.parallel_requests == 1:
            parts = [self._post_pixels(chunk, deadline_s) for chunk in chunks]
        else:  # several requests in flight: the service batches and pipelines them
            parts = list(self._executor().map(lambda chunk: self._post_pixels(chunk, deadline_s), chunks))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._state_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.parallel_requests, thread_name_prefix="ml-remote")
        return self._pool

    def embed_images(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) from `fit_image` -> float32 (N, D), L2-normalised (by the service). Waits for
        the service without limit unless `ingest_deadline_s` is set."""
        return self._embed_pixels(pixels, self.ingest_deadline_s)

    def embed_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Whole images: `fit_image` here, embedding there (interactive: gives up after the deadline)."""
        assert self.preprocess is not None
        return self._embed_pixels(fit_images(images, self.preprocess), self.interactive_deadline_s)

    def embed_texts(self, texts: Sequence[str] | str) -> np.ndarray:
        """float32 (N, D), L2-normalised (interactive: gives up after `interactive_deadline_s`)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        self._maybe_refresh()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            resp = self._call(
                "POST",
                "/api/v1/embed",
                deadline_s=self.interactive_deadline_s,
                json={"texts": chunk, "model": self.name},
            )
            out[start : start + len(chunk)] = self._vectors(self._json(resp, "/api/v1/embed"), len(chunk))
        return out

    def warmup(self) -> None:
        """One image and one text through the service (which warmed its sessions at start-up)."""
        assert self.preprocess is not None
        size = self.preprocess.size
        self.embed_images(np.zeros((1, size, size, 3), dtype=np.uint8))
        self.embed_texts(["a photo"])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"RemoteEmbedder({self.model_id}, dim={self.dim}, url={self.url}, batch_size={self.batch_size})"
        )


def _error_body(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def _error_code(resp: httpx.Response) -> str | None:
    code = _error_body(resp).get("code")
    return str(code) if code else None


def _error_message(resp: httpx.Response) -> str:
    message = _error_body(resp).get("message")
    if message:
        return str(message)
    text = resp.text.strip()
    return text.splitlines()[0][:200] if text else resp.reason_phrase
