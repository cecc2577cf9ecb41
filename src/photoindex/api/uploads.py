"""Multipart uploads streamed straight to disk, checked on the way.

The body is parsed as it arrives (python-multipart's push parser, the one Starlette uses) and each
file part goes to its destination folder in the chunks the network delivers, hashed as it is
written, so memory stays flat whatever the size. A part over the size limit stops the upload (413);
a part whose first bytes are no photo format (`media.formats`) stops it too (415); either way what
was written is removed. File names are made safe: Unicode NFKC, the last path component only, no
control or reserved characters, no leading dots (hidden files), bounded length, the extension made
to agree with the sniffed content (the walker picks files by extension), unique within the upload.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from fastapi import Request

try:  # python-multipart >= 0.0.13 (the import name before that was `multipart`)
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # pragma: no cover
    from multipart.exceptions import FormParserError  # type: ignore[no-redef]
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

from photoindex.api.errors import PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, ApiError
from photoindex.errors import ErrorCode, MediaError
from photoindex.media.formats import (
    RAW_EXTENSIONS,
    RAW_GENERIC_MIME,
    RAW_MIME,
    SNIFF_BYTES,
    MediaFormat,
    extension_format,
    is_avif,
    mime_for,
    resolve_format,
)

MAX_NAME_BYTES = 180
MAX_FIELD_BYTES = 16 * 1024
MAX_PARTS = 1000
DRAIN_LIMIT = 64 * 1024**2  # after a refusal, read (and drop) at most this much more before answering
_RESERVED = set('<>:"|?*\\/')
_CANONICAL_EXT = {MediaFormat.JPEG: ".jpg", MediaFormat.PNG: ".png", MediaFormat.WEBP: ".webp",
                  MediaFormat.TIFF: ".tif", MediaFormat.BMP: ".bmp", MediaFormat.GIF: ".gif",
                  MediaFormat.HEIF: ".heic"}
_RAW_EXT_BY_MIME = {mime: ext for ext, mime in reversed(list(RAW_MIME.items()))}


def sanitize_filename(raw: str, default: str = "upload") -> str:
    """A safe file name from whatever a client sent (never a path, never hidden, never empty)."""
    name = unicodedata.normalize("NFKC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if (ch in _RESERVED or not ch.isprintable()) else ch for ch in name)
    name = " ".join(name.split())  # no leading/trailing or repeated whitespace
    name = name.lstrip(". ").rstrip(" .")
    if not name:
        name = default
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext.encode()) <= 16 else ""
        stem = stem if dot else name
        budget = MAX_NAME_BYTES - (len(ext.encode()) + 1 if ext else 0)
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .") or default
        name = f"{stem}.{ext}" if ext else stem
    return name


def fit_extension(name: str, fmt: MediaFormat, head: bytes) -> str:
    """`name` with an extension that says what the content is (appended when it says otherwise)."""
    suffix = Path(name).suffix.lower()
    if fmt is MediaFormat.RAW:
        if suffix in RAW_EXTENSIONS:
            return name
        mime = mime_for(fmt, name, head)
        return name + (_RAW_EXT_BY_MIME.get(mime) or (".raw" if mime == RAW_GENERIC_MIME else ".dng"))
    if extension_format(name) is fmt:
        return name
    if fmt is MediaFormat.HEIF and is_avif(head):
        return name + ".avif"
    return name + _CANONICAL_EXT[fmt]


def _unique(name: str, used: set[str]) -> str:
    stem, ext = os.path.splitext(name)
    candidate, n = name, 1
    while candidate.lower() in used:
        candidate = f"{stem}-{n}{ext}"
        n += 1
    used.add(candidate.lower())
    return candidate


@dataclass
class ReceivedFile:
    field: str
    filename: str  # as the client sent it
    path: Path
    bytes: int
    sha256: str
    format: MediaFormat


@dataclass
class _Part:
    field: str
    filename: str | None
    tmp: Path | None = None
    fh: BinaryIO | None = None
    hasher: Any = None
    size: int = 0
    head: bytes = b""
    fmt: MediaFormat | None = None
    text: bytearray = field(default_factory=bytearray)


def _refuse_type(name: str, head: bytes) -> ApiError:
    try:
        resolve_format(name, head)
        message = f"{name!r} is not a photo"
    except MediaError as exc:
        message = exc.message
    code = ErrorCode.FILE_EMPTY if not head else ErrorCode.UNSUPPORTED_TYPE
    return ApiError(415, str(code), message, hint="upload photos: JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/AVIF or RAW",
                    details={"filename": name})


def _sniff(part: _Part) -> None:
    """Decide the part's format from its first bytes; 415 when they are no photo."""
    name = sanitize_filename(part.filename or "")
    try:
        part.fmt = resolve_format(name, part.head[:SNIFF_BYTES])
    except MediaError as exc:
        raise _refuse_type(name, part.head) from exc


class MultipartSink:
    """Receives one multipart body into `dest` (created), enforcing the limits."""

    def __init__(self, dest: Path, *, max_bytes: int, max_files: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.files: list[ReceivedFile] = []
        self.fields: dict[str, str] = {}
        self._used: set[str] = set()
        self._events: list[tuple[str, bytes]] = []
        self._part: _Part | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._parts = 0

    # parser callbacks: only record, the async side acts on them
    def _cb(self, kind: str) -> Any:
        def record(data: bytes | None = None, start: int = 0, end: int = 0) -> None:
            self._events.append((kind, bytes(data[start:end]) if data is not None else b""))
        return record

    def _callbacks(self) -> dict[str, Any]:
        return {name: self._cb(name) for name in ("on_part_begin", "on_part_data", "on_part_end",
                                                   "on_header_field", "on_header_value", "on_header_end",
                                                   "on_headers_finished", "on_end")}

    async def receive(self, request: Request) -> None:
        ctype, options = parse_options_header(request.headers.get("content-type", ""))
        if ctype != b"multipart/form-data":
            raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, "send the files as multipart/form-data",
                           details={"content_type": ctype.decode("latin-1")})
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, str(ErrorCode.INVALID_REQUEST), "multipart body without a boundary")
        parser = MultipartParser(boundary, self._callbacks())  # type: ignore[arg-type]
        self.dest.mkdir(parents=True, exist_ok=True)
        failed: ApiError | None = None
        drained = 0
        try:
            async for chunk in request.stream():
                if failed is not None:
                    drained += len(chunk)
                    if drained > DRAIN_LIMIT:
                        break
                    continue
                if not chunk:
                    continue
                try:
                    parser.write(chunk)
                    await self._handle_events()
                except FormParserError as exc:
                    failed = ApiError(400, str(ErrorCode.INVALID_REQUEST), f"malformed multipart body: {exc}")
                except ApiError as exc:
                    failed = exc
                if failed is not None:
                    await self._discard_open_part()
            if failed is None:
                try:
                    parser.finalize()
                    await self._handle_events()
                except FormParserError as exc:
                    failed = ApiError(400, str(ErrorCode.INVALID_REQUEST), f"malformed multipart body: {exc}")
                except ApiError as exc:
                    failed = exc
                if failed is None and self._part is not None:
                    failed = ApiError(400, str(ErrorCode.INVALID_REQUEST), "the multipart body ended inside a part")
            if failed is not None:
                raise failed
        except BaseException:
            await self._discard_open_part()
            await anyio.to_thread.run_sync(shutil.rmtree, self.dest, True)
            raise

    async def _discard_open_part(self) -> None:
        part, self._part = self._part, None
        if part is not None and part.fh is not None:
            fh, tmp = part.fh, part.tmp
            part.fh = None

            def drop() -> None:
                fh.close()
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
            await anyio.to_thread.run_sync(drop)

    async def _handle_events(self) -> None:
        events, self._events = self._events, []
        pending: list[bytes] = []  # data of the current file part, written in one go
        for kind, data in events:
            if kind == "on_part_data":
                await self._data(data, pending)
                continue
            if pending:
                await self._write(pending)
                pending = []
            if kind == "on_part_begin":
                self._parts += 1
                if self._parts > MAX_PARTS:
                    raise ApiError(413, PAYLOAD_TOO_LARGE, f"more than {MAX_PARTS} parts in one request")
                self._headers = {}
                self._header_field = self._header_value = b""
            elif kind == "on_header_field":
                self._header_field += data
            elif kind == "on_header_value":
                self._header_value += data
            elif kind == "on_header_end":
                self._headers[self._header_field.lower()] = self._header_value
                self._header_field = self._header_value = b""
            elif kind == "on_headers_finished":
                await self._begin_part()
            elif kind == "on_part_end":
                await self._end_part()
        if pending:
            await self._write(pending)

    async def _begin_part(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise ApiError(400, str(ErrorCode.INVALID_REQUEST), "a multipart part without a form-data name")
        name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        part = _Part(field=name, filename=None if filename is None else filename.decode("utf-8", "replace"))
        if part.filename is not None:
            if len(self.files) >= self.max_files:
                raise ApiError(413, PAYLOAD_TOO_LARGE, f"at most {self.max_files} file(s) per request")
            tmp = self.dest / f".part-{len(self.files)}-{self._parts}"
            part.tmp = tmp
            part.fh = await anyio.to_thread.run_sync(lambda: open(tmp, "wb"))
            part.hasher = hashlib.sha256()
        self._part = part

    async def _data(self, data: bytes, pending: list[bytes]) -> None:
        part = self._part
        if part is None:
            return
        if part.fh is None:  # a text field
            part.text += data
            if len(part.text) > MAX_FIELD_BYTES:
                raise ApiError(413, PAYLOAD_TOO_LARGE, f"form field {part.field!r} is over {MAX_FIELD_BYTES} bytes")
            return
        part.size += len(data)
        if part.size > self.max_bytes:
            raise ApiError(413, PAYLOAD_TOO_LARGE,
                           f"{sanitize_filename(part.filename or '')!r} is larger than the {self.max_bytes} byte limit",
                           hint="raise upload_max_bytes (PHOTOINDEX_UPLOAD_MAX_BYTES) on the server",
                           details={"limit": self.max_bytes, "filename": part.filename})
        if part.fmt is None:
            part.head += data[: SNIFF_BYTES]
            if len(part.head) >= SNIFF_BYTES:
                _sniff(part)
        pending.append(data)

    async def _write(self, chunks: list[bytes]) -> None:
        part = self._part
        if part is None or part.fh is None:
            return
        fh, hasher = part.fh, part.hasher

        def write() -> None:
            for chunk in chunks:
                hasher.update(chunk)
                fh.write(chunk)
        await anyio.to_thread.run_sync(write)

    async def _end_part(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        if part.fh is None:
            self.fields[part.field] = part.text.decode("utf-8", "replace")
            return
        self._part = part  # so that a refusal below still removes its file
        if part.fmt is None:
            _sniff(part)
        assert part.fmt is not None and part.tmp is not None
        safe = fit_extension(sanitize_filename(part.filename or ""), part.fmt, part.head)
        final = self.dest / _unique(safe, self._used)
        fh, tmp = part.fh, part.tmp

        def finish() -> None:
            fh.close()
            os.replace(tmp, final)
        await anyio.to_thread.run_sync(finish)
        part.fh = None
        self._part = None
        self.files.append(ReceivedFile(field=part.field, filename=part.filename or "", path=final, bytes=part.size,
                                       sha256=part.hasher.hexdigest(), format=part.fmt))


def multipart_body_schema(file_field: str, *, many: bool, description: str) -> dict[str, Any]:
    """OpenAPI `requestBody` for routes that read their multipart body themselves."""
    item = {"type": "string", "format": "binary"}
    prop: dict[str, Any] = {"type": "array", "items": item, "minItems": 1} if many else item
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": [file_field], "properties": {file_field: prop}}}},
        }
    }
