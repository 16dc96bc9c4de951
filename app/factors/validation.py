"""Checks that span several fields of one factor record (field-level ones live in the schema)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.problem_text import Message
from app.factors.schemas import KINDS_WITH_LEVEL, PEDIGREE_FIELDS, FactorValues
from app.reference.gwp import (
    CO2E_TOLERANCE,
    GwpTable,
    GwpUnavailable,
    co2e_from_gases,
    load_gwp_table,
    shipped_gwp_table,
)
from app.reference.models import Location


@dataclass(frozen=True)
class RecordReference:
    """The reference data a record is checked against: GWP100 values and known regions (an
    activity without labels is accepted: the upload report warns, see
    app.publishing.labels)."""

    gwp: GwpTable
    regions: frozenset[str]


def load_record_reference(session: Session) -> RecordReference:
    """The database's reference data (two queries), for checking an upload or a seed file."""
    # A Core query: the ORM's row handling added a third to reading the registry's ~5,300
    # codes, which every upload does.
    regions = frozenset(session.connection().execute(select(Location.code)).scalars())
    return RecordReference(gwp=load_gwp_table(session), regions=regions)


@lru_cache(maxsize=1)
def shipped_record_reference() -> RecordReference:
    """The reference data as `seed_data/reference/` ships it (for code without a database)."""
    from app.reference.loader import reference_rows

    rows = reference_rows()
    return RecordReference(
        gwp=shipped_gwp_table(),
        regions=frozenset(row["code"] for row in rows.locations),
    )


@dataclass(frozen=True)
class RecordProblem:
    column: str
    code: str
    detail: str


def record_problems(
    record: FactorValues, reference: RecordReference | None = None
) -> list[RecordProblem]:
    checked = reference or shipped_record_reference()
    problems: list[RecordProblem] = []
    if record.region not in checked.regions:
        problems.append(
            RecordProblem(
                "region",
                "unknown_region",
                Message("record.unknown_region", region=record.region),
            )
        )
    if not record.name_zh and not record.name_en:
        problems.append(RecordProblem("name_en", "missing_name", Message("record.missing_name")))
    if record.valid_from and record.valid_to and record.valid_from > record.valid_to:
        problems.append(
            RecordProblem("valid_to", "invalid_window", Message("record.invalid_window"))
        )
    if record.uncertainty_low is not None and record.uncertainty_low > record.co2e:
        problems.append(
            RecordProblem(
                "uncertainty_low",
                "uncertainty_order",
                Message("record.low_above", low=record.uncertainty_low, co2e=record.co2e),
            )
        )
    if record.uncertainty_high is not None and record.uncertainty_high < record.co2e:
        problems.append(
            RecordProblem(
                "uncertainty_high",
                "uncertainty_order",
                Message("record.high_below", high=record.uncertainty_high, co2e=record.co2e),
            )
        )
    problems.extend(_uncertainty_declaration_problems(record))
    problems.extend(_gas_problems(record, checked.gwp))
    return problems


def _uncertainty_declaration_problems(record: FactorValues) -> list[RecordProblem]:
    """What an interval is declared to be must fit: a kind needs an interval, a confidence
    level needs a kind that has one (confidence interval, percentile range), and those kinds
    need their level: an interval is never labelled with a confidence nobody stated."""
    has_interval = record.uncertainty_low is not None or record.uncertainty_high is not None
    kind, level = record.uncertainty_kind, record.uncertainty_confidence_level
    if (kind is not None or level is not None) and not has_interval:
        column = "uncertainty_kind" if kind is not None else "uncertainty_confidence_level"
        return [
            RecordProblem(column, "uncertainty_without_interval", Message("record.no_interval"))
        ]
    if level is not None and kind is None:
        return [
            RecordProblem(
                "uncertainty_kind", "missing_uncertainty_kind", Message("record.level_needs_kind")
            )
        ]
    if kind in KINDS_WITH_LEVEL and level is None:
        return [
            RecordProblem(
                "uncertainty_confidence_level",
                "missing_confidence_level",
                Message("record.kind_needs_level", kind=kind),
            )
        ]
    if kind is not None and kind not in KINDS_WITH_LEVEL and level is not None:
        return [
            RecordProblem(
                "uncertainty_confidence_level",
                "confidence_level_not_applicable",
                Message("record.level_not_applicable", kind=kind),
            )
        ]
    return []


def _gas_problems(record: FactorValues, gwp: GwpTable) -> list[RecordProblem]:
    # CO2's GWP is 1 in every set, so a CO2-only factor needs no gwp_set.
    # Three tests, not a generator over them: every upload row comes here.
    needs_gwp = (
        record.ch4 is not None or record.n2o is not None or record.other_ghg_co2e is not None
    )
    if needs_gwp and record.gwp_set is None:
        return [
            RecordProblem(
                "gwp_set",
                "missing_gwp_set",
                Message("record.missing_gwp_set"),
            )
        ]
    if not needs_gwp:
        # CO2 alone is a partial breakdown: other gases may be unreported, but the CO2 part
        # cannot exceed the total.
        if record.co2 is not None and record.co2 > record.co2e * (1 + CO2E_TOLERANCE):
            return [
                RecordProblem(
                    "co2",
                    "co2_exceeds_co2e",
                    Message("record.co2_above", co2=record.co2, co2e=record.co2e),
                )
            ]
        return []
    assert record.gwp_set is not None
    try:
        expected = co2e_from_gases(
            record.gwp_set,
            co2=record.co2,
            ch4=record.ch4,
            n2o=record.n2o,
            other=record.other_ghg_co2e,
            table=gwp,
        )
    except GwpUnavailable as exc:
        return [RecordProblem("gwp_set", "unknown_gwp_set", str(exc))]
    if abs(expected - record.co2e) > CO2E_TOLERANCE * max(abs(expected), abs(record.co2e), 1e-12):
        return [
            RecordProblem(
                "co2e",
                "co2e_mismatch",
                Message(
                    "record.co2e_mismatch",
                    co2e=record.co2e,
                    gwp_set=record.gwp_set,
                    expected=f"{expected:.6g}",
                    tolerance=f"{CO2E_TOLERANCE:.1%}",
                    source=gwp.source(record.gwp_set),
                ),
            )
        ]
    return []


_pedigree_scores = operator.attrgetter(*PEDIGREE_FIELDS)


def data_quality_rating(record: FactorValues) -> float | None:
    """Mean of the pedigree scores given (1 best, 5 worst)."""
    return _mean_score(_pedigree_scores(record))


# Five scores of 1 to 5 or none: 7,776 combinations at most, each worked out once.
@lru_cache(maxsize=8192)
def _mean_score(scores: tuple[int | None, ...]) -> float | None:
    # Scores are 1 to 5 (the schema refuses 0): `filter(None, …)` leaves out the missing ones.
    given = list(filter(None, scores))
    return round(sum(given) / len(given), 3) if given else None
