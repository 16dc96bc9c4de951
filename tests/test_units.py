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


# --- Conversions pinned to the published definitions -------------------------------------------
# Each declared unit of a dimension with more than one unit, as a multiple of that dimension's
# SI-based unit, written out from the definition (not read from pint or units.py), so that a
# wrong definition in app/reference/units.py (mmBtu = 1e5 Btu) fails here:
# - NIST SP 811 (2008), Appendix B.8/B.9: British thermal unit_IT = 1.055 056 E+03 J (exactly
#   1055.05585262 J, from the International Table calorie 4.1868 J); pound (avoirdupois) =
#   0.453 592 37 kg exactly; ton, short (2000 lb) = 9.071 847 4 E+02 kg; gallon (US) =
#   3.785 412 E-03 m3 (exactly 231 in3 = 3.785411784 L); mile (international) = 1.609 344 E+03 m;
#   cubic foot = 2.831 685 E-02 m3 (exactly 0.3048**3 = 0.028316846592 m3); kilowatt hour =
#   3.6 E+06 J.
# - NIST Handbook 44 (2024), Appendix C, "General Tables of Units of Measurement": 1 gallon (US)
#   = 231 cubic inches; 1 inch = 2.54 cm exactly; 1 short ton = 2000 pounds; 1 pound =
#   0.45359237 kg; 1 mile = 5280 feet = 1.609344 km.
# - SI Brochure (BIPM, 9th ed.), Table 8: tonne t = 1000 kg, litre L = 1 dm3.
MMBTU_IN_GJ = 1e6 * 1055.05585262 / 1e9  # 1e6 Btu_IT
PINNED_CONVERSIONS: dict[str, tuple[str, float]] = {
    "kWh": ("MJ", 3.6),
    "MWh": ("MJ", 3600.0),
    "GWh": ("MJ", 3.6e6),
    "MJ": ("MJ", 1.0),
    "GJ": ("MJ", 1000.0),
    "TJ": ("MJ", 1e6),
    "mmBtu": ("GJ", MMBTU_IN_GJ),
    "g": ("kg", 0.001),
    "kg": ("kg", 1.0),
    "t": ("kg", 1000.0),
    "short_ton": ("t", 2000 * 0.45359237 / 1000),  # 0.90718474 t
    "L": ("m3", 0.001),
    "ML": ("L", 1e6),
    "m3": ("L", 1000.0),
    "gal": ("L", 231 * 2.54**3 / 1000),  # 3.785411784 L
    "UK_gallon": ("L", 4.54609),  # UK Weights and Measures Act 1985: exactly 4.54609 L
    "kgce": ("MJ", 29.3076),  # GB/T 2589-2020: 1 kgce = 29.3076 MJ (7000 kcal_IT)
    "tce": ("GJ", 29.3076),  # 1000 kgce
    "km": ("km", 1.0),
    "mi": ("km", 1.609344),
}
# Amount units the importers' sources use beside the declared ones (EPA Hub: Btu, lb, ft3).
PINNED_AMOUNT_CONVERSIONS: list[tuple[str, str, float]] = [
    ("Btu", "J", 1055.05585262),
    ("mmBtu", "kWh", MMBTU_IN_GJ * 1e9 / 3.6e6),  # 293.07107 kWh
    ("lb", "kg", 0.45359237),
    ("short_ton", "lb", 2000.0),
    ("ft**3", "m3", 0.3048**3),  # 0.028316846592 m3, a geometric cubic foot
    ("gal", "m3", 0.003785411784),
    ("imperial_gallon", "L", 4.54609),  # UK Weights and Measures Act 1985, Sch. 1
    ("cal_IT", "J", 4.1868),  # the International Table calorie, exactly 4.1868 J
    ("kcal_IT", "kJ", 4.1868),
    ("kgce", "kcal_IT", 7000.0),  # GB/T 2589-2020: standard coal is 7000 kcal per kg
    ("吨标准煤", "kgce", 1000.0),
    ("千克标准煤", "kJ", 29307.6),
    ("tce", "kWh", 29307.6 / 3.6),  # 8141 kWh
]


def test_the_calorie_is_the_thermochemical_one_unless_it_says_cal_it() -> None:
    """pint's bare `cal` is 4.184 J; the International Table calorie of the standard coal
    equivalent (and of GB/T 2589) is `cal_IT`, 4.1868 J: the two are never taken for each other."""
    assert units.conversion_multiplier("cal", "J") == 4.184
    assert units.conversion_multiplier("cal_IT", "J") == 4.1868


def test_the_uk_and_the_us_gallon_are_different_units() -> None:
    assert parse_declared_unit("UK_gallon").canonical == "UK_gallon"
    assert parse_declared_unit("imperial_gallon").canonical == "UK_gallon"
    assert parse_declared_unit("gallon").canonical == "gal"
    assert units.conversion_multiplier("UK_gallon", "gal") == pytest.approx(
        4.54609 / 3.785411784, rel=1e-9
    )


def test_standard_coal_units_are_energy_spelt_in_latin_or_chinese() -> None:
    assert parse_declared_unit("吨标准煤").canonical == "tce"
    assert parse_declared_unit("千克标准煤").canonical == "kgce"
    assert parse_declared_unit("tce").dimension == "energy"
    assert "GB/T 2589-2020" in units.UNIT_DEFINITIONS["kgce"]
    with pytest.raises(UnitError) as caught:  # standard coal is energy, not a mass of coal
        units.conversion_multiplier("tce", "t")
    assert caught.value.code == "incompatible_unit"


@pytest.mark.parametrize(
    ("unit", "base", "expected"), [(u, b, e) for u, (b, e) in PINNED_CONVERSIONS.items()]
)
def test_declared_units_convert_as_their_published_definitions(
    unit: str, base: str, expected: float
) -> None:
    # rel 1e-6: pint's Btu is the rounded 1055.056 J of SP 811's table (1.4e-7 from exact).
    assert units.conversion_multiplier(unit, base) == pytest.approx(expected, rel=1e-6)
    assert units.conversion_multiplier(base, unit) == pytest.approx(1 / expected, rel=1e-6)


@pytest.mark.parametrize(("source", "target", "expected"), PINNED_AMOUNT_CONVERSIONS)
def test_amount_units_convert_as_their_published_definitions(
    source: str, target: str, expected: float
) -> None:
    assert units.conversion_multiplier(source, target) == pytest.approx(expected, rel=1e-6)


def test_every_convertible_declared_unit_has_a_pinned_definition() -> None:
    """A new declared unit that converts into another one needs its definition pinned above."""
    for name, dimension in ACCEPTED_UNITS.items():
        if len(units.units_of_dimension(dimension)) > 1:
            assert name in PINNED_CONVERSIONS, f"pin {name}'s published definition"


def test_a_standard_cubic_foot_is_not_converted_into_cubic_metres() -> None:
    """scf is gas at 60 °F and 1 atm, not the geometric 0.028316846592 m3 of ft3: it converts
    only through a cited property, never silently."""
    with pytest.raises(UnitError) as caught:
        units.conversion_multiplier("scf", "m3")
    assert caught.value.code == "incompatible_unit"
