"""Enrichment over HTTP: start a run for a collection, and the candidate labels (changed at run time,
used by every worker from its next batch)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from photoindex.api.deps import API_PREFIX, Dispatcher, get_rt, job_urls
from photoindex.api.schemas import JobAccepted, Labels
from photoindex.enrich import loader
from photoindex.enrich.tasks import submit_enrich
from photoindex.runtime import Runtime

router = APIRouter(prefix=API_PREFIX, tags=["enrichment"])

EnricherName = Literal["objects", "tags", "ocr", "caption", "quality", "aesthetic", "text"]


class EnrichRequest(BaseModel):
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    only: list[EnricherName] | None = Field(default=None, description="Just these enrichers (default: the collection's)")


@router.post("/enrich", response_model=JobAccepted, status_code=202,
             summary="Run the collection's enrichers where results are missing (a job)")
def enrich(body: EnrichRequest, request: Request, rt: Runtime = Depends(get_rt)) -> JobAccepted:
    coll = rt.collection(body.collection)
    loader.enabled(rt, coll, body.only)  # an unknown name is a 400 now, not a dead task later
    job_id = submit_enrich(rt, collection=coll.name, only=list(body.only) if body.only else None, priority=10)
    dispatcher: Dispatcher = request.app.state.dispatcher
    dispatcher(job_id)
    return JobAccepted(job_id=job_id, status="queued", status_url=f"{API_PREFIX}/jobs/{job_id}",
                       events_url=job_urls(job_id)["events_url"])


@router.get("/settings/labels", response_model=Labels, summary="Candidate labels for tags and detection")
def get_labels(rt: Runtime = Depends(get_rt)) -> Labels:
    return Labels(labels=loader.labels(rt))


@router.put("/settings/labels", response_model=Labels,
            summary="Replace the candidate labels; workers use them from their next batch, no restart")
def put_labels(body: Labels, rt: Runtime = Depends(get_rt)) -> Labels:
    cleaned = list(dict.fromkeys(w.strip() for w in body.labels if w.strip()))
    rt.catalog.put_setting(loader.LABELS_KEY, {"labels": cleaned})
    return Labels(labels=loader.labels(rt))
