"""The web UI on a server that requires API keys: the key flow in Settings, an ingest started by
path and one by drag-and-drop upload, both followed live on the Jobs page over the event stream
(authorised by the key cookie, since an EventSource cannot send headers), thumbnails and originals
under the same key, and a dead task retried from the Jobs page."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import piexif
from api.helpers import Server, wait_job
from PIL import Image

from photoindex.store.apikeys import ApiKeyStore
from photoindex.store.jobs import JobStore, TaskSpec

from .test_pages import drop_files, images_loaded, wait_tiles

# Records every status a job card shows, to prove the page followed the job while it ran.
WATCH_STATUSES = """
() => {
  window.__statuses = {};
  new MutationObserver(() => {
    for (const job of document.querySelectorAll('.job')) {
      const seen = (window.__statuses[job.dataset.id] ||= []);
      const status = job.dataset.status;
      if (status && seen[seen.length - 1] !== status) seen.push(status);
    }
  }).observe(document.querySelector('#jobs'), { subtree: true, attributes: true, childList: true });
}"""


# 48°51'24" N, 2°21'0" W, 35 m
GPS = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2400, 100)),
       piexif.GPSIFD.GPSLongitudeRef: b"W", piexif.GPSIFD.GPSLongitude: ((2, 1), (21, 1), (0, 1))}


def upload_files(photos: dict[str, Image.Image]) -> list[tuple[str, str]]:
    """Two photos whose content is new to the library (other sizes of the test photos); the first
    says where it was taken."""
    out = []
    for name, gps in (("cat", GPS), ("rocket", {})):
        buf = io.BytesIO()
        exif = piexif.dump({"0th": {}, "Exif": {}, "GPS": gps, "1st": {}, "thumbnail": None})
        photos[name].resize((160, 120)).save(buf, "JPEG", quality=80, exif=exif)
        out.append((f"new-{name}.jpg", base64.b64encode(buf.getvalue()).decode()))
    return out


def finished_card(page: Any, job_id: int, summary: str, timeout: float = 60_000) -> Any:
    card = page.locator(f".job[data-id='{job_id}']")
    card.locator(".summary").get_by_text(summary).wait_for(timeout=timeout)
    return card


def test_key_ingest_upload_and_live_progress(start_server: Callable[..., Server], library: Path,
                                             tab: Callable[..., Any], photos: dict[str, Image.Image]) -> None:
    server = start_server(require_api_key=True, allowed_roots=[library])
    _, secret = ApiKeyStore(server.rt.catalog).create("browser")

    # without a key the pages ask for one and send nothing that could only be refused
    with tab(server.base, "auth-no-key") as t:
        api_calls: list[str] = []
        t.page.on("request", lambda r: api_calls.append(r.url) if "/api/v1/" in r.url else None)
        t.goto("/")
        t.page.locator("#notice").get_by_text("This server needs an API key").wait_for()
        t.page.wait_for_load_state("networkidle")
        assert api_calls == []
        t.shot("notice")

        # a wrong key is refused (the browser logs the 401 of that check: expected here)
        t.allow(r"status of 401")
        t.page.get_by_role("link", name="Enter it in Settings").click()
        # the page's module has taken over the form once it says what is saved (else Enter would
        # submit the bare form)
        t.page.locator("#key-status").get_by_text("No key saved yet.").wait_for()
        t.page.fill("#api-key", "pix_not-the-key")
        t.page.press("#api-key", "Enter")
        t.page.locator("#key-status").get_by_text("The server refused this key").wait_for()
        assert t.page.evaluate("localStorage.getItem('photoindex.apiKey')") is None

    with tab(server.base, "auth") as t:
        page = t.page
        t.goto("/settings")
        page.fill("#api-key", secret)
        page.press("#api-key", "Enter")
        page.locator("#key-status").get_by_text("Key saved").wait_for()
        page.locator("#server").get_by_text("catalog").wait_for()
        assert "required" in page.locator("#server").inner_text()
        t.shot("settings-key")
        cookie = next(c for c in page.context.cookies() if c["name"] == "photoindex_key")
        assert cookie["value"] == secret and cookie["path"] == "/api/v1/" and cookie["sameSite"] == "Strict"

        # ingest a folder on the server, and watch it to the end
        t.goto("/jobs")
        page.evaluate(WATCH_STATUSES)
        streams: list[Any] = []
        page.on("response", lambda r: streams.append(r) if r.url.endswith("/events") else None)
        page.fill("#scan-path", str(library))
        page.press("#scan-path", "Enter")
        page.locator("#start-status").get_by_text("started: ingest of").wait_for()
        job_id = int(page.locator("#start-status").inner_text().split("#")[1].split()[0])
        card = finished_card(page, job_id, "5 new")
        assert card.locator(".status-badge").inner_text() == "completed"
        assert card.locator(".failures").is_hidden()
        seen = page.evaluate(f"window.__statuses['{job_id}']")
        assert seen[-1] == "completed" and len(seen) >= 2, seen  # it showed the job before it finished
        assert streams and all(r.status == 200 for r in streams)
        assert streams[0].headers["content-type"].startswith("text/event-stream")
        t.shot("jobs-ingested")

        # upload by drag and drop: a second job, followed the same way
        drop_files(page, "#upload-drop", upload_files(photos))
        page.locator("#start-status").get_by_text("2 photos uploaded").wait_for()
        upload_id = int(page.locator("#start-status").inner_text().split("#")[1].split()[0])
        finished_card(page, upload_id, "2 new")
        assert page.locator(".job").first.get_attribute("data-id") == str(upload_id)  # newest first
        t.shot("jobs-uploaded")

        # thumbnails and originals load under the key (the cookie stands in for the header)
        t.goto("/")
        wait_tiles(page, 7)
        images_loaded(page, "#grid .tile img")
        page.locator("#grid .tile img[alt^='new-cat.jpg']").click()
        page.locator("#title").get_by_text("new-cat.jpg").wait_for()
        images_loaded(page, "#preview")
        original = page.request.get(server.base + page.get_attribute("#original", "href"))
        assert original.status == 200 and original.headers["content-type"] == "image/jpeg"
        # where it was taken, with a link to a map
        assert page.locator("#coords").inner_text() == "48.85667, -2.35000"
        assert "mlat=48.85667&mlon=-2.35000" in page.get_attribute("#map-link", "href")
        t.shot("photo-location")

    # the cookie never authorises anything else
    with httpx.Client(base_url=server.url, cookies={"photoindex_key": secret}) as c:
        assert c.get("/collections").status_code == 401
        assert c.post("/collections", json={"name": "x"}).status_code == 401
        assert c.get("/assets/1/thumbnail").status_code == 200
        assert c.get(f"/jobs/{job_id}/events").status_code == 200
    with httpx.Client(base_url=server.url, cookies={"photoindex_key": "pix_wrong"}) as c:
        assert c.get("/assets/1/thumbnail").status_code == 401


def test_dead_task_retry(start_server: Callable[..., Server], library: Path, tab: Callable[..., Any]) -> None:
    """A job whose task fails on every attempt shows its reason and a Retry button that requeues it."""
    server = start_server(allowed_roots=[library])
    rt = server.rt
    coll = rt.collection(None)
    jobs = JobStore(rt.catalog)
    path = str(library / "home" / "cat.jpg")
    # an ingest task naming a collection that does not exist fails every attempt, and dies after one
    job_id = jobs.create_job("ingest", coll.id, {"roots": [str(library)], "collection": coll.name,
                                                 "collection_id": coll.id, "embed": False},
                             tasks=[TaskSpec(key="broken:files", kind="ingest.files", max_attempts=1,
                                             payload={"collection": "gone", "embed": False, "paths": [path]})])
    with server.client() as c:
        done = wait_job(c, job_id)
    assert done["tasks"].get("dead") == 1, done
    with tab(server.base) as t:
        page = t.page
        t.goto("/jobs")
        card = page.locator(f".job[data-id='{job_id}']")
        card.locator(".failures li").first.wait_for()
        assert card.locator(".failures").get_attribute("open") is not None
        failure = card.locator(".failures li").first.inner_text()
        assert path in failure and "task_failed" in failure and "no collection named 'gone'" in failure
        assert "1 dead" in card.locator(".tasks").inner_text()
        t.shot("dead-task")
        card.get_by_role("button", name="Retry 1 dead task").click()
        page.locator("#start-status").get_by_text(f"Job #{job_id}: 1 task queued again.").wait_for()
    with server.client() as c:
        again = wait_job(c, job_id)
    # it ran again (a fresh attempt, after which it died again) and finished later than the first time
    assert again["tasks"].get("dead") == 1 and again["finished_at"] > done["finished_at"]
