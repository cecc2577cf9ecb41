"""Driving Debian's Chromium with Playwright for Python: one browser per test session, a fresh
context per page visit, every console error and uncaught exception recorded, screenshots saved as
test artifacts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    return os.environ.get("PHOTOINDEX_TEST_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Tab:
    """A page in its own browser context, with what went wrong in it."""

    page: Any
    base: str
    artifacts: Path
    name: str
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def goto(self, path: str, **kwargs: Any) -> Any:
        return self.page.goto(self.base + path, **kwargs)

    def shot(self, label: str, *, full_page: bool = True) -> Path:
        path = self.artifacts / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def allow(self, pattern: str) -> None:
        """Expect console errors matching `pattern` (a request the test makes fail on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@contextmanager
def open_tab(browser: Any, base: str, artifacts: Path, name: str, **context_options: Any) -> Iterator[Tab]:
    context = browser.new_context(base_url=base, **{"viewport": {"width": 1280, "height": 800}, **context_options})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page=page, base=base, artifacts=artifacts, name=name)

    def on_console(message: Any) -> None:
        if message.type in ("error", "assert"):
            location = message.location or {}
            tab.errors.append(f"console {message.type}: {message.text} ({location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
    try:
        yield tab
    finally:
        context.close()
    bad = tab.unexpected_errors()
    assert not bad, "errors in the browser:\n" + "\n".join(bad)
