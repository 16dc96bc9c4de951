"""`GET /v1/factors` and `GET /v1/factors/{publisher}/{dataset}/{factor_code}`, HTTP in / out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.viewer import get_viewer
from app.core.principal import Viewer
from app.datasets.models import Dataset
from app.datasets.version_models import DatasetVersion
from app.factors.schemas import UPLOADABLE_FIELDS
from app.publishing.workflow import withdraw
from tests.factories import (
    SYNTHETIC_ATTRIBUTION,
    SYNTHETIC_LICENSE_ID,
    Status,
    create_dataset,
    create_dataset_with_factors,
    create_publisher,
    create_version,
    factor_fields,
)

FACTOR_KEYS = set(UPLOADABLE_FIELDS) | {
    "id",
    "uid",
    "publisher",
    "dataset",
    "version",
    "version_status",
    "license_id",
    "license_url",
    "attribution",
    "dqr",
}
PINNED_RELEASE = "public, max-age=300, must-revalidate"


def assert_factor_shape(factor: dict[str, Any]) -> None:
    """What every factor in every response carries: identity, release and licence."""
    assert factor.keys() >= FACTOR_KEYS, FACTOR_KEYS - factor.keys()
    assert factor["id"] == (
        f"{factor['publisher']}/{factor['dataset']}/{factor['factor_code']}@{factor['version']}"
    )
    assert isinstance(factor["uid"], str)
    assert factor["uid"]
    assert factor["license_id"]
    assert factor["attribution"]
    assert factor["version_status"] in ("published", "deprecated", "withdrawn")


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"]
    assert body["title"]
    assert body["detail"]
    return body


def search(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """One page of at most 1000 results; the page must be the whole answer."""
    response = client.get("/v1/factors", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"] is None
    items: list[dict[str, Any]] = body["items"]
    for factor in items:
        assert_factor_shape(factor)
    return items


def codes(items: list[dict[str, Any]]) -> set[str]:
    return {factor["factor_code"] for factor in items}


def lookup(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/factors/{path}", params=params)
    assert response.status_code == 200, response.text
    factor: dict[str, Any] = response.json()
    assert_factor_shape(factor)
    return factor


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- Search filters -------------------------------------------------------------------------

# (publisher/dataset, factor_code, fields). Activity ids avoid the search words on purpose,
# so that `q` is seen matching names.
CATALOGUE: list[tuple[str, str, dict[str, Any]]] = [
    (
        "synth-a/grid",
        "a-cn-2022",
        dict(
            activity_id="grid-power",
            name_zh="合成电力因子-全国",
            name_en="Synthetic electricity factor (national)",
            region="CN",
            reference_year=2022,
            unit="kWh",
            category="energy/electricity",
            boundary="combustion",
        ),
    ),
    (
        "synth-a/grid",
        "a-gd-2022",
        dict(
            activity_id="grid-power",
            name_zh="合成电力因子-广东",
            name_en=None,
            region="CN-GD",
            reference_year=2022,
            unit="MWh",
            category="energy/electricity",
            boundary="cradle-to-gate",
        ),
    ),
    (
        "synth-a/grid",
        "a-cn-2021",
        dict(
            activity_id="grid-power",
            name_zh=None,
            name_en="SYNTHETIC ELECTRICITY FACTOR (2021)",
            region="CN",
            reference_year=2021,
            unit="kWh",
            category="energy/electricity",
            boundary="combustion",
        ),
    ),
    (
        "synth-a/grid",
        "a-heat",
        dict(
            activity_id="heat-supply",
            name_zh="合成热力因子",
            name_en="Synthetic heat factor",
            region="CN",
            reference_year=2022,
            unit="GJ",
            category="energy/heat",
            boundary="combustion",
        ),
    ),
    (
        "synth-a/grid",
        "a-energyx",
        dict(
            activity_id="other-supply",
            name_zh="合成其他因子",
            name_en="Synthetic energyx factor",
            region="GLO",
            reference_year=2022,
            unit="kg",
            category="energyx/other",
            boundary="gate-to-gate",
        ),
    ),
    (
        "synth-b/steel",
        "b-coil",
        dict(
            activity_id="steel-hot-rolled-coil",
            name_zh="合成热轧卷板",
            name_en="Synthetic hot-rolled coil",
            region="CN",
            reference_year=2022,
            unit="t",
            category="materials/steel",
            boundary="cradle-to-gate",
        ),
    ),
    (
        "synth-b/steel",
        "b-energy",
        dict(
            activity_id="grid-power",
            name_zh="合成能源因子",
            name_en="Synthetic energy total",
            region="GLO",
            reference_year=2022,
            unit="kWh",
            category="energy",
            boundary="cradle-to-grave",
        ),
    ),
    (
        "synth-b/grid",
        "b-grid",
        dict(
            activity_id="grid-power",
            name_zh="合成电网因子",
            name_en="Synthetic grid electricity B",
            region="GB",
            reference_year=2022,
            unit="kWh",
            category="energy/electricity",
            boundary="well-to-tank",
        ),
    ),
]
ALL_CODES = {code for _, code, _ in CATALOGUE}


@pytest.fixture
def catalogue(session: Session) -> None:
    publishers = {slug: create_publisher(session, slug=slug) for slug in ("synth-a", "synth-b")}
    for key in dict.fromkeys(k for k, _, _ in CATALOGUE):
        owner, slug = key.split("/")
        dataset = create_dataset(session, publisher=publishers[owner], slug=slug)
        create_version(
            session,
            dataset=dataset,
            factors=[factor_fields(code, **fields) for k, code, fields in CATALOGUE if k == key],
        )
    session.commit()


# (what the case shows, query, factor codes expected)
SEARCH_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("no filter", {}, ALL_CODES),
    ("q in Chinese", {"q": "电力"}, {"a-cn-2022", "a-gd-2022"}),
    ("q in English", {"q": "electricity"}, {"a-cn-2022", "a-cn-2021", "b-grid"}),
    ("q ignores case", {"q": "ELECTRICITY"}, {"a-cn-2022", "a-cn-2021", "b-grid"}),
    ("q phrase", {"q": "Electricity Factor"}, {"a-cn-2022", "a-cn-2021"}),
    ("q % is literal", {"q": "%"}, set()),
    ("q _ is literal", {"q": "_"}, set()),
    (
        "activity_id",
        {"activity_id": "grid-power"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "b-energy", "b-grid"},
    ),
    ("region is exact", {"region": "CN"}, {"a-cn-2022", "a-cn-2021", "a-heat", "b-coil"}),
    ("region subdivision", {"region": "CN-GD"}, {"a-gd-2022"}),
    ("year", {"year": 2021}, {"a-cn-2021"}),
    ("unit", {"unit": "kWh"}, {"a-cn-2022", "a-cn-2021", "b-energy", "b-grid"}),
    ("unit alias", {"unit": "kilowatt_hour"}, {"a-cn-2022", "a-cn-2021", "b-energy", "b-grid"}),
    ("unit alias MWh", {"unit": "megawatt_hour"}, {"a-gd-2022"}),
    (
        "category prefix, not energyx",
        {"category": "energy"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "a-heat", "b-energy", "b-grid"},
    ),
    (
        "category path",
        {"category": "energy/electricity"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "b-grid"},
    ),
    (
        "category trailing slash",
        {"category": "energy/"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "a-heat", "b-energy", "b-grid"},
    ),
    ("category % is literal", {"category": "energy%"}, set()),
    ("boundary", {"boundary": "cradle-to-gate"}, {"a-gd-2022", "b-coil"}),
    ("publisher", {"publisher": "synth-b"}, {"b-coil", "b-energy", "b-grid"}),
    (
        "dataset slug in every publisher",
        {"dataset": "grid"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "a-heat", "a-energyx", "b-grid"},
    ),
    ("dataset as publisher/dataset", {"dataset": "synth-b/grid"}, {"b-grid"}),
    (
        "dataset and publisher",
        {"dataset": "grid", "publisher": "synth-a"},
        {"a-cn-2022", "a-gd-2022", "a-cn-2021", "a-heat", "a-energyx"},
    ),
    ("filters combine", {"region": "CN", "year": 2022, "unit": "kWh"}, {"a-cn-2022"}),
    ("q and region", {"q": "电力", "region": "CN-GD"}, {"a-gd-2022"}),
    ("unknown publisher", {"publisher": "nobody"}, set()),
]


def test_search_filters(client: TestClient, catalogue: None) -> None:
    wrong = {}
    for case, params, expected in SEARCH_CASES:
        got = codes(search(client, **params))
        if got != expected:
            wrong[case] = {"params": params, "got": got, "expected": expected}
    assert wrong == {}


def test_search_results_carry_publisher_dataset_and_licence(
    client: TestClient, catalogue: None
) -> None:
    (factor,) = search(client, dataset="synth-b/grid")
    assert factor["id"] == "synth-b/grid/b-grid@1.0.0"
    assert factor["publisher"] == "synth-b"
    assert factor["dataset"] == "grid"
    assert factor["version"] == "1.0.0"
    assert factor["version_status"] == "published"
    assert factor["license_id"] == SYNTHETIC_LICENSE_ID
    assert factor["attribution"] == SYNTHETIC_ATTRIBUTION


def test_dataset_naming_another_publisher_is_refused(client: TestClient, catalogue: None) -> None:
    response = client.get("/v1/factors", params={"dataset": "synth-b/grid", "publisher": "synth-a"})
    body = assert_problem(response, 422)
    assert "synth-b" in body["detail"]
    assert "synth-a" in body["detail"]


def test_search_real_seed_electricity_in_chinese_and_english(
    client: TestClient, seeded: None
) -> None:
    chinese = {f["id"] for f in search(client, q="电力")}
    english = {f["id"] for f in search(client, q="Electricity")}
    for ids in (chinese, english):
        assert "mee-cn/cn-electricity-co2/national-average-2022@1.0.0" in ids
        assert "desnz-uk/uk-ghg-conversion-factors-2024/uk-electricity-generated@1.0.0" in ids
        assert not any(i.startswith("ipcc-tfi/") for i in ids)


# --- Seed values ----------------------------------------------------------------------------


def test_real_china_grid_factor(client: TestClient, seeded: None) -> None:
    factor = lookup(client, "mee-cn/cn-electricity-co2/national-average-2022")
    assert factor["id"] == "mee-cn/cn-electricity-co2/national-average-2022@1.0.0"
    assert factor["co2e"] == 0.5366
    assert factor["co2"] == 0.5366
    assert factor["unit"] == "kWh"
    assert factor["region"] == "CN"
    assert factor["reference_year"] == 2022
    assert factor["activity_id"] == "electricity-grid-mix"
    assert factor["version_status"] == "published"
    assert factor["license_id"] == "LicenseRef-CN-Official-Document"
    assert "生态环境部、国家统计局" in factor["attribution"]


def test_real_ipcc_natural_gas_factor(client: TestClient, seeded: None) -> None:
    factor = lookup(client, "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas")
    assert (factor["co2"], factor["ch4"], factor["n2o"]) == (56100, 1, 0.1)
    assert factor["gwp_set"] == "AR5"
    assert factor["co2e"] == 56154.5
    assert factor["unit"] == "TJ"
    assert factor["region"] == "GLO"
    assert factor["source_locator"] == "Vol. 2, Ch. 2, Table 2.2, p. 2.16"
    assert factor["license_id"] == "LicenseRef-IPCC-Copyright"
    assert factor["attribution"].startswith("IPCC 2006, 2006 IPCC Guidelines")


def test_search_finds_real_factor_by_its_fields(client: TestClient, seeded: None) -> None:
    items = search(
        client,
        activity_id="electricity-grid-mix",
        region="CN",
        year=2022,
        unit="kilowatt_hour",
        dataset="mee-cn/cn-electricity-co2",
    )
    assert [(f["factor_code"], f["co2e"]) for f in items] == [("national-average-2022", 0.5366)]


# --- Versions: pin, latest, as_of -----------------------------------------------------------


@pytest.fixture
def two_releases(session: Session) -> None:
    """synth-a/grid: 1.0.0 (co2e 0.5, now deprecated) then 1.1.0 (co2e 0.6)."""
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    create_version(
        session,
        dataset=dataset,
        version="1.0.0",
        factors=[factor_fields("g-1", co2e=0.5), factor_fields("g-2", co2e=5.0)],
    )
    create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        factors=[factor_fields("g-1", co2e=0.6), factor_fields("g-2", co2e=6.0)],
    )
    session.commit()


def test_latest_serves_the_newest_release(client: TestClient, two_releases: None) -> None:
    factor = lookup(client, "synth-a/grid/g-1")
    assert (factor["id"], factor["co2e"], factor["version_status"]) == (
        "synth-a/grid/g-1@1.1.0",
        0.6,
        "published",
    )
    assert {f["id"] for f in search(client)} == {"synth-a/grid/g-1@1.1.0", "synth-a/grid/g-2@1.1.0"}


def test_version_pin_serves_the_older_release(client: TestClient, two_releases: None) -> None:
    factor = lookup(client, "synth-a/grid/g-1", version="1.0.0")
    assert (factor["id"], factor["co2e"], factor["version_status"]) == (
        "synth-a/grid/g-1@1.0.0",
        0.5,
        "deprecated",
    )
    expected = {("synth-a/grid/g-1@1.0.0", 0.5), ("synth-a/grid/g-2@1.0.0", 5.0)}
    for params in (
        {"dataset": "synth-a/grid", "version": "1.0.0"},
        {"publisher": "synth-a", "dataset": "grid", "version": "1.0.0"},
    ):
        assert {(f["id"], f["co2e"]) for f in search(client, **params)} == expected, params


def test_version_pin_needs_publisher_and_dataset(client: TestClient, two_releases: None) -> None:
    for params in (
        {"version": "1.0.0"},
        {"version": "1.0.0", "dataset": "grid"},
        {"version": "1.0.0", "publisher": "synth-a"},
    ):
        body = assert_problem(client.get("/v1/factors", params=params), 422)
        assert ["query", "version"] in [e["loc"] for e in body["errors"]], params


def test_version_and_as_of_together_are_refused(client: TestClient, two_releases: None) -> None:
    params = {"dataset": "synth-a/grid", "version": "1.0.0", "as_of": "2024-01-01"}
    assert_problem(client.get("/v1/factors", params=params), 422)
    params = {"version": "1.0.0", "as_of": "2024-01-01"}
    assert_problem(client.get("/v1/factors/synth-a/grid/g-1", params=params), 422)


def test_latest_is_highest_semver_and_skips_withdrawn(client: TestClient, session: Session) -> None:
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    releases: list[tuple[str, float, Status]] = [
        ("1.9.0", 0.9, "published"),
        ("1.10.0", 1.1, "published"),  # 1.10.0 > 1.9.0, though "1.10.0" < "1.9.0" as text
        ("2.0.0", 2.0, "withdrawn"),
    ]
    for version, co2e, status in releases:
        create_version(
            session,
            dataset=dataset,
            version=version,
            status=status,
            factors=[factor_fields("g-1", co2e=co2e)],
        )
    session.commit()

    factor = lookup(client, "synth-a/grid/g-1")
    assert (factor["version"], factor["co2e"]) == ("1.10.0", 1.1)
    assert [f["id"] for f in search(client, dataset="synth-a/grid")] == ["synth-a/grid/g-1@1.10.0"]
    # The withdrawn release stays readable by exact version, flagged.
    withdrawn = lookup(client, "synth-a/grid/g-1", version="2.0.0")
    assert (withdrawn["co2e"], withdrawn["version_status"]) == (2.0, "withdrawn")


@pytest.fixture
def history(session: Session) -> None:
    """1.0.0 on 2024-01-10, 1.1.0 on 2024-06-01, 2.0.0 on 2024-09-01 withdrawn 2024-10-15."""
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    create_version(
        session,
        dataset=dataset,
        version="1.0.0",
        published_at=at("2024-01-10T12:00"),
        factors=[factor_fields("g-1", co2e=1.0)],
    )
    create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        published_at=at("2024-06-01T08:00"),
        factors=[factor_fields("g-1", co2e=1.1)],
    )
    create_version(
        session,
        dataset=dataset,
        version="2.0.0",
        status="withdrawn",
        published_at=at("2024-09-01T08:00"),
        withdrawn_at=at("2024-10-15T09:00"),
        factors=[factor_fields("g-1", co2e=2.0)],
    )
    session.commit()


# (as_of, the version then current or None)
AS_OF_CASES: list[tuple[str, str | None]] = [
    ("2023-12-31", None),  # before the first release
    ("2024-01-10", "1.0.0"),  # the day of the first release counts, to its end
    ("2024-05-31", "1.0.0"),
    ("2024-06-01", "1.1.0"),
    ("2024-10-14", "2.0.0"),  # visible before its withdrawal
    ("2024-10-15", "1.1.0"),  # withdrawn during that day
    ("2025-01-01", "1.1.0"),
]


def test_as_of_answers_as_the_database_stood(client: TestClient, history: None) -> None:
    wrong = {}
    for as_of, expected in AS_OF_CASES:
        found = [f["version"] for f in search(client, as_of=as_of)]
        response = client.get("/v1/factors/synth-a/grid/g-1", params={"as_of": as_of})
        if expected is None:
            looked_up = assert_problem(response, 404)["detail"]
            if found or as_of not in looked_up:
                wrong[as_of] = (found, looked_up)
        elif found != [expected] or response.json()["version"] != expected:
            wrong[as_of] = (found, response.json())
    assert wrong == {}


def test_latest_without_as_of_skips_withdrawn(client: TestClient, history: None) -> None:
    assert lookup(client, "synth-a/grid/g-1")["version"] == "1.1.0"


def test_unreleased_versions_are_never_served(client: TestClient, session: Session) -> None:
    publisher = create_publisher(session, slug="synth-a")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    create_version(
        session, dataset=dataset, version="1.0.0", factors=[factor_fields("g-1", co2e=1.0)]
    )
    unreleased: list[tuple[str, Status]] = [
        ("1.1.0", "rejected"),
        ("1.2.0", "submitted"),
        ("2.0.0", "draft"),
    ]
    for version, status in unreleased:
        create_version(
            session,
            dataset=dataset,
            version=version,
            status=status,
            factors=[factor_fields("g-1", co2e=9.0), factor_fields("g-new")],
        )
    session.commit()

    assert [f["id"] for f in search(client)] == ["synth-a/grid/g-1@1.0.0"]
    assert lookup(client, "synth-a/grid/g-1")["version"] == "1.0.0"
    for version in ("1.1.0", "1.2.0", "2.0.0"):
        assert search(client, dataset="synth-a/grid", version=version) == []
        response = client.get("/v1/factors/synth-a/grid/g-1", params={"version": version})
        assert version in assert_problem(response, 404)["detail"]


# --- Access ---------------------------------------------------------------------------------


@pytest.fixture
def members_only(session: Session) -> None:
    """synth-a/open is public; synth-a/members is for registered readers only."""
    publisher = create_publisher(session, slug="synth-a")
    create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="open",
        factors=[factor_fields("open-1", name_en="Synthetic open grid")],
    )
    create_dataset_with_factors(
        session,
        publisher=publisher,
        dataset="members",
        access="registered",
        factors=[factor_fields("secret-1", name_en="Synthetic closed grid")],
    )
    session.commit()


def test_registered_datasets_are_invisible_to_anonymous_readers(
    client: TestClient, members_only: None
) -> None:
    assert codes(search(client)) == {"open-1"}
    assert codes(search(client, q="grid")) == {"open-1"}
    assert search(client, dataset="synth-a/members") == []
    assert_problem(client.get("/v1/factors/synth-a/members/secret-1"), 404)
    assert_problem(client.get("/v1/factors/synth-a/members/secret-1?version=1.0.0"), 404)

    listed = client.get("/v1/datasets").json()["items"]
    assert [d["id"] for d in listed] == ["synth-a/open"]
    for path in ("", "/versions", "/versions/1.0.0", "/versions/1.0.0/factors"):
        assert_problem(client.get(f"/v1/datasets/synth-a/members{path}"), 404)


def test_registered_datasets_are_visible_with_factors_read_and_a_grant(
    app: FastAPI, client: TestClient, session: Session, members_only: None
) -> None:
    members = session.execute(select(Dataset.id).where(Dataset.slug == "members")).scalar_one()
    app.dependency_overrides[get_viewer] = lambda: Viewer(
        client_id="synthetic-reader", scopes=frozenset({"factors:read"})
    )
    assert codes(search(client)) == {"open-1"}  # factors:read alone: no grant, no dataset

    def reader() -> Viewer:
        return Viewer(
            client_id="synthetic-reader",
            scopes=frozenset({"factors:read"}),
            granted=frozenset({members}),
        )

    app.dependency_overrides[get_viewer] = reader
    assert codes(search(client)) == {"open-1", "secret-1"}
    assert lookup(client, "synth-a/members/secret-1")["id"] == "synth-a/members/secret-1@1.0.0"
    assert client.get("/v1/datasets/synth-a/members").json()["access"] == "registered"


# --- Keyset pagination ----------------------------------------------------------------------

MANY = 2500


@pytest.fixture
def many_factors(session: Session) -> set[str]:
    """2,500 synthetic factors; every tenth is a Guangdong electricity factor."""
    factors = [
        factor_fields(
            f"syn-{i:05d}",
            region="CN-GD" if i % 10 == 0 else "CN",
            name_zh=f"合成电力因子 {i}" if i % 10 == 0 else f"合成钢材因子 {i}",
            co2e=i / 1000,
        )
        for i in range(MANY)
    ]
    create_dataset_with_factors(session, publisher="synth-bulk", dataset="bulk", factors=factors)
    session.commit()
    return {f.factor_code for f in factors}


def walk(client: TestClient, params: dict[str, Any], *, via: str) -> list[list[dict[str, Any]]]:
    """Every page of a search, following the body's `next` or the `Link` header."""
    pages: list[list[dict[str, Any]]] = []
    response = client.get("/v1/factors", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        next_url = body["next"]
        if next_url is None:
            assert "link" not in response.headers
            return pages
        assert response.links["next"]["url"] == next_url
        assert len(pages) <= MANY, "the walk does not end"
        response = client.get(next_url if via == "body" else response.links["next"]["url"])


def test_walk_every_page_with_limit_1000(client: TestClient, many_factors: set[str]) -> None:
    pages = walk(client, {"limit": 1000}, via="body")
    assert [len(page) for page in pages] == [1000, 1000, 500]
    seen = [f["factor_code"] for page in pages for f in page]
    assert len(seen) == len(set(seen)), "a factor was served twice"
    assert set(seen) == many_factors
    for page in pages:
        for factor in page:
            assert_factor_shape(factor)


def test_walk_filtered_query_with_limit_7_by_link_header(
    client: TestClient, many_factors: set[str]
) -> None:
    expected = {code for code in many_factors if int(code.removeprefix("syn-")) % 10 == 0}
    pages = walk(client, {"q": "电力", "region": "CN-GD", "limit": 7}, via="link")
    assert len(pages) == -(-len(expected) // 7)
    assert all(len(page) == 7 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 7
    seen = [f["factor_code"] for page in pages for f in page]
    assert len(seen) == len(set(seen)), "a factor was served twice"
    assert set(seen) == expected
    assert {f["region"] for page in pages for f in page} == {"CN-GD"}


def test_cursor_is_bound_to_its_filters(client: TestClient, catalogue: None) -> None:
    first = client.get("/v1/factors", params={"region": "CN", "limit": 1}).json()
    cursor = parse_qs(urlsplit(first["next"]).query)["cursor"][0]
    for other in ({"region": "GB"}, {}, {"region": "CN", "year": 2022}, {"unit": "kWh"}):
        reused = client.get("/v1/factors", params={**other, "limit": 1, "cursor": cursor})
        body = assert_problem(reused, 422)
        assert [e["loc"] for e in body["errors"]] == [["query", "cursor"]], other
    # The same filters with another page size continue where the first page stopped.
    rest = client.get("/v1/factors", params={"region": "CN", "limit": 50, "cursor": cursor})
    assert [f["factor_code"] for f in rest.json()["items"]] == ["a-cn-2021", "a-heat", "b-coil"]


def _forged(position: Any) -> str:
    payload = json.dumps({"p": position, "s": "0" * 16}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def test_garbage_cursor_is_422(client: TestClient) -> None:
    for cursor in (
        "garbage",
        "!!!!",
        "e30",  # base64 of {}
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        _forged([1]),  # a cursor of some other query
        _forged(["1"]),
        _forged([1.5]),
        _forged([1, 2]),
        "x" * 513,
    ):
        body = assert_problem(client.get("/v1/factors", params={"cursor": cursor}), 422)
        assert ["query", "cursor"] in [e["loc"] for e in body["errors"]], cursor


def test_tampered_cursor_position_is_422_not_a_server_error(
    client: TestClient, catalogue: None
) -> None:
    first = client.get("/v1/factors", params={"limit": 1}).json()
    cursor = parse_qs(urlsplit(first["next"]).query)["cursor"][0]
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for position in (10**30, -(10**30), 2**63, -1):
        payload["p"] = [position]
        tampered = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        response = client.get("/v1/factors", params={"limit": 1, "cursor": tampered})
        assert_problem(response, 422)


def test_limit_out_of_range_is_422(client: TestClient) -> None:
    for limit in (0, -1, 1001, 10**9, "ten"):
        body = assert_problem(client.get("/v1/factors", params={"limit": limit}), 422)
        assert ["query", "limit"] in [e["loc"] for e in body["errors"]], limit


# --- Lookup errors --------------------------------------------------------------------------


def test_lookup_of_something_missing_is_404_naming_it(client: TestClient, seeded: None) -> None:
    grid = "mee-cn/cn-electricity-co2"
    for path, params, detail in [
        (
            f"{grid}/national-average-1999",
            {},
            f"No factor 'national-average-1999' in {grid} version 1.0.0",
        ),
        ("mee-cn/no-such-dataset/national-average-2022", {}, "No dataset mee-cn/no-such-dataset."),
        (
            "no-such-publisher/cn-electricity-co2/national-average-2022",
            {},
            "No dataset no-such-publisher/cn-electricity-co2.",
        ),
        (
            f"{grid}/national-average-2022",
            {"version": "9.9.9"},
            f"No released version 9.9.9 of {grid}.",
        ),
        (
            f"{grid}/national-average-1999",
            {"version": "1.0.0"},
            f"No factor 'national-average-1999' in {grid} version 1.0.0",
        ),
    ]:
        body = assert_problem(client.get(f"/v1/factors/{path}", params=params), 404)
        assert body["detail"].startswith(detail), body["detail"]


def test_malformed_lookup_is_a_client_error(client: TestClient, seeded: None) -> None:
    grid = "mee-cn/cn-electricity-co2"
    for url in [
        "MEE-CN/cn-electricity-co2/national-average-2022",  # upper-case publisher
        "mee-cn/cn_electricity/national-average-2022",  # underscore in a dataset slug
        f"{grid}/national%20average",  # space in a factor code
        f"{grid}/" + "x" * 129,  # factor code too long
        f"{grid}/a/b",  # slash in a factor code
        f"{grid}/national-average-2022?version=latest",
        f"{grid}/national-average-2022?version=01.0.0",
        f"{grid}/national-average-2022?as_of=2024-02-30",
        f"{grid}/national-average-2022?colour=red",
    ]:
        response = client.get(f"/v1/factors/{url}")
        assert 400 <= response.status_code < 500, (url, response.status_code)
        assert_problem(response, response.status_code)


# --- HTTP caching ---------------------------------------------------------------------------


def test_pinned_lookup_revalidates_so_that_a_withdrawal_reaches_caches(
    client: TestClient, two_releases: None
) -> None:
    url = "/v1/factors/synth-a/grid/g-1?version=1.0.0"
    response = client.get(url)
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')  # strong, not W/"..."
    assert response.headers["cache-control"] == PINNED_RELEASE

    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    changed = client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


def test_a_withdrawal_changes_the_etag_of_a_pinned_lookup(
    client: TestClient, two_releases: None, session: Session
) -> None:
    """A tool revalidating its cached pinned factor hears about the withdrawal."""
    url = "/v1/factors/synth-a/grid/g-1?version=1.1.0"
    before = client.get(url)
    assert before.json()["version_status"] == "published"
    release = session.scalars(select(DatasetVersion).where(DatasetVersion.version == "1.1.0")).one()
    withdraw(
        session,
        version=release,
        label="synth-a/grid@1.1.0",
        reviewer="synthetic-reviewer",
        reviewer_publisher=None,
        owner_publisher="synth-a",
        reason="Synthetic withdrawal: wrong unit.",
    )
    session.commit()

    after = client.get(url, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    body = after.json()
    assert (body["co2e"], body["version_status"]) == (0.6, "withdrawn")
    assert body["withdrawn_reason"] == "Synthetic withdrawal: wrong unit."


def test_latest_lookup_and_search_are_not_immutable(client: TestClient, two_releases: None) -> None:
    for response in (client.get("/v1/factors/synth-a/grid/g-1"), client.get("/v1/factors")):
        assert response.status_code == 200
        assert "immutable" not in response.headers["cache-control"]


def test_search_pinned_to_an_unreleased_version_is_not_cached_forever(
    client: TestClient, two_releases: None
) -> None:
    # 3.0.0 may be published tomorrow: an empty answer today must not be kept for a year.
    response = client.get("/v1/factors", params={"dataset": "synth-a/grid", "version": "3.0.0"})
    assert response.json()["items"] == []
    assert "immutable" not in response.headers["cache-control"]
    pinned = client.get("/v1/factors", params={"dataset": "synth-a/grid", "version": "1.0.0"})
    assert pinned.headers["cache-control"] == PINNED_RELEASE
