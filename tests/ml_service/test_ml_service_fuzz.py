"""Schemathesis against the ML service's OpenAPI schema, every operation and every check: no 5xx from
any input, responses as documented (status, content type, schema, Allow on 405), bad input refused and
requests without the key refused.

Documented allowances: `/caption` answers 501 by design until a captioner is loaded; a schema can only
say "binary" for files and pixels, so schema-valid bodies may still be refused as not a .npy of the
model's size (422), no input at all (422) or an unknown model (404)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_service.helpers import service_settings, thread_service
from photoindex.api.ml_app import MLServiceOptions

CONFIG = """
[[operations]]
include-path-regex = "/api/v1/caption$"
[operations.checks.not_a_server_error]
enabled = false

[[operations]]
include-path-regex = "/api/v1/(embed|batch_embed_and_caption)$"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "413", "415", "422"]
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_schemathesis_all_operations(tmp_path: Path, models_dir: Path) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    settings = service_settings(tmp_path, models_dir, ml_api_key="fuzz-key")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    with thread_service(settings, MLServiceOptions(max_batch=16, max_body_bytes=4 * 1024 * 1024)) as svc:
        cmd = [
            str(st),
            "--config-file",
            str(config),
            "run",
            f"{svc.url}/openapi.json",
            "--max-examples",
            os.environ.get("PHOTOINDEX_FUZZ_EXAMPLES", "40"),
            "--seed",
            os.environ.get("PHOTOINDEX_FUZZ_SEED", "20261121"),
            "--header",
            "x-api-key:fuzz-key",
            "--request-timeout",
            "20",
            "--workers",  # one: hypothesis compiling in several threads trips a CPython 3.11 AST race
            "1",
            "--no-shrink",
            "--max-failures",
            "20",
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=110,
            cwd=tmp_path,
            check=False,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    assert "6 selected / 6 total" in out  # every operation of the service was exercised
