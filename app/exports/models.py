"""National bulk releases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow

snapshot_version = Table(
    "snapshot_version",
    Base.metadata,
    Column("snapshot_id", ForeignKey("snapshot.id"), primary_key=True),
    Column("version_id", ForeignKey("dataset_version.id"), primary_key=True),
)


class Snapshot(Base):
    __tablename__ = "snapshot"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    row_count: Mapped[int] = mapped_column(Integer)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExportFile(Base):
    """A per-version export file in the export store: written once, recorded here, and from
    then on served from `path` (relative to the store) as exactly these bytes."""

    __tablename__ = "export_file"

    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"), primary_key=True)
    format: Mapped[str] = mapped_column(String(16), primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatabaseInstance(Base):
    """The one row that names this database (written on first start): the export store keeps
    a marker file under this id, so a database pointed at another store is noticed."""

    __tablename__ = "database_instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
