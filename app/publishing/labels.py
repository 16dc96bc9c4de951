"""Publishers' own activity labels, given in upload columns and reviewed with the version.

An upload may name the new activities of its publisher's namespace: the activity ids that
start with the publisher's slug and a hyphen (`cisa-hot-rolled-coil` for `cisa`). Three
optional columns carry the labels:

- `activity_name_zh`, `activity_name_en`: the activity's names (both, when either is given);
- `activity_keywords`: synonyms separated by `;` (a keyword holding a CJK character is a
  Chinese one, any other an English one).

Every row that gives labels must give the same ones for its activity (rows that leave the
three cells empty give none); labels for an activity outside the namespace, or for one the
reference vocabulary (`activity` table) already labels, are refused at their row and column.
The labels found are listed in the draft's validation report (`activity_labels`), read by the
reviewer with the version, and written to `activity_label` when the version is published.

An activity that has no labels (neither in the vocabulary nor in the file) is accepted with
one `unlabelled_activity` warning, at its first row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.problem_text import Message
from app.core.text import forbidden_character, nfc
from app.datasets.models import Publisher
from app.publishing.records import RowProblem
from app.reference.loader import activity_search_text
from app.reference.models import Activity, ActivityLabel

NAME_ZH, NAME_EN, KEYWORDS = "activity_name_zh", "activity_name_en", "activity_keywords"
LABEL_COLUMNS = (NAME_ZH, NAME_EN, KEYWORDS)
KEYWORD_SEPARATOR = ";"
# Characters, after NFC: the names fit the vocabulary's columns; keywords are short terms.
NAME_LIMIT = 255
KEYWORDS_LIMIT = 2000
KEYWORD_LIMIT = 100
MAX_KEYWORDS = 50
# A report lists the labels it found; an upload naming more activities than this is refused.
MAX_LABELLED_ACTIVITIES = 10_000
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def in_namespace(activity_id: str, publisher: str, longer: Iterable[str] = ()) -> bool:
    """Whether `publisher` may label `activity_id`: its id starts with the slug and a hyphen,
    and not with the slug and hyphen of a publisher whose slug extends it (`longer`: for
    `cisa`, `cisa-east` owns `cisa-east-…`)."""
    return (
        activity_id.startswith(f"{publisher}-")
        and len(activity_id) > len(publisher) + 1
        and not any(activity_id.startswith(f"{other}-") for other in longer)
    )


def split_keywords(keywords: Iterable[str]) -> tuple[list[str], list[str]]:
    """(Chinese, English) keywords: a keyword with a CJK character is Chinese."""
    zh: list[str] = []
    en: list[str] = []
    for keyword in keywords:
        (zh if _CJK.search(keyword) else en).append(keyword)
    return zh, en


@dataclass(frozen=True)
class Labels:
    name_zh: str
    name_en: str
    keywords: tuple[str, ...]

    def as_dict(self, activity_id: str, row: int) -> dict[str, Any]:
        zh, en = split_keywords(self.keywords)
        return {
            "activity_id": activity_id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "keywords_zh": zh,
            "keywords_en": en,
            "row": row,
        }


@dataclass
class LabelCollector:
    """Reads the label columns of every row of one upload; lists what it found."""

    publisher: str
    # Activities the vocabulary already labels: reference ones (refused) and publishers' ones.
    reference_ids: frozenset[str]
    labelled_ids: frozenset[str]
    # Slugs of the publishers whose slug starts with this one's and a hyphen.
    longer: tuple[str, ...] = ()
    # Activities that other publishers' releases label.
    others: dict[str, str] = field(default_factory=dict)
    found: dict[str, tuple[int, Labels]] = field(default_factory=dict)
    # Activity → first row, for those the vocabulary does not label.
    first_rows: dict[str, int] = field(default_factory=dict)

    def pop_cells(self, cells: dict[str, Any]) -> dict[str, Any]:
        """Take the label cells out of a row's cells (they are not factor fields)."""
        return {name: cells.pop(name) for name in LABEL_COLUMNS if name in cells}

    def row(self, row: int, activity_id: str | None, cells: Mapping[str, Any]) -> list[RowProblem]:
        """The problems of one row's label cells; remembers the labels and first rows."""
        if activity_id is not None and activity_id not in self.labelled_ids:
            self.first_rows.setdefault(activity_id, row)
        given = {name: value for name, value in cells.items() if value not in (None, "")}
        if not given:
            return []
        problems: list[RowProblem] = []
        texts: dict[str, str] = {}
        for name, value in given.items():
            problem = _text_problem(row, name, value)
            if problem is not None:
                problems.append(problem)
            else:
                texts[name] = " ".join(nfc(value).split())
        first_column = next(name for name in LABEL_COLUMNS if name in given)
        if activity_id is None:
            return problems  # the row's activity_id has its own error
        if not in_namespace(activity_id, self.publisher, self.longer):
            owner = next((o for o in self.longer if activity_id.startswith(f"{o}-")), None)
            problems.append(
                RowProblem(
                    row,
                    first_column,
                    "activity_label_outside_namespace",
                    f"'{activity_id}' is not in {self.publisher}'s namespace: a publisher labels "
                    f"only its own activities, whose ids start with '{self.publisher}-'"
                    + (f" (ids starting with '{owner}-' are publisher {owner}'s)" if owner else ""),
                )
            )
            return problems
        owner = self.others.get(activity_id)
        if owner is not None:
            problems.append(
                RowProblem(
                    row,
                    first_column,
                    "activity_already_labelled",
                    f"'{activity_id}' is labelled by publisher {owner} "
                    f"(GET /v1/activities/{activity_id}); leave the label columns empty",
                )
            )
            return problems
        if activity_id in self.reference_ids:
            problems.append(
                RowProblem(
                    row,
                    first_column,
                    "activity_already_labelled",
                    f"'{activity_id}' is labelled by the reference vocabulary "
                    f"(GET /v1/activities/{activity_id}); leave the label columns empty",
                )
            )
            return problems
        for name in (NAME_ZH, NAME_EN):
            if name not in given:
                problems.append(
                    RowProblem(
                        row,
                        name,
                        "activity_label_incomplete",
                        f"labels for '{activity_id}' need both {NAME_ZH} and {NAME_EN}",
                    )
                )
        if problems:
            return problems
        keywords, keyword_problem = _keywords(row, texts.get(KEYWORDS, ""))
        if keyword_problem is not None:
            return [keyword_problem]
        labels = Labels(texts[NAME_ZH], texts[NAME_EN], keywords)
        earlier = self.found.get(activity_id)
        if earlier is None:
            if len(self.found) >= MAX_LABELLED_ACTIVITIES:
                return [
                    RowProblem(
                        row,
                        first_column,
                        "too_many_activity_labels",
                        f"an upload labels at most {MAX_LABELLED_ACTIVITIES} activities",
                    )
                ]
            self.found[activity_id] = (row, labels)
            return []
        first_row, first = earlier
        for name, mine, theirs in (
            (NAME_ZH, labels.name_zh, first.name_zh),
            (NAME_EN, labels.name_en, first.name_en),
            (KEYWORDS, labels.keywords, first.keywords),
        ):
            if mine != theirs:
                return [
                    RowProblem(
                        row,
                        name,
                        "activity_label_conflict",
                        f"'{activity_id}' is labelled differently in row {first_row}; every "
                        "row that gives labels for an activity must give the same ones "
                        "(or leave the label columns empty)",
                    )
                ]
        return []

    def unlabelled_warnings(self) -> list[RowProblem]:
        """One warning per activity that ends up without labels, at its first row."""
        return [
            RowProblem(
                row,
                "activity_id",
                "unlabelled_activity",
                Message(
                    "warning.unlabelled_activity",
                    activity_id=activity_id,
                    name_zh=NAME_ZH,
                    name_en=NAME_EN,
                    keywords=KEYWORDS,
                    publisher=self.publisher,
                ),
            )
            for activity_id, row in sorted(self.first_rows.items(), key=lambda item: item[1])
            if activity_id not in self.found and activity_id not in self.reference_ids
        ]

    def report(self) -> list[dict[str, Any]]:
        return [
            labels.as_dict(activity_id, row) for activity_id, (row, labels) in self.found.items()
        ]


def _text_problem(row: int, column: str, value: object) -> RowProblem | None:
    if not isinstance(value, str):
        return RowProblem(row, column, "wrong_type", f"must be text, not {type(value).__name__}")
    limit = KEYWORDS_LIMIT if column == KEYWORDS else NAME_LIMIT
    text = nfc(value)
    found = forbidden_character(text)
    if found is not None:
        return RowProblem(
            row,
            column,
            "forbidden_character",
            f"contains {found}: control, bidirectional and invisible characters are not allowed",
        )
    if len(text.strip()) > limit:
        return RowProblem(
            row, column, "too_long", f"{len(text.strip())} characters; at most {limit}"
        )
    return None


def _keywords(row: int, text: str) -> tuple[tuple[str, ...], RowProblem | None]:
    words = [" ".join(word.split()) for word in text.split(KEYWORD_SEPARATOR)]
    keywords = tuple(dict.fromkeys(word for word in words if word))
    if len(keywords) > MAX_KEYWORDS:
        return (), RowProblem(
            row, KEYWORDS, "too_many_keywords", f"{len(keywords)} keywords; at most {MAX_KEYWORDS}"
        )
    for keyword in keywords:
        if len(keyword) > KEYWORD_LIMIT:
            return (), RowProblem(
                row,
                KEYWORDS,
                "too_long",
                f"keyword '{keyword[:20]}…' has {len(keyword)} characters; at most "
                f"{KEYWORD_LIMIT} (separate keywords with '{KEYWORD_SEPARATOR}')",
            )
    return keywords, None


def label_collector(session: Session, *, publisher: str) -> LabelCollector:
    """A collector for one upload of `publisher`, with the vocabulary as it is now."""
    reference_ids = frozenset(session.scalars(select(Activity.id)))
    labelled = {
        activity_id: owner
        for activity_id, owner in session.execute(
            select(ActivityLabel.activity_id, ActivityLabel.publisher)
        )
    }
    longer = session.scalars(
        select(Publisher.slug).where(Publisher.slug.startswith(f"{publisher}-", autoescape=True))
    )
    return LabelCollector(
        publisher=publisher,
        reference_ids=reference_ids,
        labelled_ids=reference_ids | frozenset(labelled),
        longer=tuple(longer),
        others={key: owner for key, owner in labelled.items() if owner != publisher},
    )


def publish_activity_labels(
    session: Session,
    *,
    version_id: int,
    report: Mapping[str, Any] | None,
    publisher_id: int,
    publisher: str,
    labelled_in: str,
    upload_file_name: str | None,
    published_at: datetime,
) -> int:
    """Write the labels a version's upload gave into the vocabulary (in the publish
    transaction); a publisher's newer release replaces its earlier labels. Returns how many."""
    proposed = list((report or {}).get("activity_labels") or [])
    if not proposed:
        return 0
    existing = {
        row.activity_id: row
        for row in session.scalars(
            select(ActivityLabel).where(
                ActivityLabel.activity_id.in_([item["activity_id"] for item in proposed])
            )
        )
    }
    for item in proposed:
        activity_id = item["activity_id"]
        row = existing.get(activity_id)
        # The upload checked the namespace; a label never crosses publishers.
        if not in_namespace(activity_id, publisher) or (
            row is not None and row.publisher_id != publisher_id
        ):
            continue
        values = {
            "publisher_id": publisher_id,
            "publisher": publisher,
            "name_zh": item["name_zh"],
            "name_en": item["name_en"],
            "keywords_zh": list(item["keywords_zh"]),
            "keywords_en": list(item["keywords_en"]),
            "version_id": version_id,
            "labelled_in": labelled_in,
            "upload_file_name": upload_file_name,
            "row_number": item["row"],
            "published_at": published_at,
            "search_text": activity_search_text({"id": activity_id, **item}),
        }
        if row is None:
            session.add(ActivityLabel(activity_id=activity_id, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
    session.flush()
    return len(proposed)
