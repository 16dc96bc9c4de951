"""Declared units: pint parses and compares them; this module fixes which ones we accept.

A factor's `unit` is what its value is *per* (kg CO2e per kWh...). Accepting every unit
pint knows would let `m**7` through, so the service keeps a short list of units a
background database needs, each compared to the input by pint (not by spelling).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pint

_registry: pint.UnitRegistry[float] = pint.UnitRegistry()
# Spellings common in emission-factor tables that pint does not know.
_registry.define("m3 = meter ** 3")
_registry.define("m2 = meter ** 2")
_registry.define("tkm = tonne * kilometer")
_registry.define("piece = [item] = pc")

# Canonical spelling -> human dimension name. Order is the order /v1/units lists them.
ACCEPTED_UNITS: dict[str, str] = {
    "kWh": "energy",
    "MWh": "energy",
    "GWh": "energy",
    "MJ": "energy",
    "GJ": "energy",
    "TJ": "energy",
    "g": "mass",
    "kg": "mass",
    "t": "mass",
    "L": "volume",
    "m3": "volume",
    "m2": "area",
    "km": "distance",
    "t*km": "freight transport",
    "piece": "count",
}


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
        raise UnitError("unknown_unit", f"'{text}' is not a unit") from exc


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
        raise UnitError("unknown_unit", "the unit is empty")
    unit = _parse(text.strip())
    for accepted, name in _accepted():
        if _same_unit(unit, accepted):
            return DeclaredUnit(canonical=name, dimension=ACCEPTED_UNITS[name])
    same_dimension = [n for a, n in _accepted() if a.dimensionality == unit.dimensionality]
    hint = f"; use one of {', '.join(same_dimension)}" if same_dimension else ""
    raise UnitError("unsupported_unit", f"'{text}' is a unit but not one factors may be per{hint}")
