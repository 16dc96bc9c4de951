"""The content hash of a dataset version (contract §6), recomputable by anyone.

sha256 over the factors sorted by factor_code, each as canonical JSON of exactly the
uploadable fields (nulls omitted, keys sorted, no whitespace, UTF-8 unescaped, integers as
integers, other numbers as floats in shortest round-trip form, dates as YYYY-MM-DD),
joined with "\\n" and no trailing newline.

A stored version is hashed as the database streams it in that order, a partition of rows at a
time, so that hashing a version of a million factors (at submit, publish and every integrity
check) takes the memory of a partition, not of the version.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from functools import cache
from typing import Annotated, Any, Union, get_args, get_origin

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from app.core.db import AnySelect
from app.factors.models import Factor
from app.factors.schemas import FactorFields
from app.factors.service import factor_select


def _is_integer(annotation: Any) -> bool:
    """An `int` field, Optional and Annotated unwrapped (not a text naming "int", such as the
    literal `confidence_interval`)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_integer(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_is_integer(a) for a in get_args(annotation) if a is not type(None))
    return annotation is int


# Fields whose values are whole numbers; every other number is written as a float.
INTEGER_FIELDS = frozenset(
    name for name, info in FactorFields.model_fields.items() if _is_integer(info.annotation)
)
UPLOADABLE = tuple(FactorFields.model_fields)


def _canonical_value(name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if name in INTEGER_FIELDS:
        return int(value)
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{name} is not finite")
        return number
    return value


# The uploadable fields in the order canonical JSON lists them (keys sorted), and the type
# of each whose values are written as they are (a float is, once found finite).
_SORTED_FIELDS = tuple(sorted(UPLOADABLE))
_WRITTEN_AS_IS = {name: int if name in INTEGER_FIELDS else str for name in UPLOADABLE}
# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), made once: the body
# is built in sorted key order, and json writes floats with repr(), Python's shortest
# round-trip form.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical_factor_json(factor: Mapping[str, Any]) -> str:
    # Hashing is per row of a version (a million at a submit, and again at publish): the
    # common values (texts, floats, integers of integer fields) skip `_canonical_value`.
    get = factor.get
    body = {name: value for name in _SORTED_FIELDS if (value := get(name)) is not None}
    for name, value in body.items():
        kind = type(value)
        if kind is _WRITTEN_AS_IS[name]:
            continue
        if kind is float and name not in INTEGER_FIELDS:
            if not math.isfinite(value):
                raise ValueError(f"{name} is not finite")
        else:
            body[name] = _canonical_value(name, value)
    return _ENCODE(body)


def content_sha256(factors: Iterable[Mapping[str, Any]]) -> str:
    return ordered_content_sha256(sorted(factors, key=lambda f: str(f["factor_code"])))


def ordered_content_sha256(factors: Iterable[Mapping[str, Any]]) -> str:
    """`content_sha256` of factors given already sorted by factor_code, read once and kept no
    longer than their line of the hash. A factor out of that order raises ValueError: a
    database that sorted otherwise must not give another hash."""
    digest = hashlib.sha256()
    previous: str | None = None
    for factor in factors:
        code = str(factor["factor_code"])
        if previous is not None:
            if code < previous:
                raise ValueError(f"factor_code {code!r} comes after {previous!r}: not in order")
            digest.update(b"\n")
        previous = code
        digest.update(canonical_factor_json(factor).encode("utf-8"))
    return digest.hexdigest()


# Rows fetched at a time by `compute_content_sha256` (on PostgreSQL, through a server-side
# cursor): the hash's memory whatever the version's size.
ROWS_PER_FETCH = 2_000


def compute_content_sha256(session: Session, version_id: int) -> str:
    # The same columns the API returns, so anyone can recompute the hash from them.
    query = _hashed_select().where(Factor.version_id == version_id).order_by(_code_order(session))
    # As a Core statement on the session's connection (the ORM adds nothing to tuples), once
    # pending changes are written, as the session's own execute would.
    session.flush()
    connection = session.connection()
    # A version of at most a partition in one plain query; a larger one again, streamed: the
    # server-side cursor's round trips (~1.4 ms on PostgreSQL) are for versions that need it.
    first = connection.execute(query.limit(ROWS_PER_FETCH + 1))
    names = tuple(first.keys())
    some = first.all()
    rows: Iterable[Sequence[Any]] = some
    if len(some) > ROWS_PER_FETCH:
        rows = connection.execute(query, execution_options={"yield_per": ROWS_PER_FETCH})
    return ordered_content_sha256(dict(zip(names, row, strict=True)) for row in rows)


@cache
def _hashed_select() -> AnySelect:
    """`factor_select` (the columns and joins of the API's answers) with only the columns the
    hash reads."""
    hashed = [column for column in factor_select().selected_columns if column.key in UPLOADABLE]
    return factor_select().with_only_columns(*hashed)


def _code_order(session: Session) -> ColumnElement[str]:
    """factor_code in the order Python sorts strings (by code point): on PostgreSQL the "C"
    collation (byte order, which is code point order in UTF-8), not the database's own
    (a language's passes over case and punctuation at first: ICU's en-US puts "A.b" after
    "a:b"); on SQLite BINARY, its default, named here all the same."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    return Factor.factor_code.collate("C" if postgresql else "BINARY")
