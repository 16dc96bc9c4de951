"""Releases of a dataset and their life cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow

VERSION_STATUSES = ("draft", "submitted", "published", "deprecated", "withdrawn", "rejected")
# Statuses whose rows are public and frozen forever.
RELEASED_STATUSES = ("published", "deprecated", "withdrawn")
# Statuses that may answer "latest".
RESOLVABLE_STATUSES = ("published", "deprecated")


class DatasetVersion(Base):
    __tablename__ = "dataset_version"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        CheckConstraint(
            "status IN ('draft', 'submitted', 'published', 'deprecated', 'withdrawn', 'rejected')",
            name="status",
        ),
        Index("ix_dataset_version_dataset_status", "dataset_id", "status"),
        # At most one current release per dataset (migration 20261204_0201).
        Index(
            "uq_dataset_version_one_current",
            "dataset_id",
            unique=True,
            postgresql_where=text("status = 'published'"),
            sqlite_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    version: Mapped[str] = mapped_column(String(32))
    # The semantic version split out so that the database can order releases.
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    release_notes: Mapped[str | None] = mapped_column(Text)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_file_name: Mapped[str | None] = mapped_column(String(255))
    upload_file_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_format: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_by: Mapped[str | None] = mapped_column(String(128))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    published_by: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_version.id"))
    rejected_by: Mapped[str | None] = mapped_column(String(128))
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    deprecated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The report the upload answered with, for the reviewer (None: loaded directly, or older).
    validation_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
