"""Publishers name their own activities in an upload: `activity_name_zh`, `activity_name_en`,
`activity_keywords` (`;`-separated) for activity ids of their namespace (`{publisher}-…`);
reviewed with the version (its report), part of the vocabulary once it is published.

Every factor here is synthetic (tests/upload_files.py); the labels are test wording.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.auth_fixtures import TokenKit
from tests.test_factors_api import assert_problem, search
from tests.test_publishing import (
    DATASET_BODY,
    PUBLISHER,
    VERSIONS,
    create_dataset,
    publish,
    upload,
)
from tests.upload_files import COLUMNS, csv_bytes, jsonl_bytes, synthetic_row

OWN = f"{PUBLISHER}-rolled-coil"  # in synthetic-pub's namespace
OTHER_OWN = f"{PUBLISHER}-wire-rod"
LABEL_COLUMNS = ["activity_name_zh", "activity_name_en", "activity_keywords"]
LABELS = {
    "activity_name_zh": "合成热轧卷板",
    "activity_name_en": "Synthetic hot-rolled coil",
    "activity_keywords": "合成卷板; 热卷 ;coil|strip",
}


def labelled_row(index: int, activity_id: str, **labels: Any) -> dict[str, Any]:
    row = synthetic_row(index, activity_id=activity_id)
    row.update({name: "" for name in LABEL_COLUMNS})
    row.update(labels)
    return row


def labelled_csv(rows: list[dict[str, Any]]) -> bytes:
    return csv_bytes(rows, [*COLUMNS, *LABEL_COLUMNS])


def warnings_of(body: dict[str, Any], code: str) -> list[tuple[int, str]]:
    return [(w["row"], w["column"]) for w in body["report"]["warnings"] if w["code"] == code]


def test_labels_are_reviewed_then_join_the_vocabulary(client: TestClient, tokens: TokenKit) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    rows = [
        labelled_row(0, OWN, **LABELS),
        labelled_row(1, OTHER_OWN),  # no labels anywhere: one warning, at row 3
        labelled_row(2, OWN),  # empty label cells give none: no conflict
        labelled_row(3, OTHER_OWN),
        labelled_row(4, OWN, **LABELS),  # the same labels again: fine
    ]
    response = upload(client, writer, labelled_csv(rows))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["report"]["errors"] == []
    # Once per activity, at its first row; none for the labelled one.
    assert warnings_of(body, "unlabelled_activity") == [(3, "activity_id")]
    assert OTHER_OWN in body["report"]["warnings"][0]["detail"]
    assert body["report"]["activity_labels"] == [
        {
            "activity_id": OWN,
            "name_zh": "合成热轧卷板",
            "name_en": "Synthetic hot-rolled coil",
            # ';' separates keywords ('|' is part of one); a keyword with Chinese characters
            # is a Chinese one.
            "keywords_zh": ["合成卷板", "热卷"],
            "keywords_en": ["coil|strip"],
            "row": 2,
        }
    ]
    # Not in the vocabulary while it is a draft.
    assert_problem(client.get(f"/v1/activities/{OWN}"), 404)
    assert search(client, q="热卷") == []

    submitted = client.post(f"{VERSIONS}/1.0.0/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text
    # The reviewer reads the labels with the version, and in the queue.
    seen = client.get(f"{VERSIONS}/1.0.0", headers=reviewer).json()
    assert [item["activity_id"] for item in seen["report"]["activity_labels"]] == [OWN]
    queue = client.get("/v1/review", headers=reviewer).json()["items"]
    assert [item["activity_labels"] for item in queue] == [[OWN]]
    assert_problem(client.get(f"/v1/activities/{OWN}"), 404)

    assert publish(client, reviewer, "1.0.0").status_code == 200
    activity = client.get(f"/v1/activities/{OWN}").json()
    assert activity["name_zh"] == "合成热轧卷板"
    assert activity["keywords_en"] == ["coil|strip"]
    assert activity["publisher"] == PUBLISHER
    assert activity["labelled_in"] == f"{PUBLISHER}/steel-products@1.0.0"
    assert PUBLISHER in activity["source"]
    assert activity["locator"] == "upload file factors.csv, row 2"
    assert activity["reference_version"] is None
    listed = client.get("/v1/activities", params={"q": "热卷"}).json()["items"]
    assert [(item["id"], item["publisher"]) for item in listed] == [(OWN, PUBLISHER)]
    # The reference vocabulary says it is no publisher's.
    grid = client.get("/v1/activities", params={"q": "电网"}).json()["items"]
    assert [(item["id"], item["publisher"]) for item in grid] == [("electricity-grid-mix", None)]
    everything = client.get("/v1/activities", params={"limit": 1000}).json()["items"]
    assert [item["id"] for item in everything] == sorted(item["id"] for item in everything)
    assert OWN in {item["id"] for item in everything}

    # Text search finds the factors through the labels; the facet shows the names.
    found = search(client, q="热卷")
    assert {factor["factor_code"] for factor in found} == {
        "synthetic-00000",
        "synthetic-00002",
        "synthetic-00004",
    }
    facets = client.get("/.json", params={"q": "热卷"}).json()["facets"]["activity_id"]
    assert [(f["value"], f["label_zh"], f["label_en"]) for f in facets] == [
        (OWN, "合成热轧卷板", "Synthetic hot-rolled coil")
    ]
    page = client.get("/", params={"q": "热卷", "lang": "zh"})
    assert page.status_code == 200
    assert "合成热轧卷板" in page.text

    # The next version need not repeat them: no warning for a labelled activity.
    again = upload(client, writer, labelled_csv([labelled_row(0, OWN)]), version="2.0.0")
    assert again.status_code == 201, again.text
    assert warnings_of(again.json(), "unlabelled_activity") == []
    assert again.json()["report"]["activity_labels"] == []


def test_a_later_release_relabels_and_the_vocabulary_says_which(
    client: TestClient, tokens: TokenKit
) -> None:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    create_dataset(client, writer)
    for version, name_en in (("1.0.0", "First name"), ("1.1.0", "Second name")):
        rows = [labelled_row(0, OWN, **{**LABELS, "activity_name_en": name_en})]
        assert upload(client, writer, labelled_csv(rows), version=version).status_code == 201
        assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
        published = publish(client, reviewer, version)
        assert published.status_code == 200, published.text
    activity = client.get(f"/v1/activities/{OWN}").json()
    assert activity["name_en"] == "Second name"
    assert activity["labelled_in"] == f"{PUBLISHER}/steel-products@1.1.0"


def test_label_problems_are_row_precise(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [
        labelled_row(0, OWN, **LABELS),
        # Another name for the same activity: a conflict, at the column that differs.
        labelled_row(1, OWN, **{**LABELS, "activity_name_en": "Hot-rolled coil"}),
        # Not the publisher's namespace: neither a shared id nor another publisher's.
        labelled_row(2, "synthetic-activity", **LABELS),
        labelled_row(3, "electricity-grid-mix", activity_keywords="电网"),
        labelled_row(4, "synthetic-other-coil", **LABELS),
        # Half a label.
        labelled_row(5, OTHER_OWN, activity_name_zh="合成线材"),
        # The factor's own error and the label's, both listed.
        labelled_row(6, "synthetic-activity", unit="kwhh", **LABELS),
    ]
    response = upload(client, writer, labelled_csv(rows))
    body = assert_problem(response, 422)
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (3, "activity_name_en", "activity_label_conflict"),
        (4, "activity_name_zh", "activity_label_outside_namespace"),
        (5, "activity_keywords", "activity_label_outside_namespace"),
        (6, "activity_name_zh", "activity_label_outside_namespace"),
        (7, "activity_name_en", "activity_label_incomplete"),
        (8, "unit", "unknown_unit"),
        (8, "activity_name_zh", "activity_label_outside_namespace"),
    ]
    conflict = body["errors"][0]["detail"]
    assert "row 2" in conflict
    assert f"'{PUBLISHER}-'" in body["errors"][1]["detail"]
    assert client.get(VERSIONS, headers=writer).json()["items"] == []


def test_a_publisher_never_labels_another_ones_activities(
    client: TestClient, tokens: TokenKit
) -> None:
    """Slugs nest (synthetic-pub, synthetic-pub-east): the longer slug owns its ids; and an
    activity another publisher's release labelled stays its own."""
    east = f"{PUBLISHER}-east"
    east_writer, reviewer = tokens.writer(east), tokens.reviewer()
    assert client.post(
        "/v1/datasets", json={**DATASET_BODY, "slug": "east-data"}, headers=east_writer
    ).status_code in (200, 201)
    east_versions = f"/v1/datasets/{east}/east-data/versions"
    east_rows = [labelled_row(0, f"{east}-coil", **LABELS)]
    response = client.post(
        east_versions,
        headers=east_writer,
        data={"version": "1.0.0"},
        files={"file": ("east.csv", labelled_csv(east_rows), "text/csv")},
    )
    assert response.status_code == 201, response.text
    assert client.post(f"{east_versions}/1.0.0/submit", headers=east_writer).status_code == 200
    assert publish(client, reviewer, "1.0.0", versions=east_versions).status_code == 200

    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    body = assert_problem(
        upload(client, writer, labelled_csv([labelled_row(0, f"{east}-wire", **LABELS)])), 422
    )
    assert [(e["row"], e["code"]) for e in body["errors"]] == [
        (2, "activity_label_outside_namespace")
    ]
    assert f"publisher {east}'s" in body["errors"][0]["detail"]
    body = assert_problem(
        upload(client, writer, labelled_csv([labelled_row(0, f"{east}-coil", **LABELS)])), 422
    )
    assert [e["code"] for e in body["errors"]] == ["activity_label_outside_namespace"]
    assert client.get(f"/v1/activities/{east}-coil").json()["publisher"] == east


def test_labels_in_json_lines_are_text(client: TestClient, tokens: TokenKit) -> None:
    writer = tokens.writer(PUBLISHER)
    create_dataset(client, writer)
    rows = [
        {**synthetic_row(0, activity_id=OWN), **LABELS},
        {**synthetic_row(1, activity_id=OTHER_OWN), "activity_name_zh": 7, "activity_name_en": "x"},
        {
            **synthetic_row(2, activity_id=OTHER_OWN),
            "activity_name_zh": "合成\u202e线材",
            "activity_name_en": "Wire rod",
        },
    ]
    body = assert_problem(upload(client, writer, jsonl_bytes(rows), name="f.jsonl"), 422)
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (2, "activity_name_zh", "wrong_type"),
        (3, "activity_name_zh", "forbidden_character"),
    ]
    good = upload(client, writer, jsonl_bytes(rows[:1]), name="f.jsonl")
    assert good.status_code == 201, good.text
    assert good.json()["report"]["activity_labels"][0]["activity_id"] == OWN


def test_the_template_lists_the_label_columns(client: TestClient) -> None:
    response = client.get("/v1/upload-template.csv")
    header = response.text.splitlines()[0].split(",")
    assert header[-3:] == LABEL_COLUMNS
    assert "activity_keywords" in response.text.splitlines()[1]
