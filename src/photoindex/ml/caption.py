"""Captioners: a sentence about a photo, from a local BLIP model or from any OpenAI-compatible vision chat
server (Ollama, llama.cpp server, vLLM, LM Studio, OpenAI itself).

* `BlipCaptioner.load(path)` runs a Hugging Face BLIP captioning folder (the layout of
  Salesforce/blip-image-captioning-base: `config.json`, `model.safetensors` or `pytorch_model.bin`,
  `preprocessor_config.json` or `processor_config.json`, tokenizer files) through transformers'
  `BlipForConditionalGeneration` + `BlipProcessor`. transformers and torch are the optional `hf` extra,
  imported only here. A conditional prompt ("a photography of") is a prefix the decoder continues; it is
  cut from the answer by token count, so the caption holds only what the model added.
* `VlmCaptioner` posts each photo (downscaled, JPEG, as a data: URL) to `POST {base_url}/v1/chat/completions`
  with a prompt, `max_tokens` and temperature 0, a few photos at a time over one keep-alive client;
  transient failures (connection refused or reset, 429, 502-504) are retried with backoff.
  Answers are cleaned (whitespace, quotes, `<think>` blocks) and cut to `max_chars` at a sentence or
  word boundary.
* `caption_regions` captions the crops of detected regions with either captioner.

Both captioners have `name`, `revision` (part of result-cache keys) and `options_key` (a short digest of
what else changes the words: prompt, length limits), and `caption(images, prompt=...) -> list[str]`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import httpx
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.registry import model_revision
from photoindex.ml.zeroshot import crop_region
from photoindex.schemas import Region

log = logging.getLogger(__name__)

HF_EXTRA_HINT = "pip install 'photoindex[hf]'"


@runtime_checkable
class Captioner(Protocol):
    """What enrichment needs from a captioning model."""

    name: str
    revision: str

    def caption(self, images: Sequence[Image.Image], *, prompt: str | None = None) -> list[str]: ...


# --- text ---------------------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_QUOTES = ('"', "'", "`", "\u201c", "\u201d")


def clean_caption(text: str) -> str:
    """One line of plain text: reasoning blocks dropped, whitespace collapsed, wrapping quotes removed."""
    text = _SPACES.sub(" ", _THINK.sub(" ", text)).strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def trim_caption(text: str, max_chars: int) -> str:
    """`text` in at most `max_chars` characters: whole sentences when the last one that fits ends past
    half the budget, else whole words followed by an ellipsis (counted in the budget)."""
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= max_chars]
    if ends and ends[-1] >= max_chars // 2:
        return text[: ends[-1]]
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > 0:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "\u2026"


def _options_key(**options: Any) -> str:
    blob = json.dumps(options, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]


def _rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparency is composited on white, which is how viewers show it."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


# --- BLIP (transformers) ------------------------------------------------------------------------------

BLIP_CONFIG = "config.json"
BLIP_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
BLIP_IMAGE_CONFIGS = ("preprocessor_config.json", "processor_config.json")
BLIP_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
BLIP_OTHER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
_CUDA_DEVICES = ("cuda", "gpu", "tensorrt")


def _import_hf() -> tuple[Any, Any, Any]:
    """torch, BlipForConditionalGeneration and BlipProcessor, or BACKEND_UNAVAILABLE naming the extra."""
    try:
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor
    except ImportError as exc:
        raise ModelError(
            f"BLIP captioning needs torch and transformers, which are not installed ({exc})",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            hint=HF_EXTRA_HINT,
        ) from exc
    return torch, BlipForConditionalGeneration, BlipProcessor


def _first(path: Path, names: Sequence[str]) -> Path | None:
    return next((path / n for n in names if (path / n).is_file()), None)


def _check_blip_folder(path: Path) -> list[Path]:
    """The files that make the model (for its revision), or MODEL_NOT_FOUND / MODEL_INVALID saying why."""
    if not path.is_dir():
        raise ModelError(
            f"no BLIP model folder at {path}",
            code=ErrorCode.MODEL_NOT_FOUND,
            hint="download a BLIP captioning model (e.g. Salesforce/blip-image-captioning-base) on a "
            "connected machine and point the captioner at its folder",
            details={"path": str(path)},
        )
    config_file = path / BLIP_CONFIG
    weights = _first(path, BLIP_WEIGHTS)
    image_config = _first(path, BLIP_IMAGE_CONFIGS)
    tokenizer = _first(path, BLIP_TOKENIZER_FILES)
    missing = [
        what
        for what, found in (
            (BLIP_CONFIG, config_file.is_file()),
            (" or ".join(BLIP_WEIGHTS), weights),
            (" or ".join(BLIP_IMAGE_CONFIGS), image_config),
            (" or ".join(BLIP_TOKENIZER_FILES), tokenizer),
        )
        if not found
    ]
    if missing:
        raise _invalid(path, f"missing {', '.join(missing)}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"{BLIP_CONFIG} is unreadable: {exc}") from exc
    if not isinstance(config, dict) or config.get("model_type") != "blip":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise _invalid(path, f"it holds a {kind or 'non-BLIP'} model, not BLIP")
    architectures = config.get("architectures") or []
    if architectures and "BlipForConditionalGeneration" not in architectures:
        # a retrieval or VQA checkpoint would load with a random caption decoder
        raise _invalid(path, f"it is a {', '.join(architectures)} checkpoint, not a captioning one")
    extras = [p for p in (path / n for n in BLIP_TOKENIZER_FILES + BLIP_OTHER_FILES) if p.is_file()]
    return sorted({config_file, weights, image_config, *extras})  # type: ignore[arg-type]


def _invalid(path: Path, reason: str) -> ModelError:
    return ModelError(
        f"{path} is not a usable BLIP captioning model: {reason}",
        code=ErrorCode.MODEL_INVALID,
        hint="use a folder laid out like Salesforce/blip-image-captioning-base (config.json, "
        "model.safetensors, preprocessor_config.json, tokenizer files)",
        details={"path": str(path)},
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _torch_device(torch: Any, device: str) -> str:
    choice = device.strip().lower()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice in _CUDA_DEVICES or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} asked for, but torch sees no CUDA GPU",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint="install a CUDA build of torch, or use device 'cpu'",
            )
        return choice if choice.startswith("cuda:") else "cuda"
    raise ModelError(
        f"unknown device {device!r}", code=ErrorCode.CONFIG_INVALID, hint="use auto, cpu, cuda or cuda:N"
    )


class BlipCaptioner:
    """A BLIP captioning model in transformers (see the module doc). Make one with `load`."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        path: Path,
        name: str,
        revision: str,
        device: str,
        max_new_tokens: int,
        num_beams: int,
        batch_size: int,
    ) -> None:
        self.model = model
        self.processor = processor
        self.path = path
        self.name = name
        self.revision = revision
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.batch_size = batch_size
        # the Rust tokenizer refuses concurrent use ("Already borrowed"); generation itself is re-entrant
        self._preprocess_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        name: str | None = None,
        device: str = "cpu",
        max_new_tokens: int = 30,
        num_beams: int = 1,
        batch_size: int = 8,
    ) -> BlipCaptioner:
        """Load the BLIP folder at `path` from local files only (nothing is downloaded). On a GPU the
        weights run in float16. Errors: BACKEND_UNAVAILABLE (no torch/transformers, or no GPU for
        `device`), MODEL_NOT_FOUND (no folder), MODEL_INVALID (not a complete BLIP captioning folder)."""
        if max_new_tokens < 1 or num_beams < 1 or batch_size < 1:
            raise ModelError(
                "max_new_tokens, num_beams and batch_size must be at least 1", code=ErrorCode.CONFIG_INVALID
            )
        path = Path(path).expanduser()
        files = _check_blip_folder(path)
        torch, model_cls, processor_cls = _import_hf()
        target = _torch_device(torch, device)
        dtype = torch.float16 if target.startswith("cuda") else torch.float32
        try:
            processor = processor_cls.from_pretrained(path, local_files_only=True)
            model, info = model_cls.from_pretrained(
                path, local_files_only=True, dtype=dtype, output_loading_info=True
            )
        except ImportError as exc:  # a tokenizer or weights format that needs another package
            raise ModelError(
                f"loading {path} needs a package that is not installed: {exc}",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint=HF_EXTRA_HINT,
            ) from exc
        except Exception as exc:  # safetensors, pickle, JSON and config errors all mean a broken folder
            raise _invalid(path, f"{type(exc).__name__}: {_first_line(exc)}") from exc
        broken = sorted(str(k) for key in ("missing_keys", "mismatched_keys") for k in info.get(key) or ())
        if broken:
            # transformers would fill these with random numbers and caption gibberish without complaint
            shown = ", ".join(broken[:3])
            raise _invalid(path, f"{len(broken)} weights are missing or misshapen ({shown}...)")
        model.to(target).eval()
        return cls(
            model,
            processor,
            path=path,
            name=name or path.name,
            revision=model_revision(path, files),
            device=target,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            batch_size=batch_size,
        )

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def options_key(self) -> str:
        return _options_key(max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)

    def caption(self, images: Sequence[Image.Image], *, prompt: str | None = None) -> list[str]:
        """One caption per image, in order. `prompt` is a prefix the model continues ("a photography
        of"); it is not part of the returned text."""
        prefix = (prompt or "").strip() or None
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self._caption_batch(images[start : start + self.batch_size], prefix))
        return out

    def _caption_batch(self, images: Sequence[Image.Image], prompt: str | None) -> list[str]:
        import torch

        rgb = [_rgb(img) for img in images]
        with self._preprocess_lock:
            if prompt is None:
                inputs = self.processor(images=rgb, return_tensors="pt")
            else:
                inputs = self.processor(images=rgb, text=[prompt] * len(rgb), return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        wanted = ("pixel_values", "input_ids", "attention_mask")
        tensors = {k: v.to(self.device) for k, v in inputs.items() if k in wanted}
        tensors["pixel_values"] = tensors["pixel_values"].to(dtype)
        # BLIP's generate swaps [CLS] for its decoder start token and drops the trailing [SEP], so the
        # answer starts with the prompt's tokens minus one (or with the start token alone)
        skip = tensors["input_ids"].shape[1] - 1 if "input_ids" in tensors else 1
        try:
            with torch.inference_mode():
                ids = self.model.generate(
                    **tensors, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False
                )
        except RuntimeError as exc:  # out of memory, a device fault
            raise ModelError(
                f"BLIP captioning failed on {self.device}: {_first_line(exc)}",
                code=ErrorCode.INTERNAL,
                hint="lower the captioner's batch size, or run it on the CPU",
                details={"model": self.model_id},
            ) from exc
        texts = self.processor.batch_decode(ids[:, skip:], skip_special_tokens=True)
        return [clean_caption(t) for t in texts]


# --- OpenAI-compatible vision chat --------------------------------------------------------------------

DEFAULT_PROMPT = "Describe this photo in one sentence."
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: longest Retry-After honoured; a server asking for more is treated as down
MAX_RETRY_AFTER_S = 30.0


def chat_endpoint(base_url: str) -> str:
    """`{base}/v1/chat/completions` for a server root, a `/v1` root or the full endpoint."""
    base = base_url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base):
        raise ModelError(
            f"{base_url!r} is not an http(s) URL",
            code=ErrorCode.CONFIG_INVALID,
            hint="give the server's address, e.g. http://localhost:11434 (Ollama) or "
            "http://localhost:8000/v1 (vLLM)",
        )
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def jpeg_data_url(image: Image.Image, side: int, quality: int = 90) -> str:
    """The image, longest side at most `side` pixels, as a base64 JPEG data: URL."""
    img = _rgb(image)
    if max(img.size) > side:
        img = img.copy() if img is image else img
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _error_text(response: httpx.Response) -> str:
    """The server's own reason: OpenAI `{"error": {"message"}}`, Ollama `{"error": "..."}`, FastAPI
    `{"detail"}`, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return str(error)[:300]
    return json.dumps(body)[:300]


class VlmCaptioner:
    """A vision-language model behind an OpenAI-compatible chat-completions endpoint (see the module doc).

    `prompt_template` is the instruction sent with every photo. It may hold `{hint}`: `caption(...,
    prompt=...)` then fills it (and it is empty otherwise); a template without `{hint}` is replaced by a
    given prompt. Thread-safe; `close()` (or `with`) releases the connections and threads.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        prompt_template: str = DEFAULT_PROMPT,
        max_tokens: int = 60,
        max_chars: int = 300,
        timeout_s: float = 60.0,
        image_side: int = 768,
        concurrency: int = 4,
        retries: int = 2,
        backoff_s: float = 0.5,
        jpeg_quality: int = 90,
    ) -> None:
        if not model.strip():
            raise ModelError("the vision model's name is empty", code=ErrorCode.CONFIG_INVALID)
        too_small = min(max_tokens, concurrency, jpeg_quality) < 1 or max_chars < 10 or image_side < 32
        if too_small or timeout_s <= 0:
            raise ModelError(
                "max_tokens, concurrency and jpeg_quality must be at least 1, max_chars at least 10, "
                "image_side at least 32 and timeout_s positive",
                code=ErrorCode.CONFIG_INVALID,
            )
        self.endpoint = chat_endpoint(base_url)
        self.model = model.strip()
        self.prompt_template = prompt_template
        self._render("")  # a template with other placeholders fails now, not on the first photo
        self.max_tokens = max_tokens
        self.max_chars = max_chars
        self.timeout_s = timeout_s
        self.image_side = image_side
        self.concurrency = concurrency
        self.retries = max(0, retries)
        self.backoff_s = max(0.0, backoff_s)
        self.jpeg_quality = jpeg_quality
        self.name = f"vlm:{self.model}"
        self.revision = self.model
        #: the model the server says answered (vLLM and OpenAI resolve aliases), once one has
        self.served_model: str | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def options_key(self) -> str:
        return _options_key(
            template=self.prompt_template, max_tokens=self.max_tokens, max_chars=self.max_chars,
            image_side=self.image_side,
        )

    def close(self) -> None:
        self._client.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # prompts ------------------------------------------------------------------------------------------
    def _render(self, hint: str) -> str:
        try:
            return _SPACES.sub(" ", self.prompt_template.format(hint=hint)).strip()
        except (KeyError, IndexError, ValueError) as exc:
            raise ModelError(
                f"the caption prompt template {self.prompt_template!r} is invalid: {exc!r}",
                code=ErrorCode.CONFIG_INVALID,
                hint="the only placeholder a template may hold is {hint}; write literal braces as {{ }}",
            ) from exc

    def instruction(self, prompt: str | None = None) -> str:
        """The text sent with each photo for `prompt` (see the class doc)."""
        if prompt and "{hint}" not in self.prompt_template:
            return prompt.strip()
        return self._render((prompt or "").strip())

    # captioning ---------------------------------------------------------------------------------------
    def caption(self, images: Sequence[Image.Image], *, prompt: str | None = None) -> list[str]:
        """One caption per image, in order, up to `concurrency` requests at a time. The first failure
        (after retries) is raised as ModelError and the photos not yet sent are dropped."""
        text = self.instruction(prompt)
        if len(images) <= 1:
            return [self._caption_one(img, text) for img in images]
        pool = self._executor()
        futures: list[Future[str]] = [pool.submit(self._caption_one, img, text) for img in images]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="vlm-caption")
            return self._pool

    def _caption_one(self, image: Image.Image, text: str) -> str:
        body = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": text},
                        {"type": "image_url", "image_url": {"url": jpeg_data_url(image, self.image_side,
                                                                                 self.jpeg_quality)}},
                    ],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": False,
        }
        return self._answer(self._post(body))

    def _post(self, body: dict[str, Any]) -> Any:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.post(self.endpoint, json=body)
            except httpx.TimeoutException as exc:
                # a model still thinking after timeout_s is not retried: it would only be asked again
                if isinstance(exc, httpx.ConnectTimeout) and not last:
                    self._sleep(attempt)
                    continue
                raise self._error(
                    f"{self.endpoint} did not answer within {self.timeout_s:g} s ({type(exc).__name__})",
                    ErrorCode.BACKEND_UNAVAILABLE,
                    "raise the captioner's timeout, or use a smaller model or image_side",
                ) from exc
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError) and not last:
                    self._sleep(attempt)
                    continue
                raise self._error(
                    f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}",
                    ErrorCode.BACKEND_UNAVAILABLE,
                    "start the vision model server (e.g. `ollama serve`) or fix the captioner's base_url",
                ) from exc
            if response.status_code in RETRY_STATUSES and not last:
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 400:
                raise self._http_error(response)
            try:
                return response.json()
            except ValueError as exc:
                raise self._error(
                    f"{self.endpoint} answered with something that is not JSON: {response.text[:120]!r}",
                    ErrorCode.BACKEND_UNAVAILABLE,
                    "check that base_url points at an OpenAI-compatible server",
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises

    def _sleep(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff_s * (2**attempt) * (0.75 + random.random() / 2)
        if retry_after:
            try:
                delay = min(MAX_RETRY_AFTER_S, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: the backoff is good enough
        log.info("retrying %s in %.2f s", self.endpoint, delay)
        time.sleep(delay)

    def _answer(self, payload: Any) -> str:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._error(
                f"{self.endpoint} answered without choices: {json.dumps(payload)[:200]}",
                ErrorCode.BACKEND_UNAVAILABLE,
                "check that base_url points at an OpenAI-compatible chat-completions server",
            )
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # some servers answer in content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise self._error(
                f"{self.endpoint} answered without message content: {json.dumps(choices[0])[:200]}",
                ErrorCode.BACKEND_UNAVAILABLE,
                "check that the model accepts images and chat messages",
            )
        if isinstance(payload.get("model"), str) and payload["model"]:
            self.served_model = payload["model"]
        text = clean_caption(content)
        if not text:
            raise self._error(
                f"{self.model} at {self.endpoint} gave an empty caption "
                f"(finish_reason {choices[0].get('finish_reason')!r})",
                ErrorCode.BACKEND_UNAVAILABLE,
                "raise max_tokens (reasoning models spend tokens thinking first), or pick another model",
            )
        return trim_caption(text, self.max_chars)

    def _http_error(self, response: httpx.Response) -> ModelError:
        status, reason = response.status_code, _error_text(response)
        message = f"{self.endpoint} answered {status}: {reason}"
        if status in (401, 403):
            hint = "check the captioner's api_key"
            return self._error(message, ErrorCode.BACKEND_UNAVAILABLE, hint, status)
        if status == 404 and "model" in reason.lower():
            return self._error(
                message, ErrorCode.MODEL_NOT_FOUND,
                f"install {self.model!r} on the server (e.g. `ollama pull {self.model}`) or fix the "
                "model name",
                status,
            )
        if status == 404:
            return self._error(
                message, ErrorCode.BACKEND_UNAVAILABLE,
                "the server has no /v1/chat/completions: check base_url", status,
            )
        if 400 <= status < 500 and status != 429:
            return self._error(
                message, ErrorCode.INVALID_REQUEST, f"check that {self.model!r} accepts images", status
            )
        hint = "the vision model server is failing; see its log"
        return self._error(message, ErrorCode.BACKEND_UNAVAILABLE, hint, status)

    def _error(self, message: str, code: ErrorCode, hint: str, status: int | None = None) -> ModelError:
        details: dict[str, Any] = {"endpoint": self.endpoint, "model": self.model}
        if status is not None:
            details["status"] = status
        return ModelError(message, code=code, hint=hint, details=details)


# --- regions ------------------------------------------------------------------------------------------


def caption_regions(
    captioner: Captioner,
    image: Image.Image,
    regions: list[Region],
    *,
    pad: float = 0.1,
    min_area: float = 0.01,
    prompt: str | None = None,
) -> list[Region]:
    """Copies of `regions`, each whose box covers at least `min_area` of the image captioned from its
    crop (grown by `pad` of its size on each side); smaller ones are copied unchanged. One batch."""
    picked = [i for i, r in enumerate(regions) if r.box.area >= min_area]
    out = [r.model_copy() for r in regions]
    if not picked:
        return out
    rgb = _rgb(image)
    crops = [crop_region(rgb, regions[i], pad=pad) for i in picked]
    texts = captioner.caption(crops, prompt=prompt)
    for i, text in zip(picked, texts, strict=True):
        out[i] = regions[i].model_copy(update={"caption": text or None})
    return out
