"""The bearer token validator registered in Authlib's ResourceProtector.

Not Authlib's RFC 7523 `JWTBearerTokenValidator` (it never checks `aud`, so a token minted for
another service would pass) nor its RFC 9068 one (it lets the algorithm float and treats `typ`
as optional): verification is `TokenVerifier`'s, with pinned algorithms and `typ: at+jwt`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from sqlalchemy.orm import Session

from app.auth.errors import REALM, printable
from app.auth.identity import check_bearer, earlier_check
from app.auth.service import client_state, granted_datasets
from app.auth.tokens import TokenVerifier, VerifiedToken
from app.core.principal import Principal


@dataclass
class ResourceRequest:
    """What Authlib's ResourceProtector reads (`headers`), plus our session for client lookups
    and the request's state (where the rate limits leave the token they verified)."""

    headers: Any
    session: Session
    state: Mapping[str, Any] = field(default_factory=dict)
    principal: Principal | None = field(default=None)


def _invalid(description: str) -> InvalidTokenError:
    return InvalidTokenError(description=printable(description), realm=REALM)


class BearerValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__(realm=REALM)
        self.verifier = verifier

    def authenticate_token(self, token_string: str) -> str:
        # Verified in `validate_token`, which sees the request: a token the rate limits have
        # verified for this request already (app/auth/identity.py) is not verified again.
        return token_string

    def verified(self, token_string: str, request: ResourceRequest) -> VerifiedToken:
        check = earlier_check(request.state, token_string)
        if check is None:
            check = check_bearer(self.verifier, token_string)
        if check.verified is None:
            raise _invalid(check.rejected)
        return check.verified

    def validate_token(
        self, token_string: str, scopes: list[str], request: ResourceRequest
    ) -> None:
        token = self.verified(token_string, request)
        if token.external:
            principal = Principal(
                client_id=token.client_id,
                publisher=None,
                scopes=token.scopes,
                external_issuer=token.issuer,
            )
            # An external issuer's clients have no row here, so no grants: they read public
            # data and, with a national role, everything.
        else:
            # Checked on every request: revoking a client or suspending its publisher ends its
            # tokens at once, without waiting for them to expire.
            state = client_state(request.session, token.client_id)
            if state is None or state.revoked:
                raise InvalidTokenError(description="The token's client is revoked.", realm=REALM)
            if state.publisher_suspended:
                raise InvalidTokenError(
                    description="The client's publisher is suspended.", realm=REALM
                )
            if state.publisher != token.publisher:
                raise InvalidTokenError(description="The token's publisher is wrong.", realm=REALM)
            held = token.scopes & state.scopes  # never more than the client holds today
            principal = Principal(
                client_id=token.client_id,
                publisher=state.publisher,
                scopes=held,
                # Read with every request, like the client's state: a removed grant ends at once.
                granted=(
                    granted_datasets(request.session, token.client_id)
                    if "factors:read" in held
                    else frozenset()
                ),
            )
        # Every required scope must be present. (Authlib's `scope_insufficient` treats the list
        # as alternatives, any one of which suffices; FastAPI's SecurityScopes mean all.)
        missing = sorted(set(scopes) - principal.scopes)
        if missing:
            raise InsufficientScopeError(description=" ".join(missing))
        request.principal = principal
