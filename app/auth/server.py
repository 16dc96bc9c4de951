"""The token endpoint: Authlib's framework-neutral AuthorizationServer, wired to FastAPI here.

Authlib ships Flask and Django integrations only, so this module supplies what an integration
does: an `OAuth2Request` built from the parsed form, `query_client` over our `client` table,
`handle_response` returning a Starlette response. The server is built per request around the
request's database session (construction is a few dict assignments).

Authlib defaults handled here, each with a test:
- `JWTBearerTokenGenerator.get_audiences` returns the *client id*; the resource side expects
  this service (`EFDB_AUDIENCE`), so the audience is set explicitly.
- The generator's default lifetime for client credentials is ten days; ours is
  `EFDB_TOKEN_TTL_SECONDS` (15 minutes by default).
- Authlib answers "The client does not exist" for an unknown client id and something else for
  a wrong secret; we always answer the same `invalid_client`, after the same scrypt work.

The token endpoint speaks OAuth's error format (RFC 6749 §5.2: `{"error": ...}`), not
problem+json: that is what OAuth client libraries parse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.auth.errors import printable
from app.auth.hashing import verify_secret
from app.auth.keys import ALGORITHM, SigningKeys
from app.auth.scopes import Scope, format_scopes, parse_scopes
from app.auth.service import ClientState, client_state
from app.core.config import Settings

GRANT_TYPES = ["client_credentials"]
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CLIENT_AUTH_FAILED = "Client authentication failed."
# Parameters that RFC 6749 §3.2 forbids repeating.
_SINGLE_VALUED = ("grant_type", "scope", "client_id", "client_secret")

log = logging.getLogger("efdb.auth")


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: Mapping[str, Sequence[str]]) -> None:
        self._lists = {key: list(values) for key, values in form.items()}
        self._data = {key: values[0] for key, values in self._lists.items() if values}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._lists


class TokenRequest(OAuth2Request):  # type: ignore[misc]
    """A token request. Parameters come from the form body only, never the query string."""

    def __init__(
        self, *, uri: str, headers: Mapping[str, str], form: Mapping[str, Sequence[str]]
    ) -> None:
        super().__init__(method="POST", uri=uri, headers=headers)
        self.payload = FormPayload(form)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data

    @property
    def args(self) -> dict[str, str]:
        return {}


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A row of `client` as Authlib sees it; an unknown id is a client that never authenticates."""

    def __init__(self, client_id: str, state: ClientState | None) -> None:
        self.client_id = client_id
        self.state = state

    @property
    def publisher(self) -> str | None:
        return self.state.publisher if self.state else None

    @property
    def scopes(self) -> frozenset[str]:
        return self.state.scopes if self.state else frozenset()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # The grant has already refused a scope beyond the client's; none asked means all.
        requested = parse_scopes(scope)
        return format_scopes(set(requested or self.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        # The hash is checked even for unknown or inactive clients: same answer, same time.
        matches = verify_secret(client_secret, self.state.secret_hash if self.state else None)
        return matches and self.state is not None and self.state.active

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token_endpoint_client(self) -> OAuthClient:
        request: TokenRequest = self.request
        for name in _SINGLE_VALUED:
            if len(request.payload.datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"The parameter {name} is repeated.")
        basic = request.headers.get("Authorization", "").lower().startswith("basic ")
        if basic and "client_secret" in request.payload.data:
            raise InvalidRequestError("Use one client authentication method per request.")
        try:
            client: OAuthClient = super().authenticate_token_endpoint_client()
        except InvalidClientError as exc:
            # One answer for unknown client, wrong secret, revoked client, suspended publisher.
            raise InvalidClientError(status_code=401, description=CLIENT_AUTH_FAILED) from exc
        return client

    def validate_requested_scope(self) -> None:
        requested = parse_scopes(self.request.payload.scope)
        unknown = requested - {scope.value for scope in Scope}
        if unknown:
            raise InvalidScopeError(f"Unknown scope(s): {printable(format_scopes(unknown))}.")
        client: OAuthClient = self.request.client
        beyond = requested - client.scopes
        if beyond:
            raise InvalidScopeError(f"The client may not request: {format_scopes(beyond)}.")


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 JWT access tokens, RS256, `aud` = this service, lifetime from settings."""

    def __init__(self, *, settings: Settings, keys: SigningKeys) -> None:
        super().__init__(
            issuer=settings.issuer, alg=ALGORITHM, expires_generator=settings.token_ttl_seconds
        )
        self.audience = settings.audience
        self.keys = keys

    def get_jwks(self) -> Any:
        return self.keys.signing_set()

    def get_audiences(self, client: OAuthClient, user: object, scope: str) -> str:
        # Authlib's default is the client id, which no resource server should accept.
        return self.audience

    def get_extra_claims(
        self, client: OAuthClient, grant_type: str, user: object, scope: str
    ) -> dict[str, Any]:
        return {"publisher": client.publisher}


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, *, session: Session, generator: AccessTokenGenerator) -> None:
        super().__init__(scopes_supported=[scope.value for scope in Scope])
        self.session = session
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", generator)

    def query_client(self, client_id: str) -> OAuthClient:
        return OAuthClient(client_id, client_state(self.session, client_id))

    def save_token(self, token: dict[str, Any], request: TokenRequest) -> None:
        # Access tokens are self-contained JWTs; nothing is stored. Revocation is per client.
        log.info("issued token to %s scope=%r", request.client.client_id, token.get("scope"))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> JSONResponse:
        # `body` is the token or an RFC 6749 §5.2 error object; headers carry no-store.
        return JSONResponse(body, status_code=status, headers=dict(headers))


def oauth_error_response(error: Any) -> JSONResponse:
    """An Authlib OAuth2Error raised outside the server (e.g. while building the request)."""
    status, body, headers = error()
    return JSONResponse(body, status_code=status, headers=dict(headers))
