"""OAuth2 token endpoint (also at PACT's /auth/token), JWKS and discovery documents."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidRequestError
from fastapi import APIRouter, Depends, Request, Response

from app.auth.runtime import get_runtime
from app.auth.schemas import Jwks, OAuthErrorBody, ServerMetadata, TokenResponse
from app.auth.scopes import Scope
from app.auth.server import (
    AUTH_METHODS,
    GRANT_TYPES,
    TokenRequest,
    TokenServer,
    oauth_error_response,
)
from app.auth.throttle import (
    TokenThrottle,
    locked_for,
    presented_client_id,
    record_outcome,
    too_many,
)
from app.core.db import SessionDep, utcnow
from app.core.errors import headers_language
from app.core.http_cache import cached_json
from app.core.metrics import Metrics
from app.core.problem_text import Message
from app.core.rate_limits import client_address

router = APIRouter(tags=["auth"])

DISCOVERY_CACHE = "public, max-age=300"

_TOKEN_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "description": "A client credentials token request (RFC 6749 §4.4.2).",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {
                            "type": "string",
                            "enum": GRANT_TYPES,
                            "description": "Always `client_credentials` (RFC 6749 §4.4).",
                        },
                        "scope": {
                            "type": "string",
                            "description": "Space-separated subset of the client's scopes; "
                            "omitted means all of them.",
                        },
                        "client_id": {
                            "type": "string",
                            "description": "client_secret_post only (else HTTP Basic)",
                        },
                        "client_secret": {
                            "type": "string",
                            "description": "client_secret_post only (else HTTP Basic)",
                        },
                    },
                }
            }
        },
    }
}

_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "RFC 6749 §5.2 error (not problem+json)"},
    401: {"model": OAuthErrorBody, "description": "Client authentication failed"},
    429: {
        "description": "Too many attempts, or the client is locked after repeated failures "
        "(problem+json, with Retry-After)"
    },
}


async def token_form(request: Request) -> dict[str, list[str]] | None:
    """The form body, or None when the body is not `application/x-www-form-urlencoded`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    form = await request.form()
    return {key: [str(value) for value in form.getlist(key)] for key in form}


def issue_token(
    request: Request,
    session: SessionDep,
    form: Annotated[dict[str, list[str]] | None, Depends(token_form)],
) -> Response:
    if form is None:
        return oauth_error_response(
            InvalidRequestError("The body must be application/x-www-form-urlencoded.")
        )
    runtime = get_runtime(request)
    # Refused cheaply, before the secret is hashed: the token budgets, then a database lock.
    throttle: TokenThrottle = request.app.state.token_throttle
    client_id = presented_client_id(request.headers, form)
    ip = request.client.host if request.client else "unknown"
    # This endpoint runs in a worker thread; the budgets are counted on the event loop.
    refusal = anyio.from_thread.run(
        partial(throttle.refuse, ip=client_address(request.scope), client_id=client_id)
    )
    metrics: Metrics = request.app.state.metrics
    if refusal is not None:
        metrics.token_refusals.labels(reason="rate").inc()
        return too_many(
            Message("bounds.token_rate"),
            refusal.wait_seconds,
            request.url.path,
            headers_language(request.headers),
        )
    now = utcnow()
    locked = locked_for(session, client_id, now) if client_id else None
    if locked is not None:
        metrics.token_refusals.labels(reason="locked").inc()
        return too_many(
            Message("bounds.client_locked"),
            locked,
            request.url.path,
            headers_language(request.headers),
        )
    # The request's public URL is the issuer's (TLS may end at a proxy in front of us);
    # Authlib refuses client credentials over plain http except to a loopback address.
    uri = runtime.settings.issuer.rstrip("/") + request.url.path
    try:
        oauth_request = TokenRequest(uri=uri, headers=request.headers, form=form)
    except InsecureTransportError as exc:
        return oauth_error_response(exc)
    server = TokenServer(session=session, generator=runtime.generator)
    response: Response = server.create_token_response(oauth_request)
    if client_id and response.status_code in (200, 401):
        locked_now = record_outcome(
            session,
            settings=runtime.settings,
            client_id=client_id,
            succeeded=response.status_code == 200,
            ip=ip,
            now=now,
        )
        if locked_now:
            metrics.token_lockouts.inc()
    if response.status_code == 200:  # authenticated: the access log may name it
        request.state.client_id = client_id
    return response


_TOKEN_ROUTE: dict[str, Any] = {
    "response_model": TokenResponse,
    "responses": _TOKEN_RESPONSES,
    "openapi_extra": _TOKEN_REQUEST_BODY,
    "description": "OAuth2 client credentials grant (RFC 6749 §4.4). Authenticate with HTTP "
    "Basic (`client_secret_basic`) or with `client_id` and `client_secret` in the form "
    "(`client_secret_post`). Returns an RFC 9068 JWT access token. Errors use OAuth's "
    '`{"error": ...}` format, which OAuth client libraries expect, not problem+json.',
}

router.add_api_route(
    "/oauth/token",
    issue_token,
    methods=["POST"],
    summary="Get an access token",
    operation_id="issue_token",
    **_TOKEN_ROUTE,
)
router.add_api_route(
    "/auth/token",
    issue_token,
    methods=["POST"],
    summary="Get an access token (PACT path)",
    operation_id="issue_token_pact",
    **_TOKEN_ROUTE,
)


def server_metadata(request: Request) -> dict[str, Any]:
    runtime = get_runtime(request)
    issuer = runtime.settings.issuer.rstrip("/")
    return ServerMetadata(
        issuer=runtime.settings.issuer,
        token_endpoint=runtime.token_endpoint,
        jwks_uri=runtime.jwks_uri,
        grant_types_supported=GRANT_TYPES,
        token_endpoint_auth_methods_supported=AUTH_METHODS,
        scopes_supported=[scope.value for scope in Scope],
        response_types_supported=[],
        service_documentation=f"{issuer}/docs",
    ).model_dump(exclude_none=True)


@router.get("/.well-known/jwks.json", response_model=Jwks, summary="Signing keys (JWKS)")
def jwks(request: Request, session: SessionDep) -> Response:
    """The public keys of this service as a JWK Set: the key that verifies its access tokens
    (RS256), then the release keys (ES256, `efdb:purpose`: `release`) that sign release
    statements, snapshot manifests and audit checkpoints, retired ones included with the
    period they signed. No token needed; cacheable for 5 minutes."""
    keys = list(get_runtime(request).keys.public_jwks()["keys"])
    # Registered by the composition root (app.main): the release keys live above this layer.
    published = getattr(request.app.state, "published_keys", None)
    if published is not None:
        keys += published(session)
    return cached_json(request, {"keys": keys}, cache_control=DISCOVERY_CACHE)


@router.get(
    "/.well-known/oauth-authorization-server",
    response_model=ServerMetadata,
    response_model_exclude_none=True,
    summary="Authorization server metadata (RFC 8414)",
)
def oauth_metadata(request: Request) -> Response:
    """Where to get a token and the keys that verify it, which grant and client authentication
    methods are accepted and which scopes exist (RFC 8414); no token needed."""
    return cached_json(request, server_metadata(request), cache_control=DISCOVERY_CACHE)


@router.get(
    "/.well-known/openid-configuration",
    response_model=ServerMetadata,
    response_model_exclude_none=True,
    summary="Discovery document for OpenID-style clients (PACT)",
    description="The same metadata as /.well-known/oauth-authorization-server: PACT clients "
    "look up `token_endpoint` and `jwks_uri` here. No ID tokens are issued.",
)
def openid_configuration(request: Request) -> Response:
    return cached_json(request, server_metadata(request), cache_control=DISCOVERY_CACHE)
