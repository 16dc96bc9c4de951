"""Declared uncertainty only: an interval carries the kind and confidence level its publisher
declared, or none; nothing is called "95 %" unless declared, and estimates propagate only
declared intervals. The factors here are synthetic test fixtures, not real emission factors."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
    load_iso_locations,
)

SYNTH = "synth/uncertain"
HTML = {"Accept": "text/html"}


@pytest.fixture
def declared(session: Session) -> None:
    load_iso_locations(session)
    publisher = create_publisher(session, slug="synth")
    dataset = create_dataset(session, publisher=publisher, slug="uncertain")
    create_version(
        session,
        dataset=dataset,
        factors=[
            factor_fields(
                "ci95",
                activity_id="heat",
                unit="GJ",
                co2e=2.0,
                uncertainty_low=1.5,
                uncertainty_high=2.5,
                uncertainty_kind="confidence_interval",
                uncertainty_confidence_level=0.95,
            ),
            factor_fields(
                "p90",
                activity_id="cooling",
                unit="GJ",
                co2e=1.0,
                uncertainty_low=0.8,
                uncertainty_high=1.3,
                uncertainty_kind="percentile_range",
                uncertainty_confidence_level=0.9,
            ),
            factor_fields(
                "range",
                activity_id="power",
                unit="kWh",
                co2e=0.5,
                uncertainty_low=0.4,
                uncertainty_high=0.7,
                uncertainty_kind="min_max",
            ),
            factor_fields(
                "undeclared",
                activity_id="steam",
                unit="t",
                co2e=3.0,
                uncertainty_low=2.0,
                uncertainty_high=4.0,
            ),
            factor_fields("none", activity_id="water", unit="m3", co2e=0.3),
        ],
    )
    session.commit()


def factor(client: TestClient, code: str) -> dict[str, Any]:
    response = client.get(f"/v1/factors/{SYNTH}/{code}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_factor_answers_carry_what_was_declared(client: TestClient, declared: None) -> None:
    found = {
        code: (
            f["uncertainty_low"],
            f["uncertainty_high"],
            f["uncertainty_kind"],
            f["uncertainty_confidence_level"],
        )
        for code in ("ci95", "p90", "range", "undeclared", "none")
        for f in [factor(client, code)]
    }
    assert found == {
        "ci95": (1.5, 2.5, "confidence_interval", 0.95),
        "p90": (0.8, 1.3, "percentile_range", 0.9),
        "range": (0.4, 0.7, "min_max", None),
        "undeclared": (2.0, 4.0, None, None),
        "none": (None, None, None, None),
    }


def estimate(client: TestClient, activity: str, amount: float, unit: str) -> dict[str, Any]:
    response = client.post(
        "/v1/estimate",
        json={
            "activity_id": activity,
            "region": "CN",
            "year": 2022,
            "amount": amount,
            "unit": unit,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_estimates_propagate_only_declared_intervals(client: TestClient, declared: None) -> None:
    heat = estimate(client, "heat", 10, "GJ")
    assert heat["co2e_kg"] == 20.0
    assert heat["uncertainty_kg"] == [15.0, 25.0]
    assert heat["uncertainty"]["interval_kg"] == [15.0, 25.0]
    assert heat["uncertainty"]["kind"] == "confidence_interval"
    assert heat["uncertainty"]["confidence_level"] == 0.95

    power = estimate(client, "power", 2, "MWh")  # 2000 kWh x [0.4, 0.7]
    assert power["uncertainty_kg"] == [800.0, 1400.0]
    assert power["uncertainty"]["kind"] == "min_max"
    assert power["uncertainty"]["confidence_level"] is None

    steam = estimate(client, "steam", 2, "t")
    assert steam["co2e_kg"] == 6.0
    assert steam["uncertainty_kg"] is None  # the interval [2, 4] is not declared: not propagated
    assert steam["uncertainty"]["kind"] is None
    assert "not propagated" in steam["uncertainty"]["note"]
    assert "no declared kind" in steam["uncertainty"]["note"]

    water = estimate(client, "water", 1, "m3")
    assert water["uncertainty_kg"] is None
    assert water["uncertainty"]["note"] == "the factor gives no uncertainty interval"


def test_batch_estimates_say_the_same(client: TestClient, declared: None) -> None:
    lines = [
        {"activity_id": a, "region": "CN", "year": 2022, "amount": 1, "unit": u}
        for a, u in (("heat", "GJ"), ("steam", "t"))
    ]
    response = client.post("/v1/estimate:batch", json={"items": lines})
    assert response.status_code == 200, response.text
    heat, steam = (item["result"] for item in response.json()["items"])
    assert heat["uncertainty_kg"] == [1.5, 2.5]
    assert steam["uncertainty_kg"] is None


def uncertainty_section(html: str) -> str:
    found = re.search(r'<section aria-labelledby="quality-heading">(.*?)</section>', html, re.S)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("code", "lang", "expected", "absent"),
    [
        ("ci95", "en", "confidence interval at 95 %, as declared by the publisher", None),
        ("ci95", "zh", "发布机构声明的 95% 置信区间", None),
        ("p90", "en", "central 90 % range (between two percentiles), as declared", None),
        ("range", "en", "lowest and highest values", "%"),
        ("undeclared", "en", "declares no confidence level", "95"),
        ("undeclared", "zh", "未声明此区间的类型与置信水平", "95"),
        ("none", "en", "The publisher gives no uncertainty interval.", "95"),
    ],
)
def test_the_page_shows_the_declared_confidence_or_none(
    client: TestClient, declared: None, code: str, lang: str, expected: str, absent: str | None
) -> None:
    page = client.get(f"/factors/{SYNTH}/{code}", params={"lang": lang}, headers=HTML)
    assert page.status_code == 200
    section = uncertainty_section(page.text)
    assert expected in section
    if absent is not None:
        assert absent not in section


def test_the_resolve_page_labels_only_a_declared_interval(
    client: TestClient, declared: None
) -> None:
    def page(activity: str, unit: str, lang: str) -> str:
        response = client.get(
            "/resolve",
            params={
                "activity_id": activity,
                "region": "CN",
                "year": 2022,
                "amount": 10,
                "unit": unit,
                "lang": lang,
            },
            headers=HTML,
        )
        assert response.status_code == 200
        text: str = response.text
        return text

    assert "Interval at 95 %, as the publisher declares: 15 – 25 kg CO2e" in page(
        "heat", "GJ", "en"
    )
    assert "发布机构声明的 95% 区间：15 – 25 kg CO2e" in page("heat", "GJ", "zh")
    steam = page("steam", "t", "en")
    assert "so it is not propagated to the estimate" in steam
    assert "95" not in re.sub(r"<[^>]+>", "", steam.split("resolve_gases")[0])[-400:]


def test_exports_carry_the_declaration(client: TestClient, declared: None) -> None:
    response = client.get("/v1/datasets/synth/uncertain/versions/1.0.0/export.csv")
    assert response.status_code == 200, response.text
    rows = {r["factor_code"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert rows["ci95"]["uncertainty_kind"] == "confidence_interval"
    assert float(rows["ci95"]["uncertainty_confidence_level"]) == 0.95
    assert rows["undeclared"]["uncertainty_kind"] == ""
    assert rows["undeclared"]["uncertainty_confidence_level"] == ""


def test_no_seeded_factor_declares_an_interval(client: TestClient, seeded: None) -> None:
    """The seed's sources give per-gas ranges (IPCC Table 2.2) or none, never a CO2e
    interval: no seeded factor has an interval, so none is labelled with a confidence."""
    response = client.get("/v1/factors", params={"limit": 1000})
    assert response.status_code == 200
    items = response.json()["items"]
    assert items
    for item in items:
        assert item["uncertainty_low"] is None
        assert item["uncertainty_high"] is None
        assert item["uncertainty_kind"] is None
        assert item["uncertainty_confidence_level"] is None


# --- Uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "column", "code"),
    [
        (
            {"uncertainty_kind": "confidence_interval"},
            "uncertainty_kind",
            "uncertainty_without_interval",
        ),
        (
            {"uncertainty_low": 90, "uncertainty_high": 200, "uncertainty_confidence_level": 0.95},
            "uncertainty_kind",
            "missing_uncertainty_kind",
        ),
        (
            {
                "uncertainty_low": 90,
                "uncertainty_high": 200,
                "uncertainty_kind": "confidence_interval",
            },
            "uncertainty_confidence_level",
            "missing_confidence_level",
        ),
        (
            {
                "uncertainty_low": 90,
                "uncertainty_high": 200,
                "uncertainty_kind": "min_max",
                "uncertainty_confidence_level": 0.95,
            },
            "uncertainty_confidence_level",
            "confidence_level_not_applicable",
        ),
        (
            {
                "uncertainty_low": 90,
                "uncertainty_high": 200,
                "uncertainty_kind": "confidence_interval",
                "uncertainty_confidence_level": 95,
            },
            "uncertainty_confidence_level",
            "less_than",
        ),
        (
            {"uncertainty_low": 90, "uncertainty_high": 200, "uncertainty_kind": "95%"},
            "uncertainty_kind",
            "literal_error",
        ),
    ],
)
def test_upload_refuses_an_inconsistent_declaration(
    client: TestClient, tokens: Any, overrides: dict[str, Any], column: str, code: str
) -> None:
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
    from tests.upload_files import csv_bytes, synthetic_row

    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    rows = [synthetic_row(0), synthetic_row(1, **overrides)]
    columns = list(dict.fromkeys([*rows[0], *rows[1]]))
    response = client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows, columns), "text/csv")},
    )
    assert response.status_code == 422, response.text
    found = {(e["row"], e["column"], e["code"]) for e in response.json()["errors"]}
    assert (3, column, code) in found, found


def test_upload_stores_a_declared_interval(client: TestClient, tokens: Any) -> None:
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
    from tests.upload_files import csv_bytes, synthetic_row

    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    declared_row = synthetic_row(
        1,
        uncertainty_low=120,
        uncertainty_high=170,
        uncertainty_kind="confidence_interval",
        uncertainty_confidence_level=0.95,
    )
    rows = [synthetic_row(0), declared_row]
    columns = list(dict.fromkeys([*rows[0], *rows[1]]))
    response = client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes(rows, columns), "text/csv")},
    )
    assert response.status_code == 201, response.text
    listed = client.get(f"{VERSIONS}/1.0.0/factors", headers=headers)
    assert listed.status_code == 200, listed.text
    by_code = {f["factor_code"]: f for f in listed.json()["items"]}
    stored = by_code[declared_row["factor_code"]]
    assert (stored["uncertainty_kind"], stored["uncertainty_confidence_level"]) == (
        "confidence_interval",
        0.95,
    )
    plain = by_code[synthetic_row(0)["factor_code"]]
    assert (plain["uncertainty_kind"], plain["uncertainty_confidence_level"]) == (None, None)


def test_the_upload_template_documents_the_columns(client: TestClient) -> None:
    response = client.get("/v1/upload-template.csv")
    assert response.status_code == 200, response.text
    assert "uncertainty_kind" in response.text
    assert "uncertainty_confidence_level" in response.text


def test_the_uncertainty_note_follows_accept_language(client: TestClient, declared: None) -> None:
    """`uncertainty.note` is in the client's language (`kind` and the numbers are not)."""
    expected = {
        "heat": (
            "GJ",
            "the factor's declared confidence interval at 0.95 scaled by the amount in the "
            "factor's unit",
            "该因子声明的置信区间（置信水平 0.95），按以因子单位计的数量缩放",
        ),
        "power": (
            "kWh",
            "the factor's declared min max scaled by the amount",
            "该因子声明的最小值–最大值区间，按数量缩放",
        ),
        "steam": (
            "t",
            "not propagated: the factor's interval [2, 4] has no declared kind or confidence "
            "level, so no confidence can be attached to a propagated one",
            "未传递：该因子的区间 [2, 4] 未声明类型或置信水平，因此无法为传递后的区间赋予置信度",
        ),
        "water": ("m3", "the factor gives no uncertainty interval", "该因子未给出不确定性区间"),
    }
    for activity, (unit, english, chinese) in expected.items():
        line = {"activity_id": activity, "region": "CN", "year": 2022, "amount": 1, "unit": unit}
        answers = {
            lang: client.post("/v1/estimate", json=line, headers={"Accept-Language": lang})
            for lang in ("en", "zh-CN")
        }
        for lang, response in answers.items():
            assert response.status_code == 200, response.text
            assert response.headers["content-language"] == lang
        en, zh = answers["en"].json(), answers["zh-CN"].json()
        assert en["uncertainty"]["note"] == english
        assert zh["uncertainty"]["note"] == chinese
        assert en["uncertainty"]["kind"] == zh["uncertainty"]["kind"]
