"""Publishers and their datasets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, UTCDateTime, utcnow


class Publisher(Base):
    __tablename__ = "publisher"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str | None] = mapped_column(String(255))
    name_en: Mapped[str | None] = mapped_column(String(255))
    sectors: Mapped[list[str]] = mapped_column(JSON, default=list)
    contact_email: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="publisher", lazy="raise")


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (
        UniqueConstraint("publisher_id", "slug"),
        CheckConstraint("access IN ('public', 'registered')", name="access"),
        CheckConstraint("status IN ('active', 'deprecated')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publisher.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    title_zh: Mapped[str | None] = mapped_column(String(255))
    title_en: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    sector_scheme: Mapped[str | None] = mapped_column(String(64))
    sector_code: Mapped[str | None] = mapped_column(String(64))
    access: Mapped[str] = mapped_column(String(16), default="public")
    license_id: Mapped[str] = mapped_column(String(128))
    license_url: Mapped[str | None] = mapped_column(String(512))
    attribution: Mapped[str] = mapped_column(Text)
    redistribution: Mapped[bool] = mapped_column(Boolean)
    commercial_use: Mapped[bool] = mapped_column(Boolean)
    contact: Mapped[str | None] = mapped_column(String(255))
    methodology_url: Mapped[str | None] = mapped_column(String(512))
    # The dataset page in plain words, from the publisher's documents (about_sources says
    # which); dataset-level text, outside every release's content hash.
    coverage_zh: Mapped[str | None] = mapped_column(Text)
    coverage_en: Mapped[str | None] = mapped_column(Text)
    method_zh: Mapped[str | None] = mapped_column(Text)
    method_en: Mapped[str | None] = mapped_column(Text)
    limits_zh: Mapped[str | None] = mapped_column(Text)
    limits_en: Mapped[str | None] = mapped_column(Text)
    license_plain_zh: Mapped[str | None] = mapped_column(Text)
    license_plain_en: Mapped[str | None] = mapped_column(Text)
    about_sources: Mapped[str | None] = mapped_column(Text)
    # Resolution preference among datasets that answer equally well (lower first; national
    # reference datasets get the lowest numbers, null sorts last).
    priority: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("dataset.id"))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    publisher: Mapped[Publisher] = relationship(back_populates="datasets", lazy="raise")
