"""Every table, imported in one place so that Alembic sees the whole schema."""

from app.auth.models import Client
from app.core.db import Base
from app.datasets.models import Dataset, Publisher
from app.exports.models import DatabaseInstance, ExportFile, Snapshot, snapshot_version
from app.factors.models import Factor, ReleaseFacetCount
from app.provenance.models import AuditEvent, Source
from app.reference.models import (
    Activity,
    ConversionProperty,
    GwpValue,
    Location,
    LocationMember,
    ReferenceVersion,
)
from app.versioning.models import DatasetVersion

__all__ = [
    "Activity",
    "AuditEvent",
    "Base",
    "Client",
    "ConversionProperty",
    "DatabaseInstance",
    "Dataset",
    "DatasetVersion",
    "ExportFile",
    "Factor",
    "GwpValue",
    "Location",
    "LocationMember",
    "Publisher",
    "ReferenceVersion",
    "ReleaseFacetCount",
    "Snapshot",
    "Source",
    "snapshot_version",
]
