"""Writes that race each other stay correct: threads against a real server, on both databases.

Each race runs EFDB_RACE_REPEATS times (default 5: the old code broke 77-100 % of repeats, so
five catch a regression; `EFDB_RACE_REPEATS=100` is the issue's full run), each time on
a dataset of its own, every request of a race released at once by a barrier. Whatever order
the server takes them in, every answer is a 2xx or a 409, exactly one release of the dataset
is current, releases are published in version order, and the database holds what the
answers said. A race that breaks is counted, and the test names how many repeats broke and
how. Data is synthetic.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.core.models import AuditEvent
from app.datasets.models import Dataset
from app.datasets.publishers import create_publisher
from app.datasets.version_models import DatasetVersion
from app.main import create_app
from app.publishing import draft_rows
from tests.auth_fixtures import TokenKit
from tests.live_server import loopback_client, serve_in_thread
from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS, create_dataset, upload
from tests.upload_files import csv_bytes, synthetic_row

REPEATS = int(os.environ.get("EFDB_RACE_REPEATS", "5"))
# Uploads of one new version sent at once.
UPLOADERS = 5
OK = {200, 201}


@dataclass
class Racers:
    url: str
    app: FastAPI
    db: Engine
    writer: dict[str, str]
    reviewers: list[dict[str, str]]


def _token(url: str, issued: auth_service.IssuedClient) -> dict[str, str]:
    with OAuth2Client(issued.client_id, issued.client_secret) as oauth:
        token = oauth.fetch_token(f"{url}/oauth/token", grant_type="client_credentials")
    return {"Authorization": f"Bearer {token['access_token']}"}


@pytest.fixture
def racers(db: Engine, settings: Settings) -> Iterator[Racers]:
    """A real server, a synthetic publisher's writer and two national reviewers."""
    with make_sessionmaker(db).begin() as session:
        create_publisher(
            session, slug=PUBLISHER, name_zh="合成发布机构", name_en="Synthetic", actor="test"
        )
        writer = auth_service.create_client(
            session, publisher=PUBLISHER, scopes=["datasets:write"], name="w", actor="test"
        )
        reviewers = [
            auth_service.create_client(
                session, publisher=None, scopes=["datasets:review"], name=f"r{i}", actor="test"
            )
            for i in range(2)
        ]
    app = create_app(settings)
    try:
        with serve_in_thread(app) as url:
            yield Racers(url, app, db, _token(url, writer), [_token(url, r) for r in reviewers])
    finally:
        app.state.engine.dispose()


def _at_once(url: str, calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[Any]:
    """Send the requests from threads of their own, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        with loopback_client(base_url=url, timeout=60) as http:
            http.get("/readyz")  # connected before the barrier: the race is the requests'
            barrier.wait()
            return call(http)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


class RaceDataset:
    """One repeat's dataset, driven over HTTP."""

    def __init__(self, racers: Racers, http: httpx.Client, index: int) -> None:
        self.racers = racers
        self.http = http
        self.slug = f"race-{index}"
        self.versions = f"/v1/datasets/{PUBLISHER}/{self.slug}/versions"
        body = {**DATASET_BODY, "slug": self.slug}
        created = http.post("/v1/datasets", json=body, headers=racers.writer)
        assert created.status_code == 201, created.text

    def content(self, version: str, variant: int = 0) -> bytes:
        rows = [
            synthetic_row(i, co2e=500.0 + i + variant, co2=None, ch4=None, n2o=None, gwp_set=None)
            for i in range(3)
        ]
        return csv_bytes(rows)

    def upload(self, http: httpx.Client, version: str, content: bytes) -> httpx.Response:
        return http.post(
            self.versions,
            headers=self.racers.writer,
            data={"version": version},
            files={"file": ("factors.csv", content, "text/csv")},
        )

    def submitted(self, version: str) -> str:
        """Upload and submit `version`; its content hash, as a reviewer reads it."""
        uploaded = self.upload(self.http, version, self.content(version))
        assert uploaded.status_code == 201, uploaded.text
        submitted = self.http.post(f"{self.versions}/{version}/submit", headers=self.racers.writer)
        assert submitted.status_code == 200, submitted.text
        return str(submitted.json()["content_sha256"])

    def publish(
        self, http: httpx.Client, version: str, sha: str, reviewer: int = 0
    ) -> httpx.Response:
        return http.post(
            f"{self.versions}/{version}/publish",
            headers=self.racers.reviewers[reviewer],
            json={"content_sha256": sha},
        )

    def withdraw(self, http: httpx.Client, version: str, reviewer: int = 1) -> httpx.Response:
        return http.post(
            f"{self.versions}/{version}/withdraw",
            headers=self.racers.reviewers[reviewer],
            json={"reason": "Synthetic withdrawal in a race test."},
        )

    def released(self, version: str) -> None:
        sha = self.submitted(version)
        published = self.publish(self.http, version, sha)
        assert published.status_code == 200, published.text

    def stored(self) -> dict[str, DatasetVersion]:
        with Session(self.racers.db) as session:
            rows = session.scalars(
                select(DatasetVersion)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                .where(Dataset.slug == self.slug)
            )
            return {row.version: row for row in rows}

    def published_events(self, version: str) -> int:
        stored = self.stored()[version]
        with Session(self.racers.db) as session:
            events = session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "version.published",
                    AuditEvent.subject_id == str(stored.id),
                )
            )
            return len(list(events))


def _release_invariants(stored: dict[str, DatasetVersion]) -> list[str]:
    """Exactly one current release; releases published in version order, each superseding
    the release before it."""
    broken: list[str] = []
    current = [v for v, row in stored.items() if row.status == "published"]
    if len(current) != 1:
        broken.append(f"current releases: {sorted(current)}")
    released = sorted(
        (row for row in stored.values() if row.published_at is not None),
        key=lambda row: (row.major, row.minor, row.patch),
    )
    by_time = sorted(released, key=lambda row: (row.published_at, row.id))
    if [r.version for r in by_time] != [r.version for r in released]:
        broken.append(f"published out of order: {[r.version for r in by_time]}")
    return broken


def _answers_broken(answers: list[httpx.Response]) -> list[str]:
    broken = []
    for answer in answers:
        if answer.status_code not in OK | {409}:
            broken.append(f"answered {answer.status_code}: {answer.text[:160]}")
        elif answer.status_code == 409 and not answer.headers["content-type"].startswith(
            "application/problem+json"
        ):
            broken.append("409 without a problem body")
    return broken


Answers = list[httpx.Response]


def _said(answer: httpx.Response) -> str:
    """ "201", or "409 conflict" with the problem's type: which check stopped it."""
    if answer.status_code != 409:
        return str(answer.status_code)
    return f"409 {str(answer.json().get('type', '')).rsplit('/', 1)[-1]}"


Race = Callable[["RaceDataset"], tuple[list[str], Answers]]


def _race(racers: Racers, one_race: Race) -> tuple[int, Counter[str]]:
    """Run the race REPEATS times; how many repeats broke, and the ways they did. Writes a
    line with both and the answers seen (`pytest -s` shows it)."""
    broke = 0
    ways: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    with loopback_client(base_url=racers.url, timeout=60) as http:
        for index in range(REPEATS):
            broken, answers = one_race(RaceDataset(racers, http, index))
            answered[", ".join(_said(a) for a in answers)] += 1
            if broken:
                broke += 1
                ways.update(broken)
    sys.stdout.write(
        f"\n{racers.db.dialect.name} {one_race.__name__.strip('_')}: {broke} of {REPEATS} "
        f"repeats broke; answers {dict(answered)}; ways {dict(ways)}\n"
    )
    return broke, ways


def _two_versions_published_at_once(dataset: RaceDataset) -> tuple[list[str], Answers]:
    dataset.released("1.0.0")
    shas = {version: dataset.submitted(version) for version in ("1.1.0", "1.2.0")}
    answers = _at_once(
        dataset.racers.url,
        [
            partial(dataset.publish, version=version, sha=sha, reviewer=i)
            for i, (version, sha) in enumerate(shas.items())
        ],
    )
    broken = _answers_broken(answers)
    stored = dataset.stored()
    broken += _release_invariants(stored)
    older, newer = answers
    if newer.status_code != 200:
        broken.append(f"1.2.0 was refused ({newer.status_code}) though nothing newer exists")
    if older.status_code == 409 and "1.2.0" not in older.json()["detail"]:
        broken.append(f"1.1.0's 409 does not say what happened: {older.json()['detail']}")
    expected_older = "deprecated" if older.status_code == 200 else "submitted"
    if stored["1.1.0"].status != expected_older:
        broken.append(f"1.1.0 answered {older.status_code} but is {stored['1.1.0'].status}")
    return broken, answers


def _one_submission_published_twice_at_once(
    dataset: RaceDataset,
) -> tuple[list[str], Answers]:
    dataset.released("1.0.0")
    sha = dataset.submitted("1.1.0")
    answers = _at_once(
        dataset.racers.url,
        [partial(dataset.publish, version="1.1.0", sha=sha, reviewer=i) for i in range(2)],
    )
    broken = _answers_broken(answers)
    codes = sorted(a.status_code for a in answers)
    if codes != [200, 409]:
        broken.append(f"answers {codes}, not one 200 and one 409")
    for answer in answers:
        if answer.status_code == 409 and "published" not in answer.json()["detail"]:
            broken.append(f"the 409 does not say it was published: {answer.json()['detail']}")
    broken += _release_invariants(dataset.stored())
    if (events := dataset.published_events("1.1.0")) != 1:
        broken.append(f"{events} publish events for one release")
    return broken, answers


def _uploads_of_one_version_at_once(
    dataset: RaceDataset,
) -> tuple[list[str], Answers]:
    files = [dataset.content("1.0.0", variant) for variant in range(UPLOADERS)]
    answers = _at_once(
        dataset.racers.url,
        [partial(dataset.upload, version="1.0.0", content=f) for f in files],
    )
    broken = _answers_broken(answers)
    created = [f for f, a in zip(files, answers, strict=True) if a.status_code == 201]
    if not created:
        broken.append(f"no upload was created: {[a.status_code for a in answers]}")
    stored = dataset.stored()
    if list(stored) != ["1.0.0"]:
        broken.append(f"versions stored: {list(stored)}")
    else:
        draft = stored["1.0.0"]
        if draft.upload_file_sha256 not in {hashlib.sha256(f).hexdigest() for f in created}:
            broken.append("the stored draft is not a file whose upload was answered 201")
        with Session(dataset.racers.db) as session:
            rows = draft_rows.row_count(session, draft.id)
        if rows != draft.row_count or rows != 3:
            broken.append(f"draft holds {rows} factors, says {draft.row_count}")
    return broken, answers


def _withdraw_racing_publish(dataset: RaceDataset) -> tuple[list[str], Answers]:
    """Withdrawing the current release restores the one it superseded, while a newer one is
    being published: either order must leave the newer one alone as current."""
    dataset.released("1.0.0")
    dataset.released("1.1.0")
    sha = dataset.submitted("1.2.0")
    answers = _at_once(
        dataset.racers.url,
        [
            lambda http: dataset.withdraw(http, "1.1.0"),
            lambda http: dataset.publish(http, "1.2.0", sha),
        ],
    )
    broken = _answers_broken(answers)
    if [a.status_code for a in answers] != [200, 200]:
        broken.append(f"answers {[a.status_code for a in answers]}, both may be done")
    stored = dataset.stored()
    broken += _release_invariants(stored)
    statuses = {v: row.status for v, row in stored.items()}
    if statuses != {"1.0.0": "deprecated", "1.1.0": "withdrawn", "1.2.0": "published"}:
        broken.append(f"statuses {statuses}")
    return broken, answers


def _one_dataset_created_twice_at_once(dataset: RaceDataset) -> tuple[list[str], Answers]:
    """Both find the slug free; the database's unique key stops the second: a 409."""
    slug = f"{dataset.slug}-twin"
    body = {**DATASET_BODY, "slug": slug}
    answers = _at_once(
        dataset.racers.url,
        [
            partial(_post_json, path="/v1/datasets", body=body, headers=dataset.racers.writer)
            for _ in range(2)
        ],
    )
    broken = _answers_broken(answers)
    codes = sorted(a.status_code for a in answers)
    if codes != [201, 409]:
        broken.append(f"answers {codes}, not one 201 and one 409")
    with Session(dataset.racers.db) as session:
        stored = list(session.scalars(select(Dataset.id).where(Dataset.slug == slug)))
    if len(stored) != 1:
        broken.append(f"{len(stored)} datasets {slug}")
    return broken, answers


def _post_json(
    http: httpx.Client, *, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return http.post(path, json=body, headers=headers)


@pytest.mark.slow
@pytest.mark.parametrize(
    "one_race",
    [
        _two_versions_published_at_once,
        _one_submission_published_twice_at_once,
        _uploads_of_one_version_at_once,
        _withdraw_racing_publish,
        _one_dataset_created_twice_at_once,
    ],
    ids=lambda race: race.__name__.strip("_"),
)
def test_racing_writes_leave_one_current_release_and_answer_2xx_or_409(
    racers: Racers, one_race: Race
) -> None:
    broke, ways = _race(racers, one_race)
    assert broke == 0, f"{broke} of {REPEATS} repeats broke: {dict(ways)}"


def test_a_write_that_cannot_get_the_datasets_lock_answers_503_and_writes_nothing(
    client: TestClient, tokens: TokenKit, db: Engine, settings: Settings
) -> None:
    """Another transaction holds the dataset (an operator's session, a stuck request): the
    publish waits as long as it may, then answers 503 with Retry-After, never 500; once the
    lock is gone the same request succeeds."""
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    assert upload(client, writer, csv_bytes([synthetic_row(1)])).status_code == 201
    submitted = client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    body = {"content_sha256": submitted.json()["content_sha256"]}
    # A write waits for a lock as long as its statement budget lets it: a short one for the
    # publish that meets the held lock only (the steps before it may take longer on a busy
    # machine), the usual one again for the retry.
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    client.app.state.settings = app_settings.model_copy(  # type: ignore[attr-defined]
        update={"db_timeout_write_ms": 1000}
    )
    with db.connect() as holder:
        if db.dialect.name == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.execute(text("SELECT id FROM dataset FOR UPDATE"))
        refused = client.post(f"{VERSIONS}/1.0.0/publish", headers=reviewer, json=body)
        holder.rollback()
    client.app.state.settings = app_settings  # type: ignore[attr-defined]
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == str(settings.retry_after_seconds)
    assert "nothing was written" in refused.json()["detail"]
    with Session(db) as session:
        assert session.execute(select(DatasetVersion.status)).scalar_one() == "submitted"
    published = client.post(f"{VERSIONS}/1.0.0/publish", headers=reviewer, json=body)
    assert published.status_code == 200, published.text
