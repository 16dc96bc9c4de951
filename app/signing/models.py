"""Release signing keys (public parts only), and what they signed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigId, UTCDateTime, utcnow


class ReleaseSigningKey(Base):
    """A release signing key as published in the JWKS: its public JWK and the period it
    signs (`not_after` is set when it is retired). The private key is never stored here."""

    __tablename__ = "release_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # active | retired
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReleaseStatement(Base):
    """A released version's signed statement (JWS compact), signed once and served as is."""

    __tablename__ = "release_statement"

    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    jws: Mapped[str] = mapped_column(Text)


class AuditCheckpoint(Base):
    """A signed statement of the audit chain's length and head hash at one moment."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_count: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    # The Merkle root of the chain's first `event_count` events (RFC 9162 tree, size
    # `event_count`); null for checkpoints signed before the tree existed.
    root_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)


class SnapshotSignature(Base):
    """A snapshot's `manifest.json` signed as JWS compact (the payload is the file's bytes)."""

    __tablename__ = "snapshot_signature"

    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshot.id"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)
