"""The web UI's pages and static files.

Pages are shells rendered by Jinja2: layout, navigation, forms and the few facts a page needs to
start (API prefix, whether keys are required, thumbnail sizes, the asset id), written as `data-`
attributes on <body>. They carry no catalog data, so they need no key even where the API does; the
page's module fetches everything through the API with the key the person entered. The Content
Security Policy allows only this server's own scripts and styles (there are no inline ones).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import Response

from photoindex import __version__
from photoindex.api.deps import API_PREFIX
from photoindex.config import Settings
from photoindex.curation.models import ALL_TIERS, TIER_HELP
from photoindex.enrich.loader import ORDER as ENRICHERS
from photoindex.web.staticfiles import StaticBundle

CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
NAV = [("library", "/", "Library"), ("search", "/search", "Search"), ("jobs", "/jobs", "Jobs"),
       ("duplicates", "/duplicates", "Duplicates"), ("collections", "/collections", "Collections"),
       ("settings", "/settings", "Settings")]
ENRICHER_HELP = {"objects": "objects with boxes (a detector)", "tags": "scene tags over the candidate labels",
                 "ocr": "text in the photo", "caption": "a sentence about the photo",
                 "quality": "sharpness, exposure and noise", "aesthetic": "an aesthetic score",
                 "text": "sentence vectors of the words found, for search by meaning"}


def _environment(bundle: StaticBundle) -> Environment:
    env = Environment(loader=PackageLoader("photoindex.web", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(static=bundle.url, nav=NAV, version=__version__, api=API_PREFIX)
    return env


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    bundle = StaticBundle()
    env = _environment(bundle)
    sizes = sorted({int(s) for s in settings.thumbnail_sizes})

    def page(request: Request, template: str, name: str, title: str, **context: Any) -> HTMLResponse:
        keys = bool(getattr(request.app.state, "keys_required", False))
        html = env.get_template(template).render(page=name, title=title, keys_required=keys,
                                                 thumb_small=sizes[0], thumb_large=sizes[-1], **context)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @router.get("/", response_class=HTMLResponse)
    def library(request: Request) -> HTMLResponse:
        return page(request, "library.html", "library", "Library")

    @router.get("/search", response_class=HTMLResponse)
    def search(request: Request) -> HTMLResponse:
        return page(request, "search.html", "search", "Search")

    @router.get("/photo/{asset_id}", response_class=HTMLResponse)
    def photo(request: Request, asset_id: int = PathParam(ge=1, le=2**62)) -> HTMLResponse:
        return page(request, "photo.html", "photo", f"Photo {asset_id}", asset_id=asset_id)

    @router.get("/jobs", response_class=HTMLResponse)
    def jobs(request: Request) -> HTMLResponse:
        return page(request, "jobs.html", "jobs", "Jobs")

    @router.get("/duplicates", response_class=HTMLResponse)
    def duplicates(request: Request) -> HTMLResponse:
        return page(request, "duplicates.html", "duplicates", "Duplicates",
                    tiers=[(tier, TIER_HELP[tier]) for tier in ALL_TIERS], archive_dir=settings.archive_dir_name)

    @router.get("/collections", response_class=HTMLResponse)
    def collections(request: Request) -> HTMLResponse:
        return page(request, "collections.html", "collections", "Collections")

    @router.get("/settings", response_class=HTMLResponse)
    def settings_page(request: Request) -> HTMLResponse:
        return page(request, "settings.html", "settings", "Settings",
                    enrichers=[(name, ENRICHER_HELP.get(name, "")) for name in ENRICHERS])

    @router.get("/static/{version}/{path:path}")
    def static(request: Request, version: str, path: str) -> Response:
        return bundle.response(version, path, request.headers.get("if-none-match"))

    return router
