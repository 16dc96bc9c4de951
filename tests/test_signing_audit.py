"""`efdb audit verify` beyond the chain: releases' rows against their content hash, versions'
statuses against their audit events, the chain against signed checkpoints. Each tampering is
done the way an attacker with database rights would (triggers off), on the cited seed data
or synthetic releases, and each is named."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from app.core.audit import GENESIS_HASH, canonical_event, chain_hash
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.models import AuditEvent
from app.versioning.content_hash import compute_content_sha256
from tests.auth_fixtures import TokenKit
from tests.test_publishing import VERSIONS
from tests.test_signing import cli, released


def tamper(db: Engine, tables: Sequence[str], *statements: str, **params: Any) -> None:
    """Run `statements` past the immutability triggers of `tables`."""
    with db.begin() as connection:
        if db.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for table in tables:
                names = connection.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                    {"t": table},
                ).scalars()
                for name in list(names):
                    connection.execute(text(f'DROP TRIGGER "{name}"'))
        for statement in statements:
            connection.execute(text(statement), params)


def audit_verify(settings: Settings, cwd: Path, *args: str) -> Any:
    return cli(settings, cwd, "audit", "verify", *args)


def test_an_untouched_database_verifies(
    client: TestClient, tokens: TokenKit, seeded: None, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens)
    result = audit_verify(settings, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["releases"] >= 4
    assert summary["checkpoints"] == 1


def test_a_changed_released_factor_is_named(
    client: TestClient, seeded: None, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    with db.connect() as connection:
        factor_id, version_id = connection.execute(
            text(
                "SELECT f.id, f.version_id FROM factor f JOIN dataset_version v "
                "ON v.id = f.version_id WHERE v.status = 'published' ORDER BY f.id LIMIT 1"
            )
        ).one()
    tamper(db, ["factor"], "UPDATE factor SET co2e = co2e * 2 WHERE id = :id", id=factor_id)
    result = audit_verify(settings, tmp_path)
    assert result.returncode == 1
    assert "content: " in result.stdout
    assert f"(version id {version_id}): its rows hash to" in result.stdout
    assert "discrepancies" in result.stderr


def test_a_rewritten_content_hash_is_named_against_the_audit_event_and_the_statement(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens)
    assert client.get(f"{VERSIONS}/1.0.0/release.jws").status_code == 200
    # Rows changed and the recorded hash recomputed to match them: the audit event and the
    # signed statement still name the original.
    with db.connect() as connection:
        factor_id = connection.execute(text("SELECT min(id) FROM factor")).scalar()
    tamper(
        db,
        ["factor", "dataset_version"],
        "UPDATE factor SET co2e = co2e + 1 WHERE id = :id",
        id=factor_id,
    )
    with make_sessionmaker(db)() as session:
        forged = compute_content_sha256(session, 1)
    tamper(db, ["dataset_version"], "UPDATE dataset_version SET content_sha256 = :h", h=forged)
    result = audit_verify(settings, tmp_path)
    assert result.returncode == 1
    assert "synthetic-pub/steel-products@1.0.0 (version id 1)" in result.stdout
    assert "version.published event" in result.stdout
    assert "signed release statement names" in result.stdout


def test_a_flipped_status_is_named(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    released(client, tokens, "1.1.0")
    # 1.0.0 was deprecated by 1.1.0's publish; someone makes it current again.
    tamper(
        db,
        ["dataset_version"],
        "UPDATE dataset_version SET status = 'withdrawn' WHERE version = '1.1.0'",
        "UPDATE dataset_version SET status = 'published' WHERE version = '1.0.0'",
    )
    result = audit_verify(settings, tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert (
        "status: synthetic-pub/steel-products@1.0.0 (version id 1): status is published, but "
        "its audit events lead to deprecated"
    ) in lines
    assert (
        "status: synthetic-pub/steel-products@1.1.0 (version id 2): status is withdrawn, but "
        "its audit events lead to published"
    ) in lines


def test_a_real_withdrawal_replays_to_the_same_statuses(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    released(client, tokens, "1.1.0")
    withdrawn = client.post(
        f"{VERSIONS}/1.1.0/withdraw", headers=tokens.reviewer(), json={"reason": "synthetic"}
    )
    assert withdrawn.status_code == 200
    result = audit_verify(settings, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deleted_newest_events_are_detected_against_a_saved_checkpoint(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    released(client, tokens, "1.1.0")
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(client.get("/v1/audit/checkpoints").json()["items"][0]))
    with db.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM audit_event")).scalar()
    # The newest events (the second publish) and every checkpoint here are deleted.
    tamper(
        db,
        ["audit_event", "audit_checkpoint"],
        "DELETE FROM audit_event WHERE id > (SELECT max(id) - 3 FROM audit_event)",
        "DELETE FROM audit_checkpoint",
    )
    # The chain's links are intact; 1.1.0's status no longer follows from the log...
    plain = audit_verify(settings, tmp_path)
    assert plain.returncode == 1
    assert "audit chain broken" not in plain.stderr
    assert "@1.1.0 (version id 2): status is published, but its audit events lead to" in (
        plain.stdout
    )
    # ...and the saved checkpoint says what happened.
    result = audit_verify(settings, tmp_path, "--checkpoint", str(saved))
    assert result.returncode == 1
    assert "checkpoint: saved checkpoint 1 (signed " in result.stdout
    assert f"fewer than the {count} the checkpoint signed: events were deleted" in result.stdout


def test_a_rewritten_and_rechained_history_is_detected_by_a_checkpoint(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens)
    saved = tmp_path / "checkpoint.jws"
    saved.write_text(client.get("/v1/audit/checkpoints").json()["items"][0]["jws"])
    # Rewrite the first event's actor and recompute every hash after it.
    with make_sessionmaker(db)() as session:
        rows = list(session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())
        updates = []
        previous = GENESIS_HASH
        for index, event in enumerate(rows):
            actor = "mallory" if index == 0 else event.actor
            digest = chain_hash(
                previous,
                canonical_event(
                    occurred_at=event.occurred_at,
                    actor=actor,
                    action=event.action,
                    subject_type=event.subject_type,
                    subject_id=event.subject_id,
                    payload=event.payload,
                ),
            )
            # Placeholder first: the unique hash column never holds two equal values mid-way.
            updates.append((event.id, actor, previous, "x" + digest[1:], digest))
            previous = digest
    tamper(
        db,
        ["audit_event", "audit_checkpoint"],
        *[
            f"UPDATE audit_event SET hash = '{tmp}' WHERE id = {id_}"
            for id_, _, _, tmp, _ in updates
        ],
        *[
            f"UPDATE audit_event SET actor = '{actor}', prev_hash = '{prev}', hash = '{digest}' "
            f"WHERE id = {id_}"
            for id_, actor, prev, _, digest in updates
        ],
        "DELETE FROM audit_checkpoint",
    )
    result = audit_verify(settings, tmp_path, "--checkpoint", str(saved))
    assert result.returncode == 1, result.stdout
    assert "the history was rewritten" in result.stdout
    # The re-chained log passes the chain check alone: the checkpoint is what catches it.
    assert "audit chain broken" not in result.stderr


def test_a_forged_saved_checkpoint_is_refused(
    client: TestClient, tokens: TokenKit, settings: Settings, tmp_path: Path
) -> None:
    released(client, tokens)
    token = client.get("/v1/audit/checkpoints").json()["items"][0]["jws"]
    head, payload, signature = token.split(".")
    forged = tmp_path / "forged.jws"
    forged.write_text(f"{head}.{payload}.{signature[::-1]}")
    result = audit_verify(settings, tmp_path, "--checkpoint", str(forged))
    assert result.returncode == 1
    assert "saved checkpoint 1: signature does not verify" in result.stdout
