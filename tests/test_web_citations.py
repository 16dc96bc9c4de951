"""The `/citations` page: a pasted CSV of citations, checked as `POST /v1/citations:verify`
checks them. All data here is synthetic."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.test_citations_verify import NEW, OLD, ORIGINAL_VALUE, history  # noqa: F401
from tests.test_publishing import PUBLISHER

HTML = {"accept": "text/html"}


def test_the_form_is_a_page_in_both_languages(client: TestClient) -> None:
    en = client.get("/citations", params={"lang": "en"}, headers=HTML)
    assert en.status_code == 200
    assert '<textarea id="citations-csv" name="csv"' in en.text
    assert "Check factor citations" in en.text
    assert "核验因子引用" in client.get("/citations", params={"lang": "zh"}).text
    assert client.get("/citations", params={"regoin": "CN"}).status_code == 422


def test_pasted_citations_are_checked_line_by_line(
    client: TestClient,
    history: dict[str, Any],  # noqa: F811
) -> None:
    pasted = (
        "id,value,content_sha256\n"
        f"{PUBLISHER}/{OLD}/synthetic-00004@1.2.0,,\n"
        "\n"
        f"{PUBLISHER}/{OLD}/synthetic-00001@1.0.0,{ORIGINAL_VALUE},\n"
        f"{PUBLISHER}/{NEW}/synthetic-00002@1.0.0,1.5,\n"
        "nobody/nothing/x@1.0.0\n"
    )
    page = client.post("/citations", params={"lang": "en"}, data={"csv": pasted}, headers=HTML)
    assert page.status_code == 200, page.text
    html = page.text
    assert "4 citations checked; 4 need attention." in html
    rows = html.split('data-testid="citation-')[1:]
    assert len(rows) == 4
    withdrawn, superseded, differs, missing = rows
    assert '<td class="num">2</td>' in withdrawn  # the line as pasted, the header is line 1
    assert "This release was withdrawn at" in withdrawn
    assert "Reason: synthetic: wrong unit" in withdrawn
    assert '<td class="num">4</td>' in superseded
    assert "This release is superseded; the current one is 1.1.0" in superseded
    assert "The dataset is deprecated." in superseded
    assert f"{PUBLISHER}/{NEW}/synthetic-00001@1.0.0" in superseded
    assert "Value matches" in superseded
    assert "The cited value differs from the published one" in differs
    assert "No such dataset" in missing
    # The snippets send the same citations to the API.
    assert "/v1/citations:verify" in html
    assert page.headers["cache-control"] == "private, no-store"

    zh = client.post("/citations", params={"lang": "zh"}, data={"csv": pasted}).text
    assert "已核验 4 条引用，其中 4 条需要注意。" in zh


def test_bad_lines_are_named_and_nothing_is_checked(client: TestClient) -> None:
    pasted = "id,value\nsynthetic-pub/a/b@1.0.0,abc\nnot a citation,1\n"
    page = client.post("/citations", params={"lang": "en"}, data={"csv": pasted})
    assert page.status_code == 422
    assert "Line 2: &#39;abc&#39; is not a number." in page.text
    page = client.post("/citations", params={"lang": "en"}, data={"csv": "id\nnot a citation\n"})
    assert page.status_code == 422
    assert "Line 2 (id):" in page.text
    assert 'aria-invalid="true"' in page.text
    assert "not a citation" in page.text  # what was pasted stays in the box
    unknown = client.post("/citations", params={"lang": "en"}, data={"csv": "id,colour\n"})
    assert "Unknown columns in the header: colour" in unknown.text
    empty = client.post("/citations", params={"lang": "en"}, data={"csv": ""})
    assert (empty.status_code, "There is no citation to check." in empty.text) == (422, True)
