"""Declared units: pint parses and compares them; this module fixes which ones we accept.

A factor's `unit` is what its value is *per* (kg CO2e per kWh...). Accepting every unit
pint knows would let `m**7` through, so the service keeps a short list of units a
background database needs, each compared to the input by pint (not by spelling).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import pint

from app.core.problem_text import Message


def _unit_registry() -> pint.UnitRegistry[float]:
    """pint parses its definition files on every start (about 1 s of CPU, in each server
    process, worker and CLI run); ":auto:" caches the parsed registry in the user's cache
    directory, keyed by the files' content. Where that directory cannot be written (a
    read-only home in a container) pint parses the files as it does without a cache."""
    try:
        return pint.UnitRegistry(cache_folder=":auto:")
    except OSError:
        return pint.UnitRegistry()


_registry = _unit_registry()
# Spellings common in emission-factor tables that pint does not know.
_registry.define("m3 = meter ** 3")
_registry.define("m2 = meter ** 2")
_registry.define("tkm = tonne * kilometer")
_registry.define("piece = [item] = pc")
# Units of the DESNZ conversion factors (app/importers/desnz.py) that are counts of something
# other than mass, energy or distance: a passenger carried one km, a hotel room for one night.
# Each is its own dimension, so that nothing converts them into anything else.
_registry.define("passenger = [passenger]")
_registry.define("room_night = [room_night] = room_nights")
# Money with its currency and price year (EPA supply-chain factors are per 2021 or 2022 US
# dollar, purchaser price). Each price year is its own dimension: a dollar of one year becomes
# one of another only through a cited price-index table, which the service does not hold, so
# such a conversion is refused (`conversion_multiplier`) rather than guessed.
# US units of the EPA GHG Emission Factors Hub (app/importers/epa_hub.py): the million
# (international table) Btu, the short ton (2000 lb: `t` stays the metric tonne) and the US
# gallon (`gal`; the UK gallon is `UK_gallon`, pint's `imperial_gallon`). A standard cubic
# foot (scf, gas at 60 °F and 1 atm) is its own dimension: it is not a geometric cubic foot of
# gas at any state, so it is never converted into m3.
_registry.define("mmBtu = 1e6 * Btu = MMBtu")
_registry.define("scf = [standard_cubic_foot]")
# China's energy statistics count in standard coal equivalent (标准煤): GB/T 2589-2020
# defines 1 kgce as 29.3076 MJ (7000 kcal of the International Table calorie, 4.1868 J), so
# these are energy units; a tonne of real coal becomes energy only through its own cited
# calorific value (a conversion property). `cal_IT` is pint's International Table calorie;
# the bare `cal` stays pint's thermochemical one (4.184 J).
_registry.define("kgce = 29.3076 * megajoule = _ = 千克标准煤")
_registry.define("tce = 1000 * kgce = _ = 吨标准煤")
_registry.define("@alias international_calorie = cal_IT")
MONEY_UNITS: dict[str, str] = {
    "USD_2021": "money (USD, 2021 prices)",
    "USD_2022": "money (USD, 2022 prices)",
}
for _money in MONEY_UNITS:
    _registry.define(f"{_money} = [money_{_money.lower()}]")

# Canonical spelling -> human dimension name. Order is the order /v1/units lists them.
ACCEPTED_UNITS: dict[str, str] = {
    "kWh": "energy",
    "MWh": "energy",
    "GWh": "energy",
    "MJ": "energy",
    "GJ": "energy",
    "TJ": "energy",
    "mmBtu": "energy",
    "kgce": "energy",
    "tce": "energy",
    "g": "mass",
    "kg": "mass",
    "t": "mass",
    "short_ton": "mass",
    "L": "volume",
    "ML": "volume",
    "m3": "volume",
    "gal": "volume",
    "UK_gallon": "volume",
    "m2": "area",
    "km": "distance",
    "mi": "distance",
    "t*km": "freight transport",
    "passenger*km": "passenger transport",
    "room_night": "accommodation",
    "piece": "count",
    "scf": "gas volume at standard conditions",
    **MONEY_UNITS,
}

# Where a unit's size is fixed by a document rather than by SI or pint's own definitions, the
# document: `GET /v1/units` names it beside the unit.
UNIT_DEFINITIONS: dict[str, str] = {
    "kgce": "1 kgce = 29.3076 MJ (7000 kcal_IT): GB/T 2589-2020 综合能耗计算通则 "
    "(General rules for calculation of the comprehensive energy consumption)",
    "tce": "1 tce = 1000 kgce = 29.3076 GJ: GB/T 2589-2020 综合能耗计算通则",
    "gal": "US liquid gallon, 231 cubic inches = 3.785411784 L (pint's `gallon`)",
    "UK_gallon": "UK (imperial) gallon, 4.54609 L exactly (pint's `imperial_gallon`), "
    "as the UK Weights and Measures Act 1985 defines it",
    "short_ton": "2000 lb = 907.18474 kg (pint's `short_ton`)",
}

# pint reads "ton" as the short ton; a factor's unit says `t` (metric tonne) or `short_ton`.
_AMBIGUOUS_TON = frozenset({"ton", "tons"})


class UnitError(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class DeclaredUnit:
    canonical: str
    dimension: str


def _parse(text: str) -> pint.Unit:
    try:
        return _registry.parse_units(text.replace("·", "*"))
    # pint raises a zoo of errors on garbage (tokenize, zero division...): all mean "not a unit".
    except Exception as exc:
        raise UnitError("unknown_unit", Message("unit.unknown", unit=text)) from exc


@lru_cache(maxsize=1)
def _accepted() -> list[tuple[pint.Unit, str]]:
    return [(_parse(name), name) for name in ACCEPTED_UNITS]


def _same_unit(a: pint.Unit, b: pint.Unit) -> bool:
    """Equal as quantities (`tkm` is `t*km`), not merely of the same dimension."""
    if a.dimensionality != b.dimensionality:
        return False
    return abs(float((1 * a).to(b).magnitude) - 1.0) < 1e-12


@lru_cache(maxsize=4096)
def parse_declared_unit(text: str) -> DeclaredUnit:
    """Return the canonical spelling of `text`, or raise UnitError saying why not."""
    if not text or not text.strip():
        raise UnitError("unknown_unit", Message("unit.empty"))
    if text.strip() in _AMBIGUOUS_TON:
        raise UnitError("ambiguous_unit", Message("unit.ambiguous_ton", unit=text.strip()))
    unit = _parse(text.strip())
    for accepted, name in _accepted():
        if _same_unit(unit, accepted):
            return DeclaredUnit(canonical=name, dimension=ACCEPTED_UNITS[name])
    same_dimension = [n for a, n in _accepted() if a.dimensionality == unit.dimensionality]
    raise UnitError(
        "unsupported_unit",
        Message("unit.unsupported_use", unit=text, units=", ".join(same_dimension))
        if same_dimension
        else Message("unit.unsupported", unit=text),
    )


# --- Conversions between an amount's unit and a factor's unit (resolve, estimate) -------------

# 12 significant digits: pint's float arithmetic leaves 1000.0000000000001 for TJ -> GJ.
SIGNIFICANT_DIGITS = 12


# The largest magnitude a result can have: an IEEE 754 double (JSON numbers beyond it would be
# written as null, or not at all).
LARGEST_NUMBER = sys.float_info.max


def not_finite_detail(what: str, calculation: str) -> str:
    """Why a result is refused: it overflows (or is NaN), said with the calculation."""
    return Message(
        "result.not_finite", what=what, calculation=calculation, largest=f"{LARGEST_NUMBER:.3g}"
    )


def clean_float(value: float) -> float:
    """`value` without binary-float noise past 12 significant digits (1000.0000000000001 → 1000)."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class AmountUnit:
    """A unit an amount is given in: any unit pint knows whose dimension factors use."""

    text: str
    canonical: str
    dimension: str


@lru_cache(maxsize=1)
def _dimensions() -> dict[object, str]:
    return {unit.dimensionality: ACCEPTED_UNITS[name] for unit, name in _accepted()}


@lru_cache(maxsize=64)
def units_of_dimension(dimension: str) -> tuple[str, ...]:
    """The declared units of one dimension (energy → kWh, MWh, GWh, MJ, GJ, TJ)."""
    return tuple(name for name, of in ACCEPTED_UNITS.items() if of == dimension)


def dimension_of_declared(canonical: str) -> str:
    """The dimension name of a canonical declared unit (kWh → energy)."""
    return ACCEPTED_UNITS[canonical]


@lru_cache(maxsize=4096)
def parse_amount_unit(text: str) -> AmountUnit:
    """Parse the unit of an amount or of a requested factor unit.

    Broader than `parse_declared_unit`: `Btu`, `therm`, `gallon` or `lb` are fine here as long
    as some declared unit shares their dimension, because they only get converted.
    """
    if not text or not text.strip():
        raise UnitError("unknown_unit", Message("unit.empty"))
    if text.strip() in _AMBIGUOUS_TON:
        raise UnitError("ambiguous_unit", Message("unit.ambiguous_ton", unit=text.strip()))
    unit = _parse(text.strip())
    try:
        return AmountUnit(text, parse_declared_unit(text).canonical, _dimension_name(unit))
    except UnitError:
        pass
    return AmountUnit(text, f"{unit:~}" or text.strip(), _dimension_name(unit))


def _dimension_name(unit: pint.Unit) -> str:
    name = _dimensions().get(unit.dimensionality)
    if name is None:
        dimensions = ", ".join(dict.fromkeys(ACCEPTED_UNITS.values()))
        raise UnitError(
            "unsupported_unit",
            Message(
                "unit.unsupported_dimension",
                unit=str(unit),
                dimensionality=str(unit.dimensionality),
                dimensions=dimensions,
            ),
        )
    return name


@lru_cache(maxsize=4096)
def conversion_multiplier(from_unit: str, to_unit: str) -> float:
    """How many `to_unit` one `from_unit` is (MWh → kWh: 1000), or UnitError if not the same kind.

    Only same-dimension conversions: kg → kWh needs a cited property of the material (its
    energy content), which `convert_with_properties` applies.
    """
    source, target = _parse(from_unit), _parse(to_unit)
    if source.dimensionality != target.dimensionality:
        if str(source) in MONEY_UNITS and str(target) in MONEY_UNITS:
            raise UnitError(
                "price_year_conversion",
                Message("unit.money_not_convertible", source=from_unit, target=to_unit),
            )
        raise UnitError(
            "incompatible_unit",
            Message(
                "unit.incompatible",
                source=from_unit,
                source_kind=_describe(source),
                target=to_unit,
                target_kind=_describe(target),
            ),
        )
    return clean_float(float((1 * source).to(target).magnitude))


# A property used in a conversion: its index in the list given, and +1 (multiplied) or -1.
PropertyStep = tuple[int, int]


def convert_with_properties(
    from_unit: str,
    to_unit: str,
    properties: Sequence[tuple[float, str]],
    *,
    max_steps: int = 2,
) -> tuple[float, tuple[PropertyStep, ...]] | None:
    """How many `to_unit` one `from_unit` is through cited properties, each `(value, unit)`
    such as (25.8, "TJ/Gg"), or None when no combination of at most `max_steps` of them gives
    `to_unit`'s dimension. Fewest properties first: t → TJ multiplies by an NCV; TJ → t
    divides by it; L → TJ would take a density and an NCV.
    """
    source, target = 1 * _parse(from_unit), _parse(to_unit)
    quantities = [value * _parse(unit) for value, unit in properties]
    for steps in range(1, max_steps + 1):
        for chosen in itertools.permutations(range(len(quantities)), steps):
            for signs in itertools.product((1, -1), repeat=steps):
                result = source
                for index, sign in zip(chosen, signs, strict=True):
                    result = result * quantities[index] if sign > 0 else result / quantities[index]
                if result.dimensionality == target.dimensionality:
                    path = tuple(zip(chosen, signs, strict=True))
                    return clean_float(float(result.to(target).magnitude)), path
    return None


def _describe(unit: pint.Unit) -> str:
    return _dimensions().get(unit.dimensionality) or str(unit.dimensionality)


def pint_spelling(text: str) -> str:
    """How the unit library reads `text` (kWh → kilowatt_hour)."""
    return str(_parse(text))
