"""Uploading a draft: stream, validate every row, store all of it or nothing."""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any

from psycopg import errors as psycopg_errors
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.core.audit import append_event
from app.core.db import utcnow
from app.core.errors import Conflict, ProblemError
from app.core.formula import FORMULA_FIRST_CHARACTERS, looks_like_formula
from app.core.problem_text import Message, joined
from app.core.text import escaped, forbidden_character, nfc, safe_file_name
from app.datasets.models import Dataset, Publisher
from app.datasets.service import lock_dataset
from app.datasets.version_models import DatasetVersion
from app.datasets.visibility import latest_released, latest_resolvable, parse_semver
from app.factors.schemas import FactorFields, FactorValues
from app.factors.validation import RecordReference, load_record_reference
from app.importers import GwpChoice
from app.publishing import draft_rows
from app.publishing.batch_records import parsed_rows
from app.publishing.labels import LABEL_COLUMNS, LabelCollector, label_collector
from app.publishing.publish import FactorWriter, store_factors
from app.publishing.records import RowProblem
from app.publishing.source_formats import read_source_rows, source_format_names, source_importer
from app.publishing.upload_formats import (
    RowStream,
    UploadFileError,
    UploadFormat,
    declared_format,
    read_rows,
)
from app.publishing.upload_limits import UploadLimits
from app.reference.gwp import load_gwp_table
from app.versioning.diff import bump_between, diff_summary

# A report lists at most this many problems of each kind; the counts say how many there were.
MAX_LISTED = 1000
_COLUMN_ORDER = {
    name: index for index, name in enumerate([*FactorFields.model_fields, *LABEL_COLUMNS])
}
_TEXT_FIELDS = ("name_zh", "name_en", "description", "notes", "source_title", "source_locator")
_text_values = operator.attrgetter(*_TEXT_FIELDS)
_first_character = operator.itemgetter(slice(1))


class UploadRejected(ProblemError):
    status, code, title = 422, "invalid-upload", "The upload has errors; nothing was stored"


@dataclass
class UploadReport:
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    # The labels the upload gives its publisher's new activities (app.publishing.labels).
    activity_labels: list[dict[str, Any]] = field(default_factory=list)

    # The sheet a workbook upload was read from: each problem with a row names it.
    sheet: str | None = None

    def _located(self, problem: RowProblem) -> RowProblem:
        if self.sheet is None or problem.row is None or problem.sheet is not None:
            return problem
        return replace(problem, sheet=self.sheet)

    def error(self, problem: RowProblem) -> None:
        problem = self._located(problem)
        self.error_count += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(problem)

    def warn(self, problem: RowProblem) -> None:
        problem = self._located(problem)
        self.warning_count += 1
        if len(self.warnings) < MAX_LISTED:
            self.warnings.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
            "error_count": self.error_count,
            "warning_count": self.warning_count,
            "activity_labels": self.activity_labels,
        }


@dataclass(frozen=True)
class UploadOutcome:
    version: DatasetVersion
    report: UploadReport
    created: bool  # False when the same file was already the draft (idempotent re-upload)


def file_sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def _valid_records(
    rows: RowStream,
    report: UploadReport,
    max_rows: int,
    reference: RecordReference,
    labels: LabelCollector,
    *,
    text_cells: bool,
    stored_codes: Callable[[], dict[str, int]] | None = None,
) -> Iterator[tuple[int, FactorValues]]:
    """Yield the rows that pass; record every problem of the others in the report, and the
    activity labels in `labels` (its warnings are added at the end, once the file is read).

    `text_cells`: the format's cells are all text (CSV); otherwise numbers must be numbers.

    `stored_codes`: the rows yielded are stored where the database refuses a duplicate
    `factor_code` (`factor_draft`), so no code is kept here while every row passes; once one
    has not (the upload is doomed and nothing more is yielded), the codes stored so far, each
    with its row, are read back from it and the rest is checked against them here. Without
    it every code is kept here."""
    seen_codes: dict[str, int] | None = None if stored_codes is not None else {}
    count = 0
    located = _LocatingReport(report, rows)
    for row_number, unread, activity_id, label_cells, parsed in parsed_rows(
        rows,
        reference,
        text_cells=text_cells,
        limit=max_rows + 1,
        take_labels=labels.pop_cells,
    ):
        count += 1
        if count > max_rows:
            located.error(
                RowProblem(
                    row_number, None, "too_many_rows", Message("row.too_many", limit=max_rows)
                )
            )
            return
        if unread is not None:
            located.error(unread)
            continue
        assert parsed is not None
        label_problems = labels.row(row_number, activity_id, label_cells)
        if isinstance(parsed, list) or label_problems:
            for problem in sorted(
                [*(parsed if isinstance(parsed, list) else []), *label_problems],
                key=_column_order,
            ):
                located.error(problem)
            continue
        if seen_codes is None and located.error_count:
            assert stored_codes is not None
            seen_codes = stored_codes()
        first = (
            row_number
            if seen_codes is None
            else seen_codes.setdefault(parsed.factor_code, row_number)
        )
        if first != row_number:
            located.error(
                RowProblem(
                    row_number,
                    "factor_code",
                    "duplicate_factor_code",
                    Message("row.duplicate_code", factor_code=parsed.factor_code, first=first),
                )
            )
            continue
        texts = _text_values(parsed)
        # The first characters first, all at once: most rows have no cell that can look like
        # a formula.
        if not FORMULA_FIRST_CHARACTERS.isdisjoint(map(_first_character, filter(None, texts))):
            _warn_formulas(located, row_number, texts)
        if not located.error_count:  # once the upload is doomed, keep checking but stop storing
            yield row_number, parsed
    if count == 0:
        located.error(RowProblem(None, None, "no_rows", Message("upload.no_rows")))
    for warning in labels.unlabelled_warnings():
        located.warn(warning)


def _warn_formulas(located: _LocatingReport, row_number: int, texts: tuple[Any, ...]) -> None:
    """A warning for each text cell of the row that looks like a spreadsheet formula."""
    for name, value in zip(_TEXT_FIELDS, texts, strict=True):
        if (
            isinstance(value, str)
            and value[:1] in FORMULA_FIRST_CHARACTERS
            and looks_like_formula(value)
        ):
            located.warn(
                RowProblem(
                    row_number,
                    name,
                    "formula_like_cell",
                    Message("warning.formula_like_cell"),
                )
            )


class _LocatingReport:
    """The report, with each problem placed where the publisher sees it in their own file."""

    def __init__(self, report: UploadReport, rows: RowStream) -> None:
        self._report, self._rows = report, rows

    @property
    def error_count(self) -> int:
        return self._report.error_count

    def error(self, problem: RowProblem) -> None:
        self._report.error(self._rows.locate(problem))

    def warn(self, problem: RowProblem) -> None:
        self._report.warn(self._rows.locate(problem))


def _column_order(problem: RowProblem) -> int:
    """A row's problems in the order of the factor fields, the label columns last."""
    return _COLUMN_ORDER.get(problem.column or "", len(_COLUMN_ORDER))


def upload_draft(
    session: Session,
    *,
    dataset: Dataset,
    dataset_label: str,
    version: str,
    release_notes: str | None,
    file_name: str | None,
    stream: IO[bytes],
    actor: str,
    max_rows: int,
    max_decoded_bytes: int = UploadLimits.max_decoded_bytes,
    now: datetime | None = None,
    source_format: str | None = None,
    through_year: int | None = None,
    gwp_set: str | None = None,
) -> UploadOutcome:
    """Validate and store one file as the draft `version`. `source_format`: the file is a
    publisher's own file, read by that importer (app.importers) into upload rows; its bytes
    are what is hashed and kept as the upload, and problems name its sheet, row and column
    (process and exchange in an openLCA zip). `gwp_set`: the GWP100 set an importer computes
    CO2e in (`olca-jsonld`), from the database's reference table."""
    importer = None
    if gwp_set is not None and source_format is None:
        raise UploadRejected(
            Message("upload.gwp_set_needs_source_format"),
            errors=[
                {
                    "loc": ["body", "gwp_set"],
                    "code": "not_applicable",
                    "detail": Message("upload.gwp_set_needs_source_format"),
                }
            ],
        )
    if source_format is not None:
        importer = source_importer(source_format)
        if importer is None:
            raise UploadRejected(
                Message(
                    "upload.unknown_source_format",
                    source_format=source_format,
                    known=", ".join(source_format_names()),
                ),
                errors=[
                    {
                        "loc": ["body", "source_format"],
                        "code": "unknown_source_format",
                        "detail": Message(
                            "upload.unknown_source_format",
                            source_format=source_format,
                            known=", ".join(source_format_names()),
                        ),
                    }
                ],
            )
    semver = parse_semver(version)
    release_notes = _checked_release_notes(release_notes)
    sent_file_name, file_name = file_name, safe_file_name(file_name)
    latest = latest_released(session, dataset_id=dataset.id)
    if latest is not None and semver <= (latest.major, latest.minor, latest.patch):
        raise UploadRejected(
            Message("upload.version_not_newer", version=version, latest=latest.version),
            errors=[
                {
                    "loc": ["version"],
                    "code": "version_not_newer",
                    "detail": Message("upload.version_must_be_above", latest=latest.version),
                }
            ],
        )
    sha256 = file_sha256(stream)
    # What this upload found when it came in; checked again under the dataset's lock.
    found = _draft_state(_existing_version(session, dataset, version))
    lock_dataset(session, dataset)
    existing = _existing_version(session, dataset, version)
    if _draft_state(existing) != found:
        raise _changed_meanwhile(dataset_label, version, existing)
    latest = latest_released(session, dataset_id=dataset.id)
    if latest is not None and semver <= (latest.major, latest.minor, latest.patch):
        raise Conflict(
            Message(
                "upload.released_meanwhile",
                dataset=dataset_label,
                latest=latest.version,
                version=version,
            ),
            extra={"latest_release": latest.version},
        )
    if existing is not None and existing.status != "draft":
        raise Conflict(
            Message(
                "upload.not_a_draft",
                dataset=dataset_label,
                version=version,
                status=existing.status,
            )
        )
    if existing is not None and existing.upload_file_sha256 == sha256:
        return UploadOutcome(existing, UploadReport(), created=False)

    limits = UploadLimits(max_rows=max_rows, max_decoded_bytes=max_decoded_bytes)

    def open_rows() -> tuple[RowStream, str, bool]:
        """The file's rows, its stored format, and whether its cells are all text."""
        stream.seek(0)
        if importer is not None:
            # An importer gives numbers as numbers.
            return (
                read_source_rows(
                    importer,
                    file_name,
                    stream,
                    through_year=through_year,
                    gwp=None if gwp_set is None else GwpChoice(gwp_set, load_gwp_table(session)),
                    limits=limits,
                ),
                importer.name,
                False,
            )
        upload_format = declared_format(file_name)
        rows = read_rows(upload_format, stream, limits=limits)
        return rows, upload_format.value, upload_format is UploadFormat.CSV

    def read_report(rows: RowStream) -> UploadReport:
        report = UploadReport()
        report.sheet = rows.sheet
        for problem in rows.header_problems:
            report.error(problem)
        for problem in rows.warnings:
            report.warn(problem)
        return report

    try:
        rows, stored_format, text_cells = open_rows()
    except UploadFileError as exc:
        report = UploadReport()
        for problem in exc.problems:
            report.error(problem)
        raise _rejected(report, file_name) from exc
    report = read_report(rows)
    if report.error_count:
        raise _rejected(report, file_name)

    if existing is None:
        draft = DatasetVersion(
            dataset_id=dataset.id,
            version=version,
            major=semver[0],
            minor=semver[1],
            patch=semver[2],
            status="draft",
            created_by=actor,
            created_at=now or utcnow(),
        )
        session.add(draft)
    else:
        draft = existing
        draft_rows.delete_rows(session, draft.id)
    draft.release_notes = release_notes
    draft.upload_file_name = file_name
    draft.upload_file_sha256 = sha256
    draft.upload_format = stored_format
    session.flush()
    publisher = session.execute(
        select(Publisher.slug).where(Publisher.id == dataset.publisher_id)
    ).scalar_one()
    reference = load_record_reference(session)
    labels = label_collector(session, publisher=publisher)
    duplicate_stored = False
    try:
        # The rows go into `factor_draft`, whose unique (version_id, factor_code) finds a
        # duplicate code; when it does, the savepoint takes back what was stored, and the file
        # is read again below for its whole report.
        with session.begin_nested(), FactorWriter(session, draft=True) as writer:

            def codes_stored() -> dict[str, int]:
                writer.pause()
                return draft_rows.stored_codes(session, draft.id)

            store_factors(
                session,
                version=draft,
                records=_valid_records(
                    rows,
                    report,
                    max_rows,
                    reference,
                    labels,
                    text_cells=text_cells,
                    stored_codes=codes_stored,
                ),
                writer=writer,
            )
    except UploadFileError as exc:
        for problem in exc.problems:
            report.error(problem)
    except (DBAPIError, psycopg_errors.UniqueViolation) as exc:
        if not draft_rows.is_duplicate_code(exc):
            raise
        duplicate_stored = True
    if duplicate_stored:
        # Doomed: the same report as a reading that keeps every code (nothing is stored).
        rows = open_rows()[0]
        report = read_report(rows)
        labels = label_collector(session, publisher=publisher)
        try:
            for _ in _valid_records(
                rows, report, max_rows, reference, labels, text_cells=text_cells
            ):
                pass
        except UploadFileError as exc:
            for problem in exc.problems:
                report.error(problem)
    for problem in rows.late_warnings:
        report.warn(problem)
    if report.error_count:
        raise _rejected(report, file_name)

    previous = latest_resolvable(session, dataset_id=dataset.id)
    if previous is not None:
        summary = diff_summary(
            session, old_version_id=previous.id, new_version_id=draft.id, new_is_draft=True
        )
        given = bump_between((previous.major, previous.minor, previous.patch), semver)
        if given < summary.required_bump:
            report.warn(
                RowProblem(
                    None,
                    None,
                    "version_bump_too_small",
                    Message(
                        "warning.version_bump_too_small",
                        previous=previous.version,
                        added=summary.added,
                        removed=summary.removed,
                        changed=summary.changed,
                        identity_changed=summary.identity_changed,
                        required=summary.required_bump.name,
                        given=given.name,
                    ),
                )
            )
    report.activity_labels = labels.report()
    draft.validation_report = report.as_dict()
    append_event(
        session,
        actor=actor,
        action="version.uploaded",
        subject_type="dataset_version",
        subject_id=str(draft.id),
        payload={
            "dataset": dataset_label,
            "version": version,
            "file_name": file_name,
            **(
                {"file_name_sent": escaped(sent_file_name)}
                if sent_file_name not in (None, file_name)
                else {}
            ),
            "file_sha256": sha256,
            "row_count": draft.row_count,
            "replaced_draft": existing is not None,
        },
        occurred_at=now,
    )
    return UploadOutcome(draft, report, created=True)


def _existing_version(session: Session, dataset: Dataset, version: str) -> DatasetVersion | None:
    return session.execute(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _draft_state(version: DatasetVersion | None) -> tuple[object, ...] | None:
    if version is None:
        return None
    return (version.id, version.status, version.upload_file_sha256)


class ChangedMeanwhile(Conflict):
    code, title = "changed-meanwhile", "Changed by another request meanwhile"


def _changed_meanwhile(
    label: str, version: str, now_there: DatasetVersion | None
) -> ChangedMeanwhile:
    """Another upload (or a submit, or a delete) of this version finished while this one
    waited for the dataset: replacing what it did unseen would lose it."""
    if now_there is None:
        happened = Message("upload.meanwhile_deleted")
    elif now_there.status != "draft":
        happened = Message("upload.meanwhile_status", status=now_there.status)
    else:
        happened = Message("upload.meanwhile_uploaded", sha256=now_there.upload_file_sha256)
    return ChangedMeanwhile(
        Message("upload.changed_meanwhile", dataset=label, version=version, happened=happened),
        extra={"version": version, "status": now_there.status if now_there else None},
    )


def _checked_release_notes(notes: str | None) -> str | None:
    if notes is None:
        return None
    notes = nfc(notes)
    found = forbidden_character(notes, multiline=True)
    if found is not None:
        raise UploadRejected(
            Message("upload.release_notes_forbidden", found=found),
            errors=[
                {
                    "loc": ["release_notes"],
                    "code": "forbidden_character",
                    "detail": Message("cell.forbidden", found=found),
                }
            ],
        )
    return notes


def _rejected(report: UploadReport, file_name: str | None) -> UploadRejected:
    listed = joined(
        [
            Message("upload.row_problem", row=p.row, column=p.column, detail=p.detail)
            if p.row
            else p.detail
            for p in report.errors[:3]
        ],
        en="; ",
        zh="；",
    )
    summary = Message(
        "upload.rejected",
        file=file_name or Message("upload.the_file"),
        count=report.error_count,
        listed=listed,
    )
    return UploadRejected(
        Message("upload.rejected_more", summary=summary, more=report.error_count - 3)
        if report.error_count > 3
        else summary,
        errors=[p.as_dict() for p in report.errors],
        extra={"file": file_name, "report": report.as_dict()},
    )
