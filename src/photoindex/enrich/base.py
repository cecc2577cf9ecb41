"""The one interface every enricher implements, and what it is handed.

An enricher is a model task that runs after the image embedding: it names itself, the model and
revision that make its results (part of every cache key), the inputs it needs (the photo, its image
embedding, or the words other enrichers found), its batch size and device, and where its results
land (a region kind, a tag source, asset columns). `run` turns a batch of inputs into one result per
item; the runner handles caching, batching, failures and storage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel

from photoindex.store.enrichments import EnrichmentWrite, Target


class Needs(StrEnum):
    IMAGE = "image"  # the 1024 px preview
    EMBEDDING = "embedding"  # the collection's image vector
    TEXTS = "texts"  # caption, OCR text and tags found so far


@dataclass
class Item:
    asset_id: int
    sha256: str
    image: Image.Image | None = None
    embedding: np.ndarray | None = None
    texts: tuple[str, str, str] = ("", "", "")  # caption, ocr, tags
    tags: list[str] = field(default_factory=list)


class Enricher(ABC):
    name: ClassVar[str]
    needs: ClassVar[frozenset[Needs]]
    region_kind: ClassVar[str | None] = None
    tag_source: ClassVar[str | None] = None
    #: enrichers whose results feed this one (they run first; when they change, this one runs again)
    depends_on: ClassVar[tuple[str, ...]] = ()
    result_type: ClassVar[type[BaseModel]]

    model: str
    revision: str
    batch_size: int = 16
    device: str = "cpu"

    @property
    def target(self) -> Target:
        return Target(self.name, self.model, self.revision, self.region_kind, self.tag_source)

    def cache_key(self, item: Item) -> str:
        """Results are cached by content: the same photo gives the same result anywhere."""
        return item.sha256

    @abstractmethod
    def run(self, items: list[Item]) -> list[BaseModel]:
        """One result per item, in order. Raise for a failure of the whole batch; the runner then
        retries item by item, so one bad photo fails alone."""

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        """How a result lands in the catalog; enrichers with regions, tags or columns extend it."""
        return EnrichmentWrite(asset_id=asset_id, result=result.model_dump(mode="json"))

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> BaseModel:
        """A cached result back as the enricher's result type."""
        return cls.result_type.model_validate(payload)
