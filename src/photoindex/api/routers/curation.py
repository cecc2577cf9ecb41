"""Curation: archive exact copies or a selection (moves with a manifest, never deletes), undo a batch,
recent batches, the collection report (JSON / CSV), clusters with a 2-D map, and saving a selection or
a cluster as a new collection."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.errors import INVALID_STATE, NOT_FOUND, ApiError
from photoindex.curation import archive
from photoindex.curation.archive import ArchiveBatchOut
from photoindex.curation.clusters import (
    NO_SUCH_CLUSTER,
    ClusterReport,
    SavedCollection,
    cluster_collection,
    cluster_members,
    save_collection,
)
from photoindex.curation.reports import CollectionReport, collection_report, report_csv
from photoindex.errors import PhotoindexError
from photoindex.runtime import Runtime

router = APIRouter(prefix=API_PREFIX, tags=["curation"])
ARCHIVE_CONFLICT = "archive_conflict"
BATCH_ID = PathParam(ge=1, le=2**62)
Id = Annotated[int, Field(ge=1, le=2**53 - 1)]  # JSON numbers are exact up to 2**53
CollectionName = Annotated[str, Field(min_length=1, max_length=128)]
NewName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ArchiveExactRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: CollectionName | None = Field(default=None, description="default: the selected collection")
    dry_run: StrictBool = Field(default=False, description="only say what would move")
    reason: Reason = "exact duplicates"


class KeepChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: Id
    file_id: Id


class ArchiveSelectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: CollectionName | None = None
    asset_ids: list[Id] = Field(default_factory=list, max_length=10000,
                                description="whole photos: every present file of each")
    file_ids: list[Id] = Field(default_factory=list, max_length=10000, description="single files")
    keep: list[KeepChoice] = Field(default_factory=list, max_length=10000,
                                   description="which file of an asset to keep (overrides the suggestion)")
    reason: Reason = "selection"
    dry_run: StrictBool = False


class SaveSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: CollectionName | None = Field(default=None, description="the source (default: the selected one)")
    name: NewName = Field(description="the new collection")
    asset_ids: list[Id] = Field(min_length=1, max_length=100000)


class SaveCluster(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: CollectionName | None = None
    name: NewName
    cluster: int = Field(ge=0, le=999, description="a cluster id from GET /curation/clusters with the same k")
    k: int | None = Field(default=None, ge=1, le=1000)


@router.post("/duplicates/archive-exact", response_model=ArchiveBatchOut, response_model_exclude_none=True,
             summary="Archive the extra copies of every content stored at several paths (keeps one)")
def archive_exact(body: ArchiveExactRequest, rt: Runtime = Depends(get_rt)) -> ArchiveBatchOut:
    return archive.archive_exact(rt, body.collection, dry_run=body.dry_run, reason=body.reason)


@router.post("/curation/archive-selection", response_model=ArchiveBatchOut, response_model_exclude_none=True,
             summary="Archive chosen photos (all their files, or all but a kept one) or single files")
def archive_selection(body: ArchiveSelectionRequest, rt: Runtime = Depends(get_rt)) -> ArchiveBatchOut:
    return archive.archive_selection(rt, body.collection, asset_ids=body.asset_ids, file_ids=body.file_ids,
                                     keep={c.asset_id: c.file_id for c in body.keep}, reason=body.reason, dry_run=body.dry_run)


@router.post("/curation/undo/{batch_id}", response_model=ArchiveBatchOut,
             summary="Move a batch's files back and restore the catalog as it was (also after a crash)")
def undo(batch_id: int = BATCH_ID, rt: Runtime = Depends(get_rt)) -> ArchiveBatchOut:
    try:
        return archive.undo(rt, batch_id)
    except PhotoindexError as exc:
        reason = exc.details.get("reason")
        if exc.code == archive.CONFLICT and reason in (archive.ALREADY_UNDONE, archive.PATHS_TAKEN):
            code = INVALID_STATE if reason == archive.ALREADY_UNDONE else ARCHIVE_CONFLICT
            raise ApiError(409, code, exc.message, hint=exc.hint, details=exc.details) from None
        raise


@router.get("/curation/batches", response_model=list[ArchiveBatchOut], summary="Recent archive batches, newest first")
def batches(collection: str | None = Query(default=None, min_length=1, max_length=128),
            limit: int = Query(default=20, ge=1, le=500),
            all_collections: bool = Query(default=False, alias="all"),
            rt: Runtime = Depends(get_rt)) -> list[ArchiveBatchOut]:
    return archive.list_batches(rt, collection, limit=limit, all_collections=all_collections)


@router.get("/curation/batches/{batch_id}", response_model=ArchiveBatchOut, summary="One batch with its files")
def batch(batch_id: int = BATCH_ID, rt: Runtime = Depends(get_rt)) -> ArchiveBatchOut:
    return archive.batch_out(rt, batch_id, items=True)


@router.get("/curation/report", response_model=CollectionReport,
            summary="A collection's summary: by camera, year, type; duplicates, failures, missing, archived",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "JSON (format=json) or CSV (format=csv)"}})
def report(collection: str | None = Query(default=None, min_length=1, max_length=128),
           format: Literal["json", "csv"] = Query(default="json"),
           rt: Runtime = Depends(get_rt)) -> CollectionReport | Response:
    summary = collection_report(rt, collection)
    if format == "csv":
        return Response(report_csv(summary), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{summary.collection}-report.csv"'})
    return summary


@router.get("/curation/clusters", response_model=ClusterReport,
            summary="Clusters of the collection's photos with names and a 2-D map (k-means over embeddings)")
def clusters(collection: str | None = Query(default=None, min_length=1, max_length=128),
             k: int | None = Query(default=None, ge=1, le=1000, description="default: sqrt(n / 2)"),
             points: bool = Query(default=True, description="each photo's position on the map"),
             members: bool = Query(default=False, description="each cluster's asset ids"),
             rt: Runtime = Depends(get_rt)) -> ClusterReport:
    return cluster_collection(rt, collection, k=k, points=points, members=members)


@router.post("/curation/save-collection", response_model=SavedCollection, status_code=201,
             summary="Save a selection or a cluster as a new collection (rows copied, no model runs)")
def save(body: Annotated[SaveSelection | SaveCluster, Body()], rt: Runtime = Depends(get_rt)) -> SavedCollection:
    if isinstance(body, SaveCluster):
        try:
            ids = cluster_members(rt, body.collection, body.cluster, k=body.k)
        except PhotoindexError as exc:
            if exc.details.get("reason") == NO_SUCH_CLUSTER:
                raise ApiError(404, NOT_FOUND, exc.message, hint=exc.hint, details=exc.details) from None
            raise
    else:
        ids = body.asset_ids
    return save_collection(rt, body.name, ids, source=body.collection)
