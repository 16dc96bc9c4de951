"""Resolve without the database in the call: each worker's index of the factors of the
releases that resolve draws on, and the records they answer with, serialised once.

A released factor never changes (the database refuses), so what a release's factors say for a
probe (activity, region, year bound, unit dimension, boundary: app/factors/resolve.py) is
fixed once the release exists: `ReleaseFactors` holds it, keyed by the release's id and
publication time, and needs no check against the database again. What does change is which
releases a line may draw on (a release published, withdrawn or deprecated, a dataset
superseded, its priority or access edited) and the parts of a record that follow its release
and dataset (status, withdrawal, successor, licence, attribution): every call reads them, as
it did before the index (`resolve._releases`: one small query, ~0.2 ms on PostgreSQL at the
benchmark's scale), so a change shows in the very next resolve on every worker, and nothing
the index keeps can be out of date.

Per factor the index keeps where it answers (activity, region, year, boundary, unit), its
`co2e`, and its whole record as JSON as its release stood when it was read: a resolved line's
`factor` is those bytes when the release's part made from the state the call read
(`release_affixes`) is the same, else the record's own part with the new release part and id
(`ReleaseFactors.record`), spliced into the answer as is (`orjson.Fragment`), byte for byte
what serialising the record made from the database gives.

Memory is bounded by `max_factors` (`EFDB_RESOLVE_INDEX_FACTORS`): the releases held are the
most recently used ones whose factors add up to at most that many; a call that needs more
than that resolves with the database, as before. About 2.1 KB a factor (the benchmark's
synthetic records, 1.25 KB of JSON each: 100,000 factors add ~210 MB to a worker's resident
set; README, "Performance: a 1000-line resolve"). The first call to draw on a release reads
it (~2 s for 100,000 factors on the shared development machine) and makes its group's cells
(~1 s).
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import is_memory_sqlite, make_engine
from app.factors.models import Factor
from app.factors.service import factor_select
from app.reference.units import ACCEPTED_UNITS, units_of_dimension

# A release as the index knows it: its id and when it was published (an id reused after a
# release was removed is another release).
ReleaseKey = tuple[int, datetime | None]

# The record's fields that follow its release and dataset, in `factor_select`'s order; the
# record's `id` comes after them. Everything before `publisher` is the factor's own.
RELEASE_FIELDS = (
    "publisher",
    "dataset",
    "version",
    "version_status",
    "withdrawn_at",
    "withdrawn_reason",
    "dataset_status",
    "superseded_by",
    "license_id",
    "license_url",
    "attribution",
)


class Candidate(NamedTuple):
    """The factors of one release and one unit at a probe's nearest year: the lowest id of
    them and how many there are (a probe answers one row per release and unit, however many
    factors match: resolve's memory does not grow with the candidates)."""

    factor_id: int
    reference_year: int
    unit: str
    version_id: int
    matches: int = 1


class Probe(NamedTuple):
    """What one probe (a cell: activity, region, boundary; a year bound; the units wanted)
    finds: the candidates at the nearest year that has any, or, when units are wanted and no
    year has a factor in them, the nearest factor in any unit (year, unit)."""

    candidates: Sequence[Candidate] = ()
    nearest_any: tuple[int, str] | None = None


@dataclass
class ReleaseFactors:
    """One release's factors: where each answers and its record as JSON."""

    key: ReleaseKey
    # (activity, region) → [(year, boundary, unit, factor id)]
    cells: dict[tuple[str, str], list[tuple[int, str, str, int]]] = field(default_factory=dict)
    # factor id → (the whole record as JSON, as the release's state was when it was read;
    # the factor code as inside a JSON string; co2e; the length of the record's own part,
    # the JSON up to `publisher` without the closing brace)
    records: dict[int, tuple[bytes, bytes, float, int]] = field(default_factory=dict)
    # `release_affixes` of the release's state when it was read (None if its rows did not
    # all say the same)
    affixes: tuple[bytes, bytes] | None = None

    @property
    def size(self) -> int:
        return len(self.records)

    def record(self, factor_id: int, affixes: tuple[bytes, bytes]) -> bytes:
        """The factor's record as JSON, with `affixes` (`release_affixes` of the release's
        state now): the bytes kept when the state is the one read, else remade."""
        whole, code, _, own = self.records[factor_id]
        if affixes == self.affixes:
            return whole
        return b"".join((whole[:own], affixes[0], code, affixes[1]))


def load_release(connection: Connection, key: ReleaseKey) -> ReleaseFactors:
    """The release's factors, read once with the statement the records are read with
    (`factor_select`), so that each record's JSON is what that statement's payload gives."""
    version_id = key[0]
    release = ReleaseFactors(key)
    # Options of this statement alone (`Connection.execution_options` would change the
    # connection's, a request's session's when the index reads with it).
    result = connection.execute(
        factor_select().where(Factor.version_id == version_id),
        execution_options={"stream_results": True, "yield_per": _LOAD_ROWS},
    )
    keys = tuple(result.keys())
    cut = keys.index("publisher")
    if keys[cut:] != RELEASE_FIELDS or keys[0] != "row_id":
        raise RuntimeError(f"factor_select's columns changed: {keys}")  # pragma: no cover
    own = keys[1:cut]
    position = {name: n for n, name in enumerate(keys)}
    activity, region, year, boundary, unit, code, co2e = (
        position[name]
        for name in (
            "activity_id",
            "region",
            "reference_year",
            "boundary",
            "unit",
            "factor_code",
            "co2e",
        )
    )
    cells = release.cells
    records = release.records
    dumps = orjson.dumps
    # The release's state as its rows say it (the same for all of them) → release_affixes
    states: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
    for row in result:
        factor_id = row[0]
        cells.setdefault((row[activity], row[region]), []).append(
            (row[year], row[boundary], row[unit], factor_id)
        )
        state = tuple(row[cut:])
        head, tail = states.get(state) or states.setdefault(state, release_affixes(state))
        code_json = dumps(row[code])[1:-1]
        own_part = dumps(dict(zip(own, row[1:cut], strict=True)))[:-1]
        records[factor_id] = (
            b"".join((own_part, head, code_json, tail)),
            code_json,
            row[co2e],
            len(own_part),
        )
    if len(states) == 1:
        # (Were there several, no state would be the records' own: each is remade.)
        (release.affixes,) = states.values()
    return release


def release_affixes(values: Sequence[Any]) -> tuple[bytes, bytes]:
    """What a record of the release says around its factor code, as JSON: the fields its
    release decides (`RELEASE_FIELDS`' values, publisher, dataset and version first) and the
    record's id (`{publisher}/{dataset}/{code}@{version}`) up to the code, then the rest of the
    id and the closing brace. A record is `b"".join((prefix, head, code, tail))`: JSON escapes
    character by character, so the id's pieces escaped apart are the id escaped whole."""
    body = orjson.dumps(dict(zip(RELEASE_FIELDS, values, strict=True)))
    publisher, dataset, version = values[0], values[1], values[2]
    head = b"," + body[1:-1] + b',"id":' + orjson.dumps(f"{publisher}/{dataset}/")[:-1]
    return head, orjson.dumps(f"@{version}")[1:] + b"}"


class _Cell:
    """The factors of one cell (activity, region, boundary or any) in the releases of a
    group, by year, newest first: at each year a candidate per release and unit, the unit of
    the lowest id (`any_units`), and the dimensions of all their units.

    A probe is `view(units, dimensions)[bisect_left(years, -year)]` (`years` negated for
    bisect): each place a year bound may fall among the years (and past the last) holds what
    the probe finds there. Nearly every probe asks for all units, or for a dimension that is
    the cell's only one, and takes the years' own entries; the views for other units are made
    at the first probe that asks and kept with the cell."""

    __slots__ = ("any_units", "dimensions", "every", "views", "years")

    def __init__(self, years: list[int], entries: list[Probe], any_units: list[str]) -> None:
        self.years = [-year for year in years]
        self.any_units = any_units
        self.every: list[Probe | None] = [*entries, None]
        self.dimensions = frozenset(
            ACCEPTED_UNITS.get(candidate.unit)
            for entry in entries
            for candidate in entry.candidates
        )
        self.views: dict[frozenset[str], list[Probe | None]] = {}

    def view(self, units: frozenset[str] | None, dimensions: frozenset[str]) -> list[Probe | None]:
        """The probes of the units given (None: any), which are those of `dimensions`."""
        if units is None or self.dimensions <= dimensions:
            return self.every
        view = self.views.get(units)
        if view is None:
            # Two threads may make the same view at once: either one is kept, both are right.
            view = self.views[units] = self._view(units)
        return view

    def _view(self, units: frozenset[str]) -> list[Probe | None]:
        """A place's answer is the first year at or before it (in years: older or equal)
        with a factor in `units`, or else the nearest factor in any unit."""
        view: list[Probe | None] = [None]
        found: Probe | None = None
        for position in range(len(self.years) - 1, -1, -1):
            entry = self.every[position]
            assert entry is not None
            chosen = [candidate for candidate in entry.candidates if candidate.unit in units]
            if chosen:
                found = entry if len(chosen) == len(entry.candidates) else Probe(tuple(chosen))
            view.append(found or Probe((), (-self.years[position], self.any_units[position])))
        view.reverse()
        return view


EMPTY = _Cell([], [], [])
# Region chains' cells kept per group of releases (`GroupCells.along`): all let go past this.
_MAX_COLUMNS = 100_000


class GroupCells(dict[tuple[str, str, str | None], _Cell]):
    """A group's cells by (activity, region, boundary or None), and the cells along the
    region chains asked for so far (`along`: one look-up per line instead of one per region
    of its chain)."""

    __slots__ = ("_columns",)

    def __init__(self, cells: Iterable[tuple[tuple[str, str, str | None], _Cell]]) -> None:
        super().__init__(cells)
        self._columns: dict[tuple[str, tuple[str, ...], str | None], tuple[_Cell, ...]] = {}

    def along(
        self, activity: str, codes: tuple[str, ...], boundary: str | None
    ) -> tuple[_Cell, ...]:
        """The cells of `activity` and `boundary` at each region of a chain (`codes`)."""
        key = (activity, codes, boundary)
        found = self._columns.get(key)
        if found is None:
            if len(self._columns) >= _MAX_COLUMNS:
                self._columns.clear()
            found = self._columns[key] = tuple(
                self.get((activity, code, boundary), EMPTY) for code in codes
            )
        return found


# Rows of a release read at a time when it is loaded (PostgreSQL: a server-side cursor).
_LOAD_ROWS = 10_000
# Cells kept across calls (each a few candidates per year): the groups least recently made
# are dropped past this many.
_MAX_CELLS = 500_000


class ResolveIndex:
    """A worker's index (module docstring): releases' factors, least recently used out first
    past `max_factors` (0: no index).

    `loader`: the engine a release's factors are read with, on a connection of its own (the
    index is the worker's, not the request's: its one-off read of a release is neither in the
    request's transaction nor under its statement budget); None: the request's session."""

    def __init__(self, max_factors: int, loader: Engine | None = None) -> None:
        self.max_factors = max_factors
        self.loader = loader
        self._releases: OrderedDict[ReleaseKey, ReleaseFactors] = OrderedDict()
        self._held = 0
        # group of releases → (activity, region, boundary or None) → its cell in them
        self._groups: OrderedDict[tuple[ReleaseKey, ...], GroupCells] = OrderedDict()
        self._cell_count = 0
        # Releases larger than `max_factors` on their own (never held)
        self._too_big: set[ReleaseKey] = set()
        # `_lock` guards the dicts for a moment at a time; `_loading` lets one thread at a
        # time read releases from the database (seconds for a large one), so that calls whose
        # releases are held never wait behind that read.
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def close(self) -> None:
        """Close the loader's connection (the index itself stays usable: it reopens one)."""
        if self.loader is not None:
            self.loader.dispose()

    @property
    def enabled(self) -> bool:
        return self.max_factors > 0

    @property
    def held(self) -> int:
        """Factors held now."""
        return self._held

    # ------------------------------------------------------------------ the releases' factors

    def releases(
        self, session: Session, keys: Iterable[ReleaseKey]
    ) -> dict[int, ReleaseFactors] | None:
        """Every release of `keys` (by version id), read now if not held; None when together
        they are more than the index may hold (the caller asks the database instead)."""
        wanted = set(keys)
        found: dict[int, ReleaseFactors] = {}
        missing: list[ReleaseKey] = []
        for key in wanted:
            release = self._releases.get(key)
            if release is None:
                missing.append(key)
            else:
                found[key[0]] = release
        if not missing:
            if len(self._releases) > len(found):
                with self._lock:
                    for key in wanted:
                        if key in self._releases:
                            self._releases.move_to_end(key)
            return found
        if not self.enabled or any(key in self._too_big for key in missing):
            return None
        with self._loading:
            # One reader at a time: a release read by another thread meanwhile is taken (and
            # one another thread let go meanwhile is read again). Only a reader lets releases
            # go, so those held now stay held until this one is done.
            with self._lock:
                missing = [key for key in wanted if key not in self._releases]
            try:
                loaded = self._load(session, missing)
            except SQLAlchemyError:
                # Not read now (e.g. past the statement budget): the database answers.
                return None
            with self._lock:
                taken = self._take(wanted, loaded)
            if loaded:
                _settle()
            return taken

    def _take(
        self, wanted: set[ReleaseKey], loaded: dict[ReleaseKey, ReleaseFactors]
    ) -> dict[int, ReleaseFactors] | None:
        """Hold the releases just read and answer `wanted` (the caller holds both locks)."""
        found: dict[int, ReleaseFactors] = {}
        for key, release in loaded.items():
            self._releases[key] = release
            self._held += release.size
        for key in wanted:
            found[key[0]] = self._releases[key]
        for key in wanted:
            self._releases.move_to_end(key)
        if sum(release.size for release in found.values()) > self.max_factors:
            # More than may be held at once: none of it is kept, and a release that alone
            # is too large is not read again.
            for key in wanted:
                dropped = self._releases.pop(key)
                self._held -= dropped.size
                if dropped.size > self.max_factors:
                    self._too_big.add(key)
            self._drop_groups()
            return None
        while self._held > self.max_factors:
            _, dropped = self._releases.popitem(last=False)
            self._held -= dropped.size
            self._drop_groups()
        return found

    def _load(self, session: Session, keys: list[ReleaseKey]) -> dict[ReleaseKey, ReleaseFactors]:
        if not keys:
            return {}
        if self.loader is None:
            connection = session.connection()
            return {key: load_release(connection, key) for key in sorted(keys)}
        with self.loader.connect() as connection:
            return {key: load_release(connection, key) for key in sorted(keys)}

    # ------------------------------------------------------------------ probes

    def cells(self, group: tuple[ReleaseFactors, ...]) -> GroupCells:
        """The cells of a group of releases by (activity, region, boundary or None), each its
        factors by year (a place missing has none); made whole at the group's first probe (a
        call probes thousands of cells: made one by one, the first calls would pay for them).
        The caller keeps the dict it was given for its call, whatever the index drops."""
        key = tuple(release.key for release in group)
        cells = self._groups.get(key)
        if cells is not None:
            return cells
        places: dict[tuple[str, str], list[tuple[int, tuple[int, str, str, int]]]] = {}
        for release in group:
            version_id = release.key[0]
            for place, rows in release.cells.items():
                places.setdefault(place, []).extend((version_id, row) for row in rows)
        cells = GroupCells(
            ((activity, region, boundary), cell)
            for (activity, region), rows in places.items()
            for boundary, cell in _make_cells(rows).items()
        )
        with self._lock:
            made = self._groups.get(key)
            if made is not None:  # by another thread meanwhile
                return made
            self._groups[key] = cells
            self._cell_count += len(cells)
            while self._cell_count > _MAX_CELLS and len(self._groups) > 1:
                _, dropped = self._groups.popitem(last=False)
                self._cell_count -= len(dropped)
        _settle()
        return cells

    def _drop_groups(self) -> None:
        self._groups.clear()
        self._cell_count = 0


def _settle() -> None:
    """Take what is alive now, the releases or cells just made among it, out of the cyclic
    collector's reach (`gc.freeze`, as app/core/collector.py does after startup): they live
    as long as the index holds them, hold no reference cycles (let go, they are freed as
    any object), and a full pass over their millions of objects took 40–60 ms, inside
    whichever call it fell in (the 1000-line calls' p99). Garbage is collected first: a cycle
    frozen unreachable would never be freed. (What other requests hold at that moment is
    frozen with the rest; this runs only when a release is read or a group's cells made,
    calls that take a second or more already.)"""
    gc.collect()
    gc.freeze()


def _make_cells(rows: list[tuple[int, tuple[int, str, str, int]]]) -> dict[str | None, _Cell]:
    """A place's cells from its factors in a group's releases: one for any boundary (None)
    and one per boundary."""
    # boundary → year → (release, unit) → [lowest id, count]; boundary → year → lowest id, unit
    by_year: dict[str | None, dict[int, dict[tuple[int, str], list[int]]]] = {}
    lowest: dict[str | None, dict[int, tuple[int, str]]] = {}
    for version_id, (year, boundary, unit, factor_id) in rows:
        for cell_boundary in (None,) if boundary is None else (None, boundary):
            groups = by_year.setdefault(cell_boundary, {}).setdefault(year, {})
            counted = groups.get((version_id, unit))
            if counted is None:
                groups[(version_id, unit)] = [factor_id, 1]
            else:
                counted[0] = min(counted[0], factor_id)
                counted[1] += 1
            firsts = lowest.setdefault(cell_boundary, {})
            first = firsts.get(year)
            if first is None or factor_id < first[0]:
                firsts[year] = (factor_id, unit)
    cells: dict[str | None, _Cell] = {}
    for cell_boundary, years in by_year.items():
        newest_first = sorted(years, reverse=True)
        cells[cell_boundary] = _Cell(
            newest_first,
            [
                Probe(
                    tuple(
                        Candidate(factor_id, year, unit, version_id, count)
                        for (version_id, unit), (factor_id, count) in sorted(years[year].items())
                    )
                )
                for year in newest_first
            ],
            [lowest[cell_boundary][year][1] for year in newest_first],
        )
    return cells


@lru_cache(maxsize=64)
def units_wanted(
    dimensions: tuple[str, ...] | None,
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The declared units of `dimensions` (None: any unit), and the dimensions as a set."""
    if dimensions is None:
        return None, frozenset()
    units = frozenset(unit for dimension in dimensions for unit in units_of_dimension(dimension))
    return units, frozenset(dimensions)


def resolve_index_loader(engine: Engine, settings: Settings) -> Engine | None:
    """The index's own engine on `engine`'s database (the application's), one connection,
    closed by `ResolveIndex.close`: a release is read on it under the batch budget. None for
    an in-memory SQLite database, which cannot be opened twice (the request's session reads
    it)."""
    url = engine.url.render_as_string(hide_password=False)
    if is_memory_sqlite(url):
        return None
    options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0}
    if engine.dialect.name == "postgresql":
        options["connect_args"] = {
            "options": f"-c statement_timeout={int(settings.db_timeout_batch_ms)}"
        }
    return make_engine(url, **options)
