"""`GET /v1/datasets` and a dataset's versions and their factors, HTTP in / out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from tests.factories import (
    REVIEWER,
    SYNTHETIC_ATTRIBUTION,
    SYNTHETIC_LICENSE_ID,
    Status,
    create_dataset,
    create_dataset_with_factors,
    create_publisher,
    create_version,
    factor_fields,
)

# A pinned release states its status, which a withdrawal changes: revalidated, never immutable.
PINNED_RELEASE = "public, max-age=300, must-revalidate"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def walk(client: TestClient, url: str, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every page of a list, following `next`; checks the `Link` header on the way."""
    pages: list[list[dict[str, Any]]] = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next"] is None:
            assert "link" not in response.headers
            return pages
        assert response.links["next"]["url"] == body["next"]
        assert len(pages) < 100, "the walk does not end"
        response = client.get(body["next"])


# --- Dataset list and detail ----------------------------------------------------------------


def test_list_datasets_by_page_and_by_publisher(client: TestClient, session: Session) -> None:
    a = create_publisher(session, slug="synth-a")
    b = create_publisher(session, slug="synth-b")
    for publisher, slug in [(a, "one"), (b, "two"), (a, "three"), (b, "four"), (a, "five")]:
        create_dataset_with_factors(
            session, publisher=publisher, dataset=slug, factors=[factor_fields(f"{slug}-1")]
        )
    create_dataset_with_factors(
        session,
        publisher=a,
        dataset="members",
        access="registered",
        factors=[factor_fields("members-1")],
    )
    session.commit()

    pages = walk(client, "/v1/datasets", {"limit": 2})
    assert [len(page) for page in pages] == [2, 2, 1]
    ids = [d["id"] for page in pages for d in page]
    assert ids == [
        "synth-a/one",
        "synth-b/two",
        "synth-a/three",
        "synth-b/four",
        "synth-a/five",
    ]

    pages = walk(client, "/v1/datasets", {"publisher": "synth-a", "limit": 2})
    assert [d["id"] for page in pages for d in page] == [
        "synth-a/one",
        "synth-a/three",
        "synth-a/five",
    ]
    assert walk(client, "/v1/datasets", {"publisher": "nobody"}) == [[]]

    first = client.get("/v1/datasets", params={"publisher": "synth-a", "limit": 1}).json()
    cursor = first["next"].split("cursor=")[1]
    reused = client.get("/v1/datasets", params={"publisher": "synth-b", "cursor": cursor})
    assert_problem(reused, 422)
    for limit in (0, 1001):
        assert_problem(client.get("/v1/datasets", params={"limit": limit}), 422)


def test_dataset_detail_carries_its_licence(client: TestClient, seeded: None) -> None:
    response = client.get("/v1/datasets/mee-cn/cn-electricity-co2")
    assert response.status_code == 200
    dataset = response.json()
    assert dataset["id"] == "mee-cn/cn-electricity-co2"
    assert dataset["publisher"] == "mee-cn"
    assert dataset["access"] == "public"
    assert dataset["license_id"] == "LicenseRef-CN-Official-Document"
    assert dataset["license_url"] == "https://flk.npc.gov.cn/"
    assert "生态环境部、国家统计局" in dataset["attribution"]
    assert (dataset["redistribution"], dataset["commercial_use"]) == (True, True)
    assert (dataset["sector_scheme"], dataset["sector_code"]) == ("GB/T 4754-2017", "D44")
    assert dataset["latest_version"] == "1.0.0"
    assert "immutable" not in response.headers["cache-control"]

    ipcc = client.get("/v1/datasets/ipcc-tfi/ipcc-2006-stationary-combustion").json()
    assert ipcc["license_id"] == "LicenseRef-IPCC-Copyright"
    assert (ipcc["redistribution"], ipcc["commercial_use"]) == (False, False)


def test_dataset_list_shows_the_same_licence_fields(client: TestClient, seeded: None) -> None:
    listed = {d["id"]: d for d in client.get("/v1/datasets").json()["items"]}
    assert set(listed) >= {
        "ipcc-tfi/ipcc-2006-stationary-combustion",
        "mee-cn/cn-electricity-co2",
        "desnz-uk/uk-ghg-conversion-factors-2024",
    }
    uk = listed["desnz-uk/uk-ghg-conversion-factors-2024"]
    assert uk["license_id"] == "OGL-UK-3.0"
    assert uk["attribution"].startswith("Contains public sector information licensed under")
    assert uk["latest_version"] == "1.0.0"


def test_unknown_dataset_is_404_naming_it(client: TestClient, seeded: None) -> None:
    for path in ("", "/versions", "/versions/1.0.0", "/versions/1.0.0/factors"):
        body = assert_problem(client.get(f"/v1/datasets/mee-cn/no-such-dataset{path}"), 404)
        assert "mee-cn/no-such-dataset" in body["detail"], path


# --- Versions -------------------------------------------------------------------------------


@pytest.fixture
def grid_history(session: Session) -> None:
    """synth-a/grid released 1.0.0, 1.9.0, 1.10.0, 2.0.0 (withdrawn); three never released."""
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    versions: list[tuple[str, Status]] = [
        ("1.0.0", "published"),
        ("1.9.0", "published"),
        ("1.10.0", "published"),
        ("2.0.0", "withdrawn"),
        ("2.0.1", "rejected"),
        ("2.1.0", "submitted"),
        ("3.0.0", "draft"),
    ]
    for version, status in versions:
        create_version(
            session,
            dataset=dataset,
            version=version,
            status=status,
            factors=[factor_fields("g-1", co2e=float(version.split(".")[1]))],
        )
    session.commit()


def test_versions_are_listed_newest_first_with_supersedes(
    client: TestClient, grid_history: None
) -> None:
    response = client.get("/v1/datasets/synth-a/grid/versions")
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    listed = [(v["version"], v["status"], v["supersedes"]) for v in body["items"]]
    assert listed == [
        ("2.0.0", "withdrawn", "1.10.0"),
        ("1.10.0", "deprecated", "1.9.0"),
        ("1.9.0", "deprecated", "1.0.0"),
        ("1.0.0", "deprecated", None),
    ]
    withdrawn = body["items"][0]
    assert withdrawn["withdrawn_reason"]
    assert withdrawn["withdrawn_at"] is not None
    assert "immutable" not in response.headers["cache-control"]
    # Latest resolution skips the withdrawn release and orders by semver, not as text.
    assert client.get("/v1/datasets/synth-a/grid").json()["latest_version"] == "1.10.0"


def test_unreleased_versions_are_never_listed_or_served(
    client: TestClient, grid_history: None
) -> None:
    listed = [
        v["version"] for v in client.get("/v1/datasets/synth-a/grid/versions").json()["items"]
    ]
    for version in ("2.0.1", "2.1.0", "3.0.0"):
        assert version not in listed
        for path in (f"/versions/{version}", f"/versions/{version}/factors"):
            body = assert_problem(client.get(f"/v1/datasets/synth-a/grid{path}"), 404)
            assert f"version {version} of synth-a/grid" in body["detail"]


def test_version_detail(client: TestClient, grid_history: None) -> None:
    response = client.get("/v1/datasets/synth-a/grid/versions/1.10.0")
    assert response.status_code == 200
    version = response.json()
    assert version["dataset"] == "synth-a/grid"
    assert (version["version"], version["status"], version["row_count"]) == (
        "1.10.0",
        "deprecated",
        1,
    )
    assert SHA256_HEX.match(version["content_sha256"])
    assert version["published_at"] is not None
    assert version["published_by"] == REVIEWER
    assert version["supersedes"] == "1.9.0"
    assert version["license_id"] == SYNTHETIC_LICENSE_ID
    assert version["attribution"] == SYNTHETIC_ATTRIBUTION

    withdrawn = client.get("/v1/datasets/synth-a/grid/versions/2.0.0").json()
    assert withdrawn["status"] == "withdrawn"
    assert SHA256_HEX.match(withdrawn["content_sha256"])
    assert withdrawn["content_sha256"] != version["content_sha256"]

    assert_problem(client.get("/v1/datasets/synth-a/grid/versions/9.9.9"), 404)
    for malformed in ("v1", "1.0", "latest", "1.0.0-rc.1"):
        assert_problem(client.get(f"/v1/datasets/synth-a/grid/versions/{malformed}"), 422)


def test_real_seed_version_and_its_factors(client: TestClient, seeded: None) -> None:
    base = "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0"
    version = client.get(base).json()
    assert (version["status"], version["row_count"]) == ("published", 3)
    assert SHA256_HEX.match(version["content_sha256"])
    assert version["file_name"] == "seed_data/mee-cn/cn-electricity-co2/1.0.0.csv"

    factors = client.get(f"{base}/factors").json()["items"]
    assert {(f["reference_year"], f["co2e"], f["unit"], f["region"]) for f in factors} == {
        (2021, 0.5568, "kWh", "CN"),
        (2022, 0.5366, "kWh", "CN"),
        (2023, 0.5306, "kWh", "CN"),
    }
    for factor in factors:
        assert factor["id"] == f"mee-cn/cn-electricity-co2/{factor['factor_code']}@1.0.0"
        assert factor["license_id"] == "LicenseRef-CN-Official-Document"
        assert factor["attribution"] == version["attribution"]
        assert factor["version_status"] == "published"
        assert factor["uid"]


def test_version_factors_page_through_one_release(client: TestClient, session: Session) -> None:
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    old = [factor_fields(f"g-{i:02d}", co2e=float(i)) for i in range(25)]
    create_version(session, dataset=dataset, version="1.0.0", factors=old)
    new = [factor_fields(f"g-{i:02d}", co2e=float(100 + i)) for i in range(30)]
    create_version(session, dataset=dataset, version="1.1.0", factors=new)
    session.commit()

    pages = walk(client, "/v1/datasets/synth-a/grid/versions/1.0.0/factors", {"limit": 10})
    assert [len(page) for page in pages] == [10, 10, 5]
    served = [(f["factor_code"], f["co2e"], f["version"]) for page in pages for f in page]
    assert len(served) == len(set(served))
    assert set(served) == {(f.factor_code, f.co2e, "1.0.0") for f in old}

    pages = walk(client, "/v1/datasets/synth-a/grid/versions/1.1.0/factors", {"limit": 1000})
    assert {(f["factor_code"], f["co2e"]) for f in pages[0]} == {
        (f.factor_code, f.co2e) for f in new
    }


# --- HTTP caching ---------------------------------------------------------------------------


def test_released_version_and_its_factors_revalidate_with_a_strong_etag(
    client: TestClient, session: Session
) -> None:
    create_dataset_with_factors(
        session,
        publisher="synth-a",
        dataset="grid",
        factors=[factor_fields(f"g-{i}") for i in range(3)],
    )
    session.commit()

    for url in (
        "/v1/datasets/synth-a/grid/versions/1.0.0",
        "/v1/datasets/synth-a/grid/versions/1.0.0/factors",
        "/v1/datasets/synth-a/grid/versions/1.0.0/factors?limit=2",
    ):
        response = client.get(url)
        assert response.status_code == 200
        etag = response.headers["etag"]
        assert re.fullmatch(r'"[^"]+"', etag), f"not a strong ETag: {etag}"
        assert response.headers["cache-control"] == PINNED_RELEASE

        revalidated = client.get(url, headers={"If-None-Match": etag})
        assert revalidated.status_code == 304, url
        assert revalidated.content == b""
        assert revalidated.headers["etag"] == etag
        assert revalidated.headers["cache-control"] == PINNED_RELEASE
        # Any of several tags matches; a stale tag gets the full body.
        listed = client.get(url, headers={"If-None-Match": f'"stale", {etag}'})
        assert listed.status_code == 304
        assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_mutable_dataset_views_are_not_immutable(client: TestClient, session: Session) -> None:
    create_dataset_with_factors(
        session, publisher="synth-a", dataset="grid", factors=[factor_fields("g-1")]
    )
    session.commit()
    for url in (
        "/v1/datasets",
        "/v1/datasets/synth-a/grid",
        "/v1/datasets/synth-a/grid/versions",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert "immutable" not in response.headers["cache-control"], url
        assert response.json()  # and a body, unlike a 304
