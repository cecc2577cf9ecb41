"""Settings: defaults < `config.toml` in the data directory < environment variables < explicit arguments.

Every setting has a `PHOTOINDEX_*` environment variable. The seed deployment's names are accepted as
aliases where they mean the same thing (`ML_INFERENCE_BATCH_SIZE`, `QDRANT_*`). The config file is
`$PHOTOINDEX_HOME/config.toml` unless `PHOTOINDEX_CONFIG` names another one; its keys are the field
names below (`model = "ViT-B-32__openai"`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "ViT-B-16-SigLIP2__webli"


def _env(*names: str) -> AliasChoices:
    """Accept the field name (config file, kwargs) and each of the given environment names."""
    return AliasChoices(*names)


def default_home() -> Path:
    return Path(os.environ.get("PHOTOINDEX_HOME") or user_data_dir("photoindex", appauthor=False))


def config_file_path() -> Path:
    explicit = os.environ.get("PHOTOINDEX_CONFIG")
    return Path(explicit) if explicit else default_home() / "config.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PHOTOINDEX_",
        populate_by_name=True,
        extra="ignore",
        validate_default=True,
    )

    # where things live
    home: Path = Field(default_factory=default_home, description="Data directory (catalog, thumbnails, models).")
    catalog_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog; default SQLite in the data directory. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    thumbnails_path: Path | None = Field(
        default=None, description="Where thumbnails go (default HOME/thumbnails); shared storage for several machines."
    )
    models_path: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Extra folders searched for models before the model cache (os.pathsep-separated).",
    )

    # models
    model: str = Field(default=DEFAULT_MODEL, description="Image-text embedding model used for search.")
    auto_pull: bool = Field(
        default=True, description="Download a known model on first use when it is not installed."
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        validation_alias=_env("batch_size", "PHOTOINDEX_BATCH_SIZE", "ML_INFERENCE_BATCH_SIZE"),
        description="Images per inference batch.",
    )
    device: Literal["auto", "cpu", "cuda", "gpu", "tensorrt"] = Field(
        default="auto", description="Where models run: auto (CUDA when ONNX Runtime has it), cpu, cuda, tensorrt."
    )
    intra_op_threads: int = Field(default=0, ge=0, description="ONNX Runtime threads per session (0 = auto).")

    # ingest
    workers: int = Field(default=0, ge=0, description="Processes that hash and decode (0 = one per core).")
    thumbnail_sizes: tuple[int, ...] = (256, 1024)
    thumbnail_quality: int = Field(default=82, ge=30, le=100)
    max_image_pixels: int = Field(
        default=256_000_000, ge=1_000_000, description="Larger images are refused (decompression bombs)."
    )
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Larger files are refused.")
    raw_preview_min_size: int = Field(
        default=1024, ge=64, description="Use a RAW file's embedded preview when its long side is at least this."
    )
    archive_dir_name: str = Field(default="photoindex-archive", description="Archive folder; never ingested.")
    exclude_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["@eaDir", "node_modules", "#recycle", "$RECYCLE.BIN", "System Volume Information",
                                 "lost+found", "__pycache__"],
        description="Folder names never entered (hidden folders are skipped too).",
    )
    follow_symlinks: bool = True
    commit_batch_size: int = Field(default=256, ge=1)

    # jobs, queue and workers
    redis_url: str | None = Field(
        default=None, description="Redis URL for the task queue (several machines); default SQLite in the data dir."
    )
    worker_threads: int = Field(default=2, ge=1, le=64, description="Tasks a worker process runs at once.")
    infer_concurrency: int = Field(default=1, ge=1, le=16, description="Inference batches run at once per worker.")
    task_files: int = Field(default=200, ge=1, description="Files per ingest task.")
    lease_s: float = Field(default=60.0, ge=2.0, description="A task's lease; renewed every third of it.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts before a task goes to the dead letters.")
    retry_base_s: float = Field(default=2.0, ge=0.0, description="First retry delay; doubles each attempt.")
    retry_max_s: float = Field(default=300.0, ge=0.0)
    reap_interval_s: float = Field(default=10.0, gt=0.0, description="How often workers repair expired leases.")
    stale_enqueue_s: float = Field(default=60.0, gt=0.0,
                                   description="A due task not picked up for this long is handed to the queue again.")
    watch_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Hot folders that `photoindex watch` follows when given no paths."
    )
    watch_settle_s: float = Field(default=2.0, ge=0.0, description="A file is complete when unchanged this long.")
    watch_poll: bool | None = Field(default=None, description="Force polling (true) or native events (false).")
    watch_poll_interval_s: float = Field(default=1.0, gt=0.0, description="Polling period (network mounts).")

    # services: REST API and ML inference service
    api_host: str = Field(default="127.0.0.1", description="`photoindex serve` address; keys are required off loopback.")
    api_port: int = Field(default=8002, ge=1, le=65535)
    ml_host: str = Field(default="127.0.0.1", description="`photoindex serve-ml` address.")
    ml_port: int = Field(default=8001, ge=1, le=65535)
    ml_url: str | None = Field(
        default=None,
        validation_alias=_env("ml_url", "PHOTOINDEX_ML_URL", "ML_INFERENCE_SERVICE_URL"),
        description="Use a remote ML inference service (serve-ml) instead of in-process models.",
    )
    ml_api_key: str | None = Field(default=None, description="Shared key between ingest and the ML service.")
    ml_batch_size: int | None = Field(default=None, ge=1, description="Overrides the batch size the ML service offers.")
    require_api_key: bool | None = Field(
        default=None, description="Require x-api-key (default: only when listening off loopback)."
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders that POST /ingest/scan may read (default: none but uploads)."
    )
    upload_max_bytes: int = Field(default=512 * 1024**2, ge=1024, description="Largest accepted upload file.")
    serve_worker: bool = Field(default=True, description="`serve` also runs queued jobs in-process.")

    # enrichment (what models add after the image embedding)
    enrichers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["objects", "tags", "ocr", "quality", "aesthetic", "caption", "text"],
        description="Enrichers new collections run (a collection's own list overrides it); those whose "
        "model is absent are skipped with a notice.",
    )
    detector: str = Field(default="yolox-nano-coco", description="Object detector model folder.")
    open_vocab_detector: str | None = Field(
        default=None, description="Open-vocabulary detector (OWL-ViT/OWLv2 folder, needs photoindex[hf]); "
        "when set it replaces the COCO detector and looks for `labels`.",
    )
    labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "person", "dog", "cat", "bird", "horse", "car", "bicycle", "motorcycle", "boat", "airplane",
            "train", "bus", "cup", "bottle", "food", "cake", "flower", "tree", "mountain", "beach", "sea",
            "snow", "building", "bridge", "street", "sign", "document", "receipt", "screen", "book",
        ],
        description="Candidate labels for zero-shot re-ranking of regions, scene tags and the open-vocabulary "
        "detector; re-read from config.toml without a restart.",
    )
    detection_min_score: float = Field(default=0.35, ge=0.0, le=1.0)
    rerank_regions: bool = Field(default=True, description="Re-rank detected regions over `labels` with the image-text model.")
    tag_min_score: float = Field(default=0.25, ge=0.0, le=1.0, description="Scene tags need at least this probability.")
    ocr_gate: float = Field(default=0.5, ge=0.0, le=1.0,
                            description="Gate score (text detection at 480 px) from which OCR reads a photo "
                            "(see bench/bench_enrich.py).")
    captioner: str | None = Field(
        default=None, description="BLIP model folder (needs photoindex[hf]), or vlm:<model> for `vlm_url`.",
    )
    vlm_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (Ollama, llama.cpp, vLLM).")
    vlm_api_key: str | None = None
    caption_prompt: str = Field(default="Describe this photo in one sentence.")
    caption_max_chars: int = Field(default=300, ge=20)
    region_captions: bool = Field(default=False, description="Caption each detected region too.")
    aesthetic_model: str | None = Field(default=None, description="Aesthetic head folder for the collection's model.")
    text_model: str = Field(default="all-MiniLM-L6-v2", description="Sentence-embedding model for text search.")
    cache_path: Path | None = Field(default=None, description="Result cache (default HOME/cache); may be shared.")

    # curation
    burst_window_s: float = Field(default=3.0, ge=0.0, description="Same camera within this many seconds: a burst.")
    near_duplicate_threshold: float = Field(
        default=0.95, ge=0.0, le=1.0, description="Cosine similarity above which photos are near duplicates."
    )
    phash_max_distance: int = Field(default=6, ge=0, le=32, description="Perceptual-hash bits that may differ.")

    # vector index
    vector_backend: Literal["exact", "qdrant"] = "exact"
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; ':memory:' for a test double.")
    qdrant_host: str | None = Field(default=None, validation_alias=_env("qdrant_host", "PHOTOINDEX_QDRANT_HOST", "QDRANT_HOST"))
    qdrant_port: int = Field(default=6333, validation_alias=_env("qdrant_port", "PHOTOINDEX_QDRANT_PORT", "QDRANT_PORT"))
    qdrant_api_key: str | None = None
    qdrant_vector_size: int | None = Field(
        default=None,
        validation_alias=_env("qdrant_vector_size", "PHOTOINDEX_QDRANT_VECTOR_SIZE", "QDRANT_VECTOR_SIZE"),
        description="Expected embedding size; checked against the model when set.",
    )
    qdrant_distance: Literal["Cosine", "Dot", "Euclid"] = Field(
        default="Cosine",
        validation_alias=_env("qdrant_distance", "PHOTOINDEX_QDRANT_DISTANCE", "QDRANT_DISTANCE_METRIC"),
    )
    qdrant_upsert_batch_size: int = Field(
        default=256,
        ge=1,
        validation_alias=_env(
            "qdrant_upsert_batch_size", "PHOTOINDEX_QDRANT_UPSERT_BATCH_SIZE", "QDRANT_UPSERT_BATCH_SIZE"
        ),
    )

    @field_validator("models_path", "watch_roots", "allowed_roots", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value

    @field_validator("exclude_dirs", "enrichers", "labels", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("qdrant_distance", mode="before")
    @classmethod
    def _distance_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "euclidean": "Euclid"}.get(
                value.lower(), value
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())
        return (init_settings, env_settings, toml)

    # derived locations -------------------------------------------------------------------------
    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.home / 'catalog.db').as_posix()}"

    @property
    def thumbnails_dir(self) -> Path:
        return self.thumbnails_path or self.home / "thumbnails"

    @property
    def cache_dir(self) -> Path:
        return self.cache_path or self.home / "cache"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def queue_path(self) -> Path:
        return self.home / "queue.db"

    @property
    def model_cache_dir(self) -> Path:
        return self.home / "models"

    @property
    def prepare_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and config file; keyword arguments win over both."""
    return Settings(**overrides)
