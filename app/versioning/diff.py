"""What changed between two versions of a dataset, and what that means for the version number.

Contract §1: removing factors or changing a factor's unit or activity is MAJOR, adding factors
is at least MINOR, value-only corrections at least PATCH.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.core.db import request_sessionmaker
from app.core.errors import NotFound
from app.core.http_cache import IMMUTABLE, PRIVATE, etag_matches, json_bytes
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets import usage
from app.datasets.service import get_version
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion
from app.factors.models import Factor, FactorDraft, Source
from app.factors.schemas import UPLOADABLE_FIELDS

_Old = aliased(Factor)
_New = aliased(Factor)
_NewDraft = aliased(FactorDraft)
_SOURCE_FIELDS = {"source_title", "source_publisher", "source_year", "source_url", "source_doi"}
_COMPARED = [n for n in UPLOADABLE_FIELDS if n not in _SOURCE_FIELDS | {"factor_code"}]
_IDENTITY = ("unit", "activity_id")


class Bump(IntEnum):
    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3


@dataclass(frozen=True)
class DiffSummary:
    added: int
    removed: int
    changed: int
    identity_changed: int  # unit or activity_id changed: a different factor under the same code

    @property
    def required_bump(self) -> Bump:
        if self.removed or self.identity_changed:
            return Bump.MAJOR
        if self.added:
            return Bump.MINOR
        if self.changed:
            return Bump.PATCH
        return Bump.NONE


def _differs(old_rows: Any, new_rows: Any, name: str) -> ColumnElement[bool]:
    old, new = getattr(old_rows, name), getattr(new_rows, name)
    return or_(
        old != new, and_(old.is_(None), new.isnot(None)), and_(old.isnot(None), new.is_(None))
    )


def diff_summary(
    session: Session, *, old_version_id: int, new_version_id: int, new_is_draft: bool = False
) -> DiffSummary:
    """Counts computed by the database: no factor rows travel to Python. `new_is_draft`: the
    new version is a draft, its rows in `factor_draft` (app.publishing.draft_rows)."""
    new_rows = _NewDraft if new_is_draft else _New

    def count_only_in(this: Any, this_id: int, other: Any, other_id: int) -> int:
        other_codes = select(other.factor_code).where(other.version_id == other_id)
        return session.execute(
            select(func.count())
            .select_from(this)
            .where(this.version_id == this_id, this.factor_code.not_in(other_codes))
        ).scalar_one()

    pairs = (
        select(func.count())
        .select_from(_Old)
        .join(
            new_rows,
            and_(new_rows.factor_code == _Old.factor_code, new_rows.version_id == new_version_id),
        )
        .where(_Old.version_id == old_version_id)
    )
    changed = session.execute(
        pairs.where(
            or_(
                *(_differs(_Old, new_rows, n) for n in _COMPARED),
                _Old.source_id != new_rows.source_id,
            )
        )
    ).scalar_one()
    identity_changed = session.execute(
        pairs.where(or_(*(_differs(_Old, new_rows, n) for n in _IDENTITY)))
    ).scalar_one()
    return DiffSummary(
        added=count_only_in(new_rows, new_version_id, _Old, old_version_id),
        removed=count_only_in(_Old, old_version_id, new_rows, new_version_id),
        changed=changed,
        identity_changed=identity_changed,
    )


def bump_between(old: tuple[int, int, int], new: tuple[int, int, int]) -> Bump:
    if new[0] != old[0]:
        return Bump.MAJOR
    if new[1] != old[1]:
        return Bump.MINOR
    if new[2] != old[2]:
        return Bump.PATCH
    return Bump.NONE


_SOURCE_COLUMNS = {
    "source_title": Source.title,
    "source_publisher": Source.publisher,
    "source_year": Source.year,
    "source_url": Source.url,
    "source_doi": Source.doi,
}
_ROW_COLUMNS = [
    _SOURCE_COLUMNS[name].label(name) if name in _SOURCE_COLUMNS else getattr(Factor, name)
    for name in UPLOADABLE_FIELDS
]
_BATCH = 1000


def _rows(session: Session, version_id: int) -> Iterator[dict[str, Any]]:
    dialect = session.get_bind().dialect.name
    code = Factor.factor_code
    query = (
        select(*_ROW_COLUMNS)
        .join(Source, Source.id == Factor.source_id)
        .where(Factor.version_id == version_id)
        # Byte order on every backend, the order Python compares strings in.
        .order_by(code if dialect == "sqlite" else code.collate("C"))
        .execution_options(yield_per=_BATCH)
    )
    for row in session.execute(query):
        yield row._asdict()


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"before": old.get(name), "after": new.get(name)}
        for name in UPLOADABLE_FIELDS
        if old.get(name) != new.get(name)
    }


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A factor's uploadable fields, nulls left out (as in the content hash)."""
    return {name: row[name] for name in UPLOADABLE_FIELDS if row.get(name) is not None}


DiffEvent = tuple[Literal["added", "removed", "changed"], Any]


def diff_events(
    olds: Iterable[Mapping[str, Any]], news: Iterable[Mapping[str, Any]]
) -> Iterator[DiffEvent]:
    """One pass over two row streams sorted by factor_code: ("removed", code), ("added",
    record) and ("changed", {"factor_code", "fields"}) in factor_code order. Memory holds one
    row of each stream."""
    old_rows, new_rows = iter(olds), iter(news)
    old, new = next(old_rows, None), next(new_rows, None)
    while old is not None or new is not None:
        if new is None or (old is not None and old["factor_code"] < new["factor_code"]):
            assert old is not None
            yield "removed", old["factor_code"]
            old = next(old_rows, None)
        elif old is None or new["factor_code"] < old["factor_code"]:
            yield "added", _record(new)
            new = next(new_rows, None)
        else:
            fields = _field_changes(old, new)
            if fields:
                yield "changed", {"factor_code": old["factor_code"], "fields": fields}
            old, new = next(old_rows, None), next(new_rows, None)


def merge_diff(
    olds: Iterable[Mapping[str, Any]], news: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Added, removed and changed factors between two row streams sorted by factor_code.

    Added factors come with their whole record (`added_factors`), so that the diff applied
    to the old version gives the new one (`apply_diff`).
    """
    found: dict[str, list[Any]] = {"added": [], "removed": [], "changed": []}
    for kind, item in diff_events(olds, news):
        found[kind].append(item)
    added = found["added"]
    return {
        "summary": {kind: len(items) for kind, items in found.items()},
        "added": [record["factor_code"] for record in added],
        "removed": found["removed"],
        "changed": found["changed"],
        "added_factors": added,
    }


class DiffDoesNotApply(ValueError):
    """The diff was not made from these rows (a `before` value or a code does not match)."""


def apply_diff(olds: Iterable[Mapping[str, Any]], diff: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The new version's factors (uploadable fields, sorted by factor_code) from the old
    version's and the diff between them: what a client holding a copy of the old version
    needs to bring it up to date without downloading the new one."""
    rows = {
        str(row["factor_code"]): {name: row.get(name) for name in UPLOADABLE_FIELDS} for row in olds
    }
    for code in diff["removed"]:
        if rows.pop(code, None) is None:
            raise DiffDoesNotApply(f"{code} is not in the old version")
    for change in diff["changed"]:
        row = rows.get(change["factor_code"])
        if row is None:
            raise DiffDoesNotApply(f"{change['factor_code']} is not in the old version")
        for name, values in change["fields"].items():
            if row[name] != values["before"]:
                raise DiffDoesNotApply(f"{change['factor_code']}.{name} is not {values['before']}")
            row[name] = values["after"]
    for record in diff["added_factors"]:
        if record["factor_code"] in rows:
            raise DiffDoesNotApply(f"{record['factor_code']} is already in the old version")
        rows[record["factor_code"]] = {name: record.get(name) for name in UPLOADABLE_FIELDS}
    return [rows[code] for code in sorted(rows)]


def field_diff(session: Session, *, old_version_id: int, new_version_id: int) -> dict[str, Any]:
    """Added, removed and changed factors with field-level before/after.

    Two streamed queries, merged by factor_code in Python: memory holds one batch of each
    version plus the answer.
    """
    return merge_diff(_rows(session, old_version_id), _rows(session, new_version_id))


def _released(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str, version: str
) -> DatasetVersion:
    _, found = get_version(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=version
    )
    if found.status not in RELEASED_STATUSES:
        raise NotFound(
            Message("not_found.released_version", version=version, dataset=f"{publisher}/{dataset}")
        )
    return found


def version_diff(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    from_version: str,
    to_version: str,
) -> dict[str, Any]:
    """The field-level diff between two released versions (404 unless both are released),
    built in memory; the API streams it (`stream_diff_json`)."""
    old, new = released_pair(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        from_version=from_version,
        to_version=to_version,
    )
    return release_diff(session, old=old, new=new)


def release_diff(session: Session, *, old: DatasetVersion, new: DatasetVersion) -> dict[str, Any]:
    """The field-level diff between two releases a caller has already found (`released_pair`),
    built in memory."""
    return {
        "from": old.version,
        "to": new.version,
        **field_diff(session, old_version_id=old.id, new_version_id=new.id),
    }


def diff_etag(old: DatasetVersion, new: DatasetVersion) -> str:
    """A strong ETag known before any factor is read: both releases are immutable, so their
    content hashes fix the diff (the prefix names the diff's wire format)."""
    key = f"diff/1\n{old.version}\n{old.content_sha256}\n{new.version}\n{new.content_sha256}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def released_pair(
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    from_version: str,
    to_version: str,
    unreleased_to: bool = False,
) -> tuple[DatasetVersion, DatasetVersion]:
    """Both releases of a diff, or 404 (a draft, another dataset's, a hidden dataset's).

    `unreleased_to`: the newer side may also be a submission (frozen, under review), when
    `viewer` may see it (its publisher's writing clients and reviewers); never a draft, which
    can still change. The older side is always a release."""
    old = _released(
        session, viewer=viewer, publisher=publisher, dataset=dataset, version=from_version
    )
    if unreleased_to:
        _, new = get_version(
            session, viewer=viewer, publisher=publisher, dataset=dataset, version=to_version
        )
        if new.status not in (*RELEASED_STATUSES, "submitted"):
            raise NotFound(
                Message(
                    "not_found.released_or_submitted_version",
                    version=to_version,
                    dataset=f"{publisher}/{dataset}",
                )
            )
    else:
        new = _released(
            session, viewer=viewer, publisher=publisher, dataset=dataset, version=to_version
        )
    return old, new


_CHUNK = 1 << 16


def stream_diff_json(
    sessions: Callable[[], Session], *, old: DatasetVersion, new: DatasetVersion
) -> Iterator[bytes]:
    """The diff as JSON, written as it is computed, in chunks of about 64 KiB.

    `changed` streams out of one merge pass; `added_factors` out of a second pass over the
    new release; memory holds two batches of rows and the added and removed codes. The same
    keys as `version_diff`, with `summary` last (counted on the way).
    """
    with sessions() as session:
        added: list[str] = []
        removed: list[str] = []
        changed = 0
        buffer = bytearray(
            b'{"from":' + json_bytes(old.version) + b',"to":' + json_bytes(new.version)
        )
        buffer += b',"changed":['
        for kind, item in diff_events(_rows(session, old.id), _rows(session, new.id)):
            if kind == "changed":
                buffer += (b"," if changed else b"") + json_bytes(item)
                changed += 1
                if len(buffer) >= _CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
            elif kind == "added":
                added.append(item["factor_code"])
            else:
                removed.append(item)
        buffer += b'],"removed":' + json_bytes(removed) + b',"added":' + json_bytes(added)
        buffer += b',"added_factors":['
        wanted, first = set(added), True
        for row in _rows(session, new.id) if wanted else iter(()):
            if row["factor_code"] in wanted:
                buffer += (b"" if first else b",") + json_bytes(_record(row))
                first = False
                if len(buffer) >= _CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
        summary = {"added": len(added), "removed": len(removed), "changed": changed}
        buffer += b'],"summary":' + json_bytes(summary) + b"}"
        yield bytes(buffer)


def diff_response(
    request: Request,
    session: Session,
    *,
    viewer: Viewer,
    publisher: str,
    dataset: str,
    from_version: str,
    to_version: str,
) -> Response:
    """The diff as the API sends it (and the explorer's JSON twin): streamed, with a strong
    ETag from the two versions' content hashes; a 304 when the caller has it."""
    old, new = released_pair(
        session,
        viewer=viewer,
        publisher=publisher,
        dataset=dataset,
        from_version=from_version,
        to_version=to_version,
        unreleased_to=True,
    )
    # A diff to a draft or a submission is only for its publisher and reviewers: never
    # stored by a shared cache. A submission's frozen content hash still makes a strong ETag.
    released = new.status in RELEASED_STATUSES
    headers = {"Cache-Control": IMMUTABLE if released else PRIVATE}
    if new.content_sha256 is not None:
        headers["ETag"] = diff_etag(old, new)
    if "ETag" in headers and etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    # Metered as one request: its rows are computed while they are streamed, so none counted.
    usage.meter(session, viewer, [(publisher, dataset, 0)])
    # Written as it is computed, from a session of its own (on the request's database): the
    # request's has ended by then.
    body = stream_diff_json(request_sessionmaker(request), old=old, new=new)
    return StreamingResponse(body, media_type="application/json", headers=headers)
