"""Who is calling, for the rate limits: the client of a valid bearer token, verified once.

The rate-limit middleware (app/core/rate_limits.py) asks before any route runs. The token is
verified here (signature, issuer, audience, expiry: `TokenVerifier`) and the outcome is kept in
the request's state, where `authenticate()` finds it: a request's token is verified once,
whoever asks first. The client's current state (revoked, suspended, its scopes and grants)
stays the validator's to read, with the route's session.

A token that does not verify names nobody: its request spends its address's budget, and the
route answers 401 as before, with the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import Scope

from app.auth.tokens import TokenRejected, TokenVerifier, VerifiedToken

if TYPE_CHECKING:
    from app.auth.runtime import AuthRuntime

# Request state key of the request's `BearerCheck`.
BEARER_CHECK = "efdb_bearer_check"


@dataclass(frozen=True)
class BearerCheck:
    """A bearer token and what verifying it found: the token, or why it was refused."""

    token: str
    verified: VerifiedToken | None
    rejected: str = ""


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, split as Authlib splits it."""
    parts = authorization.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def check_bearer(verifier: TokenVerifier, token: str) -> BearerCheck:
    try:
        return BearerCheck(token, verifier.verify(token))
    except TokenRejected as exc:
        return BearerCheck(token, None, str(exc))


def earlier_check(state: Mapping[str, Any], token: str) -> BearerCheck | None:
    """The check made for this very token earlier in the request, if any."""
    check = state.get(BEARER_CHECK)
    return check if isinstance(check, BearerCheck) and check.token == token else None


async def bearer_client(scope: Scope) -> str | None:
    """The client id of the request's bearer token when it verifies, else None."""
    header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
    token = bearer_token(header.decode("latin-1")) if header is not None else None
    if token is None:
        return None
    runtime: AuthRuntime = scope["app"].state.auth
    if runtime.verifier.may_fetch_keys:
        # An external issuer's keys may have to be fetched over the network: not on the loop.
        check = await anyio.to_thread.run_sync(check_bearer, runtime.verifier, token)
    else:
        check = check_bearer(runtime.verifier, token)  # an RS256 check: tens of microseconds
    scope.setdefault("state", {})[BEARER_CHECK] = check
    return check.verified.client_id if check.verified is not None else None
