"""Checking factor citations (`publisher/dataset/code@version`, optionally with the release's
content hash and the value used) against what the database holds now: is the factor there,
is its value the one cited, is its release still published (or superseded, or withdrawn and
why), is its dataset deprecated and by what, and which current factor replaces it.

Everything is read in a fixed number of queries whatever the number of citations. A dataset
the caller may not read (`registered`, without `factors:read`) answers as if it did not exist,
as every read path does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import InvalidParameter
from app.core.principal import Viewer
from app.datasets.models import Dataset, Publisher
from app.datasets.service import DEPRECATION_KEY
from app.datasets.version_models import RELEASED_STATUSES, RESOLVABLE_STATUSES, DatasetVersion
from app.factors.models import Factor

MAX_CITATIONS = 1000
CITATION_ID = re.compile(
    r"^(?P<publisher>[a-z0-9][a-z0-9-]{0,63})/(?P<dataset>[a-z0-9][a-z0-9-]{0,63})/"
    r"(?P<code>[A-Za-z0-9._:-]{1,128})@(?P<version>(?:0|[1-9]\d{0,8})\.(?:0|[1-9]\d{0,8})\."
    r"(?:0|[1-9]\d{0,8}))$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The release's status as a citing reader needs it: `deprecated` releases are superseded.
_RELEASE_STATUS = {"published": "published", "deprecated": "superseded", "withdrawn": "withdrawn"}


@dataclass(frozen=True)
class Citation:
    publisher: str
    dataset: str
    code: str
    version: str
    content_sha256: str | None
    value: float | None

    @property
    def id(self) -> str:
        return f"{self.publisher}/{self.dataset}/{self.code}@{self.version}"


def parse_citations(raw: Sequence[dict[str, Any]]) -> list[Citation]:
    """The citations of a request body, or 422 naming the index (and field) of each bad one."""
    if len(raw) > MAX_CITATIONS:
        raise InvalidParameter(
            f"At most {MAX_CITATIONS} citations a request; this one has {len(raw)}. "
            f"Send the citations from index {MAX_CITATIONS} on in another request.",
            errors=[
                {
                    "loc": ["body", "citations", str(MAX_CITATIONS)],
                    "code": "too_many",
                    "detail": f"more than {MAX_CITATIONS} citations",
                }
            ],
        )
    errors: list[dict[str, Any]] = []
    parsed: list[Citation] = []
    for index, item in enumerate(raw):
        where = ["body", "citations", str(index)]
        match = CITATION_ID.match(item["id"])
        if match is None:
            errors.append(
                {
                    "loc": [*where, "id"],
                    "code": "invalid_citation_id",
                    "detail": f"'{item['id']}' is not "
                    "publisher/dataset/factor_code@MAJOR.MINOR.PATCH",
                }
            )
        digest = item.get("content_sha256")
        if digest is not None and not _SHA256.match(digest):
            errors.append(
                {
                    "loc": [*where, "content_sha256"],
                    "code": "invalid_sha256",
                    "detail": "64 lowercase hexadecimal digits",
                }
            )
        if match is not None:
            parsed.append(
                Citation(
                    match["publisher"],
                    match["dataset"],
                    match["code"],
                    match["version"],
                    digest,
                    item.get("value"),
                )
            )
    if errors:
        first = errors[0]["loc"][2]
        raise InvalidParameter(
            f"{len(errors)} citation field(s) are malformed, the first at index {first}; "
            "nothing was checked.",
            errors=errors,
        )
    return parsed


@dataclass(frozen=True)
class _DatasetRow:
    id: int
    publisher: str
    slug: str
    status: str
    successor: str | None
    successor_id: int | None
    deprecation: dict[str, Any]


def _fmt(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def verify_citations(
    session: Session, *, viewer: Viewer, citations: Sequence[Citation]
) -> list[dict[str, Any]]:
    """One answer per citation, in order."""
    publishers = {c.publisher for c in citations}
    slugs = {c.dataset for c in citations}
    successor = Dataset.__table__.alias("successor")
    successor_publisher = Publisher.__table__.alias("successor_publisher")
    query = (
        select(
            Dataset.id,
            Publisher.slug.label("publisher"),
            Dataset.slug,
            Dataset.status,
            Dataset.access,
            Dataset.extra,
            successor.c.id.label("successor_id"),
            successor.c.slug.label("successor_slug"),
            successor.c.access.label("successor_access"),
            successor_publisher.c.slug.label("successor_publisher"),
        )
        .join(Publisher, Publisher.id == Dataset.publisher_id)
        .outerjoin(successor, successor.c.id == Dataset.superseded_by_id)
        .outerjoin(successor_publisher, successor_publisher.c.id == successor.c.publisher_id)
        .where(Publisher.slug.in_(publishers), Dataset.slug.in_(slugs))
    )
    datasets: dict[tuple[str, str], _DatasetRow] = {}
    for row in session.execute(query) if citations else ():
        if not viewer.may_read(access=row.access, publisher=row.publisher, dataset_id=row.id):
            continue
        successor_visible = row.successor_id is not None and viewer.may_read(
            access=row.successor_access,
            publisher=row.successor_publisher,
            dataset_id=row.successor_id,
        )
        datasets[(row.publisher, row.slug)] = _DatasetRow(
            row.id,
            row.publisher,
            row.slug,
            row.status,
            f"{row.successor_publisher}/{row.successor_slug}" if successor_visible else None,
            row.successor_id if successor_visible else None,
            (row.extra or {}).get(DEPRECATION_KEY) or {},
        )
    dataset_ids = {d.id for d in datasets.values()} | {
        d.successor_id for d in datasets.values() if d.successor_id is not None
    }
    releases: dict[tuple[int, str], DatasetVersion] = {}
    current: dict[int, DatasetVersion] = {}
    if dataset_ids:
        for version in session.execute(
            select(DatasetVersion).where(
                DatasetVersion.dataset_id.in_(dataset_ids),
                DatasetVersion.status.in_(RELEASED_STATUSES),
            )
        ).scalars():
            releases[(version.dataset_id, version.version)] = version
            if version.status in RESOLVABLE_STATUSES:
                held = current.get(version.dataset_id)
                rank = (version.major, version.minor, version.patch)
                if held is None or rank > (held.major, held.minor, held.patch):
                    current[version.dataset_id] = version
    codes = {c.code for c in citations}
    version_ids = {v.id for v in releases.values()}
    factors: dict[tuple[int, str], Any] = {}
    if version_ids:
        for row in session.execute(
            select(Factor.version_id, Factor.factor_code, Factor.co2e, Factor.unit).where(
                Factor.version_id.in_(version_ids), Factor.factor_code.in_(codes)
            )
        ):
            factors[(row.version_id, row.factor_code)] = row
    slug_of = {d.id: (d.publisher, d.slug) for d in datasets.values()}
    for d in datasets.values():
        if d.successor_id is not None and d.successor is not None:
            slug_of.setdefault(d.successor_id, tuple(d.successor.split("/", 1)))  # type: ignore[arg-type]

    def replacement_in(dataset_id: int | None, code: str, cited_version_id: int | None) -> Any:
        release = current.get(dataset_id) if dataset_id is not None else None
        if release is None or release.id == cited_version_id:
            return None
        row = factors.get((release.id, code))
        if row is None:
            return None
        publisher, slug = slug_of[dataset_id]  # type: ignore[index]
        return {
            "id": f"{publisher}/{slug}/{code}@{release.version}",
            "value": row.co2e,
            "unit": row.unit,
            "content_sha256": release.content_sha256,
        }

    answers = []
    for index, citation in enumerate(citations):
        dataset = datasets.get((citation.publisher, citation.dataset))
        answer: dict[str, Any] = {
            "index": index,
            "id": citation.id,
            "found": False,
            "not_found": None,
            "value": None,
            "unit": None,
            "value_matches": None,
            "content_sha256": None,
            "content_sha256_matches": None,
            "release_status": None,
            "withdrawn_reason": None,
            "withdrawn_at": None,
            "superseded_at": None,
            "current_version": None,
            "dataset_status": None,
            "superseded_by": None,
            "deprecation_reason": None,
            "deprecated_at": None,
            "replaced_by": None,
        }
        answers.append(answer)
        if dataset is None:
            answer["not_found"] = "dataset"
            continue
        now_current = current.get(dataset.id)
        answer.update(
            dataset_status=dataset.status,
            superseded_by=dataset.successor,
            deprecation_reason=dataset.deprecation.get("reason"),
            deprecated_at=dataset.deprecation.get("at"),
            current_version=now_current.version if now_current is not None else None,
        )
        release = releases.get((dataset.id, citation.version))
        if release is None:
            answer["not_found"] = "release"
        else:
            answer.update(
                content_sha256=release.content_sha256,
                content_sha256_matches=(
                    citation.content_sha256 == release.content_sha256
                    if citation.content_sha256 is not None
                    else None
                ),
                release_status=_RELEASE_STATUS[release.status],
                withdrawn_reason=release.withdrawn_reason,
                withdrawn_at=_fmt(release.withdrawn_at),
                superseded_at=_fmt(release.deprecated_at)
                if release.status == "deprecated"
                else None,
            )
            cited = factors.get((release.id, citation.code))
            if cited is None:
                answer["not_found"] = "factor"
            else:
                answer.update(
                    found=True,
                    value=cited.co2e,
                    unit=cited.unit,
                    value_matches=(
                        citation.value == cited.co2e if citation.value is not None else None
                    ),
                )
        cited_id = release.id if release is not None else None
        if dataset.status == "deprecated" and dataset.successor_id is not None:
            answer["replaced_by"] = replacement_in(dataset.successor_id, citation.code, None)
        if answer["replaced_by"] is None:
            answer["replaced_by"] = replacement_in(dataset.id, citation.code, cited_id)
    return answers
