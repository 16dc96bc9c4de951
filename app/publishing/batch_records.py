"""A fast path for the rows of a CSV upload that are all valid, checked a chunk at a time.

`parse_record` costs about 20 µs of CPU per row (the whole-row cell checks, pydantic
building a `FactorFields` of 42 fields, the cross-field checks), most of it paid per cell and
per field. Here the same checks run column by column over a chunk of rows sharing a header:

- the cell checks of `app.publishing.cells` (kinds, lengths, NFC, forbidden characters) over
  each column's cells joined, as `plain_text_cells` runs them over one row's;
- each field's own schema, the very core schema pydantic builds for it in `FactorFields`
  (its pattern, length, range, literal, `str_strip_whitespace` and its validators, but for
  the float validators that pydantic-core's own constraints stand for: `_native`), applied
  to the column as a list, each distinct value once (and a known cell not again);
- the cross-field checks (`record_problems`) on each record.

A row that passes all of them gets the values of the record `parse_record` would give, as a
`FactorRow` (a named tuple: no model built, nothing validated twice). Any other row (a cell
refused or changed by NFC, a field or a cross-field problem) gets None here and goes through
`parse_record` itself, so that its report is exactly what it was;
`tests/test_batch_records.py` compares the two on random valid and hostile rows.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import CoreConfig, SchemaValidator, core_schema

from app.core.text import forbidden_pattern
from app.factors.schemas import NATIVE_CONSTRAINTS, FactorFields, FactorRow, FactorValues
from app.factors.validation import RecordReference, record_problems
from app.publishing.cells import CELL_LIMITS, MULTILINE_FIELDS, plain_text_cells, surely_visible
from app.publishing.labels import LABEL_COLUMNS
from app.publishing.records import RowProblem, parse_record
from app.publishing.upload_formats import REQUIRED_COLUMNS, Row, RowStream

# Rows checked together: enough for the per-column work to be paid once per many rows, few
# enough that the rows held (and read ahead of the store) stay a small bounded amount.
CHUNK_ROWS = 256

_make_row = FactorRow._make


def _model_schema() -> tuple[dict[str, Any], CoreConfig]:
    schema: Any = FactorFields.__pydantic_core_schema__
    while schema["type"] != "model":  # a model's schema may be wrapped (definitions)
        schema = schema["schema"]
    return schema["schema"]["fields"], schema.get("config", {})


@dataclass(frozen=True)
class _FieldCheck:
    """One field's schema as a validator of a list of cells (None: empty), and of one."""

    column: SchemaValidator
    one: SchemaValidator
    # The schema's finite-number check is pydantic-core's own: -0.0 is then made 0.0 here.
    unsigned_zero: bool = False
    # The value of each cell of a column of few values seen valid (by any upload: a value is
    # a function of the cell alone), so that a chunk of known cells is read from it.
    known: dict[str, Any] = field(default_factory=dict, compare=False)


def _native(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each Python validator of a float that has an equivalent in
    pydantic-core's own constraints (`NATIVE_CONSTRAINTS`) replaced by it: the same values
    accepted, and a column of cells checked without a Python call per cell."""
    if schema["type"] == "nullable":
        inner = _native(schema["schema"])
        return schema if inner is schema["schema"] else {**schema, "schema": inner}
    if schema["type"] == "function-after":
        function = schema["function"]["function"]
        constraints = NATIVE_CONSTRAINTS.get(getattr(function, "__func__", function))
        inner = _native(schema["schema"])
        if constraints is not None and inner["type"] == "float":
            return {**inner, **constraints}
    return schema


def _field_checks() -> dict[str, _FieldCheck]:
    fields, config = _model_schema()
    checks: dict[str, _FieldCheck] = {}
    for name, model_field in fields.items():
        schema = model_field["schema"]
        if schema["type"] == "default":
            # An optional field: an empty cell is left out, which gives its default (None).
            assert schema["default"] is None, name
            schema = schema["schema"]
        # A required one refuses None: an empty cell is missing, which the row's own path
        # reports.
        native = _native(schema)
        checks[name] = _FieldCheck(
            column=SchemaValidator(core_schema.list_schema(native), config),
            one=SchemaValidator(native, config),
            unsigned_zero=native is not schema,
        )
    return checks


_CHECKS = _field_checks()


@dataclass(frozen=True)
class _ChunkPlan:
    """What a chunk of one header needs: each column's limit and check, and which columns
    are single-line text (every kind but the multi-line fields)."""

    columns: tuple[str, ...]
    limits: tuple[int, ...]
    checks: tuple[_FieldCheck, ...]
    single_line: tuple[int, ...]
    multiline: tuple[int, ...]


def _chunk_plan(columns: tuple[str, ...]) -> _ChunkPlan | None:
    """None when the header has a column that is not a factor field, holds one twice or
    lacks a required one (its rows, if any get this far, go through `parse_record`, which
    reports what is missing on each)."""
    if len(set(columns)) != len(columns) or not all(c in CELL_LIMITS for c in columns):
        return None
    if not set(REQUIRED_COLUMNS).issubset(columns):
        return None
    return _ChunkPlan(
        columns=columns,
        limits=tuple(CELL_LIMITS[c] for c in columns),
        checks=tuple(_CHECKS[c] for c in columns),
        single_line=tuple(i for i, c in enumerate(columns) if c not in MULTILINE_FIELDS),
        multiline=tuple(i for i, c in enumerate(columns) if c in MULTILINE_FIELDS),
    )


_PLANS: dict[tuple[str, ...], _ChunkPlan | None] = {}
_NO_PLAN = _ChunkPlan((), (), (), (), ())


def _plan_of(columns: tuple[str, ...]) -> _ChunkPlan | None:
    # Read once: another request's thread may clear the cache meanwhile.
    plan = _PLANS.get(columns, _NO_PLAN)
    if plan is _NO_PLAN:
        plan = _chunk_plan(columns)
        if len(_PLANS) >= 64:
            _PLANS.clear()
        _PLANS[columns] = plan
    return plan


def _cells_plain(plan: _ChunkPlan, cells: Sequence[Sequence[str]]) -> bool:
    """Whether every cell of the chunk passes the cell checks unchanged: what
    `plain_text_cells` finds of each row, found over each column's cells joined (a space
    between cells composes with nothing, and the forbidden characters are single ones)."""
    for column, limit in zip(cells, plan.limits, strict=True):
        if max(map(len, column)) > limit:
            return False
    # A column of ASCII cells joins into an ASCII string, which says so at once
    # (`str.isascii` reads a flag of the string) and is its own NFC: only the other columns
    # are normalised and searched for invisible characters (in most files, the Chinese names).
    texts = [" ".join(column) for column in cells]
    single = [texts[i] for i in plan.single_line]
    # In ASCII, the forbidden characters are the controls.
    if not " ".join([text for text in single if text.isascii()]).isprintable():
        return False
    wide = " ".join([text for text in single if not text.isascii()])
    multi = " ".join([texts[i] for i in plan.multiline])
    if wide or not multi.isascii():
        if not unicodedata.is_normalized("NFC", f"{wide} {multi}"):
            return False
        if wide and not surely_visible(wide) and forbidden_pattern(multiline=False).search(wide):
            return False
    return not multi or surely_visible(multi) or not forbidden_pattern(multiline=True).search(multi)


def _row_plain(columns: tuple[str, ...], row: Collection[str]) -> bool:
    """One row's cells pass the cell checks unchanged (a chunk that did not pass whole)."""
    given = {column: cell for column, cell in zip(columns, row, strict=True) if cell}
    return plain_text_cells(dict(zip(columns, row, strict=True))) == given


def _validated_column(check: _FieldCheck, cells: Sequence[str], slow: list[bool]) -> list[Any]:
    """The column's values as the field's schema gives them (None for an empty cell; for a
    cell it refuses, `_REFUSED`, and its row is marked slow)."""
    # A column of few distinct values (regions, units, literals) is validated once per value,
    # any other (codes, names, numbers) whole: hashing its cells would cost more.
    few = len(set(cells[:16])) <= 8
    if few:
        try:
            return list(map(check.known.__getitem__, cells))
        except KeyError:
            pass  # a cell not seen yet, or refused (refusals are not kept): validated below
    sent = list(dict.fromkeys(cells)) if few else cells
    given = [cell or None for cell in sent] if "" in sent else list(sent)
    try:
        values: list[Any] = check.column.validate_python(given)
    except ValidationError:
        values = []
        for cell in given:
            try:
                values.append(check.one.validate_python(cell))
            except ValidationError:
                values.append(_REFUSED)
        refused = {i for i, value in enumerate(values) if value is _REFUSED}
        if few:
            refused_cells = {sent[i] for i in refused}
            refused = {row for row, cell in enumerate(cells) if cell in refused_cells}
        for row in refused:
            slow[row] = True
    if check.unsigned_zero and 0 in values:
        values = [0.0 if value == 0 else value for value in values]
    if not few:
        return values
    found = dict(zip(sent, values, strict=True))
    if len(check.known) > _KNOWN_CELLS:
        check.known.clear()
    check.known.update((cell, value) for cell, value in found.items() if value is not _REFUSED)
    return list(map(found.__getitem__, cells))


# The most cells `_FieldCheck.known` keeps per field before it starts again.
_KNOWN_CELLS = 4096


_REFUSED = object()
_LABEL_COLUMNS = frozenset(LABEL_COLUMNS)


def fast_records(
    columns: tuple[str, ...], rows: Sequence[Collection[str]], reference: RecordReference
) -> list[FactorRow | None]:
    """For each row of CSV cells (in `columns` order, label columns left out), the values of
    the record `parse_record` gives it when it has no problem, or None when the row may have
    one."""
    plan = _plan_of(columns)
    if plan is None or not rows:
        return [None] * len(rows)
    cells = list(zip(*rows, strict=True))
    slow = [False] * len(rows)
    if not _cells_plain(plan, cells):
        slow = [not _row_plain(columns, row) for row in rows]
    values = [
        _validated_column(check, column, slow)
        for check, column in zip(plan.checks, cells, strict=True)
    ]
    # Every field in the record's order, None where the header has no column for it.
    by_name = dict(zip(columns, values, strict=True))
    absent = [None] * len(rows)
    fields = [by_name.get(name, absent) for name in FactorRow._fields]
    records: list[FactorRow | None] = []
    for record, is_slow in zip(map(_make_row, zip(*fields, strict=True)), slow, strict=True):
        records.append(None if is_slow or record_problems(record, reference) else record)
    return records


Parsed = FactorValues | list[RowProblem]


class ParsedRow(NamedTuple):
    row_number: int
    # The problem that kept the row from being read at all (nothing else is then given).
    unread: RowProblem | None
    # The record's activity, or a row with problems' own cell (its labels are checked too).
    activity_id: str | None
    label_cells: dict[str, Any]
    parsed: Parsed | None


def parsed_rows(
    rows: RowStream,
    reference: RecordReference,
    *,
    text_cells: bool,
    limit: int,
    take_labels: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[ParsedRow]:
    """Each row of `rows` in order, as `parse_record` finds it once `take_labels` took the
    label cells out. CSV rows (`text_cells`) are read a chunk ahead and go through
    `fast_records` first. At most `limit` rows are read; an error raised while reading is
    raised once the rows before it are yielded."""
    while limit > 0:
        chunk: list[tuple[int, Row]] = []
        failure: Exception | None = None
        try:
            chunk.extend(itertools.islice(rows.rows, min(CHUNK_ROWS if text_cells else 1, limit)))
        except Exception as exc:  # reported where it happened: after the rows before it
            failure = exc
        limit -= len(chunk)
        yield from _parsed_chunk(chunk, rows.columns, reference, text_cells, take_labels)
        if failure is not None:
            raise failure
        if not chunk:
            return


def _parsed_chunk(
    chunk: list[tuple[int, Row]],
    columns: tuple[str, ...] | None,
    reference: RecordReference,
    text_cells: bool,
    take_labels: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[ParsedRow]:
    if columns is not None and _LABEL_COLUMNS.isdisjoint(columns):
        yield from _parsed_lists(chunk, columns, reference)
        return
    # Rows of cells by column name (a CSV file's too when its header has label columns, which
    # `take_labels` takes out of each row's dict).
    rows: list[tuple[int, Any]] = [(n, _by_name(cells, columns)) for n, cells in chunk]
    # The rows that share the first row's header (every row of a CSV file) are checked
    # together, with their label cells taken out first (when the header has label columns).
    header: tuple[str, ...] | None = None
    shared: list[int] = []
    if text_cells:
        for index, (_, cells) in enumerate(rows):
            if isinstance(cells, RowProblem):
                continue
            keys = tuple(cells)
            if header is None:
                header = keys
            if keys == header:
                shared.append(index)
    # Nothing to take out of the rows of a header without label columns.
    unlabelled = set(shared) if header and _LABEL_COLUMNS.isdisjoint(header) else set()
    labels: list[dict[str, Any] | None] = [
        None if isinstance(cells, RowProblem) else {} if index in unlabelled else take_labels(cells)
        for index, (_, cells) in enumerate(rows)
    ]
    fast: dict[int, FactorRow | None] = {}
    if shared:
        found = fast_records(
            tuple(rows[shared[0]][1]), [rows[i][1].values() for i in shared], reference
        )
        fast = dict(zip(shared, found, strict=True))
    for index, (row_number, cells) in enumerate(rows):
        label_cells = labels[index]
        if label_cells is None:
            yield ParsedRow(row_number, cells, None, {}, None)
            continue
        record = fast.get(index)
        if record is not None:
            yield ParsedRow(row_number, None, record.activity_id, label_cells, record)
        else:
            yield _parsed_alone(row_number, cells, label_cells, reference, text_cells)


def _parsed_lists(
    chunk: list[tuple[int, Row]], columns: tuple[str, ...], reference: RecordReference
) -> Iterator[ParsedRow]:
    """A CSV chunk without label columns: its rows, lists of cells in `columns` order, go to
    `fast_records` as they are; a dict is built only for a row that goes through
    `parse_record`."""
    lists = {i: cells for i, (_, cells) in enumerate(chunk) if isinstance(cells, list)}
    fast = dict(zip(lists, fast_records(columns, list(lists.values()), reference), strict=True))
    for index, (row_number, cells) in enumerate(chunk):
        if isinstance(cells, RowProblem):
            yield ParsedRow(row_number, cells, None, {}, None)
            continue
        record = fast[index]
        if record is not None:
            yield ParsedRow(row_number, None, record.activity_id, {}, record)
        else:
            by_name = dict(zip(columns, cells, strict=True))
            yield _parsed_alone(row_number, by_name, {}, reference, text_cells=True)


def _by_name(cells: Row, columns: tuple[str, ...] | None) -> dict[str, Any] | RowProblem:
    if isinstance(cells, list):
        assert columns is not None  # only a CSV file's rows are lists, and it has a header
        return dict(zip(columns, cells, strict=True))
    return cells


def _parsed_alone(
    row_number: int,
    cells: dict[str, Any],
    label_cells: dict[str, Any],
    reference: RecordReference,
    text_cells: bool,
) -> ParsedRow:
    """A row through `parse_record` on its own (its report is exactly that one's)."""
    parsed = parse_record(row_number, cells, reference, text_cells=text_cells)
    activity_id: str | None
    if not isinstance(parsed, list):
        activity_id = parsed.activity_id
    else:
        raw = cells.get("activity_id")
        activity_id = raw if isinstance(raw, str) and raw else None
    return ParsedRow(row_number, None, activity_id, label_cells, parsed)
