"""The services' shared handle on the engines: settings, catalog, vector index and models.

Faces (CLI, later the API and workers) build one `Runtime` per process and pass it to services.
Everything is opened lazily, so a command that only lists collections never loads a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from photoindex.config import Settings, load_settings
from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.registry import ModelRegistry
from photoindex.ml.session import default_providers
from photoindex.schemas import CollectionInfo
from photoindex.store.catalog import Catalog
from photoindex.store.result_cache import ResultCache
from photoindex.store.vectors import VectorIndex, VectorSpace, open_vector_index

T = TypeVar("T")


_blas_limited = False


def _limit_blas_threads(threads: int) -> None:
    """NumPy's BLAS threads spin while they wait: beside ONNX Runtime and decode processes they slow the
    numpy models (the sentence embedder) several times over. One per process unless configured."""
    global _blas_limited
    if _blas_limited:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads or 1, user_api="blas")
    _blas_limited = True


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        _limit_blas_threads(self.settings.intra_op_threads)
        self._models: dict[str, ImageTextEmbedder] = {}
        self._resident: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._resident_lock = threading.Lock()

    @cached_property
    def catalog(self) -> Catalog:
        self.settings.ensure_home()
        return Catalog.open(self.settings.resolved_catalog_url)

    @cached_property
    def index(self) -> VectorIndex:
        return open_vector_index(self.settings, self.catalog)

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings)

    def collection(self, name: str | None = None) -> CollectionInfo:
        return self.catalog.resolve_collection(name)

    def model_name(self, collection: CollectionInfo) -> str:
        """A collection keeps the model it was first embedded with; new ones use the configured model."""
        return collection.model or self.settings.model

    def embedder(self, name: str) -> ImageTextEmbedder:
        """Load (once per process) the named image-text model; ModelError with the pull command if absent.
        With `ml_url` set the model is the one a `photoindex serve-ml` service serves (a RemoteEmbedder,
        which has the same interface)."""
        with self._lock:
            if name not in self._models and self.settings.ml_url:
                from photoindex.ml.remote import RemoteEmbedder

                self._models[name] = RemoteEmbedder.from_settings(self.settings, name)  # type: ignore[assignment]
            if name not in self._models:
                path = self.registry.require(name)
                self._models[name] = ImageTextEmbedder.load(
                    path, name=name, providers=default_providers(self.settings.device),
                    intra_op_threads=self.settings.intra_op_threads,
                    batch_size=self.settings.batch_size,
                )
            return self._models[name]

    def resident(self, key: str, load: Callable[[], T]) -> T:
        """A model (detector, OCR reader, captioner...) loaded once per process and kept warm; a load
        that fails is tried again next time (the model may have been installed meanwhile)."""
        with self._resident_lock:
            if key not in self._resident:
                self._resident[key] = load()
            return self._resident[key]

    @cached_property
    def result_cache(self) -> ResultCache:
        return ResultCache(self.settings.cache_dir)

    def try_embedder(self, name: str, *, progress: bool = False) -> tuple[ImageTextEmbedder | None, str | None]:
        """The model, or None and the message that tells the user how to get it. A known model that
        is not installed is downloaded first when `auto_pull` is on (as on a first run)."""
        try:
            return self.embedder(name), None
        except ModelError as exc:
            if not (self.settings.auto_pull and exc.code == ErrorCode.MODEL_NOT_FOUND):
                return None, str(exc)
        try:
            self.registry.pull(name, progress=progress)
            return self.embedder(name), None
        except ModelError as exc:
            return None, str(exc)

    def space(self, collection: CollectionInfo, model: ImageTextEmbedder) -> VectorSpace:
        return VectorSpace(collection.id, collection.name, model.name, model.dim)

    def bind_model(self, collection: CollectionInfo, model: ImageTextEmbedder) -> None:
        """Record the model and its vector size on the collection the first time it is used; refuse a
        model whose vectors would not fit the collection's declared size."""
        expected = collection.vector_size or self.settings.qdrant_vector_size
        if expected is not None and expected != model.dim:
            raise ModelError(
                f"model {model.name} makes {model.dim}-d vectors but collection {collection.name!r} "
                f"expects {expected}-d",
                code=ErrorCode.DIMENSION_MISMATCH,
                hint="use a model with that size (PHOTOINDEX_MODEL) or a new collection",
            )
        if collection.model is None or collection.vector_size is None:
            self.catalog.update_collection(collection.name, model=model.name, vector_size=model.dim)

    def close(self) -> None:
        if "index" in self.__dict__:
            self.index.close()
        if "catalog" in self.__dict__:
            self.catalog.close()
