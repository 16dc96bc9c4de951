"""Facet counts read from the counts kept at publish equal those of grouping the factors.

Whole releases and searches with one filter on a region, year, category, unit or boundary
add up `release_facet_count` / `release_facet_pair_count` rows (app/factors/facets.py); every
other search groups its own rows. On random filters (seeded, so a failure replays), over the
real seed data plus a synthetic history (a superseded release, a withdrawn one, a registered
dataset, nested and missing categories), both ways give the same numbers, for the anonymous
reader and for a client with `factors:read`, on both databases.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.db import make_sessionmaker
from app.core.principal import ANONYMOUS, Viewer
from app.datasets.generation import catalog_generation
from app.datasets.models import Dataset, Publisher
from app.datasets.version_models import DatasetVersion
from app.datasets.visibility import parse_as_of
from app.factors import facets
from app.factors.models import Factor
from app.factors.page_cache import SearchPageCache
from app.factors.service import FactorFilters
from app.publishing.workflow import withdraw
from tests.factories import create_dataset, create_publisher, create_version, factor_fields

EXAMPLES = 60
CATEGORIES = ("synthetic/a", "synthetic/a/x", "synthetic/b", "Synthetic/A", None)
REGIONS = ("CN", "CN-GD", "GLO", "CN-BJ")
UNITS = ("kWh", "MJ", "kg")
BOUNDARIES = ("cradle-to-gate", "cradle-to-grave")
READER = Viewer(scopes=frozenset({"factors:read"}))


def _rows(prefix: str, count: int, shift: int) -> list[Any]:
    return [
        factor_fields(
            f"{prefix}-{i:03d}",
            activity_id=f"synthetic-facet-{(i + shift) % 5}",
            category=CATEGORIES[(i + shift) % len(CATEGORIES)],
            region=REGIONS[(i * 3 + shift) % len(REGIONS)],
            reference_year=2018 + (i + shift) % 4,
            unit=UNITS[(i + 2 * shift) % len(UNITS)],
            boundary=BOUNDARIES[(i // 2 + shift) % len(BOUNDARIES)],
        )
        for i in range(count)
    ]


def _history(session: Session) -> DatasetVersion:
    """A synthetic publisher's releases: 1.0.0 (2024, superseded by 1.1.0 in 2025), a
    registered dataset, and a dataset whose only release is withdrawn. Returns 1.1.0."""
    publisher = create_publisher(session, slug="synthetic-facets")
    history = create_dataset(session, publisher=publisher, slug="facet-history")
    create_version(
        session,
        dataset=history,
        factors=_rows("h", 40, 0),
        published_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    current = create_version(
        session,
        dataset=history,
        factors=_rows("h", 45, 1),
        version="1.1.0",
        published_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    registered = create_dataset(
        session, publisher=publisher, slug="facet-registered", access="registered"
    )
    create_version(session, dataset=registered, factors=_rows("r", 30, 2))
    gone = create_dataset(session, publisher=publisher, slug="facet-withdrawn")
    create_version(
        session,
        dataset=gone,
        factors=_rows("w", 20, 3),
        status="withdrawn",
        withdrawn_at=datetime(2025, 6, 1, tzinfo=UTC),
    )
    return current


def _pools(session: Session) -> dict[str, list[Any]]:
    """Values each filter is drawn from: those the factors hold, a few they do not, and
    category prefixes (with a trailing slash and in another case too)."""

    def distinct(column: Any) -> list[Any]:
        return sorted(v for v in session.execute(select(column).distinct()).scalars() if v)

    categories = distinct(Factor.category)
    prefixes = {path.rsplit("/", 1)[0] for path in categories if "/" in path}
    return {
        "region": [*distinct(Factor.region), "XX-NONE"],
        "year": [*distinct(Factor.reference_year), 1990],
        "category": [*categories, *sorted(prefixes), "synthetic/", "SYNTHETIC", "nowhere"],
        "unit": [*distinct(Factor.unit), "t*km"],
        "boundary": [*distinct(Factor.boundary), "gate-to-gate"],
        "datasets": [
            tuple(row)
            for row in session.execute(
                select(Publisher.slug, Dataset.slug).join(
                    Publisher, Publisher.id == Dataset.publisher_id
                )
            )
        ],
        "license_id": [*distinct(Dataset.license_id), "no-such-licence"],
    }


def _random_filters(rng: random.Random, pools: dict[str, list[Any]]) -> FactorFilters:
    chosen: dict[str, Any] = {}
    if rng.random() < 0.85:
        name = rng.choice(facets.PAIR_FILTERS)
        chosen[name] = rng.choice(pools[name])
    roll = rng.random()
    if roll < 0.25:
        chosen["publisher"] = rng.choice(pools["datasets"])[0]
    elif roll < 0.45:
        chosen["publisher"], chosen["dataset"] = rng.choice(pools["datasets"])
        if rng.random() < 0.3:
            chosen["version"] = rng.choice(["1.0.0", "1.1.0"])
    if rng.random() < 0.2:
        chosen["license_id"] = rng.choice(pools["license_id"])
    if "version" not in chosen and rng.random() < 0.25:
        chosen["as_of"] = parse_as_of(rng.choice(["2024-06-01", "2025-03-01", "2000-01-01"]))
    return FactorFilters(**chosen)


def test_stored_counts_equal_grouping_on_random_filters(db: Engine, seeded: None) -> None:
    factory = make_sessionmaker(db)
    with factory.begin() as session:
        _history(session)
    rng = random.Random(16)
    stored_answers = 0
    with factory() as session:
        pools = _pools(session)
        for _ in range(EXAMPLES):
            filters = _random_filters(rng, pools)
            assert facets.stored_counts_answer(filters)
            viewer = rng.choice([ANONYMOUS, READER])
            stored = facets._release_grouped(session, viewer=viewer, filters=filters)
            grouped = facets._grouped_rows(session, viewer=viewer, filters=filters)
            assert stored == grouped, filters
            stored_answers += stored[facets.TOTAL][""] > 0
    # The draws find factors often enough to compare real counts, not only empty answers.
    assert stored_answers >= EXAMPLES // 3


def test_facets_follow_a_withdrawal_and_the_release_it_restores(
    db: Engine, client: TestClient
) -> None:
    """Counts are per release and the releases a reader sees are chosen at query time: a
    withdrawn release's factors leave the facets at once, and the release it had superseded
    counts again."""
    factory = make_sessionmaker(db)
    with factory.begin() as session:
        current = _history(session)
        current_id, dataset_id = current.id, current.dataset_id
    query = {"dataset": "synthetic-facets/facet-history", "region": "CN-GD"}
    before = client.get("/.json", params=query).json()
    with factory() as session:
        rows = session.execute(
            select(Factor.version_id, Factor.reference_year).where(
                Factor.dataset_id == dataset_id, Factor.region == "CN-GD"
            )
        ).all()
    newest = [year for version_id, year in rows if version_id == current_id]
    assert before["total"] == len(newest) > 0
    with factory.begin() as session:
        version = session.get(DatasetVersion, current_id)
        assert version is not None
        withdraw(
            session,
            version=version,
            label="synthetic-facets/facet-history 1.1.0",
            reviewer="synthetic-reviewer",
            reviewer_publisher=None,
            owner_publisher="synthetic-facets",
            reason="Synthetic withdrawal for a test.",
        )
    after = client.get("/.json", params=query).json()
    older = [year for version_id, year in rows if version_id != current_id]
    assert after["total"] == len(older) > 0
    years = {value["value"]: value["count"] for value in after["facets"]["year"]}
    assert years == {str(year): older.count(year) for year in set(older)}


def _generation(db: Engine) -> int | None:
    with make_sessionmaker(db)() as session:
        return catalog_generation(session)


def test_the_catalogue_generation_moves_with_what_readers_see(db: Engine) -> None:
    """Publishing, withdrawing and editing a dataset raise it; a draft upload does not."""
    factory = make_sessionmaker(db)
    with factory.begin() as session:
        publisher = create_publisher(session, slug="synthetic-generation")
        dataset = create_dataset(session, publisher=publisher, slug="generation-data")
    start = _generation(db) or 0
    with factory.begin() as session:
        dataset = session.get_one(Dataset, dataset.id)
        create_version(session, dataset=dataset, factors=_rows("d", 3, 0), status="draft")
    assert (_generation(db) or 0) == start
    with factory.begin() as session:
        dataset = session.get_one(Dataset, dataset.id)
        released = create_version(
            session, dataset=dataset, factors=_rows("p", 3, 0), version="2.0.0"
        )
    published = _generation(db)
    assert published is not None
    assert published > start
    with factory.begin() as session:
        session.get_one(Dataset, dataset.id).title_en = "Synthetic title, edited"
    edited = _generation(db)
    assert edited is not None
    assert edited > published
    with factory.begin() as session:
        withdraw(
            session,
            version=session.get_one(DatasetVersion, released.id),
            label="synthetic-generation/generation-data 2.0.0",
            reviewer="synthetic-reviewer",
            reviewer_publisher=None,
            owner_publisher="synthetic-generation",
            reason="Synthetic withdrawal for a test.",
        )
    withdrawn = _generation(db)
    assert withdrawn is not None
    assert withdrawn > edited


def test_a_kept_search_page_is_the_same_answer_until_a_withdrawal(
    db: Engine, client: TestClient
) -> None:
    """The anonymous search page served from the worker's cache has the bytes, ETag and Link
    of the page made afresh; the very next request after a withdrawal answers the new state."""
    factory = make_sessionmaker(db)
    with factory.begin() as session:
        current_id = _history(session).id
    query = {"dataset": "synthetic-facets/facet-history", "limit": 7}
    first = client.get("/v1/factors", params=query)
    kept = client.get("/v1/factors", params=query)
    assert first.status_code == kept.status_code == 200
    assert kept.content == first.content
    assert {h: kept.headers[h] for h in ("etag", "link", "cache-control")} == {
        h: first.headers[h] for h in ("etag", "link", "cache-control")
    }
    assert (
        client.get(
            "/v1/factors", params=query, headers={"If-None-Match": first.headers["etag"]}
        ).status_code
        == 304
    )
    # The same page made without the cache.
    client.app.state.search_page_cache = SearchPageCache(0)  # type: ignore[attr-defined]
    fresh = client.get("/v1/factors", params=query)
    assert fresh.content == first.content
    assert fresh.headers["etag"] == first.headers["etag"]
    client.app.state.search_page_cache = SearchPageCache(16)  # type: ignore[attr-defined]
    assert {
        item["version"] for item in client.get("/v1/factors", params=query).json()["items"]
    } == {"1.1.0"}
    with factory.begin() as session:
        withdraw(
            session,
            version=session.get_one(DatasetVersion, current_id),
            label="synthetic-facets/facet-history 1.1.0",
            reviewer="synthetic-reviewer",
            reviewer_publisher=None,
            owner_publisher="synthetic-facets",
            reason="Synthetic withdrawal for a test.",
        )
    after = client.get("/v1/factors", params=query).json()["items"]
    assert {item["version"] for item in after} == {"1.0.0"}
    assert {item["version_status"] for item in after} == {"published"}


def test_both_ways_of_summing_a_releases_combinations_agree() -> None:
    """Small releases' counts are summed in Python, large ones' by Arrow: on the same random
    combinations (nulls included) both give the same sums for every facet and pair."""
    rng = random.Random(20261208)
    names = list(facets.FACTOR_FACETS)
    values = {name: [f"{name}-{i}" for i in range(5)] + [None] for name in names}
    rows = 3 * facets._ARROW_SUMS_FROM
    columns: dict[str, list[Any]] = {
        name: [rng.choice(values[name]) for _ in range(rows)] for name in names
    }
    columns["rows"] = [rng.randint(1, 50) for _ in range(rows)]
    combinations = pa.table(columns)
    keys_list = [[name] for name in names] + [
        [first, second] for first in facets.PAIR_FILTERS for second in names if second != first
    ]
    for keys in keys_list:
        in_python = sorted(facets._sums_in_python(combinations, keys))
        in_arrow = sorted(facets._sums_in_arrow(combinations, keys))
        assert in_python == in_arrow, keys
        assert all(None not in row[:-1] for row in in_python)
