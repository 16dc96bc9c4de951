"""Declared units: parsed by pint, limited to the units a background database needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.reference import units
from app.reference.units import ACCEPTED_UNITS, UnitError, parse_declared_unit


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("kWh", "kWh"),
        ("kilowatt_hour", "kWh"),
        ("MWh", "MWh"),
        ("TJ", "TJ"),
        ("terajoule", "TJ"),
        ("t", "t"),
        ("tonne", "t"),
        ("t*km", "t*km"),
        ("t km", "t*km"),
        ("tkm", "t*km"),
        ("t·km", "t*km"),
        ("m3", "m3"),
        ("m**3", "m3"),
        ("L", "L"),
        ("liter", "L"),
        ("piece", "piece"),
    ],
)
def test_spellings_resolve_to_the_canonical_unit(text: str, canonical: str) -> None:
    assert parse_declared_unit(text).canonical == canonical


def test_every_accepted_unit_is_its_own_canonical_spelling() -> None:
    for name in ACCEPTED_UNITS:
        assert parse_declared_unit(name).canonical == name


@pytest.mark.parametrize("text", ["kwhh", "", "  ", "kWh)", "1/0"])
def test_non_units_are_refused(text: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_declared_unit(text)
    assert caught.value.code == "unknown_unit"


def test_units_outside_the_list_say_which_to_use() -> None:
    with pytest.raises(UnitError) as caught:
        parse_declared_unit("Btu")
    assert caught.value.code == "unsupported_unit"
    assert "kWh" in caught.value.detail


def test_units_parse_where_the_registry_cache_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only home (an unprivileged container user) costs the cache, never the units."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked / "cache"))
    registry = units._unit_registry()
    assert registry("1 kWh").to("MJ").magnitude == pytest.approx(3.6)
