"""Reference data the service reasons with (contract §11), each row with its citation.

- `location` / `location_member`: the region hierarchy and groupings that resolution falls
  back along (ISO 3166 via pycountry, plus cited groupings such as China's regional grids);
- `gwp_value`: GWP100 per gas and IPCC assessment report;
- `conversion_property`: a cited quantity linking two dimensions for one material (a net
  calorific value turns tonnes of coal into TJ);
- `activity`: the human labels of the shared `activity_id` vocabulary (names, synonyms), each
  citing where its wording comes from; text search reads them (电网 finds
  `electricity-grid-mix`, whose official Chinese names say 电力);
- `reference_version`: which version (sha256 of the shipped files) of each table is loaded.

Rows are written only by `app.reference.loader.load_reference_data` (from `seed_data/reference/`),
which records an audit event whenever it changes a table. The one exception is
`activity_label`: the labels publishers give their own activities in an upload (names,
keywords), written when the version that carries them is published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime

LOCATION_KINDS = ("global", "country", "subdivision", "grouping")
GWP_SET_NAMES = ("AR4", "AR5", "AR6")


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
    locator: Mapped[str | None] = mapped_column(String(255))


class LocationMember(Base):
    """Members of a grouping (a grid region's provinces, an economic area's countries)."""

    __tablename__ = "location_member"
    __table_args__ = (Index("ix_location_member_member_code", "member_code"),)

    grouping_code: Mapped[str] = mapped_column(ForeignKey("location.code"), primary_key=True)
    member_code: Mapped[str] = mapped_column(ForeignKey("location.code"), primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    locator: Mapped[str | None] = mapped_column(String(255))
    confidence: Mapped[str | None] = mapped_column(String(255))


class GwpValue(Base):
    """One GWP100 value of one gas in one IPCC assessment report."""

    __tablename__ = "gwp_value"
    __table_args__ = (CheckConstraint("gwp_set IN ('AR4', 'AR5', 'AR6')", name="gwp_set"),)

    gwp_set: Mapped[str] = mapped_column(String(8), primary_key=True)
    gas: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(500))
    locator: Mapped[str] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(500))


class ConversionProperty(Base):
    """A cited quantity that links two dimensions for one material (e.g. an NCV in TJ/Gg)."""

    __tablename__ = "conversion_property"

    code: Mapped[str] = mapped_column(String(96), primary_key=True)
    material: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str | None] = mapped_column(String(255))
    name_zh: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    # value is in `unit`, e.g. TJ/Gg: how much of the numerator one of the denominator is.
    unit: Mapped[str] = mapped_column(String(32))
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    # The activity_ids whose amounts this property may convert.
    activity_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(500))
    locator: Mapped[str] = mapped_column(String(500))


class Activity(Base):
    """Labels of one `activity_id`: names and synonyms in both languages, and their source.

    Terms, not figures: a label cites where its wording comes from, or says efdb coined it.
    """

    __tablename__ = "activity"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255))
    description_zh: Mapped[str | None] = mapped_column(String(1000))
    description_en: Mapped[str | None] = mapped_column(String(1000))
    keywords_zh: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords_en: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(500))
    locator: Mapped[str | None] = mapped_column(String(500))
    # Derived by the loader: the id, names and keywords, lowercased, one per line. `q` matches
    # a substring of it (a search term holds no whitespace, so it never spans two lines).
    search_text: Mapped[str] = mapped_column(Text)


class ActivityLabel(Base):
    """A publisher's own labels of an activity in its namespace (`{publisher}-…`).

    Given in upload columns (`activity_name_zh`, `activity_name_en`, `activity_keywords`),
    shown in the draft's validation report for review, and written here in the transaction
    that publishes the version; a later published version of the same publisher replaces them.
    Terms, not figures: `labelled_in` says which release gave them.
    """

    __tablename__ = "activity_label"

    activity_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publisher.id"), index=True)
    # The publisher's slug, as the namespace rule and the API name it.
    publisher: Mapped[str] = mapped_column(String(64))
    name_zh: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255))
    keywords_zh: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords_en: Mapped[list[str]] = mapped_column(JSON, default=list)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"))
    # `publisher/dataset@version` of the release that gave these labels, and its upload row.
    labelled_in: Mapped[str] = mapped_column(String(300))
    upload_file_name: Mapped[str | None] = mapped_column(String(255))
    row_number: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # As `activity.search_text`: the id, names and keywords, lowercased, one a line.
    search_text: Mapped[str] = mapped_column(Text)


class ReferenceVersion(Base):
    """The version of one reference table that is loaded: the sha256 of what it was built from."""

    __tablename__ = "reference_version"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Tables only the reference loader writes: shared test databases keep them between tests.
REFERENCE_TABLES = (
    "location",
    "location_member",
    "gwp_value",
    "conversion_property",
    "activity",
    "reference_version",
)
