"""Resolve and compare pages: every number shown equals the API's; twins are the API's answers.

Real seed data: the MEE national grid factors (CO2 only, per kWh; 2022: 0.5366), DESNZ UK
natural gas (net CV 0.20264 kg CO2e/kWh, no gas breakdown) and the IPCC 2006 Table 2.2
natural gas factor (per TJ: CO2 56100, CH4 1, N2O 0.1 kg).
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from tests.test_web_datasets import elements, number, texts

GRID = {"activity_id": "electricity-grid-mix", "region": "CN-GD", "year": "2022"}
HTML = {"Accept": "text/html"}


def resolve_api(
    client: TestClient, line: dict[str, object], gwp: str | None = None
) -> dict[str, Any]:
    query = f"?gwp={gwp}" if gwp else ""
    answer = client.post(f"/v1/factors:resolve{query}", json={"items": [line]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def api_line(**values: str) -> dict[str, object]:
    line: dict[str, object] = {k: v for k, v in values.items() if k not in ("amount", "gwp")}
    line["year"] = int(values["year"])
    return line


def test_resolve_page_shows_the_chosen_factor_and_every_step_of_the_fallback(
    client: TestClient, seeded: None
) -> None:
    api = resolve_api(client, api_line(**GRID))["items"][0]
    page = client.get("/resolve?" + urlencode({**GRID, "lang": "en"}))
    assert page.status_code == 200
    html = page.text
    factor, match = api["factor"], api["match"]
    (shown,) = texts(html, data_testid="chosen-co2e")
    assert number(shown) == factor["co2e"]
    assert f'href="/factors/{factor["publisher"]}/{factor["dataset"]}/' in html
    assert f"{factor['factor_code']}@{factor['version']}?lang=en" in html
    # No provincial factor: the chain walks up until a region has one, step by step.
    assert match["region_fallback"] is True
    steps = [
        (attrs["data-region"], attrs["data-outcome"])
        for attrs, _ in elements(html)
        if "data-outcome" in attrs
    ]
    assert [region for region, _ in steps] == match["region_chain"]
    depth = match["region_distance"]
    assert [outcome for _, outcome in steps] == (
        ["passed"] * depth + ["chosen"] + ["not_needed"] * (len(steps) - depth - 1)
    )
    assert steps[depth][0] == factor["region"]
    # Steps are in words, not in colour only.
    assert "chosen here" in html
    assert "moved on" in html
    # Region names from the location table, in both languages.
    assert '<span class="other-lang" lang="zh-CN">中国</span>' in html


def test_resolve_json_twin_is_the_batch_answer_for_that_line(
    client: TestClient, seeded: None
) -> None:
    for gwp in (None, "AR6"):
        query = {**GRID, "unit": "MWh", **({"gwp": gwp} if gwp else {})}
        twin = client.get("/resolve.json?" + urlencode(query))
        assert twin.status_code == 200
        assert twin.json() == resolve_api(client, {**api_line(**GRID), "unit": "MWh"}, gwp)


def test_estimate_on_the_resolve_page_equals_the_estimate_api(
    client: TestClient, seeded: None
) -> None:
    query = {**GRID, "amount": "1200", "unit": "MWh"}
    api = client.post(
        "/v1/estimate", json={**api_line(**GRID), "amount": 1200, "unit": "MWh"}
    ).json()
    # 1200 MWh = 1,200,000 kWh × 0.5366 kg CO2/kWh (MEE/NBS 2022 national average).
    assert api["co2e_kg"] == pytest.approx(643920)
    html = client.get("/resolve?" + urlencode({**query, "lang": "zh"})).text
    (shown,) = texts(html, data_testid="estimate-co2e")
    assert number(shown) == api["co2e_kg"]
    (per_unit,) = texts(html, data_testid="per-requested")
    resolved = resolve_api(client, {**api_line(**GRID), "unit": "MWh"})["items"][0]
    assert number(per_unit) == resolved["match"]["unit"]["co2e_per_requested_unit"]
    twin = client.get("/resolve/estimate.json?" + urlencode(query))
    assert twin.json() == api
    # The snippets post the same line to the API.
    assert "curl -s -X POST http://127.0.0.1:8000/v1/estimate" in html


def test_a_line_without_a_factor_says_why(client: TestClient, seeded: None) -> None:
    query = {"activity_id": "no-such-activity", "region": "CN", "year": "2022", "lang": "en"}
    html = client.get("/resolve?" + urlencode(query)).text
    api = resolve_api(client, api_line(**{k: v for k, v in query.items() if k != "lang"}))
    error = api["items"][0]["error"]
    assert "No factor matches." in html
    assert f"<code>{error['code']}</code>" in html


def test_form_errors_are_marked_on_their_fields(client: TestClient, seeded: None) -> None:
    answer = client.get("/resolve?" + urlencode({**GRID, "year": "last year", "lang": "en"}))
    assert answer.status_code == 422
    (year,) = elements(answer.text, id="resolve-year")
    assert year[0]["aria-invalid"] == "true"
    assert "resolve-year-error" in str(year[0]["aria-describedby"])
    assert texts(answer.text, id="resolve-year-error") == [
        "Error: The year must be a whole number, e.g. 2022."
    ]
    assert client.get("/resolve.json?year=2022").status_code == 422
    # An empty form is just the form, with labels for every field.
    empty = client.get("/resolve?lang=zh").text
    for name in ("activity_id", "region", "year", "amount", "unit", "gwp"):
        assert f'<label for="resolve-{name}">' in empty


# --------------------------------------------------------------------------- compare

IPCC_GAS = "ipcc-tfi/ipcc-2006-stationary-combustion/natural-gas"
UK_GAS = "desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-net-cv@1.0.0"


def test_compare_normalises_unit_and_gwp_set_as_computed_by_hand(
    client: TestClient, seeded: None
) -> None:
    """IPCC 2006 Vol. 2 Table 2.2, natural gas, energy industries: CO2 56,100, CH4 1 and N2O
    0.1 kg/TJ. In AR4 (CH4 25, N2O 298): 56100 + 25·1 + 298·0.1 = 56,154.8 kg CO2e/TJ, and
    1 kWh = 3.6 MJ = 3.6e-6 TJ, so 0.20215728 kg CO2e/kWh. DESNZ 2024 natural gas (net CV)
    is 0.20264 kg CO2e/kWh with no gas breakdown: kept as published."""
    query = urlencode([("f", IPCC_GAS), ("f", UK_GAS), ("unit", "kWh"), ("gwp", "AR4")])
    body = client.get(f"/compare.json?{query}").json()
    ipcc, uk = body["items"]
    assert ipcc["factor"]["co2e"] == pytest.approx(56154.8)
    assert ipcc["normalised"]["co2e"] == pytest.approx(0.20215728, rel=1e-12)
    assert uk["normalised"]["co2e"] == pytest.approx(0.20264, rel=1e-12)
    assert uk["factor"]["gwp_conversion"]["status"] == "not_possible"
    # Each factor is exactly the API's answer for it in that GWP set.
    for item, path in (
        (ipcc, f"/v1/factors/{IPCC_GAS}?gwp=AR4"),
        (
            uk,
            "/v1/factors/desnz-uk/uk-ghg-conversion-factors-2024/natural-gas-kwh-net-cv"
            "?version=1.0.0&gwp=AR4",
        ),
    ):
        assert item["factor"] == client.get(path).json()
    html = client.get(f"/compare?{query}&lang=en").text
    shown = {str(a["data-ref"]): t for a, t in elements(html) if "data-ref" in a}
    assert number(shown[IPCC_GAS]) == ipcc["normalised"]["co2e"]
    assert number(shown[UK_GAS]) == uk["normalised"]["co2e"]


def test_compare_marks_differences_of_basis_in_words(client: TestClient, seeded: None) -> None:
    query = urlencode([("f", IPCC_GAS), ("f", UK_GAS), ("lang", "en")])
    html = client.get(f"/compare?{query}").text
    body = client.get(f"/compare.json?{urlencode([('f', IPCC_GAS), ('f', UK_GAS)])}").json()
    # Both are combustion factors; region, year, source and method differ.
    assert "boundary" not in body["differs"]
    assert {"region", "reference_year", "source_title"} <= set(body["differs"])
    for attrs, text in elements(html):
        if "data-field" in attrs and "basis" in str(attrs.get("class")):
            differs = attrs["data-field"] in body["differs"]
            assert ("≠ differs" in text) is differs, attrs["data-field"]
    # Without a unit, the first factor's unit is the common one (TJ here).
    assert body["unit"] == "TJ"
    rows = list(csv.DictReader(io.StringIO(client.get(f"/compare.csv?{query}").text)))
    assert [float(r["normalised_co2e"]) for r in rows] == [
        item["normalised"]["co2e"] for item in body["items"]
    ]


def test_compare_needs_two_to_five_known_factors(client: TestClient, seeded: None) -> None:
    one = client.get(f"/compare?{urlencode([('f', IPCC_GAS), ('lang', 'en')])}")
    assert one.status_code == 422
    assert "Give 2 to 5 factors (there are 1)." in one.text
    assert client.get(f"/compare.json?{urlencode([('f', IPCC_GAS)])}").status_code == 422
    unknown = client.get(
        f"/compare?{urlencode([('f', IPCC_GAS), ('f', 'mee-cn/cn-electricity-co2/nope')])}"
    )
    assert unknown.status_code == 200
    assert "No factor &#39;nope&#39;" in unknown.text or "No factor 'nope'" in unknown.text


def test_an_estimate_across_dimensions_shows_the_property_it_used(
    client: TestClient, seeded: None
) -> None:
    """10 t of natural gas burnt in a power plant: the IPCC factor is per TJ, so the estimate
    needs the gas's net calorific value (reference data), which the page lists."""
    line = {
        "activity_id": "natural-gas-stationary-combustion-energy-industries",
        "region": "GLO",
        "year": 2022,
        "amount": 10,
        "unit": "t",
    }
    api = client.post("/v1/estimate", json=line)
    if api.status_code != 200:
        pytest.skip(f"the estimate API does not convert t to TJ here: {api.text}")
    body = api.json()
    query = urlencode({**{k: str(v) for k, v in line.items()}, "lang": "en"})
    html = client.get(f"/resolve?{query}").text
    (shown,) = texts(html, data_testid="estimate-co2e")
    assert number(shown) == body["co2e_kg"]
    # The chosen factor is the one the estimate used, reached through the property.
    (chosen,) = texts(html, data_testid="chosen-co2e")
    assert number(chosen) == body["factor"]["co2e"]
    assert "No factor matches." not in html
    for used in body["conversion"].get("properties") or []:
        assert "Conversion properties used" in html
        assert str(used.get("code", "")) in html


def test_compare_says_when_a_factor_cannot_be_put_in_the_common_unit(
    client: TestClient, seeded: None
) -> None:
    grid = "mee-cn/cn-electricity-co2/national-average-2022"
    query = urlencode([("f", grid), ("f", UK_GAS), ("unit", "t")])
    body = client.get(f"/compare.json?{query}").json()
    electricity, gas = body["items"]
    assert electricity["normalised"]["co2e"] is None
    assert electricity["normalised"]["error"]["code"] == "incompatible_unit"
    # Natural gas has a cited gross calorific value (DESNZ fuel properties); electricity none.
    assert gas["normalised"]["co2e"] is not None
    html = client.get(f"/compare?{query}&lang=en").text
    cells = {str(a["data-ref"]): t for a, t in elements(html) if "data-ref" in a}
    assert cells[grid].startswith("Error:")
    assert "cannot be converted to kWh" in cells[grid]


# --------------------------------------------------------------------------- units of the pages


def test_chain_steps_follow_what_the_resolver_reports() -> None:
    from app.web.resolve_pages import chain_steps

    names = {"CN": ("中国", "China")}
    # The resolver's own steps (as far as the chosen one), then the rest of the chain.
    reported = {
        "region_chain": ["CN-GD", "CN-GRID-SOUTH", "CN", "GLO"],
        "region_distance": 2,
        "region_steps": [
            {"region": "CN-GD", "kind": "subdivision", "relation": "requested", "of": None,
             "outcome": "no_factor"},
            {"region": "CN-GRID-SOUTH", "kind": "grouping", "relation": "member_of",
             "of": "CN-GD", "outcome": "other_unit_only", "nearest_unit": "t"},
            {"region": "CN", "kind": "country", "relation": "parent", "of": "CN-GD",
             "outcome": "matched"},
        ],
    }  # fmt: skip
    steps = chain_steps(reported, names)
    assert [(s.region, s.outcome) for s in steps] == [
        ("CN-GD", "passed"),
        ("CN-GRID-SOUTH", "other_unit_only"),
        ("CN", "chosen"),
        ("GLO", "not_needed"),
    ]
    assert steps[1].relation == "member_of"
    assert steps[1].of == "CN-GD"
    assert steps[1].details == {"nearest_unit": "t"}  # fields it does not know are kept
    assert (steps[2].name_zh, steps[2].name_en) == ("中国", "China")
    # A resolver that reports only the chain and the distance.
    plain = chain_steps({"region_chain": ["CN-GD", "CN", "GLO"], "region_distance": 1}, {})
    assert [s.outcome for s in plain] == ["passed", "chosen", "not_needed"]


def test_numbers_are_shown_as_the_api_sends_them() -> None:
    from app.web.templating import templates

    exact = templates.env.filters["exact"]
    assert exact(0.5366) == "0.5366"
    assert exact(643920.0) == "643920"
    assert exact(1e-05) == "0.00001"
    assert exact(0.1 + 0.2) == "0.30000000000000004"  # never rounded
    assert exact(12) == "12"
    assert exact(None) == "—"


def test_diff_ranges_are_older_dots_newer() -> None:
    from app.core.errors import InvalidParameter
    from app.web.dataset_pages import parse_diff_spec

    assert parse_diff_spec("1.0.0...1.1.0") == ("1.0.0", "1.1.0")
    for bad in ("1.0.0..1.1.0", "...1.1.0", "1.0.0...", "1.0.0"):
        with pytest.raises(InvalidParameter):
            parse_diff_spec(bad)


def test_compare_converts_across_kinds_of_unit_only_through_a_cited_property(
    client: TestClient, seeded: None
) -> None:
    """Per tonne of natural gas: IPCC 2006 Vol. 2 Ch. 1 Table 1.2 gives its net calorific
    value, 48.0 TJ/Gg, so 1 t = 0.048 TJ and 56,154.5 kg CO2e/TJ (AR5, as published) is
    56,154.5 × 0.048 = 2,695.416 kg CO2e/t. The DESNZ per-kWh (Net CV) factor goes through
    DESNZ's own net CV of UK natural gas (2025 fuel properties, GJ/t): never the IPCC NCV, and
    never the gross CV."""
    query = urlencode([("f", IPCC_GAS), ("f", UK_GAS), ("unit", "t")])
    body = client.get(f"/compare.json?{query}").json()
    ipcc, uk = body["items"]
    estimate = client.post(
        "/v1/estimate", json={"factor": ipcc["factor"]["id"], "amount": 1, "unit": "t"}
    )
    if estimate.status_code != 200:
        pytest.skip(f"the estimate API does not convert t to TJ here: {estimate.text}")
    assert ipcc["normalised"]["co2e"] == pytest.approx(2695.416, rel=1e-12)
    assert ipcc["normalised"]["co2e"] == estimate.json()["co2e_kg"]
    assert [p["code"] for p in ipcc["normalised"]["properties"]] == ["ncv/natural-gas"]
    net_cv = client.get(
        "/v1/conversion-properties", params={"activity_id": "natural-gas-combustion-net-cv"}
    ).json()["items"]
    [cv] = [p for p in net_cv if p["quantity"] == "net_calorific_value"]
    assert (cv["code"], cv["unit"]) == ("desnz-2025/net-cv/natural-gas", "GJ/t")
    assert [p["code"] for p in uk["normalised"]["properties"]] == [cv["code"]]
    # 1 t × CV GJ/t = CV / 0.0036 kWh, × 0.20264 kg CO2e/kWh (DESNZ 2024, Net CV).
    assert uk["normalised"]["co2e"] == pytest.approx(cv["value"] / 0.0036 * 0.20264, rel=1e-9)
    html = client.get(f"/compare?{query}&lang=en").text
    assert "via Natural Gas, net calorific value: 48 TJ/Gg" in html
