"""Reading datasets and their released versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.core.audit import append_event
from app.core.db import AnySelect, take_write_lock, utcnow
from app.core.errors import Conflict, NotFound, ProblemError
from app.core.pagination import after_id_from_cursor, id_cursor
from app.core.principal import Viewer
from app.core.problem_text import Message
from app.datasets.access import readable
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import RELEASED_STATUSES, VERSION_STATUSES, DatasetVersion
from app.datasets.visibility import newest_first, parse_semver, visible_version_ids


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


def check_four_eyes(
    reviewer_publisher: str | None, owner_publisher: str, label: str, action: str = "review"
) -> None:
    """Four eyes on every state change of a release or a dataset: the actor is a reviewer
    who is not of the dataset's publisher."""
    if reviewer_publisher is not None and reviewer_publisher == owner_publisher:
        raise Forbidden(
            Message("auth.four_eyes", publisher=owner_publisher, label=label, action=action)
        )


# The dataset page's plain-words sections (model columns of the same names).
ABOUT_FIELDS = (
    "coverage_zh",
    "coverage_en",
    "method_zh",
    "method_en",
    "limits_zh",
    "limits_en",
    "license_plain_zh",
    "license_plain_en",
    "about_sources",
)

# Where a deprecation's time, reviewer and reason live on the dataset row (its `extra` JSON):
# the successor has a column of its own, `superseded_by_id`.
DEPRECATION_KEY = "deprecation"
_LatestVersion = aliased(DatasetVersion)
_Successor = aliased(Dataset)
_SuccessorPublisher = aliased(Publisher)


def _dataset_select(viewer: Viewer) -> AnySelect:
    query = (
        select(
            Dataset,
            Publisher.slug.label("publisher"),
            _LatestVersion.version.label("latest_version"),
            _SuccessorPublisher.slug.label("successor_publisher"),
            _Successor.slug.label("successor_slug"),
        )
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .outerjoin(
            _LatestVersion,
            (_LatestVersion.dataset_id == Dataset.id)
            & _LatestVersion.id.in_(visible_version_ids()),
        )
        .outerjoin(_Successor, _Successor.id == Dataset.superseded_by_id)
        .outerjoin(_SuccessorPublisher, _SuccessorPublisher.id == _Successor.publisher_id)
    )
    if not viewer.reads_every_dataset:
        query = query.where(readable(viewer))
    return query


def _dataset_payload(row: Any) -> dict[str, Any]:
    dataset: Dataset = row.Dataset
    successor = f"{row.successor_publisher}/{row.successor_slug}" if row.successor_slug else None
    deprecation = (dataset.extra or {}).get(DEPRECATION_KEY) or {}
    return {
        "id": f"{row.publisher}/{dataset.slug}",
        "publisher": row.publisher,
        "slug": dataset.slug,
        "title_zh": dataset.title_zh,
        "title_en": dataset.title_en,
        "description": dataset.description,
        "sector_scheme": dataset.sector_scheme,
        "sector_code": dataset.sector_code,
        "access": dataset.access,
        "license_id": dataset.license_id,
        "license_url": dataset.license_url,
        "attribution": dataset.attribution,
        "redistribution": dataset.redistribution,
        "commercial_use": dataset.commercial_use,
        "contact": dataset.contact,
        "methodology_url": dataset.methodology_url,
        **{name: getattr(dataset, name) for name in ABOUT_FIELDS},
        "status": dataset.status,
        "superseded_by": successor,
        "deprecated_at": deprecation.get("at"),
        "deprecation_reason": deprecation.get("reason"),
        "latest_version": row.latest_version,
        "created_at": dataset.created_at,
    }


def list_datasets(
    session: Session, *, viewer: Viewer, publisher: str | None, after_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    query = _dataset_select(viewer)
    if publisher is not None:
        query = query.where(Publisher.slug == publisher)
    if after_id is not None:
        query = query.where(Dataset.id > after_id)
    rows = session.execute(query.order_by(Dataset.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_dataset_payload(r) for r in rows], (rows[-1].Dataset.id if more else None)


def datasets_page(
    session: Session, *, viewer: Viewer, publisher: str | None, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of datasets (one publisher's, or all) and the cursor of the next page. The
    API's list and the publisher page both read it, so either's cursor continues the other."""
    scope = {"publisher": publisher}
    items, last_id = list_datasets(
        session,
        viewer=viewer,
        publisher=publisher,
        after_id=after_id_from_cursor(cursor, scope),
        limit=limit,
    )
    return items, id_cursor(last_id, scope)


def get_dataset_row(session: Session, *, viewer: Viewer, publisher: str, dataset: str) -> Any:
    row = session.execute(
        _dataset_select(viewer).where(Publisher.slug == publisher, Dataset.slug == dataset)
    ).first()
    if row is None:
        raise NotFound(Message("not_found.dataset", dataset=f"{publisher}/{dataset}"))
    return row


def get_dataset(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str
) -> dict[str, Any]:
    return _dataset_payload(
        get_dataset_row(session, viewer=viewer, publisher=publisher, dataset=dataset)
    )


def _version_payload(
    version: DatasetVersion, dataset: Dataset, publisher: str, supersedes: str | None
) -> dict[str, Any]:
    return {
        "dataset": f"{publisher}/{dataset.slug}",
        "version": version.version,
        "status": version.status,
        "release_notes": version.release_notes,
        "row_count": version.row_count,
        "content_sha256": version.content_sha256,
        "file_name": version.upload_file_name,
        "file_sha256": version.upload_file_sha256,
        "created_by": version.created_by,
        "created_at": version.created_at,
        "submitted_by": version.submitted_by,
        "submitted_at": version.submitted_at,
        "published_by": version.published_by,
        "published_at": version.published_at,
        "supersedes": supersedes,
        "withdrawn_at": version.withdrawn_at,
        "withdrawn_reason": version.withdrawn_reason,
        "license_id": dataset.license_id,
        "attribution": dataset.attribution,
    }


_Previous = aliased(DatasetVersion)


def sees_unreleased(viewer: Viewer, publisher: str) -> bool:
    """Drafts and submissions are seen by their own publisher's writing clients and by
    reviewers only (who see them whatever the dataset's access)."""
    if viewer.scopes & {"datasets:review", "admin"}:
        return True
    return viewer.publisher == publisher and "datasets:write" in viewer.scopes


def _visible_statuses(viewer: Viewer, publisher: str) -> tuple[str, ...]:
    return VERSION_STATUSES if sees_unreleased(viewer, publisher) else RELEASED_STATUSES


def reading_viewer(viewer: Viewer, publisher: str) -> Viewer:
    """The viewer to look a dataset's rows up with: a reviewer, or the publisher's own writing
    client, reads the dataset whatever its access (it must, to review or submit it)."""
    if sees_unreleased(viewer, publisher) and "factors:read" not in viewer.scopes:
        return Viewer(
            client_id=viewer.client_id,
            publisher=viewer.publisher,
            scopes=viewer.scopes | {"factors:read"},
        )
    return viewer


def _versions_query(dataset_id: int, statuses: tuple[str, ...]) -> AnySelect:
    return (
        select(DatasetVersion, _Previous.version.label("supersedes"))
        .outerjoin(_Previous, _Previous.id == DatasetVersion.supersedes_id)
        .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.status.in_(statuses))
    )


def list_versions(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str
) -> list[dict[str, Any]]:
    row = get_dataset_row(session, viewer=viewer, publisher=publisher, dataset=dataset)
    versions = session.execute(
        _versions_query(row.Dataset.id, _visible_statuses(viewer, publisher)).order_by(
            *newest_first()
        )
    ).all()
    return [
        _version_payload(v.DatasetVersion, row.Dataset, publisher, v.supersedes) for v in versions
    ]


def get_version(
    session: Session, *, viewer: Viewer, publisher: str, dataset: str, version: str
) -> tuple[dict[str, Any], DatasetVersion]:
    parse_semver(version)
    row = get_dataset_row(
        session, viewer=reading_viewer(viewer, publisher), publisher=publisher, dataset=dataset
    )
    found = session.execute(
        _versions_query(row.Dataset.id, _visible_statuses(viewer, publisher)).where(
            DatasetVersion.version == version
        )
    ).first()
    if found is None:
        raise NotFound(
            Message("not_found.version", version=version, dataset=f"{publisher}/{dataset}")
        )
    target: DatasetVersion = found.DatasetVersion
    payload = _version_payload(target, row.Dataset, publisher, found.supersedes)
    if target.status not in RELEASED_STATUSES:
        payload["report"] = target.validation_report
    return payload, target


def publisher_by_slug(session: Session, slug: str) -> Publisher:
    publisher = session.execute(
        select(Publisher).where(Publisher.slug == slug)
    ).scalar_one_or_none()
    if publisher is None:
        raise NotFound(Message("not_found.publisher", publisher=slug))
    return publisher


def create_dataset(
    session: Session,
    *,
    publisher: Publisher,
    fields: dict[str, Any],
    actor: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    exists = session.execute(
        select(Dataset.id).where(
            Dataset.publisher_id == publisher.id, Dataset.slug == fields["slug"]
        )
    ).scalar_one_or_none()
    if exists is not None:
        raise Conflict(Message("dataset.exists", dataset=f"{publisher.slug}/{fields['slug']}"))
    dataset = Dataset(publisher_id=publisher.id, created_at=now or utcnow(), **fields)
    session.add(dataset)
    session.flush()
    append_event(
        session,
        actor=actor,
        action="dataset.created",
        subject_type="dataset",
        subject_id=f"{publisher.slug}/{dataset.slug}",
        payload=fields,
        occurred_at=now,
    )
    return get_dataset(
        session,
        viewer=Viewer(publisher=publisher.slug, scopes=frozenset({"factors:read"})),
        publisher=publisher.slug,
        dataset=dataset.slug,
    )


def dataset_for_write(
    session: Session, *, publisher: str, dataset: str, lock: bool = False
) -> Dataset:
    """The dataset row itself, for publishers writing to it (access checks are the caller's).

    `lock`: hold the dataset until the transaction ends (see `lock_dataset`); read after the
    lock, so that the row and everything read after it are the latest committed state.
    """
    if lock:
        take_write_lock(session)
    query = (
        select(Dataset)
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .where(Publisher.slug == publisher, Dataset.slug == dataset)
    )
    if lock:
        query = query.with_for_update(of=Dataset, key_share=True).execution_options(
            populate_existing=True
        )
    found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(Message("not_found.dataset", dataset=f"{publisher}/{dataset}"))
    return found


def lock_dataset(session: Session, dataset: Dataset) -> None:
    """Serialise the writes to one dataset's versions: publish, reject, withdraw, submit,
    upload and delete all take this lock first and check their rules after it, so that two
    of them at once run one after the other and the second sees what the first did.

    PostgreSQL: a row lock on the dataset (`SELECT ... FOR NO KEY UPDATE`: rows that merely
    refer to the dataset are not held up), held to the end of the transaction. SQLite: the
    database's write lock (`BEGIN IMMEDIATE`).
    """
    take_write_lock(session)
    session.execute(
        select(Dataset)
        .where(Dataset.id == dataset.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def version_for_write(
    session: Session, *, dataset: Dataset, label: str, version: str
) -> DatasetVersion:
    parse_semver(version)
    found = session.execute(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version)
        # Read afresh: under the dataset's lock, this is the state the change is checked on.
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(Message("not_found.version_label", label=label))
    return found


def _successor_chain_reaches(session: Session, start: Dataset, target_id: int) -> bool:
    """Whether following `superseded_by` from `start` comes back to `target_id` (a cycle)."""
    seen: set[int] = set()
    current: Dataset | None = start
    while current is not None and current.id not in seen:
        if current.id == target_id:
            return True
        seen.add(current.id)
        next_id = current.superseded_by_id
        current = session.get(Dataset, next_id) if next_id is not None else None
    return False


def deprecate_dataset(
    session: Session,
    *,
    publisher: str,
    dataset: str,
    superseded_by: str | None,
    reason: str,
    actor: str,
    actor_publisher: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Mark a dataset deprecated, naming its successor; one audit event, same transaction.

    Its releases stay as they are (readable, resolvable): deprecation tells readers to move
    on, withdrawal of a version is what takes numbers out of "latest".
    """
    label = f"{publisher}/{dataset}"
    check_four_eyes(actor_publisher, publisher, f"dataset {label}", "deprecate")
    target = dataset_for_write(session, publisher=publisher, dataset=dataset, lock=True)
    if target.status == "deprecated":
        done = (target.extra or {}).get(DEPRECATION_KEY) or {}
        raise Conflict(
            Message("dataset.already_deprecated_by", dataset=label, by=done["by"], at=done["at"])
            if done.get("by")
            else Message("dataset.already_deprecated", dataset=label)
        )
    successor: Dataset | None = None
    if superseded_by is not None:
        successor_publisher, successor_slug = superseded_by.split("/", 1)
        successor = dataset_for_write(
            session, publisher=successor_publisher, dataset=successor_slug
        )
        if target.access == "public" and successor.access != "public":
            # Anonymous readers of the old dataset would be pointed at one they cannot see
            # (and told that it exists, which `registered` access keeps from them).
            raise Conflict(
                Message(
                    "dataset.successor_not_public",
                    successor=superseded_by,
                    dataset=label,
                    access=successor.access,
                )
            )
        if _successor_chain_reaches(session, successor, target.id):
            raise Conflict(
                Message("dataset.successor_cycle", successor=superseded_by, dataset=label)
            )
    target.status = "deprecated"
    target.superseded_by_id = successor.id if successor is not None else None
    target.extra = {
        **(target.extra or {}),
        DEPRECATION_KEY: {"at": now.isoformat(), "by": actor, "reason": reason},
    }
    session.flush()
    append_event(
        session,
        actor=actor,
        action="dataset.deprecated",
        subject_type="dataset",
        subject_id=label,
        payload={"superseded_by": superseded_by, "reason": reason},
        occurred_at=now,
    )
    return get_dataset(
        session,
        viewer=Viewer(publisher=None, scopes=frozenset({"factors:read"})),
        publisher=publisher,
        dataset=dataset,
    )
