"""Resource-side auth failures as problem+json, with the RFC 6750 `WWW-Authenticate` challenge.

(The token endpoint answers in OAuth's own error format instead; see `app.auth.server`.)
"""

from __future__ import annotations

from app.core.errors import ProblemError

REALM = "efdb"


def printable(text: str, limit: int = 200) -> str:
    """Text fit for an OAuth `error_description` or a challenge attribute: RFC 6749 §5.2 and
    RFC 6750 §3 allow printable ASCII except `"` and `\\` (Authlib raises on anything else),
    so echoed input (an algorithm name, a scope) is masked rather than crashing the answer."""
    cleaned = "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)
    return cleaned[:limit]


def bearer_challenge(
    *, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{printable(description)}"')
    if scope:
        parts.append(f'scope="{printable(scope)}"')
    return "Bearer " + ", ".join(parts)


class AuthenticationRequired(ProblemError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str = "This request needs a bearer access token.") -> None:
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        super().__init__(detail, headers={"WWW-Authenticate": bearer_challenge()})


class InvalidToken(ProblemError):
    status, code, title = 401, "invalid-token", "Invalid access token"

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        challenge = bearer_challenge(error=error, description=detail)
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InsufficientScope(ProblemError):
    status, code, title = 403, "insufficient-scope", "Insufficient scope"

    def __init__(self, missing: list[str]) -> None:
        scope = " ".join(missing)
        detail = f"The access token lacks the scope(s) this request needs: {scope}."
        challenge = bearer_challenge(error="insufficient_scope", description=detail, scope=scope)
        super().__init__(detail, headers={"WWW-Authenticate": challenge})
