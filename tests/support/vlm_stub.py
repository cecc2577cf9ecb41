"""A stand-in for an OpenAI-compatible vision chat server (Ollama, llama.cpp server, vLLM), for tests.

`VlmStub` serves `POST /v1/chat/completions` with FastAPI on a loopback port (uvicorn in a thread). It
checks requests the way the OpenAI chat-completions contract describes them: `model`, `messages` whose
`content` is a string or a list of parts (`{"type": "text", "text"}`, `{"type": "image_url",
"image_url": {"url", "detail"?}}`), `max_tokens` / `max_completion_tokens`, `temperature`; the last user
message must carry a base64 `data:image/...` URL that decodes as an image. Errors come back in OpenAI's
shape (`{"error": {"message", "type", "param", "code"}}`): 400 for a bad request, 401 for a wrong
Bearer key (when the stub has one), 404 for an unknown model.

The answer describes the pixels it received, deterministically (`describe`): the mean colour's name, the
brightness and orientation with the size, then the colours of the left and right halves — so a test can
tell that a caption came from the photo it sent. `max_tokens` is honoured in words (`finish_reason`
"length"). Received requests, headers and decoded images since the last `reset()` are kept for
inspection.

Failures to simulate, consumed one request each, in order: `fail_next(status, times, retry_after)`,
`malformed_next()` (200 with a body that is not JSON), `empty_next()` (200 with no choices); and
`delay_s` (every answer waits that long).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 40),
    "orange": (240, 140, 20),
    "purple": (130, 40, 160),
    "white": (245, 245, 245),
    "black": (10, 10, 10),
    "gray": (128, 128, 128),
    "brown": (120, 80, 40),
}


def colour_name(rgb: np.ndarray) -> str:
    """The nearest of COLOURS to a mean RGB value."""
    names = list(COLOURS)
    table = np.array([COLOURS[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def describe(image: Image.Image, sentences: int = 1) -> str:
    """What the stub says about `image`: up to three sentences, each a function of the pixels."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = pixels.shape[:2]
    mean = pixels.reshape(-1, 3).mean(axis=0)
    light = mean.mean()
    brightness = "dark" if light < 85 else "bright" if light > 170 else "evenly lit"
    shape = "landscape" if width > height else "portrait" if height > width else "square"
    half = max(1, width // 2)
    left = colour_name(pixels[:, :half].reshape(-1, 3).mean(axis=0))
    right = colour_name(pixels[:, half:].reshape(-1, 3).mean(axis=0) if width > 1 else mean)
    parts = [
        f"A mostly {colour_name(mean)} photo.",
        f"It is {brightness} and {shape}, {width}x{height} pixels.",
        f"The left side is {left} and the right side is {right}.",
    ]
    return " ".join(parts[: max(1, sentences)])


# --- the request contract ------------------------------------------------------------------------------


class ImageUrl(BaseModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | ImagePart] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool | None = None


class StubError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


def _error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def decode_data_url(url: str) -> Image.Image:
    if not url.startswith("data:image/") or ";base64," not in url:
        raise StubError(400, "image_url must be a base64 data:image/... URL here", param="messages")
    try:
        raw = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (binascii.Error, ValueError, OSError) as exc:
        raise StubError(400, f"image_url does not hold a readable image: {exc}", param="messages") from exc
    return image


def _user_parts(request: ChatRequest) -> tuple[str, Image.Image]:
    user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    if user is None or not isinstance(user.content, list):
        raise StubError(400, "the last user message must be a list of content parts with an image",
                        param="messages")
    texts = [p.text for p in user.content if isinstance(p, TextPart)]
    images = [p.image_url.url for p in user.content if isinstance(p, ImagePart)]
    if not images:
        raise StubError(400, "no image_url part in the user message", param="messages")
    return " ".join(texts), decode_data_url(images[0])


# --- the server ---------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: Literal["status", "malformed", "empty"]
    status: int = 200
    retry_after: str | None = None


class VlmStub:
    """The stub server (see the module doc). Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, *, model: str = "stub-vision-1", api_key: str | None = None,
                 sentences: int = 1) -> None:
        self.model = model
        self.api_key = api_key
        self.sentences = sentences
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.images: list[Image.Image] = []
        self.prompts: list[str] = []
        self.calls = 0  # every POST, including failed ones
        self._epoch = 0  # bumped by reset(): a request still running from before it records nothing
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.app = self._build_app()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    # control ------------------------------------------------------------------------------------------
    def start(self) -> VlmStub:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the VLM stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, *, sentences: int = 1, api_key: str | None = None) -> None:
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self.images.clear()
            self.prompts.clear()
            self._faults.clear()
            self.calls = 0
            self._epoch += 1
        self.sentences, self.api_key, self.delay_s = sentences, api_key, 0.0

    def fail_next(self, status: int, times: int = 1, *, retry_after: str | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault("status", status, retry_after) for _ in range(times))

    def malformed_next(self, times: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault("malformed") for _ in range(times))

    def empty_next(self, times: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault("empty") for _ in range(times))

    # serving ------------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.exception_handler(RequestValidationError)
        async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            return JSONResponse(_error_body(f"{where}: {first.get('msg', 'invalid request')}",
                                            "invalid_request_error", where or None), status_code=400)

        @app.exception_handler(StubError)
        async def stub_error(_: Request, exc: StubError) -> JSONResponse:
            body = _error_body(exc.message, exc.kind, exc.param, exc.code)
            return JSONResponse(body, status_code=exc.status)

        @app.post("/v1/chat/completions")
        async def chat(body: ChatRequest, request: Request) -> Response:
            return await self._chat(body, request)

        return app

    async def _chat(self, body: ChatRequest, request: Request) -> Response:
        with self._lock:
            self.calls += 1
            epoch = self._epoch
            fault = self._faults.popleft() if self._faults else None
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return JSONResponse(_error_body("simulated failure", "server_error"), status_code=fault.status,
                                headers=headers)
        if fault is not None and fault.kind == "malformed":
            return PlainTextResponse("<html>upstream hiccup</html>", media_type="application/json")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            raise StubError(401, "Incorrect API key provided", code="invalid_api_key")
        if body.model != self.model:
            raise StubError(404, f"The model `{body.model}` does not exist", code="model_not_found",
                            param="model")
        prompt, image = _user_parts(body)
        with self._lock:
            if epoch == self._epoch:
                self.requests.append(body.model_dump(mode="json"))
                self.headers.append(dict(request.headers))
                self.images.append(image)
                self.prompts.append(prompt)
        if fault is not None and fault.kind == "empty":
            return JSONResponse({"id": "chatcmpl-stub", "object": "chat.completion",
                                 "created": int(time.time()), "model": self.model, "choices": []})
        answer = describe(image, self.sentences)
        words = answer.split()
        limit = body.max_completion_tokens or body.max_tokens
        finish = "stop"
        if limit is not None and len(words) > limit:
            answer, finish = " ".join(words[:limit]), "length"
        return JSONResponse({
            "id": f"chatcmpl-stub-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": len(prompt.split()) + 1, "completion_tokens": len(answer.split()),
                      "total_tokens": len(prompt.split()) + 1 + len(answer.split())},
        })
