"""Scoped auth for routes: `WriterDep`, `ReviewerDep`, `AdminDep`, or `require_scopes(...)`.

    @router.post("/v1/datasets")
    def create_dataset(principal: WriterDep, ...) -> ...:
        # principal.publisher is the caller's publisher slug

The aliases use FastAPI's `Security` with an OAuth2 client-credentials scheme, so OpenAPI lists
each route's scopes. Checks go through Authlib's `ResourceProtector` (see `app.auth.validator`).
"""

from __future__ import annotations

from typing import Annotated, Any

from authlib.oauth2.rfc6749.errors import MissingAuthorizationError, UnsupportedTokenTypeError
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from sqlalchemy.orm import Session

from app.auth.errors import AuthenticationRequired, InsufficientScope, InvalidToken
from app.auth.runtime import get_runtime
from app.auth.scopes import SCOPE_DESCRIPTIONS, Scope
from app.auth.validator import ResourceRequest
from app.core.db import SessionDep
from app.core.principal import Principal

__all__ = [
    "AdminDep",
    "Principal",
    "PrincipalDep",
    "ReaderDep",
    "ReviewerDep",
    "WriterDep",
    "authenticate",
    "require_scopes",
]

oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="/oauth/token", scopes=dict(SCOPE_DESCRIPTIONS)
        )
    ),
    scheme_name="OAuth2",
    description="OAuth2 client credentials: exchange a client id and secret at /oauth/token.",
    auto_error=False,
)


def authenticate(request: Request, session: Session, required: frozenset[str]) -> Principal:
    """The caller behind the request's bearer token, holding every scope in `required`."""
    protected = ResourceRequest(
        headers=request.headers, session=session, state=request.scope.get("state") or {}
    )
    protector = get_runtime(request).protector
    try:
        protector.validate_request(scopes=sorted(required), request=protected)
    except MissingAuthorizationError as exc:
        raise AuthenticationRequired() from exc
    except UnsupportedTokenTypeError as exc:
        raise InvalidToken(
            "The Authorization header must be `Bearer <access token>`.", error="invalid_request"
        ) from exc
    except InvalidTokenError as exc:
        raise InvalidToken(str(exc.description)) from exc
    except InsufficientScopeError as exc:
        raise InsufficientScope(str(exc.description).split()) from exc
    assert protected.principal is not None
    # For the access log line (app/core/logs.py): who asked, without asking the database again.
    request.state.client_id = protected.principal.client_id
    return protected.principal


def get_principal(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    _header: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    return authenticate(request, session, frozenset(security_scopes.scopes))


def require_scopes(*scopes: Scope) -> Any:
    """`Annotated[Principal, require_scopes(Scope.X, ...)]`: a token holding all of them."""
    return Security(get_principal, scopes=[scope.value for scope in scopes])


PrincipalDep = Annotated[Principal, Security(get_principal)]
ReaderDep = Annotated[Principal, require_scopes(Scope.FACTORS_READ)]
WriterDep = Annotated[Principal, require_scopes(Scope.DATASETS_WRITE)]
ReviewerDep = Annotated[Principal, require_scopes(Scope.DATASETS_REVIEW)]
AdminDep = Annotated[Principal, require_scopes(Scope.ADMIN)]
WebhooksDep = Annotated[Principal, require_scopes(Scope.WEBHOOKS_MANAGE)]
