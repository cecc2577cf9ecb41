"""The web UI on a server that enriches what it ingests with real models: YOLOX-Nano (objects) and
RapidOCR (text) beside the tiny CLIP. The photo page draws the boxes and lists text, tags and
quality; search filters by tag and by text in the photo, with hybrid relevance on hover; the labels
editor changes the candidate labels at run time; enrichment started from Settings shows on the Jobs
page. Every test fails on any console error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.helpers import Server, api_settings, ingest_library
from PIL import Image
from support.library import jpeg_bytes
from support.text_photos import with_sign

from .conftest import _clean_environment
from .test_pages import drop_files, images_loaded, jpeg_b64, tile_ids, wait_tiles

SIGN = ["OPEN 24 HOURS", "FRESH COFFEE"]
LABELS = ["cat", "coffee", "rocket", "astronaut", "motorcycle"]
OBJECT_COLOUR, TEXT_COLOUR = "rgb(255, 176, 0)", "rgb(51, 214, 240)"  # app.css --box-object, --box-text


class Enriched:
    def __init__(self, server: Server, library: Path) -> None:
        self.server, self.library, self.base = server, library, server.base
        with server.client() as c:
            self.ids = {Path(i["path"]).stem: i["id"] for i in c.get("/library", params={"limit": 10}).json()["items"]}


@pytest.fixture(scope="module")
def enriched(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, shared_models: Path,
             photos: dict[str, Image.Image]) -> Iterator[Enriched]:
    root = tmp_path_factory.mktemp("enriched")
    models = root / "models"  # the tiny CLIP and the real detector side by side, as a user's folder holds them
    models.mkdir()
    (models / "tiny-clip").symlink_to(models_dir / "tiny-clip")
    (models / "yolox-nano-coco").symlink_to(shared_models / "yolox-nano-coco")
    library = root / "library"
    library.mkdir()
    (library / "cat.jpg").write_bytes(jpeg_bytes(photos["cat"]))
    (library / "coffee.jpg").write_bytes(jpeg_bytes(photos["coffee"]))
    (library / "sign.jpg").write_bytes(jpeg_bytes(with_sign(photos["rocket"], SIGN)))
    with pytest.MonkeyPatch.context() as mp:
        _clean_environment(mp, root)
        # the tiny CLIP knows only a few words: re-ranking YOLOX's COCO labels with it would garble them
        settings = api_settings(root / "home", models, allowed_roots=[library], enrichers=["objects", "ocr", "quality"],
                                rerank_regions=False, labels=LABELS)
    server = Server(settings).start()
    try:
        with server.client() as client:
            done = ingest_library(client, library)
        assert done["result"]["report"]["enriched"] == {"objects": 3, "ocr": 3, "quality": 3}, done
        yield Enriched(server, library)
    finally:
        server.stop()


def box_labels(page: Any, kind: str) -> list[str]:
    return page.locator(f"#boxes .box.{kind}").evaluate_all("els => els.map(e => e.dataset.label)")


def test_photo_boxes_toggle_tags_and_text(enriched: Enriched, tab: Callable[..., Any]) -> None:
    with tab(enriched.base) as t:
        page = t.page
        t.goto(f"/photo/{enriched.ids['cat']}")
        page.locator("#boxes .box.object").first.wait_for()
        images_loaded(page, "#preview")
        assert "cat" in box_labels(page, "object") and box_labels(page, "text") == []
        cat = page.locator("#boxes .box.object[data-label='cat']").first
        assert cat.locator(".box-label").inner_text().startswith("cat 0.")
        # the box lies on the preview, and its label is inside the photo (the box touches its top)
        fig = page.locator("#figure").bounding_box()
        box = cat.bounding_box()
        label = cat.locator(".box-label").bounding_box()
        assert fig["x"] - 3 <= box["x"] and box["x"] + box["width"] <= fig["x"] + fig["width"] + 3
        assert box["width"] > fig["width"] * 0.5 and label["y"] >= fig["y"]
        assert page.get_attribute("#toggle-boxes", "aria-pressed") == "true"
        assert "cat" in page.locator("#objects").inner_text()
        tag = page.locator("#tags a", has_text="cat")
        assert tag.get_attribute("href") == "/search?q=cat&tag=cat"
        quality = page.locator("#quality").inner_text()
        assert "Technical" in quality and "Sharpness" in quality and "Text in it\nno" in quality
        models = page.locator("#enrichments").text_content()
        assert "yolox-nano-coco" in models and "rapidocr" in models and "· ok" in models
        assert cat.evaluate("e => getComputedStyle(e).borderTopColor") == OBJECT_COLOUR
        t.shot("photo-boxes")

        # the button hides them, "b" brings them back; the photo does not move meanwhile
        before = page.locator("#preview").bounding_box()
        page.click("#toggle-boxes")
        assert page.locator("#boxes").is_hidden() and page.get_attribute("#toggle-boxes", "aria-pressed") == "false"
        t.shot("photo-boxes-hidden")
        page.keyboard.press("b")
        assert page.locator("#boxes").is_visible() and page.get_attribute("#toggle-boxes", "aria-pressed") == "true"
        assert page.locator("#preview").bounding_box() == before

        # a tag leads to a search restricted to it
        tag.click()
        page.wait_for_url("**/search?q=cat&tag=cat")
        wait_tiles(page, 1, "#results .tile")
        assert tile_ids(page, "#results .tile") == [enriched.ids["cat"]]
        assert page.get_by_role("button", name="Remove Tag: cat").is_visible()

        # the sign: its lines of text boxed in another colour, and the text it reads
        t.goto(f"/photo/{enriched.ids['sign']}")
        page.locator("#ocr-section").wait_for()
        assert page.locator("#ocr").inner_text().upper().split("\n") == SIGN
        assert sorted(x.upper() for x in box_labels(page, "text")) == sorted(SIGN)
        text_box = page.locator("#boxes .box.text").first
        style = text_box.evaluate("e => { const s = getComputedStyle(e); return [s.borderTopColor, s.borderTopStyle]; }")
        assert style == [TEXT_COLOUR, "dashed"]
        assert page.locator("#text-lines li").count() == 2
        assert "Text in it\nyes" in page.locator("#quality").inner_text()
        images_loaded(page, "#preview")
        t.shot("photo-text")


def test_search_with_text_and_tag_chips(enriched: Enriched, tab: Callable[..., Any], photos: dict[str, Image.Image]) -> None:
    with tab(enriched.base) as t:
        page = t.page
        t.goto("/search")
        page.fill("#q", "rocket")
        page.press("#q", "Enter")
        wait_tiles(page, 3, "#results .tile")
        # words were found in these photos: hybrid search, ranks fused, each hit says what found it
        first = page.locator("#results .tile").first
        first.hover()
        badge = first.locator(".badge")
        page.wait_for_function("() => getComputedStyle(document.querySelector('#results .tile .badge')).opacity === '1'")
        assert badge.inner_text().startswith("relevance 0.0") and "image" in badge.inner_text()
        assert "found by image" in first.get_attribute("title")
        assert "picture and words combined" in page.locator("#status").inner_text()
        images_loaded(page, "#results .tile img")
        t.shot("search-hybrid")

        page.click("#filters summary")
        page.select_option("#f-text", "yes")
        page.click("#filter-form button[type=submit]")
        wait_tiles(page, 1, "#results .tile")
        assert tile_ids(page, "#results .tile") == [enriched.ids["sign"]]
        assert "text=yes" in page.url
        t.shot("search-with-text")
        page.get_by_role("button", name="Remove With text").click()
        wait_tiles(page, 3, "#results .tile")

        page.fill("#f-tags", "cat")
        page.fill("#f-quality", "0.1")
        page.click("#filter-form button[type=submit]")
        wait_tiles(page, 1, "#results .tile")
        assert tile_ids(page, "#results .tile") == [enriched.ids["cat"]]
        assert page.get_by_role("button", name="Remove Tag: cat").is_visible()
        assert page.get_by_role("button", name="Remove Quality ≥ 0.1").is_visible()
        t.shot("search-tag-chip")
        # an image search cannot use them (an image has no words): it says so rather than ignore them silently
        drop_files(page, "#drop", [("query.jpg", jpeg_b64(photos["coffee"].resize((160, 107))))])
        page.locator("#status").get_by_text("tag, text and quality filters apply to text searches only").wait_for()
        page.get_by_role("button", name="Remove Image: query.jpg").click()
        wait_tiles(page, 1, "#results .tile")
        # a tag nothing has: no results, said so
        page.fill("#f-tags", "cat, giraffe")
        page.click("#filter-form button[type=submit]")
        page.locator("#status").get_by_text("No photos match").wait_for()
        page.get_by_role("button", name="Remove Tag: giraffe").click()
        wait_tiles(page, 1, "#results .tile")

        # words only: the sign's text finds it
        page.get_by_role("button", name="Remove Tag: cat").click()
        page.get_by_role("button", name="Remove Quality ≥ 0.1").click()
        page.fill("#q", "open 24 hours")
        page.select_option("#f-mode", "words")
        page.click("#filter-form button[type=submit]")
        page.wait_for_function("id => document.querySelector('#results .tile')?.dataset.id === String(id)",
                               arg=enriched.ids["sign"])
        assert "words" in page.locator("#results .tile .badge").first.inner_text()
        assert page.get_by_role("button", name="Remove Words only").is_visible()


def test_labels_editor_and_enrichment_job(enriched: Enriched, tab: Callable[..., Any]) -> None:
    with tab(enriched.base) as t:
        page = t.page
        t.goto("/settings")
        page.wait_for_function("n => document.querySelector('#labels').value.split('\\n').length === n", arg=len(LABELS))
        assert page.input_value("#labels").split("\n") == LABELS
        assert page.locator("#labels-count").inner_text() == f"({len(LABELS)} labels)"
        # edit: drop one, add two (one of them twice, with spaces), save
        page.fill("#labels", "\n".join([*LABELS[1:], "  sign ", "dog", "sign", ""]))
        assert page.locator("#labels-count").inner_text() == f"({len(LABELS) + 1} labels)"
        page.click("#labels-form button[type=submit]")
        page.locator("#labels-status").get_by_text(f"Saved {len(LABELS) + 1} labels").wait_for()
        wanted = [*LABELS[1:], "sign", "dog"]
        with httpx.Client(base_url=enriched.server.url) as c:
            assert c.get("/settings/labels").json()["labels"] == wanted
        t.shot("settings-labels")
        # Revert returns to what is saved; a reload shows the server's list
        page.fill("#labels", "x")
        page.click("#labels-revert")
        assert page.input_value("#labels").split("\n") == wanted
        page.reload()
        page.wait_for_function("n => document.querySelector('#labels').value.split('\\n').length === n", arg=len(wanted))
        assert page.input_value("#labels").split("\n") == wanted
        # an empty list is refused in the page, before any request
        page.fill("#labels", "  \n ")
        page.click("#labels-form button[type=submit]")
        page.locator("#labels-status").get_by_text("Give between 1 and").wait_for()

        # run the scene tagger now (over the new labels), then follow it on the Jobs page
        page.check("#enrich-form input[value=tags]")
        page.click("#enrich-form button[type=submit]")
        page.locator("#enrich-status").get_by_text("started: enrichment (tags)").wait_for()
        job_id = int(page.locator("#enrich-status").inner_text().split("#")[1].split()[0])
        t.shot("settings-enrich")
        page.click("#enrich-status a")
        page.wait_for_url("**/jobs")
        card = page.locator(f".job[data-id='{job_id}']")
        card.locator(".summary").get_by_text("tags 3").wait_for(timeout=60_000)
        assert card.locator(".status-badge").inner_text() == "completed"
        assert card.locator("h3").inner_text() == f"#{job_id} enrich"
        assert card.locator(".roots").inner_text() == "Collection default · only tags"
        assert "3 photos enriched in" in card.locator(".numbers").inner_text()
        assert card.locator(".failures").is_hidden()
        assert card.locator("progress").evaluate("p => p.value === p.max")
        t.shot("jobs-enrich")
