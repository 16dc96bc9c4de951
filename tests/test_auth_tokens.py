"""The token service and the resource side, over HTTP: every hole has a test that fails if it opens.

Tokens are fetched by a real OAuth2 client (Authlib's httpx `OAuth2Client`, see auth_fixtures);
bad tokens are minted by hand, as an attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from authlib.oauth2.rfc7523 import JWTBearerTokenValidator as RFC7523Validator
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth import service
from app.auth import tokens as tokens_module
from app.auth.caching import privatize
from app.auth.dependencies import AdminDep, PrincipalDep, ReviewerDep, WriterDep, require_scopes
from app.auth.hashing import generate_client_id, generate_secret, hash_secret, verify_secret
from app.auth.keys import SigningKeyError, SigningKeys, generate_pem
from app.auth.models import Client
from app.auth.scopes import Scope
from app.auth.validator import BearerValidator
from app.core.audit import verify_chain
from app.core.config import Settings, TrustedIssuer
from app.core.models import AuditEvent
from app.core.principal import Principal
from app.datasets import publishers
from app.datasets.models import Publisher
from app.main import create_app
from tests.auth_fixtures import (
    Credentials,
    TokenKit,
    b64url,
    bearer,
    decode_unverified,
    mint,
    signing_key,
)
from tests.factories import create_dataset_with_factors, factor_fields

TOKEN_URL = "/oauth/token"
PROBLEM = "application/problem+json"
# Checks decided on the token or the request alone (claims, signature, headers, form fields)
# after a client lookup that the other tests here make on both backends: run on the first.
DIALECT_NEUTRAL = pytest.mark.dialect_neutral


# --- a probe router: one route per dependency alias, independent of other domains' routes ---

probe = APIRouter(prefix="/_probe")


@probe.get("/any")
def _any(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "client_id": principal.client_id,
        "publisher": principal.publisher,
        "scopes": sorted(principal.scopes),
    }


@probe.get("/write")
def _write(principal: WriterDep) -> dict[str, Any]:
    return {"publisher": principal.publisher}


@probe.get("/review")
def _review(principal: ReviewerDep) -> dict[str, Any]:
    return {"client_id": principal.client_id}


@probe.get("/admin")
def _admin(principal: AdminDep) -> dict[str, Any]:
    return {"client_id": principal.client_id}


@probe.get("/review-and-admin")
def _both(
    principal: Annotated[Principal, require_scopes(Scope.DATASETS_REVIEW, Scope.ADMIN)],
) -> dict[str, Any]:
    return {"client_id": principal.client_id}


@pytest.fixture
def app(db: Engine, settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    application.include_router(probe)
    yield application
    application.state.engine.dispose()


def token_post(
    client: TestClient,
    data: dict[str, str],
    *,
    auth: tuple[str, str] | None = None,
    path: str = TOKEN_URL,
) -> httpx.Response:
    response: httpx.Response = client.post(path, data=data, auth=auth)
    return response


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    return body


def assert_invalid_token(response: httpx.Response, fragment: str = "") -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="efdb"')
    assert 'error="invalid_token"' in challenge
    body: dict[str, Any] = response.json()
    assert body["status"] == 401
    assert fragment in body["detail"]
    return body


@pytest.fixture
def writer(tokens: TokenKit) -> Credentials:
    return tokens.credentials(publisher="cisa", scopes=["datasets:write", "factors:read"])


@pytest.fixture
def key(settings: Settings) -> RSAKey:
    return signing_key(settings)


def claims_for(settings: Settings, credentials: Credentials, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": credentials.client_id,
        "aud": settings.audience,
        "exp": now + 300,
        "iat": now,
        "jti": "test-" + generate_secret()[:8],
        "client_id": credentials.client_id,
        "scope": " ".join(credentials.scopes),
        "publisher": credentials.publisher,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not ...}


# --- the token endpoint ---


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_with_basic_and_post(
    client: TestClient, tokens: TokenKit, writer: Credentials, settings: Settings, method: Any
) -> None:
    token = tokens.fetch(writer, method=method)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == settings.token_ttl_seconds
    assert token["scope"] == "datasets:write factors:read"
    header, claims = decode_unverified(token["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    assert claims["iss"] == settings.issuer
    assert claims["sub"] == claims["client_id"] == writer.client_id
    assert claims["publisher"] == "cisa"
    assert claims["jti"]
    assert {"exp", "iat"} <= claims.keys()
    response = client.get("/_probe/write", headers=bearer(token["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"publisher": "cisa"}


def test_token_response_is_not_cacheable(client: TestClient, writer: Credentials) -> None:
    response = token_post(
        client, {"grant_type": "client_credentials"}, auth=(writer.client_id, writer.client_secret)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_audience_is_this_service_not_the_client_id(
    client: TestClient, tokens: TokenKit, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    """Authlib trap: JWTBearerTokenGenerator.get_audiences defaults to the client id."""

    class _Client:
        def get_client_id(self) -> str:
            return writer.client_id

    default_audience = JWTBearerTokenGenerator(issuer=settings.issuer).get_audiences(
        _Client(), None, "datasets:write"
    )
    assert default_audience == writer.client_id  # the trap is still there upstream
    token = tokens.fetch(writer)
    assert decode_unverified(token["access_token"])[1]["aud"] == settings.audience
    # And a token built with Authlib's default audience is refused here.
    forged = mint(key, claims_for(settings, writer, aud=writer.client_id))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(forged)), "not meant for")


def test_lifetime_is_configured_not_authlibs_ten_days(
    tokens: TokenKit, writer: Credentials, settings: Settings
) -> None:
    assert JWTBearerTokenGenerator.GRANT_TYPES_EXPIRES_IN["client_credentials"] == 864000
    claims = decode_unverified(tokens.fetch(writer)["access_token"])[1]
    assert claims["exp"] - claims["iat"] == settings.token_ttl_seconds == 900


def test_requested_scope_narrows_the_token(
    client: TestClient, tokens: TokenKit, writer: Credentials
) -> None:
    token = tokens.fetch(writer, scope="factors:read")
    assert token["scope"] == "factors:read"
    assert decode_unverified(token["access_token"])[1]["scope"] == "factors:read"
    response = client.get("/_probe/write", headers=bearer(token["access_token"]))
    assert response.status_code == 403


@pytest.mark.parametrize("scope", ["admin", "datasets:write admin", "datasets:review"])
def test_scope_beyond_the_client_is_invalid_scope(
    client: TestClient, writer: Credentials, scope: str
) -> None:
    response = token_post(
        client,
        {"grant_type": "client_credentials", "scope": scope},
        auth=(writer.client_id, writer.client_secret),
    )
    assert_oauth_error(response, 400, "invalid_scope")


def test_unknown_scope_is_invalid_scope(client: TestClient, writer: Credentials) -> None:
    response = token_post(
        client,
        {"grant_type": "client_credentials", "scope": "factors:write"},
        auth=(writer.client_id, writer.client_secret),
    )
    assert (
        "factors:write" in assert_oauth_error(response, 400, "invalid_scope")["error_description"]
    )


@DIALECT_NEUTRAL
@pytest.mark.parametrize("scope", ['factors:read "x"', "因子:读", "a\\b", "x" * 5000])
def test_odd_scope_text_is_invalid_scope_not_a_crash(
    client: TestClient, writer: Credentials, scope: str
) -> None:
    response = token_post(
        client,
        {"grant_type": "client_credentials", "scope": scope},
        auth=(writer.client_id, writer.client_secret),
    )
    assert_oauth_error(response, 400, "invalid_scope")


def test_wrong_secret_and_unknown_client_look_the_same(
    client: TestClient, writer: Credentials
) -> None:
    wrong_secret = token_post(
        client, {"grant_type": "client_credentials"}, auth=(writer.client_id, "not-the-secret")
    )
    unknown = token_post(
        client, {"grant_type": "client_credentials"}, auth=(generate_client_id(), "whatever")
    )
    wrong_post = token_post(
        client,
        {"grant_type": "client_credentials", "client_id": writer.client_id, "client_secret": "x"},
    )
    unknown_post = token_post(
        client,
        {"grant_type": "client_credentials", "client_id": "efdb_nobody", "client_secret": "x"},
    )
    bodies = [
        assert_oauth_error(r, 401, "invalid_client")
        for r in (wrong_secret, unknown, wrong_post, unknown_post)
    ]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["error_description"] == "Client authentication failed."
    assert wrong_secret.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong_secret.headers["www-authenticate"].startswith("Basic ")


def test_no_credentials_is_invalid_client(client: TestClient) -> None:
    assert_oauth_error(
        token_post(client, {"grant_type": "client_credentials"}), 401, "invalid_client"
    )


def test_revoked_client_cannot_get_a_token_and_its_tokens_stop(
    client: TestClient, tokens: TokenKit, writer: Credentials, session: Session
) -> None:
    token = tokens.fetch(writer)["access_token"]
    assert client.get("/_probe/write", headers=bearer(token)).status_code == 200
    service.revoke_client(session, client_id=writer.client_id, actor="test")
    session.commit()
    response = token_post(
        client, {"grant_type": "client_credentials"}, auth=(writer.client_id, writer.client_secret)
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.json()["error_description"] == "Client authentication failed."
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "revoked")
    # Reading with it is refused too, not downgraded to anonymous.
    assert_invalid_token(client.get("/v1/datasets", headers=bearer(token)), "revoked")


def test_suspended_publishers_clients_are_refused(
    client: TestClient, tokens: TokenKit, writer: Credentials, session: Session
) -> None:
    token = tokens.fetch(writer)["access_token"]
    publisher = publishers.get_publisher(session, "cisa")
    assert publisher is not None
    publisher.status = "suspended"
    session.commit()
    response = token_post(
        client, {"grant_type": "client_credentials"}, auth=(writer.client_id, writer.client_secret)
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "suspended")


@DIALECT_NEUTRAL
def test_one_authentication_method_per_request(client: TestClient, writer: Credentials) -> None:
    response = token_post(
        client,
        {
            "grant_type": "client_credentials",
            "client_id": writer.client_id,
            "client_secret": writer.client_secret,
        },
        auth=(writer.client_id, writer.client_secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


@DIALECT_NEUTRAL
def test_repeated_parameter_is_invalid_request(client: TestClient, writer: Credentials) -> None:
    response = client.post(
        TOKEN_URL,
        content="grant_type=client_credentials&scope=factors:read&scope=admin",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(writer.client_id, writer.client_secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


@DIALECT_NEUTRAL
def test_json_body_is_invalid_request(client: TestClient, writer: Credentials) -> None:
    response = client.post(
        TOKEN_URL,
        json={"grant_type": "client_credentials"},
        auth=(writer.client_id, writer.client_secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


@DIALECT_NEUTRAL
def test_other_grant_types_are_unsupported(client: TestClient, writer: Credentials) -> None:
    for grant in ("password", "authorization_code", "refresh_token", ""):
        response = token_post(
            client, {"grant_type": grant}, auth=(writer.client_id, writer.client_secret)
        )
        assert_oauth_error(response, 400, "unsupported_grant_type")


def test_credentials_in_the_query_string_are_ignored(
    client: TestClient, writer: Credentials
) -> None:
    response = client.post(
        f"{TOKEN_URL}?client_id={writer.client_id}&client_secret={writer.client_secret}",
        data={"grant_type": "client_credentials"},
    )
    assert_oauth_error(response, 401, "invalid_client")


@DIALECT_NEUTRAL
def test_plain_http_issuer_off_loopback_is_refused(
    db: Engine, settings: Settings, tokens: TokenKit, writer: Credentials
) -> None:
    """Authlib's transport check runs on the public (issuer) URL: secrets only over TLS."""
    insecure = settings.model_copy(update={"issuer": "http://efdb.example.org"})
    application = create_app(insecure)
    try:
        with TestClient(application) as other:
            response = token_post(
                other,
                {"grant_type": "client_credentials"},
                auth=(writer.client_id, writer.client_secret),
            )
    finally:
        application.state.engine.dispose()
    assert_oauth_error(response, 400, "insecure_transport")


@DIALECT_NEUTRAL
def test_pact_token_path_and_openid_configuration(
    client: TestClient, tokens: TokenKit, writer: Credentials, settings: Settings
) -> None:
    discovery = client.get("/.well-known/openid-configuration")
    assert discovery.status_code == 200
    document = discovery.json()
    assert document["token_endpoint"] == f"{settings.issuer}/oauth/token"
    assert document["jwks_uri"] == f"{settings.issuer}/.well-known/jwks.json"
    # PACT clients post to /auth/token with HTTP Basic.
    token = tokens.fetch(writer, path="/auth/token")
    assert client.get("/_probe/write", headers=bearer(token["access_token"])).status_code == 200
    response = token_post(
        client,
        {"grant_type": "client_credentials"},
        auth=(writer.client_id, "wrong"),
        path="/auth/token",
    )
    assert_oauth_error(response, 401, "invalid_client")


@DIALECT_NEUTRAL
def test_authorization_server_metadata(client: TestClient, settings: Settings) -> None:
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    document = response.json()
    assert document == client.get("/.well-known/openid-configuration").json()
    assert document["issuer"] == settings.issuer
    assert document["token_endpoint"] == f"{settings.issuer}/oauth/token"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert sorted(document["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert set(document["scopes_supported"]) == {s.value for s in Scope}
    assert document["response_types_supported"] == []
    # Authlib's RFC 8414 model agrees with every field it knows, except that it wants a
    # non-empty response_types_supported, which a client-credentials-only server cannot list.
    metadata = AuthorizationServerMetadata(document)
    for name in metadata.REGISTRY_KEYS:
        if name != "response_types_supported":
            getattr(metadata, f"validate_{name}")()


@DIALECT_NEUTRAL
def test_jwks_verifies_a_token_with_plain_cryptography(
    client: TestClient, tokens: TokenKit, writer: Credentials
) -> None:
    """Independently of joserfc: rebuild the RSA key from the JWKS and check the signature."""
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (jwk,) = response.json()["keys"]
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()  # public only

    def number(field: str) -> int:
        raw = jwk[field] + "=" * (-len(jwk[field]) % 4)
        return int.from_bytes(base64.urlsafe_b64decode(raw), "big")

    public = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    token = tokens.fetch(writer)["access_token"]
    header_b64, payload_b64, signature_b64 = token.split(".")
    assert decode_unverified(token)[0]["kid"] == jwk["kid"]
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    public.verify(
        signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


# --- the resource side: each refusal is a test ---


@DIALECT_NEUTRAL
def test_expired_token_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    now = int(time.time())
    token = mint(key, claims_for(settings, writer, iat=now - 3600, exp=now - 120))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "expired")


@DIALECT_NEUTRAL
def test_small_clock_skew_is_tolerated(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    now = int(time.time())
    token = mint(key, claims_for(settings, writer, iat=now + 5, nbf=now + 5, exp=now - 5 + 600))
    assert client.get("/_probe/write", headers=bearer(token)).status_code == 200


@DIALECT_NEUTRAL
def test_not_yet_valid_token_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    now = int(time.time())
    token = mint(key, claims_for(settings, writer, nbf=now + 600, exp=now + 1200))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "not valid yet")


@DIALECT_NEUTRAL
def test_token_issued_in_the_future_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    now = int(time.time())
    token = mint(key, claims_for(settings, writer, iat=now + 600, exp=now + 1200))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)))


@DIALECT_NEUTRAL
@pytest.mark.parametrize("audience", ["other-service", ["other", "services"], ""])
def test_wrong_audience_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey, audience: Any
) -> None:
    token = mint(key, claims_for(settings, writer, aud=audience))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)))


@DIALECT_NEUTRAL
def test_audience_list_including_this_service_is_accepted(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    token = mint(key, claims_for(settings, writer, aud=["other", settings.audience]))
    assert client.get("/_probe/write", headers=bearer(token)).status_code == 200


@DIALECT_NEUTRAL
def test_missing_audience_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    """RFC 7523's Authlib validator never checks `aud`; ours requires it."""
    token = mint(key, claims_for(settings, writer, aud=...))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "aud")


@DIALECT_NEUTRAL
def test_rfc7523_validator_is_not_the_one_in_use(app: FastAPI) -> None:
    validator = app.state.auth.protector.get_token_validator("bearer")
    assert isinstance(validator, BearerValidator)
    assert not isinstance(validator, RFC7523Validator)


@DIALECT_NEUTRAL
def test_wrong_issuer_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    token = mint(key, claims_for(settings, writer, iss="https://evil.example"))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "issuer")


@DIALECT_NEUTRAL
@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "client_id"])
def test_missing_required_claim_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey, claim: str
) -> None:
    token = mint(key, claims_for(settings, writer, **{claim: ...}))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), claim)


@DIALECT_NEUTRAL
def test_alg_none_is_refused(client: TestClient, writer: Credentials, settings: Settings) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    payload = b64url(json.dumps(claims_for(settings, writer)).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        response = client.get("/_probe/write", headers=bearer(token))
        assert_invalid_token(response)


@DIALECT_NEUTRAL
def test_hs256_signed_with_the_public_key_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    """Algorithm confusion: an attacker HMACs with the published RSA key as the secret."""
    public_pem = key.as_pem(private=False)
    jwk_json = json.dumps(client.get("/.well-known/jwks.json").json()["keys"][0]).encode()
    payload = b64url(json.dumps(claims_for(settings, writer)).encode())
    for secret in (public_pem, public_pem.strip(), jwk_json):
        header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
        response = client.get("/_probe/write", headers=bearer(f"{header}.{payload}.{signature}"))
        assert_invalid_token(response, "HS256")


@DIALECT_NEUTRAL
@pytest.mark.parametrize("alg", ['"x', "日本", "\\", 256, None])
def test_odd_alg_headers_are_401_not_a_crash(
    client: TestClient, writer: Credentials, settings: Settings, alg: Any
) -> None:
    header = b64url(json.dumps({"alg": alg, "typ": "at+jwt"}).encode())
    payload = b64url(json.dumps(claims_for(settings, writer)).encode())
    response = client.get("/_probe/write", headers=bearer(f"{header}.{payload}.c2ln"))
    assert_invalid_token(response)


@DIALECT_NEUTRAL
def test_other_rsa_algorithms_are_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    token = mint(key, claims_for(settings, writer), header={"alg": "PS256"})
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "PS256")


@DIALECT_NEUTRAL
@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt2"])
def test_typ_must_be_at_jwt(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey, typ: str | None
) -> None:
    """Authlib's RFC 9068 claims treat a missing `typ` as fine; RFC 9068 §4 requires it."""
    header: dict[str, Any] = {"alg": "RS256", "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    token = jwt.encode(header, claims_for(settings, writer), key, algorithms=["RS256"])
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "at+jwt")


@DIALECT_NEUTRAL
def test_application_at_jwt_media_type_is_accepted(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    token = mint(key, claims_for(settings, writer), header={"typ": "application/at+jwt"})
    assert client.get("/_probe/write", headers=bearer(token)).status_code == 200


@DIALECT_NEUTRAL
def test_token_signed_by_another_key_is_refused(
    client: TestClient, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    stranger = RSAKey.import_key(generate_pem())
    # Even under our key's kid, the signature does not verify.
    token = mint(stranger, claims_for(settings, writer), header={"kid": key.kid})
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "signature")


@DIALECT_NEUTRAL
def test_tampered_claims_are_refused(
    client: TestClient, tokens: TokenKit, settings: Settings
) -> None:
    reader = tokens.credentials(publisher="cisa", scopes=["factors:read", "datasets:write"])
    token = tokens.fetch(reader, scope="factors:read")["access_token"]
    header, _, signature = token.split(".")
    claims = decode_unverified(token)[1]
    claims["scope"] = "factors:read datasets:write"
    forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_invalid_token(client.get("/_probe/write", headers=bearer(forged)), "signature")


@pytest.mark.parametrize(
    "value", ["Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer a.b.c.d.e"]
)
@DIALECT_NEUTRAL
def test_garbage_tokens_are_401_not_500(client: TestClient, value: str) -> None:
    response = client.get("/_probe/any", headers={"Authorization": value})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer ")


@DIALECT_NEUTRAL
def test_basic_scheme_on_a_resource_is_refused(client: TestClient, writer: Credentials) -> None:
    response = client.get("/_probe/any", auth=(writer.client_id, writer.client_secret))
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


@DIALECT_NEUTRAL
def test_missing_token_is_401_with_a_bare_challenge(client: TestClient) -> None:
    response = client.get("/_probe/write")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"] == 'Bearer realm="efdb"'
    assert response.json()["type"].endswith("/unauthorized")


def test_valid_token_without_the_scope_is_403(
    client: TestClient, reader_token: Any, writer_token: Any, reviewer_token: Any
) -> None:
    reader = reader_token()
    for path, scope in (
        ("/_probe/write", "datasets:write"),
        ("/_probe/review", "datasets:review"),
        ("/_probe/admin", "admin"),
    ):
        response = client.get(path, headers=reader)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert f'scope="{scope}"' in challenge
        assert response.json()["type"].endswith("/insufficient-scope")
    assert client.get("/_probe/write", headers=writer_token("cisa")).status_code == 200
    assert client.get("/_probe/review", headers=reviewer_token()).status_code == 200


def test_all_required_scopes_are_needed_not_any(
    client: TestClient, tokens: TokenKit, admin_token: Any, reviewer_token: Any
) -> None:
    """Authlib's scope_insufficient treats a list as alternatives; a route's scopes are all."""
    assert not BearerValidator.scope_insufficient("admin", ["datasets:review", "admin"])
    assert client.get("/_probe/review-and-admin", headers=admin_token()).status_code == 403
    assert client.get("/_probe/review-and-admin", headers=reviewer_token()).status_code == 403
    both = tokens.headers(publisher=None, scopes=["datasets:review", "admin"])
    assert client.get("/_probe/review-and-admin", headers=both).status_code == 200


def test_token_scopes_are_capped_by_the_clients_current_scopes(
    client: TestClient, tokens: TokenKit, writer: Credentials, session: Session
) -> None:
    token = tokens.fetch(writer)["access_token"]
    row = session.execute(select(Client).where(Client.client_id == writer.client_id)).scalar_one()
    row.scopes = ["factors:read"]
    session.commit()
    assert client.get("/_probe/write", headers=bearer(token)).status_code == 403


def test_forged_publisher_claim_is_refused(
    client: TestClient, tokens: TokenKit, writer: Credentials, settings: Settings, key: RSAKey
) -> None:
    tokens.ensure_publisher("other")
    token = mint(key, claims_for(settings, writer, publisher="other"))
    assert_invalid_token(client.get("/_probe/write", headers=bearer(token)), "publisher")


def test_principal_of_a_national_client(client: TestClient, tokens: TokenKit) -> None:
    credentials = tokens.credentials(publisher=None, scopes=["admin", "datasets:review"])
    token = tokens.fetch(credentials)["access_token"]
    assert decode_unverified(token)[1]["publisher"] is None
    response = client.get("/_probe/any", headers=bearer(token))
    assert response.json() == {
        "client_id": credentials.client_id,
        "publisher": None,
        "scopes": ["admin", "datasets:review"],
    }


def test_principal_as_viewer() -> None:
    principal = Principal(
        client_id="efdb_x",
        publisher="cisa",
        scopes=frozenset({"factors:read"}),
        granted=frozenset({7}),
    )
    viewer = principal.as_viewer()
    assert (viewer.client_id, viewer.publisher, viewer.granted) == (
        "efdb_x",
        "cisa",
        frozenset({7}),
    )
    # Its own publisher's registered datasets, and another's only where granted.
    assert viewer.may_read(access="registered", publisher="cisa", dataset_id=1)
    assert viewer.may_read(access="registered", publisher="other", dataset_id=7)
    assert not viewer.may_read(access="registered", publisher="other", dataset_id=8)


@DIALECT_NEUTRAL
def test_openapi_shows_the_scopes(app: FastAPI) -> None:
    document = app.openapi()
    scheme = document["components"]["securitySchemes"]["OAuth2"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert set(flow["scopes"]) == {s.value for s in Scope}
    assert document["paths"]["/_probe/write"]["get"]["security"] == [{"OAuth2": ["datasets:write"]}]
    assert document["paths"]["/_probe/review-and-admin"]["get"]["security"] == [
        {"OAuth2": ["datasets:review", "admin"]}
    ]
    token_op = document["paths"]["/oauth/token"]["post"]
    assert "application/x-www-form-urlencoded" in token_op["requestBody"]["content"]
    assert "/auth/token" in document["paths"]
    assert "/.well-known/jwks.json" in document["paths"]


# Mutating methods that need no token, each for a reason.
PUBLIC_WRITES = {
    ("post", "/oauth/token"): "the token endpoint authenticates the client itself",
    ("post", "/auth/token"): "the token endpoint, at PACT's path",
    ("post", "/v1/factors:resolve"): "a read: resolves factors, changes nothing",
    ("post", "/v1/estimate"): "a read: computes an estimate, changes nothing",
    ("post", "/v1/estimate:batch"): "a read: computes estimates, changes nothing",
    ("post", "/v1/citations:verify"): "a read: checks citations, changes nothing",
}


@DIALECT_NEUTRAL
def test_every_mutating_route_needs_a_scoped_token(app: FastAPI) -> None:
    """Walks the live app: a new POST/PUT/PATCH/DELETE without auth fails here."""
    unprotected = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if method not in {"post", "put", "patch", "delete"}:
                continue
            if (method, path) in PUBLIC_WRITES:
                assert "security" not in operation
                continue
            requirements = operation.get("security") or []
            if not any(scopes for requirement in requirements for scopes in requirement.values()):
                unprotected.append(f"{method.upper()} {path}")
    assert unprotected == []
    # Signed checkpoints and the consistency proofs between them are published for anyone
    # to save and check (issue 15); the log itself is not.
    public_audit = {
        "/v1/audit/checkpoints",
        "/v1/audit/checkpoints/latest",
        "/v1/audit/consistency",
    }
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/v1/audit"):
            for operation in operations.values():
                expected = None if path in public_audit else [{"OAuth2": ["admin"]}]
                assert operation.get("security") == expected, path


# --- reading with a token ---


@pytest.fixture
def members_only(session: Session) -> None:
    create_dataset_with_factors(
        session,
        publisher="synth-a",
        dataset="members",
        factors=[factor_fields("M-1")],
        access="registered",
    )
    session.commit()


def test_registered_dataset_needs_factors_read_and_a_grant(
    client: TestClient, members_only: None, reader_token: Any, tokens: TokenKit
) -> None:
    path = "/v1/datasets/synth-a/members"
    assert client.get(path).status_code == 404
    listed = {d["slug"] for d in client.get("/v1/datasets").json()["items"]}
    assert "members" not in listed
    assert client.get(path, headers=reader_token()).status_code == 404  # no grant
    reader = reader_token("synth-a/members")
    response = client.get(path, headers=reader)
    assert response.status_code == 200, response.text
    assert response.json()["access"] == "registered"
    listed = {d["slug"] for d in client.get("/v1/datasets", headers=reader).json()["items"]}
    assert "members" in listed
    # A token without factors:read reads like anyone else, even with a grant.
    writer_only = tokens.headers(publisher="cisa", scopes=["datasets:write"])
    assert client.get(path, headers=writer_only).status_code == 404


def test_answers_to_token_holders_never_go_to_shared_caches(
    client: TestClient, members_only: None, reader_token: Any
) -> None:
    """A CDN must not keep a registered dataset fetched with a token and serve it to all."""
    response = client.get("/v1/datasets/synth-a/members", headers=reader_token("synth-a/members"))
    assert response.status_code == 200
    cache_control = response.headers["cache-control"]
    assert cache_control.startswith("private")
    assert "public" not in cache_control
    assert "Authorization" in response.headers["vary"]
    anonymous = client.get("/v1/datasets")
    assert "public" in anonymous.headers["cache-control"]
    assert "vary" not in anonymous.headers or "Authorization" not in anonymous.headers["vary"]


def test_privatize_keeps_the_other_directives() -> None:
    assert (
        privatize("public, max-age=31536000, immutable") == "private, max-age=31536000, immutable"
    )
    assert privatize("Public,max-age=60") == "private, max-age=60"


def test_invalid_token_on_a_public_read_is_401_not_anonymous(
    client: TestClient, members_only: None
) -> None:
    assert client.get("/v1/datasets").status_code == 200
    assert_invalid_token(client.get("/v1/datasets", headers=bearer("a.b.c")))
    assert_invalid_token(client.get("/v1/factors", headers=bearer("x.y.z")))


# --- keys ---


def test_development_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing-key.pem"
    settings = Settings(environment="development", generated_signing_key=path)
    first = SigningKeys(settings)
    assert not path.exists()  # only on first use
    kid = first.kid
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SigningKeys(settings).kid == kid  # reused, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.pem"]  # no temp files left


def test_production_needs_a_key_and_an_https_issuer(tmp_path: Path, signing_key_file: Path) -> None:
    with pytest.raises(ValidationError, match="EFDB_SIGNING_KEY"):
        Settings(environment="production", issuer="https://efdb.example")
    with pytest.raises(ValidationError, match="EFDB_ISSUER"):
        Settings(environment="production", signing_key=signing_key_file)
    production = Settings(
        environment="production",
        signing_key=signing_key_file,
        issuer="https://efdb.example",
        database_url="sqlite://",
    )
    application = create_app(production)  # the key loads at start-up
    application.state.engine.dispose()
    broken = production.model_copy(update={"signing_key": tmp_path / "missing.pem"})
    with pytest.raises(SigningKeyError, match="cannot read"):
        create_app(broken)


@pytest.mark.filterwarnings("ignore:Key size should be")
def test_unusable_keys_are_refused(tmp_path: Path) -> None:
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for name, content, message in (
        ("ed.pem", ed, "not an RSA private key"),
        ("small.pem", small, "2048"),
        ("public.pem", public, "public key"),
        ("junk.pem", b"not a key", "not an RSA private key"),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(SigningKeyError, match=message):
            _ = SigningKeys(Settings(signing_key=path)).private_key


# --- secrets ---


def test_a_client_secret_never_begins_with_a_dash() -> None:
    """Operators pass it as `--client-secret SECRET`, where a value beginning with `-` reads as
    an option (argparse refuses it); `token_urlsafe` begins one draw in 64 so."""
    assert not any(generate_secret().startswith("-") for _ in range(5000))


def test_secrets_are_random_and_stored_as_salted_scrypt(session: Session, tokens: TokenKit) -> None:
    secret = generate_secret()
    assert len(secret) >= 43
    first, second = hash_secret(secret), hash_secret(secret)
    assert first != second  # per-secret salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_secret(secret, first)
    assert verify_secret(secret, second)
    assert not verify_secret(secret + "x", first)
    assert not verify_secret(secret, None)
    assert not verify_secret(secret, "garbage")
    assert generate_client_id().startswith("efdb_")
    credentials = tokens.credentials(publisher="cisa", scopes=["datasets:write"])
    row = session.execute(
        select(Client).where(Client.client_id == credentials.client_id)
    ).scalar_one()
    assert credentials.client_secret not in row.secret_hash
    assert verify_secret(credentials.client_secret, row.secret_hash)


def test_production_hashes_secrets_at_the_full_scrypt_cost(tmp_path: Path) -> None:
    # The suite hashes its clients' secrets cheaply (Settings.secret_hash_cost); production
    # keeps scrypt N=2**14, r=8, p=1 and refuses a lower cost.
    key = tmp_path / "key.pem"
    key.write_bytes(generate_pem())
    production = {"environment": "production", "signing_key": key, "issuer": "https://efdb.test"}
    assert Settings(**production).secret_hash_cost == 2**14  # type: ignore[arg-type]
    assert Settings().secret_hash_cost == 2**14
    with pytest.raises(ValidationError, match="for tests only"):
        Settings(**production, secret_hash_cost=2**13)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="power of two"):
        Settings(secret_hash_cost=1000)
    assert hash_secret("s").startswith("scrypt$16384$8$1$")
    assert hash_secret("s", cost=16).startswith("scrypt$16$8$1$")


def test_admin_actions_are_audited_in_a_verifying_chain(session: Session, tokens: TokenKit) -> None:
    credentials = tokens.credentials(publisher="cisa", scopes=["datasets:write"])
    service.revoke_client(session, client_id=credentials.client_id, actor="test-admin")
    session.commit()
    events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    actions = [(e.action, e.subject_id) for e in events]
    assert ("publisher.created", "cisa") in actions
    assert ("client.created", credentials.client_id) in actions
    assert ("client.revoked", credentials.client_id) in actions
    for event in events:
        assert credentials.client_secret not in json.dumps(event.payload)
    assert verify_chain(session).ok


def test_client_scopes_follow_the_publisher_rule(session: Session, tokens: TokenKit) -> None:
    tokens.ensure_publisher("cisa")
    for publisher, scopes in (
        ("cisa", ["admin"]),
        ("cisa", ["datasets:review"]),
        (None, ["datasets:write"]),
        ("cisa", ["factors:write"]),
        ("cisa", []),
    ):
        with pytest.raises(service.AdminError):
            service.create_client(session, publisher=publisher, scopes=scopes, actor="t")
    with pytest.raises(service.AdminError, match="no publisher"):
        service.create_client(session, publisher="ghost", scopes=["factors:read"], actor="t")


def test_publisher_validation(session: Session) -> None:
    for slug in ("Bad", "-x", "a_b", "", "x" * 65):
        with pytest.raises(service.AdminError, match="slug"):
            publishers.create_publisher(session, slug=slug, name_zh="名", name_en="n", actor="t")
    with pytest.raises(service.AdminError, match="email"):
        publishers.create_publisher(
            session, slug="ok", name_zh="名", name_en="n", contact_email="nope", actor="t"
        )
    publishers.create_publisher(session, slug="ok", name_zh="名", name_en="n", actor="t")
    with pytest.raises(service.AdminError, match="already exists"):
        publishers.create_publisher(session, slug="ok", name_zh="名", name_en="n", actor="t")
    assert session.execute(select(Publisher.slug)).scalars().all() == ["ok"]


# --- an external issuer, trusted by configuration ---

EXTERNAL = "https://sso.example.gov"


@pytest.fixture
def external_key() -> RSAKey:
    key = RSAKey.import_key(generate_pem())
    key.ensure_kid()
    return key


@pytest.fixture
def external_client(
    db: Engine, settings: Settings, tmp_path: Path, external_key: RSAKey
) -> Iterator[TestClient]:
    jwks = tmp_path / "sso-jwks.json"
    jwks.write_text(json.dumps(KeySet([external_key]).as_dict(private=False)))
    configured = settings.model_copy(
        update={
            "trusted_issuers": Settings.model_validate(
                {"trusted_issuers": [{"issuer": EXTERNAL, "jwks_file": str(jwks)}]}
            ).trusted_issuers
        }
    )
    application = create_app(configured)
    application.include_router(probe)
    with TestClient(application) as test_client:
        yield test_client
    application.state.engine.dispose()


def external_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": EXTERNAL,
        "sub": "researcher-42",
        "aud": "efdb",
        "exp": now + 300,
        "iat": now,
        "scope": "factors:read admin datasets:write",
    }
    claims.update(overrides)
    return claims


def test_external_issuer_tokens_are_accepted_with_capped_scopes(
    external_client: TestClient, external_key: RSAKey
) -> None:
    token = mint(external_key, external_claims())
    response = external_client.get("/_probe/any", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "client_id": f"{EXTERNAL}#researcher-42",
        "publisher": None,
        "scopes": ["factors:read"],  # admin and datasets:write are beyond what it may grant
    }
    assert external_client.get("/_probe/admin", headers=bearer(token)).status_code == 403


def test_external_issuer_checks_are_as_strict(
    external_client: TestClient, external_key: RSAKey, key: RSAKey
) -> None:
    now = int(time.time())
    refused = [
        mint(external_key, external_claims(aud="someone-else")),
        mint(external_key, external_claims(exp=now - 120)),
        mint(external_key, external_claims(), header={"typ": "JWT"}),
        mint(key, external_claims()),  # our key does not speak for the external issuer
        mint(external_key, external_claims(iss="https://sso.example.gov/other")),
    ]
    header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
    payload = b64url(json.dumps(external_claims()).encode())
    secret = external_key.as_pem(private=False)
    signature = b64url(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    refused.append(f"{header}.{payload}.{signature}")
    for token in refused:
        assert_invalid_token(external_client.get("/_probe/any", headers=bearer(token)))


def test_trusted_issuer_configuration_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Settings.model_validate({"trusted_issuers": [{"issuer": EXTERNAL}]})
    with pytest.raises(ValidationError):
        Settings.model_validate(
            {"trusted_issuers": [{"issuer": EXTERNAL, "jwks_file": "x", "algorithms": ["HS256"]}]}
        )
    with pytest.raises(ValidationError):
        Settings.model_validate(
            {
                "trusted_issuers": [
                    {"issuer": EXTERNAL, "jwks_file": "x", "scopes": ["datasets:write"]}
                ]
            }
        )
    with pytest.raises(ValidationError, match="https"):
        Settings.model_validate(
            {"trusted_issuers": [{"issuer": EXTERNAL, "jwks_url": "http://sso.example.gov/k"}]}
        )
    with pytest.raises(ValidationError, match="own issuer"):
        Settings.model_validate(
            {"trusted_issuers": [{"issuer": "http://127.0.0.1:8000", "jwks_file": "x"}]}
        )


def test_remote_jwks_is_fetched_once_and_refreshed_for_a_new_kid(
    monkeypatch: pytest.MonkeyPatch, external_key: RSAKey
) -> None:
    served = {"keys": [external_key.as_dict(private=False)]}
    calls: list[str] = []

    def fake_get(url: str, **_: Any) -> httpx.Response:
        calls.append(url)
        return httpx.Response(200, json=served, request=httpx.Request("GET", url))

    clock = [1000.0]
    monkeypatch.setattr("app.auth.tokens.httpx.get", fake_get)
    remote = tokens_module.RemoteKeySet(
        TrustedIssuer(issuer=EXTERNAL, jwks_url="https://sso.example.gov/jwks"),
        clock=lambda: clock[0],
    )
    assert remote.get(external_key.kid).get_by_kid(external_key.kid)
    assert remote.get(external_key.kid) is not None
    assert len(calls) == 1  # cached
    remote.get("rotated-kid")
    assert len(calls) == 1  # an unknown kid refetches at most every 30 s
    clock[0] += 31
    remote.get("rotated-kid")
    assert len(calls) == 2

    def failing_get(url: str, **_: Any) -> httpx.Response:
        raise httpx.ConnectError("down")

    monkeypatch.setattr("app.auth.tokens.httpx.get", failing_get)
    clock[0] += 601
    assert remote.get(external_key.kid).get_by_kid(external_key.kid)  # keeps the keys it has
