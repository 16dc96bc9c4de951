"""Every table, imported in one place so that Alembic sees the whole schema."""

from app.auth.models import Client
from app.core.db import Base
from app.datasets.models import Dataset, Publisher
from app.exports.models import Snapshot, snapshot_version
from app.factors.models import Factor
from app.provenance.models import AuditEvent, Source
from app.reference.models import Location, LocationMember
from app.versioning.models import DatasetVersion

__all__ = [
    "AuditEvent",
    "Base",
    "Client",
    "Dataset",
    "DatasetVersion",
    "Factor",
    "Location",
    "LocationMember",
    "Publisher",
    "Snapshot",
    "Source",
    "snapshot_version",
]
