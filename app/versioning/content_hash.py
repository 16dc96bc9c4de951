"""The content hash of a dataset version (contract §6), recomputable by anyone.

sha256 over the factors sorted by factor_code, each as canonical JSON of exactly the
uploadable fields (nulls omitted, keys sorted, no whitespace, UTF-8 unescaped, integers as
integers, other numbers as floats in shortest round-trip form, dates as YYYY-MM-DD),
joined with "\\n" and no trailing newline.
"""

from __future__ import annotations

import hashlib
import json
import math
import types
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Any, Union, get_args, get_origin

from sqlalchemy.orm import Session

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


def canonical_factor_json(factor: Mapping[str, Any]) -> str:
    body = {
        name: _canonical_value(name, factor[name])
        for name in UPLOADABLE
        if factor.get(name) is not None
    }
    # json.dumps writes floats with repr(), which is Python's shortest round-trip form.
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_sha256(factors: Iterable[Mapping[str, Any]]) -> str:
    ordered = sorted(factors, key=lambda f: str(f["factor_code"]))
    digest = hashlib.sha256()
    for index, factor in enumerate(ordered):
        if index:
            digest.update(b"\n")
        digest.update(canonical_factor_json(factor).encode("utf-8"))
    return digest.hexdigest()


def compute_content_sha256(session: Session, version_id: int) -> str:
    # The same columns the API returns, so anyone can recompute the hash from them.
    rows = session.execute(factor_select().where(Factor.version_id == version_id)).mappings()
    return content_sha256(dict(row) for row in rows)
