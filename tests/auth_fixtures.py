"""Auth fixtures: real clients created by the service, real tokens fetched over OAuth2.

Registered from tests/conftest.py (`pytest_plugins`). In a test:

    def test_upload(client: TestClient, writer_token: Callable[..., dict[str, str]]) -> None:
        headers = writer_token("cisa")          # publisher created if missing
        client.post("/v1/datasets", json=..., headers=headers)

Tokens are fetched at `/oauth/token` by Authlib's httpx `OAuth2Client` (client credentials),
through the TestClient's transport: the same request an integrator's code would send.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine

from app.auth import service
from app.auth.keys import generate_pem
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.datasets import grants, publishers

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` fork and warns when it falls back to httpx, which is
    # what Starlette's TestClient (and this project) use.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
TEST_ACTOR = "test-suite"
BASE_URL = "https://testserver"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    scopes: list[str]
    publisher: str | None


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA key for the whole session (generating one per test would be slow)."""
    path = tmp_path_factory.mktemp("keys") / "signing-key.pem"
    path.write_bytes(generate_pem())
    os.chmod(path, 0o600)
    return path


def signing_key(settings: Settings) -> RSAKey:
    assert settings.signing_key is not None
    key = RSAKey.import_key(settings.signing_key.read_bytes())
    key.ensure_kid()
    return key


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


def mint(key: RSAKey, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
    """A token signed with `key` exactly as given (for tests that need a bad one)."""
    full_header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
    return jwt.encode(full_header, claims, key, algorithms=[full_header["alg"]])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TokenKit:
    """Creates publishers and clients through `app.auth.service` and fetches their tokens."""

    def __init__(self, client: TestClient, db: Engine) -> None:
        self.client = client
        self.sessionmaker = make_sessionmaker(db)
        # The app's settings: in the suite, a cheap scrypt cost (see `settings` in conftest).
        self.settings: Settings = client.app.state.settings  # type: ignore[attr-defined]

    def ensure_publisher(self, slug: str) -> None:
        with self.sessionmaker.begin() as session:
            if publishers.get_publisher(session, slug) is None:
                publishers.create_publisher(
                    session,
                    slug=slug,
                    name_zh=f"合成测试发布机构 {slug}",
                    name_en=f"Synthetic test publisher {slug}",
                    actor=TEST_ACTOR,
                )

    def credentials(self, *, publisher: str | None, scopes: Sequence[str]) -> Credentials:
        if publisher is not None:
            self.ensure_publisher(publisher)
        with self.sessionmaker.begin() as session:
            issued = service.create_client(
                session,
                publisher=publisher,
                scopes=scopes,
                name="test",
                actor=TEST_ACTOR,
                secret_hash_cost=self.settings.secret_hash_cost,
            )
        return Credentials(issued.client_id, issued.client_secret, issued.scopes, publisher)

    def oauth_client(
        self, credentials: Credentials, method: AuthMethod = "client_secret_basic"
    ) -> Any:
        return OAuth2Client(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            token_endpoint_auth_method=method,
            transport=self.client._transport,
            base_url=BASE_URL,
        )

    def fetch(
        self,
        credentials: Credentials,
        *,
        scope: str | None = None,
        method: AuthMethod = "client_secret_basic",
        path: str = "/oauth/token",
    ) -> dict[str, Any]:
        """The token response (raises Authlib's OAuthError on an error response)."""
        with self.oauth_client(credentials, method) as oauth:
            extra = {"scope": scope} if scope is not None else {}
            token = oauth.fetch_token(BASE_URL + path, grant_type="client_credentials", **extra)
        return dict(token)

    def headers(self, *, publisher: str | None, scopes: Sequence[str]) -> dict[str, str]:
        token = self.fetch(self.credentials(publisher=publisher, scopes=scopes))
        return bearer(token["access_token"])

    def writer(self, publisher_slug: str = "synthetic-pub") -> dict[str, str]:
        return self.headers(publisher=publisher_slug, scopes=["datasets:write", "factors:read"])

    def reviewer(self) -> dict[str, str]:
        return self.headers(publisher=None, scopes=["datasets:review", "factors:read"])

    def admin(self) -> dict[str, str]:
        return self.headers(publisher=None, scopes=["admin", "factors:read"])

    def reader(self, *datasets: str) -> dict[str, str]:
        """A national `factors:read` client's headers, granted each registered
        `publisher/dataset` given (without a grant it reads public datasets only)."""
        credentials = self.credentials(publisher=None, scopes=["factors:read"])
        for dataset in datasets:
            self.grant(credentials.client_id, dataset)
        return bearer(self.fetch(credentials)["access_token"])

    def grant(self, client_id: str, dataset: str) -> None:
        """`efdb grant add --dataset PUBLISHER/DATASET --client CLIENT_ID`, through its service."""
        publisher, slug = dataset.split("/")
        with self.sessionmaker.begin() as session:
            grants.add_grant(
                session, publisher=publisher, dataset=slug, client_id=client_id, actor=TEST_ACTOR
            )


@pytest.fixture
def tokens(client: TestClient, db: Engine) -> TokenKit:
    return TokenKit(client, db)


@pytest.fixture
def writer_token(tokens: TokenKit) -> Callable[..., dict[str, str]]:
    """`writer_token("cisa")`: headers of a `datasets:write` client of publisher cisa."""
    return tokens.writer


@pytest.fixture
def reviewer_token(tokens: TokenKit) -> Callable[[], dict[str, str]]:
    """Headers of a national reviewer (`datasets:review`)."""
    return tokens.reviewer


@pytest.fixture
def admin_token(tokens: TokenKit) -> Callable[[], dict[str, str]]:
    """Headers of a national administrator (`admin`)."""
    return tokens.admin


@pytest.fixture
def reader_token(tokens: TokenKit) -> Callable[..., dict[str, str]]:
    """`reader_token("p/d", ...)`: headers of a `factors:read` client granted those datasets."""
    return tokens.reader
