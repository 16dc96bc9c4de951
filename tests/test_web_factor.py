"""A factor's pages: every number equals the API's, twins are the API's answers, withdrawn and
superseded releases keep their pages, history, citations, the content-hash command, caching."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.errors import InvalidParameter
from app.core.http_cache import IMMUTABLE, SHORT_LIVED
from app.datasets.service import deprecate_dataset
from app.web.factor_pages import FactorRef, history_chart, parse_ref
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_web_search import parse

HTML = {"Accept": "text/html"}
MEE_2022 = "mee-cn/cn-electricity-co2/national-average-2022"
SYNTH = "synthetic-grid/synthetic-grid-history"
WITHDRAWAL_REASON = "Synthetic: the uploaded file had the values in the wrong unit."


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _grid(code: str, co2: float, **overrides: Any) -> Any:
    """A synthetic grid factor with a gas breakdown consistent with AR5 (CH4 28, N2O 265)."""
    ch4, n2o = 0.0001, 0.00002
    values: dict[str, Any] = {
        "name_zh": "合成测试电网因子 2022",
        "name_en": "Synthetic grid factor 2022",
        "activity_id": "synthetic-grid-mix",
        "co2": co2,
        "ch4": ch4,
        "n2o": n2o,
        "co2e": round(co2 + 28 * ch4 + 265 * n2o, 10),
        "gwp_set": "AR5",
        "uncertainty_low": round(co2 * 0.9, 6),
        "uncertainty_high": round(co2 * 1.2, 6),
        "uncertainty_distribution": "lognormal",
        "dq_reliability": 2,
        "dq_completeness": 3,
        "dq_temporal": 1,
        "dq_geographical": 1,
        "dq_technological": 2,
        "source_locator": "Synthetic table 1, p. 2",
        "source_url": "https://example.org/synthetic-source",
    }
    values.update(overrides)
    return factor_fields(code, **values)


def publish_grid_history(session: Session) -> None:
    """synthetic-grid/synthetic-grid-history (synthetic test data, not real factors):

    1.0.0 (2024-01-10): grid-2022 co2 0.61, and dropped-2022 (not in later releases)
    1.1.0 (2024-06-01): grid-2022 co2 0.58 (1.0.0 becomes superseded)
    2.0.0 (2024-09-01): grid-2022 co2 5.8, withdrawn on 2024-10-15 with a reason
    """
    publisher = create_publisher(session, slug="synthetic-grid")
    dataset = create_dataset(session, publisher=publisher, slug="synthetic-grid-history")
    create_version(
        session,
        dataset=dataset,
        version="1.0.0",
        published_at=_at("2024-01-10T08:00"),
        factors=[_grid("grid-2022", 0.61), _grid("dropped-2022", 0.7, name_zh="合成测试旧因子")],
    )
    create_version(
        session,
        dataset=dataset,
        version="1.1.0",
        published_at=_at("2024-06-01T08:00"),
        factors=[_grid("grid-2022", 0.58)],
    )
    create_version(
        session,
        dataset=dataset,
        version="2.0.0",
        status="withdrawn",
        published_at=_at("2024-09-01T08:00"),
        withdrawn_at=_at("2024-10-15T09:00"),
        withdrawn_reason=WITHDRAWAL_REASON,
        factors=[_grid("grid-2022", 5.8)],
    )


@pytest.fixture
def grid_history(session: Session) -> None:
    publish_grid_history(session)
    session.commit()


def fields_shown(html: str) -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for attrs, text in parse(html).fields:
        if attrs.get("data-field"):
            shown.setdefault(attrs["data-field"] or "", []).append(text.strip())
    return shown


def assert_numbers_equal_the_api(html: str, factor: dict[str, Any]) -> int:
    """Every number marked on the page equals the API's number for the same field."""
    checked = 0
    for name, texts in fields_shown(html).items():
        if name == "content_sha256":
            continue
        for text in texts:
            expected = factor[name]
            if isinstance(expected, int | float) and not isinstance(expected, bool):
                assert float(text) == expected, (name, text, expected)
            else:
                assert text == str(expected), (name, text, expected)
            checked += 1
    return checked


def test_the_real_china_grid_factor_page_shows_the_apis_numbers(
    client: TestClient, seeded: None
) -> None:
    api = client.get(f"/v1/factors/{MEE_2022}").json()
    page = client.get(f"/factors/{MEE_2022}", params={"lang": "zh"})
    assert page.status_code == 200
    assert assert_numbers_equal_the_api(page.text, api) >= 4
    assert fields_shown(page.text)["co2e"] == ["0.5366"]
    # Names in both languages, the source with its locator and link, the license in words.
    assert "2022年全国电力平均二氧化碳排放因子" in page.text
    assert "China national average electricity CO2 emission factor, 2022" in page.text
    assert api["source_locator"] in page.text
    assert f'href="{api["source_url"]}"' in page.text
    assert "可以再分发吗？" in page.text
    # The other years of the same activity and region, as the API's search answers them.
    series = client.get(
        "/v1/factors",
        params={
            "activity_id": "electricity-grid-mix",
            "region": "CN",
            "dataset": "mee-cn/cn-electricity-co2",
        },
    ).json()["items"]
    shown = re.findall(
        r'<th scope="row" class="num">(\d{4})</th>\s*<td class="num">([\d.]+)</td>', page.text
    )
    assert (
        [(int(y), float(v)) for y, v in shown]
        == sorted((item["reference_year"], item["co2e"]) for item in series)
        == [(2021, 0.5568), (2022, 0.5366), (2023, 0.5306)]
    )
    provenance = client.get(f"/v1/factors/{MEE_2022}/provenance").json()
    assert provenance["dataset_version"]["content_sha256"] in page.text
    assert provenance["upload"]["file_sha256"] in page.text


def test_every_number_on_a_factor_with_gases_and_scores_is_the_apis(
    client: TestClient, grid_history: None
) -> None:
    api = client.get(f"/v1/factors/{SYNTH}/grid-2022", params={"version": "1.0.0"}).json()
    page = client.get(f"/factors/{SYNTH}/grid-2022@1.0.0", params={"lang": "en"})
    assert page.status_code == 200
    shown = fields_shown(page.text)
    assert {"co2e", "co2", "ch4", "n2o", "uncertainty_low", "uncertainty_high", "dqr"} <= set(shown)
    assert {"dq_reliability", "dq_completeness", "dq_temporal"} <= set(shown)
    assert assert_numbers_equal_the_api(page.text, api) >= 14
    # The scores' meanings and the GWP set with its values.
    assert "Verified data partly based on assumptions" in page.text
    assert "AR5" in page.text
    assert "CH4 28" in page.text
    # Who submitted and who approved, and what kind of actor each is.
    assert "<code>synthetic-uploader</code>\n (not an OAuth client" in page.text
    assert "<code>synthetic-reviewer</code>\n (not an OAuth client" in page.text


def test_the_json_twins_are_the_apis_answers(client: TestClient, grid_history: None) -> None:
    for page, api in (
        (f"/factors/{SYNTH}/grid-2022.json", f"/v1/factors/{SYNTH}/grid-2022"),
        (
            f"/factors/{SYNTH}/grid-2022@1.0.0.json",
            f"/v1/factors/{SYNTH}/grid-2022?version=1.0.0",
        ),
        (f"/factors/{SYNTH}/grid-2022/history.json", f"/v1/factors/{SYNTH}/grid-2022/history"),
    ):
        twin, original = client.get(page), client.get(api)
        assert twin.status_code == original.status_code == 200
        assert twin.content == original.content
        for header in ("content-type", "etag", "cache-control"):
            assert twin.headers[header] == original.headers[header], (page, header)
    html = client.get(f"/factors/{SYNTH}/grid-2022@1.0.0").text
    twin = f"/factors/{SYNTH}/grid-2022@1.0.0.json"
    assert f'<link rel="alternate" type="application/json" href="{twin}">' in html
    # Absolute URLs come from the configured public URL (the issuer), not the Host header.
    api = f"http://127.0.0.1:8000/v1/factors/{SYNTH}/grid-2022?version=1.0.0"
    assert f"curl -s &#39;{api}&#39;" in html


def test_pinned_pages_answer_conditional_gets(client: TestClient, grid_history: None) -> None:
    current = client.get(f"/factors/{SYNTH}/grid-2022@1.1.0", params={"lang": "en"})
    # A withdrawal or a newer release can still change what a published release's page says.
    assert current.headers["cache-control"] == SHORT_LIVED
    again = client.get(
        f"/factors/{SYNTH}/grid-2022@1.1.0",
        params={"lang": "en"},
        headers={"If-None-Match": current.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.content == b""
    # A withdrawn release's page can no longer change.
    withdrawn = client.get(f"/factors/{SYNTH}/grid-2022@2.0.0", params={"lang": "en"})
    assert withdrawn.headers["cache-control"] == IMMUTABLE
    assert (
        client.get(
            f"/factors/{SYNTH}/grid-2022@2.0.0",
            params={"lang": "en"},
            headers={"If-None-Match": withdrawn.headers["etag"]},
        ).status_code
        == 304
    )


def test_a_withdrawn_release_keeps_its_page_with_the_reason_and_the_successor(
    client: TestClient, grid_history: None
) -> None:
    page = client.get(f"/factors/{SYNTH}/grid-2022@2.0.0", params={"lang": "en"}, headers=HTML)
    assert page.status_code == 200
    assert "This release was withdrawn." in page.text
    assert WITHDRAWAL_REASON in page.text
    assert f'href="/factors/{SYNTH}/grid-2022?lang=en">See the current version' in page.text
    assert fields_shown(page.text)["co2e"][0] == "5.8081"
    latest = client.get(f"/factors/{SYNTH}/grid-2022", params={"lang": "en"})
    assert "withdrawn" not in fields_shown(latest.text).get("version_status", [])
    assert client.get(f"/v1/factors/{SYNTH}/grid-2022").json()["version"] == "1.1.0"
    assert "1.1.0" in latest.text


def test_a_superseded_release_says_so_and_links_the_current_one(
    client: TestClient, grid_history: None
) -> None:
    page = client.get(f"/factors/{SYNTH}/grid-2022@1.0.0", params={"lang": "zh"})
    assert page.status_code == 200
    assert "此版本已被取代。" in page.text
    assert "现行版本为 1.1.0" in page.text
    assert f'href="/factors/{SYNTH}/grid-2022?lang=zh"' in page.text


def test_a_factor_dropped_from_the_current_release_never_404s(
    client: TestClient, grid_history: None
) -> None:
    assert client.get(f"/v1/factors/{SYNTH}/dropped-2022").status_code == 404
    page = client.get(f"/factors/{SYNTH}/dropped-2022", params={"lang": "en"}, headers=HTML)
    assert page.status_code == 200
    assert "This factor is not in the dataset&#39;s current release." in page.text
    assert "the last release that had it (1.0.0)" in page.text
    never = client.get(f"/factors/{SYNTH}/never-released", headers=HTML)
    assert never.status_code == 404
    assert never.headers["content-type"].startswith("text/html")


def test_a_deprecated_datasets_factor_names_the_successor_dataset(
    client: TestClient, session: Session, grid_history: None
) -> None:
    successor = create_dataset(
        session,
        publisher=create_publisher(session, slug="synthetic-next"),
        slug="synthetic-grid-next",
    )
    create_version(session, dataset=successor, factors=[_grid("grid-2022", 0.5)])
    deprecate_dataset(
        session,
        publisher="synthetic-grid",
        dataset="synthetic-grid-history",
        superseded_by="synthetic-next/synthetic-grid-next",
        reason="Synthetic: replaced by a new series.",
        actor="synthetic-reviewer",
        actor_publisher=None,
        now=_at("2025-01-01T00:00"),
    )
    session.commit()
    page = client.get(f"/factors/{SYNTH}/grid-2022", params={"lang": "en"})
    assert page.status_code == 200
    assert "This dataset is deprecated." in page.text
    assert "Synthetic: replaced by a new series." in page.text
    assert 'href="/datasets/synthetic-next/synthetic-grid-next?lang=en"' in page.text


def test_history_page_table_and_chart_are_the_apis_history(
    client: TestClient, grid_history: None
) -> None:
    api = client.get(f"/v1/factors/{SYNTH}/grid-2022/history").json()["items"]
    page = client.get(f"/factors/{SYNTH}/grid-2022/history", params={"lang": "en"})
    assert page.status_code == 200
    rows = re.findall(r'<tr data-version="([^"]+)">', page.text)
    assert rows == [item["version"] for item in api] == ["2.0.0", "1.1.0", "1.0.0"]
    values = [float(v) for v in fields_shown(page.text)["co2e"]]
    assert values == [item["co2e"] for item in api]
    assert WITHDRAWAL_REASON in page.text
    svg = re.search(r"<svg.*?</svg>", page.text, re.S)
    assert svg is not None
    assert 'role="img"' in svg.group(0)
    assert '<title id="chart-title">' in svg.group(0)
    desc = re.search(r'<desc id="chart-desc">(.*?)</desc>', svg.group(0), re.S)
    assert desc is not None
    assert "1.0.0: 0.6181; 1.1.0: 0.5881; 2.0.0: 5.8081 (Withdrawn)" in desc.group(1)
    # Each version links its pinned page.
    assert f'href="/factors/{SYNTH}/grid-2022@1.0.0?lang=en"' in page.text
    table = client.get(f"/factors/{SYNTH}/grid-2022/history.csv")
    assert table.status_code == 200
    csv_rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [(r["version"], float(r["co2e"]), r["withdrawn"]) for r in csv_rows] == [
        (item["version"], item["co2e"], "true" if item["withdrawn"] else "false") for item in api
    ]


@pytest.mark.parametrize("style", ["gb7714", "apa", "bibtex", "csl-json"])
def test_cite_page_pins_the_version_and_names_the_hash(
    client: TestClient, seeded: None, style: str
) -> None:
    version = client.get("/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0").json()
    page = client.get(f"/factors/{MEE_2022}/cite", params={"style": style, "lang": "en"})
    assert page.status_code == 200
    text = re.search(
        r'<pre class="citation snippet" id="citation-text"[^>]*>(.*?)</pre>', page.text, re.S
    )
    assert text is not None
    shown = text.group(1)
    assert f"http://127.0.0.1:8000/factors/{MEE_2022}@1.0.0" in shown
    assert version["content_sha256"] in shown
    assert "1.0.0" in shown
    assert 'aria-current="page"' in page.text


def test_gb7714_in_chinese_and_the_machine_citations(client: TestClient, seeded: None) -> None:
    page = client.get(f"/factors/{MEE_2022}@1.0.0/cite", params={"lang": "zh"})
    assert "2022年全国电力平均二氧化碳排放因子[DS/OL]//" in page.text
    csl = client.get(f"/factors/{MEE_2022}@1.0.0/cite.json", params={"lang": "en"})
    assert csl.headers["content-type"] == "application/vnd.citationstyles.csl+json"
    (item,) = json.loads(csl.text)
    assert item["type"] == "dataset"
    assert item["version"] == "1.0.0"
    assert item["URL"] == f"http://127.0.0.1:8000/factors/{MEE_2022}@1.0.0"
    bib = client.get(f"/factors/{MEE_2022}@1.0.0/cite.bib")
    assert bib.text.startswith("@misc{mee-cn_cn-electricity-co2_national-average-2022_1-0-0,")
    assert client.get(f"/factors/{MEE_2022}/cite", params={"style": "mla"}).status_code == 422


def test_the_hash_command_recomputes_the_content_hash_from_the_parquet_export(
    client: TestClient, seeded: None, tmp_path: Path
) -> None:
    page = client.get(f"/factors/{MEE_2022}@1.0.0", params={"lang": "en"}).text
    command = re.search(r'<code id="hash-command">(.*?)</code>', page, re.S)
    assert command is not None
    line = command.group(1).replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
    line = line.replace("&lt;", "<").replace("&gt;", ">")
    download, program = line.split(" && ")
    curl = shlex.split(download)
    assert curl[:2] == ["curl", "-sfo"]
    name, url = curl[2], curl[3]
    exported = client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert exported.status_code == 200
    (tmp_path / name).write_bytes(exported.content)
    python = shlex.split(program)
    assert python[:2] == ["python3", "-c"]
    result = subprocess.run(
        [sys.executable, "-c", python[2]], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    expected = client.get("/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0").json()
    assert result.stdout.strip() == expected["content_sha256"]
    assert expected["content_sha256"] in page


def test_bad_factor_urls_are_refused(client: TestClient, seeded: None) -> None:
    assert client.get(f"/factors/{MEE_2022}@1.0", headers=HTML).status_code == 422
    assert (
        client.get("/factors/mee-cn/cn-electricity-co2/bad code", headers=HTML).status_code == 422
    )
    assert client.get(f"/factors/{MEE_2022}@9.9.9", headers=HTML).status_code == 404
    assert client.get(f"/factors/{MEE_2022}.csv", headers=HTML).status_code == 404
    assert client.get(f"/factors/{MEE_2022}", params={"version": "1.0.0"}).status_code == 422


def _item(version: str, co2e: float, unit: str = "kWh", withdrawn: bool = False) -> dict[str, Any]:
    return {"version": version, "co2e": co2e, "unit": unit, "withdrawn": withdrawn}


def test_history_chart_coordinates() -> None:
    chart = history_chart([_item("1.1.0", 2.0, withdrawn=True), _item("1.0.0", 1.0)])
    assert chart is not None
    oldest, newest = chart.points
    assert (oldest.version, newest.version) == ("1.0.0", "1.1.0")
    assert oldest.x < newest.x
    assert newest.y < oldest.y  # higher value, higher on the page
    assert newest.withdrawn
    assert chart.unit == "kWh"
    assert chart.path.startswith(f"M{oldest.x},{oldest.y} L")
    assert all(20 <= point.y <= chart.baseline for point in chart.points)
    # One release, or the same value throughout: still a readable chart.
    (single,) = history_chart([_item("1.0.0", 0.5)]).points  # type: ignore[union-attr]
    assert 20 <= single.y <= 210
    flat = history_chart([_item("1.1.0", 0.0), _item("1.0.0", 0.0)])
    assert flat is not None
    assert len({point.y for point in flat.points}) == 1
    # Units differ between releases: no chart, the table alone.
    assert history_chart([_item("2.0.0", 1.0, unit="MWh"), _item("1.0.0", 1.0)]) is None
    assert history_chart([]) is None


def test_factor_refs_parse() -> None:
    assert parse_ref("grid-2022") == FactorRef("grid-2022", None, None)
    assert parse_ref("grid-2022@1.2.3") == FactorRef("grid-2022", "1.2.3", None)
    assert parse_ref("grid-2022@1.2.3.json") == FactorRef("grid-2022", "1.2.3", ".json")
    assert parse_ref("a.b:c.json") == FactorRef("a.b:c", None, ".json")
    with pytest.raises(InvalidParameter):
        parse_ref("grid@1.2")
    with pytest.raises(InvalidParameter):
        parse_ref("bad code")
