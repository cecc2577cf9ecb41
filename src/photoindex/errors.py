"""Error codes shared by every layer.

Every failure a user can cause or meet (a corrupt file, a missing model, an unknown collection) is a
`PhotoindexError` with a stable `ErrorCode`, a message that says what happened and, where there is
one, a hint that says what to do. Reports, the CLI and (later) the HTTP API render these as
structured data instead of tracebacks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # input files
    FILE_NOT_FOUND = "file_not_found"
    FILE_UNREADABLE = "file_unreadable"
    FILE_EMPTY = "file_empty"
    FILE_TOO_LARGE = "file_too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT_IMAGE = "corrupt_image"
    TRUNCATED_IMAGE = "truncated_image"
    IMAGE_TOO_LARGE = "image_too_large"  # decompression-bomb guard
    RAW_DECODE_FAILED = "raw_decode_failed"
    DECODER_CRASHED = "decoder_crashed"  # the worker process died on this file (a native decoder fault)
    # models
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_INVALID = "model_invalid"
    MODEL_DOWNLOAD_FAILED = "model_download_failed"
    UNKNOWN_MODEL = "unknown_model"
    # catalog
    COLLECTION_NOT_FOUND = "collection_not_found"
    COLLECTION_EXISTS = "collection_exists"
    INVALID_NAME = "invalid_name"
    ASSET_NOT_FOUND = "asset_not_found"
    DIMENSION_MISMATCH = "dimension_mismatch"
    NO_VECTORS = "no_vectors"  # the collection has no vectors of the model asked for
    CACHE_DAMAGED = "cache_damaged"
    # curation
    ARCHIVE_CONFLICT = "archive_conflict"  # an undo would overwrite other content, or is done already
    BATCH_NOT_FOUND = "batch_not_found"  # the result cache's manifest or parts do not match
    # jobs
    TASK_FAILED = "task_failed"  # a task gave up after its last attempt (dead letter)
    JOB_NOT_FOUND = "job_not_found"
    # configuration and everything else
    CONFIG_INVALID = "config_invalid"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    INVALID_REQUEST = "invalid_request"
    INTERNAL = "internal_error"


class PhotoindexError(Exception):
    """An error with a stable code, a human message and an optional hint on what to do next."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class MediaError(PhotoindexError):
    """A file that cannot be read or decoded as a photo."""

    code = ErrorCode.CORRUPT_IMAGE


class ModelError(PhotoindexError):
    """A model that is missing, unknown or malformed."""

    code = ErrorCode.MODEL_NOT_FOUND


class CatalogError(PhotoindexError):
    """A catalog lookup or constraint that failed (unknown collection, duplicate name...)."""

    code = ErrorCode.COLLECTION_NOT_FOUND


class ConfigError(PhotoindexError):
    code = ErrorCode.CONFIG_INVALID
