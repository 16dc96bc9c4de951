"""Dataset, version, release-diff and publisher pages: what they show equals what the API says.

The seed (real, cited data) gives the MEE, DESNZ and IPCC datasets; the release history that a
diff needs is synthetic (publisher `synthetic-web-b`, labelled synthetic in every record).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from app.core.config import Settings
from app.core.db import make_sessionmaker
from app.exports.service import create_snapshot
from app.exports.store import LocalExportStore
from tests.factories import (
    create_dataset,
    create_publisher,
    create_version,
    factor_fields,
)

SYNTH = "synthetic-web-b"
SYNTH_DATASET = "grid-history"
SYNTH_PATH = f"/datasets/{SYNTH}/{SYNTH_DATASET}"
HTML = {"Accept": "text/html"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Elements(HTMLParser):
    """Text and attributes of every element whose attributes include `wanted`."""

    def __init__(self, wanted: dict[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = wanted
        self.stack: list[tuple[str, int | None]] = []  # open tags, with their match if any
        self.found: list[tuple[dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        index = None
        if all(values.get(k) == v for k, v in self.wanted.items()):
            self.found.append((values, []))
            index = len(self.found) - 1
        if tag not in _VOID:
            self.stack.append((tag, index))

    def handle_endtag(self, tag: str) -> None:
        for position in range(len(self.stack) - 1, -1, -1):
            if self.stack[position][0] == tag:
                del self.stack[position:]
                return

    def handle_data(self, data: str) -> None:
        for _, index in self.stack:
            if index is not None:
                self.found[index][1].append(data)

    def feed_all(self, html: str) -> list[tuple[dict[str, str | None], str]]:
        self.feed(html)
        return [(attrs, " ".join("".join(parts).split())) for attrs, parts in self.found]


def elements(html: str, **wanted: str) -> list[tuple[dict[str, str | None], str]]:
    """(attributes, normalised text) of every element with these attribute values
    (`class_` for `class`, `data_x` for `data-x`)."""
    names = {k.rstrip("_").replace("_", "-"): v for k, v in wanted.items()}
    return _Elements(names).feed_all(html)


def texts(html: str, **wanted: str) -> list[str]:
    return [text for _, text in elements(html, **wanted)]


def number(text: str) -> float:
    return float(text.replace(",", "").split()[0])


# --------------------------------------------------------------------------- fixtures


def publish_history(engine: Engine) -> None:
    """Three synthetic releases: 1.1.0 changes a value and a name and adds a factor,
    2.0.0 removes one. Every record says it is synthetic."""
    with make_sessionmaker(engine).begin() as session:
        publisher = create_publisher(session, slug=SYNTH)
        dataset = create_dataset(session, publisher=publisher, slug=SYNTH_DATASET)
        first = [
            factor_fields("grid-a", co2e=0.5),
            factor_fields("grid-b", co2e=0.6, region="CN-GD"),
            factor_fields("grid-c", co2e=0.7),
        ]
        second = [
            factor_fields("grid-a", co2e=0.55, name_en="Synthetic test factor grid-a (revised)"),
            factor_fields("grid-b", co2e=0.6, region="CN-GD"),
            factor_fields("grid-c", co2e=0.7),
            factor_fields("grid-d", co2e=0.8),
        ]
        third = [f for f in second if f.factor_code != "grid-c"]
        for version, rows, day in (
            ("1.0.0", first, 1),
            ("1.1.0", second, 2),
            ("2.0.0", third, 3),
        ):
            create_version(
                session,
                dataset=dataset,
                factors=rows,
                version=version,
                published_at=datetime(2026, 1, day, tzinfo=UTC),
            )


@pytest.fixture
def history(db: Engine, seeded: None) -> None:
    publish_history(db)


# --------------------------------------------------------------------------- dataset page


def test_dataset_page_shows_the_apis_dataset_and_versions(
    client: TestClient, history: None
) -> None:
    api = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}").json()
    versions = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions").json()["items"]
    page = client.get(SYNTH_PATH + "?lang=en")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    # Names in both languages, each with its own lang attribute.
    assert f'<span lang="en">{api["title_en"]}</span>' in html
    assert f'<span class="other-lang" lang="zh-CN">{api["title_zh"]}</span>' in html
    assert [v["version"] for v in versions] == ["2.0.0", "1.1.0", "1.0.0"]
    for version in versions:
        assert f'href="{SYNTH_PATH}/versions/{version["version"]}?lang=en"' in html
    rows = texts(html, class_="num")[1:]  # the header cell first
    assert [int(number(text)) for text in rows] == [v["row_count"] for v in versions]
    # Each release links its diff against the one before.
    assert f'href="{SYNTH_PATH}/diff/1.1.0...2.0.0?lang=en"' in html
    assert f'href="{SYNTH_PATH}/diff/1.0.0...1.1.0?lang=en"' in html
    # Machine twins: link rel=alternate, and the snippets call the same API path.
    assert f'<link rel="alternate" type="application/json" href="{SYNTH_PATH}.json">' in html
    assert f"curl -s http://127.0.0.1:8000/v1/datasets/{SYNTH}/{SYNTH_DATASET}" in html


TWIN_HEADERS = ("etag", "cache-control", "content-type")


def test_json_twins_are_the_apis_answers(client: TestClient, history: None) -> None:
    """Every `.json` twin is the API's answer for the same resource: the same bytes and the
    same ETag, Cache-Control and Content-Type (a pinned release revalidates, a diff is
    immutable), and the same 304 to a conditional GET."""
    base = f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}"
    pairs = {
        f"{SYNTH_PATH}.json": base,
        f"{SYNTH_PATH}/versions.json": f"{base}/versions",
        f"{SYNTH_PATH}/versions/1.1.0.json": f"{base}/versions/1.1.0",
        f"{SYNTH_PATH}/versions/1.1.0/factors.json": f"{base}/versions/1.1.0/factors",
        f"{SYNTH_PATH}/diff/1.0.0...2.0.0.json": f"{base}/versions/2.0.0/diff?from=1.0.0",
        f"/publishers/{SYNTH}.json": f"/v1/datasets?publisher={SYNTH}",
        "/publishers/mee-cn.json": "/v1/datasets?publisher=mee-cn",
    }
    for twin, api in pairs.items():
        mine, theirs = client.get(twin), client.get(api)
        assert mine.status_code == theirs.status_code == 200, twin
        assert mine.content == theirs.content, twin
        for name in TWIN_HEADERS:
            assert mine.headers[name] == theirs.headers[name], (twin, name)
        again = client.get(twin, headers={"If-None-Match": mine.headers["etag"]})
        assert again.status_code == 304, twin
    version = client.get(f"{SYNTH_PATH}/versions/1.1.0.json")
    assert version.headers["cache-control"] == "public, max-age=300, must-revalidate"
    diff = client.get(f"{SYNTH_PATH}/diff/1.0.0...2.0.0.json")
    assert "immutable" in diff.headers["cache-control"]


def test_paged_twins_continue_with_the_apis_cursor(client: TestClient, history: None) -> None:
    """The factors twin pages like the API: its `next` stays on the twin, with a cursor that
    the API's own list also continues with."""
    base = f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/1.1.0/factors"
    twin = client.get(f"{SYNTH_PATH}/versions/1.1.0/factors.json?limit=2")
    api = client.get(f"{base}?limit=2")
    assert twin.json()["items"] == api.json()["items"]
    next_url = twin.json()["next"]
    assert next_url.startswith(f"{SYNTH_PATH}/versions/1.1.0/factors.json?")
    assert twin.headers["link"] == f'<{next_url}>; rel="next"'
    cursor = next_url.rsplit("cursor=", 1)[1]
    assert (
        client.get(next_url).json()["items"]
        == client.get(f"{base}?limit=2&cursor={cursor}").json()["items"]
    )


def test_a_withdrawn_or_unknown_release_twin_answers_as_the_api_does(
    client: TestClient, history: None
) -> None:
    base = f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}"
    for twin, api in (
        (f"{SYNTH_PATH}/versions/9.9.9.json", f"{base}/versions/9.9.9"),
        (f"{SYNTH_PATH}/versions/9.9.9/factors.json", f"{base}/versions/9.9.9/factors"),
        (f"{SYNTH_PATH}/diff/1.0.0...9.9.9.json", f"{base}/versions/9.9.9/diff?from=1.0.0"),
    ):
        mine, theirs = client.get(twin), client.get(api)
        assert mine.status_code == theirs.status_code == 404, twin
        assert mine.json()["detail"] == theirs.json()["detail"], twin
    assert client.get("/publishers/nobody.json").status_code == 404


def test_versions_csv_is_the_versions_list(client: TestClient, history: None) -> None:
    versions = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions").json()["items"]
    answer = client.get(f"{SYNTH_PATH}/versions.csv")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["version"], int(r["row_count"]), r["content_sha256"]) for r in rows] == [
        (v["version"], v["row_count"], v["content_sha256"]) for v in versions
    ]


def test_version_page_lists_its_factors_as_the_api_does(client: TestClient, history: None) -> None:
    factors = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/1.1.0/factors").json()
    version = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/1.1.0").json()
    html = client.get(f"{SYNTH_PATH}/versions/1.1.0?lang=zh").text
    assert '<html lang="zh-CN">' in html
    assert version["content_sha256"] in html
    assert "这不是最新版本。" in html  # 2.0.0 is the latest
    shown = {
        attrs["href"]: text
        for attrs, text in elements(html)
        if str(attrs.get("href", "")).startswith(f"/factors/{SYNTH}/")
    }
    for factor in factors["items"]:
        href = f"/factors/{SYNTH}/{SYNTH_DATASET}/{factor['factor_code']}@1.1.0?lang=zh"
        assert shown[href] == factor["factor_code"]
    co2e = [number(text) for text in texts(html, class_="num")[2:]]
    # Year and co2e cells alternate (two numeric columns per row).
    assert co2e[1::2] == [factor["co2e"] for factor in factors["items"]]
    # The CSV twin of a version is the API's own export.
    assert f'href="/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/1.1.0/export.csv"' in html


# --------------------------------------------------------------------------- diff


def test_diff_page_shows_field_level_before_and_after(client: TestClient, history: None) -> None:
    api = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/2.0.0/diff?from=1.0.0").json()
    page = client.get(f"{SYNTH_PATH}/diff/1.0.0...2.0.0?lang=en")
    assert page.status_code == 200
    html = page.text
    assert api["added"] == ["grid-d"]
    assert api["removed"] == ["grid-c"]
    assert "Factors added: 1" in html
    assert "Factors removed: 1" in html
    assert "Factors changed: 1" in html
    (change,) = api["changed"]
    assert change["factor_code"] == "grid-a"
    assert set(change["fields"]) == {"co2e", "name_en"}
    for name, values in change["fields"].items():
        cell = {"data_factor": "grid-a", "data_field": name}
        (before,) = texts(html, class_="before", **cell)
        (after,) = texts(html, class_="after", **cell)
        if isinstance(values["before"], float):
            assert (number(before), number(after)) == (values["before"], values["after"])
        else:
            assert (before, after) == (values["before"], values["after"])
    # Added and removed factors link to the release they are in.
    assert f'href="/factors/{SYNTH}/{SYNTH_DATASET}/grid-d@2.0.0?lang=en"' in html
    assert f'href="/factors/{SYNTH}/{SYNTH_DATASET}/grid-c@1.0.0?lang=en"' in html


def test_diff_csv_holds_every_change(client: TestClient, history: None) -> None:
    api = client.get(f"/v1/datasets/{SYNTH}/{SYNTH_DATASET}/versions/2.0.0/diff?from=1.0.0").json()
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"{SYNTH_PATH}/diff/1.0.0...2.0.0.csv").text))
    )
    assert [(r["change"], r["factor_code"]) for r in rows if r["change"] != "changed"] == [
        ("added", "grid-d"),
        ("removed", "grid-c"),
    ]
    changed = {(r["factor_code"], r["field"]): (r["before"], r["after"]) for r in rows[2:]}
    assert changed == {
        (c["factor_code"], name): (str(v["before"]), str(v["after"]))
        for c in api["changed"]
        for name, v in c["fields"].items()
    }


def test_a_large_diff_is_capped_with_links_to_the_full_twins(
    client: TestClient, history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.web.dataset_pages.DIFF_ROWS_SHOWN", 0)
    html = client.get(f"{SYNTH_PATH}/diff/1.0.0...2.0.0?lang=en").text
    assert "Showing the first 0 of 1" in html
    assert f'<a href="{SYNTH_PATH}/diff/1.0.0...2.0.0.json">JSON</a>' in html
    assert "grid-d@2.0.0" not in html


def test_the_version_form_lands_on_the_diff_url(client: TestClient, history: None) -> None:
    html = client.get(SYNTH_PATH + "?lang=en").text
    assert f'action="{SYNTH_PATH}/diff"' in html
    answer = client.get(f"{SYNTH_PATH}/diff?from=1.0.0&to=1.1.0&lang=en", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{SYNTH_PATH}/diff/1.0.0...1.1.0?lang=en"


def test_diff_errors_are_pages_for_browsers_and_problems_for_machines(
    client: TestClient, history: None
) -> None:
    missing = client.get(f"{SYNTH_PATH}/diff/1.0.0...9.9.9", headers=HTML)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    malformed = client.get(f"{SYNTH_PATH}/diff/1.0.0..1.1.0?lang=en", headers=HTML)
    assert malformed.status_code == 422
    assert "OLDER...NEWER" in malformed.text
    twin = client.get(f"{SYNTH_PATH}/diff/1.0.0...9.9.9.json", headers=HTML)
    assert twin.status_code == 404
    assert twin.headers["content-type"] == "application/problem+json"


# --------------------------------------------------------------------------- downloads


def test_downloads_follow_the_license_and_what_the_export_api_does(
    client: TestClient, seeded: None
) -> None:
    """IPCC 2006 forbids redistribution: the export API still serves its per-version files
    (with the license), so those are links; the national snapshot never holds it, so that
    button is disabled and says why."""
    base = "/v1/datasets/ipcc-tfi/ipcc-2006-stationary-combustion/versions/1.0.0/export"
    html = client.get("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en").text
    for fmt in ("parquet", "arrow", "arrows", "csv"):
        assert f'href="{base}.{fmt}"' in html
        assert client.get(f"{base}.{fmt}").status_code == 200
    (disabled,) = elements(html, aria_disabled="true")
    attrs, label = disabled
    assert label == "National snapshot"
    reason = texts(html, id=str(attrs["aria-describedby"]))[0]
    assert "does not allow redistribution" in reason
    assert "LicenseRef-IPCC-Copyright" in reason
    assert "for your own use" in html
    zh = client.get("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=zh").text
    assert "不允许再分发" in zh


def test_the_snapshot_button_links_the_snapshot_that_holds_the_release(
    client: TestClient, seeded: None, db: Engine, settings: Settings
) -> None:
    html = client.get("/datasets/mee-cn/cn-electricity-co2?lang=en").text
    assert "No national snapshot includes this version yet." in html
    with make_sessionmaker(db).begin() as session:
        snapshot = create_snapshot(
            session, export_store=LocalExportStore(settings.export_dir), actor="test"
        )
        snapshot_id = snapshot.id
    html = client.get("/datasets/mee-cn/cn-electricity-co2?lang=en").text
    assert f'href="/v1/snapshots/{snapshot_id}/factors.parquet"' in html
    assert 'aria-disabled="true"' not in html


# --------------------------------------------------------------------------- publisher


def test_publisher_page_lists_its_public_datasets(
    client: TestClient, history: None, db: Engine
) -> None:
    with make_sessionmaker(db).begin() as session:
        from sqlalchemy import select

        from app.datasets.models import Publisher

        owner = session.execute(select(Publisher).where(Publisher.slug == SYNTH)).scalar_one()
        hidden = create_dataset(session, publisher=owner, slug="members-only", access="registered")
        create_version(session, dataset=hidden, factors=[factor_fields("m-1")])
    api = client.get(f"/v1/datasets?publisher={SYNTH}").json()["items"]
    html = client.get(f"/publishers/{SYNTH}?lang=en").text
    assert [d["id"] for d in api] == [f"{SYNTH}/{SYNTH_DATASET}"]
    assert f'href="/datasets/{SYNTH}/{SYNTH_DATASET}?lang=en"' in html
    assert "members-only" not in html
    # A registered dataset never shows to the pages' anonymous reader.
    assert client.get(f"/datasets/{SYNTH}/members-only", headers=HTML).status_code == 404
    rows = list(csv.DictReader(io.StringIO(client.get(f"/publishers/{SYNTH}.csv").text)))
    assert [r["id"] for r in rows] == [d["id"] for d in api]
    assert client.get("/publishers/nobody", headers=HTML).status_code == 404


def test_language_comes_from_the_url_then_accept_language(client: TestClient, seeded: None) -> None:
    english = client.get("/publishers/mee-cn", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text
    # The page depends on the language asked for (and, once compressed, on the encoding).
    assert "Accept-Language" in {name.strip() for name in english.headers["vary"].split(",")}
    chinese = client.get("/publishers/mee-cn?lang=zh", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in chinese.text
    assert "中华人民共和国生态环境部" in chinese.text


# --------------------------------------------------------------------------- snapshots


def test_snapshots_page_shows_the_manifest_the_api_gives(
    client: TestClient, seeded: None, db: Engine, settings: Settings
) -> None:
    assert "No snapshot has been created yet." in client.get("/snapshots?lang=en").text
    with make_sessionmaker(db).begin() as session:
        create_snapshot(session, export_store=LocalExportStore(settings.export_dir), actor="test")
    answer, twin = client.get("/v1/snapshots"), client.get("/snapshots.json")
    assert twin.content == answer.content
    for name in TWIN_HEADERS:
        assert twin.headers[name] == answer.headers[name], name
    api = answer.json()
    (snapshot,) = api["items"]
    html = client.get("/snapshots?lang=en").text
    assert f"Snapshot {snapshot['id']}" in html
    for entry in snapshot["files"]:
        assert f'href="{entry["url"]}"' in html
        assert f'<code class="hash">{entry["sha256"]}</code>' in html
    sizes = [int(number(text)) for text in texts(html, data_testid="file-bytes")]
    assert sizes == [entry["bytes"] for entry in snapshot["files"]]
    rows = [int(number(text)) for text in texts(html, data_testid="version-rows")]
    assert rows == [v["row_count"] for v in snapshot["dataset_versions"]]
    for version in snapshot["dataset_versions"]:
        assert f'<code class="hash">{version["content_sha256"]}</code>' in html
    for license_entry in snapshot["licenses"]:
        assert license_entry["attribution"] in html.replace("&#39;", "'")
    assert 'href="/v1/snapshots/' + snapshot["id"] + '/manifest.json"' in html
    files = list(csv.DictReader(io.StringIO(client.get("/snapshots.csv").text)))
    assert [(r["file"], int(r["bytes"]), r["sha256"]) for r in files] == [
        (entry["name"], entry["bytes"], entry["sha256"]) for entry in snapshot["files"]
    ]


# --------------------------------------------------------------------------- labels

PART_B_FILES = [
    "dataset_pages.py",
    "resolve_pages.py",
    "snapshot_pages.py",
    *(
        f"templates/{name}.html"
        for name in (
            "_dataset_macros",
            "dataset",
            "version",
            "diff",
            "publisher",
            "resolve",
            "compare",
            "snapshots",
        )
    ),
]
# Labels built from data (`t("dataset_status_" ~ status)`), with every value the data has.
DYNAMIC_LABELS = {
    "dataset_status_": (
        "active", "suspended", "deprecated", "draft", "submitted", "rejected", "published",
        "withdrawn", "registered", "latest",
    ),
    "resolve_match_": ("exact", "fallback"),
    "resolve_step_": ("chosen", "passed", "not_needed", "other_unit_only"),
    "resolve_relation_": ("requested", "member_of", "parent"),
    "resolve_kind_": ("global", "country", "subdivision", "grouping"),
    "compare_field_": (
        "boundary", "region", "reference_year", "source_title", "method", "gwp_set",
    ),
}  # fmt: skip


def test_every_label_of_these_pages_exists_in_both_languages() -> None:
    from pathlib import Path

    from app.web.i18n import catalog

    web = Path(__file__).resolve().parents[1] / "app" / "web"
    used: set[str] = set()
    for name in PART_B_FILES:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']""", (web / name).read_text()))
    # A key ending in "_" is a prefix completed from data: each needs its list of values.
    prefixes = {key for key in used if key.endswith("_")}
    assert prefixes == set(DYNAMIC_LABELS)
    used -= prefixes
    used |= {prefix + value for prefix, values in DYNAMIC_LABELS.items() for value in values}
    labels = catalog()
    for lang in ("zh", "en"):
        missing = sorted(key for key in used if key not in labels[lang])
        assert not missing, (lang, missing)


def test_a_withdrawn_release_keeps_its_page_with_the_reason(
    client: TestClient, seeded: None, db: Engine
) -> None:
    with make_sessionmaker(db).begin() as session:
        publisher = create_publisher(session, slug=f"{SYNTH}-w")
        dataset = create_dataset(session, publisher=publisher, slug="withdrawn-story")
        create_version(session, dataset=dataset, factors=[factor_fields("w-1", co2e=1.0)])
        create_version(
            session,
            dataset=dataset,
            factors=[factor_fields("w-1", co2e=9.0)],
            version="1.0.1",
            status="withdrawn",
            withdrawn_reason="Synthetic: a typo in co2e (test fixture).",
        )
    path = f"/datasets/{SYNTH}-w/withdrawn-story"
    html = client.get(f"{path}/versions/1.0.1?lang=en").text
    assert "Withdrawn" in html
    assert "Synthetic: a typo in co2e (test fixture)." in html
    assert f'href="{path}/versions/1.0.0?lang=en"' in html  # the release that is current
    # Still diffable, and its downloads are what the export API serves.
    diff = client.get(f"{path}/diff/1.0.0...1.0.1.json").json()
    assert diff["changed"][0]["fields"]["co2e"] == {"before": 1.0, "after": 9.0}
    assert "This version is withdrawn and will not be in a new snapshot." in html
    export = f"/v1/datasets/{SYNTH}-w/withdrawn-story/versions/1.0.1/export.csv"
    assert f'href="{export}"' in html
    assert client.get(export).status_code == 200


def test_diff_rows_carry_the_factor_names(client: TestClient, history: None) -> None:
    html = client.get(f"{SYNTH_PATH}/diff/1.0.0...2.0.0?lang=en").text
    # Changed and added: the newer release's names; removed: the older release's.
    assert '<span lang="en">Synthetic test factor grid-a (revised)</span>' in html
    assert '<span lang="en">Synthetic test factor grid-d</span>' in html
    assert '<span lang="en">Synthetic test factor grid-c</span>' in html
    assert '<span class="other-lang" lang="zh-CN">合成测试因子 grid-c</span>' in html


def test_data_text_in_the_other_language_is_marked_with_it(
    client: TestClient, seeded: None
) -> None:
    from app.web.templating import templates

    text_lang = templates.env.filters["text_lang"]
    assert text_lang("Initial seed: national average factors") == "en"
    assert text_lang("关于发布2022年电力二氧化碳排放因子的公告") == "zh-CN"
    assert text_lang("数据来源：生态环境部 … Source: Ministry of Ecology and Environment") is None
    api = client.get("/v1/datasets/ipcc-tfi/ipcc-2006-stationary-combustion").json()
    zh = client.get("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=zh").text
    assert f'<p lang="en">{api["description"]}</p>'.replace("'", "&#39;") in zh
    en = client.get("/datasets/ipcc-tfi/ipcc-2006-stationary-combustion?lang=en").text
    assert '<p lang="en">' not in en  # the page's own language needs no mark


@pytest.mark.parametrize(
    "path",
    [
        f"/datasets/{SYNTH}/grid-history",
        f"/datasets/{SYNTH}/grid-history.json",
        f"/datasets/{SYNTH}/grid-history/versions/1.0.0",
        f"/datasets/{SYNTH}/grid-history/versions/1.0.0/factors.json",
        f"/datasets/{SYNTH}/grid-history/diff/1.0.0...1.1.0",
        f"/datasets/{SYNTH}/grid-history/diff/1.0.0...1.1.0.csv",
        f"/publishers/{SYNTH}",
        "/snapshots",
        "/changes",
        "/changes.json",
        "/changes.atom",
        "/resolve",
        "/compare.json",
    ],
)
def test_a_mistyped_query_parameter_is_refused_not_ignored(
    client: TestClient, history: None, path: str
) -> None:
    """As in the API: `?regoin=CN` must not quietly show something other than was asked."""
    assert client.get(path, params={"lang": "en"}).status_code == 200, path
    answer = client.get(path, params={"lang": "en", "regoin": "CN"})
    assert answer.status_code == 422, path
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["loc"] == ["query", "regoin"]
    page = client.get(path, params={"regoin": "CN"}, headers={"Accept": "text/html"})
    assert page.status_code == 422
    assert "regoin" in page.text
