"""openapi/openapi.json is the published contract: it must match the running app."""

from __future__ import annotations

import json

from app.cli import OPENAPI_PATH, openapi_document


def test_exported_document_is_up_to_date() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_document(), (
        "openapi/openapi.json is stale: run `efdb openapi` and commit the result"
    )


def test_document_lists_the_read_api() -> None:
    paths = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))["paths"]
    for path in (
        "/v1/factors",
        "/v1/factors/{publisher}/{dataset}/{factor_code}",
        "/v1/datasets",
        "/v1/datasets/{publisher}/{dataset}",
        "/v1/datasets/{publisher}/{dataset}/versions",
        "/v1/datasets/{publisher}/{dataset}/versions/{version}",
        "/v1/datasets/{publisher}/{dataset}/versions/{version}/factors",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
