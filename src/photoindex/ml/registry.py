"""Where models live: find them, say what is installed, download them.

Resolution order for a model NAME:
  1. each folder in `PHOTOINDEX_MODELS_PATH` (`Settings.models_path`): `<folder>/NAME/`, or the folder
     itself when it is named NAME;
  2. the model cache in the data directory: `<home>/models/NAME/`;
  3. nothing: `require` raises `ModelError(MODEL_NOT_FOUND)` naming `photoindex models pull NAME`.
A folder counts only when it holds `config.json` and `visual/model.onnx`.

`pull` downloads the fp32 ONNX files of an Immich CLIP export from Hugging Face into a staging folder,
checks the layout, writes the resolved commit to `REVISION` and only then moves it into place, so an
interrupted download never leaves a folder that looks installed.

The revision of a model folder (part of every result-cache key) is that `REVISION` file when present,
else a short hash of the model's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from photoindex.config import Settings
from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.specs import KNOWN_MODELS, ModelSpec

log = logging.getLogger(__name__)

REVISION_FILE = "REVISION"
MODELS_PATH_ENV = "PHOTOINDEX_MODELS_PATH"

#: files of the layout, relative to the model folder
CONFIG = "config.json"
VISUAL_MODEL = "visual/model.onnx"
VISUAL_PREPROCESS = "visual/preprocess_cfg.json"
TEXTUAL_MODEL = "textual/model.onnx"
TOKENIZER = "textual/tokenizer.json"
TOKENIZER_CONFIG = "textual/tokenizer_config.json"
SPECIAL_TOKENS = "textual/special_tokens_map.json"
LAYOUT_FILES = (
    CONFIG,
    VISUAL_MODEL,
    VISUAL_PREPROCESS,
    TEXTUAL_MODEL,
    TOKENIZER,
    TOKENIZER_CONFIG,
    SPECIAL_TOKENS,
)
#: what a folder needs to be loadable (special_tokens_map.json is only a fallback for the pad token)
REQUIRED_FILES = tuple(f for f in LAYOUT_FILES if f != SPECIAL_TOKENS)

#: what `pull` downloads: the layout plus ONNX external-data files of models over 2 GB. The exports
#: also hold fp16, ArmNN and RKNN variants, which are left on the hub.
PULL_PATTERNS = [
    *LAYOUT_FILES,
    "visual/model.onnx_data",
    "visual/model.onnx.data",
    "textual/model.onnx_data",
    "textual/model.onnx.data",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


class ModelStatus(BaseModel):
    name: str
    spec: ModelSpec | None = None
    path: Path | None = None
    installed: bool = False
    revision: str | None = None
    source: Literal["models_path", "cache", "missing"] = "missing"
    size_bytes: int = 0


def is_model_dir(path: Path) -> bool:
    """A folder in the CLIP export layout (at least the config and the image encoder)."""
    return (path / CONFIG).is_file() and (path / VISUAL_MODEL).is_file()


def pull_hint(name: str) -> str:
    return (
        f"run `photoindex models pull {name}` to download it, or put an exported model folder named "
        f"{name} in a folder listed in {MODELS_PATH_ENV}"
    )


# --- revisions ------------------------------------------------------------------------------------

_revision_cache: dict[tuple[object, ...], str] = {}
_revision_lock = threading.Lock()


#: weights and configs of other model kinds (sentence-transformers, transformers) that count for the revision
_OTHER_FILES = ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt", "sentence_bert_config.json",
                "1_Pooling/config.json", "preprocessor_config.json", "tokenizer_config.json", "model.onnx")


def _revision_files(path: Path) -> list[Path]:
    files = [path / rel for rel in (*LAYOUT_FILES, *_OTHER_FILES)]
    for sub in ("visual", "textual"):
        folder = path / sub
        if folder.is_dir():
            # external-data files next to the graphs (model.onnx_data, model.onnx.data)
            files.extend(
                sorted(
                    p for p in folder.iterdir() if p.name.startswith("model.onnx") and p.name != "model.onnx"
                )
            )
    return [f for f in dict.fromkeys(files) if f.is_file()]


def model_revision(path: Path, files: Sequence[Path] | None = None) -> str:
    """A model folder's revision, part of every result-cache key: its `REVISION` file (the Hugging Face
    commit it was pulled at), else a 12-hex-digit SHA-256 of `files` (default: the config, weight and
    tokenizer files of the known layouts). Hashes are kept per process, keyed by the files' sizes and
    modification times, so only a changed folder is read again."""
    path = Path(path)
    marker = path / REVISION_FILE
    if marker.is_file():
        text = marker.read_text(encoding="utf-8").strip()
        if text:
            return text.splitlines()[0].strip()
    files = sorted((Path(f) for f in files), key=lambda f: f.as_posix()) if files is not None else _revision_files(path)
    if not files:
        raise ModelError(
            f"{path} holds no model files", code=ErrorCode.MODEL_INVALID, details={"path": str(path)}
        )
    names = [f.relative_to(path).as_posix() if f.is_relative_to(path) else f.name for f in files]
    stats = tuple((rel, st.st_size, st.st_mtime_ns) for rel, f in zip(names, files, strict=True) for st in [f.stat()])
    key = (str(path.resolve()), stats)
    with _revision_lock:
        cached = _revision_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for rel, f in zip(names, files, strict=True):
        digest.update(rel.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    revision = digest.hexdigest()[:12]
    with _revision_lock:
        _revision_cache[key] = revision
    return revision


def _folder_size(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


# --- registry -------------------------------------------------------------------------------------


class ModelRegistry:
    """Finds, lists and downloads models for one `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def cache_dir(self) -> Path:
        return self.settings.model_cache_dir

    # names ----------------------------------------------------------------------------------------
    @staticmethod
    def split_name(name: str) -> tuple[str, str | None]:
        """`NAME` or `owner/NAME` (a Hugging Face repo) -> (NAME, repo or None)."""
        name = name.strip()
        repo: str | None = None
        if "/" in name:
            owner, _, local = name.partition("/")
            if not _NAME.match(owner) or not local or "/" in local:
                raise ModelError(
                    f"{name!r} is neither a model name nor a Hugging Face repo (owner/name)",
                    code=ErrorCode.UNKNOWN_MODEL,
                    hint=_known_hint(),
                )
            repo, name = f"{owner}/{local}", local
        if not _NAME.match(name) or name in (".", ".."):
            raise ModelError(
                f"{name!r} is not a valid model name", code=ErrorCode.UNKNOWN_MODEL, hint=_known_hint()
            )
        return name, repo

    # finding ---------------------------------------------------------------------------------------
    def _candidates(self, name: str) -> Iterator[tuple[Path, Literal["models_path", "cache"]]]:
        for folder in self.settings.models_path:
            folder = Path(folder).expanduser()
            yield folder / name, "models_path"
            if folder.name == name:
                yield folder, "models_path"
        yield self.cache_dir / name, "cache"

    def _find(self, name: str) -> tuple[Path, Literal["models_path", "cache"]] | None:
        local, _ = self.split_name(name)
        for path, source in self._candidates(local):
            if is_model_dir(path):
                return path, source
        return None

    def locate(self, name: str) -> Path | None:
        """The folder of model NAME (or `owner/NAME`), following the resolution order; None when absent."""
        found = self._find(name)
        return found[0] if found else None

    def find_folder(self, name: str) -> Path | None:
        """The folder of a model of any task (detector, captioner, text model...) by the same
        resolution order, without checking a layout (each loader checks its own); an existing path
        given as NAME is taken as it is."""
        direct = Path(name).expanduser()
        if direct.is_absolute() and direct.is_dir():
            return direct
        local, _ = self.split_name(name)
        for path, _source in self._candidates(local):
            if path.is_dir():
                return path
        return None

    def status(self, name: str) -> ModelStatus:
        local, _ = self.split_name(name)
        spec = KNOWN_MODELS.get(local)
        found = self._find(local)
        if found is None:
            return ModelStatus(name=local, spec=spec, installed=False, source="missing")
        path, source = found
        try:
            revision: str | None = model_revision(path)
        except (OSError, ModelError):
            revision = None
        return ModelStatus(
            name=local,
            spec=spec,
            path=path,
            installed=True,
            revision=revision,
            source=source,
            size_bytes=_folder_size(path),
        )

    def list(self) -> list[ModelStatus]:
        """Every known model (installed or not), then any other model folders found on disk."""
        out = [self.status(name) for name in KNOWN_MODELS]
        seen = set(KNOWN_MODELS)
        roots = [Path(p).expanduser() for p in self.settings.models_path] + [self.cache_dir]
        for root in roots:
            if is_model_dir(root) and _NAME.match(root.name) and root.name not in seen:
                seen.add(root.name)
                out.append(self.status(root.name))
            if not root.is_dir():
                continue
            for child in sorted(root.iterdir()):
                if child.name in seen or child.name.startswith(".") or not _NAME.match(child.name):
                    continue
                if child.is_dir() and is_model_dir(child):
                    seen.add(child.name)
                    out.append(self.status(child.name))
        return out

    def require(self, name: str) -> Path:
        """The folder of model NAME, or `ModelError(MODEL_NOT_FOUND)` saying how to get it."""
        local, repo = self.split_name(name)
        path = self.locate(local)
        if path is not None:
            return path
        searched = [str(p) for p, _ in self._candidates(local)]
        incomplete = [p for p in searched if Path(p, CONFIG).is_file() or Path(p, "visual").is_dir()]
        message = f"model {local!r} is not installed"
        if incomplete:
            message += f" ({incomplete[0]} exists but lacks {CONFIG} or {VISUAL_MODEL})"
        pull_name = repo or local
        if repo is None and local not in KNOWN_MODELS:
            pull_name = f"OWNER/{local}"
            hint = (
                f"{local!r} is not a model photoindex knows; run `photoindex models pull OWNER/{local}` "
                f"with the Hugging Face repo that holds it, or put an exported model folder named {local} "
                f"in a folder listed in {MODELS_PATH_ENV}"
            )
        else:
            hint = pull_hint(pull_name)
        raise ModelError(
            message,
            code=ErrorCode.MODEL_NOT_FOUND,
            hint=hint,
            details={"model": local, "searched": searched, "command": f"photoindex models pull {pull_name}"},
        )

    # downloading -----------------------------------------------------------------------------------
    def pull(self, name: str, *, revision: str | None = None, progress: bool = True) -> Path:
        """Download model NAME (a known model, or any `owner/NAME` Hugging Face repo in the same layout)
        into the model cache and return its folder. Already at the requested commit: nothing is fetched."""
        local, repo = self.split_name(name)
        spec = KNOWN_MODELS.get(local)
        if repo is None:
            if spec is None or spec.hf_repo is None:
                raise ModelError(f"unknown model {local!r}", code=ErrorCode.UNKNOWN_MODEL, hint=_known_hint())
            repo = spec.hf_repo
        wanted = revision or (spec.revision if spec is not None and spec.hf_repo == repo else None)
        endpoint = os.environ.get("HF_ENDPOINT") or None
        where = endpoint or "https://huggingface.co"

        if _offline():
            raise ModelError(
                f"cannot download {repo}: Hugging Face offline mode is on (HF_HUB_OFFLINE)",
                code=ErrorCode.MODEL_DOWNLOAD_FAILED,
                hint=_offline_hint(local),
                details={"repo": repo},
            )

        from huggingface_hub import HfApi, snapshot_download

        try:
            info = HfApi(endpoint=endpoint).model_info(repo, revision=wanted, timeout=30)
        except Exception as exc:
            raise _download_error(repo, local, where, exc) from exc
        commit = info.sha or wanted
        if not commit:
            raise ModelError(
                f"{where} gave no commit for {repo}",
                code=ErrorCode.MODEL_DOWNLOAD_FAILED,
                hint=_offline_hint(local),
                details={"repo": repo},
            )

        final = self.cache_dir / local
        if is_model_dir(final) and (final / REVISION_FILE).is_file() and model_revision(final) == commit:
            if _missing_layout_files(final):
                log.info("%s is incomplete, downloading again", final)
            else:
                return final

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".{local}.partial"
        try:
            with _progress_bars(progress):
                snapshot_download(
                    repo_id=repo,
                    revision=commit,
                    local_dir=staging,
                    allow_patterns=PULL_PATTERNS,
                    endpoint=endpoint,
                )
        except Exception as exc:
            raise _download_error(repo, local, where, exc) from exc

        try:
            final = self.install(staging, local, revision=commit, move=True)
        except ModelError as exc:
            if exc.code != ErrorCode.MODEL_INVALID:
                raise
            raise ModelError(
                f"{repo} at {commit[:12]} is not a CLIP export in the expected layout: {exc.message}",
                code=ErrorCode.MODEL_DOWNLOAD_FAILED,
                hint="pick a repo laid out like immich-app/ViT-B-16-SigLIP2__webli "
                "(config.json, visual/, textual/)",
                details={"repo": repo, **exc.details},
            ) from exc
        log.info("pulled %s@%s into %s", repo, commit, final)
        return final

    def install(
        self, source: Path, name: str | None = None, *, revision: str | None = None, move: bool = False
    ) -> Path:
        """Put a model folder (downloaded elsewhere, or by `pull`) into the model cache as NAME.

        The folder is checked for the layout first (`ModelError(MODEL_INVALID)` listing what is missing),
        copied (or moved) into a staging folder next to the cache entry, given a `REVISION` file when
        `revision` is set, and only then swapped into place: a reader never sees half a model.
        """
        source = Path(source)
        local, _ = self.split_name(name or source.name)
        missing = _missing_layout_files(source)
        if missing:
            raise ModelError(
                f"{source} is not a model folder: missing {', '.join(missing)}",
                code=ErrorCode.MODEL_INVALID,
                details={"path": str(source), "missing": missing},
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        final = self.cache_dir / local
        staging = self.cache_dir / f".{local}.installing-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        if move:
            source.rename(staging)
        else:
            shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".cache"))
        if revision:  # else a folder keeps the REVISION it has (if any) and is hashed otherwise
            (staging / REVISION_FILE).write_text(revision.strip() + "\n", encoding="utf-8")
        _swap_into_place(staging, final)
        return final


def _missing_layout_files(path: Path) -> list[str]:
    return [rel for rel in REQUIRED_FILES if not (path / rel).is_file()]


def _swap_into_place(staging: Path, final: Path) -> None:
    old: Path | None = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    # huggingface_hub's bookkeeping for resumable downloads, no longer needed
    shutil.rmtree(final / ".cache", ignore_errors=True)


def _known_hint() -> str:
    return (
        "known models: "
        + ", ".join(KNOWN_MODELS)
        + "; any Hugging Face repo in the same layout can be pulled as OWNER/NAME"
    )


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False


def _offline_hint(name: str) -> str:
    return (
        "check the network connection (and HTTPS_PROXY / HF_ENDPOINT / HF_HUB_OFFLINE), then run "
        f"`photoindex models pull {name}` again; or download the folder on a connected machine and put it "
        f"in a folder listed in {MODELS_PATH_ENV}"
    )


def _download_error(repo: str, name: str, where: str, exc: BaseException) -> ModelError:
    kind = type(exc).__name__
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else kind
    hint = _offline_hint(name)
    if kind == "GatedRepoError":
        hint = f"{repo} needs an access token: accept its terms on Hugging Face and set HF_TOKEN"
    elif kind in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        hint = f"check the repo name and revision ({_known_hint()})"
    return ModelError(
        f"downloading {repo} from {where} failed: {kind}: {reason}",
        code=ErrorCode.MODEL_DOWNLOAD_FAILED,
        hint=hint,
        details={"repo": repo, "endpoint": where, "error": kind},
    )


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Hide huggingface_hub's progress bars for the duration when `enabled` is False."""
    if enabled:
        yield
        return
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()
