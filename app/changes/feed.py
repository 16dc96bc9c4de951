"""The change feed: every public change, in the audit chain's order.

Each change is one audit event of a kind readers must learn about (a release published or
withdrawn, a dataset deprecated, reference data reloaded), told with what a tool needs to act
on it (version, content hash, diff link, reason, successor, the release current after it) and
naming its audit event and that event's hash, so it can be checked against `GET /v1/audit`.

The cursor is a position in the chain (`app.core.audit.chain_cursor`): the feed read after it
lists every later change exactly once, whatever the filters, because events become visible in
id order. A page scans a bounded number of events: under a narrow filter it may hold fewer
than `limit` changes (even none) and still have a `next` page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.core.audit import PUBLIC_CHANGES, chain_cursor
from app.core.models import AuditEvent
from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, DatasetVersion

CHANGE_TYPES = PUBLIC_CHANGES
_ACTIONS = tuple(CHANGE_TYPES)
# Events read per round trip, and at most per page: a page's cost is bounded whatever the
# filter (a narrow filter over a long chain gives short pages, each with its `next`).
_BATCH = 500
MAX_SCANNED = 5000


@dataclass(frozen=True)
class FeedFilter:
    publisher: str | None = None
    dataset: str | None = None  # a slug, or publisher/slug

    @property
    def narrows(self) -> bool:
        return self.publisher is not None or self.dataset is not None

    def admits(self, publisher: str, dataset: str) -> bool:
        if self.publisher is not None and publisher != self.publisher:
            return False
        if self.dataset is None:
            return True
        if "/" in self.dataset:
            return self.dataset == f"{publisher}/{dataset}"
        return self.dataset == dataset


@dataclass(frozen=True)
class ChangesPage:
    items: list[dict[str, Any]]
    # The id of the last audit event this page covered: the next page starts after it.
    position: int
    # False when the page reached the newest event (the caller polls again later).
    more: bool


@dataclass(frozen=True)
class _Dataset:
    id: int
    publisher: str
    slug: str
    access: str
    redistribution: bool


@dataclass(frozen=True)
class _Release:
    id: int
    dataset_id: int
    version: str
    rank: tuple[int, int, int]
    content_sha256: str | None
    published_at: datetime | None
    withdrawn_at: datetime | None
    supersedes_id: int | None


class _Context:
    """What the events of one batch refer to, read in three queries (never one per event)."""

    def __init__(self, session: Session, events: Sequence[AuditEvent]) -> None:
        version_ids = {
            int(e.subject_id)
            for e in events
            if e.subject_type == "dataset_version" and e.subject_id.isdigit()
        }
        labels = {
            tuple(e.subject_id.split("/", 1))
            for e in events
            if e.subject_type == "dataset" and "/" in e.subject_id
        }
        self.version_dataset: dict[int, int] = {}
        dataset_ids: set[int] = set()
        if version_ids:
            rows = session.execute(
                select(DatasetVersion.id, DatasetVersion.dataset_id).where(
                    DatasetVersion.id.in_(version_ids)
                )
            ).all()
            self.version_dataset = {row.id: row.dataset_id for row in rows}
            dataset_ids.update(self.version_dataset.values())
        columns = (
            Dataset.id,
            Publisher.slug.label("publisher"),
            Dataset.slug,
            Dataset.access,
            Dataset.redistribution,
        )
        found: list[Any] = []
        if dataset_ids:
            found += session.execute(
                select(*columns)
                .join(Publisher, Publisher.id == Dataset.publisher_id)
                .where(Dataset.id.in_(dataset_ids))
            ).all()
        if labels:
            found += session.execute(
                select(*columns)
                .join(Publisher, Publisher.id == Dataset.publisher_id)
                .where(Publisher.slug.in_({p for p, _ in labels}))
                .where(Dataset.slug.in_({d for _, d in labels}))
            ).all()
        self.datasets: dict[int, _Dataset] = {
            row.id: _Dataset(row.id, row.publisher, row.slug, row.access, row.redistribution)
            for row in found
        }
        self.by_label = {f"{d.publisher}/{d.slug}": d for d in self.datasets.values()}
        self.releases: dict[int, list[_Release]] = {}
        self.release_by_id: dict[int, _Release] = {}
        if dataset_ids:
            for row in session.execute(
                select(DatasetVersion).where(
                    DatasetVersion.dataset_id.in_(dataset_ids),
                    DatasetVersion.status.in_(RELEASED_STATUSES),
                )
            ).scalars():
                release = _Release(
                    row.id,
                    row.dataset_id,
                    row.version,
                    (row.major, row.minor, row.patch),
                    row.content_sha256,
                    row.published_at,
                    row.withdrawn_at,
                    row.supersedes_id,
                )
                self.releases.setdefault(row.dataset_id, []).append(release)
                self.release_by_id[row.id] = release

    def current_at(self, dataset_id: int, moment: datetime) -> _Release | None:
        """The release that answered "latest" just after `moment` (as `as_of` reads it)."""
        standing = [
            r
            for r in self.releases.get(dataset_id, [])
            if r.published_at is not None
            and r.published_at <= moment
            and (r.withdrawn_at is None or r.withdrawn_at > moment)
        ]
        return max(standing, key=lambda r: r.rank, default=None)


def _base(event: AuditEvent) -> dict[str, Any]:
    return {
        "type": CHANGE_TYPES[event.action],
        "occurred_at": event.occurred_at.isoformat(),
        "audit_event_id": event.id,
        "audit_hash": event.hash,
        "cursor": chain_cursor(event.id),
        "publisher": None,
        "dataset": None,
        "dataset_access": None,
        "redistribution": None,
        "version": None,
        "content_sha256": None,
        "row_count": None,
        "supersedes": None,
        "diff": None,
        "reason": None,
        "superseded_by": None,
        "current_version": None,
        "current_content_sha256": None,
        "reference": None,
    }


def _dataset_fields(item: dict[str, Any], dataset: _Dataset) -> None:
    item["publisher"] = dataset.publisher
    item["dataset"] = dataset.slug
    item["dataset_access"] = dataset.access
    item["redistribution"] = dataset.redistribution


def _change(
    event: AuditEvent, context: _Context, viewer: Viewer, wanted: FeedFilter
) -> dict[str, Any] | None:
    """The change an event tells, or None when this reader may not see it or did not ask."""
    item = _base(event)
    if event.action == "reference.loaded":
        if wanted.narrows:
            return None
        item["reference"] = {
            table: {
                "version": details.get("version"),
                "previous_version": details.get("previous_version"),
                "rows": details.get("rows"),
            }
            for table, details in sorted((event.payload or {}).items())
            if isinstance(details, dict)
        }
        return item
    dataset: _Dataset | None
    if event.subject_type == "dataset":
        dataset = context.by_label.get(event.subject_id)
    else:
        dataset_id = context.version_dataset.get(int(event.subject_id))
        dataset = context.datasets.get(dataset_id) if dataset_id is not None else None
    if dataset is None or not wanted.admits(dataset.publisher, dataset.slug):
        return None
    if not viewer.may_read(
        access=dataset.access, publisher=dataset.publisher, dataset_id=dataset.id
    ):
        return None
    _dataset_fields(item, dataset)
    payload = event.payload or {}
    if event.action == "dataset.deprecated":
        item["superseded_by"] = payload.get("superseded_by")
        item["reason"] = payload.get("reason")
        return item
    release = context.release_by_id.get(int(event.subject_id))
    item["version"] = payload.get("version")
    versions = f"/v1/datasets/{dataset.publisher}/{dataset.slug}/versions"
    if event.action == "version.published":
        item["content_sha256"] = payload.get("content_sha256")
        item["row_count"] = payload.get("row_count")
        previous = (
            context.release_by_id.get(release.supersedes_id)
            if release is not None and release.supersedes_id is not None
            else None
        )
        if previous is not None:
            item["supersedes"] = previous.version
            item["diff"] = f"{versions}/{item['version']}/diff?from={previous.version}"
    else:
        item["reason"] = payload.get("reason")
        item["content_sha256"] = release.content_sha256 if release is not None else None
    current = context.current_at(dataset.id, event.occurred_at)
    if current is not None:
        item["current_version"] = current.version
        item["current_content_sha256"] = current.content_sha256
    return item


def changes_page(
    session: Session,
    *,
    viewer: Viewer,
    after: int,
    limit: int,
    wanted: FeedFilter,
    newest_first: bool = False,
) -> ChangesPage:
    """At most `limit` changes after audit event `after` (oldest first), or before it when
    `newest_first` (`after` 0: from the newest), that `viewer` may see and `wanted` admits."""
    items: list[dict[str, Any]] = []
    position = after
    scanned = 0
    while scanned < MAX_SCANNED and len(items) < limit:
        query = select(AuditEvent).where(AuditEvent.action.in_(_ACTIONS))
        if newest_first:
            if position:
                query = query.where(AuditEvent.id < position)
            query = query.order_by(AuditEvent.id.desc())
        else:
            query = query.where(AuditEvent.id > position).order_by(AuditEvent.id)
        events = session.execute(query.limit(_BATCH)).scalars().all()
        if not events:
            break
        context = _Context(session, events)
        for event in events:
            scanned += 1
            position = event.id
            change = _change(event, context, viewer, wanted)
            if change is not None:
                items.append(change)
                if len(items) == limit:
                    break
        if len(events) < _BATCH and len(items) < limit:
            return ChangesPage(items, position, more=False)
    return ChangesPage(items, position, more=_more(session, position, newest_first))


def _more(session: Session, position: int, newest_first: bool) -> bool:
    beyond = AuditEvent.id < position if newest_first else AuditEvent.id > position
    return bool(
        session.execute(
            select(exists().where(AuditEvent.action.in_(_ACTIONS), beyond))
        ).scalar_one()
    )


def change_types() -> Iterable[str]:
    return CHANGE_TYPES.values()
