"""Wire shapes of the token endpoint and the discovery documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    access_token: str = Field(description="RFC 9068 JWT access token, RS256")
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the token expires")
    scope: str = Field(description="Space-separated scopes granted")


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 error object (the token endpoint does not use problem+json)."""

    error: str = Field(
        examples=["invalid_client", "invalid_scope", "invalid_request", "unsupported_grant_type"]
    )
    error_description: str | None = None


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class ServerMetadata(BaseModel):
    """RFC 8414 authorization server metadata (also served as an OpenID-style discovery doc)."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    scopes_supported: list[str]
    response_types_supported: list[str]
    service_documentation: str | None = None
