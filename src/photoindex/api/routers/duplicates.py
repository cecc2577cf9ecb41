"""Duplicates: start a search in the background, then read its progress and groups.

The "task id" is the duplicate job's id: the same number works with /jobs/{id} (status, SSE events,
cancel). Archiving what a report proposes is the curation router's business.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as PathParam

from photoindex.api.deps import API_PREFIX, get_rt, note_job
from photoindex.curation.models import (
    ALL_TIERS,
    DuplicateParams,
    DuplicateReport,
    FindSimilarAccepted,
    FindSimilarRequest,
    Tier,
)
from photoindex.curation.tasks import job_report, submit_find
from photoindex.runtime import Runtime

router = APIRouter(prefix=f"{API_PREFIX}/duplicates", tags=["duplicates"])


def report_url(task_id: int) -> str:
    return f"{API_PREFIX}/duplicates/report/{task_id}"


@router.post("/find-similar", response_model=FindSimilarAccepted, status_code=202,
             summary="Search a collection for duplicates and burst stacks in the background; returns the task id")
def find_similar(request: Request, body: FindSimilarRequest | None = Body(default=None),
                 rt: Runtime = Depends(get_rt)) -> FindSimilarAccepted:
    body = body or FindSimilarRequest()
    params = DuplicateParams(tiers=list(dict.fromkeys(body.tiers or ALL_TIERS)), near_threshold=body.threshold,
                             phash_max_distance=body.phash_max_distance, burst_window_s=body.burst_window_s)
    job_id = submit_find(rt, body.collection, params)
    note_job(request, job_id)
    request.app.state.dispatcher(job_id)
    return FindSimilarAccepted(task_id=job_id, job_id=job_id, status="queued", status_url=report_url(job_id),
                               events_url=f"{API_PREFIX}/jobs/{job_id}/events")


@router.get("/report/{task_id}", response_model=DuplicateReport,
            summary="Progress of a duplicate search and, once it has finished, its groups")
def report(request: Request, task_id: int = PathParam(ge=1, le=2**62),
           tier: Tier | None = Query(default=None, description="only groups of this tier"),
           offset: int = Query(default=0, ge=0, le=10_000_000, description="groups to skip"),
           limit: int = Query(default=10_000, ge=0, le=100_000, description="most groups returned"),
           rt: Runtime = Depends(get_rt)) -> DuplicateReport:
    note_job(request, task_id)
    out = job_report(rt, task_id)
    groups = [g for g in out.groups if tier is None or g.tier == tier]
    out.groups = groups[offset : offset + limit]
    return out
