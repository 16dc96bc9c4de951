"""Reference data as cited data (contract §11): locations and grid regions, GWP100 values,
units and conversion properties; loaded from `seed_data/reference/`, versioned and audited,
visible through the API, and what resolution, estimates and validation reason with."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from app.core.db import make_engine, make_sessionmaker
from app.core.migrations import alembic_config, upgrade_to_head
from app.core.models import AuditEvent
from app.reference.loader import REFERENCE_DIR, load_reference_data, reference_versions
from app.reference.models import ConversionProperty, Location, ReferenceVersion
from tests.conftest import _postgres_database, run_efdb_in_process
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_factors_api import assert_problem

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def reload_reference(session: Session, table: str) -> None:
    """Put a reference table back as shipped after a test edited it (shared PostgreSQL)."""
    session.rollback()
    session.execute(delete(ReferenceVersion).where(ReferenceVersion.name == table))
    load_reference_data(session, audit=False)
    session.commit()


@contextlib.contextmanager
def edited_reference(session: Session, table: str, *edits: Executable) -> Iterator[None]:
    """The reference table `table` with `edits` committed for the block, then put back as
    shipped (`reload_reference`)."""
    for edit in edits:
        session.execute(edit)
    session.commit()
    try:
        yield
    finally:
        reload_reference(session, table)


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=60"
    return response.json()


# --- Locations ---------------------------------------------------------------------------------


def test_the_seven_regional_grids_are_groupings_of_china(client: TestClient) -> None:
    body = get(client, "/v1/locations", kind="grouping")
    grids = {item["code"]: item for item in body["items"]}
    assert set(grids) == {
        "CN-GRID-NORTH",
        "CN-GRID-NORTHEAST",
        "CN-GRID-EAST",
        "CN-GRID-CENTRAL",
        "CN-GRID-NORTHWEST",
        "CN-GRID-SOUTH",
        "CN-GRID-SOUTHWEST",
    }
    assert grids["CN-GRID-NORTH"]["name_zh"] == "华北区域电网"
    assert all(item["parent_code"] == "CN" for item in grids.values())
    assert all("电力二氧化碳排放因子" in item["source"] for item in grids.values())


def test_a_province_with_its_ancestors_and_grid(client: TestClient) -> None:
    beijing = get(client, "/v1/locations/CN-BJ")
    assert (beijing["kind"], beijing["parent_code"], beijing["name_zh"]) == (
        "subdivision",
        "CN",
        "北京市",
    )
    assert [a["code"] for a in beijing["ancestors"]] == ["CN", "GLO"]
    assert [g["code"] for g in beijing["groupings"]] == ["CN-GRID-NORTH"]
    assert beijing["groupings"][0]["confidence"].startswith("unverified")
    assert beijing["fallback_chain"] == ["CN-BJ", "CN-GRID-NORTH", "CN", "GLO"]
    assert "ISO 3166-2" in beijing["source"]
    assert "GB/T 2260" in beijing["source"]
    assert len(beijing["reference_version"]) == 64
    north = get(client, "/v1/locations/CN-GRID-NORTH")
    assert {m["code"] for m in north["members"]} >= {"CN-BJ", "CN-TJ", "CN-HE"}
    assert north["ancestors"][0]["code"] == "CN"
    china = get(client, "/v1/locations/CN")
    assert china["children"] >= 34 + 7  # provincial-level divisions and the grids


def test_chinese_names_where_pycountry_has_none_come_from_gb_t_2260(client: TestClient) -> None:
    ningxia = get(client, "/v1/locations/CN-NX")
    assert ningxia["name_zh"] == "宁夏回族自治区"
    assert "GB/T 2260" in ningxia["source"]
    assert "640000" in ningxia["locator"]


def test_location_search_and_pages(client: TestClient) -> None:
    found = get(client, "/v1/locations", q="广东")["items"]
    assert [item["code"] for item in found] == ["CN-GD"]
    # Case-insensitive in English: pycountry names CN-GD "Guangdong Sheng".
    assert [i["code"] for i in get(client, "/v1/locations", q="guangdong")["items"]] == ["CN-GD"]
    first = client.get("/v1/locations", params={"parent": "CN", "limit": 10})
    page = first.json()
    assert len(page["items"]) == 10
    assert first.headers["link"] == f'<{page["next"]}>; rel="next"'
    codes = [item["code"] for item in page["items"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        codes += [item["code"] for item in page["items"]]
    assert codes == sorted(codes)
    assert len(codes) == len(set(codes)) >= 41
    # A cursor is tied to its filters.
    cursor = first.json()["next"].split("cursor=")[1]
    assert_problem(client.get("/v1/locations", params={"cursor": cursor}), 422)


def test_location_errors_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/v1/locations/XK"), 404)
    assert_problem(client.get("/v1/locations", params={"kind": "planet"}), 422)
    assert_problem(client.get("/v1/locations", params={"country": "CN"}), 422)
    assert_problem(client.get("/v1/locations/CN-BJ", params={"lang": "zh"}), 422)


# --- Resolution walks the location data --------------------------------------------------------


@pytest.fixture
def grid_factors(session: Session) -> None:
    """Synthetic factors: one activity per level of Beijing's chain (grid, country, world)."""
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="grid")
    power = {"unit": "kWh", "reference_year": 2022}
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields("a-grid", activity_id="at-grid", region="CN-GRID-NORTH", **power),
            factor_fields("a-cn", activity_id="at-grid", region="CN", co2e=0.9, **power),
            factor_fields("b-cn", activity_id="at-country", region="CN", **power),
            factor_fields("b-glo", activity_id="at-country", region="GLO", **power),
            factor_fields("c-glo", activity_id="at-world", region="GLO", **power),
        ],
    )
    session.commit()


def resolve_one(client: TestClient, **item: Any) -> dict[str, Any]:
    response = client.post("/v1/factors:resolve", json={"items": [item]})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["items"][0]
    return answer


def steps(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["region"], s["relation"], s["outcome"]) for s in answer["match"]["region_steps"]]


def test_fallback_goes_province_grid_country_world(client: TestClient, grid_factors: None) -> None:
    line = {"region": "CN-BJ", "year": 2023}
    grid = resolve_one(client, activity_id="at-grid", **line)
    assert grid["factor"]["factor_code"] == "a-grid"
    assert (grid["match"]["region"], grid["match"]["region_distance"]) == ("CN-GRID-NORTH", 1)
    assert steps(grid) == [
        ("CN-BJ", "requested", "no_factor"),
        ("CN-GRID-NORTH", "member_of", "matched"),
    ]
    assert grid["match"]["region_steps"][1]["kind"] == "grouping"
    country = resolve_one(client, activity_id="at-country", **line)
    assert country["factor"]["factor_code"] == "b-cn"
    assert steps(country)[-1] == ("CN", "parent", "matched")
    world = resolve_one(client, activity_id="at-world", **line)
    assert world["factor"]["factor_code"] == "c-glo"
    assert steps(world) == [
        ("CN-BJ", "requested", "no_factor"),
        ("CN-GRID-NORTH", "member_of", "no_factor"),
        ("CN", "parent", "no_factor"),
        ("GLO", "parent", "matched"),
    ]
    assert world["match"]["region_chain"] == ["CN-BJ", "CN-GRID-NORTH", "CN", "GLO"]


def test_a_province_of_another_grid_skips_it(client: TestClient, grid_factors: None) -> None:
    # Guangdong is in the South grid: the North grid's factor does not answer for it.
    answer = resolve_one(client, activity_id="at-grid", region="CN-GD", year=2023)
    assert answer["factor"]["factor_code"] == "a-cn"
    assert steps(answer)[1] == ("CN-GRID-SOUTH", "member_of", "no_factor")


def test_a_grid_asked_for_directly(client: TestClient, grid_factors: None) -> None:
    answer = resolve_one(client, activity_id="at-grid", region="CN-GRID-NORTH", year=2022)
    assert answer["match"]["type"] == "exact"
    assert answer["match"]["region_chain"] == ["CN-GRID-NORTH", "CN", "GLO"]


# --- Units and conversion properties -----------------------------------------------------------


def test_units_list_dimension_and_canonical_spelling(client: TestClient) -> None:
    body = get(client, "/v1/units")
    units = {item["unit"]: item for item in body["items"]}
    assert {"kWh", "MWh", "TJ", "kg", "t", "L", "m3", "t*km", "piece"} <= set(units)
    assert (units["MWh"]["dimension"], units["MWh"]["base"]) == (
        "energy",
        {"unit": "kWh", "amount": 1000.0},
    )
    assert units["t"]["dimension"] == "mass"
    assert units["kWh"]["pint"] == "kilowatt_hour"
    assert body["engine"].startswith("pint ")
    # A unit whose size a document fixes names it; SI units need none.
    assert units["kgce"]["base"] == {"unit": "kWh", "amount": 8.141}  # 29.3076 MJ / 3.6
    assert "GB/T 2589-2020" in units["kgce"]["definition"]
    assert units["UK_gallon"]["base"]["amount"] == 4.54609
    assert units["kWh"]["definition"] is None


def test_conversion_properties_are_cited_ncvs(client: TestClient) -> None:
    body = get(client, "/v1/conversion-properties")
    props = {item["code"]: item for item in body["items"]}
    # The NCVs of the 11 fuels of IPCC 2006 Vol. 2 Table 2.2 in the seed, and the DESNZ 2025
    # fuel properties (tests/test_fuel_properties.py).
    assert len([code for code in props if code.startswith("ncv/")]) == 11
    assert len([code for code in props if code.startswith("desnz-2025/")]) == 73
    coal = props["ncv/other-bituminous-coal"]
    # IPCC 2006 Vol. 2 Ch. 1 Table 1.2 (p. 1.18): other bituminous coal 25.8 TJ/Gg (19.9–30.5).
    assert (coal["value"], coal["unit"], coal["low"], coal["high"]) == (25.8, "TJ/Gg", 19.9, 30.5)
    assert "Table 1.2" in coal["locator"]
    assert "1.18" in coal["locator"]
    assert all(item["source"] and item["locator"] for item in body["items"])
    only = get(
        client,
        "/v1/conversion-properties",
        activity_id="lignite-stationary-combustion-energy-industries",
    )
    assert [item["code"] for item in only["items"]] == ["ncv/lignite"]


COAL = "other-bituminous-coal-stationary-combustion-energy-industries"
# IPCC 2006 Vol. 2 Table 2.2 (p. 2.16), other bituminous coal: CO2 94 600, CH4 1, N2O 1.5 kg/TJ;
# the seed's co2e with AR5 GWP100 (CH4 28, N2O 265) = 94600 + 28 + 397.5 = 95025.5 kg/TJ.
# Table 1.2 (p. 1.18): NCV 25.8 TJ/Gg. 1000 t = 1 Gg → 25.8 TJ → 25.8 × 95025.5 kg.
COAL_TJ = 25.8
COAL_KG = 2451657.9  # 25.8 × 95025.5


def test_coal_in_tonnes_against_a_per_tj_factor(client: TestClient, seeded: None) -> None:
    response = client.post(
        "/v1/estimate",
        json={"activity_id": COAL, "region": "CN-SX", "year": 2024, "amount": 1000, "unit": "t"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["factor"]["unit"] == "TJ"
    assert body["co2e_kg"] == pytest.approx(COAL_KG, rel=1e-12)
    conversion = body["conversion"]
    assert conversion["property"] == "ncv/other-bituminous-coal"
    assert conversion["amount_in_factor_unit"] == pytest.approx(COAL_TJ, rel=1e-12)
    assert conversion["multiplier"] == pytest.approx(COAL_TJ / 1000, rel=1e-12)
    (used,) = conversion["properties"]
    assert (used["value"], used["unit"], used["applied"]) == (25.8, "TJ/Gg", "multiplied")
    assert "Table 1.2" in used["locator"]
    # Gases scale the same way: CO2 25.8 × 94 600 kg.
    assert body["gases_kg"]["co2"] == pytest.approx(25.8 * 94600, rel=1e-12)
    assert body["match"]["unit"]["multiplier"] is None  # crossed dimensions via the property


def test_coal_by_factor_id_in_kg_and_another_gwp_set(client: TestClient, seeded: None) -> None:
    response = client.post(
        "/v1/estimate",
        params={"gwp": "AR6"},
        json={
            "factor": "ipcc-tfi/ipcc-2006-stationary-combustion/other-bituminous-coal",
            "amount": 2000,
            "unit": "kg",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # 2000 kg = 2 t → 0.0516 TJ; coal combustion's methane is fossil, so AR6 co2e
    # 94600 + 29.8 + 273 × 1.5 = 95039.3 kg/TJ (CH4-fossil, Table 7.15; N2O, Table 7.SM.7).
    assert body["co2e_kg"] == pytest.approx(0.0516 * 95039.3, rel=1e-12)
    assert body["conversion"]["property"] == "ncv/other-bituminous-coal"
    assert "7.SM.7" in body["gwp"]["source"]
    assert {entry["gas"] for entry in body["gwp"]["entries"]} == {
        "CO2",
        "CH4",
        "CH4-fossil",
        "CH4-non-fossil",
        "N2O",
    }


def test_no_property_no_conversion(client: TestClient, seeded: None) -> None:
    response = client.post(
        "/v1/estimate",
        json={
            "activity_id": "electricity-grid-mix",
            "region": "CN",
            "year": 2023,
            "amount": 5,
            "unit": "t",
        },
    )
    assert response.status_code == 422, response.text
    assert "conversion-properties" in response.json()["detail"]


# --- Versioned and audited ---------------------------------------------------------------------


def test_loaded_versions_name_the_files(client: TestClient) -> None:
    versions, digests = reference_versions()
    body = get(client, "/v1/reference")
    loaded = {item["name"]: item for item in body["items"]}
    assert {name: item["sha256"] for name, item in loaded.items()} == versions
    gwp_file = (REFERENCE_DIR / "gwp100.csv").read_bytes()
    assert loaded["gwp"]["files"] == {"gwp100.csv": hashlib.sha256(gwp_file).hexdigest()}
    assert digests["gwp100.csv"] == hashlib.sha256(gwp_file).hexdigest()


@pytest.fixture
def stale_properties(session: Session) -> Any:
    """The conversion properties edited in the database and their version forgotten."""
    with edited_reference(
        session,
        "conversion_properties",
        update(ConversionProperty).values(value=1.0),
        delete(ReferenceVersion).where(ReferenceVersion.name == "conversion_properties"),
    ):
        yield


def events(session: Session) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "reference.loaded")))


def test_a_change_is_loaded_and_audited_once(session: Session, stale_properties: None) -> None:
    assert events(session) == []
    result = load_reference_data(session)
    session.commit()
    assert set(result.changed) == {"conversion_properties"}
    (event,) = events(session)
    file_sha = hashlib.sha256((REFERENCE_DIR / "conversion_properties.csv").read_bytes())
    payload = event.payload["conversion_properties"]
    assert payload["files"] == {
        "seed_data/reference/conversion_properties.csv": file_sha.hexdigest()
    }
    assert payload["previous_version"] is None
    assert payload["rows"] == 11 + 73  # IPCC NCVs and DESNZ fuel properties
    values = set(session.scalars(select(ConversionProperty.value)))
    assert 25.8 in values
    assert 1.0 not in values
    # Nothing changed since: no new event, no write.
    assert load_reference_data(session).changed == {}
    session.commit()
    assert len(events(session)) == 1


def test_loading_twice_changes_nothing(session: Session) -> None:
    count = session.scalar(select(func.count()).select_from(Location))
    assert load_reference_data(session).changed == {}
    assert session.scalar(select(func.count()).select_from(Location)) == count
    assert events(session) == []


def test_efdb_db_upgrade_loads_and_audits_once(tmp_path: Path) -> None:
    """As an operator runs it, on a new SQLite database: the first upgrade loads the reference
    tables and records one audit event; the second changes nothing."""
    env = {"EFDB_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}

    def efdb(*args: str) -> str:
        done = run_efdb_in_process(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert efdb("db", "upgrade") == (
        "database at head; reference data updated: activities, conversion_properties, gwp, "
        "locations"
    )
    assert efdb("db", "upgrade") == "database at head"
    assert json.loads(efdb("audit", "verify")) == {
        "ok": True,
        "events": 1,
        "releases": 0,
        "checkpoints": 0,
    }


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        yield from _postgres_database("efdb_reference")


def test_loaded_reference_data_survives_a_downgrade_and_upgrade(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            load_reference_data(session, audit=False)
        command.downgrade(alembic_config(fresh_url), "20261125_0004")
        with make_sessionmaker(engine)() as session:
            kept = session.scalar(select(func.count()).select_from(Location))
        assert kept is not None
        assert kept > 5000
        upgrade_to_head(engine)
        with make_sessionmaker(engine).begin() as session:
            # The versions went with 0005's tables: everything is checked and reloaded.
            reloaded = load_reference_data(session, audit=False)
        assert set(reloaded.changed) == {"locations", "gwp", "conversion_properties", "activities"}
        with make_sessionmaker(engine)() as session:
            assert session.get(Location, "CN-GRID-NORTH") is not None
            beijing = session.get(Location, "CN-BJ")
            assert beijing is not None
            assert beijing.locator == "ISO 3166-2 CN-BJ; name_zh: code 110000"
    finally:
        engine.dispose()


@pytest.fixture
def statements(app: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        # Transaction control, and the request's time budget (PostgreSQL: `SET LOCAL`).
        control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET LOCAL")
        if not statement.startswith(control):
            seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", count)
    yield seen
    event.remove(app.state.engine, "before_cursor_execute", count)


def test_resolve_with_a_gwp_set_reads_the_table_once(
    client: TestClient, grid_factors: None, statements: list[str]
) -> None:
    def queries(lines: int) -> int:
        statements.clear()
        items = [{"activity_id": "at-world", "region": "CN-BJ", "year": 2023}] * lines
        response = client.post("/v1/factors:resolve", params={"gwp": "AR6"}, json={"items": items})
        assert response.status_code == 200, response.text
        return len(statements)

    assert queries(1) == queries(300) <= 5
    assert sum("GWP_VALUE" in statement for statement in statements) == 1


# --- No reference figure in code ---------------------------------------------------------------


def _reference_numbers() -> set[float]:
    numbers: set[float] = set()
    with (REFERENCE_DIR / "gwp100.csv").open(encoding="utf-8") as handle:
        numbers |= {float(row["value"]) for row in csv.DictReader(handle)}
    with (REFERENCE_DIR / "conversion_properties.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            numbers |= {float(row[name]) for name in ("value", "low", "high") if row[name]}
    return numbers


def _literals(path: Path) -> list[tuple[int, str]]:
    """Every number written in a module's code (not in its comments or strings)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.NUMBER]


# Modules that do GWP or unit arithmetic: no reference number at all may appear in them.
ARITHMETIC = [
    "app/factors/validation.py",
    "app/factors/estimate.py",
    "app/factors/resolve.py",
    *sorted(
        str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "app/reference").glob("*.py")
    ),
]
# Structural numbers that happen to equal a reference value (GWP of CO2 is 1 by definition).
STRUCTURAL = {0.0, 1.0}


def test_the_reference_figures_are_real() -> None:
    numbers = _reference_numbers()
    # Spot checks against the sources, so that the scan below scans for the right things.
    assert {27.9, 29.8, 27.0, 273.0, 265.0, 298.0, 25.8, 43.0, 48.0} <= numbers


def test_no_gwp_or_ncv_literal_in_code() -> None:
    numbers = _reference_numbers() - STRUCTURAL
    found = []
    for relative in ARITHMETIC:
        for line, text in _literals(PROJECT_ROOT / relative):
            value = float(text.replace("_", "")) if re.fullmatch(r"[0-9_.eE+-]+", text) else None
            if value in numbers:
                found.append(f"{relative}:{line}: {text}")
    # Everywhere else in app/: no non-integer reference value (27.9, 25.8, …) and no
    # reference integer of three digits or more (298, 265, 22800, …).
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        relative = str(path.relative_to(PROJECT_ROOT))
        for line, text in _literals(path):
            if not re.fullmatch(r"[0-9_.eE+-]+", text):
                continue
            value = float(text.replace("_", ""))
            if value in numbers and (not value.is_integer() or value >= 100):
                found.append(f"{relative}:{line}: {text}")
    assert sorted(set(found)) == []
