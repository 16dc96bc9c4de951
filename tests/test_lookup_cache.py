"""Lookup by code keeps its answers per release (app/factors/lookup.py): seen from the client,
nothing may differ from an answer computed afresh. A withdrawal, a deprecation or a new release
shows in the very next lookup; a cached answer never reaches a reader who may not read it, and
registered reads served from it are metered like any other.

Every record here is a synthetic test fixture, not a real emission factor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.main import create_app
from tests.auth_fixtures import TokenKit
from tests.factories import (
    create_dataset_with_factors,
    create_publisher,
    create_version,
    factor_fields,
)
from tests.live_server import loopback_client, serve_in_thread

PUBLIC = "/v1/factors/synth-lookup/open"
REGISTERED = "/v1/factors/synth-lookup/members"
# Far in the future: answered as of now, by the general path (not the lookup's short one).
GENERAL = {"as_of": "9999-12-31"}


@pytest.fixture
def datasets(session: Session) -> None:
    """synth-lookup/open (public, two releases) and synth-lookup/members (registered)."""
    publisher = create_publisher(session, slug="synth-lookup")
    open_dataset = create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="open",
        factors=[factor_fields("grid-1", co2e=0.5), factor_fields("heat-1", co2e=0.2)],
    )
    create_version(
        session,
        dataset=open_dataset,
        version="1.1.0",
        factors=[factor_fields("grid-1", co2e=0.6), factor_fields("heat-1", co2e=0.2)],
    )
    create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="members",
        access="registered",
        factors=[factor_fields("secret-1")],
    )
    session.commit()


def _lookup(client: TestClient, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer


def test_a_withdrawal_shows_in_the_very_next_lookup(
    client: TestClient, tokens: TokenKit, datasets: None
) -> None:
    # Asked twice each, so that the second answer is the kept one.
    for _ in range(2):
        latest = _lookup(client, f"{PUBLIC}/grid-1")
        pinned = _lookup(client, f"{PUBLIC}/grid-1", version="1.1.0")
    assert latest.json()["version"] == "1.1.0"
    assert latest.json()["co2e"] == 0.6
    assert pinned.json()["version_status"] == "published"

    withdrawn = client.post(
        "/v1/datasets/synth-lookup/open/versions/1.1.0/withdraw",
        headers=tokens.reviewer(),
        json={"reason": "synthetic: wrong value"},
    )
    assert withdrawn.status_code == 200, withdrawn.text

    # The release that answered "latest" no longer does: the one before it answers.
    now_latest = _lookup(client, f"{PUBLIC}/grid-1")
    assert now_latest.json()["version"] == "1.0.0"
    assert now_latest.json()["co2e"] == 0.5
    assert now_latest.headers["etag"] != latest.headers["etag"]
    # Pinned, it is still readable, and says that it was withdrawn and why.
    now_pinned = _lookup(client, f"{PUBLIC}/grid-1", version="1.1.0")
    assert now_pinned.json()["version_status"] == "withdrawn"
    assert now_pinned.json()["withdrawn_reason"] == "synthetic: wrong value"
    assert now_pinned.json()["withdrawn_at"] is not None
    assert now_pinned.headers["etag"] != pinned.headers["etag"]
    # A client revalidating its copy of the withdrawn release's answer gets the new one.
    again = client.get(
        f"{PUBLIC}/grid-1",
        params={"version": "1.1.0"},
        headers={"If-None-Match": pinned.headers["etag"]},
    )
    assert again.status_code == 200
    assert again.json()["version_status"] == "withdrawn"
    # Answered afresh by the general path, everything agrees.
    for path, params in ((f"{PUBLIC}/grid-1", {}), (f"{PUBLIC}/grid-1", {"version": "1.1.0"})):
        kept = _lookup(client, path, **params)
        fresh = _lookup(client, path, **params, **({} if params else GENERAL))
        assert kept.content == fresh.content
        assert kept.headers["etag"] == fresh.headers["etag"]


def test_kept_answers_are_the_bytes_of_a_fresh_one(client: TestClient, datasets: None) -> None:
    for _ in range(2):
        for code in ("grid-1", "heat-1"):
            kept = _lookup(client, f"{PUBLIC}/{code}")
            fresh = _lookup(client, f"{PUBLIC}/{code}", **GENERAL)
            assert kept.content == fresh.content
            assert kept.headers["etag"] == fresh.headers["etag"]
            assert kept.headers["cache-control"] == fresh.headers["cache-control"]
            revalidated = client.get(
                f"{PUBLIC}/{code}", headers={"If-None-Match": kept.headers["etag"]}
            )
            assert revalidated.status_code == 304
            assert revalidated.headers["etag"] == kept.headers["etag"]


def test_a_deprecation_shows_in_the_very_next_lookup(
    client: TestClient, tokens: TokenKit, datasets: None
) -> None:
    for _ in range(2):
        before = _lookup(client, f"{PUBLIC}/heat-1").json()
    assert before["dataset_status"] == "active"
    deprecated = client.post(
        "/v1/datasets/synth-lookup/open/deprecate",
        headers=tokens.reviewer(),
        json={"reason": "synthetic: replaced"},
    )
    assert deprecated.status_code == 200, deprecated.text
    assert _lookup(client, f"{PUBLIC}/heat-1").json()["dataset_status"] == "deprecated"


def test_a_kept_registered_answer_is_checked_and_metered_every_time(
    client: TestClient, tokens: TokenKit, datasets: None
) -> None:
    granted = tokens.reader("synth-lookup/members")
    for _ in range(3):
        answer = client.get(f"{REGISTERED}/secret-1", headers=granted)
        assert answer.status_code == 200, answer.text
    # Kept for the granted client, never handed to anyone else.
    assert client.get(f"{REGISTERED}/secret-1").status_code == 404
    assert client.get(f"{REGISTERED}/secret-1", headers=tokens.reader()).status_code == 404
    usage = client.get("/v1/datasets/synth-lookup/members/usage", headers=tokens.admin())
    assert usage.status_code == 200, usage.text
    assert [(item["requests"], item["rows"]) for item in usage.json()["items"]] == [(3, 3)]


@pytest.fixture
def served(db: Engine, settings: Settings) -> Iterator[str]:
    """The same database behind a real uvicorn: the withdrawal's answer and the next lookup
    travel as a client sees them (a TestClient waits for the whole request)."""
    app = create_app(settings)
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        app.state.engine.dispose()


def test_a_real_client_sees_a_withdrawal_in_the_very_next_lookup_and_search_page(
    served: str, tokens: TokenKit, datasets: None
) -> None:
    page_query = {"dataset": "synth-lookup/open"}
    with loopback_client(base_url=served, timeout=30) as http:
        for _ in range(2):  # the second answers are the kept ones
            latest = http.get(f"{PUBLIC}/grid-1")
            page = http.get("/v1/factors", params=page_query)
            assert latest.json()["version"] == "1.1.0", latest.text
            assert {item["version"] for item in page.json()["items"]} == {"1.1.0"}, page.text
        withdrawn = http.post(
            "/v1/datasets/synth-lookup/open/versions/1.1.0/withdraw",
            headers=tokens.reviewer(),
            json={"reason": "synthetic: wrong value"},
        )
        assert withdrawn.status_code == 200, withdrawn.text
        # Sent as soon as the answer arrived, on the same connection.
        now_latest = http.get(f"{PUBLIC}/grid-1")
        now_page = http.get("/v1/factors", params=page_query)
    assert now_latest.status_code == 200, now_latest.text
    assert (now_latest.json()["version"], now_latest.json()["co2e"]) == ("1.0.0", 0.5)
    assert now_latest.headers["etag"] != latest.headers["etag"]
    assert {item["version"] for item in now_page.json()["items"]} == {"1.0.0"}, now_page.text
    assert now_page.headers["etag"] != page.headers["etag"]


def test_a_kept_search_page_on_a_real_server_is_the_routes_answer_until_a_withdrawal(
    served: str, tokens: TokenKit, datasets: None
) -> None:
    """A kept search page is answered below the middlewares (app/factors/page_cache.py): the
    same bytes and headers as the page the route makes, middlewares' headers included; a token
    still reads what it may read, and the next page after a withdrawal is the new one."""
    query: dict[str, str | int] = {"publisher": "synth-lookup", "limit": 1}
    varying = {"date", "x-request-id"}
    with loopback_client(base_url=served, timeout=30) as http:
        made = http.get("/v1/factors", params=query)
        kept = [http.get("/v1/factors", params=query) for _ in range(2)]
        revalidated = http.get(
            "/v1/factors", params=query, headers={"If-None-Match": made.headers["etag"]}
        )
        # A reader granted the registered dataset is not served the anonymous page.
        granted = tokens.reader("synth-lookup/members")
        as_member = http.get("/v1/factors", params={**query, "limit": 10}, headers=granted)
        anonymous = http.get("/v1/factors", params={**query, "limit": 10})
        withdrawn = http.post(
            "/v1/datasets/synth-lookup/open/versions/1.1.0/withdraw",
            headers=tokens.reviewer(),
            json={"reason": "synthetic: wrong value"},
        )
        after = http.get("/v1/factors", params=query)
        metrics = http.get("/metrics", headers=tokens.admin())
    assert made.status_code == 200, made.text
    assert made.headers["link"].startswith("</v1/factors?")
    for page in kept:
        assert page.status_code == 200, page.text
        assert page.content == made.content
        assert {k: v for k, v in page.headers.items() if k not in varying} == {
            k: v for k, v in made.headers.items() if k not in varying
        }
        assert page.headers["x-request-id"] != made.headers["x-request-id"]
    assert revalidated.status_code == 304
    assert (revalidated.headers["etag"], revalidated.headers["link"]) == (
        made.headers["etag"],
        made.headers["link"],
    )
    assert revalidated.content == b""
    assert {item["dataset"] for item in as_member.json()["items"]} == {"open", "members"}
    assert {item["dataset"] for item in anonymous.json()["items"]} == {"open"}
    assert withdrawn.status_code == 200, withdrawn.text
    assert after.status_code == 200, after.text
    assert after.json()["items"][0]["version"] == "1.0.0"
    assert after.headers["etag"] != made.headers["etag"]
    # Counted under the route's template, as the route's own answers are.
    assert metrics.status_code == 200, metrics.text
    counted = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if sample.name == "efdb_http_requests_total" and sample.labels["method"] == "GET"
    }
    assert counted[("/v1/factors", "2xx")] == 6
    assert counted[("/v1/factors", "3xx")] == 1
