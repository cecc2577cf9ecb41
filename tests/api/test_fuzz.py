"""Schemathesis against the live server's OpenAPI schema, every operation, every check: no 5xx, every
response matches its documented status, content type, headers and schema, bad input is refused,
valid input accepted, and requests without the key are refused.

One documented allowance (schemathesis.toml below): for the two upload operations a schema can only
say "binary", so schema-valid bodies may still be refused as no photo (415), an undecodable one (422)
or too large (413)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from photoindex.store.apikeys import ApiKeyStore

from .helpers import Server, ingest_library

CONFIG = """
[[operations]]
include-path-regex = "/(ingest/upload|search/image)$"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "413", "415", "422"]
"""


@pytest.mark.slow
def test_schemathesis_all_operations(serve: Callable[..., Server], library: Path, tmp_path: Path) -> None:
    server = serve(require_api_key=True, allowed_roots=[library], upload_max_bytes=2_000_000)
    _, secret = ApiKeyStore(server.rt.catalog).create("fuzz")
    with server.client(headers={"x-api-key": secret}) as c:
        ingest_library(c, library)  # assets, vectors, thumbnails and a finished job for the ids to hit
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "--config-file", str(config), "run", f"{server.url}/openapi.json", "--checks", "all",
           "--max-examples", os.environ.get("PHOTOINDEX_TEST_FUZZ_EXAMPLES", "120"),
           "--seed", os.environ.get("PHOTOINDEX_TEST_FUZZ_SEED", "20261121"),
           # one worker: schemathesis's coverage phase hits a CPython 3.11 AST race with several threads
           "--header", f"x-api-key:{secret}", "--request-timeout", "20", "--workers", "1", "--no-shrink",
           "--max-failures", "20", "--report", "junit", "--report-dir", str(tmp_path / "report")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    ops = sum(len(methods) for methods in server.app.openapi()["paths"].values())
    assert f"{ops} selected / {ops} total" in out  # every operation of the API was exercised
