"""The Duplicates page in real Chromium: a library with an exact copy of the cat and a re-encoded one;
find them, see the groups with their tier, evidence and suggested keeper, archive what is proposed
(after a dry-run preview), see the files move into the archive folder and the library shrink, undo and
get every byte back; archive exact copies from their own button; a refused undo reads as a sentence;
the duplicate job on the Jobs page. Every test fails on any console error."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.helpers import Server
from PIL import Image
from support.library import jpeg_bytes

from .conftest import served_library
from .test_pages import images_loaded

COPY = "trips/cat copy.jpg"  # the same bytes as home/cat.jpg, written later
REENCODED = "trips/cat-small.jpg"  # the cat again at another JPEG quality: a perceptual duplicate
# two frames a second apart from one camera: a burst stack (to review, never proposed for archiving)
BURST = {"burst/frame-1.jpg": ("astronaut", datetime(2024, 3, 1, 10, 0, 0)),
         "burst/frame-2.jpg": ("motorcycle", datetime(2024, 3, 1, 10, 0, 1))}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Library:
    def __init__(self, server: Server, root: Path) -> None:
        self.server, self.root, self.base = server, root, server.base
        self.archive = root / server.settings.archive_dir_name
        self.hashes = {str(p.relative_to(root)): sha(p) for p in root.rglob("*.jpg")}

    def count(self) -> int:
        with self.server.client() as c:
            return c.get("/library").json()["total"]

    def assert_untouched(self) -> None:
        now = {str(p.relative_to(self.root)): sha(p) for p in self.root.rglob("*.jpg") if self.archive not in p.parents}
        assert now == self.hashes
        assert not any(self.archive.rglob("*.jpg"))


@pytest.fixture(scope="module")
def dups(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, photos: dict[str, Image.Image]) -> Iterator[Library]:
    root = tmp_path_factory.mktemp("dups")
    library = root / "library"
    for rel, data in [("home/cat.jpg", jpeg_bytes(photos["cat"])), ("home/coffee.jpg", jpeg_bytes(photos["coffee"])),
                      ("trips/rocket.jpg", jpeg_bytes(photos["rocket"])),
                      (REENCODED, jpeg_bytes(photos["cat"], quality=60))]:
        (library / rel).parent.mkdir(parents=True, exist_ok=True)
        (library / rel).write_bytes(data)
    for rel, (name, taken) in BURST.items():
        (library / rel).parent.mkdir(parents=True, exist_ok=True)
        (library / rel).write_bytes(jpeg_bytes(photos[name], taken=taken, make="Canon", model="Canon EOS R5"))
    (library / COPY).write_bytes((library / "home/cat.jpg").read_bytes())
    st = (library / "home/cat.jpg").stat()
    os.utime(library / COPY, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with served_library(root, library, models_dir) as server:
        yield Library(server, library)


def group(page: Any, tier: str) -> Any:
    return page.locator(f"#groups .group[data-tier='{tier}']")


def member(page: Any, tier: str, name: str) -> Any:
    return group(page, tier).locator(".member", has=page.locator(f".name a:text-is('{name}')"))


def find(page: Any) -> None:
    page.click("#find")
    page.locator("#find-status").get_by_text("photos compared").wait_for()
    page.locator("#groups .group").first.wait_for()


def test_review_archive_and_undo(dups: Library, tab: Callable[..., Any]) -> None:
    assert dups.count() == 6
    with tab(dups.base) as t:
        page = t.page
        t.goto("/duplicates")
        page.locator("#find-status").get_by_text("No search yet").wait_for()
        find(page)
        assert page.locator("#groups .group").count() == 3
        assert "6 photos compared" in page.locator("#find-status").inner_text()
        assert "3 groups: 1 exact, 1 perceptual, 1 burst" in page.locator("#find-status").inner_text()
        assert "task=" in page.url

        exact = group(page, "exact")
        assert "The same file content at 2 paths" in exact.locator(".evidence").inner_text()
        keeper = member(page, "exact", "cat.jpg")
        assert "keeper" in keeper.get_attribute("class") and keeper.locator(".keep-badge").is_visible()
        assert not keeper.locator("input[type=checkbox]").is_checked()
        assert member(page, "exact", "cat copy.jpg").locator("input[type=checkbox]").is_checked()
        assert "the oldest copy" in exact.locator(".reasons").inner_text()

        near = group(page, "perceptual")
        assert near.locator(".evidence").inner_text() == "Identical perceptual hashes."
        assert "keeper" in member(page, "perceptual", "cat.jpg").get_attribute("class")
        small = member(page, "perceptual", "cat-small.jpg")
        assert small.locator("input[type=checkbox]").is_checked() and "perceptual" in small.locator(".tag").inner_text()
        assert "larger file" in near.locator(".reasons").inner_text()
        # the members side by side, each box with its photo's proportions before the image arrives
        boxes = near.locator(".member .thumb").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.top, r.width / r.height]; })")
        assert boxes[0][0] == boxes[1][0] and all(abs(ar - 451 / 300) < 0.02 for _, ar in boxes)
        assert page.locator("#selection").inner_text().startswith("2 files selected")
        images_loaded(page, "#groups .group:not(.burst) .member img")
        t.shot("duplicates-groups")

        # the burst: a closed stack that opens to its frames, none of them ticked
        burst = group(page, "burst")
        assert "2 frames within 1.0 s from Canon EOS R5" in burst.locator(".evidence").inner_text()
        assert burst.locator(".members").is_hidden() and burst.locator(".stack-cover img").count() == 2
        burst.locator(".stack summary").click()
        assert burst.locator(".member").count() == 2 and burst.locator("input:checked").count() == 0
        assert burst.locator(".member.keeper .keep-badge").count() == 1
        images_loaded(page, "#groups .burst .member img")
        page.get_by_role("button", name="burst 1").click()
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 1")
        t.shot("duplicates-burst")
        page.get_by_role("button", name="All 3").click()
        page.wait_for_function("() => document.querySelectorAll('#groups .group').length === 3")
        assert page.locator("#selection").inner_text().startswith("2 files selected")

        # ticking every member of a group is refused: something must stay
        keeper.locator("input[type=checkbox]").check()
        page.click("#archive-selected")
        page.locator("#selection").get_by_text("Keep at least one photo of each group").wait_for()
        assert dups.count() == 6 and (dups.root / COPY).exists()
        keeper.locator("input[type=checkbox]").uncheck()

        # archive: a dry run is shown first, then the files move
        page.click("#archive-selected")
        dialog = page.locator("#confirm-archive")
        dialog.wait_for()
        moves = dialog.locator(".moves").inner_text()
        assert f"{dups.root / COPY} → {dups.archive / COPY}" in moves
        assert f"{dups.root / REENCODED} → {dups.archive / REENCODED}" in moves
        assert (dups.root / COPY).exists()  # nothing moved by the preview
        t.shot("duplicates-confirm", full_page=False)
        dialog.get_by_role("button", name="Archive 2 files").click()
        page.locator("#selection").get_by_text("Archived 2 files").wait_for()
        for rel in (COPY, REENCODED):
            assert not (dups.root / rel).exists() and sha(dups.archive / rel) == dups.hashes[rel]
        assert dups.count() == 5  # the re-encoded photo left the library; the copy was only a second path
        assert member(page, "perceptual", "cat-small.jpg").locator(".tag", has_text="archived").is_visible()
        assert member(page, "exact", "cat copy.jpg").locator("input[type=checkbox]").is_disabled()
        # the kept cat lost a copy of its file, not itself
        for tier in ("exact", "perceptual"):
            assert member(page, tier, "cat.jpg").locator("input[type=checkbox]").is_enabled()
        row = page.locator("#batches tbody tr").first
        assert "2 files" in row.inner_text() and row.locator(".status-badge").inner_text() == "done"
        t.shot("duplicates-archived")
        t.goto("/")
        page.locator("#count").get_by_text("· 5 photos").wait_for()

        # the last search comes back (remembered in this browser), what was archived marked so
        t.goto("/duplicates")
        archived = member(page, "perceptual", "cat-small.jpg").locator(".tag", has_text="archived")
        archived.wait_for()
        assert member(page, "exact", "cat copy.jpg").locator("input[type=checkbox]").is_disabled()
        assert page.locator("#selection").inner_text() == "Nothing selected."
        # undo: every file back where it was, byte for byte, and the library whole again
        page.get_by_role("button", name=f"Undo batch {row.get_attribute('data-batch')}").click()
        page.locator("#batches-status").get_by_text("undone: 2 files back where they were").wait_for()
        page.locator("#batches tbody tr").first.locator(".status-badge", has_text="undone").wait_for()
        archived.wait_for(state="detached")
        assert member(page, "perceptual", "cat-small.jpg").locator("input[type=checkbox]").is_enabled()
        dups.assert_untouched()
        assert dups.count() == 6
        t.shot("duplicates-undone")


def test_archive_exact_copies_and_refused_undo(dups: Library, tab: Callable[..., Any]) -> None:
    with tab(dups.base) as t:
        page = t.page
        # the duplicate job on the Jobs page leads to its groups
        t.goto("/jobs")
        card = page.locator(".job", has=page.locator("h3", has_text="duplicates")).first
        card.locator(".summary").get_by_text("3 groups: 1 exact, 1 perceptual, 1 burst").wait_for()
        assert card.locator(".status-badge").inner_text() == "completed"
        assert card.locator(".roots").inner_text() == "Collection default · tiers exact, pixels, perceptual, near, burst"
        assert "6 photos compared in" in card.locator(".numbers").inner_text()
        t.shot("jobs-duplicates")
        card.get_by_role("link", name="Review them on the Duplicates page").click()
        page.wait_for_url("**/duplicates?task=*")
        page.locator("#groups .group").nth(2).wait_for()

        # exact copies: a preview, cancelled, moves nothing; confirmed, moves the copy
        page.click("#archive-exact")
        dialog = page.locator("#confirm-archive")
        dialog.wait_for()
        assert dialog.locator(".moves li").count() == 1 and "cat copy.jpg" in dialog.locator(".moves").inner_text()
        dialog.get_by_role("button", name="Cancel").click()
        page.locator("#exact-status").get_by_text("Nothing was archived.").wait_for()
        dups.assert_untouched()
        page.click("#archive-exact")
        dialog.get_by_role("button", name="Archive 1 file").click()
        page.locator("#exact-status").get_by_text("Archived 1 file").wait_for()
        assert not (dups.root / COPY).exists() and sha(dups.archive / COPY) == dups.hashes[COPY]
        assert dups.count() == 6
        assert member(page, "exact", "cat copy.jpg").locator(".tag", has_text="archived").is_visible()
        batch = page.locator("#batches tbody tr").first.get_attribute("data-batch")
        assert "exact duplicates" in page.locator("#batches tbody tr").first.inner_text()
        t.shot("duplicates-exact")

        # someone else undoes it first: this page's Undo is refused, and says why in words
        with httpx.Client(base_url=dups.server.url) as c:
            assert c.post(f"/curation/undo/{batch}").json()["status"] == "undone"
        t.allow(r"status of 409")
        page.get_by_role("button", name=f"Undo batch {batch}").click()
        status = page.locator("#batches-status")
        status.get_by_text("That is no longer possible").wait_for()
        assert "already undone" in status.inner_text() and status.get_attribute("data-kind") == "error"
        page.locator("#batches tbody tr").first.locator(".status-badge", has_text="undone").wait_for()
        member(page, "exact", "cat copy.jpg").locator(".tag", has_text="archived").wait_for(state="detached")
        dups.assert_untouched()
        t.shot("duplicates-refused-undo")
        task_url = page.url.removeprefix(dups.base)

    # readable on a phone: members two by two, nothing wider than the screen
    with tab(dups.base, "duplicates-phone", viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
             device_scale_factor=2) as t:
        t.goto(task_url)
        t.page.locator("#groups .group").nth(2).wait_for()
        images_loaded(t.page, "#groups .group:not(.burst) .member img")
        assert t.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        tops = group(t.page, "exact").locator(".member").evaluate_all("els => els.map(e => e.getBoundingClientRect().top)")
        assert tops[0] == tops[1]
        t.shot("groups")


def test_running_duplicate_search_on_the_jobs_page(dups: Library, tab: Callable[..., Any]) -> None:
    """How a job card reads while a duplicate search runs: its phase and counts from the job's report
    (what the event stream carries), for each kind of job the page shows."""
    with tab(dups.base) as t:
        t.goto("/jobs")
        base = t.page.evaluate("document.querySelector('link[rel=stylesheet]').href.replace('css/app.css', '')")
        out = t.page.evaluate("""async (base) => {
            const { kindOf } = await import(base + 'js/jobkinds.js');
            const job = (kind, status, extra) => ({ id: 9, kind, status, params: {}, counts: {}, tasks: {}, ...extra });
            const text = (j) => kindOf(j).progress(j).text;
            const running = job('duplicates', 'running', { report: { progress: { phase: 'hashing', done: 3, total: 10 } } });
            return {
                queued: text(job('duplicates', 'queued', { report: {} })),
                phase: text(job('duplicates', 'running', { report: { progress: { phase: 'grouping', done: 0 } } })),
                counted: text(running), bar: [kindOf(running).progress(running).value, kindOf(running).progress(running).max],
                enrich: text(job('enrich', 'running')),
                other: text(job('export', 'running')),
            };
        }""", base)
    assert out == {"queued": "Waiting for a worker…", "phase": "grouping…", "counted": "hashing: 3 of 10",
                   "bar": [3, 10], "enrich": "Running the enrichers…", "other": "Running…"}
