"""The change feed (`GET /v1/changes`): every public change from the audit chain, in order,
with a cursor that never skips or repeats, filtered by publisher and dataset, respecting
access; and the snapshot manifest's `changes_cursor`. All data here is synthetic."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.core.audit import append_event
from app.core.db import make_sessionmaker
from app.core.models import ChangeOutbox
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER, publish
from tests.upload_files import csv_bytes, synthetic_row

OTHER = "synthetic-other"


class Story:
    """Writes the synthetic datasets' history through the API, as publishers and reviewers do."""

    def __init__(self, client: TestClient, tokens: TokenKit) -> None:
        self.client = client
        self.writers = {PUBLISHER: tokens.writer(PUBLISHER), OTHER: tokens.writer(OTHER)}
        self.reviewer = tokens.reviewer()

    def dataset(self, slug: str, *, publisher: str = PUBLISHER, **body: Any) -> None:
        created = self.client.post(
            "/v1/datasets",
            json={**DATASET_BODY, "slug": slug, **body},
            headers=self.writers[publisher],
        )
        assert created.status_code == 201, created.text

    def release(
        self, slug: str, version: str, rows: list[Any], *, publisher: str = PUBLISHER
    ) -> dict[str, Any]:
        """Upload, submit and publish `rows` (an int i is `synthetic_row(i)`)."""
        versions = f"/v1/datasets/{publisher}/{slug}/versions"
        writer = self.writers[publisher]
        uploaded = self.client.post(
            versions,
            headers=writer,
            data={"version": version},
            files={"file": ("f.csv", csv_bytes([_row(r) for r in rows]), "text/csv")},
        )
        assert uploaded.status_code == 201, uploaded.text
        assert self.client.post(f"{versions}/{version}/submit", headers=writer).status_code == 200
        published = publish(self.client, self.reviewer, version, versions=versions)
        assert published.status_code == 200, published.text
        body: dict[str, Any] = published.json()
        return body

    def withdraw(self, slug: str, version: str, reason: str, *, publisher: str = PUBLISHER) -> None:
        answer = self.client.post(
            f"/v1/datasets/{publisher}/{slug}/versions/{version}/withdraw",
            headers=self.reviewer,
            json={"reason": reason},
        )
        assert answer.status_code == 200, answer.text

    def deprecate(self, slug: str, successor: str | None, reason: str) -> None:
        answer = self.client.post(
            f"/v1/datasets/{PUBLISHER}/{slug}/deprecate",
            headers=self.reviewer,
            json={"superseded_by": successor, "reason": reason},
        )
        assert answer.status_code == 200, answer.text


def _row(row: Any) -> dict[str, Any]:
    return synthetic_row(row) if isinstance(row, int) else dict(row)


@pytest.fixture
def story(client: TestClient, tokens: TokenKit) -> Story:
    return Story(client, tokens)


def follow(
    client: TestClient, *, after: str | None = None, headers: dict[str, str] | None = None, **q: Any
) -> tuple[list[dict[str, Any]], str]:
    """Every change after `after`, following `next`; and the cursor to resume from."""
    params = {**q, **({"after": after} if after is not None else {})}
    response = client.get("/v1/changes", params=params, headers=headers or {})
    items: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if body["next"] is None:
            return items, body["cursor"]
        response = client.get(body["next"], headers=headers or {})


def brief(change: dict[str, Any]) -> tuple[Any, ...]:
    return (change["type"], change["publisher"], change["dataset"], change["version"])


def test_the_feed_tells_each_release_withdrawal_and_deprecation_with_its_audit_event(
    client: TestClient, story: Story, tokens: TokenKit
) -> None:
    story.dataset("steel-products")
    story.dataset("steel-products-2025")
    first = story.release("steel-products", "1.0.0", [1, 2])
    second = story.release("steel-products", "1.1.0", [1, 2, 3])
    story.release("steel-products-2025", "1.0.0", [1])
    story.withdraw("steel-products", "1.1.0", "synthetic: wrong unit")
    story.deprecate("steel-products", f"{PUBLISHER}/steel-products-2025", "synthetic: new method")

    changes, _ = follow(client)
    assert [brief(c) for c in changes] == [
        ("release.published", PUBLISHER, "steel-products", "1.0.0"),
        ("release.published", PUBLISHER, "steel-products", "1.1.0"),
        ("release.published", PUBLISHER, "steel-products-2025", "1.0.0"),
        ("release.withdrawn", PUBLISHER, "steel-products", "1.1.0"),
        ("dataset.deprecated", PUBLISHER, "steel-products", None),
    ]
    published, newer, _, withdrawn, deprecated = changes
    assert (published["content_sha256"], published["row_count"]) == (first["content_sha256"], 2)
    assert (published["supersedes"], published["diff"]) == (None, None)
    assert published["current_version"] == "1.0.0"
    assert newer["supersedes"] == "1.0.0"
    assert (
        newer["diff"] == f"/v1/datasets/{PUBLISHER}/steel-products/versions/1.1.0/diff?from=1.0.0"
    )
    assert client.get(newer["diff"]).status_code == 200
    assert (newer["content_sha256"], newer["current_version"]) == (
        second["content_sha256"],
        "1.1.0",
    )
    # Withdrawing the current release makes the one it superseded current again.
    assert (withdrawn["reason"], withdrawn["content_sha256"]) == (
        "synthetic: wrong unit",
        second["content_sha256"],
    )
    assert (withdrawn["current_version"], withdrawn["current_content_sha256"]) == (
        "1.0.0",
        first["content_sha256"],
    )
    assert (deprecated["superseded_by"], deprecated["reason"]) == (
        f"{PUBLISHER}/steel-products-2025",
        "synthetic: new method",
    )
    # Each change names its audit event and that event's hash, as the audit log has them.
    audit = client.get("/v1/audit", params={"limit": 1000}, headers=tokens.admin()).json()
    by_id = {e["id"]: e for e in audit["items"]}
    actions = {
        "release.published": "version.published",
        "release.withdrawn": "version.withdrawn",
        "dataset.deprecated": "dataset.deprecated",
    }
    for change in changes:
        event = by_id[change["audit_event_id"]]
        assert (event["hash"], event["action"]) == (change["audit_hash"], actions[change["type"]])
    ids = [c["audit_event_id"] for c in changes]
    assert ids == sorted(ids)


def test_a_feed_followed_from_any_cursor_equals_the_events_after_it(
    client: TestClient, story: Story
) -> None:
    story.dataset("steel-products")
    story.release("steel-products", "1.0.0", [1])
    everything, cursor = follow(client)
    assert len(everything) == 1

    # Caught up: the same cursor answers nothing, then exactly what happened since.
    assert follow(client, after=cursor) == ([], cursor)
    story.release("steel-products", "1.1.0", [1, 2])
    story.release("steel-products", "1.2.0", [1, 2, 3])
    story.withdraw("steel-products", "1.2.0", "synthetic: typo")
    since, resumed = follow(client, after=cursor)
    assert [brief(c) for c in since] == [
        ("release.published", PUBLISHER, "steel-products", "1.1.0"),
        ("release.published", PUBLISHER, "steel-products", "1.2.0"),
        ("release.withdrawn", PUBLISHER, "steel-products", "1.2.0"),
    ]
    everything, end = follow(client)
    assert everything[1:] == since
    assert end == resumed

    # One change a page: the same changes, none skipped or repeated, whichever page one
    # starts from (each change's own cursor is the position after it).
    paged, _ = follow(client, limit=1)
    assert paged == everything
    for index, change in enumerate(everything):
        assert follow(client, after=change["cursor"])[0] == everything[index + 1 :]
    first = client.get("/v1/changes", params={"limit": 1})
    assert first.headers["link"] == f'<{first.json()["next"]}>; rel="next"'


def test_filters_and_access(client: TestClient, story: Story, tokens: TokenKit) -> None:
    story.dataset("steel-products")
    story.dataset("members-only", access="registered", redistribution=False)
    story.dataset("cement", publisher=OTHER)
    story.release("steel-products", "1.0.0", [1])
    story.release("members-only", "1.0.0", [1])
    story.release("cement", "1.0.0", [1], publisher=OTHER)
    story.withdraw("members-only", "1.0.0", "synthetic: retracted")

    anonymous, _ = follow(client)
    assert [(c["dataset"], c["type"]) for c in anonymous] == [
        ("steel-products", "release.published"),
        ("cement", "release.published"),
    ]
    # factors:read without a grant reads the feed as anonymous callers do.
    assert follow(client, headers=tokens.reader())[0] == anonymous
    reader = tokens.reader(f"{PUBLISHER}/members-only")
    seen, _ = follow(client, headers=reader)
    assert [(c["dataset"], c["type"]) for c in seen] == [
        ("steel-products", "release.published"),
        ("members-only", "release.published"),
        ("cement", "release.published"),
        ("members-only", "release.withdrawn"),
    ]
    assert seen[1]["dataset_access"] == "registered"
    assert [c["dataset"] for c in follow(client, publisher=OTHER)[0]] == ["cement"]
    by_slug = follow(client, headers=reader, dataset="members-only")[0]
    assert [c["type"] for c in by_slug] == ["release.published", "release.withdrawn"]
    assert follow(client, dataset=f"{PUBLISHER}/members-only")[0] == []
    assert [c["dataset"] for c in follow(client, dataset=f"{OTHER}/cement")[0]] == ["cement"]
    # A page under a filter: at most `limit` matching changes, resuming where it stopped.
    page = client.get("/v1/changes", params={"publisher": PUBLISHER, "limit": 1}).json()
    assert [c["dataset"] for c in page["items"]] == ["steel-products"]
    assert page["next"] is not None
    assert "publisher=synthetic-pub" in page["next"]
    assert client.get(page["next"]).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"after": "not-a-cursor"}, ["query", "after"]),
        ({"after": "ZXYxOi0x"}, ["query", "after"]),  # "ev1:-1"
        ({"limit": 0}, ["query", "limit"]),
        ({"publisher": "Not A Slug"}, ["query", "publisher"]),
        ({"since": "yesterday"}, ["query", "since"]),
        ({"publisher": "a", "dataset": "b/c"}, ["query", "publisher"]),
    ],
)
def test_bad_parameters_are_problems_that_say_where(
    client: TestClient, params: dict[str, Any], loc: list[str]
) -> None:
    response = client.get("/v1/changes", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in response.json()["errors"]] == [loc]


def test_following_the_feed_from_a_snapshot_gives_the_next_snapshot(
    client: TestClient, story: Story, tokens: TokenKit
) -> None:
    admin = tokens.admin()
    story.dataset("steel-products")
    story.dataset("steel-products-2025")
    story.dataset("cement", publisher=OTHER)
    story.dataset("members-only", access="registered", redistribution=False)
    story.release("steel-products", "1.0.0", [1])
    story.release("cement", "1.0.0", [1], publisher=OTHER)
    story.release("cement", "1.1.0", [1, 2], publisher=OTHER)
    before = client.post("/v1/snapshots", headers=admin)
    assert before.status_code == 201, before.text
    manifest = client.get(f"/v1/snapshots/{before.json()['id']}/manifest.json").json()
    assert manifest["changes_cursor"] == before.json()["changes_cursor"]

    story.release("steel-products", "1.1.0", [1, 2])
    story.release("steel-products", "1.2.0", [1, 2, 3])
    story.withdraw("steel-products", "1.2.0", "synthetic: wrong year")
    story.withdraw("cement", "1.1.0", "synthetic: wrong unit", publisher=OTHER)
    story.release("steel-products-2025", "1.0.0", [4])
    story.release("members-only", "1.0.0", [1])
    story.deprecate("steel-products", f"{PUBLISHER}/steel-products-2025", "synthetic")
    after = client.post("/v1/snapshots", headers=admin)
    assert after.status_code == 201, after.text

    # A mirror: the first snapshot's releases, moved along by the feed from its cursor.
    held = {
        (v["publisher"], v["dataset"]): (v["version"], v["content_sha256"])
        for v in before.json()["dataset_versions"]
    }
    changes, _ = follow(client, after=manifest["changes_cursor"])
    for change in changes:
        key = (change["publisher"], change["dataset"])
        if not change["type"].startswith("release.") or change["dataset_access"] != "public":
            continue
        if not change["redistribution"]:
            continue
        if change["current_version"] is None:
            held.pop(key, None)
        else:
            held[key] = (change["current_version"], change["current_content_sha256"])
    expected = {
        (v["publisher"], v["dataset"]): (v["version"], v["content_sha256"])
        for v in after.json()["dataset_versions"]
    }
    assert held == expected
    assert held[(PUBLISHER, "steel-products")][0] == "1.1.0"
    assert held[(OTHER, "cement")][0] == "1.0.0"
    # The second snapshot's cursor is where the feed is now.
    assert follow(client, after=after.json()["changes_cursor"])[0] == []


ATOM = "{http://www.w3.org/2005/Atom}"


def test_the_changes_page_and_its_atom_and_json_twins(client: TestClient, story: Story) -> None:
    story.dataset("steel-products")
    story.dataset("members-only", access="registered", redistribution=False)
    story.release("steel-products", "1.0.0", [1])
    story.release("steel-products", "1.1.0", [1, 2])
    story.release("members-only", "1.0.0", [1])
    story.withdraw("steel-products", "1.1.0", "synthetic: wrong unit")

    page = client.get("/changes", params={"lang": "en"}, headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    html = page.text
    # Newest first, in words, with the reason, the current release and the diff link.
    withdrawn = html.index(f"{PUBLISHER}/steel-products withdrew version 1.1.0")
    released = html.index(f"{PUBLISHER}/steel-products released version 1.1.0")
    assert withdrawn < released < html.index("released version 1.0.0")
    assert "Reason: synthetic: wrong unit" in html
    assert "Current release after it: 1.0.0" in html
    assert f"/datasets/{PUBLISHER}/steel-products/diff/1.0.0...1.1.0" in html
    assert "members-only" not in html  # registered: not on a public page
    chinese = client.get("/changes", params={"lang": "zh"}).text
    assert f"{PUBLISHER}/steel-products 撤回了 1.1.0 版" in chinese
    assert "原因：synthetic: wrong unit" in chinese

    # The JSON twin is the API's page of exactly the changes shown.
    twin = re.search(r'<link rel="alternate" type="application/json" href="([^"]+)"', html)
    assert twin is not None
    href = twin.group(1).replace("&amp;", "&")
    shown = client.get(href)
    assert shown.status_code == 200
    api = client.get(href.replace("/changes.json", "/v1/changes"))
    assert shown.content == api.content
    assert shown.headers["etag"] == api.headers["etag"]
    assert [c["type"] for c in shown.json()["items"]] == [
        "release.published",
        "release.published",
        "release.withdrawn",
    ]

    atom = client.get("/changes.atom", params={"lang": "en"})
    assert atom.status_code == 200
    assert atom.headers["content-type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(atom.content)
    assert root.tag == f"{ATOM}feed"
    # RFC 4287 §4.1.1: a feed has an id, a title, an updated time and (no entry author) an
    # author; each entry an id, a title and an updated time.
    for required in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{required}") is not None, required
    assert root.find(f"{ATOM}link[@rel='self']") is not None
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        f"{PUBLISHER}/steel-products withdrew version 1.1.0",
        f"{PUBLISHER}/steel-products released version 1.1.0",
        f"{PUBLISHER}/steel-products released version 1.0.0",
    ]
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == 3
    for entry in entries:
        for required in ("id", "title", "updated"):
            assert entry.find(f"{ATOM}{required}") is not None, required
        updated = entry.findtext(f"{ATOM}updated")
        assert updated is not None
        assert datetime.fromisoformat(updated).tzinfo is not None
    assert root.findtext(f"{ATOM}updated") == entries[0].findtext(f"{ATOM}updated")
    assert "synthetic: wrong unit" in (entries[0].findtext(f"{ATOM}summary") or "")
    filtered = client.get("/changes.atom", params={"dataset": "nothing-here"})
    assert ElementTree.fromstring(filtered.content).findall(f"{ATOM}entry") == []
    assert client.get("/changes.atom", params={"bogus": "1"}).status_code == 422


def test_the_changes_page_pages_back_in_time(client: TestClient, story: Story) -> None:
    story.dataset("steel-products")
    for minor in range(3):
        story.release("steel-products", f"1.{minor}.0", [1])
    from app.web import changes_pages

    shown = changes_pages.CHANGES_SHOWN
    changes_pages.CHANGES_SHOWN = 2
    try:
        first = client.get("/changes", params={"lang": "en"}).text
        older = re.search(r'<a href="([^"]+)" rel="next">', first)
        assert older is not None
        second = client.get(older.group(1).replace("&amp;", "&")).text
    finally:
        changes_pages.CHANGES_SHOWN = shown
    assert "released version 1.2.0" in first
    assert "released version 1.1.0" in first
    assert "released version 1.0.0" not in first
    assert "released version 1.0.0" in second
    assert "released version 1.1.0" not in second
    assert 'rel="next"' not in second


def test_every_committed_change_has_its_outbox_row_and_a_rolled_back_one_none(
    client: TestClient, story: Story, db: Engine
) -> None:
    story.dataset("steel-products")
    story.release("steel-products", "1.0.0", [1])
    story.withdraw("steel-products", "1.0.0", "synthetic: retracted")
    changes, _ = follow(client)
    sessions = make_sessionmaker(db)
    with sessions() as session:
        outbox = session.execute(
            select(ChangeOutbox.audit_event_id, ChangeOutbox.change_type).order_by(ChangeOutbox.id)
        ).all()
    assert [tuple(row) for row in outbox] == [(c["audit_event_id"], c["type"]) for c in changes]
    # A change whose transaction rolls back leaves neither its audit event nor its outbox row.
    with sessions() as session:
        event = append_event(
            session,
            actor="synthetic-test",
            action="dataset.deprecated",
            subject_type="dataset",
            subject_id=f"{PUBLISHER}/steel-products",
            payload={"superseded_by": None, "reason": "synthetic: rolled back"},
        )
        pending = select(ChangeOutbox).where(ChangeOutbox.audit_event_id == event.id)
        assert session.execute(pending).scalar_one().change_type == "dataset.deprecated"
        session.rollback()
    with sessions() as session:
        count = session.execute(select(func.count()).select_from(ChangeOutbox)).scalar_one()
    assert count == len(changes)
    assert follow(client)[0] == changes
