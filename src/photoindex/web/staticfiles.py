"""The UI's own JavaScript, CSS and icons, read once from the package and served under a versioned
path: `/static/<version>/<file>`, where the version is a hash of every file. A URL therefore never
changes meaning, so responses are cacheable forever (`immutable`) and a new release is fetched at
once because its pages name a new version. Each file also has a strong ETag for revalidation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.responses import Response

from photoindex.api.routers.assets import IMMUTABLE, etag_matches

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    out: dict[str, Traversable] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            out.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif any(entry.name.endswith(suffix) for suffix in TYPES):
            out[prefix + entry.name] = entry
    return out


class StaticBundle:
    def __init__(self, root: Traversable | None = None) -> None:
        root = root or resources.files("photoindex.web") / "static"
        self.files: dict[str, StaticFile] = {}
        digest = hashlib.sha256()
        for rel, entry in _walk(root).items():
            body = entry.read_bytes()
            sha = hashlib.sha256(body).hexdigest()
            suffix = "." + rel.rsplit(".", 1)[-1]
            self.files[rel] = StaticFile(body=body, media_type=TYPES[suffix], etag=f'"{sha[:32]}"')
            digest.update(f"{rel}\0{sha}\n".encode())
        self.version = digest.hexdigest()[:12]

    def url(self, rel: str) -> str:
        if rel not in self.files:  # a template naming a missing file is a bug: fail loudly, not with a 404
            raise KeyError(f"no static file {rel!r}")
        return f"/static/{self.version}/{rel}"

    def response(self, version: str, rel: str, if_none_match: str | None) -> Response:
        found = self.files.get(rel)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        # an old page asking for an old version gets today's file, but only for a revalidated moment
        cache = IMMUTABLE if version == self.version else "no-cache"
        headers = {"ETag": found.etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        if etag_matches(if_none_match, found.etag):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)
