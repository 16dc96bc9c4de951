"""Cited source documents, deduplicated across factors by title, publisher, year and URL."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.factors.models import Source
from app.factors.schemas import FactorFields


def source_key(record: FactorFields) -> str:
    key = [record.source_title, record.source_publisher, record.source_year, record.source_url]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()


class SourceCache:
    """Resolves records to source ids with one query per distinct source, not per row."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._ids: dict[str, int] = {}

    def source_id(self, record: FactorFields) -> int:
        key = source_key(record)
        if key in self._ids:
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
        self._ids[key] = source_id
        return source_id
