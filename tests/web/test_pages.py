"""The web UI's pages in real Chromium against a server with the test library ingested: library grid,
text and image search with filter chips, photo detail with keyboard navigation, collections,
settings, and a duplicate search that finds nothing. Every test fails on any console error.
(Enrichment on the photo page and in search: test_enriched.py; duplicates and undo: test_duplicates.py.)"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from .conftest import Site

# newest first; the motorcycle has no capture date, so it comes last
LIBRARY_ORDER = ["cat", "coffee", "astronaut", "rocket", "motorcycle"]


def tile_ids(page: Any, selector: str = "#grid .tile") -> list[int]:
    return [int(x) for x in page.locator(selector).evaluate_all("els => els.map(e => e.dataset.id)")]


def wait_tiles(page: Any, count: int, selector: str = "#grid .tile") -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n", arg=[selector, count])


def images_loaded(page: Any, selector: str) -> None:
    page.wait_for_function(
        "s => { const imgs = [...document.querySelectorAll(s)];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def jpeg_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode()


# Files built in the page from bytes and handed over as a drop or a paste: what a person's drag or
# Ctrl+V produces, a DataTransfer whose `files` hold them.
FILES_TRANSFER = """
(files) => {
  const dt = new DataTransfer();
  for (const [name, b64] of files) {
    dt.items.add(new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], name, { type: "image/jpeg" }));
  }
  return dt;
}"""


def drop_files(page: Any, selector: str, files: list[tuple[str, str]]) -> None:
    dt = page.evaluate_handle(FILES_TRANSFER, files)
    page.dispatch_event(selector, "dragover", {"dataTransfer": dt})
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


def paste_files(page: Any, files: list[tuple[str, str]]) -> None:
    dt = page.evaluate_handle(FILES_TRANSFER, files)
    page.evaluate("dt => document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }))", dt)


def test_library_grid(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base) as t:
        t.goto("/")
        page = t.page
        wait_tiles(page, 5)
        assert tile_ids(page) == [site.ids[n] for n in LIBRARY_ORDER]
        assert page.locator("#count").inner_text() == "· 5 photos"
        images_loaded(page, "#grid .tile img")
        # every box has its photo's proportions from the start (aspect ratio known before loading)
        boxes = page.locator("#grid .tile").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); const i = e.querySelector('img');"
            " return [r.width / r.height, i.width / i.height, +i.getAttribute('width') / +i.getAttribute('height')]; })")
        for box, _, photo in boxes:
            assert abs(box - min(3, max(0.4, photo))) < 0.03, boxes
        assert page.locator("#collection option").first.inner_text().startswith("default (selected)")
        t.shot("library")
        # keyboard: tab to the first photo, arrows move between photos, Enter opens one
        page.locator("#grid .tile").first.focus()
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.dataset.id") == str(site.ids["coffee"])
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/photo/{site.ids['coffee']}")
        page.locator("#facts").get_by_text("Apple iPhone 13").wait_for()


def test_library_on_a_phone(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
             device_scale_factor=2) as t:
        t.goto("/")
        wait_tiles(t.page, 5)
        images_loaded(t.page, "#grid .tile img")
        assert t.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        t.shot("library-phone")
        t.goto(f"/photo/{site.ids['cat']}")
        t.page.locator("#facts").get_by_text("Apple iPhone 13").wait_for()
        images_loaded(t.page, "#preview")
        assert t.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        t.shot("photo-phone")


def test_search_by_text_with_filter_chips(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base) as t:
        page = t.page
        t.goto("/search")
        page.fill("#q", "cat")
        page.press("#q", "Enter")
        wait_tiles(page, 5, "#results .tile")
        assert tile_ids(page, "#results .tile")[0] == site.ids["cat"]
        assert "q=cat" in page.url
        first = page.locator("#results .tile").first
        badge = first.locator(".badge")
        # no words in this library: the score is the image model's cosine similarity
        assert badge.inner_text() == "similarity " + first.get_attribute("title").rsplit(" ", 1)[1]
        assert 0 < float(badge.inner_text().split()[1]) <= 1
        first.hover()
        page.wait_for_function("() => getComputedStyle(document.querySelector('#results .tile .badge')).opacity === '1'")
        assert "5 results for “cat”" in page.locator("#status").inner_text()
        images_loaded(page, "#results .tile img")
        t.shot("search-text")

        # a camera filter becomes a chip, narrows the results, and goes away with its chip
        page.click("#filters summary")
        page.fill("#f-camera", "NIKON")
        page.click("#filter-form button[type=submit]")
        wait_tiles(page, 2, "#results .tile")
        assert set(tile_ids(page, "#results .tile")) == {site.ids["rocket"], site.ids["astronaut"]}
        chip = page.get_by_role("button", name="Remove Camera: NIKON")
        assert chip.is_visible() and "camera=NIKON" in page.url
        page.fill("#f-from", "2021-05-05")
        page.click("#filter-form button[type=submit]")
        wait_tiles(page, 1, "#results .tile")
        assert tile_ids(page, "#results .tile") == [site.ids["astronaut"]]
        t.shot("search-filters")
        page.get_by_role("button", name="Remove From 2021-05-05").click()
        chip.click()
        wait_tiles(page, 5, "#results .tile")
        assert page.locator("#chips li").count() == 0
        # Back returns to the filtered search (the URL holds query and filters)
        page.go_back()
        wait_tiles(page, 2, "#results .tile")


def test_search_by_dropped_and_pasted_image(site: Site, tab: Callable[..., Any], photos: dict[str, Image.Image]) -> None:
    with tab(site.base) as t:
        page = t.page
        t.goto("/search")
        drop_files(page, "#drop", [("my-coffee.jpg", jpeg_b64(photos["coffee"].resize((200, 133))))])
        wait_tiles(page, 5, "#results .tile")
        assert tile_ids(page, "#results .tile")[0] == site.ids["coffee"]
        assert page.get_by_role("button", name="Remove Image: my-coffee.jpg").is_visible()
        images_loaded(page, "#query-image img")
        t.shot("search-image")
        paste_files(page, [("clipboard.jpg", jpeg_b64(photos["rocket"].resize((120, 200))))])
        page.wait_for_function("id => document.querySelector('#results .tile')?.dataset.id === String(id)",
                               arg=site.ids["rocket"])
        page.locator("#image-file").set_input_files(
            files=[{"name": "astro.jpg", "mimeType": "image/jpeg", "buffer": base64.b64decode(jpeg_b64(photos["astronaut"]))}])
        page.wait_for_function("id => document.querySelector('#results .tile')?.dataset.id === String(id)",
                               arg=site.ids["astronaut"])


def test_photo_detail_and_keyboard_navigation(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base) as t:
        page = t.page
        t.goto("/search?q=cat")
        wait_tiles(page, 5, "#results .tile")
        results = tile_ids(page, "#results .tile")
        page.locator("#results .tile").first.click()
        page.wait_for_url(f"**/photo/{site.ids['cat']}?in=results")
        page.locator("#title").get_by_text("cat.jpg").wait_for()
        facts = page.locator("#facts").inner_text()
        assert "Apple iPhone 13" in facts and "2023-08-09 18:45" in facts and "tiny-clip" in facts
        images_loaded(page, "#preview")
        assert page.evaluate("document.querySelector('#preview').src").endswith("/thumbnail?size=1024")
        wait_tiles(page, 4, "#similar .tile")
        assert site.ids["cat"] not in tile_ids(page, "#similar .tile")
        assert page.locator("#position").inner_text().startswith("1 of 5 results")
        assert page.locator("#prev").is_hidden()
        # the original file behind the link
        href = page.get_attribute("#original", "href")
        original = page.request.get(site.base + href)
        assert original.status == 200 and original.headers["content-type"] == "image/jpeg"
        assert original.body() == (site.library / "home" / "cat.jpg").read_bytes()
        # no enrichment on this server: its sections and the boxes button stay hidden
        for section in ("objects", "ocr", "caption", "tags", "quality", "enrichments"):
            assert page.locator(f"#{section}-section").is_hidden()
        assert page.locator("#toggle-boxes").is_hidden()
        t.shot("photo")

        page.keyboard.press("ArrowRight")
        page.wait_for_url(f"**/photo/{results[1]}?in=results")
        page.locator("#position").get_by_text("2 of 5 results").wait_for()
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(f"**/photo/{results[0]}?in=results")
        page.locator("#position").get_by_text("1 of 5 results").wait_for()
        page.keyboard.press("Escape")
        page.wait_for_url("**/search?q=cat")
        wait_tiles(page, 5, "#results .tile")

        # outside search results, ← and → follow the library order (newest first, undated last)
        t.goto(f"/photo/{site.ids['coffee']}")
        page.wait_for_function("() => !document.querySelector('#next').hidden")
        assert page.get_attribute("#prev", "href") == f"/photo/{site.ids['cat']}"
        page.keyboard.press("ArrowRight")
        page.wait_for_url(f"**/photo/{site.ids['astronaut']}")
        page.wait_for_function("() => !document.querySelector('#next').hidden")
        page.keyboard.press("ArrowRight")
        page.wait_for_url(f"**/photo/{site.ids['rocket']}")
        page.wait_for_function("() => !document.querySelector('#next').hidden")
        page.keyboard.press("ArrowRight")
        page.wait_for_url(f"**/photo/{site.ids['motorcycle']}")
        page.wait_for_function("() => !document.querySelector('#prev').hidden")
        assert page.locator("#next").is_hidden()  # the last photo
        assert "unknown" in page.locator("#facts").inner_text()


def test_collections_create_select_delete(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base) as t:
        page = t.page
        t.goto("/collections")
        page.locator("#collections tbody tr[data-name=default]").wait_for()
        page.fill("#new-name", "trips")
        page.press("#new-name", "Enter")
        page.locator("#create-status").get_by_text("Created trips.").wait_for()
        row = page.locator("#collections tbody tr[data-name=trips]")
        assert "0 photos" in row.inner_text()
        page.get_by_role("button", name="Select trips").click()
        row.locator(".tag.active").wait_for()
        assert page.locator("#collections tbody tr[data-name=default] .tag.active").count() == 0
        t.shot("collections")

        # the library follows the selected collection, and the switcher can show the other one
        t.goto("/")
        page.locator("#empty").wait_for()
        assert page.locator("#count").inner_text() == "· 0 photos"
        assert page.locator("#collection option").first.inner_text().startswith("trips (selected)")
        page.select_option("#collection", "default")
        page.wait_for_url("**/?collection=default")
        wait_tiles(page, 5)

        t.goto("/collections")
        page.get_by_role("button", name="Select default").click()
        page.locator("#collections tbody tr[data-name=default] .tag.active").wait_for()
        # delete with the keyboard: the dialog opens on Cancel; Tab, Enter deletes
        page.get_by_role("button", name="Delete trips").focus()
        page.keyboard.press("Enter")
        dialog = page.locator("#confirm-delete")
        dialog.wait_for()
        assert dialog.locator(".name").inner_text() == "trips"
        t.shot("collections-delete", full_page=False)
        page.keyboard.press("Escape")  # cancelling keeps it
        assert page.locator("#collections tbody tr[data-name=trips]").count() == 1
        page.get_by_role("button", name="Delete trips").click()
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.locator("#collections tbody tr[data-name=trips]").wait_for(state="detached")
    with httpx.Client(base_url=site.server.url) as c:
        assert [x["name"] for x in c.get("/collections").json()] == ["default"]


def test_jobs_settings_and_duplicates_pages(site: Site, tab: Callable[..., Any]) -> None:
    with tab(site.base) as t:
        page = t.page
        t.goto("/jobs")
        job = page.locator(".job").first
        job.locator(".summary").get_by_text("5 new").wait_for()
        assert job.locator(".status-badge").inner_text() == "completed"
        assert re.search(r"5 files in \d+", job.locator(".numbers").inner_text())
        t.shot("jobs")
        t.goto("/settings")
        page.locator("#server").get_by_text("catalog").wait_for()
        assert "not required" in page.locator("#server").inner_text()
        page.locator("#models tbody").get_by_text("tiny-clip").wait_for()
        page.wait_for_function("() => document.querySelector('#labels').value.includes('\\n')")
        t.shot("settings")
        # five different photos: a duplicate search finds nothing to review
        t.goto("/duplicates")
        page.locator("#find-status").get_by_text("No search yet").wait_for()
        page.click("#find")
        page.locator("#find-status").get_by_text("photos compared").wait_for()
        assert "5 photos compared" in page.locator("#find-status").inner_text()
        assert page.locator("#groups-empty").is_visible() and page.locator("#groups .group").count() == 0
        assert page.locator("#archive-selected").is_disabled()
        page.locator("#batches tbody").get_by_text("No archive batches yet.").wait_for()
        t.shot("duplicates")


def test_pages_and_static_files_headers(site: Site) -> None:
    with httpx.Client(base_url=site.base) as c:
        for path in ("/", "/search", f"/photo/{site.ids['cat']}", "/jobs", "/collections", "/settings", "/duplicates"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
            assert "script-src 'self'" in r.headers["content-security-policy"]
        html = c.get("/").text
        css = re.search(r'href="(/static/[0-9a-f]{12}/css/app\.css)"', html).group(1)
        r = c.get(css)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert "immutable" in r.headers["cache-control"] and r.headers["etag"]
        assert c.get(css, headers={"if-none-match": r.headers["etag"]}).status_code == 304
        stale = c.get(re.sub(r"/static/[0-9a-f]{12}/", "/static/000000000000/", css))
        assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
        assert c.get(css.replace("app.css", "nope.css")).status_code == 404
        assert c.get(css.replace("css/app.css", "../templates/base.html")).status_code == 404
        assert c.get("/photo/abc").status_code == 422
        # the pages are not part of the API's schema
        paths = c.get("/api/v1/openapi.json").json()["paths"]
        assert "/api/v1/library" in paths and not any(not p.startswith("/api/v1/") for p in paths)


def focused(page: Any) -> dict[str, Any]:
    return page.evaluate("""() => { const e = document.activeElement; const s = getComputedStyle(e);
        return { id: e.id, tag: e.tagName, cls: e.className, text: (e.textContent || '').trim().slice(0, 40),
                 outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                 visible: e.getBoundingClientRect().top >= 0 }; }""")


def test_keyboard_only(site: Site, tab: Callable[..., Any], photos: dict[str, Image.Image]) -> None:
    with tab(site.base) as t:
        page = t.page
        # intercept file choosers from the start: enabling it only when one is expected races with the key
        page.on("filechooser", lambda chooser: None)
        t.goto("/")
        wait_tiles(page, 5)
        page.keyboard.press("Tab")
        skip = focused(page)
        assert skip["text"] == "Skip to content" and skip["visible"] and skip["outline"]
        page.keyboard.press("Enter")
        assert focused(page)["id"] == "main"
        page.keyboard.press("Tab")
        assert focused(page)["id"] == "collection"
        page.keyboard.press("Tab")
        tile = focused(page)
        assert tile["cls"] == "tile" and tile["outline"]
        t.shot("keyboard-focus", full_page=False)

        # search: type, Enter; choose an image with the keyboard (the file chooser opens on Enter)
        t.goto("/search")
        page.keyboard.type("cat")
        page.keyboard.press("Enter")
        wait_tiles(page, 5, "#results .tile")
        assert tile_ids(page, "#results .tile")[0] == site.ids["cat"]
        page.focus("#choose-image")
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Enter")
        chooser.value.set_files(files=[{"name": "moto.jpg", "mimeType": "image/jpeg",
                                        "buffer": base64.b64decode(jpeg_b64(photos["motorcycle"]))}])
        page.wait_for_function("id => document.querySelector('#results .tile')?.dataset.id === String(id)",
                               arg=site.ids["motorcycle"])
        # chips are buttons: Enter on one removes its filter (back to the text search)
        chip = page.get_by_role("button", name="Remove Image: moto.jpg")
        chip.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("id => document.querySelector('#results .tile')?.dataset.id === String(id)",
                               arg=site.ids["cat"])

        # the filters open from the keyboard too
        page.focus("#filters summary")
        page.keyboard.press("Enter")
        assert page.locator("#f-from").is_visible()


def test_job_rate_and_time_left(site: Site, tab: Callable[..., Any]) -> None:
    """The Jobs page's rate and time left, from file counts at given times (the module itself, in the page)."""
    with tab(site.base) as t:
        t.goto("/jobs")
        base = t.page.evaluate("document.querySelector('link[rel=stylesheet]').href.replace('css/app.css', '')")
        out = t.page.evaluate("""async (base) => {
            const { RateMeter, runningText } = await import(base + 'js/progress.js');
            const meter = new RateMeter(10000);
            const out = { scanning: runningText({ done: 0, total: 0 }, meter) };
            meter.add(0, 0);
            out.first = runningText({ done: 0, total: 100 }, meter);
            meter.add(10, 2000);
            meter.add(30, 4000);
            out.running = runningText({ done: 30, total: 100 }, meter);
            meter.add(90, 16000);  // the window slides: the samples at 0 and 2 s drop out
            out.rate = meter.rate();
            out.eta = meter.eta(100);
            meter.add(5, 17000);  // counts went back (the job was retried): measuring starts over
            out.restarted = meter.rate();
            return out;
        }""", base)
    assert out == {"scanning": "Scanning…", "first": "0 of 100 files",
                   "running": "30 of 100 files · 7.5 files/s · about 9 s left", "rate": 5, "eta": 2, "restarted": None}
