"""A prepare function for pool tests: the worker process dies (as on a native decoder crash) on any
file whose name contains 'crash', and prepares every other file for real."""

from __future__ import annotations

import os

from photoindex.ingest.prepare import PrepareConfig, Result, prepare_many


def prepare_or_die(paths: list[str], config: PrepareConfig) -> list[Result]:
    if any("crash" in os.path.basename(p) for p in paths):
        os._exit(70)
    return prepare_many(paths, config)
