"""Search ranking with the tiny model: words tied to photos, image → image, filters — on both
catalog backends and both vector index backends."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters
from photoindex.search.service import search_similar, search_text
from support.library import LIBRARY, jpeg_bytes
from support.runtime import make_runtime

WORD_TO_FILE = {key: rel for rel, (key, *_rest) in LIBRARY.items()}


@pytest.fixture(params=["exact", "qdrant"])
def indexed(request, tmp_path: Path, models_dir: Path, library: Path, catalog_url: str):  # noqa: ANN001, ANN201
    extra = {"vector_backend": "qdrant", "qdrant_url": ":memory:"} if request.param == "qdrant" else {}
    rt = make_runtime(tmp_path / "home", models_dir, catalog_url=catalog_url, **extra)
    report = ingest(rt, [library])
    assert report.embedded == len(LIBRARY)
    yield rt, library
    rt.close()


def names(hits) -> list[str]:  # noqa: ANN001
    return [Path(h.path).name for h in hits]


def test_text_finds_the_photo_its_words_are_tied_to(indexed) -> None:  # noqa: ANN001
    rt, library = indexed
    for word, rel in WORD_TO_FILE.items():
        hits = search_text(rt, f"a photo of a {word}", k=3)
        assert hits[0].path == normalize_path(library / rel), (word, names(hits))
        assert hits[0].score > hits[1].score
    hits = search_text(rt, "rocket", k=10)
    assert len(hits) == len(LIBRARY) and hits[0].score == pytest.approx(1.0, abs=0.02)
    assert hits[0].taken_at == datetime(2021, 5, 4, 9, 30) and hits[0].camera == "NIKON Z 6"


def test_image_to_image(indexed, tmp_path: Path, photos) -> None:  # noqa: ANN001
    rt, library = indexed
    cat = library / "home/cat.jpg"
    own = search_similar(rt, cat, k=10)
    assert normalize_path(cat) not in [h.path for h in own] and len(own) == len(LIBRARY) - 1
    # a photo that is not in the catalog: a smaller, re-encoded copy of the cat finds the cat first
    outside = tmp_path / "query.jpg"
    outside.write_bytes(jpeg_bytes(photos["cat"].resize((200, 150)), quality=70))
    hits = search_similar(rt, outside, k=3)
    assert hits[0].path == normalize_path(cat) and hits[0].score > 0.95
    by_id = search_similar(rt, str(hits[0].asset_id), k=3)
    assert hits[0].asset_id not in [h.asset_id for h in by_id]


def test_filters(indexed) -> None:  # noqa: ANN001
    rt, library = indexed
    (library / "homeX").mkdir()
    f = SearchFilters(date_from=datetime(2023, 1, 1), date_to=datetime(2023, 12, 31, 23, 59))
    assert sorted(names(search_text(rt, "rocket", filters=f))) == ["cat.jpg", "coffee.jpg"]
    assert sorted(names(search_text(rt, "rocket", filters=SearchFilters(camera="nikon")))) == \
        ["astronaut.jpg", "rocket.jpg"]
    home = SearchFilters(path_prefix=normalize_path(library / "home"))
    assert sorted(names(search_text(rt, "rocket", filters=home))) == ["cat.jpg", "coffee.jpg", "motorcycle.jpg"]
    assert search_text(rt, "rocket", filters=SearchFilters(path_prefix=normalize_path(library / "homeX"))) == []
    assert names(search_text(rt, "cat", k=1, filters=SearchFilters(camera="iphone")))[0] == "cat.jpg"


def test_bad_queries_are_clear_errors(rt_sqlite: Runtime, library: Path) -> None:
    ingest(rt_sqlite, [library])
    with pytest.raises(PhotoindexError) as exc:
        search_text(rt_sqlite, "   ")
    assert exc.value.code == ErrorCode.INVALID_REQUEST
    with pytest.raises(CatalogError) as exc:
        search_text(rt_sqlite, "cat", collection="nope")
    assert exc.value.code == ErrorCode.COLLECTION_NOT_FOUND
    with pytest.raises(PhotoindexError) as exc:
        search_similar(rt_sqlite, "999999")
    assert exc.value.code == ErrorCode.ASSET_NOT_FOUND


def test_search_without_model_names_the_pull_command(tmp_path: Path, library: Path) -> None:
    rt = make_runtime(tmp_path / "home", None)
    ingest(rt, [library])
    with pytest.raises(PhotoindexError) as exc:
        search_text(rt, "cat")
    assert exc.value.code == ErrorCode.MODEL_NOT_FOUND and "photoindex models pull" in str(exc.value)
    rt.close()
