"""Wire shapes of the token endpoint and the discovery documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    """An access token issued by the client credentials grant (RFC 6749 §5.1)."""

    access_token: str = Field(description="RFC 9068 JWT access token, RS256")
    token_type: str = Field(
        description="How to present the token: `Authorization: Bearer <access_token>`",
        examples=["Bearer"],
    )
    expires_in: int = Field(description="Seconds until the token expires")
    scope: str = Field(description="Space-separated scopes granted")


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 error object (the token endpoint does not use problem+json)."""

    error: str = Field(
        description="RFC 6749 error code",
        examples=["invalid_client", "invalid_scope", "invalid_request", "unsupported_grant_type"],
    )
    error_description: str | None = Field(None, description="What was wrong, for a person")


class Jwks(BaseModel):
    """JSON Web Key Set (RFC 7517): the public keys that verify this service's access tokens
    and its signed releases, snapshot manifests and audit checkpoints."""

    keys: list[dict[str, Any]] = Field(
        description="Public keys; pick the one whose `kid` is in the token's or JWS's header. "
        "The token key: RSA (`kty`, `kid`, `use`: `sig`, `alg`: `RS256`, `n`, `e`). Release "
        "keys: EC P-256 (`alg`: `ES256`, `x`, `y`) with `efdb:purpose`: `release`, "
        "`efdb:status` (`active` or `retired`) and the period they sign, `efdb:not_before` "
        "and, once retired, `efdb:not_after` (ISO 8601)"
    )


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata (also served as an OpenID-style discovery doc)."""

    issuer: str = Field(description="Issuer identifier: the `iss` claim of every token issued")
    token_endpoint: str = Field(description="Absolute URL of the token endpoint")
    jwks_uri: str = Field(description="Absolute URL of the JWKS that verifies the tokens")
    grant_types_supported: list[str] = Field(
        description="OAuth2 grant types accepted: `client_credentials` only"
    )
    token_endpoint_auth_methods_supported: list[str] = Field(
        description="Client authentication methods: `client_secret_basic`, `client_secret_post`"
    )
    scopes_supported: list[str] = Field(
        description="Scopes a client can be granted, e.g. `factors:read`, `datasets:write`"
    )
    response_types_supported: list[str] = Field(
        description="Empty: there is no authorization endpoint, so no response types"
    )
    service_documentation: str | None = Field(
        None, description="URL of the human-readable API documentation"
    )
