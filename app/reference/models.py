"""Locations: the region hierarchy that resolution falls back along (contract §11).

Each row names where it comes from (`source`), so the fallback chain of any answer can be
traced to ISO 3166 (via pycountry) or to whoever defined a grouping.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

LOCATION_KINDS = ("global", "country", "subdivision", "grouping")


class Location(Base):
    __tablename__ = "location"
    __table_args__ = (
        CheckConstraint("kind IN ('global', 'country', 'subdivision', 'grouping')", name="kind"),
        Index("ix_location_parent_code", "parent_code"),
    )

    # ISO 3166-1 alpha-2, ISO 3166-2, GLO, or a grouping code such as CN-GRID-NORTH.
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("location.code"))
    name_zh: Mapped[str | None] = mapped_column(String(255))
    name_en: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(255))


class LocationMember(Base):
    """Members of a grouping (a grid region's provinces, an economic area's countries)."""

    __tablename__ = "location_member"
    __table_args__ = (Index("ix_location_member_member_code", "member_code"),)

    grouping_code: Mapped[str] = mapped_column(ForeignKey("location.code"), primary_key=True)
    member_code: Mapped[str] = mapped_column(ForeignKey("location.code"), primary_key=True)
