"""Anyone holding an old audit checkpoint proves, with public material only, that the service's
history was not rewritten since: the public latest checkpoint and consistency proof
(`GET /v1/audit/checkpoints/latest`, `GET /v1/audit/consistency`), checked by `efdb verify
OLD.json --jwks JWKS --from URL` (served by a real uvicorn) or offline with `--proof`.

Tampering is done as an attacker with database rights would (triggers off, see
tests/test_signing_audit.py): the newest events deleted, or an event rewritten and every hash
and leaf after it recomputed so that the chain verifies on its own; then the service signs a
newer checkpoint. The releases are synthetic (tests/test_signing.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from app.core.audit import GENESIS_HASH, canonical_event, chain_hash
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.merkle import ProofError, leaf_hash, root, verify_consistency
from app.core.models import AuditEvent
from app.main import create_app
from app.signing.jws import TYP_CHECKPOINT, canonical_json, sign
from app.signing.keys import ReleaseKeys
from tests.auth_fixtures import TokenKit
from tests.conftest import run_efdb_in_process
from tests.live_server import serve_in_thread
from tests.test_exports_http import README_BASE, readme_block
from tests.test_signing import cli, released
from tests.test_signing_audit import tamper

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def served(db: Engine, settings: Settings) -> Iterator[str]:
    """The same database served by a real uvicorn (what `efdb verify --from` talks to)."""
    app: FastAPI = create_app(settings)
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        app.state.engine.dispose()


def verify(cwd: Path, *args: str) -> Any:
    """`efdb verify` with no database configured at all."""
    return run_efdb_in_process("verify", *args, env={"EFDB_DATABASE_URL": "sqlite://"}, cwd=cwd)


def save(path: Path, value: Any) -> Path:
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


def signed_body(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def leaves_from_content(db: Engine) -> list[str]:
    """Each event's leaf recomputed from its content (not the stored column)."""
    with make_sessionmaker(db)() as session:
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
        return [
            leaf_hash(
                canonical_event(
                    occurred_at=e.occurred_at,
                    actor=e.actor,
                    action=e.action,
                    subject_type=e.subject_type,
                    subject_id=e.subject_id,
                    payload=e.payload,
                )
            )
            for e in events
        ]


def new_checkpoint(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    result = cli(settings, tmp_path, "audit", "checkpoint")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_latest_checkpoint_signs_the_tree_of_the_log(
    client: TestClient, tokens: TokenKit, db: Engine
) -> None:
    assert client.get("/v1/audit/checkpoints/latest").status_code == 404
    released(client, tokens)
    answer = client.get("/v1/audit/checkpoints/latest")
    assert answer.status_code == 200
    latest = answer.json()
    assert latest == client.get("/v1/audit/checkpoints").json()["items"][0]
    leaves = leaves_from_content(db)
    assert latest["tree_size"] == latest["event_count"] == len(leaves)
    assert latest["root_hash"] == root(leaves)
    body = signed_body(latest["jws"])
    assert (body["tree_size"], body["root_hash"]) == (len(leaves), root(leaves))


def test_a_consistency_proof_holds_between_two_signed_checkpoints(
    client: TestClient, tokens: TokenKit
) -> None:
    released(client, tokens, "1.0.0")
    old = client.get("/v1/audit/checkpoints/latest").json()
    released(client, tokens, "1.1.0")
    answer = client.get("/v1/audit/consistency", params={"first": old["tree_size"]})
    assert answer.status_code == 200
    proof = answer.json()
    newer = proof["checkpoint"]
    assert newer == client.get("/v1/audit/checkpoints/latest").json()
    assert (proof["first"], proof["second"]) == (old["tree_size"], newer["tree_size"])
    assert newer["tree_size"] > old["tree_size"]
    assert (proof["first_root"], proof["second_root"]) == (old["root_hash"], newer["root_hash"])
    verify_consistency(
        first=old["tree_size"],
        second=newer["tree_size"],
        first_root=old["root_hash"],
        second_root=newer["root_hash"],
        proof=proof["proof"],
    )
    # The same proof does not tie the older root to anything else.
    with pytest.raises(ProofError):
        verify_consistency(
            first=old["tree_size"],
            second=newer["tree_size"],
            first_root=old["head_hash"],
            second_root=newer["root_hash"],
            proof=proof["proof"],
        )


def test_bad_sizes_are_problems(client: TestClient, tokens: TokenKit) -> None:
    assert client.get("/v1/audit/consistency", params={"first": 1}).status_code == 404
    released(client, tokens)
    size = client.get("/v1/audit/checkpoints/latest").json()["tree_size"]
    cases = {
        (("first", "0"),): 422,
        (("first", "x"),): 422,
        (("second", "3"),): 422,  # first is required
        (("first", str(size + 1)),): 422,  # beyond the latest checkpoint's size
        (("first", "2"), ("second", "1")): 422,
        (("first", "1"), ("second", str(size + 50))): 404,
        (("first", "1"), ("after", "2")): 422,
    }
    for params, status in cases.items():
        answer = client.get("/v1/audit/consistency", params=dict(params))
        assert answer.status_code == status, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["status"] == status
    # An unsigned size still gets its proof, without a checkpoint.
    unsigned = client.get("/v1/audit/consistency", params={"first": 1, "second": size - 1})
    assert unsigned.status_code == 200
    assert unsigned.json()["checkpoint"] is None


def test_an_untouched_service_proves_it_extends_an_old_checkpoint(
    client: TestClient, tokens: TokenKit, served: str, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    old = save(tmp_path / "old-checkpoint.json", client.get("/v1/audit/checkpoints/latest").json())
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    # Nothing new yet: the newest checkpoint is as large as yours, with the same root.
    same = verify(tmp_path, str(old), "--jwks", str(jwks), "--from", served)
    assert same.returncode == 0, same.stdout + same.stderr
    released(client, tokens, "1.1.0")
    result = verify(tmp_path, str(old), "--jwks", str(jwks), "--from", served)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consistency proof verified" in result.stdout
    assert result.stdout.splitlines()[-1] == f"valid: {old}"
    # Offline: the same check from a saved proof (which carries the newer checkpoint).
    first = json.loads(old.read_text())["tree_size"]
    proof = save(tmp_path / "proof.json", client.get(f"/v1/audit/consistency?first={first}").json())
    offline = verify(tmp_path, str(old), "--jwks", str(jwks), "--proof", str(proof))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    # A bent proof, or a newer checkpoint that is not the proof's, fails offline.
    bent = json.loads(proof.read_text())
    bent["proof"][0] = "0" * 64
    save(proof, bent)
    failed = verify(tmp_path, str(old), "--jwks", str(jwks), "--proof", str(proof))
    assert failed.returncode == 1
    assert "history rewritten: the newer tree does not extend yours" in failed.stdout


def test_truncation_is_detected_by_a_public_verifier(
    client: TestClient,
    tokens: TokenKit,
    settings: Settings,
    db: Engine,
    served: str,
    tmp_path: Path,
) -> None:
    released(client, tokens, "1.0.0")
    released(client, tokens, "1.1.0")
    old = save(tmp_path / "old.json", client.get("/v1/audit/checkpoints/latest").json())
    size = json.loads(old.read_text())["tree_size"]
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    # The newest events deleted (the second publish), with every checkpoint here; the service
    # then signs a checkpoint of what is left.
    tamper(
        db,
        ["audit_event", "audit_checkpoint", "change_outbox"],
        "DELETE FROM change_outbox WHERE audit_event_id > (SELECT max(id) - 3 FROM audit_event)",
        "DELETE FROM audit_event WHERE id > (SELECT max(id) - 3 FROM audit_event)",
        "DELETE FROM audit_checkpoint",
    )
    assert new_checkpoint(settings, tmp_path)["tree_size"] == size - 3
    result = verify(tmp_path, str(old), "--jwks", str(jwks), "--from", served)
    assert result.returncode == 1
    assert "truncated: the newer checkpoint (signed " in result.stdout
    assert (
        f"covers {size - 3} events, fewer than the {size} yours signed: events were deleted"
        in result.stdout
    )
    assert "history is not shown to extend" in result.stderr
    # Covered up: new events appended until the log is longer than before. The newer tree no
    # longer starts with the events the old checkpoint signed.
    released(client, tokens, "1.2.0")
    released(client, tokens, "1.3.0")
    assert client.get("/v1/audit/checkpoints/latest").json()["tree_size"] > size
    covered = verify(tmp_path, str(old), "--jwks", str(jwks), "--from", served)
    assert covered.returncode == 1
    assert "history rewritten: the newer tree does not extend yours" in covered.stdout
    assert f"the service now gives the root of your first {size} events as" in covered.stdout


def rechain_with_first_actor(db: Engine, actor: str) -> None:
    """Rewrite the first event's actor and recompute every hash and leaf after it, so that
    the chain (and its stored Merkle leaves) verify on their own; checkpoints deleted."""
    with make_sessionmaker(db)() as session:
        rows = list(session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())
        updates = []
        previous = GENESIS_HASH
        for index, event in enumerate(rows):
            who = actor if index == 0 else event.actor
            body = canonical_event(
                occurred_at=event.occurred_at,
                actor=who,
                action=event.action,
                subject_type=event.subject_type,
                subject_id=event.subject_id,
                payload=event.payload,
            )
            digest = chain_hash(previous, body)
            updates.append((event.id, who, previous, digest, leaf_hash(body)))
            previous = digest
    tamper(
        db,
        ["audit_event", "audit_checkpoint"],
        # Placeholders first: the unique hash column never holds two equal values mid-way.
        *[f"UPDATE audit_event SET hash = 'x{d[1:]}' WHERE id = {i}" for i, _, _, d, _ in updates],
        *[
            f"UPDATE audit_event SET actor = '{who}', prev_hash = '{prev}', hash = '{digest}', "
            f"leaf_hash = '{leaf}' WHERE id = {id_}"
            for id_, who, prev, digest, leaf in updates
        ],
        "DELETE FROM audit_checkpoint",
    )


def test_a_rewritten_and_rechained_history_is_detected_by_a_public_verifier(
    client: TestClient,
    tokens: TokenKit,
    settings: Settings,
    db: Engine,
    served: str,
    tmp_path: Path,
) -> None:
    released(client, tokens)
    old = save(tmp_path / "old.json", client.get("/v1/audit/checkpoints/latest").json())
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    rechain_with_first_actor(db, "mallory")
    new_checkpoint(settings, tmp_path)
    # The service's own checks find nothing: chain, leaves and the (new) checkpoint agree...
    own = cli(settings, tmp_path, "audit", "verify")
    assert own.returncode == 0, own.stdout + own.stderr
    # ...but whoever kept the old checkpoint sees the rewrite through the public proof.
    result = verify(tmp_path, str(old), "--jwks", str(jwks), "--from", served)
    assert result.returncode == 1
    assert "history rewritten" in result.stdout
    size = json.loads(old.read_text())["tree_size"]
    assert f"the service now gives the root of your first {size} events as" in result.stdout
    # Given the saved checkpoint, the service's own check names it too (head and root).
    saved = cli(settings, tmp_path, "audit", "verify", "--checkpoint", str(old))
    assert saved.returncode == 1
    assert "the history was rewritten" in saved.stdout


def test_a_changed_leaf_or_root_is_named_by_audit_verify(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens)
    with db.connect() as connection:
        event_id = connection.execute(text("SELECT min(id) FROM audit_event")).scalar()
    tamper(
        db,
        ["audit_event"],
        "UPDATE audit_event SET leaf_hash = :leaf WHERE id = :id",
        leaf="f" * 64,
        id=event_id,
    )
    result = cli(settings, tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert f"merkle: audit event {event_id}: stored leaf hash {'f' * 64} is not the" in (
        result.stdout
    )
    # A recorded checkpoint whose root column was edited no longer matches what it signed.
    tamper(db, ["audit_checkpoint"], "UPDATE audit_checkpoint SET root_hash = :r", r="0" * 64)
    edited = cli(settings, tmp_path, "audit", "verify")
    assert "its recorded count, head or root is not the one it signed" in edited.stdout


def test_a_checkpoint_signed_before_the_tree_still_verifies_but_cannot_be_proven(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens)
    latest = client.get("/v1/audit/checkpoints/latest").json()
    # A checkpoint as efdb signed them before the Merkle tree: no tree_size, no root_hash.
    with make_sessionmaker(db).begin() as session:
        key = ReleaseKeys(settings).active_key(session, actor="test")
        signed_at = datetime.now(UTC)
        body = {
            "type": "efdb.audit-checkpoint/1",
            "issuer": signed_body(latest["jws"])["issuer"],
            "event_count": latest["event_count"],
            "head_hash": latest["head_hash"],
            "signed_at": signed_at.isoformat(),
        }
        token = sign(canonical_json(body), key=key, typ=TYP_CHECKPOINT, signed_at=signed_at)
    old = save(tmp_path / "old.jws", token)
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    plain = verify(tmp_path, str(old), "--jwks", str(jwks))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    proof = save(
        tmp_path / "proof.json",
        client.get(f"/v1/audit/consistency?first={latest['tree_size']}").json(),
    )
    result = verify(tmp_path, str(old), "--jwks", str(jwks), "--proof", str(proof))
    assert result.returncode == 1
    assert "signed before the audit log had a Merkle tree" in result.stdout
    # The service still checks it against the chain.
    assert cli(settings, tmp_path, "audit", "verify", "--checkpoint", str(old)).returncode == 0


def run_readme(script: str, *, cwd: Path, python: bool = False) -> Any:
    """A README block as a researcher runs it: efdb on PATH, no EFDB_ settings at all."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {k: v for k, v in env.items() if not k.startswith("EFDB_")}
    command = (
        [sys.executable, "-c", script] if python else ["bash", "-euo", "pipefail", "-c", script]
    )
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_check_with_and_without_efdb(
    client: TestClient,
    tokens: TokenKit,
    settings: Settings,
    db: Engine,
    served: str,
    tmp_path: Path,
) -> None:
    """The README's "Anyone holding an old checkpoint", run as written (only the port
    changed): saved, checked later by `efdb verify --from` and by the plain-Python check; then
    the history rewritten and re-chained, and both refuse it."""
    released(client, tokens, "1.0.0")
    work = tmp_path / "researcher"
    work.mkdir()
    saving = readme_block("sh", "checkpoints/latest").replace(README_BASE, served)
    assert run_readme(saving, cwd=work).returncode == 0
    released(client, tokens, "1.1.0")
    later = readme_block("sh", "--from").replace(README_BASE, served)
    checked = run_readme(later, cwd=work)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "consistency proof verified" in checked.stdout
    plain = readme_block("python", "consistency?first=").replace(README_BASE, served)
    by_hand = run_readme(plain, cwd=work, python=True)
    assert by_hand.returncode == 0, by_hand.stderr
    size = json.loads((work / "checkpoint.json").read_text())["tree_size"]
    assert by_hand.stdout.startswith("consistent: the ")
    assert by_hand.stdout.strip().endswith(f"extend your {size}")

    rechain_with_first_actor(db, "mallory")
    new_checkpoint(settings, tmp_path)
    refused = run_readme(later, cwd=work)
    assert refused.returncode == 1
    assert "FAILED: checkpoint.json: history rewritten" in refused.stdout
    by_hand = run_readme(plain, cwd=work, python=True)
    assert by_hand.returncode == 1
    assert "AssertionError: history rewritten" in by_hand.stderr


def test_a_downloaded_snapshot_manifest_is_an_old_checkpoint_too(
    client: TestClient, tokens: TokenKit, served: str, tmp_path: Path
) -> None:
    released(client, tokens, "1.0.0")
    created = client.post("/v1/snapshots", headers=tokens.admin())
    assert created.status_code == 201, created.text
    manifest = client.get(f"/v1/snapshots/{created.json()['id']}/manifest.json")
    kept = save(tmp_path / "manifest.json", manifest.text)
    carried = manifest.json()["audit_checkpoint"]
    assert carried["tree_size"] == carried["event_count"]
    released(client, tokens, "1.1.0")
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    result = verify(tmp_path, str(kept), "--jwks", str(jwks), "--from", served)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"extend your {carried['tree_size']}: consistency proof verified" in result.stdout


def test_the_admin_log_carries_leaves_and_a_root_that_is_not_the_chains_is_named(
    client: TestClient, tokens: TokenKit, settings: Settings, db: Engine, tmp_path: Path
) -> None:
    released(client, tokens)
    admin = tokens.admin()
    page = client.get("/v1/audit?limit=1000", headers=admin).json()
    assert [event["leaf_hash"] for event in page["items"]] == leaves_from_content(db)
    log = save(tmp_path / "audit.json", page)
    latest = client.get("/v1/audit/checkpoints/latest").json()
    # A checkpoint signed by the service's key over the right count and head but a root that
    # is not the tree of those events (a faulty signer): its proofs would prove nothing.
    with make_sessionmaker(db).begin() as session:
        key = ReleaseKeys(settings).active_key(session, actor="test")
        signed_at = datetime.now(UTC)
        body = {**signed_body(latest["jws"]), "root_hash": "e" * 64}
        body["signed_at"] = signed_at.isoformat()
        token = sign(canonical_json(body), key=key, typ=TYP_CHECKPOINT, signed_at=signed_at)
    faulty = save(tmp_path / "faulty.jws", token)
    jwks = save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json").text)
    good = save(tmp_path / "good.jws", latest["jws"])
    passed = verify(tmp_path, str(good), "--jwks", str(jwks), "--audit-log", str(log))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    result = verify(tmp_path, str(faulty), "--jwks", str(jwks), "--audit-log", str(log))
    assert result.returncode == 1
    count = latest["event_count"]
    assert f"the Merkle root of the log's first {count} events is not the signed" in result.stdout
    served = cli(settings, tmp_path, "audit", "verify", "--checkpoint", str(faulty))
    assert served.returncode == 1
    assert f"the Merkle tree of the first {count} events has root {latest['root_hash']}" in (
        served.stdout
    )
    # A leaf in the saved log that its event's content does not hash to is named by id.
    page["items"][1]["leaf_hash"] = "d" * 64
    bent = save(tmp_path / "bent.json", page)
    named = verify(tmp_path, str(good), "--jwks", str(jwks), "--audit-log", str(bent))
    assert named.returncode == 1
    assert f"event {page['items'][1]['id']}'s leaf_hash is not the" in named.stdout
