"""Every supported family of formats through the whole pipeline, with real files from packages."""

from __future__ import annotations

import shutil
from pathlib import Path

from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.media.thumbnails import thumbnail_path
from support import realphotos
from support.runtime import make_runtime


def test_mixed_formats_are_all_ingested_and_embedded(tmp_path: Path, models_dir: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    realphotos.skimage_photo("astronaut", root / "astronaut.png")
    realphotos.skimage_photo("coffee", root / "coffee.webp", quality=85)
    realphotos.skimage_photo("chelsea", root / "cat.bmp")
    realphotos.skimage_photo("rocket", root / "rocket.tiff")
    shutil.copy(realphotos.skimage_file("no_time_for_that_tiny.gif"), root / "anim.gif")
    shutil.copy(realphotos.heic_sample("heif_other/pug.heic"), root / "pug.heic")
    shutil.copy(realphotos.arw_sample(), root / "sony.ARW")
    realphotos.write_synthetic_dng(root / "ramp.dng")
    expected = {
        "astronaut.png": "image/png", "coffee.webp": "image/webp", "cat.bmp": "image/bmp",
        "rocket.tiff": "image/tiff", "anim.gif": "image/gif", "pug.heic": "image/heic",
        "sony.ARW": "image/x-sony-arw", "ramp.dng": "image/x-adobe-dng",
    }
    rt = make_runtime(tmp_path / "home", models_dir)
    report = ingest(rt, [root])
    assert report.errors == []
    assert report.processed == len(expected) and report.embedded == len(expected)
    coll = rt.collection()
    for name, mime in expected.items():
        asset = rt.catalog.find_asset_by_path(coll.id, normalize_path(root / name))
        assert asset is not None and asset.mime == mime, (name, asset and asset.mime)
        assert thumbnail_path(rt.settings.thumbnails_dir, asset.sha256, 256).is_file()
        assert asset.embedded_models == ["tiny-clip"]
    arw = rt.catalog.find_asset_by_path(coll.id, normalize_path(root / "sony.ARW"))
    assert arw.camera and "ILCE-7RM3" in arw.camera and max(arw.width, arw.height) > 4000  # sensor size, not preview
    rt.close()
