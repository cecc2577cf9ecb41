"""Fixtures for the vector index tests: a small library of real catalog rows.

The `catalog` fixture (SQLite file and a fresh PostgreSQL database) comes from tests/conftest.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from photoindex.schemas import ExifInfo
from photoindex.store.catalog import Catalog, FileRecord, ModelVectors, NewAsset
from photoindex.store.vectors import VectorSpace

# -- a small library shared by the vector index tests ------------------------------------------------
# (name, path, EXIF make, EXIF model, taken_at); "gone" has its only file marked missing.
LIBRARY_SPECS: list[tuple[str, str, str | None, str | None, datetime | None]] = [
    ("eos", "/photos/a/b/1.jpg", "Canon", "Canon EOS 5D", datetime(2023, 7, 1, 10, 0)),
    ("nikon", "/photos/a/bc/2.jpg", "NIKON CORPORATION", "NIKON D750", datetime(2023, 8, 15, 9, 30)),
    ("powershot", "/photos/a/b/sub/3.jpg", "Canon", "PowerShot G7", datetime(2022, 1, 1, 0, 0)),
    ("nodata", "/photos/x/4.jpg", None, None, None),
    ("gone", "/photos/a/b/5.jpg", "Canon", "Canon EOS 5D", datetime(2023, 7, 2, 12, 0)),
]
MODEL = "test-model@1"
DIM = 16


@dataclass
class Library:
    catalog: Catalog
    space: VectorSpace
    ids: dict[str, int]  # name → asset id
    vectors: dict[str, np.ndarray]  # name → unit vector

    def name_of(self, asset_id: int) -> str:
        return {v: k for k, v in self.ids.items()}[asset_id]

    def names(self, hits: list[tuple[int, float]]) -> list[str]:
        return [self.name_of(i) for i, _ in hits]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_asset(key: str, make: str | None = None, model: str | None = None,
              taken_at: datetime | None = None) -> NewAsset:
    sha = hashlib.sha256(key.encode()).hexdigest()
    return NewAsset(sha256=sha, sha1=sha[:40], bytes=1000, mime="image/jpeg", width=64, height=48,
                    exif=ExifInfo(make=make, model=model, taken_at=taken_at))


def add_assets(catalog: Catalog, collection_id: int, items: dict[str, tuple[str, np.ndarray]],
               model: str = MODEL) -> dict[str, int]:
    """Commit assets (key → (path, vector)) through the real ingest commit; returns key → asset id."""
    assets = [new_asset(key) for key in items]
    files = [FileRecord(path=path, size=1000, mtime_ns=1, sha256=a.sha256)
             for a, (path, _) in zip(assets, items.values(), strict=True)]
    vectors = ModelVectors(model=model, revision="1",
                           by_sha256={a.sha256: vec for a, (_, vec) in zip(assets, items.values(), strict=True)})
    ids = catalog.commit_batch(collection_id, assets, files, vectors)
    return {key: ids[a.sha256] for key, a in zip(items, assets, strict=True)}


def build_library(catalog: Catalog, collection: str = "lib") -> Library:
    info = catalog.create_collection(collection, vector_size=DIM)
    vecs = unit_vectors(len(LIBRARY_SPECS))
    assets = [new_asset(name, make, model, taken) for name, _, make, model, taken in LIBRARY_SPECS]
    files = [FileRecord(path=spec[1], size=1000, mtime_ns=1, sha256=a.sha256)
             for spec, a in zip(LIBRARY_SPECS, assets, strict=True)]
    by_sha = {a.sha256: v for a, v in zip(assets, vecs, strict=True)}
    ids_by_sha = catalog.commit_batch(info.id, assets, files, ModelVectors(MODEL, "1", by_sha))
    ids = {spec[0]: ids_by_sha[a.sha256] for spec, a in zip(LIBRARY_SPECS, assets, strict=True)}
    gone = catalog.file_states(info.id)["/photos/a/b/5.jpg"]
    catalog.set_missing([gone.id])
    return Library(catalog, VectorSpace(info.id, info.name, MODEL, DIM), ids,
                   {spec[0]: v for spec, v in zip(LIBRARY_SPECS, vecs, strict=True)})


@pytest.fixture
def library(catalog: Catalog) -> Library:
    return build_library(catalog)


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog.open(f"sqlite:///{(tmp_path / 'catalog.db').as_posix()}")
    try:
        yield cat
    finally:
        cat.close()


# The filter cases both backends must answer alike: filters → names expected (any order).
FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"date_from": datetime(2023, 1, 1)}, {"eos", "nikon", "gone"}),
    ({"date_from": datetime(2023, 7, 1, 10, 0), "date_to": datetime(2023, 7, 31)}, {"eos", "gone"}),
    ({"date_to": datetime(2022, 12, 31)}, {"powershot"}),
    ({"camera": "canon"}, {"eos", "powershot", "gone"}),
    ({"camera": "EOS 5"}, {"eos", "gone"}),
    ({"camera": "nikon d7"}, {"nikon"}),
    ({"camera": "leica"}, set()),
    ({"path_prefix": "/photos/a/b"}, {"eos", "powershot"}),  # not /photos/a/bc, not the missing file
    ({"path_prefix": "/photos/a/b/"}, {"eos", "powershot"}),
    ({"path_prefix": "/photos/a"}, {"eos", "nikon", "powershot"}),
    ({"path_prefix": "/photos/a/bc"}, {"nikon"}),
    ({"path_prefix": "/"}, {"eos", "nikon", "powershot", "nodata"}),
    ({"path_prefix": "/photos/a/b/1.jpg"}, set()),  # a file is not a folder
    ({"camera": "canon", "path_prefix": "/photos/a/b/sub"}, {"powershot"}),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "filter_case" in metafunc.fixturenames:
        metafunc.parametrize(
            "filter_case", FILTER_CASES,
            ids=["-".join(f"{k}={v}" for k, v in case.items()) for case, _ in FILTER_CASES],
        )


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The library builders above, for test modules (conftest modules are not imported directly)."""
    return SimpleNamespace(unit_vectors=unit_vectors, new_asset=new_asset, add_assets=add_assets,
                           build_library=build_library, specs=LIBRARY_SPECS, filter_cases=FILTER_CASES, model=MODEL, dim=DIM)
