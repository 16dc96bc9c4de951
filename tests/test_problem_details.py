"""One error body everywhere: RFC 9457 `application/problem+json`, never a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

GRID = "/v1/factors/mee-cn/cn-electricity-co2/national-average-2022"

# (method, url, status, the `loc` an entry of errors[] must carry, or None when no errors[])
BAD_REQUESTS: list[tuple[str, str, int, list[str] | None]] = [
    # Unknown query parameters: a typo must not silently widen a search.
    ("GET", "/v1/factors?colour=red", 422, ["query", "colour"]),
    ("GET", "/v1/factors?regoin=CN", 422, ["query", "regoin"]),
    ("GET", "/v1/datasets?q=steel", 422, ["query", "q"]),
    ("GET", "/v1/datasets/mee-cn/cn-electricity-co2?version=1.0.0", 422, ["query", "version"]),
    # Values of the wrong type or outside their enum or range.
    ("GET", "/v1/factors?boundary=cradle-to-moon", 422, ["query", "boundary"]),
    ("GET", "/v1/factors?year=abc", 422, ["query", "year"]),
    ("GET", "/v1/factors?year=1800", 422, ["query", "year"]),
    ("GET", "/v1/factors?year=99999999999999999999", 422, ["query", "year"]),
    ("GET", "/v1/factors?unit=kwhh", 422, ["query", "unit"]),
    ("GET", "/v1/factors?unit=m**7", 422, ["query", "unit"]),
    ("GET", "/v1/factors?region=china", 422, ["query", "region"]),
    ("GET", "/v1/factors?activity_id=Not%20A%20Slug", 422, ["query", "activity_id"]),
    ("GET", "/v1/factors?publisher=MEE-CN", 422, ["query", "publisher"]),
    ("GET", "/v1/factors?dataset=a/b/c", 422, ["query", "dataset"]),
    ("GET", "/v1/factors?q=", 422, ["query", "q"]),
    ("GET", "/v1/factors?as_of=yesterday", 422, ["query", "as_of"]),
    ("GET", "/v1/factors?as_of=2024-02-30", 422, ["query", "as_of"]),
    ("GET", "/v1/factors?limit=0", 422, ["query", "limit"]),
    ("GET", "/v1/factors?limit=1001", 422, ["query", "limit"]),
    ("GET", "/v1/factors?cursor=garbage", 422, ["query", "cursor"]),
    ("GET", "/v1/factors?version=1.0.0", 422, ["query", "version"]),
    ("GET", "/v1/factors?dataset=mee-cn/cn-electricity-co2&version=one", 422, None),
    ("GET", "/v1/factors?dataset=mee-cn/x&publisher=desnz-uk", 422, ["query", "publisher"]),
    ("GET", f"{GRID}?version=1.0.0&as_of=2024-01-01", 422, None),
    ("GET", "/v1/datasets?limit=-1", 422, ["query", "limit"]),
    ("GET", "/v1/datasets?publisher=Bad_Slug", 422, ["query", "publisher"]),
    # Malformed path segments.
    (
        "GET",
        "/v1/factors/MEE-CN/cn-electricity-co2/national-average-2022",
        422,
        ["path", "publisher"],
    ),
    (
        "GET",
        "/v1/factors/mee-cn/cn-electricity-co2/national%20average",
        422,
        ["path", "factor_code"],
    ),
    ("GET", "/v1/datasets/mee-cn/CN_ELECTRICITY", 422, ["path", "dataset"]),
    ("GET", "/v1/datasets/mee-cn/cn-electricity-co2/versions/v1", 422, None),
    # Missing things.
    ("GET", "/v1/nowhere", 404, None),
    ("GET", "/v1/factors/mee-cn/cn-electricity-co2", 404, None),
    ("GET", "/v1/factors/mee-cn/cn-electricity-co2/national-average-1999", 404, None),
    ("GET", f"{GRID}?version=9.9.9", 404, None),
    ("GET", "/v1/datasets/mee-cn/no-such-dataset", 404, None),
    ("GET", "/v1/datasets/mee-cn/cn-electricity-co2/versions/9.9.9", 404, None),
    # Wrong methods.
    ("POST", "/v1/factors", 405, None),
    ("DELETE", GRID, 405, None),
    ("PUT", "/v1/datasets/mee-cn/cn-electricity-co2", 405, None),
    ("PATCH", "/v1/datasets/mee-cn/cn-electricity-co2/versions/1.0.0", 405, None),
]


def test_every_error_is_problem_json(client: TestClient, seeded: None) -> None:
    wrong: dict[str, Any] = {}
    for method, url, status, loc in BAD_REQUESTS:
        response = client.request(method, url)
        body = response.json()
        problems = []
        if response.status_code != status:
            problems.append(f"status {response.status_code}")
        if not response.headers["content-type"].startswith("application/problem+json"):
            problems.append(f"content-type {response.headers['content-type']}")
        if not {"type", "title", "status", "detail"} <= body.keys():
            problems.append(f"members {sorted(body)}")
        elif not (body["status"] == status and body["title"] and body["detail"]):
            problems.append(f"body {body}")
        elif not isinstance(body["type"], str) or not body["type"]:
            problems.append(f"type {body['type']!r}")
        if "Traceback" in response.text:
            problems.append("stack trace")
        errors = body.get("errors")
        if errors is not None and not all(isinstance(e.get("loc"), list) for e in errors):
            problems.append(f"errors without loc {errors}")
        if status == 422 and not errors:
            problems.append("422 without errors[]")
        if loc is not None and loc not in [e.get("loc") for e in errors or []]:
            problems.append(f"no error at {loc}: {errors}")
        if problems:
            wrong[f"{method} {url}"] = problems
    assert wrong == {}


def test_wrong_method_names_the_allowed_ones(client: TestClient) -> None:
    response = client.post("/v1/factors")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test_odd_but_well_formed_input_is_never_a_server_error(
    client: TestClient, seeded: None
) -> None:
    for params in (
        {"as_of": "9999-12-31"},
        {"as_of": "0001-01-01"},
        {"q": "\x00"},
        {"q": "电力\x00"},
        {"category": "energy\x00"},
        {"q": "'; DROP TABLE factor; --"},
        {"q": "\\"},
        {"q": "😀"},
        {"unit": "\x00"},
        {"version": "999999999.999999999.999999999", "dataset": "mee-cn/cn-electricity-co2"},
    ):
        response = client.get("/v1/factors", params=params)
        assert response.status_code in (200, 422), (params, response.status_code)
        if response.status_code == 422:
            assert response.headers["content-type"].startswith("application/problem+json")
    response = client.get(GRID, params={"as_of": "9999-12-31"})
    assert response.status_code in (200, 404, 422)


def test_unexpected_failure_is_a_problem_without_internals(app: FastAPI) -> None:
    def explode() -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    app.add_api_route("/v1/synthetic-explosion", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/synthetic-explosion")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 500
    assert body["title"]
    assert body["detail"]
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
