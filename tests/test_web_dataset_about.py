"""The dataset page in plain words: what a dataset covers, its method, its limits and its
licence, each in Chinese and English, from the dataset record (seeded from `dataset.json`,
written from the publisher's documents) and the API that carries the same fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.web.i18n import catalog
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER
from tests.test_web_datasets import texts

ABOUT = ("coverage", "method", "limits", "license_plain")
SECTIONS = {  # section key on the page: (zh field, en field, its heading label)
    "coverage": ("coverage_zh", "coverage_en", "dataset_about_coverage"),
    "method": ("method_zh", "method_en", "dataset_about_method"),
    "limits": ("limits_zh", "limits_en", "dataset_about_limits"),
    "license": ("license_plain_zh", "license_plain_en", "dataset_about_license"),
}
FIELDS = [f"{name}_{lang}" for name in ABOUT for lang in ("zh", "en")] + ["about_sources"]
CORE = [
    "ipcc-tfi/ipcc-2006-stationary-combustion",
    "mee-cn/cn-electricity-co2",
    "desnz-uk/uk-ghg-conversion-factors-2024",
]


def _section(html: str, key: str) -> str:
    """The text of the page's section `key` and nothing else (empty: no such section)."""
    start = html.find(f'aria-labelledby="about-{key}-heading"')
    if start < 0:
        return ""
    return html[start : html.index("</section>", start)]


def test_every_seed_dataset_says_all_four_in_both_languages_and_its_sources(
    settings: Settings,
) -> None:
    """Core and full scope alike: each dataset.json has every section in zh and en."""
    files = sorted(Path(settings.seed_dir).glob("*/*/dataset.json"))
    assert len(files) >= 7
    for path in files:
        spec = json.loads(path.read_text(encoding="utf-8"))
        missing = [name for name in FIELDS if not (spec.get(name) or "").strip()]
        assert not missing, (path, missing)
        assert "seed_data/README.md §" in spec["about_sources"], path


@pytest.mark.parametrize("dataset_id", CORE)
def test_the_api_carries_the_seeded_text(
    client: TestClient, seeded: None, settings: Settings, dataset_id: str
) -> None:
    spec = json.loads((Path(settings.seed_dir) / dataset_id / "dataset.json").read_text("utf-8"))
    api = client.get(f"/v1/datasets/{dataset_id}").json()
    assert {name: api[name] for name in FIELDS} == {name: spec[name] for name in FIELDS}
    listed = client.get("/v1/datasets", params={"limit": 100}).json()["items"]
    entry = next(item for item in listed if item["id"] == dataset_id)
    assert {name: entry[name] for name in FIELDS} == {name: spec[name] for name in FIELDS}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("dataset_id", CORE)
def test_the_page_shows_each_section_in_both_languages(
    client: TestClient, seeded: None, dataset_id: str, lang: Literal["zh", "en"]
) -> None:
    api = client.get(f"/v1/datasets/{dataset_id}").json()
    versions = client.get(f"/v1/datasets/{dataset_id}/versions").json()["items"]
    latest = next(v for v in versions if v["version"] == api["latest_version"])
    html = client.get(f"/datasets/{dataset_id}?lang={lang}").text
    labels = catalog()[lang]
    other = "en" if lang == "zh" else "zh"
    tag = {"zh": "zh-CN", "en": "en"}
    for key, (zh_field, en_field, label) in SECTIONS.items():
        section = _section(html, key)
        assert section, (dataset_id, key)
        # The heading in the reader's language, the reader's text first, then the other.
        assert texts(section, id=f"about-{key}-heading") == [labels[label]]
        own = {"zh": api[zh_field], "en": api[en_field]}
        # The reader's language is the page's own (no mark); the other one is marked.
        assert texts(section, class_="about-own-lang") == [" ".join(own[lang].split())]
        assert texts(section, class_="about-other-lang") == [" ".join(own[other].split())]
        assert texts(section, lang=tag[other]) == [" ".join(own[other].split())]
        assert section.index("about-own-lang") < section.index("about-other-lang")
    # The coverage says how many factors the current release holds, from the release itself.
    count = labels["dataset_about_factor_count"].format(
        version=latest["version"], count=f"{latest['row_count']:,}"
    )
    assert texts(_section(html, "coverage"), class_="about-count") == [count]
    sources = f"{labels['dataset_about_sources']}: {api['about_sources']}"
    assert texts(html, class_="about-sources") == [" ".join(sources.split())]


def test_a_publisher_gives_the_text_when_creating_a_dataset(
    client: TestClient, tokens: TokenKit
) -> None:
    """Optional fields of the create API, shown on the page; a dataset without them shows no
    empty section."""
    headers = tokens.writer(PUBLISHER)
    about = {name: f"Synthetic {name} text (test fixture)." for name in FIELDS}
    about["coverage_zh"] = "合成测试数据集的覆盖范围（测试用）。"
    created = client.post("/v1/datasets", json={**DATASET_BODY, **about}, headers=headers)
    assert created.status_code == 201, created.text
    assert {name: created.json()[name] for name in FIELDS} == about
    html = client.get(f"/datasets/{PUBLISHER}/steel-products?lang=en").text
    assert texts(_section(html, "coverage"), lang="zh-CN") == [about["coverage_zh"]]
    assert texts(_section(html, "limits"), class_="about-own-lang") == [about["limits_en"]]
    assert texts(_section(html, "license"), class_="about-own-lang") == [about["license_plain_en"]]

    bare = {**DATASET_BODY, "slug": "no-about"}
    assert client.post("/v1/datasets", json=bare, headers=headers).status_code == 201
    assert client.get(f"/v1/datasets/{PUBLISHER}/no-about").json()["method_en"] is None
    page = client.get(f"/datasets/{PUBLISHER}/no-about?lang=en").text
    assert not any(_section(page, key) for key in SECTIONS)  # no release: not even a count


def test_the_create_api_refuses_an_overlong_text(client: TestClient, tokens: TokenKit) -> None:
    body = {**DATASET_BODY, "limits_en": "x" * 8001}
    response = client.post("/v1/datasets", json=body, headers=tokens.writer(PUBLISHER))
    assert response.status_code == 422
    assert any("limits_en" in e["loc"] for e in response.json()["errors"])
