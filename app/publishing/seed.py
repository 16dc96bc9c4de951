"""Loading `seed_data/`: cited reference datasets, published as ordinary versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.urls import url_problem
from app.datasets.models import Dataset, Publisher
from app.datasets.service import ABOUT_FIELDS
from app.datasets.version_models import DatasetVersion
from app.factors.models import Factor
from app.factors.schemas import FactorFields
from app.factors.validation import RecordReference, load_record_reference
from app.importers import IMPORTERS, ImportedRow
from app.publishing.publish import release_directly
from app.publishing.records import RowProblem, parse_record, read_csv_rows
from app.reference.loader import load_reference_data

SEED_ACTOR = "efdb-seed"

_DATASET_FIELDS = (
    "title_zh",
    "title_en",
    "description",
    "sector_scheme",
    "sector_code",
    "access",
    "license_id",
    "license_url",
    "attribution",
    "redistribution",
    "commercial_use",
    "contact",
    "methodology_url",
    "priority",
    *ABOUT_FIELDS,
)


class SeedError(Exception):
    pass


@dataclass(frozen=True)
class SeedResult:
    publishers: int
    datasets: int
    versions: int
    factors: int


def database_is_empty(session: Session) -> bool:
    return session.execute(select(func.count()).select_from(Factor)).scalar_one() == 0


def _read_records(path: Path, reference: RecordReference) -> list[tuple[int, FactorFields]]:
    records: list[tuple[int, FactorFields]] = []
    problems: list[RowProblem] = []
    for row, cells in read_csv_rows(path):
        parsed = parse_record(row, cells, reference)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            records.append((row, parsed))
    if problems:
        listed = "; ".join(f"row {p.row} {p.column}: {p.detail}" for p in problems[:5])
        raise SeedError(f"{path}: {len(problems)} problem(s): {listed}")
    return records


def _imported_records(
    path: Path, source_format: str, through_year: int | None, reference: RecordReference
) -> list[tuple[int, FactorFields]]:
    """A publisher's own file read by its importer (app.importers), checked as an upload."""
    importer = IMPORTERS.get(source_format)
    if importer is None:
        raise SeedError(f"{path}: no importer for source format '{source_format}'")
    records: list[tuple[int, FactorFields]] = []
    problems: list[RowProblem] = []
    for item in importer.read(path.read_bytes(), through_year=through_year):
        if not isinstance(item, ImportedRow):
            continue  # a row the importer leaves out, with its reason (an upload's warning)
        parsed = parse_record(item.row, item.values, reference, text_cells=False)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            records.append((item.row, parsed))
    if problems:
        listed = "; ".join(f"row {p.row} {p.column}: {p.detail}" for p in problems[:5])
        raise SeedError(f"{path}: {len(problems)} problem(s): {listed}")
    return records


def _publisher(session: Session, spec: dict[str, Any]) -> Publisher:
    publisher = session.execute(
        select(Publisher).where(Publisher.slug == spec["slug"])
    ).scalar_one_or_none()
    if publisher is None:
        publisher = Publisher(
            slug=spec["slug"],
            name_zh=spec.get("name_zh"),
            name_en=spec.get("name_en"),
            sectors=spec.get("sectors", []),
            contact_email=spec.get("contact_email"),
        )
        session.add(publisher)
        session.flush()
        append_event(
            session,
            actor=SEED_ACTOR,
            action="publisher.created",
            subject_type="publisher",
            subject_id=publisher.slug,
        )
    return publisher


def load_seed(
    session: Session,
    seed_dir: Path,
    *,
    scope: str = "core",
    progress: Callable[[str], None] | None = None,
) -> SeedResult:
    """Load every publisher, dataset and version under `seed_dir` that is not loaded yet.

    The reference tables (`seed_dir/reference/`) come first: the factors are checked against
    them (regions, GWP100) like any upload. `scope` `core`: the datasets without
    `"scope": "full"` in their dataset.json (the curated ones) and the publishers without it in
    publishers.json; `full`: every dataset and publisher. `progress` is told each version as
    it is loaded or found already there (the full seed takes a while). A version may say
    `"scope": "full"` too: the core seed stops before it."""
    load_reference_data(session, seed_dir / "reference")
    reference: RecordReference | None = None
    publishers = json.loads((seed_dir / "publishers.json").read_text(encoding="utf-8"))
    by_slug = {
        spec["slug"]: _publisher(session, spec)
        for spec in publishers
        if spec.get("scope", "core") != "full" or scope == "full"
    }
    datasets = versions = factors = 0
    for dataset_file in sorted(seed_dir.glob("*/*/dataset.json")):
        publisher_slug = dataset_file.parent.parent.name
        spec = json.loads(dataset_file.read_text(encoding="utf-8"))
        if spec.get("scope", "core") == "full" and scope != "full":
            continue
        if publisher_slug not in by_slug:
            raise SeedError(f"{dataset_file}: publisher '{publisher_slug}' not in publishers.json")
        dataset = _dataset(session, by_slug[publisher_slug], spec)
        datasets += 1
        for version_spec in spec["versions"]:
            if version_spec.get("scope", "core") == "full" and scope != "full":
                # A later release of a curated dataset: the core seed (the test suite's)
                # keeps the releases its tests pin; tests/test_seed_corrections.py loads it.
                continue
            if reference is None:
                reference = load_record_reference(session)
            loaded = _version(session, dataset, version_spec, dataset_file.parent, reference)
            if loaded is not None:
                versions += 1
                factors += loaded
            if progress is not None:
                name = f"{publisher_slug}/{spec['slug']} {version_spec['version']}"
                done = "already loaded" if loaded is None else f"{loaded:,} factors"
                progress(f"{name}: {done} ({factors:,} factors loaded so far)")
    return SeedResult(len(by_slug), datasets, versions, factors)


def _dataset(session: Session, publisher: Publisher, spec: dict[str, Any]) -> Dataset:
    dataset = session.execute(
        select(Dataset).where(Dataset.publisher_id == publisher.id, Dataset.slug == spec["slug"])
    ).scalar_one_or_none()
    if dataset is None:
        for name in ("license_url", "methodology_url"):
            value = spec.get(name)
            problem = url_problem(value) if isinstance(value, str) else None
            if value is not None and not isinstance(value, str):
                problem = "must be text"
            if problem is not None:
                raise SeedError(f"dataset {publisher.slug}/{spec['slug']}: {name} {problem}")
        dataset = Dataset(
            publisher_id=publisher.id,
            slug=spec["slug"],
            **{name: spec.get(name) for name in _DATASET_FIELDS},
        )
        session.add(dataset)
        session.flush()
        append_event(
            session,
            actor=SEED_ACTOR,
            action="dataset.created",
            subject_type="dataset",
            subject_id=f"{publisher.slug}/{dataset.slug}",
        )
    return dataset


def _version(
    session: Session,
    dataset: Dataset,
    spec: dict[str, Any],
    folder: Path,
    reference: RecordReference,
) -> int | None:
    exists = session.execute(
        select(DatasetVersion.id).where(
            DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == spec["version"]
        )
    ).scalar_one_or_none()
    if exists is not None:
        return None
    path = folder / spec["file"]
    source_format = spec.get("source_format")
    records = (
        _imported_records(path, source_format, spec.get("through_year"), reference)
        if source_format is not None
        else _read_records(path, reference)
    )
    released = release_directly(
        session,
        dataset_id=dataset.id,
        version=spec["version"],
        records=records,
        actor=SEED_ACTOR,
        release_notes=spec.get("release_notes"),
        file_name=f"seed_data/{folder.parent.name}/{folder.name}/{path.name}",
        file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        upload_format=source_format or "csv",
    )
    return released.row_count
