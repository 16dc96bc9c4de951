"""Every table, imported in one place so that Alembic sees the whole schema."""

from app.auth.models import Client, DatasetGrant
from app.changes.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.core.db import Base
from app.core.models import AuditEvent, ChangeOutbox
from app.datasets.generation import CatalogGeneration
from app.datasets.models import Dataset, Publisher
from app.datasets.usage import DatasetUsage
from app.datasets.version_models import DatasetVersion
from app.exports.models import DatabaseInstance, ExportFile, Snapshot, snapshot_version
from app.factors.models import Factor, ReleaseFacetCount, ReleaseFacetPairCount, Source
from app.reference.models import (
    Activity,
    ActivityLabel,
    ConversionProperty,
    GwpValue,
    Location,
    LocationMember,
    ReferenceVersion,
)
from app.signing.models import (
    AuditCheckpoint,
    ReleaseSigningKey,
    ReleaseStatement,
    SnapshotSignature,
)

__all__ = [
    "Activity",
    "ActivityLabel",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "CatalogGeneration",
    "ChangeOutbox",
    "Client",
    "ConversionProperty",
    "DatabaseInstance",
    "Dataset",
    "DatasetGrant",
    "DatasetUsage",
    "DatasetVersion",
    "ExportFile",
    "Factor",
    "GwpValue",
    "Location",
    "LocationMember",
    "Publisher",
    "ReferenceVersion",
    "ReleaseFacetCount",
    "ReleaseFacetPairCount",
    "ReleaseSigningKey",
    "ReleaseStatement",
    "Snapshot",
    "SnapshotSignature",
    "Source",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "snapshot_version",
]
