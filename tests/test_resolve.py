"""`POST /v1/factors:resolve`: each fallback path, priorities, units, mixed batches, queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.auth.viewer import get_viewer
from app.core.principal import Viewer
from app.datasets.models import Dataset
from tests.factories import (
    SYNTHETIC_LICENSE_ID,
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
    set_priority,
)
from tests.test_factors_api import assert_factor_shape, assert_problem

RESOLVE = "/v1/factors:resolve"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def resolve(client: TestClient, *items: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    response = client.post(RESOLVE, json={"items": list(items)}, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == len(items)
    assert body["resolved"] + body["failed"] == len(items)
    answers: list[dict[str, Any]] = body["items"]
    for answer in answers:
        if "factor" in answer:
            assert_factor_shape(answer["factor"])
    return answers


def one(client: TestClient, **item: Any) -> dict[str, Any]:
    (answer,) = resolve(client, item)
    return answer


def chosen(answer: dict[str, Any]) -> str:
    assert "factor" in answer, answer
    return str(answer["factor"]["id"])


def grid(code: str, **fields: Any) -> Any:
    return factor_fields(code, **{"activity_id": "grid-power", "unit": "kWh", **fields})


@pytest.fixture
def catalogue(session: Session) -> None:
    """Synthetic grid-power factors in four datasets of different priority, plus gas by unit.

    national (priority 10): CN 2020 0.60, CN 2022 0.55, GLO 2019 0.70, GB-NIR 2022 0.30
    provincial (20): CN-GD 2021 0.45 per MWh-scale (declared per MWh)
    industry (50): CN 2022 0.58
    unranked (no priority): CN 2022 0.50
    heat-a / heat-b (both 30): heat-supply CN 2023, published 2025-01-01 and 2025-06-01
    gas: gas-burn GLO 2020 per GJ (energy), CN 2020 per m3 (volume)
    """
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")

    def dataset(slug: str, priority: int | None, factors: list[Any], published: str) -> None:
        created = create_dataset(session, publisher=publisher, slug=slug)
        set_priority(session, created, priority)
        create_version(session, dataset=created, factors=factors, published_at=at(published))

    dataset(
        "national",
        10,
        [
            grid("n-cn-2020", region="CN", reference_year=2020, co2e=0.60),
            grid("n-cn-2022", region="CN", reference_year=2022, co2e=0.55),
            grid("n-glo-2019", region="GLO", reference_year=2019, co2e=0.70),
            grid("n-nir-2022", region="GB-NIR", reference_year=2022, co2e=0.30),
        ],
        "2024-01-01",
    )
    dataset(
        "provincial",
        20,
        [grid("p-gd-2021", region="CN-GD", reference_year=2021, co2e=450.0, unit="MWh")],
        "2024-01-02",
    )
    dataset(
        "industry",
        50,
        [grid("i-cn-2022", region="CN", reference_year=2022, co2e=0.58)],
        "2024-01-03",
    )
    dataset(
        "unranked",
        None,
        [grid("u-cn-2022", region="CN", reference_year=2022, co2e=0.50)],
        "2024-01-04",
    )
    heat = {"activity_id": "heat-supply", "unit": "GJ", "region": "CN", "reference_year": 2023}
    dataset("heat-a", 30, [factor_fields("ha", co2e=80.0, **heat)], "2025-01-01")
    dataset("heat-b", 30, [factor_fields("hb", co2e=90.0, **heat)], "2025-06-01")
    dataset(
        "gas",
        40,
        [
            factor_fields("gas-glo-gj", activity_id="gas-burn", unit="GJ", region="GLO", co2e=56.1),
            factor_fields("gas-cn-m3", activity_id="gas-burn", unit="m3", region="CN", co2e=2.1),
        ],
        "2024-02-01",
    )
    session.commit()


# --- Exact matches and preference among datasets ----------------------------------------------


def test_exact_match_prefers_the_national_reference_dataset(
    client: TestClient, catalogue: None
) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022)
    assert chosen(answer) == "synth/national/n-cn-2022@1.0.0"
    match = answer["match"]
    assert match["type"] == "exact"
    assert (match["region"], match["region_fallback"], match["region_distance"]) == ("CN", False, 0)
    assert (match["year"], match["year_fallback"], match["year_distance"]) == (2022, False, 0)
    assert match["dataset"] == "synth/national"
    assert match["dataset_priority"] == 10
    # industry (50) and unranked (no priority) answer CN 2022 too; priority decided.
    assert match["alternatives"] == 2
    assert match["decided_by"] == "dataset_priority"
    assert match["region_chain"] == ["CN", "GLO"]


def test_the_full_record_carries_its_licence(client: TestClient, catalogue: None) -> None:
    factor = one(client, activity_id="grid-power", region="CN", year=2022)["factor"]
    assert factor["license_id"] == SYNTHETIC_LICENSE_ID
    assert factor["attribution"]
    assert factor["co2e"] == 0.55
    assert factor["source_title"]


def test_unset_priority_sorts_last_but_a_pinned_dataset_wins(
    client: TestClient, catalogue: None
) -> None:
    pinned = one(client, activity_id="grid-power", region="CN", year=2022, dataset="synth/unranked")
    assert chosen(pinned) == "synth/unranked/u-cn-2022@1.0.0"
    assert pinned["match"]["decided_by"] == "only_candidate"
    by_publisher = one(
        client,
        activity_id="grid-power",
        region="CN",
        year=2022,
        dataset="industry",
        publisher="synth",
    )
    assert chosen(by_publisher) == "synth/industry/i-cn-2022@1.0.0"


def test_equal_priority_goes_to_the_newest_published(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="heat-supply", region="CN", year=2023)
    assert chosen(answer) == "synth/heat-b/hb@1.0.0"
    assert answer["match"]["decided_by"] == "newest_published"
    assert answer["match"]["alternatives"] == 1


# --- Region and year fallback -----------------------------------------------------------------


def test_subdivision_exact(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN-GD", year=2021)
    assert chosen(answer) == "synth/provincial/p-gd-2021@1.0.0"
    assert answer["match"]["type"] == "exact"
    # Guangdong is in the South China regional grid (seed_data/reference/location_members.csv).
    assert answer["match"]["region_chain"] == ["CN-GD", "CN-GRID-SOUTH", "CN", "GLO"]
    assert answer["match"]["region_steps"] == [
        {
            "region": "CN-GD",
            "kind": "subdivision",
            "relation": "requested",
            "of": None,
            "outcome": "matched",
        }
    ]


def test_year_fallback_to_the_nearest_earlier_year(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2021)
    assert chosen(answer) == "synth/national/n-cn-2020@1.0.0"
    match = answer["match"]
    assert (match["type"], match["year"], match["year_fallback"], match["year_distance"]) == (
        "fallback",
        2020,
        True,
        1,
    )
    far = one(client, activity_id="grid-power", region="CN", year=2030)
    assert chosen(far) == "synth/national/n-cn-2022@1.0.0"
    assert far["match"]["year_distance"] == 8


def test_the_subdivision_wins_over_a_nearer_year_in_the_country(
    client: TestClient, catalogue: None
) -> None:
    # CN-GD has 2021, CN has 2022: the region comes first, then the year.
    answer = one(client, activity_id="grid-power", region="CN-GD", year=2022)
    assert chosen(answer) == "synth/provincial/p-gd-2021@1.0.0"
    assert (answer["match"]["region_fallback"], answer["match"]["year_distance"]) == (False, 1)


def test_region_fallback_to_the_country(client: TestClient, catalogue: None) -> None:
    # CN-GD's only factor is 2021, after 2020: CN 2020 answers.
    answer = one(client, activity_id="grid-power", region="CN-GD", year=2020)
    assert chosen(answer) == "synth/national/n-cn-2020@1.0.0"
    match = answer["match"]
    assert (match["region"], match["requested_region"], match["region_distance"]) == (
        "CN",
        "CN-GD",
        2,
    )
    assert match["region_fallback"] is True
    assert [(s["region"], s["relation"], s["of"], s["outcome"]) for s in match["region_steps"]] == [
        ("CN-GD", "requested", None, "no_factor"),
        ("CN-GRID-SOUTH", "member_of", "CN-GD", "no_factor"),
        ("CN", "parent", "CN-GD", "matched"),
    ]
    assert (match["year_fallback"], match["year_distance"]) == (False, 0)


def test_region_fallback_to_global(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN-SC", year=2019)
    assert chosen(answer) == "synth/national/n-glo-2019@1.0.0"
    assert answer["match"]["region_chain"] == ["CN-SC", "CN-GRID-SOUTHWEST", "CN", "GLO"]
    assert answer["match"]["region_distance"] == 3
    other_country = one(client, activity_id="grid-power", region="FR", year=2024)
    assert chosen(other_country) == "synth/national/n-glo-2019@1.0.0"
    assert other_country["match"]["year_distance"] == 5


def test_the_hierarchy_is_the_location_table_not_the_code(
    client: TestClient, catalogue: None
) -> None:
    # ISO 3166-2 nests GB-ABC (Armagh City, Banbridge and Craigavon) in GB-NIR (Northern
    # Ireland); the code's spelling alone would jump straight to GB.
    answer = one(client, activity_id="grid-power", region="GB-ABC", year=2023)
    assert chosen(answer) == "synth/national/n-nir-2022@1.0.0"
    assert answer["match"]["region_chain"] == ["GB-ABC", "GB-NIR", "GB", "GLO"]
    assert answer["match"]["region_distance"] == 1


def test_a_region_missing_from_the_location_table_has_no_fallback(
    client: TestClient, catalogue: None
) -> None:
    # XK (Kosovo) is a user-assigned code, not in ISO 3166-1: exact matches only.
    answer = one(client, activity_id="grid-power", region="XK", year=2022)
    assert answer["error"]["code"] == "no_match"
    assert "not in the location table" in answer["error"]["detail"]


def test_no_factor_early_enough(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2018)
    assert answer["error"]["code"] == "no_match"
    assert "CN → GLO" in answer["error"]["detail"]
    assert "2018" in answer["error"]["detail"]


def test_boundary_filter(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022, boundary="combustion")
    assert answer["error"]["code"] == "no_match"
    assert "boundary combustion" in answer["error"]["detail"]
    found = one(client, activity_id="grid-power", region="CN", year=2022, boundary="cradle-to-gate")
    assert chosen(found) == "synth/national/n-cn-2022@1.0.0"


# --- Units --------------------------------------------------------------------------------------


def test_unit_of_the_same_dimension_is_converted(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022, unit="MWh")
    assert chosen(answer) == "synth/national/n-cn-2022@1.0.0"
    unit = answer["match"]["unit"]
    assert unit["requested"] == "MWh"
    assert unit["factor_unit"] == "kWh"
    assert unit["dimension"] == "energy"
    assert unit["converted"] is True
    assert unit["multiplier"] == 1000.0
    assert unit["co2e_per_requested_unit"] == pytest.approx(550.0)
    assert answer["factor"]["co2e"] == 0.55  # the record itself is as published
    same = one(client, activity_id="grid-power", region="CN-GD", year=2021, unit="kilowatt_hour")
    assert same["match"]["unit"]["multiplier"] == 0.001
    assert same["match"]["unit"]["co2e_per_requested_unit"] == pytest.approx(0.45)


def test_a_nearer_factor_in_another_dimension_is_passed_over(
    client: TestClient, catalogue: None
) -> None:
    answer = one(client, activity_id="gas-burn", region="CN", year=2022, unit="TJ")
    assert chosen(answer) == "synth/gas/gas-glo-gj@1.0.0"
    assert answer["match"]["unit"]["passed_over"] == {"region": "CN", "year": 2022, "unit": "m3"}
    assert answer["match"]["unit"]["co2e_per_requested_unit"] == pytest.approx(56100.0)
    volume = one(client, activity_id="gas-burn", region="CN", year=2022, unit="L")
    assert chosen(volume) == "synth/gas/gas-cn-m3@1.0.0"
    assert volume["match"]["unit"]["passed_over"] is None
    assert volume["match"]["unit"]["co2e_per_requested_unit"] == pytest.approx(0.0021)


def test_incompatible_unit_is_a_line_error(client: TestClient, catalogue: None) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022, unit="kg")
    error = answer["error"]
    assert error["code"] == "incompatible_unit"
    assert error["loc"] == ["unit"]
    assert "kWh" in error["detail"]
    assert "conversion property" in error["detail"]


@pytest.mark.parametrize(
    ("unit", "code"),
    [("kwhh", "unknown_unit"), ("kg/s", "unsupported_unit"), ("m**7", "unsupported_unit")],
)
def test_unusable_units_are_line_errors(
    client: TestClient, catalogue: None, unit: str, code: str
) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022, unit=unit)
    assert answer["error"]["code"] == code


# --- Mixed batches and request limits ---------------------------------------------------------


def test_mixed_good_and_bad_lines_answer_in_request_order(
    client: TestClient, catalogue: None
) -> None:
    lines: list[dict[str, Any]] = [
        {"activity_id": "grid-power", "region": "CN", "year": 2022},
        {"activity_id": "no-such-activity", "region": "CN", "year": 2022},
        {"activity_id": "grid-power", "region": "CN-GD", "year": 2021, "unit": "MWh"},
        {"activity_id": "grid-power", "region": "cn", "year": 2022},
        {"activity_id": "Grid Power", "region": "CN", "year": 2022},
        {"activity_id": "grid-power", "region": "CN", "year": 1800},
        {"activity_id": "grid-power", "region": "CN", "year": 2022, "unit": "t"},
        {"activity_id": "grid-power", "region": "CN", "year": 2022, "version": "1.0.0"},
        {"activity_id": "grid-power", "region": "CN", "year": 2022, "boundary": "orbit"},
        {"activity_id": "grid-power", "region": "CN", "year": 2021},
        {"activity_id": "grid-power", "region": "CN", "year": 2022},
    ]
    response = client.post(RESOLVE, json={"items": lines})
    assert response.status_code == 200, response.text
    body = response.json()
    outcome = [
        item["factor"]["factor_code"] if "factor" in item else item["error"]["code"]
        for item in body["items"]
    ]
    assert outcome == [
        "n-cn-2022",
        "no_match",
        "p-gd-2021",
        "invalid_region",
        "invalid_activity_id",
        "invalid_year",
        "incompatible_unit",
        "version_needs_dataset",
        "invalid_boundary",
        "n-cn-2020",
        "n-cn-2022",
    ]
    assert (body["resolved"], body["failed"]) == (4, 7)
    assert [rule.split(":")[0] for rule in body["ranking"]] == [
        "unit",
        "deprecated",
        "region",
        "year",
        "dataset_priority",
        "newest_published",
        "exact_unit",
        "factor_id",
    ]
    assert body["gwp"] is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"items": []}, "items"),
        ({"items": [{"activity_id": "grid-power", "region": "CN", "year": 2022}] * 1001}, "items"),
        ({"items": [{"activity_id": "grid-power", "region": "CN"}]}, "year"),
        ({"items": [{"activity_id": "grid-power", "region": "CN", "year": "soon"}]}, "year"),
        ({"items": [{"activity_id": "grid-power", "region": "CN", "year": 2022, "x": 1}]}, "x"),
        ({"lines": []}, "lines"),
    ],
)
def test_malformed_requests_are_problems(
    client: TestClient, catalogue: None, body: dict[str, Any], where: str
) -> None:
    problem = assert_problem(client.post(RESOLVE, json=body), 422)
    assert any(where in error["loc"] for error in problem["errors"]), problem


def test_unknown_query_parameter_is_refused(client: TestClient, catalogue: None) -> None:
    response = client.post(
        RESOLVE,
        json={"items": [{"activity_id": "grid-power", "region": "CN", "year": 2022}]},
        params={"gwp_set": "AR6"},
    )
    assert_problem(response, 422)


def test_a_thousand_lines_are_accepted(client: TestClient, catalogue: None) -> None:
    lines = [
        {"activity_id": "grid-power", "region": "CN-GD", "year": 2020 + n % 5} for n in range(1000)
    ]
    answers = resolve(client, *lines)
    assert all("factor" in answer for answer in answers)
    # 2020: CN-GD's factor is 2021, so CN's 2020 answers; 2021 on: CN-GD's own.
    assert [answer["match"]["region"] for answer in answers[:5]] == ["CN", *["CN-GD"] * 4]


# --- Versions, visibility and GWP ------------------------------------------------------------


@pytest.fixture
def releases(session: Session) -> None:
    """synth/grid 1.0.0 (0.5, published 2024-01-01) then 1.1.0 (0.6, published 2025-01-01)."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    create_version(
        session,
        dataset=dataset,
        version="1.0.0",
        factors=[grid("g", region="CN", co2e=0.5)],
        published_at=at("2024-01-01"),
    )
    create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        factors=[grid("g", region="CN", co2e=0.6)],
        published_at=at("2025-01-01"),
    )
    hidden = create_dataset(session, publisher=publisher, slug="members-only", access="registered")
    create_version(session, dataset=hidden, factors=[grid("h", region="CN-GD", co2e=0.4)])
    session.commit()


def test_latest_pinned_and_as_of(client: TestClient, releases: None) -> None:
    line = {"activity_id": "grid-power", "region": "CN", "year": 2022}
    latest, pinned, dated, before = resolve(
        client,
        line,
        {**line, "dataset": "synth/grid", "version": "1.0.0"},
        {**line, "as_of": "2024-06-30"},
        {**line, "as_of": "2023-12-31"},
    )
    assert chosen(latest) == "synth/grid/g@1.1.0"
    assert chosen(pinned) == "synth/grid/g@1.0.0"
    assert pinned["factor"]["version_status"] == "deprecated"
    assert chosen(dated) == "synth/grid/g@1.0.0"
    assert before["error"]["code"] == "no_match"
    assert "as published on 2023-12-31" in before["error"]["detail"]


def test_registered_datasets_need_the_read_scope_and_a_grant(
    app: FastAPI, client: TestClient, session: Session, releases: None
) -> None:
    line = {"activity_id": "grid-power", "region": "CN-GD", "year": 2022}
    assert chosen(one(client, **line)) == "synth/grid/g@1.1.0"
    hidden = session.execute(select(Dataset.id).where(Dataset.slug == "members-only")).scalar_one()
    app.dependency_overrides[get_viewer] = lambda: Viewer(
        client_id="reader", scopes=frozenset({"factors:read"})
    )
    try:
        assert chosen(one(client, **line)) == "synth/grid/g@1.1.0"  # no grant
    finally:
        app.dependency_overrides.pop(get_viewer)
    app.dependency_overrides[get_viewer] = lambda: Viewer(
        client_id="reader", scopes=frozenset({"factors:read"}), granted=frozenset({hidden})
    )
    try:
        assert chosen(one(client, **line)) == "synth/members-only/h@1.0.0"
    finally:
        app.dependency_overrides.pop(get_viewer)


def test_gwp_recomputes_the_chosen_factor(client: TestClient, session: Session) -> None:
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="fuel")
    gases = {"co2": 56100.0, "ch4": 1.0, "n2o": 0.1, "gwp_set": "AR5", "co2e": 56154.5}
    create_version(
        session,
        dataset=dataset,
        factors=[factor_fields("gas", activity_id="fuel-gas", unit="TJ", region="GLO", **gases)],
    )
    session.commit()
    response = client.post(
        RESOLVE,
        json={"items": [{"activity_id": "fuel-gas", "region": "CN-GD", "year": 2022}]},
        params={"gwp": "AR6"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    factor = body["items"][0]["factor"]
    assert factor["co2e"] == pytest.approx(56155.2)
    assert factor["gwp_set"] == "AR6"
    assert factor["gwp_conversion"]["status"] == "recomputed"
    assert factor["gwp_conversion"]["original_co2e"] == 56154.5
    assert body["gwp"]["requested"] == "AR6"
    assert "7.SM.7" in body["gwp"]["source"]


# --- Real seed data ----------------------------------------------------------------------------


def test_real_seed_guangdong_electricity_falls_back_to_the_national_factor(
    client: TestClient, seeded: None
) -> None:
    answer = one(client, activity_id="electricity-grid-mix", region="CN-GD", year=2024, unit="MWh")
    assert chosen(answer) == "mee-cn/cn-electricity-co2/national-average-2023@1.0.0"
    match = answer["match"]
    assert (match["region"], match["year"], match["year_distance"]) == ("CN", 2023, 1)
    assert match["dataset_priority"] == 10
    assert match["unit"]["co2e_per_requested_unit"] == pytest.approx(530.6)


def test_real_seed_ipcc_default_answers_any_country(client: TestClient, seeded: None) -> None:
    answer = one(
        client,
        activity_id="natural-gas-stationary-combustion-energy-industries",
        region="DE-BY",
        year=2020,
        unit="GJ",
    )
    assert chosen(answer) == "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas@1.0.0"
    assert answer["match"]["region_chain"] == ["DE-BY", "DE", "GLO"]
    assert answer["match"]["unit"]["co2e_per_requested_unit"] == pytest.approx(56.1545)


# --- A constant number of queries -------------------------------------------------------------


@pytest.fixture
def statements(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(app.state.engine, "before_cursor_execute", count)
    yield seen
    event.remove(app.state.engine, "before_cursor_execute", count)


def test_query_count_does_not_grow_with_the_batch(
    client: TestClient, catalogue: None, statements: list[str]
) -> None:
    def queries_for(count: int) -> int:
        lines = [
            {
                "activity_id": ("grid-power", "heat-supply", "gas-burn", "nothing")[n % 4],
                "region": ("CN-GD", "CN", "GB-ABC", "FR", "CN-SC")[n % 5],
                "year": 2026 - n % 12,
                **({"unit": ("MWh", "GJ", "kg")[n % 3]} if n % 2 else {}),
                **({"as_of": f"2025-0{1 + n % 6}-15"} if n % 7 == 0 else {}),
            }
            for n in range(count)
        ]
        statements.clear()
        resolve(client, *lines)
        return len(
            [
                s
                for s in statements
                if not s.lstrip()
                .upper()
                # Transaction control, and the request's time budget (PostgreSQL: SET LOCAL).
                .startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET LOCAL"))
            ]
        )

    single, many = queries_for(1), queries_for(500)
    assert single == many, (single, many)
    assert many <= 4
