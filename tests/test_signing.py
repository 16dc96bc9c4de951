"""Signed releases: the release key in the JWKS, release statements signed at publish (and, for
releases older than signing, on first request), key rotation, checkpoints. Synthetic data
only (tests/test_publishing.py's synthetic dataset), except the cited seed where named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.signing.jws import SignatureProblem, verify
from app.signing.keys import generate_pem, write_key
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.test_publishing import VERSIONS, create_dataset, publish, upload
from tests.upload_files import csv_bytes, synthetic_row

JWS_TYPE = "application/jose"


def cli(settings: Settings, cwd: Path, *args: str) -> Any:
    env = {
        "EFDB_DATABASE_URL": settings.database_url,
        "EFDB_ENVIRONMENT": "test",
        "EFDB_RELEASE_SIGNING_KEY": str(settings.release_signing_key),
        "EFDB_EXPORT_DIR": str(settings.export_dir),
    }
    return run_efdb_in_process(*args, env=env, cwd=cwd)


def released(client: TestClient, tokens: TokenKit, version: str = "1.0.0", rows: int = 3) -> None:
    """Upload, submit and publish a synthetic version through the API."""
    writer = tokens.writer("synthetic-pub")
    if client.get("/v1/datasets/synthetic-pub/steel-products").status_code == 404:
        create_dataset(client, writer)
    offset = 100 * int(version.split(".")[1])
    data = [synthetic_row(offset + i) for i in range(rows)]
    assert upload(client, writer, csv_bytes(data), version=version).status_code == 201
    assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
    done = publish(client, tokens.reviewer(), version)
    assert done.status_code == 200, done.text


def jwks(client: TestClient) -> dict[str, Any]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return dict(response.json())


def release_keys(client: TestClient) -> list[dict[str, Any]]:
    return [k for k in jwks(client)["keys"] if k.get("efdb:purpose") == "release"]


def test_publish_signs_a_release_statement_served_as_jose(
    client: TestClient, tokens: TokenKit
) -> None:
    released(client, tokens)
    response = client.get(f"{VERSIONS}/1.0.0/release.jws")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JWS_TYPE
    [key] = release_keys(client)
    assert key["use"] == "sig"
    assert key["alg"] == "ES256"
    assert key["efdb:status"] == "active"
    assert "efdb:not_after" not in key
    # The token key is still there, and is not a release key.
    assert any(k["kty"] == "RSA" and "efdb:purpose" not in k for k in jwks(client)["keys"])

    checked = verify(response.text, jwks(client))
    statement = checked.json()
    assert checked.kid == key["kid"]
    version = client.get(f"{VERSIONS}/1.0.0").json()
    assert statement["publisher"] == "synthetic-pub"
    assert statement["dataset"] == "steel-products"
    assert statement["version"] == "1.0.0"
    assert statement["content_sha256"] == version["content_sha256"]
    assert statement["row_count"] == 3
    assert statement["license"] == {
        "id": "CC-BY-4.0",
        "url": "https://creativecommons.org/licenses/by/4.0/",
    }
    assert statement["published_at"] == version["published_at"].replace("Z", "+00:00")
    # The hash of the publish event, which the audit log shows.
    events = client.get("/v1/audit?limit=200", headers=tokens.admin()).json()["items"]
    [published] = [e for e in events if e["action"] == "version.published"]
    assert statement["audit_event_hash"] == published["hash"]
    # Signed once: the same bytes on every request, with a strong ETag.
    again = client.get(f"{VERSIONS}/1.0.0/release.jws")
    assert again.text == response.text
    etag = again.headers["etag"]
    assert (
        client.get(f"{VERSIONS}/1.0.0/release.jws", headers={"If-None-Match": etag}).status_code
        == 304
    )


def test_a_draft_has_no_statement(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer("synthetic-pub")
    create_dataset(client, writer)
    assert upload(client, writer, csv_bytes([synthetic_row(1)])).status_code == 201
    response = client.get(f"{VERSIONS}/1.0.0/release.jws", headers=writer)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "not released" in response.json()["detail"]


def test_seed_releases_are_signed_on_first_request(
    client: TestClient, seeded: None, db: Engine
) -> None:
    with db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM release_statement")).scalar() == 0
        publisher, dataset, version = connection.execute(
            text(
                "SELECT p.slug, d.slug, v.version FROM dataset_version v "
                "JOIN dataset d ON d.id = v.dataset_id JOIN publisher p ON p.id = d.publisher_id "
                "WHERE v.status = 'published' ORDER BY v.id LIMIT 1"
            )
        ).one()
    url = f"/v1/datasets/{publisher}/{dataset}/versions/{version}"
    response = client.get(f"{url}/release.jws")
    assert response.status_code == 200, response.text
    statement = verify(response.text, jwks(client)).json()
    assert statement["content_sha256"] == client.get(url).json()["content_sha256"]
    assert statement["audit_event_hash"] is not None
    with db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM release_statement")).scalar() == 1


def test_rotation_retires_the_old_key_which_still_verifies_what_it_signed(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    old_statement = client.get(f"{VERSIONS}/1.0.0/release.jws").text
    [old_key] = release_keys(client)

    new_pem = tmp_path / "new-release-key.pem"
    write_key(new_pem, generate_pem(), replace=False)
    rotated = cli(settings, tmp_path, "keys", "rotate", "--key", str(new_pem))
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["active"]["kid"]
    assert new_kid != old_key["kid"]

    # Until the service is pointed at the new key, it refuses to sign with the retired one.
    writer = tokens.writer("synthetic-pub")
    assert upload(client, writer, csv_bytes([synthetic_row(9)]), version="1.1.0").status_code == 201
    assert client.post(f"{VERSIONS}/1.1.0/submit", headers=writer).status_code == 200
    assert settings.release_signing_key is not None
    settings.release_signing_key.write_bytes(new_pem.read_bytes())
    assert publish(client, tokens.reviewer(), "1.1.0").status_code == 200

    keys = {k["kid"]: k for k in release_keys(client)}
    assert keys[new_kid]["efdb:status"] == "active"
    retired = keys[old_key["kid"]]
    assert retired["efdb:status"] == "retired"
    assert retired["efdb:not_before"] == old_key["efdb:not_before"]
    assert retired["efdb:not_after"] >= retired["efdb:not_before"]
    # What the retired key signed inside its period still verifies...
    assert verify(old_statement, jwks(client)).kid == old_key["kid"]
    new_statement = client.get(f"{VERSIONS}/1.1.0/release.jws").text
    assert verify(new_statement, jwks(client)).kid == new_kid
    # ...and the rotation is in the audit log.
    events = client.get("/v1/audit?limit=200", headers=tokens.admin()).json()["items"]
    [rotation] = [e for e in events if e["action"] == "release_key.rotated"]
    assert rotation["payload"]["retired"] == [old_key["kid"]]
    assert rotation["subject_id"] == new_kid


def test_a_retired_key_signing_outside_its_period_fails(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens)
    new_pem = tmp_path / "new-release-key.pem"
    write_key(new_pem, generate_pem(), replace=False)
    assert cli(settings, tmp_path, "keys", "rotate", "--key", str(new_pem)).returncode == 0
    # Someone holding the retired private key signs a statement dated after its retirement.
    from datetime import timedelta

    from app.core.db import utcnow
    from app.signing.jws import TYP_RELEASE, sign
    from app.signing.keys import load_key

    assert settings.release_signing_key is not None
    old = load_key(settings.release_signing_key)
    late = sign(b"{}", key=old, typ=TYP_RELEASE, signed_at=utcnow() + timedelta(hours=1))
    with pytest.raises(SignatureProblem, match="retired"):
        verify(late, jwks(client))
    early = sign(b"{}", key=old, typ=TYP_RELEASE, signed_at=utcnow() - timedelta(days=1))
    with pytest.raises(SignatureProblem, match="before its period"):
        verify(early, jwks(client))


def test_unknown_kid_and_a_changed_signature_fail(client: TestClient, tokens: TokenKit) -> None:
    released(client, tokens)
    token = client.get(f"{VERSIONS}/1.0.0/release.jws").text
    with pytest.raises(SignatureProblem, match="unknown"):
        verify(token, {"keys": [k for k in jwks(client)["keys"] if "efdb:purpose" not in k]})
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(SignatureProblem, match="signature does not verify"):
        verify(f"{header}.{payload}.{flipped}", jwks(client))
    import base64

    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["row_count"] = 4
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(SignatureProblem, match="signature does not verify"):
        verify(f"{header}.{forged}.{signature}", jwks(client))


def test_withdraw_and_publish_sign_checkpoints_listed_publicly(
    client: TestClient, tokens: TokenKit
) -> None:
    released(client, tokens)
    admin = tokens.admin()  # its client's creation is an audit event too: made first
    withdrawn = client.post(
        f"{VERSIONS}/1.0.0/withdraw", headers=tokens.reviewer(), json={"reason": "synthetic"}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    page = client.get("/v1/audit/checkpoints")
    assert page.status_code == 200
    items = page.json()["items"]
    assert len(items) == 2
    latest = items[0]
    events = client.get("/v1/audit?limit=200", headers=admin).json()["items"]
    assert latest["event_count"] == len(events)
    assert latest["head_hash"] == events[-1]["hash"]
    body = verify(latest["jws"], jwks(client)).json()
    assert body["event_count"] == latest["event_count"]
    assert body["head_hash"] == latest["head_hash"]
    # The publish checkpoint was signed before the withdrawal: a prefix of the chain.
    earlier = items[1]
    assert earlier["event_count"] < latest["event_count"]
    assert events[earlier["event_count"] - 1]["hash"] == earlier["head_hash"]
    second = client.get("/v1/audit/checkpoints?limit=1").json()
    assert [c["id"] for c in second["items"]] == [latest["id"]]
    assert client.get(second["next"]).json()["items"][0]["id"] == earlier["id"]


def test_postgresql_refuses_truncate_of_audit_factor_and_version_tables(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite's DELETE fires the row triggers")
    for table in ("audit_event", "factor", "dataset_version"):
        with pytest.raises(Exception, match="may not be truncated"), db.begin() as connection:
            connection.execute(text(f"TRUNCATE {table} CASCADE"))


def test_development_rotation_replaces_the_generated_key_and_the_service_follows(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    """No EFDB_RELEASE_SIGNING_KEY: a development key is generated where the token key's
    development key lives, and `efdb keys rotate` replaces it (the server reads the new file)."""
    generated = tmp_path / "var" / "release-signing-key.pem"
    settings.release_signing_key = None
    settings.generated_release_signing_key = generated
    released(client, tokens, "1.0.0")
    assert generated.exists()
    assert generated.stat().st_mode & 0o077 == 0
    first = generated.read_bytes()
    env = {
        "EFDB_DATABASE_URL": settings.database_url,
        "EFDB_ENVIRONMENT": "development",
        "EFDB_GENERATED_RELEASE_SIGNING_KEY": str(generated),
    }
    rotated = run_efdb_in_process("keys", "rotate", env=env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert generated.read_bytes() != first
    released(client, tokens, "1.1.0")
    new_kid = json.loads(rotated.stdout)["active"]["kid"]
    assert verify(client.get(f"{VERSIONS}/1.1.0/release.jws").text, jwks(client)).kid == new_kid
    assert verify(client.get(f"{VERSIONS}/1.0.0/release.jws").text, jwks(client)).kid != new_kid

    # A configured key is never replaced by a generated one.
    configured = run_efdb_in_process(
        "keys", "rotate", env={**env, "EFDB_RELEASE_SIGNING_KEY": str(generated)}, cwd=tmp_path
    )
    assert configured.returncode == 1
    assert "--key" in configured.stderr


def test_production_needs_a_configured_release_key(settings: Settings, db: Engine) -> None:
    from app.core.db import make_sessionmaker
    from app.signing.keys import ReleaseKeyError, ReleaseKeys

    production = settings.model_copy(
        update={"environment": "production", "release_signing_key": None}
    )
    with make_sessionmaker(db)() as session, pytest.raises(ReleaseKeyError, match="production"):
        ReleaseKeys(production).active_key(session, actor="test")


def test_efdb_audit_checkpoint_signs_the_chain_as_it_stands(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens)
    admin = tokens.admin()
    done = cli(settings, tmp_path, "audit", "checkpoint")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    events = client.get("/v1/audit?limit=200", headers=admin).json()["items"]
    assert shown["event_count"] == len(events)
    assert shown["head_hash"] == events[-1]["hash"]
    assert client.get("/v1/audit/checkpoints").json()["items"][0]["jws"] == shown["jws"]
    assert verify(shown["jws"], jwks(client)).json()["event_count"] == len(events)
