"""Problem details in Chinese and English: `detail` (and `errors[].detail`) follow
`Accept-Language` (the web explorer's pages: the page's language); `type` and `title` do not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.problem_text import (
    CATALOGUE_PATH,
    CatalogueError,
    Message,
    catalogue,
    check_catalogue,
    language_from_header,
    placeholders,
)

# The language of a problem is chosen above the database: the first backend is enough.
pytestmark = pytest.mark.dialect_neutral

GRID = "/v1/factors/mee-cn/cn-electricity-co2/national-average-2022"
HAN = re.compile(r"[\u4e00-\u9fff]")
# Chinese characters or full-width punctuation (a template such as `{loc}：{detail}`).
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def both(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[Any, Any]:
    """The same request answered in English and in Chinese."""
    headers = kwargs.pop("headers", {})
    en = client.request(method, url, headers={**headers, **EN}, **kwargs)
    zh = client.request(method, url, headers={**headers, **ZH}, **kwargs)
    return en, zh


def assert_bilingual(en: Any, zh: Any, status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    assert en.status_code == zh.status_code == status, (en.text, zh.text)
    for response, lang in ((en, "en"), (zh, "zh-CN")):
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["content-language"] == lang
        assert "accept-language" in response.headers["vary"].lower()
    en_body, zh_body = en.json(), zh.json()
    # Clients branch on type and title: the same in both languages.
    assert (en_body["type"], en_body["title"], en_body["status"]) == (
        zh_body["type"],
        zh_body["title"],
        zh_body["status"],
    )
    assert not HAN.search(en_body["detail"]), en_body["detail"]
    assert HAN.search(zh_body["detail"]), zh_body["detail"]
    return en_body, zh_body


@pytest.mark.parametrize(
    ("url", "en_detail", "zh_detail"),
    [
        (
            "/v1/datasets/mee-cn/no-such-dataset",
            "No dataset mee-cn/no-such-dataset.",
            "没有数据集 mee-cn/no-such-dataset。",
        ),
        (
            "/v1/datasets/mee-cn/cn-electricity-co2/versions/9.9.9",
            "No version 9.9.9 of mee-cn/cn-electricity-co2.",
            "数据集 mee-cn/cn-electricity-co2 没有版本 9.9.9。",
        ),
        (
            "/v1/factors/mee-cn/cn-electricity-co2/national-average-1999",
            "No factor 'national-average-1999' in mee-cn/cn-electricity-co2 version 1.0.0 "
            "(latest).",
            "mee-cn/cn-electricity-co2 的版本 1.0.0（最新版本）中没有因子“national-average-1999”。",
        ),
        (
            f"{GRID}?version=9.9.9",
            "No released version 9.9.9 of mee-cn/cn-electricity-co2.",
            "数据集 mee-cn/cn-electricity-co2 没有已发布的版本 9.9.9。",
        ),
        ("/publishers/nobody.json", "No publisher 'nobody'.", "没有发布机构“nobody”。"),
        ("/v1/nowhere", "No resource at /v1/nowhere.", "/v1/nowhere 处没有资源。"),
    ],
)
def test_not_found_in_both_languages(
    client: TestClient, seeded: None, url: str, en_detail: str, zh_detail: str
) -> None:
    en, zh = assert_bilingual(*both(client, "GET", url), 404)
    assert en["detail"] == en_detail
    assert zh["detail"] == zh_detail


def test_language_negotiation(client: TestClient, seeded: None) -> None:
    url = "/v1/datasets/mee-cn/no-such-dataset"
    for header, lang in [
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("zh-Hans-CN, en;q=0.5", "zh-CN"),
        ("en;q=0.4, zh-cn;q=0.8", "zh-CN"),
        ("en", "en"),
        ("fr-FR", "en"),
        ("zh-CN;q=0, en", "en"),
        ("", "en"),
    ]:
        response = client.get(url, headers={"Accept-Language": header})
        assert response.headers["content-language"] == lang, header
    assert client.get(url).headers["content-language"] == "en"  # no header: English


def test_request_validation_errors_are_translated(client: TestClient, seeded: None) -> None:
    en, zh = assert_bilingual(*both(client, "GET", "/v1/factors?limit=0&year=abc"), 422)
    assert en["title"] == zh["title"] == "Invalid request"
    by_loc = {tuple(e["loc"]): e for e in zh["errors"]}
    assert by_loc["query", "limit"]["detail"] == "应大于或等于 1"
    assert by_loc["query", "year"]["detail"] == "应为整数，无法将文本解析为整数"
    assert zh["detail"].startswith("请求无效（")
    en_by_loc = {tuple(e["loc"]): e for e in en["errors"]}
    assert en_by_loc["query", "limit"]["detail"] == "Input should be greater than or equal to 1"
    # Codes (what a program reads) do not change.
    assert [e["code"] for e in en["errors"]] == [e["code"] for e in zh["errors"]]


def test_did_you_mean_is_translated(client: TestClient, seeded: None) -> None:
    en, zh = assert_bilingual(*both(client, "GET", f"{GRID}?gwp=ar6"), 422)
    assert "did you mean 'AR6'?" in en["errors"][0]["detail"]
    assert "您是否指 'AR6'？" in zh["errors"][0]["detail"]
    assert en["suggestions"] == zh["suggestions"] == ["AR6"]


def test_auth_errors_are_translated(client: TestClient, seeded: None) -> None:
    en, zh = assert_bilingual(*both(client, "GET", "/v1/audit"), 401)
    assert en["detail"] == "This request needs a bearer access token."
    assert zh["detail"] == "此请求需要 Bearer 访问令牌。"
    # The challenge header stays ASCII (RFC 6750).
    assert zh_header_ascii(client)
    en, zh = assert_bilingual(
        *both(client, "GET", "/v1/audit", headers={"Authorization": "Bearer not-a-jwt"}), 401
    )
    assert zh["detail"].startswith("访问令牌无效")


def zh_header_ascii(client: TestClient) -> bool:
    response = client.get("/v1/audit", headers=ZH)
    return bool(response.headers["www-authenticate"].isascii())


def test_insufficient_scope_is_translated(
    client: TestClient, seeded: None, reader_token: Any
) -> None:
    headers = reader_token()
    en, zh = assert_bilingual(*both(client, "GET", "/v1/audit", headers=headers), 403)
    assert en["detail"] == "The access token lacks the scope(s) this request needs: admin."
    assert zh["detail"] == "访问令牌缺少此请求所需的权限范围：admin。"


def test_chinese_page_shows_a_chinese_404(client: TestClient, seeded: None) -> None:
    """The web explorer's problems are in the page's language, whatever the header says."""
    page = client.get(
        "/factors/mee-cn/cn-electricity-co2/no-such-factor?lang=zh",
        headers={"Accept": "text/html", "Accept-Language": "en"},
    )
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "mee-cn/cn-electricity-co2 的已发布版本中都没有 no-such-factor。" in page.text
    assert "No released version" not in page.text
    english = client.get(
        "/factors/mee-cn/cn-electricity-co2/no-such-factor?lang=en",
        headers={"Accept": "text/html"},
    )
    assert "No released version of mee-cn/cn-electricity-co2 has no-such-factor." in english.text


# --- The catalogue ------------------------------------------------------------------------


def test_catalogue_has_both_languages_and_same_placeholders() -> None:
    entries = catalogue()
    assert entries
    for key, texts in entries.items():
        assert placeholders(texts["en"]) == placeholders(texts["zh"]), key
        assert CJK.search(texts["zh"]), f"{key}: its Chinese has no Chinese"


def test_catalogue_check_refuses_gaps() -> None:
    with pytest.raises(CatalogueError, match="no 'zh' text"):
        check_catalogue({"x": {"en": "only English"}})
    with pytest.raises(CatalogueError, match="placeholders"):
        check_catalogue({"x": {"en": "No {thing}.", "zh": "没有。"}})
    with pytest.raises(ValueError, match="takes"):
        Message("not_found.dataset")
    with pytest.raises(KeyError):
        Message("no.such.key")


def test_every_key_used_in_the_code_is_in_the_catalogue() -> None:
    used = set()
    for path in Path("app").rglob("*.py"):
        used |= set(re.findall(r"""Message\(\s*"([a-z_.]+)\"""", path.read_text()))
    assert used, "no Message() found: the scan is broken"
    missing = used - set(catalogue())
    assert not missing, f"keys used but not in {CATALOGUE_PATH.name}: {sorted(missing)}"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh-Hans", "zh"),
        ("ZH-cn", "zh"),
        ("en-US,zh;q=0.5", "en"),
        ("fr, zh;q=0.5", "zh"),
        ("fr", "en"),
        ("*", "en"),
        (None, "en"),
        ("zh;q=bad, en", "en"),
    ],
)
def test_language_from_header(header: str | None, lang: str) -> None:
    assert language_from_header(header) == lang


# --- Uploads, estimates, the resolve page -------------------------------------------------


def test_upload_report_is_translated(client: TestClient, tokens: Any) -> None:
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
    from tests.upload_files import csv_bytes, synthetic_row

    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    rows = [
        synthetic_row(0, unit="kwhh"),
        synthetic_row(1, region="XK"),
        synthetic_row(2, co2e=1.0),
        synthetic_row(3, reference_year="abc"),
    ]
    content = csv_bytes(rows)
    answers = [
        client.post(
            VERSIONS,
            headers={**headers, **lang},
            data={"version": "1.0.0"},
            files={"file": ("synthetic.csv", content, "text/csv")},
        )
        for lang in (EN, ZH)
    ]
    en, zh = assert_bilingual(answers[0], answers[1], 422)
    assert en["title"] == zh["title"] == "The upload has errors; nothing was stored"
    assert en["detail"].startswith("synthetic.csv: 4 error(s): row 2, unit: 'kwhh' is not a unit")
    assert zh["detail"].startswith("synthetic.csv：4 个错误：第 2 行，unit：“kwhh”不是单位")
    assert zh["detail"].endswith("（另有 1 个）")
    zh_errors = {(e["row"], e["column"], e["code"]): e["detail"] for e in zh["errors"]}
    en_errors = {(e["row"], e["column"], e["code"]): e["detail"] for e in en["errors"]}
    assert zh_errors.keys() == en_errors.keys()  # the same problems, with the same codes
    assert zh_errors[2, "unit", "unknown_unit"] == "“kwhh”不是单位"
    assert zh_errors[3, "region", "unknown_region"].startswith("“XK”不在地区表中")
    assert zh_errors[4, "co2e", "co2e_mismatch"].startswith("co2e 1.0 与按 AR5 GWP100")
    assert zh_errors[5, "reference_year", "int_parsing"] == "应为整数，无法将文本解析为整数"
    # The report inside the problem is in the same language.
    assert zh["report"]["errors"][0]["detail"] == "“kwhh”不是单位"
    assert en["report"]["errors"][0]["detail"] == "'kwhh' is not a unit"


def test_estimate_errors_are_translated(client: TestClient, seeded: None) -> None:
    line = {"activity_id": "electricity-grid-mix", "region": "CN", "year": 2022}
    en, zh = assert_bilingual(
        *both(client, "POST", "/v1/estimate", json={**line, "amount": -1000, "unit": "kWh"}), 422
    )
    assert en["detail"] == "amount must be a positive finite number, not -1000"
    assert zh["detail"] == "amount 须为有限正数，而不是 -1000"
    assert zh["errors"][0]["detail"] == zh["detail"]
    en, zh = assert_bilingual(
        *both(client, "POST", "/v1/estimate", json={**line, "amount": 1, "unit": "kwhh"}), 422
    )
    assert zh["detail"].startswith("“kwhh”不是单位；您是否指 'kWh'")
    assert en["suggestions"] == zh["suggestions"]
    en, zh = assert_bilingual(
        *both(
            client,
            "POST",
            "/v1/estimate",
            json={**line, "activity_id": "no-such-activity", "amount": 1, "unit": "kWh"},
        ),
        404,
    )
    assert en["title"] == zh["title"] == "No matching factor"
    assert zh["detail"].startswith("在 CN → GLO 中没有活动“no-such-activity”参考年份 ≤ 2022 的因子")


def test_chinese_resolve_page_shows_the_error_in_chinese(client: TestClient, seeded: None) -> None:
    query = "activity_id=no-such-activity&region=CN&year=2022&amount=1&unit=kWh"
    zh = client.get(f"/resolve?{query}&lang=zh", headers={"Accept": "text/html"})
    en = client.get(f"/resolve?{query}&lang=en", headers={"Accept": "text/html"})
    assert zh.status_code == en.status_code == 200
    assert "没有活动“no-such-activity”" in zh.text
    assert "no factor for activity &#39;no-such-activity&#39;" in en.text


def test_batch_line_errors_follow_accept_language(client: TestClient, seeded: None) -> None:
    lines = {
        "items": [
            {"activity_id": "electricity-grid-mix", "region": "CN", "year": 2022},
            {"activity_id": "electricity-grid-mix", "region": "cn", "year": 2022},
        ]
    }
    en = client.post("/v1/factors:resolve", json=lines, headers=EN)
    zh = client.post("/v1/factors:resolve", json=lines, headers=ZH)
    assert en.status_code == zh.status_code == 200
    assert zh.headers["content-language"] == "zh-CN"
    assert "accept-language" in zh.headers["vary"].lower()
    en_error, zh_error = en.json()["items"][1]["error"], zh.json()["items"][1]["error"]
    assert en_error["code"] == zh_error["code"] == "invalid_region"
    assert en_error["detail"].startswith("'cn' is not an ISO 3166-1 alpha-2")
    assert zh_error["detail"].startswith("“cn”不是 ISO 3166-1 二字母代码")
    assert "您是否指 'CN'" in zh_error["detail"]
    # The factors themselves are the same bytes of data in both languages.
    assert en.json()["items"][0] == zh.json()["items"][0]


@pytest.mark.parametrize(
    ("url", "zh_start"),
    [
        ("/v1/factors?regoin=CN", "未知的查询参数：regoin。可用参数："),
        ("/v1/factors?cursor=garbage", "此游标不是本服务签发的"),
        ("/v1/datasets/mee-cn/cn-electricity-co2/versions/v1", "“v1”不是 MAJOR.MINOR.PATCH"),
        (f"{GRID}?version=1.0.0&as_of=2024-01-01", "`version` 与 `as_of` 只能给出其一"),
    ],
)
def test_query_problems_are_translated(
    client: TestClient, seeded: None, url: str, zh_start: str
) -> None:
    _, zh = assert_bilingual(*both(client, "GET", url), 422)
    assert zh["detail"].startswith(zh_start), zh["detail"]


def test_workflow_conflicts_are_translated(client: TestClient, tokens: Any) -> None:
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
    from tests.upload_files import csv_bytes, synthetic_row

    headers = tokens.writer(PUBLISHER)
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=headers).status_code == 201
    uploaded = client.post(
        VERSIONS,
        headers=headers,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes([synthetic_row(0)]), "text/csv")},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=headers).status_code == 200
    en, zh = assert_bilingual(
        *both(client, "POST", f"{VERSIONS}/1.0.0/submit", headers=headers), 409
    )
    assert re.fullmatch(r".* is submitted by \S+ at \S+; this needs it to be draft", en["detail"])
    assert re.fullmatch(
        r".* 的状态为 submitted（\S+，\S+）；此操作要求其状态为 draft", zh["detail"]
    )
    assert en["status"] == zh["status"] == 409


def test_body_problems_are_translated(client: TestClient, seeded: None) -> None:
    body = b'{"activity_id": "x", "activity_id": "y"}'
    headers = {"Content-Type": "application/json"}
    en, zh = assert_bilingual(
        *both(client, "POST", "/v1/estimate", content=body, headers=headers), 422
    )
    assert en["detail"].startswith("The request body is not strict JSON: ")
    assert zh["detail"].startswith("请求正文不是严格的 JSON：")


def test_body_too_large_is_translated(client: TestClient, seeded: None) -> None:
    body = b'{"pad": "' + b"x" * (300 * 1024) + b'"}'
    headers = {"Content-Type": "application/json"}
    en, zh = assert_bilingual(
        *both(client, "POST", "/v1/estimate", content=body, headers=headers), 413
    )
    assert en["detail"] == "The request body is larger than the 256 KB this service accepts here."
    assert zh["detail"] == "请求正文超过了此处允许的 256 KB。"


def test_search_too_broad_is_translated(
    client: TestClient, seeded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.factors import service

    monkeypatch.setattr(service, "TEXT_SEARCH_CANDIDATE_CAP", 2)  # the seed has more factors
    # A term of two characters has no text index, so it cannot narrow the search.
    en, zh = assert_bilingual(*both(client, "GET", "/v1/factors?q=xy"), 422)
    assert en["title"] == zh["title"] == "Search too broad"
    assert "'xy' is shorter than three characters" in en["detail"]
    assert "Add a filter" in en["detail"]
    assert zh["detail"].startswith("文本检索 q='xy' 需要排序的因子超过 2 个（'xy' 短于三个字符")
    assert zh["errors"][0]["detail"] == "候选因子超过 2 个"


def test_dataset_create_and_deprecate_conflicts_are_translated(
    client: TestClient, tokens: Any
) -> None:
    from tests.test_dataset_deprecation import NEW, OLD, _publish
    from tests.test_publishing import DATASET_BODY, PUBLISHER

    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    for slug in (OLD, NEW):
        body = {**DATASET_BODY, "slug": slug}
        assert client.post("/v1/datasets", json=body, headers=writer).status_code == 201
        _publish(client, writer, reviewer, slug)
    en, zh = assert_bilingual(
        *both(client, "POST", "/v1/datasets", json=DATASET_BODY, headers=writer), 409
    )
    assert en["detail"] == f"Dataset {PUBLISHER}/{OLD} already exists."
    assert zh["detail"] == f"数据集 {PUBLISHER}/{OLD} 已存在。"

    hidden = {**DATASET_BODY, "slug": "members-only", "access": "registered"}
    assert client.post("/v1/datasets", json=hidden, headers=writer).status_code == 201
    deprecate = f"/v1/datasets/{PUBLISHER}/{OLD}/deprecate"
    to_hidden = {"superseded_by": f"{PUBLISHER}/members-only", "reason": "synthetic"}
    en, zh = assert_bilingual(
        *both(client, "POST", deprecate, json=to_hidden, headers=reviewer), 409
    )
    assert en["detail"].endswith("which anonymous readers cannot see.")
    assert zh["detail"] == (
        f"{PUBLISHER}/members-only 不能取代 {PUBLISHER}/{OLD}：{PUBLISHER}/{OLD} 为公开数据集，"
        "而其后继数据集的访问级别为“registered”，匿名读者无法查看。"
    )

    # NEW superseded by OLD, then OLD by NEW: a loop.
    to_old = {"superseded_by": f"{PUBLISHER}/{OLD}", "reason": "synthetic"}
    new_deprecate = f"/v1/datasets/{PUBLISHER}/{NEW}/deprecate"
    assert client.post(new_deprecate, json=to_old, headers=reviewer).status_code == 200
    to_new = {"superseded_by": f"{PUBLISHER}/{NEW}", "reason": "synthetic"}
    en, zh = assert_bilingual(*both(client, "POST", deprecate, json=to_new, headers=reviewer), 409)
    assert en["detail"].endswith(f"its own chain of successors leads back to {PUBLISHER}/{OLD}.")
    assert zh["detail"] == (
        f"{PUBLISHER}/{NEW} 不能取代 {PUBLISHER}/{OLD}：其自身的后继链最终指回 {PUBLISHER}/{OLD}。"
    )

    en, zh = assert_bilingual(
        *both(client, "POST", new_deprecate, json=to_old, headers=reviewer), 409
    )
    match = re.fullmatch(
        rf"Dataset {PUBLISHER}/{NEW} is already deprecated \(by (\S+) at (\S+)\)\.", en["detail"]
    )
    assert match is not None, en["detail"]
    by, at = match.groups()
    assert zh["detail"] == f"数据集 {PUBLISHER}/{NEW} 已被弃用（由 {by} 于 {at} 弃用）。"


def test_draft_upload_conflicts_are_translated(
    client: TestClient, tokens: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.publishing import drafts
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS, publish
    from tests.upload_files import csv_bytes, synthetic_row

    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201

    def upload(version: str, row: int, *, notes: str | None = None) -> tuple[Any, Any]:
        data = {"version": version, **({"release_notes": notes} if notes is not None else {})}
        file = ("f.csv", csv_bytes([synthetic_row(row)]), "text/csv")
        return both(client, "POST", VERSIONS, headers=writer, data=data, files={"file": file})

    en, zh = assert_bilingual(*upload("1.0.0", 0, notes="synthetic \u202e notes"), 422)
    assert en["detail"] == "release_notes contains U+202E RIGHT-TO-LEFT OVERRIDE at character 11"
    assert zh["detail"] == "release_notes 含有 U+202E RIGHT-TO-LEFT OVERRIDE at character 11"
    assert zh["errors"][0]["detail"] == (
        "含有 U+202E RIGHT-TO-LEFT OVERRIDE at character 11："
        "不允许控制字符、双向控制字符和不可见字符"
    )

    first = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes([synthetic_row(0)]), "text/csv")},
    )
    assert first.status_code == 201, first.text

    # Another request's upload lands while this one waits for the dataset's lock: the second
    # look (under the lock) finds another file than the first.
    real_existing = drafts._existing_version
    looks: list[int] = []

    def existing_after_another_upload(session: Any, dataset: Any, version: str) -> Any:
        found = real_existing(session, dataset, version)
        looks.append(1)
        if len(looks) == 2 and found is not None:
            found.upload_file_sha256 = "f" * 64
        return found

    monkeypatch.setattr(drafts, "_existing_version", existing_after_another_upload)
    en = client.post(
        VERSIONS,
        headers={**writer, **EN},
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes([synthetic_row(1)]), "text/csv")},
    )
    looks.clear()
    zh = client.post(
        VERSIONS,
        headers={**writer, **ZH},
        data={"version": "1.0.0"},
        files={"file": ("f.csv", csv_bytes([synthetic_row(1)]), "text/csv")},
    )
    monkeypatch.setattr(drafts, "_existing_version", real_existing)
    en, zh = assert_bilingual(en, zh, 409)
    assert en["type"].endswith("/changed-meanwhile")
    assert en["detail"] == (
        f"{PUBLISHER}/steel-products 1.0.0 was uploaded by another request (file sha256 "
        f"{'f' * 64}) while this upload waited for the dataset; read it, then upload again if "
        "this file should replace it"
    )
    assert zh["detail"] == (
        f"在此上传等待数据集期间，{PUBLISHER}/steel-products 1.0.0 已由另一个请求上传（文件 sha256 "
        f"{'f' * 64}）；请先读取该版本，如仍应以此文件替换，再重新上传"
    )

    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    en, zh = assert_bilingual(*upload("1.0.0", 1), 409)
    assert en["detail"] == (
        f"{PUBLISHER}/steel-products 1.0.0 is submitted; only a draft can be replaced"
    )
    assert zh["detail"] == (
        f"{PUBLISHER}/steel-products 1.0.0 的状态为 submitted；只有草稿可以被替换"
    )

    en, zh = assert_bilingual(
        *both(
            client,
            "POST",
            f"{VERSIONS}/1.0.0/publish",
            headers=reviewer,
            json={"content_sha256": "0" * 64},
        ),
        409,
    )
    assert en["title"] == zh["title"] == "Not the content that was reviewed"
    content = en["content_sha256"]
    assert en["detail"] == (
        f"version 1.0.0's content_sha256 is {content}, not the {'0' * 64} that was reviewed; "
        "read it again before publishing"
    )
    assert zh["detail"] == (
        f"版本 1.0.0 的 content_sha256 为 {content}，而非审核时的 {'0' * 64}；请重新读取后再发布"
    )

    assert publish(client, reviewer, "1.0.0").status_code == 200
    en, zh = assert_bilingual(*upload("1.0.0", 1), 422)
    assert en["detail"] == "version 1.0.0 is not newer than the latest release 1.0.0"
    assert zh["detail"] == "版本 1.0.0 不比最新发布版本 1.0.0 新"
    assert (en["errors"][0]["detail"], zh["errors"][0]["detail"]) == (
        "must be above 1.0.0",
        "须高于 1.0.0",
    )


def test_no_activity_is_translated(client: TestClient, seeded: None) -> None:
    en, zh = assert_bilingual(*both(client, "GET", "/v1/activities/graphene-production"), 404)
    assert en["detail"].startswith("No activity 'graphene-production' in the activity labels")
    assert zh["detail"] == (
        "活动标签中没有活动“graphene-production”：见 GET /v1/activities。因子仍可能使用该活动"
        "（发布机构可自行引入活动）：GET /v1/factors?activity_id=graphene-production。"
    )


def test_snapshot_conflicts_and_lost_files_are_translated(
    client: TestClient, tokens: Any, settings: Any
) -> None:
    admin = tokens.admin()
    # Nothing published yet: nothing to snapshot.
    en, zh = assert_bilingual(*both(client, "POST", "/v1/snapshots", headers=admin), 409)
    assert en["detail"] == "There is no public, redistributable published dataset to snapshot."
    assert zh["detail"] == "没有可纳入数据快照的公开、可再分发的已发布数据集。"

    from tests.test_dataset_deprecation import OLD, _publish
    from tests.test_publishing import DATASET_BODY, PUBLISHER

    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201
    _publish(client, writer, reviewer, OLD)
    snapshot = client.post("/v1/snapshots", headers=admin)
    assert snapshot.status_code == 201, snapshot.text
    body = snapshot.json()
    manifest = next(f for f in body["files"] if f["name"] == "manifest.json")
    (settings.export_dir / "sha256" / f"{manifest['sha256']}.json").unlink()
    en, zh = assert_bilingual(
        *both(client, "GET", f"/v1/snapshots/{body['id']}/manifest.json"), 404
    )
    assert en["detail"] == f"Snapshot {body['id']} has no file manifest.json in the export store."
    assert zh["detail"] == f"导出存储中没有数据快照 {body['id']} 的文件 manifest.json。"


def test_web_pages_own_problems_follow_the_page_language(client: TestClient, seeded: None) -> None:
    """A page's own 422s (and 404s) are in the page's language, whatever the header says; their
    machine twins (`.json`) follow `Accept-Language` as the API does."""
    html_en = {"Accept": "text/html", "Accept-Language": "en"}
    cases = [
        (
            "/factors/mee-cn/cn-electricity-co2/bad%20code",
            422,
            "“bad code”不是因子代码。",
            "&#39;bad code&#39; is not a factor code.",
        ),
        (
            "/datasets/mee-cn/cn-electricity-co2/diff/1.0.0",
            422,
            "“1.0.0”不是版本范围：请写作 旧版本...新版本，例如 1.0.0...1.1.0。",
            "&#39;1.0.0&#39; is not a version range",
        ),
        (
            "/?year=abc",
            422,
            "检索条件无效（year：应为整数，无法将文本解析为整数）。",
            "The search is not valid (year: Input should be a valid integer",
        ),
    ]
    for url, status, zh_text, en_text in cases:
        joiner = "&" if "?" in url else "?"
        zh_page = client.get(f"{url}{joiner}lang=zh", headers=html_en)
        assert zh_page.status_code == status, zh_page.text
        assert zh_page.headers["content-type"].startswith("text/html")
        assert zh_text in zh_page.text, zh_page.text
        en_page = client.get(f"{url}{joiner}lang=en", headers=html_en)
        assert en_page.status_code == status
        assert en_text in en_page.text, en_page.text
        assert zh_text not in en_page.text

    en, zh = assert_bilingual(*both(client, "GET", "/.json?year=abc"), 422)
    assert en["detail"].startswith("The search is not valid (year: Input should be a valid")
    assert zh["detail"] == "检索条件无效（year：应为整数，无法将文本解析为整数）。"
    assert zh["errors"][0]["detail"] == "应为整数，无法将文本解析为整数"

    en, zh = assert_bilingual(
        *both(client, "GET", "/factors/mee-cn/cn-electricity-co2/national-average-2022.csv"), 404
    )
    assert (en["detail"], zh["detail"]) == (
        "No .csv form of a factor; try .json.",
        "因子没有 .csv 格式；请使用 .json。",
    )

    en, zh = assert_bilingual(*both(client, "GET", "/resolve.json"), 422)
    assert (en["detail"], zh["detail"]) == (
        "The resolve line is incomplete or malformed.",
        "待匹配的条目不完整或格式有误。",
    )

    one = "/compare.json?f=mee-cn/cn-electricity-co2/national-average-2022"
    en, zh = assert_bilingual(*both(client, "GET", one), 422)
    assert (en["detail"], zh["detail"]) == (
        "Give 2 to 5 factors (there are 1).",
        "请给出 2 至 5 个因子（现有 1 个）。",
    )
    two = f"{one}&f=mee-cn/cn-electricity-co2/national-average-2021&gwp=AR9"
    en, zh = assert_bilingual(*both(client, "GET", two), 422)
    assert (en["detail"], zh["detail"]) == (
        "The GWP set must be AR4, AR5 or AR6.",
        "GWP 须为 AR4、AR5 或 AR6。",
    )


def test_a_successful_upload_reports_its_warnings_in_the_clients_language(
    client: TestClient, tokens: Any
) -> None:
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS, publish
    from tests.upload_files import csv_bytes, synthetic_row

    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201

    def upload(version: str, content: bytes, lang: dict[str, str]) -> Any:
        return client.post(
            VERSIONS,
            headers={**writer, **lang},
            data={"version": version},
            files={"file": ("synthetic.csv", content, "text/csv")},
        )

    rows = [synthetic_row(0, name_en="=1+1"), synthetic_row(1)]
    content = b"\xef\xbb\xbf" + csv_bytes(rows)
    zh = upload("1.0.0", content, ZH)
    assert zh.status_code == 201, zh.text
    assert zh.headers["content-language"] == "zh-CN"
    assert "accept-language" in zh.headers["vary"].lower()
    warnings = {
        w["code"]: (w["row"], w["column"], w["detail"]) for w in zh.json()["report"]["warnings"]
    }
    assert warnings["utf8_bom"] == (1, None, "文件以 UTF-8 字节顺序标记（BOM）开头；已忽略")
    assert warnings["formula_like_cell"] == (
        2,
        "name_en",
        "以电子表格公式的形式开头；按文本存储，并在 CSV 导出中作无害化处理",
    )
    assert warnings["unlabelled_activity"] == (
        2,
        "activity_id",
        "“synthetic-activity”不在活动标签中（GET /v1/activities）；已作为新活动接受，文本检索只能"
        "通过其标识和因子名称找到它（含该活动的后续行不再列出）。如属于贵机构的命名空间"
        f"（“{PUBLISHER}-…”），请在 activity_name_zh、activity_name_en 和 activity_keywords "
        "列中为其命名",
    )
    # The draft replaced by the same rows in English: the same codes, English text.
    en = upload("1.0.0", content + b"\n", EN)
    assert en.status_code == 201, en.text
    assert en.headers["content-language"] == "en"
    english = {w["code"]: w["detail"] for w in en.json()["report"]["warnings"]}
    assert english.keys() == warnings.keys()
    assert english["utf8_bom"] == "the file starts with a UTF-8 byte-order mark; ignored"
    assert not any(HAN.search(detail) for detail in english.values())

    assert client.post(f"{VERSIONS}/1.0.0/submit", headers=writer).status_code == 200
    assert publish(client, reviewer, "1.0.0").status_code == 200
    # Two factors added in a patch release: a minor one is called for.
    more = csv_bytes([synthetic_row(i) for i in range(4)])
    zh = upload("1.0.1", more, ZH)
    assert zh.status_code == 201, zh.text
    bump = [w for w in zh.json()["report"]["warnings"] if w["code"] == "version_bump_too_small"]
    assert [w["detail"] for w in bump] == [
        "与 1.0.0 相比：新增 2 个、删除 0 个、修改 1 个（其中 0 个改变了单位或活动），"
        "应发布 MINOR 版本，而非 PATCH 版本"
    ]


def test_more_validation_types_are_translated(client: TestClient, tokens: Any) -> None:
    """Error types the request models produce beyond the common ones: a body that is not an
    object, an integer too long to read, a metadata URL refused (with the reason translated)."""
    from tests.test_publishing import DATASET_BODY, PUBLISHER

    writer = tokens.writer(PUBLISHER)
    body = {**DATASET_BODY, "license_url": "ftp://example.org/licence"}
    en, zh = assert_bilingual(*both(client, "POST", "/v1/datasets", json=body, headers=writer), 422)
    en_error, zh_error = en["errors"][0], zh["errors"][0]
    assert (en_error["loc"], en_error["code"]) == (["body", "license_url"], "invalid_url")
    assert en_error["detail"] == (
        "'ftp://example.org/licence' must be an absolute http:// or https:// URL (not 'ftp:')"
    )
    assert zh_error["detail"] == (
        "“ftp://example.org/licence”：须为以 http:// 或 https:// 开头的绝对 URL（而非“ftp:”）"
    )
    body = {**DATASET_BODY, "license_url": "https://user:secret@example.org/"}
    en, zh = assert_bilingual(*both(client, "POST", "/v1/datasets", json=body, headers=writer), 422)
    assert zh["errors"][0]["detail"] == (
        "“https://user:secret@example.org/”：主机名前不得含有用户名或密码"
    )

    en, zh = assert_bilingual(*both(client, "GET", "/v1/factors", params={"year": "9" * 5000}), 422)
    assert en["errors"][0]["code"] == zh["errors"][0]["code"] == "int_parsing_size"
    assert zh["errors"][0]["detail"] == "无法将文本解析为整数：超出允许的最大位数"

    en, zh = assert_bilingual(*both(client, "POST", "/v1/factors:resolve", json=[1, 2]), 422)
    assert en["errors"][0]["code"] == zh["errors"][0]["code"]
    assert zh["errors"][0]["detail"].startswith("应为 JSON 对象"), zh["errors"][0]


def test_a_release_made_meanwhile_is_translated(
    client: TestClient, tokens: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload that found no newer release, but finds one once it holds the dataset's lock."""
    from app.datasets.visibility import latest_released as real_latest
    from app.publishing import drafts
    from tests.test_dataset_deprecation import OLD, _publish
    from tests.test_publishing import DATASET_BODY, PUBLISHER, VERSIONS
    from tests.upload_files import csv_bytes, synthetic_row

    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    assert client.post("/v1/datasets", json=DATASET_BODY, headers=writer).status_code == 201
    _publish(client, writer, reviewer, OLD)  # 1.0.0
    looks: list[int] = []

    def released_after_the_first_look(session: Any, *, dataset_id: int) -> Any:
        looks.append(1)
        return None if len(looks) == 1 else real_latest(session, dataset_id=dataset_id)

    monkeypatch.setattr(drafts, "latest_released", released_after_the_first_look)
    answers = []
    for lang in (EN, ZH):
        looks.clear()
        answers.append(
            client.post(
                VERSIONS,
                headers={**writer, **lang},
                data={"version": "0.9.0"},
                files={"file": ("f.csv", csv_bytes([synthetic_row(3)]), "text/csv")},
            )
        )
    en, zh = assert_bilingual(answers[0], answers[1], 409)
    assert en["detail"] == f"{PUBLISHER}/{OLD} 1.0.0 was released meanwhile; 0.9.0 is not newer"
    assert zh["detail"] == f"在此期间 {PUBLISHER}/{OLD} 1.0.0 已发布；0.9.0 不比它新"
    assert en["latest_release"] == zh["latest_release"] == "1.0.0"
