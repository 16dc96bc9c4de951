"""Resolve and estimate from each worker's index (app/factors/resolve_index.py): seen from the
client, nothing may differ from answers the database gives afresh. A withdrawal, a new release
or a deprecation shows in the very next resolve, on every worker, with the index warm; and the
index ranks every fallback exactly as the probe query does.

Every record here is a synthetic test fixture, not a real emission factor.
"""

from __future__ import annotations

import gc
import itertools
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.principal import ANONYMOUS
from app.datasets.models import Dataset
from app.datasets.visibility import AsOf
from app.factors.resolve import Line, LineError, check_line_values, resolve_lines
from app.factors.resolve import resolved_item_payload as item_payload
from app.factors.resolve_index import ReleaseFactors, ResolveIndex, _settle
from app.main import create_app
from tests.auth_fixtures import TokenKit
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
    set_priority,
)

RESOLVE = "/v1/factors:resolve"
ESTIMATE = "/v1/estimate:batch"
PUBLISHER = "synth-index"
STAMP = datetime(2025, 1, 1, tzinfo=UTC)
LINES = [
    {"activity_id": "synthetic-power", "region": "CN-GD", "year": 2024, "unit": "MWh"},
    {"activity_id": "synthetic-power", "region": "CN", "year": 2023},
    {"activity_id": "synthetic-power", "region": "GLO", "year": 2030, "unit": "kg"},
    {"activity_id": "synthetic-heat", "region": "CN-SC", "year": 2022},
    # Pinned: still answered once withdrawn, saying so (`withdrawn_at`, its reason).
    {
        "activity_id": "synthetic-power",
        "region": "CN",
        "year": 2023,
        "dataset": f"{PUBLISHER}/grid",
        "version": "1.1.0",
    },
]


def power(code: str, **overrides: Any) -> Any:
    return factor_fields(code, activity_id="synthetic-power", **overrides)


@pytest.fixture
def catalogue(session: Session) -> None:
    """synth-index/grid (priority 10: CN 2022 in 1.0.0, CN 2023 too in 1.1.0) and
    synth-index/defaults (priority 50: GLO 2020, CN heat 2021)."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug=PUBLISHER)
    grid = set_priority(session, create_dataset(session, publisher=publisher, slug="grid"), 10)
    create_version(
        session,
        dataset=grid,
        version="1.0.0",
        published_at=STAMP,
        factors=[power("cn-2022", co2e=0.6)],
    )
    create_version(
        session,
        dataset=grid,
        version="1.1.0",
        factors=[power("cn-2022", co2e=0.6), power("cn-2023", reference_year=2023, co2e=0.55)],
    )
    defaults = create_dataset(session, publisher=publisher, slug="defaults")
    set_priority(session, defaults, 50)
    create_version(
        session,
        dataset=defaults,
        published_at=STAMP,
        factors=[
            power("glo-2020", region="GLO", reference_year=2020, co2e=0.8),
            factor_fields(
                "heat-2021", activity_id="synthetic-heat", unit="GJ", reference_year=2021
            ),
        ],
    )
    session.commit()


@pytest.fixture
def second_worker(app: FastAPI, settings: Settings) -> Iterator[TestClient]:
    """Another worker on the same database: an app of its own, with its own index."""
    other = create_app(settings)
    with TestClient(other) as client:
        yield client
    other.state.engine.dispose()


@pytest.fixture
def from_database(app: FastAPI, settings: Settings) -> Iterator[TestClient]:
    """A worker without an index (`EFDB_RESOLVE_INDEX_FACTORS=0`): the database answers."""
    plain = create_app(settings.model_copy(update={"resolve_index_factors": 0}))
    with TestClient(plain) as client:
        yield client
    plain.state.engine.dispose()


def _resolve(client: TestClient, lines: list[dict[str, Any]] = LINES) -> Any:
    answer = client.post(RESOLVE, json={"items": lines})
    assert answer.status_code == 200, answer.text
    return answer


def _chosen(answer: Any) -> list[str | None]:
    return [
        item["factor"]["id"] if "factor" in item else item["error"]["code"]
        for item in answer.json()["items"]
    ]


def _same_as_the_database(clients: list[TestClient], from_database: TestClient) -> None:
    fresh = _resolve(from_database)
    estimates = [{**line, "amount": 2.0, "unit": line.get("unit") or "kWh"} for line in LINES]
    fresh_estimate = from_database.post(ESTIMATE, json={"items": estimates})
    for client in clients:
        assert _resolve(client).content == fresh.content
        estimate = client.post(ESTIMATE, json={"items": estimates})
        assert estimate.content == fresh_estimate.content


def test_a_withdrawal_shows_in_the_very_next_resolve_on_every_worker(
    client: TestClient,
    second_worker: TestClient,
    from_database: TestClient,
    tokens: TokenKit,
    catalogue: None,
) -> None:
    for worker in (client, second_worker, client, second_worker):  # both indexes warm
        assert _chosen(_resolve(worker))[1] == f"{PUBLISHER}/grid/cn-2023@1.1.0"
    _same_as_the_database([client, second_worker], from_database)

    withdrawn = client.post(
        f"/v1/datasets/{PUBLISHER}/grid/versions/1.1.0/withdraw",
        headers=tokens.reviewer(),
        json={"reason": "synthetic: wrong value"},
    )
    assert withdrawn.status_code == 200, withdrawn.text

    # Back to the release before it, on the worker that withdrew and on the other one.
    for worker in (second_worker, client):
        answer = _resolve(worker)
        assert _chosen(answer)[:2] == [f"{PUBLISHER}/grid/cn-2022@1.0.0"] * 2
        pinned = answer.json()["items"][4]["factor"]
        assert pinned["id"] == f"{PUBLISHER}/grid/cn-2023@1.1.0"
        assert pinned["version_status"] == "withdrawn"
        assert pinned["withdrawn_reason"] == "synthetic: wrong value"
    _same_as_the_database([client, second_worker], from_database)


def test_a_new_release_shows_in_the_very_next_resolve_on_every_worker(
    client: TestClient,
    second_worker: TestClient,
    from_database: TestClient,
    session: Session,
    catalogue: None,
) -> None:
    for worker in (client, second_worker, client):
        assert _chosen(_resolve(worker))[0] == f"{PUBLISHER}/grid/cn-2023@1.1.0"
    grid = session.query(Dataset).filter_by(slug="grid").one()
    create_version(
        session,
        dataset=grid,
        version="1.2.0",
        factors=[
            power("cn-2023", reference_year=2023, co2e=0.5),
            power("gd-2024", region="CN-GD", reference_year=2024, unit="MWh", co2e=500.0),
        ],
    )
    session.commit()

    for worker in (second_worker, client):
        answer = _resolve(worker).json()["items"]
        assert answer[0]["factor"]["id"] == f"{PUBLISHER}/grid/gd-2024@1.2.0"
        assert answer[0]["match"]["type"] == "exact"
        assert answer[1]["factor"]["id"] == f"{PUBLISHER}/grid/cn-2023@1.2.0"
        assert answer[1]["factor"]["co2e"] == 0.5
    _same_as_the_database([client, second_worker], from_database)


def test_a_deprecation_shows_in_the_very_next_resolve_on_every_worker(
    client: TestClient,
    second_worker: TestClient,
    from_database: TestClient,
    tokens: TokenKit,
    catalogue: None,
) -> None:
    for worker in (client, second_worker, client, second_worker):
        answer = _resolve(worker).json()["items"][1]
        assert answer["factor"]["dataset_status"] == "active"
        assert answer["match"]["deprecated"] is None

    deprecated = client.post(
        f"/v1/datasets/{PUBLISHER}/grid/deprecate",
        headers=tokens.reviewer(),
        json={"reason": "synthetic: replaced"},
    )
    assert deprecated.status_code == 200, deprecated.text

    # The other dataset's GLO factor now answers first, and the match says what it passed.
    for worker in (second_worker, client):
        answer = _resolve(worker).json()["items"][1]
        assert answer["factor"]["id"] == f"{PUBLISHER}/defaults/glo-2020@1.0.0"
        assert answer["match"]["deprecated"]["outcome"] == "passed_over"
        assert answer["match"]["deprecated"]["dataset"] == f"{PUBLISHER}/grid"
    _same_as_the_database([client, second_worker], from_database)


# --------------------------------------------------------------------------- the index's logic


@pytest.fixture
def fallbacks(session: Session) -> None:
    """Factors made to exercise every rule of the ranking: several releases and datasets at the
    same place and year, priorities, boundaries, units of the same and of other dimensions,
    year holes, several factors of one release and unit, a deprecated dataset and an older
    release for pinned and dated lines."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug=PUBLISHER)

    def dataset(slug: str, priority: int | None) -> Dataset:
        return set_priority(
            session, create_dataset(session, publisher=publisher, slug=slug), priority
        )

    national = dataset("national", 10)
    create_version(
        session,
        dataset=national,
        version="1.0.0",
        published_at=datetime(2024, 6, 1, tzinfo=UTC),
        factors=[power("cn-2019", reference_year=2019), power("cn-2021", reference_year=2021)],
    )
    create_version(
        session,
        dataset=national,
        version="1.1.0",
        published_at=datetime(2025, 3, 1, tzinfo=UTC),
        factors=[
            power("cn-2019", reference_year=2019, co2e=0.9),
            power("cn-2021-a", reference_year=2021, co2e=0.7),
            power("cn-2021-b", reference_year=2021, co2e=0.71),
            power("cn-2021-mwh", reference_year=2021, unit="MWh", co2e=700.0),
            power("cn-2021-comb", reference_year=2021, boundary="combustion", co2e=0.5),
            power("cn-2023-kg", reference_year=2023, unit="kg", co2e=2.0),
            factor_fields("heat-cn", activity_id="synthetic-heat", unit="GJ", co2e=70.0),
        ],
    )
    provincial = dataset("provincial", 20)
    create_version(
        session,
        dataset=provincial,
        published_at=datetime(2025, 1, 1, tzinfo=UTC),
        factors=[
            power("gd-2020", region="CN-GD", reference_year=2020, unit="MWh", co2e=600.0),
            power("gd-2022-kg", region="CN-GD", reference_year=2022, unit="t", co2e=3.0),
            power("cn-2021", reference_year=2021, co2e=0.72),
            power("cn-2019", reference_year=2019, co2e=0.95),
        ],
    )
    same_priority = dataset("same-priority", 20)
    create_version(
        session,
        dataset=same_priority,
        published_at=datetime(2025, 2, 1, tzinfo=UTC),
        factors=[power("gd-2020", region="CN-GD", reference_year=2020, co2e=0.61)],
    )
    unset = dataset("unset", None)
    create_version(
        session,
        dataset=unset,
        published_at=datetime(2025, 1, 1, tzinfo=UTC),
        factors=[
            power("glo-2015", region="GLO", reference_year=2015, co2e=1.1),
            power("glo-2022", region="GLO", reference_year=2022, boundary="combustion"),
            power("cn-2024", reference_year=2024, co2e=0.4),
        ],
    )
    old = dataset("old", 1)
    create_version(
        session,
        dataset=old,
        published_at=datetime(2023, 1, 1, tzinfo=UTC),
        factors=[
            power("sc-2018", region="CN-SC", reference_year=2018, co2e=0.3),
            power("cn-2022", reference_year=2022, co2e=0.35),
        ],
    )
    old.status = "deprecated"
    session.commit()


def _lines() -> list[Line]:
    """Every combination of place, year, unit, boundary and scope the fixture can tell apart."""
    scopes: list[dict[str, Any]] = [
        {},
        {"dataset": f"{PUBLISHER}/national"},
        {"dataset": f"{PUBLISHER}/national", "version": "1.0.0"},
        {"dataset": f"{PUBLISHER}/old"},
        {"as_of": AsOf.of_date(date(2024, 12, 31))},
    ]
    shapes = itertools.product(
        ("synthetic-power", "synthetic-heat", "synthetic-none"),
        ("CN-GD", "CN-SC", "CN", "GLO", "US", "XX"),
        (2014, 2016, 2019, 2020, 2021, 2022, 2023, 2025),
        (None, "kWh", "MWh", "kg", "GJ"),
        (None, "cradle-to-gate", "combustion"),
        scopes,
    )
    lines: list[Line] = []
    for activity, region, year, unit, boundary, scope in shapes:
        publisher, dataset = scope["dataset"].split("/") if "dataset" in scope else (None, None)
        line = check_line_values(
            len(lines),
            activity_id=activity,
            region=region,
            year=year,
            unit=unit,
            publisher=publisher,
            dataset=dataset,
            version=scope.get("version"),
            as_of=scope.get("as_of"),
            boundary=boundary,
        )
        assert isinstance(line, Line), line
        lines.append(line)
    return lines


def _payloads(answers: dict[int, Any]) -> bytes:
    return orjson.dumps(
        [
            {"error": answer.as_dict()} if isinstance(answer, LineError) else item_payload(answer)
            for _, answer in sorted(answers.items())
        ]
    )


@pytest.mark.parametrize("gwp", [None, "AR6"])
def test_the_index_ranks_every_fallback_as_the_probe_query_does(
    session: Session, fallbacks: None, gwp: str | None
) -> None:
    lines = _lines()
    from_database = resolve_lines(session, viewer=ANONYMOUS, lines=lines, gwp=gwp)
    index = ResolveIndex(max_factors=1000)
    for _ in range(2):  # read, then kept
        from_index = resolve_lines(session, viewer=ANONYMOUS, lines=lines, gwp=gwp, index=index)
        assert _payloads(from_index) == _payloads(from_database)
    assert index.held == 19  # the factors of every release drawn on (six)
    answered = [answer for answer in from_database.values() if not isinstance(answer, LineError)]
    outcomes = {answer.match["decided_by"] for answer in answered}
    # The fixture reaches every rule of the ranking (and passes over, and uses, the deprecated).
    assert outcomes >= {
        "only_candidate",
        "dataset_priority",
        "newest_published",
        "exact_unit",
        "factor_id",
    }
    assert {(answer.match["deprecated"] or {}).get("outcome") for answer in answered} == {
        None,
        "passed_over",
        "used",
    }


def test_a_few_ranking_rules_pinned_by_hand(session: Session, fallbacks: None) -> None:
    index = ResolveIndex(max_factors=1000)

    def chosen(**given: Any) -> tuple[str, str]:
        values: dict[str, Any] = {
            "activity_id": "synthetic-power",
            "unit": None,
            "publisher": None,
            "dataset": None,
            "version": None,
            "as_of": None,
            "boundary": None,
            **given,
        }
        line = check_line_values(0, **values)
        assert isinstance(line, Line)
        answer = resolve_lines(session, viewer=ANONYMOUS, lines=[line], gwp=None, index=index)[0]
        assert not isinstance(answer, LineError), answer
        return answer.factor["id"].split("/", 1)[1], answer.match["decided_by"]

    # The nearest region wins over a nearer year further up the chain (CN 2021, GLO 2022);
    # of two datasets of equal priority the newest release, even against the exact unit.
    assert chosen(region="CN-GD", year=2023, unit="kWh") == (
        "same-priority/gd-2020@1.0.0",
        "newest_published",
    )
    assert chosen(region="CN-GD", year=2023, unit="MWh") == (
        "same-priority/gd-2020@1.0.0",
        "newest_published",
    )
    # Same place and year: the priority first.
    assert chosen(region="CN", year=2019) == ("national/cn-2019@1.1.0", "dataset_priority")
    # Same release: the factor per exactly the requested unit.
    assert chosen(region="CN", year=2021, unit="MWh") == (
        "national/cn-2021-mwh@1.1.0",
        "exact_unit",
    )
    # Several factors of one release and unit (any boundary): the lowest id.
    assert chosen(region="CN", year=2021, dataset="national") == (
        "national/cn-2021-a@1.1.0",
        "factor_id",
    )
    # Only a factor of the requested unit's dimension answers.
    assert chosen(region="CN", year=2023, unit="kg") == (
        "national/cn-2023-kg@1.1.0",
        "only_candidate",
    )
    # The boundary asked for, up the chain to GLO.
    assert chosen(region="CN", year=2023, boundary="combustion") == (
        "national/cn-2021-comb@1.1.0",
        "only_candidate",
    )
    # … and back in years past another boundary's nearer factor (GLO 2022, combustion).
    assert chosen(region="GLO", year=2023, boundary="cradle-to-gate") == (
        "unset/glo-2015@1.0.0",
        "only_candidate",
    )


def test_releases_beyond_the_bound_are_let_go_and_answered_by_the_database(
    session: Session, fallbacks: None
) -> None:
    lines = _lines()
    expected = _payloads(resolve_lines(session, viewer=ANONYMOUS, lines=lines, gwp=None))
    # Room for no group of releases a call needs at once: every call asks the database.
    small = ResolveIndex(max_factors=4)
    for _ in range(2):
        answers = resolve_lines(session, viewer=ANONYMOUS, lines=lines, gwp=None, index=small)
        assert _payloads(answers) == expected
        assert small.held <= 4
    # Room for one dataset's lines at a time: the least recently used releases go.
    bounded = ResolveIndex(max_factors=8)
    for dataset in ("national", "provincial", "national", "unset"):
        scoped = [line for line in lines if line.dataset == dataset and line.version is None]
        answers = resolve_lines(session, viewer=ANONYMOUS, lines=scoped, gwp=None, index=bounded)
        assert _payloads(answers) == _payloads(
            resolve_lines(session, viewer=ANONYMOUS, lines=scoped, gwp=None)
        )
        assert 0 < bounded.held <= 8
    # An index of no size is no index.
    off = ResolveIndex(max_factors=0)
    answers = resolve_lines(session, viewer=ANONYMOUS, lines=lines, gwp=None, index=off)
    assert _payloads(answers) == expected
    assert off.held == 0


def test_a_release_being_read_holds_up_no_call_on_releases_already_held() -> None:
    """Reading a large release takes seconds; meanwhile calls whose releases are held answer
    (the dicts' lock is never held across the read). Releases here are empty stand-ins."""
    index = ResolveIndex(1_000)
    first, second, large = (1, None), (2, None), (3, None)
    reading, go_on = threading.Event(), threading.Event()

    def load(_session: Any, keys: list[Any]) -> dict[Any, ReleaseFactors]:
        if large in keys:
            reading.set()
            go_on.wait(30)
        return {key: ReleaseFactors(key) for key in keys}

    index._load = load  # type: ignore[method-assign, assignment]
    assert set(index.releases(None, [first, second]) or {}) == {1, 2}  # type: ignore[arg-type]
    reader = threading.Thread(target=index.releases, args=(None, [large]))
    reader.start()
    assert reading.wait(30)
    answered: dict[str, Any] = {}

    def resolve_on_held() -> None:
        found = index.releases(None, [first])  # type: ignore[arg-type]
        answered["releases"] = found
        answered["cells"] = index.cells((found[1],)) if found else None

    other = threading.Thread(target=resolve_on_held)
    other.start()
    other.join(10)
    stalled = other.is_alive()
    go_on.set()
    reader.join(30)
    other.join(30)
    assert not stalled, "a call on a held release waited for another release's read"
    assert set(answered["releases"]) == {1}
    assert answered["cells"] == {}
    assert set(index.releases(None, [large]) or {}) == {3}  # type: ignore[arg-type]


class _Cyclic:
    me: _Cyclic


def test_what_the_index_freezes_leaves_no_garbage_cycle_behind() -> None:
    """The index takes its objects out of the collector's reach (`gc.freeze`); a cycle that
    was already garbage must be freed first, or it would never be."""
    gc.disable()  # so that no collection frees the cycle before the index settles
    try:
        cycle = _Cyclic()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
        _settle()
        assert alive() is None
    finally:
        gc.enable()
