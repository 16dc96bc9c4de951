"""Resolve follows successors: a deprecated dataset answers only for lack of anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.factors.resolve import _Release
from tests.auth_fixtures import TokenKit
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
    set_priority,
)
from tests.test_dataset_deprecation import _publish
from tests.test_publishing import DATASET_BODY, PUBLISHER
from tests.test_resolve import chosen, one

OLD, NEW = "synth/old-grid", "synth/new-grid"


def _release(name: str, *, priority: int | None, deprecated: bool, published: int) -> _Release:
    publisher, dataset = name.split("/")
    return _Release(
        version_id=published,
        publisher=publisher,
        dataset=dataset,
        version="1.0.0",
        priority=priority,
        published_at=datetime(2025, 1, published, tzinfo=UTC),
        public=True,
        deprecated=deprecated,
    )


def test_a_deprecated_release_ranks_after_any_other_whatever_its_priority() -> None:
    old = _release(OLD, priority=1, deprecated=True, published=20)
    new = _release(NEW, priority=None, deprecated=False, published=1)
    other = _release("synth/other", priority=50, deprecated=False, published=2)
    ranked = sorted([old, other, new], key=_Release.preference)
    assert [r.dataset for r in ranked] == ["other", "new-grid", "old-grid"]
    # Among themselves, deprecated releases keep the usual order (priority, then newest).
    older = _release("synth/older", priority=5, deprecated=True, published=25)
    assert sorted([older, old], key=_Release.preference) == [old, older]


def grid(code: str, **fields: Any) -> Any:
    return factor_fields(code, **{"activity_id": "grid-power", "unit": "kWh", **fields})


@pytest.fixture
def superseded(session: Session) -> None:
    """Synthetic grid factors. old-grid (national priority 10, deprecated, superseded by
    new-grid): CN 2022, CN-GD 2022, and an activity only it has. new-grid (no priority):
    CN 2022. third (priority 20): GB 2022 only."""
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")
    stamp = datetime(2025, 1, 1, tzinfo=UTC)

    def dataset(slug: str, priority: int | None, factors: list[Any]) -> Dataset:
        created = create_dataset(session, publisher=publisher, slug=slug)
        set_priority(session, created, priority)
        create_version(session, dataset=created, factors=factors, published_at=stamp)
        return created

    old = dataset(
        "old-grid",
        10,
        [
            grid("cn-2022", region="CN", reference_year=2022, co2e=0.60),
            grid("gd-2022", region="CN-GD", reference_year=2022, co2e=0.40),
            grid("heat", activity_id="district-heat", region="CN", unit="GJ", co2e=90.0),
        ],
    )
    new = dataset("new-grid", None, [grid("cn-2022", region="CN", co2e=0.55)])
    dataset("third", 20, [grid("gb-2022", region="GB", co2e=0.20)])
    old.status, old.superseded_by_id = "deprecated", new.id
    session.commit()


def test_the_successor_wins_and_the_match_says_what_was_passed_over(
    client: TestClient, superseded: None
) -> None:
    answer = one(client, activity_id="grid-power", region="CN", year=2022)
    assert chosen(answer) == f"{NEW}/cn-2022@1.0.0"
    assert answer["match"]["deprecated"] == {
        "outcome": "passed_over",
        "dataset": OLD,
        "version": "1.0.0",
        "superseded_by": NEW,
        "region_distance": 0,
        "year": 2022,
    }


def test_a_current_dataset_in_a_wider_region_beats_a_deprecated_exact_region(
    client: TestClient, superseded: None
) -> None:
    answer = one(client, activity_id="grid-power", region="CN-GD", year=2022)
    assert chosen(answer) == f"{NEW}/cn-2022@1.0.0"
    assert answer["match"]["region_fallback"] is True
    assert answer["match"]["deprecated"]["outcome"] == "passed_over"
    assert answer["match"]["deprecated"]["region_distance"] == 0


def test_a_deprecated_dataset_answers_for_lack_of_anything_else(
    client: TestClient, superseded: None
) -> None:
    answer = one(client, activity_id="district-heat", region="CN", year=2023)
    assert chosen(answer) == f"{OLD}/heat@1.0.0"
    assert answer["match"]["deprecated"]["outcome"] == "used"
    assert answer["match"]["deprecated"]["superseded_by"] == NEW
    # Asked for by name, it answers too, and says so.
    pinned = one(client, activity_id="grid-power", region="CN", year=2022, dataset=OLD)
    assert chosen(pinned) == f"{OLD}/cn-2022@1.0.0"
    assert pinned["match"]["deprecated"]["outcome"] == "used"


def test_no_deprecated_dataset_involved_says_null(client: TestClient, superseded: None) -> None:
    answer = one(client, activity_id="grid-power", region="GB", year=2022)
    assert chosen(answer) == "synth/third/gb-2022@1.0.0"
    assert answer["match"]["deprecated"] is None


def test_deprecating_a_dataset_through_the_api_hands_resolve_to_its_successor(
    client: TestClient, tokens: TokenKit
) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    # The successor is published first: before the deprecation, the newer release wins.
    for slug in ("steel-2025", "steel-2019"):
        created = client.post("/v1/datasets", json={**DATASET_BODY, "slug": slug}, headers=writer)
        assert created.status_code == 201, created.text
        _publish(client, writer, reviewer, slug)
    line = {"activity_id": "synthetic-activity", "region": "CN", "year": 2023}
    before = one(client, **line)
    assert before["factor"]["dataset"] == "steel-2019"
    deprecated = client.post(
        f"/v1/datasets/{PUBLISHER}/steel-2019/deprecate",
        json={"superseded_by": f"{PUBLISHER}/steel-2025", "reason": "synthetic: new method"},
        headers=reviewer,
    )
    assert deprecated.status_code == 200, deprecated.text
    after = one(client, **line)
    assert after["factor"]["dataset"] == "steel-2025"
    assert after["match"]["deprecated"]["outcome"] == "passed_over"
    assert after["match"]["deprecated"]["dataset"] == f"{PUBLISHER}/steel-2019"
    assert after["match"]["deprecated"]["superseded_by"] == f"{PUBLISHER}/steel-2025"
