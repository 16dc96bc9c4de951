"""Resource-side auth failures as problem+json, with the RFC 6750 `WWW-Authenticate` challenge.

(The token endpoint answers in OAuth's own error format instead; see `app.auth.server`.)
"""

from __future__ import annotations

from app.core.errors import ProblemError
from app.core.problem_text import Message

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

    def __init__(self, detail: str | None = None) -> None:
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        super().__init__(
            detail or Message("auth.token_required"),
            headers={"WWW-Authenticate": bearer_challenge()},
        )


# The token checks' own reasons, in both languages; any other reason (a library's) is given in
# English inside a Chinese sentence.
_KNOWN_REASONS = {
    "The Authorization header must be `Bearer <access token>`.": "auth.bearer_header",
    "The token's client is revoked.": "auth.client_revoked",
    "The client's publisher is suspended.": "auth.publisher_suspended",
    "The token's publisher is wrong.": "auth.wrong_publisher",
}


def token_reason(description: str) -> Message:
    key = _KNOWN_REASONS.get(description)
    return Message(key) if key else Message("auth.invalid_token", reason=description)


class InvalidToken(ProblemError):
    status, code, title = 401, "invalid-token", "Invalid access token"

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        # The challenge (ASCII only, RFC 6750 §3) stays English; the body is translated.
        challenge = bearer_challenge(error=error, description=detail)
        super().__init__(token_reason(detail), headers={"WWW-Authenticate": challenge})


class InsufficientScope(ProblemError):
    status, code, title = 403, "insufficient-scope", "Insufficient scope"

    def __init__(self, missing: list[str]) -> None:
        scope = " ".join(missing)
        detail = Message("auth.insufficient_scope", scope=scope)
        challenge = bearer_challenge(error="insufficient_scope", description=detail, scope=scope)
        super().__init__(detail, headers={"WWW-Authenticate": challenge})
