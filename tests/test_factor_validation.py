"""Checks on one factor record: field rules and the gas/GWP consistency of contract §2."""

from __future__ import annotations

from typing import Any

import pytest

from app.factors.schemas import FactorFields
from app.publishing.records import RowProblem, parse_record

# Synthetic record (not a real factor); the IPCC natural-gas numbers below are real and cited
# in seed_data/ipcc-tfi/ipcc-2006-stationary-combustion/1.0.0.csv.
VALID: dict[str, Any] = {
    "factor_code": "synthetic-1",
    "activity_id": "synthetic-activity",
    "name_en": "Synthetic test record",
    "region": "GLO",
    "reference_year": "2006",
    "unit": "TJ",
    "co2e": "56154.5",
    "co2": "56100",
    "ch4": "1",
    "n2o": "0.1",
    "gwp_set": "AR5",
    "boundary": "combustion",
    "source_title": "Synthetic test fixture (not a real factor)",
}


def problems(**changes: Any) -> list[RowProblem]:
    parsed = parse_record(7, {**VALID, **changes})
    return parsed if isinstance(parsed, list) else []


def test_valid_record_parses_with_types() -> None:
    parsed = parse_record(2, VALID)
    assert isinstance(parsed, FactorFields)
    assert parsed.reference_year == 2006
    assert parsed.co2e == 56154.5


def test_consistency_uses_the_declared_gwp_set_within_half_a_percent() -> None:
    assert problems() == []  # AR5: 56100 + 28 * 1 + 265 * 0.1 = 56154.5
    assert problems(gwp_set="AR4") == []  # 56154.8: 0.0005 % away, inside the tolerance
    (problem,) = problems(co2e="56500")  # 0.6 % above the AR5 sum
    assert (problem.column, problem.code) == ("co2e", "co2e_mismatch")


@pytest.mark.parametrize(
    ("changes", "column", "code"),
    [
        ({"co2e": "60000"}, "co2e", "co2e_mismatch"),
        ({"gwp_set": ""}, "gwp_set", "missing_gwp_set"),
        ({"co2e": "-1", "co2": "", "ch4": "", "n2o": "", "gwp_set": ""}, "co2e", "negative_co2e"),
        ({"co2e": "nan"}, "co2e", "not_finite"),
        ({"co2e": "inf"}, "co2e", "not_finite"),
        ({"unit": "kwhh"}, "unit", "unknown_unit"),
        ({"unit": "Btu"}, "unit", "unsupported_unit"),
        ({"region": "china"}, "region", "string_pattern_mismatch"),
        ({"reference_year": "1066"}, "reference_year", "greater_than_equal"),
        ({"boundary": "cradle"}, "boundary", "literal_error"),
        ({"dq_reliability": "6"}, "dq_reliability", "less_than_equal"),
        ({"factor_code": "has space"}, "factor_code", "string_pattern_mismatch"),
        ({"uncertainty_low": "60000"}, "uncertainty_low", "uncertainty_order"),
        ({"uncertainty_high": "1"}, "uncertainty_high", "uncertainty_order"),
        ({"name_en": ""}, "name_en", "missing_name"),
        ({"source_title": ""}, "source_title", "missing"),
        ({"colour": "red"}, "colour", "extra_forbidden"),
    ],
)
def test_each_problem_names_its_row_and_column(
    changes: dict[str, Any], column: str, code: str
) -> None:
    found = problems(**changes)
    assert any(p.row == 7 and p.column == column and p.code == code for p in found), found


def test_co2_alone_is_a_partial_breakdown_but_cannot_exceed_co2e() -> None:
    co2_only = {"ch4": "", "n2o": "", "gwp_set": "", "co2e": "0.20705", "co2": "0.20493"}
    assert problems(**co2_only) == []
    (problem,) = problems(**{**co2_only, "co2": "0.3"})
    assert (problem.column, problem.code) == ("co2", "co2_exceeds_co2e")


def test_negative_zero_is_stored_as_zero() -> None:
    """-0.0 == 0.0 for the diff, but not for the content hash, which hashes the printed form."""
    parsed = parse_record(2, {**VALID, "co2e": "-0.0", "co2": "0", "ch4": "-0", "n2o": "0"})
    assert isinstance(parsed, FactorFields)
    assert (repr(parsed.co2e), repr(parsed.ch4)) == ("0.0", "0.0")
