"""The release signing key: ES256 (P-256), separate from the access-token key.

The private key comes from `EFDB_RELEASE_SIGNING_KEY` (a PEM file) or, outside production, a
key generated once at `settings.generated_release_signing_key` (mode 0600, beside the token
development key). The `release_signing_key` table is the published record of every release
key: its public JWK, whether it is active or retired, and the period it signed. The key in the
file signs only while it is the active one there: the first signature registers it (on an empty
table), `efdb keys rotate` puts a new one in its place and retires the old, which stays in the
JWKS so that what it signed keeps verifying.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.config import Settings
from app.core.db import utcnow
from app.signing.jws import release_jwk
from app.signing.models import ReleaseSigningKey

log = logging.getLogger("efdb.signing")
# Any constant: serialises the registration of a first release key on PostgreSQL.
_REGISTER_LOCK_KEY = 0x65666465


class ReleaseKeyError(RuntimeError):
    """The release signing key is missing, unusable, or not the active one."""


def generate_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_key(path: Path, pem: bytes, *, replace: bool) -> None:
    """Write `pem` to `path` (mode 0600) atomically; without `replace`, a file another process
    wrote first is kept (both then read the winner's key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        if replace:
            os.replace(temporary, path)
        elif not path.exists():
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> ECKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ReleaseKeyError(f"cannot read release signing key {path}: {exc.strerror}") from exc
    try:
        key = ECKey.import_key(pem)
    except Exception as exc:  # joserfc raises several types for a bad PEM or a non-EC key
        raise ReleaseKeyError(f"{path} is not an EC private key in PEM form") from exc
    if not key.is_private or key.curve_name != "P-256":
        raise ReleaseKeyError(f"{path}: the release signing key must be a P-256 private key")
    key.ensure_kid()  # RFC 7638 thumbprint
    return key


def load_key(path: Path) -> ECKey:
    try:
        status = path.stat()
    except OSError as exc:
        raise ReleaseKeyError(f"cannot read release signing key {path}: {exc.strerror}") from exc
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("release signing key %s is readable by group or others; chmod 600 it", path)
    return _parse(path.resolve(), status.st_mtime_ns, status.st_size)


def public_dict(key: ECKey) -> dict[str, Any]:
    return {
        k: v for k, v in key.as_dict(private=False).items() if k in {"kty", "crv", "x", "y", "kid"}
    }


class ReleaseKeys:
    """Where the service's release signing key is, and the checks before it signs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return self.settings.release_signing_key is not None

    @property
    def path(self) -> Path:
        return self.settings.release_signing_key or self.settings.generated_release_signing_key

    def private_key(self) -> ECKey:
        if not self.configured:
            if self.settings.environment == "production":
                raise ReleaseKeyError("EFDB_RELEASE_SIGNING_KEY must be set in production")
            if not self.path.exists():
                log.warning(
                    "no EFDB_RELEASE_SIGNING_KEY: generating a development key at %s", self.path
                )
                write_key(self.path, generate_pem(), replace=False)
        return load_key(self.path)

    def active_key(self, session: Session, *, actor: str, now: datetime | None = None) -> ECKey:
        """The private key to sign with now, checked against the published record: on an
        empty record it is registered (and audited) as the first active key."""
        key = self.private_key()
        record = session.get(ReleaseSigningKey, key.kid)
        if record is None and session.get_bind().dialect.name == "postgresql":
            # Two workers signing their first statement at once: one registers, the other
            # waits here and then finds the key registered (SQLite has one writer anyway).
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REGISTER_LOCK_KEY})
            record = session.execute(
                select(ReleaseSigningKey).where(ReleaseSigningKey.kid == key.kid)
            ).scalar()
        if record is None:
            active = session.execute(
                select(ReleaseSigningKey.kid).where(ReleaseSigningKey.status == "active")
            ).scalar()
            if active is not None:
                raise ReleaseKeyError(
                    f"the release signing key in {self.path} (kid {key.kid}) is not the active "
                    f"key {active}; put it in place with `efdb keys rotate --key {self.path}`"
                )
            _register(
                session, key, actor=actor, now=now or utcnow(), action="release_key.activated"
            )
        elif record.status != "active":
            raise ReleaseKeyError(
                f"the release signing key in {self.path} (kid {key.kid}) was retired at "
                f"{record.not_after}; configure the active key"
            )
        return key

    def rotate(
        self, session: Session, *, actor: str, new_key: Path | None = None
    ) -> ReleaseSigningKey:
        """Make a new key active and retire the current one (kept in the JWKS with its
        period); audited. Without `new_key` (development) a key is generated in place of the
        development key file."""
        now = utcnow()
        if new_key is not None:
            key = load_key(new_key)
        elif self.configured or self.settings.environment == "production":
            raise ReleaseKeyError(
                "EFDB_RELEASE_SIGNING_KEY is configured: make a new P-256 key, pass it with "
                "--key PATH, then point EFDB_RELEASE_SIGNING_KEY at it"
            )
        else:
            pem = generate_pem()
            key = ECKey.import_key(pem)
            key.ensure_kid()
        if session.get(ReleaseSigningKey, key.kid) is not None:
            raise ReleaseKeyError(f"key {key.kid} is already registered; rotate to a new key")
        retired = []
        for old in session.execute(
            select(ReleaseSigningKey).where(ReleaseSigningKey.status == "active")
        ).scalars():
            old.status = "retired"
            old.not_after = now
            retired.append(old.kid)
        session.flush()
        record = _register(
            session, key, actor=actor, now=now, action="release_key.rotated", retired=retired
        )
        if new_key is None:
            # Written last: if anything above failed, the old key file still signs.
            write_key(self.path, pem, replace=True)
        return record


def _register(
    session: Session,
    key: ECKey,
    *,
    actor: str,
    now: datetime,
    action: str,
    retired: list[str] | None = None,
) -> ReleaseSigningKey:
    kid = str(key.kid)
    record = ReleaseSigningKey(
        kid=kid, public_jwk=public_dict(key), status="active", not_before=now, not_after=None
    )
    session.add(record)
    session.flush()
    payload: dict[str, Any] = {"kid": kid, "not_before": now.isoformat()}
    if retired is not None:
        payload["retired"] = retired
    append_event(
        session,
        actor=actor,
        action=action,
        subject_type="release_signing_key",
        subject_id=kid,
        payload=payload,
        occurred_at=now,
    )
    return record


def published_keys(session: Session) -> list[dict[str, Any]]:
    """Every release key, active first, as published in the JWKS."""
    rows = session.execute(
        select(ReleaseSigningKey).order_by(
            ReleaseSigningKey.status, ReleaseSigningKey.not_before.desc()
        )
    ).scalars()
    return [
        release_jwk(
            row.public_jwk, status=row.status, not_before=row.not_before, not_after=row.not_after
        )
        for row in rows
    ]
