"""The database refuses what the workflow never does: a status change off its graph, a second
current release, a released version's provenance rewritten, a cited source edited, a released
dataset's licence or redistribution terms changed.

The service takes a lock on the dataset and checks its rules under it (issue 24); these
triggers make the same rules hold for anyone with SQL access, as migration 0002 does for
released factors.

Status changes of a version (`app/versioning/workflow.py`, `publish.py`):

    draft      -> submitted                      submit
    submitted  -> published                      publish: newer than every release, and
                                                 no other release of the dataset current
    submitted  -> rejected                       reject
    published  -> deprecated                     a newer release was published
    published  -> withdrawn, deprecated -> withdrawn     withdraw
    deprecated -> published                      withdraw of the current release restores
                                                 the one it superseded: only the highest
                                                 resolvable release, with none current

Anything else (draft -> published, withdrawn -> published, rejected -> anything, ...) is
refused; a version is created as a draft or (loaded directly) submitted. A draft is deleted
by the service; released versions cannot be (0002).

At most one release of a dataset is current (`published`): a partial unique index. Before it
is built, a dataset that races left with several current releases keeps the highest current
and the lower ones become `deprecated` (what "latest" already answered; nothing a reader
sees changes).

Released versions: besides what 0002 freezes, the upload provenance (file name, hash,
format, who created and submitted it and when), the release notes, the semantic version and
what it supersedes; a withdrawal's who, when and why once made.

Sources cited by a factor of a released version are neither changed nor deleted.

A dataset with a release keeps its licence (`license_id`, `license_url`, `attribution`) and
its terms (`redistribution`, `commercial_use`): the service has no route that changes them,
and a silent SQL update would change what earlier downloads were given under.

Revision ID: 20261204_0201
Revises: 20261203_0105
Create Date: 2026-12-04 02:01:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261204_0201"
down_revision: str | None = "20261203_0105"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASED = "('published', 'deprecated', 'withdrawn')"
RESOLVABLE = "('published', 'deprecated')"
ONE_CURRENT_INDEX = "uq_dataset_version_one_current"

_PROVENANCE = (
    "upload_file_name",
    "upload_file_sha256",
    "upload_format",
    "created_by",
    "created_at",
    "submitted_by",
    "submitted_at",
    "release_notes",
    "major",
    "minor",
    "patch",
    "supersedes_id",
)
_WITHDRAWAL = ("withdrawn_by", "withdrawn_at", "withdrawn_reason")
_LICENCE = ("license_id", "license_url", "attribution", "redistribution", "commercial_use")
_SOURCE = ("key_sha256", "title", "publisher", "year", "url", "doi")


def _differs(columns: Sequence[str], operator: str) -> str:
    return " OR ".join(f"NEW.{c} {operator} OLD.{c}" for c in columns)


# Conditions on NEW (a dataset_version row), shared by both databases' triggers.
_NEWER_THAN_EVERY_RELEASE = f"""NOT EXISTS (
    SELECT 1 FROM dataset_version AS other
    WHERE other.dataset_id = NEW.dataset_id AND other.id <> NEW.id
      AND other.status IN {RELEASED}
      AND (other.major, other.minor, other.patch) >= (NEW.major, NEW.minor, NEW.patch))"""
_NONE_CURRENT = """NOT EXISTS (
    SELECT 1 FROM dataset_version AS other
    WHERE other.dataset_id = NEW.dataset_id AND other.id <> NEW.id
      AND other.status = 'published')"""
_HIGHEST_RESOLVABLE = f"""NOT EXISTS (
    SELECT 1 FROM dataset_version AS other
    WHERE other.dataset_id = NEW.dataset_id AND other.id <> NEW.id
      AND other.status IN {RESOLVABLE}
      AND (other.major, other.minor, other.patch) > (NEW.major, NEW.minor, NEW.patch))"""

ALLOWED_TRANSITION = f"""(
    (OLD.status = 'draft' AND NEW.status = 'submitted')
    OR (OLD.status = 'submitted' AND NEW.status = 'published'
        AND {_NEWER_THAN_EVERY_RELEASE} AND {_NONE_CURRENT})
    OR (OLD.status = 'submitted' AND NEW.status = 'rejected')
    OR (OLD.status = 'published' AND NEW.status IN ('deprecated', 'withdrawn'))
    OR (OLD.status = 'deprecated' AND NEW.status = 'withdrawn')
    OR (OLD.status = 'deprecated' AND NEW.status = 'published'
        AND {_NONE_CURRENT} AND {_HIGHEST_RESOLVABLE})
)"""

_CITED_BY_RELEASE = f"""EXISTS (
    SELECT 1 FROM factor JOIN dataset_version ON dataset_version.id = factor.version_id
    WHERE factor.source_id = OLD.id AND dataset_version.status IN {RELEASED})"""
_HAS_RELEASE = f"""EXISTS (
    SELECT 1 FROM dataset_version
    WHERE dataset_version.dataset_id = OLD.id AND dataset_version.status IN {RELEASED})"""

# Races may have left two current releases of a dataset: keep the highest (what "latest"
# answers), deprecate the others as of the highest one's publication.
REPAIR_CURRENT = """
UPDATE dataset_version SET status = 'deprecated', deprecated_at = (
    SELECT MAX(newer.published_at) FROM dataset_version AS newer
    WHERE newer.dataset_id = dataset_version.dataset_id AND newer.status = 'published')
WHERE status = 'published' AND EXISTS (
    SELECT 1 FROM dataset_version AS newer
    WHERE newer.dataset_id = dataset_version.dataset_id AND newer.status = 'published'
      AND (newer.major, newer.minor, newer.patch)
          > (dataset_version.major, dataset_version.minor, dataset_version.patch))
"""

CREATE_INDEX = (
    f"CREATE UNIQUE INDEX {ONE_CURRENT_INDEX} ON dataset_version (dataset_id) "
    "WHERE status = 'published'"
)

POSTGRES_UP = [
    REPAIR_CURRENT,
    CREATE_INDEX,
    f"""
    CREATE FUNCTION efdb_guard_version_workflow() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.status NOT IN ('draft', 'submitted') THEN
                RAISE EXCEPTION
                    'a dataset version is created as a draft (or submitted), not %', NEW.status;
            END IF;
            RETURN NEW;
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status AND NOT {ALLOWED_TRANSITION} THEN
            RAISE EXCEPTION
                'the workflow does not move a dataset version from % to % (version %)',
                OLD.status, NEW.status, OLD.id;
        END IF;
        IF OLD.status IN {RELEASED} AND ({_differs(_PROVENANCE, "IS DISTINCT FROM")}) THEN
            RAISE EXCEPTION
                'the provenance of a released dataset version is immutable (version %)', OLD.id;
        END IF;
        IF OLD.status = 'withdrawn' AND ({_differs(_WITHDRAWAL, "IS DISTINCT FROM")}) THEN
            RAISE EXCEPTION 'a withdrawal is immutable once made (version %)', OLD.id;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER dataset_version_workflow
    BEFORE INSERT OR UPDATE ON dataset_version
    FOR EACH ROW EXECUTE FUNCTION efdb_guard_version_workflow()
    """,
    f"""
    CREATE FUNCTION efdb_guard_cited_source() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NOT ({_differs(_SOURCE, "IS DISTINCT FROM")}) THEN
            RETURN NEW;
        END IF;
        IF {_CITED_BY_RELEASE} THEN
            RAISE EXCEPTION
                'a source cited by a released factor is immutable (% on source %)',
                TG_OP, OLD.id;
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER source_immutable_when_cited
    BEFORE UPDATE OR DELETE ON source
    FOR EACH ROW EXECUTE FUNCTION efdb_guard_cited_source()
    """,
    f"""
    CREATE FUNCTION efdb_guard_released_licence() RETURNS trigger AS $$
    BEGIN
        IF ({_differs(_LICENCE, "IS DISTINCT FROM")}) AND {_HAS_RELEASE} THEN
            RAISE EXCEPTION
                'the licence and terms of a dataset with a release are immutable (dataset %)',
                OLD.id;
        END IF;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER dataset_licence_immutable_when_released
    BEFORE UPDATE ON dataset
    FOR EACH ROW EXECUTE FUNCTION efdb_guard_released_licence()
    """,
]

POSTGRES_DOWN = [
    "DROP TRIGGER dataset_licence_immutable_when_released ON dataset",
    "DROP FUNCTION efdb_guard_released_licence()",
    "DROP TRIGGER source_immutable_when_cited ON source",
    "DROP FUNCTION efdb_guard_cited_source()",
    "DROP TRIGGER dataset_version_workflow ON dataset_version",
    "DROP FUNCTION efdb_guard_version_workflow()",
    f"DROP INDEX {ONE_CURRENT_INDEX}",
]

SQLITE_UP = [
    REPAIR_CURRENT,
    CREATE_INDEX,
    """
    CREATE TRIGGER dataset_version_workflow_insert BEFORE INSERT ON dataset_version
    WHEN NEW.status NOT IN ('draft', 'submitted')
    BEGIN SELECT RAISE(ABORT, 'a dataset version is created as a draft (or submitted)'); END
    """,
    f"""
    CREATE TRIGGER dataset_version_workflow_status BEFORE UPDATE OF status ON dataset_version
    WHEN NEW.status IS NOT OLD.status AND NOT {ALLOWED_TRANSITION}
    BEGIN SELECT RAISE(ABORT,
        'the workflow does not move a dataset version between these statuses'); END
    """,
    f"""
    CREATE TRIGGER dataset_version_provenance_immutable BEFORE UPDATE ON dataset_version
    WHEN OLD.status IN {RELEASED} AND ({_differs(_PROVENANCE, "IS NOT")})
    BEGIN SELECT RAISE(ABORT, 'the provenance of a released dataset version is immutable'); END
    """,
    f"""
    CREATE TRIGGER dataset_version_withdrawal_immutable BEFORE UPDATE ON dataset_version
    WHEN OLD.status = 'withdrawn' AND ({_differs(_WITHDRAWAL, "IS NOT")})
    BEGIN SELECT RAISE(ABORT, 'a withdrawal is immutable once made'); END
    """,
    f"""
    CREATE TRIGGER source_immutable_when_cited_update BEFORE UPDATE ON source
    WHEN ({_differs(_SOURCE, "IS NOT")}) AND {_CITED_BY_RELEASE}
    BEGIN SELECT RAISE(ABORT, 'a source cited by a released factor is immutable'); END
    """,
    f"""
    CREATE TRIGGER source_immutable_when_cited_delete BEFORE DELETE ON source
    WHEN {_CITED_BY_RELEASE}
    BEGIN SELECT RAISE(ABORT, 'a source cited by a released factor is immutable'); END
    """,
    f"""
    CREATE TRIGGER dataset_licence_immutable_when_released BEFORE UPDATE ON dataset
    WHEN ({_differs(_LICENCE, "IS NOT")}) AND {_HAS_RELEASE}
    BEGIN SELECT RAISE(ABORT,
        'the licence and terms of a dataset with a release are immutable'); END
    """,
]

SQLITE_DOWN = [
    f"DROP TRIGGER {name}"
    for name in (
        "dataset_licence_immutable_when_released",
        "source_immutable_when_cited_delete",
        "source_immutable_when_cited_update",
        "dataset_version_withdrawal_immutable",
        "dataset_version_provenance_immutable",
        "dataset_version_workflow_status",
        "dataset_version_workflow_insert",
    )
] + [f"DROP INDEX {ONE_CURRENT_INDEX}"]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_UP)
    else:
        _run(SQLITE_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_DOWN)
    else:
        _run(SQLITE_DOWN)
