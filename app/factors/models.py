"""One emission-factor row inside one dataset version, and the cited source documents rows
name (deduplicated across factors)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigId


class Source(Base):
    __tablename__ = "source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha256 over (title, publisher, year, url): NULLs would defeat a plain unique constraint.
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    publisher: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(String(255))


class FactorValues:
    """A factor row's values: the columns `factor` and `factor_draft` share."""

    factor_code: Mapped[str] = mapped_column(String(128))
    activity_id: Mapped[str] = mapped_column(String(128))
    name_zh: Mapped[str | None] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(255))
    product_code_scheme: Mapped[str | None] = mapped_column(String(64))
    product_code: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(32))
    reference_year: Mapped[int] = mapped_column(SmallInteger)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(32))
    co2e: Mapped[float] = mapped_column(Double)
    co2: Mapped[float | None] = mapped_column(Double)
    ch4: Mapped[float | None] = mapped_column(Double)
    n2o: Mapped[float | None] = mapped_column(Double)
    other_ghg_co2e: Mapped[float | None] = mapped_column(Double)
    biogenic_co2: Mapped[float | None] = mapped_column(Double)
    # Declared by the publisher only (null: the default rule of app/reference/gwp.py).
    ch4_origin: Mapped[str | None] = mapped_column(String(16))
    gwp_set: Mapped[str | None] = mapped_column(String(8))
    boundary: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(255))
    uncertainty_low: Mapped[float | None] = mapped_column(Double)
    uncertainty_high: Mapped[float | None] = mapped_column(Double)
    uncertainty_distribution: Mapped[str | None] = mapped_column(String(16))
    # What the interval is, as declared by the publisher (null: not declared).
    uncertainty_kind: Mapped[str | None] = mapped_column(String(24))
    uncertainty_confidence_level: Mapped[float | None] = mapped_column(Double)
    dq_reliability: Mapped[int | None] = mapped_column(SmallInteger)
    dq_completeness: Mapped[int | None] = mapped_column(SmallInteger)
    dq_temporal: Mapped[int | None] = mapped_column(SmallInteger)
    dq_geographical: Mapped[int | None] = mapped_column(SmallInteger)
    dq_technological: Mapped[int | None] = mapped_column(SmallInteger)
    dqr: Mapped[float | None] = mapped_column(Double)
    source_locator: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)


class Factor(FactorValues, Base):
    __tablename__ = "factor"
    __table_args__ = (
        UniqueConstraint("version_id", "factor_code"),
        # Exact lookup and history of one factor_code across versions.
        Index("ix_factor_dataset_code", "dataset_id", "factor_code"),
        # Resolution: activity + region + year, newest year first; then what a probe groups
        # and filters its candidates by, so that it reads them from the index alone, in order.
        Index(
            "ix_factor_resolve",
            "activity_id",
            "region",
            "reference_year",
            "version_id",
            "unit",
            "boundary",
            "id",
        ),
        Index("ix_factor_region_year", "region", "reference_year"),
        Index("ix_factor_version_id", "version_id", "id"),
        # A dataset's factors in id order: its search pages without a sort of the dataset.
        Index("ix_factor_dataset_id_id", "dataset_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"))
    # Denormalised from the version so that searches filter without a join.
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"), index=True)
    row_number: Mapped[int | None] = mapped_column(Integer)
    # The read indexes only released rows need (`factor_draft` has none).
    category: Mapped[str | None] = mapped_column(String(255), index=True)
    unit: Mapped[str] = mapped_column(String(32), index=True)
    boundary: Mapped[str] = mapped_column(String(32), index=True)


class FactorDraft(FactorValues, Base):
    """A draft's rows, until it is submitted (`app.publishing.draft_rows`): the columns of
    `factor`, without what only released rows need.

    An upload writes a whole file here, and nothing reads a draft but its own review pages and
    the upload's diff against the last release: no read index, no search index, no foreign key
    (its version, dataset and sources are checked when the rows move into `factor` at submit,
    in one `INSERT ... SELECT`). Two B-trees: the rows of a draft in upload order (`position`,
    1, 2, … per draft: its pages and the order the rows move in), and one code per draft, which
    finds a duplicate `factor_code` as the rows are written."""

    __tablename__ = "factor_draft"
    __table_args__ = (UniqueConstraint("version_id", "factor_code"),)

    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    uid: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[int] = mapped_column(Integer)
    row_number: Mapped[int | None] = mapped_column(Integer)


class ReleaseFacetCount(Base):
    """How many factors of a released version hold each value of a factor-level facet.

    Written once at publish (released rows never change), so that facet counts over whole
    releases (the explorer's home page, a publisher's or a dataset's page) add up a few rows per
    release instead of grouping a million factors. `facet` is a factor column's facet name
    (`region`, `year`, `category`, `unit`, `boundary`, `activity_id`) or `_total` (value
    `""`: the version's row count).
    """

    __tablename__ = "release_facet_count"

    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"), primary_key=True)
    facet: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ReleaseFacetPairCount(Base):
    """How many factors of a released version hold each value of a facet among those holding
    one value of another: `region` = `CN-GD` holds 2,800 factors, 281 of them `year` `2020`.

    Written once at publish beside `ReleaseFacetCount`, so that a search filtered on one factor
    column (`filter_facet`: region, year, category, unit or boundary) answers its facets from a
    few rows per release. `activity_id` is no filter here: its index bounds the grouping, and
    its values are the many ones (a release's rows per activity pair are its largest part).
    """

    __tablename__ = "release_facet_pair_count"

    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_version.id"), primary_key=True)
    filter_facet: Mapped[str] = mapped_column(String(32), primary_key=True)
    filter_value: Mapped[str] = mapped_column(String(255), primary_key=True)
    facet: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
