"""Which datasets a reader sees, as SQL: the twin of `Viewer.may_read` for queries.

Public datasets: everyone. Registered ones: national roles (reviewers, administrators), the
publisher's own clients, and clients holding `factors:read` and a grant for the dataset
(`efdb grant add`). A dataset the reader may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select, true

from app.core.principal import OWN_READERS, Viewer
from app.datasets.models import Dataset, Publisher


def readable(viewer: Viewer) -> ColumnElement[bool]:
    """A condition on `Dataset` (no join needed) that holds for the datasets `viewer` reads."""
    if viewer.reads_every_dataset:
        return true()
    allowed: list[ColumnElement[bool]] = [Dataset.access == "public"]
    if viewer.publisher is not None and viewer.scopes & OWN_READERS:
        own = select(Publisher.id).where(Publisher.slug == viewer.publisher).scalar_subquery()
        allowed.append(Dataset.publisher_id == own)
    if "factors:read" in viewer.scopes and viewer.granted:
        allowed.append(Dataset.id.in_(sorted(viewer.granted)))
    return or_(*allowed)
