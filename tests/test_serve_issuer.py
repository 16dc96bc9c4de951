"""`efdb serve --host --port` is the issuer when `EFDB_ISSUER` is unset: discovery metadata,
token `iss` and absolute URLs point at the address being served. Production still requires
`EFDB_ISSUER` explicitly."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx
import pytest

from app.cli import issuer_for
from tests.conftest import ServerProcess, run_efdb_in_process


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.mark.slow
def test_discovery_on_a_non_default_port_points_at_that_port(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, args=("--no-worker",))
    assert server.port != 8000
    base = server.start()
    try:
        metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == base
        assert metadata["token_endpoint"] == f"{base}/oauth/token"
        assert metadata["jwks_uri"] == f"{base}/.well-known/jwks.json"
        openid = httpx.get(f"{base}/.well-known/openid-configuration").json()
        assert openid["token_endpoint"] == f"{base}/oauth/token"

        env = {k: v for k, v in os.environ.items() if not k.startswith("EFDB_")}
        created = run_efdb_in_process(
            "client", "create", "--admin", "--scope", "factors:read", env=env, cwd=tmp_path
        )
        assert created.returncode == 0, created.stderr
        client = json.loads(created.stdout)
        # A client that follows the metadata reaches the token endpoint and gets a token
        # whose issuer is this server, which the server then accepts.
        answer = httpx.post(
            metadata["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        assert _claims(token)["iss"] == base
        factors = httpx.get(
            f"{base}/v1/factors",
            params={"region": "CN"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert factors.status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_an_explicit_issuer_is_kept(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, env={"EFDB_ISSUER": "http://127.0.0.1:8123"})
    base = server.start()
    try:
        metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == "http://127.0.0.1:8123"
        assert metadata["token_endpoint"] == "http://127.0.0.1:8123/oauth/token"
    finally:
        server.stop()


def test_a_wildcard_or_ipv6_address_gives_a_callable_issuer() -> None:
    assert issuer_for("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert issuer_for("::", 8110) == "http://127.0.0.1:8110"
    assert issuer_for("::1", 8110) == "http://[::1]:8110"
    assert issuer_for("efdb.internal", 8110) == "http://efdb.internal:8110"


def test_production_still_requires_the_issuer(tmp_path: Path, signing_key_file: Path) -> None:
    env = {
        "EFDB_ENVIRONMENT": "production",
        "EFDB_SIGNING_KEY": str(signing_key_file),
        "EFDB_DATA_DIR": str(tmp_path / "data"),
    }
    result = run_efdb_in_process("serve", "--port", "8110", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "EFDB_ISSUER must be the service's public https:// URL" in result.stderr
    assert not (tmp_path / "data").exists()
