"""openLCA JSON-LD (a zip as openLCA 2 exports it, or efdb's `export.jsonld.zip`): each process
with emissions of CO2, CH4 or N2O to air becomes one factor per unit of its reference product.

Read with olca-schema's own reader (`olca_schema.zipio.ZipReader`), never by hand. Before it
is given the zip, the zip's directory alone is judged (nothing is inflated): at most
`MAX_JSONLD_ENTRIES` entries, none declaring more than `MAX_JSONLD_ENTRY_BYTES`, and all of them
together no more than the upload's `max_decoded_bytes` (checked by the upload path for every
zip; Python's zip reader never inflates an entry past its declared size).

The mapping, process by process (the "row" is the process's position among the zip's
processes; every problem also names the process `@id` and, where it is one, the exchange's
`internalId`):

- **unit**: the reference exchange's unit (`Item(s)` → `piece`); every amount is divided by
  the reference exchange's amount, so the factor is per 1 unit of the reference product;
- **gases**: elementary flows released to air (an output whose flow category names air),
  identified by CAS number: CO2 (124-38-9; `biogenic` or `non-fossil` in the flow name →
  `biogenic_co2`, reported beside and never in `co2e`), CH4 (74-82-8), N2O (10024-97-2); in
  kg (an exchange in another mass unit is converted). Elementary inputs (CO2 taken up from
  air) and other flows are not read;
- **co2e**: CO2 + GWP100(CH4)·CH4 + GWP100(N2O)·N2O in the chosen GWP set (`--gwp-set`, the
  reference table `gwp_value`; the set's single CH4 value, as the upload check uses it), and
  `gwp_set` recorded on every factor whose CO2e used a GWP other than CO2's (a CO2-only
  factor's CO2e is its CO2 in every set). A process efdb exported carries its published CO2e
  (and `other_ghg_co2e`, the uncertainty bounds) as parameters and states its GWP set in its
  description: those are kept as published (a CO2e-only factor, without gases, too), the
  stated set must be the chosen one, and the upload's checks verify CO2e against the gases;
- **region**: the process location's `code` (else its name), checked against the location
  registry (`GET /v1/locations`); an unknown code is an error at the process's `location`;
- **reference_year**: the year of `validFrom` (else `validUntil`); the validity window is kept
  when it is not exactly that calendar year;
- **boundary**: `LCI_RESULT` → `cradle-to-gate`, `UNIT_PROCESS` → `gate-to-gate`;
- **source**: the documentation's `publication` (else its first source): name, year, URL;
  `source_locator` names the process;
- **pedigree**: a `dqEntry` of five scores `(r;c;t;g;te)` (openLCA's and ecoinvent's pedigree
  order) → `dq_reliability` … `dq_technological`;
- **identity**: `factor_code` is the process `@id`; `activity_id` the reference flow's name as
  a slug. A process efdb exported (tag `efdb:{publisher}/{dataset}`) gives back its own
  factor code, activity, boundary, category and reference year from the markers efdb's
  export writes (`app.exports.olca`), so a release survives the round trip (README:
  "openLCA JSON-LD round trip").

A process with no quantitative reference, or whose reference amount is zero, is an error; a
process without any of the three gases is left out with a warning.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import olca_schema as olca
from olca_schema.zipio import ZipReader

from app.core.problem_text import Message
from app.factors.schemas import REGION_PATTERN
from app.importers.base import (
    GwpChoice,
    ImportedRow,
    ImportFileError,
    SkippedRow,
    SourceCell,
    refuse_through_year,
    slug,
)
from app.reference.gwp import GwpUnavailable
from app.reference.units import UnitError, conversion_multiplier
from app.versioning.content_hash import content_sha256

# An efdb export of a version holds 2 entries per factor (process, product flow); 500,000 is
# a release of about 250,000 factors, or ecoinvent's whole database ten times over.
MAX_JSONLD_ENTRIES = 500_000
# The largest process of a real database (thousands of exchanges) is a few megabytes of JSON.
MAX_JSONLD_ENTRY_BYTES = 64 * 1024 * 1024

# What reading a hostile or broken entry can raise: bad JSON (ValueError), a value of the wrong
# JSON type (TypeError, AttributeError, KeyError), nesting past the parser's depth
# (RecursionError), a damaged deflate stream or CRC (zlib.error, BadZipFile, EOFError).
_UNREADABLE = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
)

_CAS_CO2 = "124-38-9"
_CAS_CH4 = "74-82-8"
_CAS_N2O = "10024-97-2"
_GAS_BY_NAME = {
    "carbon dioxide": _CAS_CO2,
    "methane": _CAS_CH4,
    "dinitrogen monoxide": _CAS_N2O,
    "nitrous oxide": _CAS_N2O,
}
_BIOGENIC = re.compile(r"\b(biogenic|non-fossil)\b", re.IGNORECASE)
_REGION = re.compile(REGION_PATTERN)
_UNIT_NAMES = {"Item(s)": "piece"}  # openLCA's unit of its "Units of items" group
_BOUNDARY_BY_TYPE = {
    olca.ProcessType.LCI_RESULT: "cradle-to-gate",
    olca.ProcessType.UNIT_PROCESS: "gate-to-gate",
}
# The markers efdb's export writes (app.exports.olca): tag, documentation sentences.
_EFDB_TAG = re.compile(r"^efdb:([a-z0-9-]+)/([a-z0-9-]+)$")
_EFDB_CODE = re.compile(r"^Factor code: ([A-Za-z0-9._:-]+)\. efdb uid:", re.MULTILINE)
_EFDB_BOUNDARY = re.compile(r"^Boundary: ([a-z-]+)\.", re.MULTILINE)
_EFDB_YEAR = re.compile(r"^Reference year (\d{4})\.$")
_EFDB_GWP = re.compile(r"\(GWP100, (AR\d|not stated); efdb [^)]*\)")
_EFDB_PARAMETERS = ("co2e", "other_ghg_co2e", "uncertainty_low", "uncertainty_high")
_PEDIGREE = (
    "dq_reliability",
    "dq_completeness",
    "dq_temporal",
    "dq_geographical",
    "dq_technological",
)
# JSON-LD property each field is read from (a problem's `column`).
_DOC = "processDocumentation"


def normalised_cas(cas: str | None) -> str | None:
    """`000124-38-9` → `124-38-9` (openLCA's reference data pads CAS numbers with zeros)."""
    if not cas:
        return None
    parts = cas.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return "-".join([str(int(parts[0])), parts[1], parts[2]])


@dataclass(frozen=True)
class GasFlow:
    field: str  # co2, ch4, n2o or biogenic_co2


def gas_of_flow(flow: olca.Flow) -> GasFlow | None:
    """Which factor field an elementary flow to air adds to, or None."""
    if flow.flow_type != olca.FlowType.ELEMENTARY_FLOW:
        return None
    if "air" not in (flow.category or "").lower():
        return None
    name = (flow.name or "").strip()
    cas = normalised_cas(flow.cas) or _GAS_BY_NAME.get(name.split(",")[0].strip().lower())
    if cas == _CAS_CO2:
        if name.lower().startswith("carbon dioxide, in air"):
            return None  # a resource (uptake), whatever its direction
        return GasFlow("biogenic_co2" if _BIOGENIC.search(name) else "co2")
    if cas == _CAS_CH4:
        return GasFlow("ch4")
    if cas == _CAS_N2O:
        return GasFlow("n2o")
    return None


def _check_directory(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ImportFileError("not_a_zip", Message("importer.olca_not_zip")) from exc
    if len(entries) > MAX_JSONLD_ENTRIES:
        raise ImportFileError(
            "too_many_entries",
            Message("importer.olca_too_many_entries", count=len(entries), limit=MAX_JSONLD_ENTRIES),
        )
    for entry in entries:
        if entry.file_size > MAX_JSONLD_ENTRY_BYTES:
            raise ImportFileError(
                "entry_too_large",
                Message(
                    "importer.olca_entry_too_large",
                    entry=entry.filename[:200],
                    mb=entry.file_size // (1024 * 1024),
                    limit=MAX_JSONLD_ENTRY_BYTES // (1024 * 1024),
                ),
            )


@dataclass
class _Cache:
    """Entities shared by many processes, each read from the zip once."""

    reader: ZipReader
    flows: dict[str, olca.Flow | None] = field(default_factory=dict)
    locations: dict[str, olca.Location | None] = field(default_factory=dict)
    sources: dict[str, olca.Source | None] = field(default_factory=dict)

    def _read(self, store: dict[str, Any], kind: type[Any], uid: str | None) -> Any:
        if not uid:
            return None
        if uid not in store:
            try:
                store[uid] = self.reader.read(kind, uid)
            except _UNREADABLE:
                store[uid] = None  # unreadable: as if absent, the field is then missing
        return store[uid]

    def flow(self, ref: olca.Ref | None) -> olca.Flow | None:
        return cast("olca.Flow | None", self._read(self.flows, olca.Flow, ref and ref.id))

    def location(self, ref: olca.Ref | None) -> olca.Location | None:
        found = self._read(self.locations, olca.Location, ref and ref.id)
        return cast("olca.Location | None", found)

    def source(self, ref: olca.Ref | None) -> olca.Source | None:
        return cast("olca.Source | None", self._read(self.sources, olca.Source, ref and ref.id))


def _year(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]).year
    except ValueError:
        return None


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _pedigree(entry: str | None) -> dict[str, int]:
    if not entry:
        return {}
    scores = entry.strip().strip("()").split(";")
    if len(scores) != len(_PEDIGREE):
        return {}
    found = {}
    for name, score in zip(_PEDIGREE, scores, strict=True):
        if score.strip().isdigit() and 1 <= int(score) <= 5:
            found[name] = int(score)
    return found


def _efdb_markers(process: olca.Process) -> dict[str, Any]:
    """The factor's own identity, as efdb's export writes it into a process, or {}."""
    tags = process.tags or []
    found = _EFDB_TAG.match(tags[0]) if tags else None
    if found is None:
        return {}
    publisher, dataset = found.groups()
    markers: dict[str, Any] = {}
    if len(tags) > 1:
        markers["activity_id"] = tags[1]
    doc = process.process_documentation or olca.ProcessDocumentation()
    code = _EFDB_CODE.search(doc.project_description or "")
    if code:
        markers["factor_code"] = code.group(1)
    boundary = _EFDB_BOUNDARY.search(doc.inventory_method_description or "")
    if boundary:
        markers["boundary"] = boundary.group(1)
    year = _EFDB_YEAR.match(doc.time_description or "")
    if year:
        markers["reference_year"] = int(year.group(1))
    prefix = f"efdb/{publisher}/{dataset}"
    category = process.category or ""
    if category == prefix or category.startswith(prefix + "/"):
        markers["category"] = category[len(prefix) + 1 :] or None
    stated = _EFDB_GWP.search((process.description or "").split("\n", 1)[0])
    if stated and stated.group(1) != "not stated":
        markers["gwp_set"] = stated.group(1)
    for parameter in process.parameters or []:
        if parameter.name in _EFDB_PARAMETERS and isinstance(parameter.value, int | float):
            markers[parameter.name] = float(parameter.value)
    return markers


class OlcaJsonLdImporter:
    name = "olca-jsonld"
    title = "openLCA JSON-LD zip (.zip): processes emitting CO2, CH4, N2O to air"
    extensions = (".zip",)

    def read(
        self, data: bytes, *, through_year: int | None = None, gwp: GwpChoice | None = None
    ) -> Iterator[ImportedRow | SkippedRow]:
        refuse_through_year(self.name, through_year)
        if gwp is None:
            raise ImportFileError("missing_gwp_set", Message("importer.olca_needs_gwp_set"))
        try:
            gwp.table.values(gwp.gwp_set)
        except GwpUnavailable as exc:
            raise ImportFileError(
                "unknown_gwp_set",
                Message(
                    "importer.unknown_gwp_set",
                    gwp_set=gwp.gwp_set,
                    known=", ".join(gwp.table.sets()),
                ),
            ) from exc
        _check_directory(data)
        with ZipReader(cast(Any, io.BytesIO(data))) as reader:
            cache = _Cache(reader)
            process_ids = reader.ids_of(olca.Process)
            if not process_ids:
                raise ImportFileError("no_processes", Message("importer.olca_no_processes"))
            for position, process_id in enumerate(process_ids, start=1):
                try:
                    process = reader.read_process(process_id)
                    found = None if process is None else _factor(position, process, cache, gwp)
                except _UNREADABLE as exc:
                    yield ImportedRow(
                        row=position,
                        values={},
                        process=process_id,
                        problem=(
                            None,
                            "unreadable_process",
                            Message("importer.olca_unreadable_process", reason=str(exc)[:200]),
                        ),
                    )
                    continue
                if found is not None:
                    yield found


def _factor(
    row: int, process: olca.Process, cache: _Cache, gwp: GwpChoice
) -> ImportedRow | SkippedRow:
    pid = process.id or ""

    def cell(column: str, exchange: int | None = None) -> SourceCell:
        return SourceCell(None, row, column, process=pid, exchange=exchange)

    exchanges = process.exchanges or []
    references = [e for e in exchanges if e.is_quantitative_reference]
    if len(references) != 1 or not references[0].amount:
        reference_id = references[0].internal_id if references else None
        return ImportedRow(
            row=row,
            values={},
            process=pid,
            cells={"unit": cell("amount", reference_id)},
            problem=(
                "unit",
                "no_reference_amount",
                Message("importer.olca_no_reference", process=(process.name or pid)[:200]),
            ),
        )
    reference = references[0]
    per_unit = 1.0 / float(reference.amount or 1.0)
    cells: dict[str, SourceCell] = {
        "factor_code": cell("@id"),
        "name_en": cell("name"),
        "category": cell("category"),
        "region": cell("location"),
        "reference_year": cell(f"{_DOC}.validFrom"),
        "valid_from": cell(f"{_DOC}.validFrom"),
        "valid_to": cell(f"{_DOC}.validUntil"),
        "boundary": cell("processType"),
        "unit": cell("unit", reference.internal_id),
        "activity_id": cell("flow", reference.internal_id),
        "source_title": cell(f"{_DOC}.publication"),
        "source_year": cell(f"{_DOC}.publication"),
        "source_url": cell(f"{_DOC}.publication"),
        **{name: cell("dqEntry") for name in _PEDIGREE},
    }
    gases: dict[str, float] = {}
    for exchange in exchanges:
        if exchange is reference or exchange.is_input:
            continue
        flow = cache.flow(exchange.flow)
        gas = gas_of_flow(flow) if flow is not None else None
        if gas is None:
            continue
        unit = (exchange.unit.name if exchange.unit else None) or "kg"
        try:
            to_kg = conversion_multiplier(unit, "kg")
        except (UnitError, ValueError, KeyError) as exc:
            cells[gas.field] = cell("unit", exchange.internal_id)
            return ImportedRow(
                row=row,
                values={},
                process=pid,
                cells=cells,
                problem=(
                    gas.field,
                    "unknown_unit",
                    Message("importer.olca_gas_unit", unit=unit[:64], reason=str(exc)[:200]),
                ),
            )
        gases[gas.field] = gases.get(gas.field, 0.0) + float(exchange.amount or 0.0) * to_kg
        cells.setdefault(gas.field, cell("amount", exchange.internal_id))
    markers = _efdb_markers(process)
    if not gases and "co2e" not in markers:
        return SkippedRow(cell("exchanges"), "no_greenhouse_gas", Message("importer.olca_no_gas"))
    gases = {name: amount * per_unit for name, amount in gases.items()}
    doc = process.process_documentation or olca.ProcessDocumentation()
    location = cache.location(process.location)
    region = (location.code or location.name) if location is not None else None
    if region is None and process.location is not None:
        region = process.location.name
    source = cache.source(doc.publication) or (
        cache.source(doc.sources[0]) if doc.sources else None
    )
    reference_flow = cache.flow(reference.flow)
    flow_name = (reference_flow.name if reference_flow else None) or (
        reference.flow.name if reference.flow else None
    )
    unit_name = reference.unit.name if reference.unit else None
    start, end = _day(doc.valid_from), _day(doc.valid_until)
    year = markers.get("reference_year") or _year(doc.valid_from) or _year(doc.valid_until)
    whole_year = year is not None and start == date(year, 1, 1) and end == date(year, 12, 31)
    co2e = markers.get("co2e")
    if co2e is None:
        gwp_set: str | None = gwp.gwp_set if "ch4" in gases or "n2o" in gases else None
        co2e = (
            gwp.table.value(gwp.gwp_set, "CO2") * gases.get("co2", 0.0)
            + gwp.table.value(gwp.gwp_set, "CH4") * gases.get("ch4", 0.0)
            + gwp.table.value(gwp.gwp_set, "N2O") * gases.get("n2o", 0.0)
        )
        cells["co2e"] = next(
            (cells[g] for g in ("co2", "ch4", "n2o") if g in cells), cell("exchanges")
        )
    else:
        # efdb's published CO2e, in the set its process states (None: not stated).
        gwp_set = markers.get("gwp_set")
        cells["co2e"] = cells["gwp_set"] = cell("parameters")
        if gwp_set is not None and gwp_set != gwp.gwp_set:
            return ImportedRow(
                row=row,
                values={},
                process=pid,
                cells={"gwp_set": cell("description")},
                problem=(
                    "gwp_set",
                    "gwp_set_conflict",
                    Message("importer.olca_gwp_conflict", stated=gwp_set, asked=gwp.gwp_set),
                ),
            )
    if region is not None and not _REGION.match(region):
        # Not a code of the registry's form (openLCA's `RoW`, `RER`): the registry's own words.
        return ImportedRow(
            row=row,
            values={},
            process=pid,
            cells=cells,
            problem=(
                "region",
                "unknown_region",
                Message("record.unknown_region", region=region[:64]),
            ),
        )
    values: dict[str, Any] = {
        "factor_code": markers.get("factor_code") or pid,
        "activity_id": markers.get("activity_id") or (slug(flow_name)[:128] if flow_name else None),
        "name_en": process.name,
        "category": markers.get("category", process.category),
        "region": region,
        "reference_year": year,
        "valid_from": None if whole_year else start,
        "valid_to": None if whole_year else end,
        "unit": _UNIT_NAMES.get(unit_name or "", unit_name),
        **gases,
        "co2e": co2e,
        "other_ghg_co2e": markers.get("other_ghg_co2e"),
        "gwp_set": gwp_set,
        "boundary": markers.get("boundary") or _BOUNDARY_BY_TYPE.get(process.process_type),
        "uncertainty_low": markers.get("uncertainty_low"),
        "uncertainty_high": markers.get("uncertainty_high"),
        **_pedigree(process.dq_entry),
        "source_title": source.name if source else None,
        "source_year": source.year if source else None,
        "source_url": source.url if source else None,
        "source_locator": f"openLCA process {pid}"[:500],
        "notes": (
            f"Imported from openLCA JSON-LD: process '{process.name or pid}' ({pid}), "
            f"per 1 {unit_name} of '{flow_name}'; "
            + (
                "CO2e as the process's co2e parameter states it."
                if "co2e" in markers
                else f"CO2e computed with GWP100 {gwp.gwp_set}."
            )
        )[:4000],
    }
    return ImportedRow(
        row=row,
        values={name: value for name, value in values.items() if value is not None},
        process=pid,
        cells=cells,
    )


# The factor fields both efdb's openLCA export and this import carry, each unchanged through a
# round trip (README: "openLCA JSON-LD round trip"). Not among them: name_zh, description and
# notes (text of the process documentation), product codes, method, the source's publisher,
# DOI and locator, the validity window (the export writes the reference year's when none is
# given), the uncertainty's kind and distribution, ch4_origin.
ROUND_TRIP_FIELDS = (
    "factor_code",
    "activity_id",
    "name_en",
    "category",
    "region",
    "reference_year",
    "unit",
    "co2e",
    "co2",
    "ch4",
    "n2o",
    "other_ghg_co2e",
    "biogenic_co2",
    "gwp_set",
    "boundary",
    "uncertainty_low",
    "uncertainty_high",
    *_PEDIGREE,
    "source_title",
    "source_year",
    "source_url",
)


def round_trip_sha256(factors: Iterable[Mapping[str, Any]]) -> str:
    """The content hash (contract §6: sorted by factor_code, canonical JSON, nulls omitted) of
    only the ROUND_TRIP_FIELDS: equal for a release and its JSON-LD export imported back."""
    return content_sha256(
        {name: factor.get(name) for name in ROUND_TRIP_FIELDS} for factor in factors
    )
