"""Signed release statements and signed audit checkpoints, public (no token for public data)."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.viewer import ViewerDep
from app.core.db import SessionDep
from app.core.errors import NotFound
from app.core.http_cache import IMMUTABLE, PRIVATE, SHORT_LIVED, cached_json, etag_matches
from app.core.pagination import after_id_from_cursor, id_cursor, page_response
from app.core.params import (
    DEFAULT_PAGE,
    Cursor,
    DatasetSlug,
    Limit,
    PublisherSlug,
    VersionPath,
    only_query_params,
)
from app.core.replica import reads_primary
from app.core.schemas import Page
from app.datasets import service as datasets_service
from app.datasets.models import Dataset
from app.datasets.version_models import RELEASED_STATUSES
from app.signing.consistency import prove_consistency
from app.signing.jws import MEDIA_TYPE
from app.signing.models import AuditCheckpoint
from app.signing.runtime import ReleaseKeysDep
from app.signing.statements import checkpoint_resource, ensure_release_statement, latest_checkpoint

router = APIRouter()


def jose_response(request: Request, token: str, *, cache_control: str) -> Response:
    """A JWS in compact form as `application/jose`, with a strong ETag."""
    etag = '"' + hashlib.sha256(token.encode("ascii")).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(token, media_type=MEDIA_TYPE, headers=headers)


JOSE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        "description": "JWS compact serialization (RFC 7515), ES256, `kid` and `iat` in the "
        "protected header; verify with the release keys of /.well-known/jwks.json",
    },
    304: {"description": "Not modified (`If-None-Match` matched the ETag)"},
}


@router.get(
    "/v1/datasets/{publisher}/{dataset}/versions/{version}/release.jws",
    tags=["versions"],
    summary="A release's signed statement (JWS)",
    response_class=Response,
    responses=JOSE_RESPONSES,
    dependencies=[Depends(only_query_params(()))],
)
@reads_primary  # signed on first request for a release older than signing
def release_statement(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    keys: ReleaseKeysDep,
    publisher: PublisherSlug,
    dataset: DatasetSlug,
    version: VersionPath,
) -> Response:
    """The release statement of a published (or since deprecated or withdrawn) version,
    signed by the service's release key: publisher, dataset, version, `content_sha256`, row
    count, licence, publication time and the hash of its `version.published` audit event.
    Signed at publish; a version released before signing existed is signed on this first
    request. 404 for an unknown or unreleased version (and a registered dataset the caller may
    not read). `efdb verify release.jws --jwks jwks.json` checks it offline."""
    _, row = datasets_service.get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    if row.status not in RELEASED_STATUSES:
        raise NotFound(f"{publisher}/{dataset}@{version} is not released: it has no statement.")
    statement = ensure_release_statement(session, keys, version=row)
    # A registered dataset's statement must not sit in shared caches.
    owner = session.get(Dataset, row.dataset_id)
    private = owner is None or owner.access != "public"
    return jose_response(request, statement.jws, cache_control=PRIVATE if private else IMMUTABLE)


class CheckpointRead(BaseModel):
    """A signed audit checkpoint: the chain's length and head hash when it was signed."""

    id: int = Field(description="Checkpoint id (ascending with time)")
    event_count: int = Field(description="Number of audit events in the chain when signed")
    head_hash: str = Field(description="Hash of the chain's last event then (64 hex digits)")
    tree_size: int | None = Field(
        description="Size of the audit Merkle tree it signs: one leaf per event, so "
        "`event_count`; null for a checkpoint signed before the tree existed"
    )
    root_hash: str | None = Field(
        description="Root of the RFC 9162 Merkle tree over the first `tree_size` events (leaf: "
        "sha256(0x00 ‖ canonical event), node: sha256(0x01 ‖ left ‖ right)), 64 hex digits; "
        "`GET /v1/audit/consistency` proves that a later tree extends it. Null for a "
        "checkpoint signed before the tree existed"
    )
    signed_at: str = Field(description="When it was signed (ISO 8601, UTC)")
    kid: str = Field(description="The release key that signed it (in /.well-known/jwks.json)")
    jws: str = Field(
        description="The checkpoint as JWS compact (ES256): its payload is "
        "{type, issuer, event_count, head_hash, tree_size, root_hash, signed_at} (older ones "
        "lack tree_size and root_hash); save it to check later that the service's history still "
        "extends it (`efdb verify FILE --jwks JWKS --from URL`)"
    )


@router.get(
    "/v1/audit/checkpoints",
    tags=["audit"],
    response_model=Page[CheckpointRead],
    summary="Signed audit checkpoints, newest first",
    dependencies=[Depends(only_query_params(("limit", "cursor")))],
)
def list_checkpoints(
    request: Request, session: SessionDep, limit: Limit = DEFAULT_PAGE, cursor: Cursor = None
) -> Response:
    """Signed checkpoints of the audit chain (event count, head hash, time), newest first; no
    token needed. One is signed at every publish, withdraw and snapshot, and by
    `efdb audit checkpoint`. Whoever saves one can later detect deleted or rewritten events."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
    before = after_id_from_cursor(cursor, {})
    if before is not None:
        query = query.where(AuditCheckpoint.id < before)
    rows = list(session.execute(query.limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = id_cursor(rows[-1].id if more else None, {})
    return page_response(
        request, [checkpoint_resource(row) for row in rows], next_cursor, cache_control=SHORT_LIVED
    )


@router.get(
    "/v1/audit/checkpoints/latest",
    tags=["audit"],
    response_model=CheckpointRead,
    summary="The newest signed audit checkpoint",
    responses={404: {"description": "No checkpoint has been signed yet"}},
    dependencies=[Depends(only_query_params(()))],
)
def get_latest_checkpoint(request: Request, session: SessionDep) -> Response:
    """The newest signed checkpoint of the audit log (event count, head hash, Merkle tree size
    and root, time); no token needed. Save it: later, `GET /v1/audit/consistency` proves that
    the service's history still extends it. 404 while none has been signed."""
    checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise NotFound("No audit checkpoint has been signed yet.")
    return cached_json(request, checkpoint_resource(checkpoint), cache_control=SHORT_LIVED)


class ConsistencyProofRead(BaseModel):
    """An RFC 9162 consistency proof between two sizes of the audit log's Merkle tree."""

    first: int = Field(description="The older tree's size (an old checkpoint's `tree_size`)")
    second: int = Field(description="The newer tree's size")
    first_root: str = Field(
        description="The root of the first `first` events as the service computes it now; a "
        "verifier compares its own signed checkpoint's `root_hash`, not this"
    )
    second_root: str = Field(description="The root of the first `second` events, computed now")
    proof: list[str] = Field(
        description="The consistency proof, PROOF(first, D[second]) of RFC 9162 §2.1.4.1: "
        "hex sha256 hashes, checked by the algorithm of §2.1.4.2 against the two signed roots "
        "(empty when the sizes are equal)"
    )
    checkpoint: CheckpointRead | None = Field(
        description="The newest signed checkpoint of size `second` (the latest checkpoint when "
        "`second` is not given); null when none was signed at that size"
    )


First = Annotated[
    int,
    Query(
        ge=1,
        le=2**62,
        description="The older tree's size: the `tree_size` of the checkpoint you hold",
    ),
]
Second = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**62,
        description="The newer tree's size; default: the latest signed checkpoint's",
    ),
]


@router.get(
    "/v1/audit/consistency",
    tags=["audit"],
    response_model=ConsistencyProofRead,
    summary="Prove that the audit log's later tree extends an earlier one",
    responses={
        404: {"description": "No tree of size `second` (or no checkpoint with a root yet)"},
        422: {"description": "`first` or `second` out of range, or `first` > `second`"},
    },
    dependencies=[Depends(only_query_params(("first", "second")))],
)
def get_consistency_proof(
    request: Request, session: SessionDep, first: First, second: Second = None
) -> Response:
    """The consistency proof between the audit log's Merkle tree of `first` events and that
    of `second` events (default: the latest signed checkpoint's size), with that newer signed
    checkpoint; no token needed and no event revealed. Holding an old checkpoint (its
    `tree_size` and signed `root_hash`), check the proof against the newer checkpoint's signed
    root: if it holds, none of the events your checkpoint covered was deleted or rewritten
    since. `efdb verify OLD.json --jwks JWKS --from URL` does it all."""
    answer = prove_consistency(session, first=first, second=second)
    return cached_json(request, answer, cache_control=SHORT_LIVED)
