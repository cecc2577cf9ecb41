"""Prometheus metrics, one registry per process, named `photoindex_*`.

Stages record what they do; `GET /metrics` (the API and the ML service) exposes it. Decode processes
are separate processes: their work is timed by the parent, per chunk, so nothing here needs
prometheus-client's multi-process mode.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

stage_seconds = Histogram("photoindex_stage_seconds", "Time per batch in a pipeline stage",
                          ["stage"], buckets=_SECONDS, registry=REGISTRY)
files_total = Counter("photoindex_files_total", "Files handled by ingest, by outcome", ["outcome"],
                      registry=REGISTRY)
errors_total = Counter("photoindex_errors_total", "Errors by code", ["code"], registry=REGISTRY)
cache_total = Counter("photoindex_cache_total", "Content and vector cache lookups", ["kind", "result"],
                      registry=REGISTRY)
tasks_total = Counter("photoindex_tasks_total", "Tasks run, by kind and final status", ["kind", "status"],
                      registry=REGISTRY)
model_calls_total = Counter("photoindex_model_calls_total", "Model invocations (one per batch), by model",
                            ["model"], registry=REGISTRY)
queue_depth = Gauge("photoindex_queue_depth", "Messages waiting in the task transport", registry=REGISTRY)
http_seconds = Histogram("photoindex_http_seconds", "HTTP request latency", ["route", "method", "status"],
                         buckets=_SECONDS, registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)


def model_calls() -> float:
    """Every model invocation of this process so far (tests use it to prove a path ran no model)."""
    return sum(sample.value for metric in model_calls_total.collect() for sample in metric.samples
               if sample.name.endswith("_total"))
