"""Cited source documents, deduplicated across factors by title, publisher, year and URL."""

from __future__ import annotations

import hashlib
import json
import operator

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.factors.models import Source
from app.factors.schemas import FactorValues

_key_fields = operator.attrgetter("source_title", "source_publisher", "source_year", "source_url")


def source_key(record: FactorValues) -> str:
    key = list(_key_fields(record))
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()


class SourceCache:
    """Resolves records to source ids with one query per distinct source, not per row."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._ids: dict[str, int] = {}
        # The same, by the fields the key is made of: no hash computed for a source seen.
        self._by_fields: dict[tuple[object, ...], int] = {}

    def cached_id(self, record: FactorValues) -> int | None:
        """The id of a source already resolved by this cache, without a query; or None."""
        return self._by_fields.get(_key_fields(record))

    def source_id(self, record: FactorValues) -> int:
        fields = _key_fields(record)
        if fields in self._by_fields:
            return self._by_fields[fields]
        key = source_key(record)
        if key in self._ids:
            self._by_fields[fields] = self._ids[key]
            return self._ids[key]
        source_id = self._session.execute(
            select(Source.id).where(Source.key_sha256 == key)
        ).scalar_one_or_none()
        if source_id is None:
            source = Source(
                key_sha256=key,
                title=record.source_title,
                publisher=record.source_publisher,
                year=record.source_year,
                url=record.source_url,
                doi=record.source_doi,
            )
            self._session.add(source)
            self._session.flush()
            source_id = source.id
        self._ids[key] = self._by_fields[fields] = source_id
        return source_id
