"""Read API for one version, the diff between two, and a factor's history across releases.

Three routers, so that app/main.py registers each route where it always was (the order of
route matching and of the OpenAPI document's paths does not change).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.http_cache import (
    PINNED_RELEASE,
    PRIVATE,
    SHORT_LIVED,
    cached_json,
)
from app.core.params import DatasetSlug, PublisherSlug, VersionPath, only_query_params
from app.datasets import usage
from app.datasets.schemas import VersionRead
from app.datasets.version_models import RELEASED_STATUSES
from app.factors.router import FactorCode
from app.versioning import versions
from app.versioning.diff import diff_response
from app.versioning.history import factor_history
from app.versioning.schemas import FactorHistory, VersionDiff

version_router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
diff_router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
factor_router = APIRouter(prefix="/v1/factors", tags=["factors"])


@version_router.get(
    "/{publisher}/{dataset}/versions/{version}",
    response_model=VersionRead,
    summary="Get one released version",
    dependencies=[Depends(only_query_params(()))],
)
def get_version(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
) -> Response:
    """One version of a dataset: status, release notes, row count, content hash, upload file,
    who uploaded, submitted and published it and when, and the release it supersedes. Released
    versions are readable as their dataset is; drafts and submissions (with their validation
    report) only by their publisher's writing clients and reviewers: 404 for anyone else."""
    payload, found = versions.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    released = found.status in RELEASED_STATUSES
    return cached_json(request, payload, cache_control=PINNED_RELEASE if released else PRIVATE)


@diff_router.get(
    "/{publisher}/{dataset}/versions/{version}/diff",
    response_model=VersionDiff,
    summary="What changed from one released version to another (or to a submitted version, "
    "for its publisher and reviewers), field by field",
    dependencies=[Depends(only_query_params(("from",)))],
)
def diff_versions(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
    from_version: Annotated[
        str, Query(alias="from", max_length=32, description="The older version, e.g. 1.0.0")
    ],
) -> Response:
    """Factors added, removed and changed (field by field, before → after) from the release
    `from` to this version, with counts in `summary`. Both must be releases, or this one a
    submission seen by its publisher or a reviewer; 404 otherwise. Between two releases the
    answer never changes and is cached as immutable."""
    return diff_response(
        request,
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        from_version=from_version,
        to_version=version,
    )


@factor_router.get(
    "/{publisher}/{dataset}/{factor_code}/history",
    response_model=FactorHistory,
    summary="The factor's values in every released version, newest first",
    dependencies=[Depends(only_query_params(()))],
)
def get_factor_history(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    factor_code: FactorCode,
) -> Response:
    """The factor in every released version of its dataset, newest first: its values, each
    version's status and publication date, and whether (and why) it was withdrawn. 404 when no
    release you may read has the factor."""
    items = factor_history(
        session, viewer=viewer, publisher=publisher, dataset=dataset, factor_code=factor_code
    )
    usage.meter(session, viewer, [(publisher, dataset, len(items))])
    return cached_json(request, {"items": items}, cache_control=SHORT_LIVED)
