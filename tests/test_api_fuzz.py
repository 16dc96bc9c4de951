"""Schemathesis over the whole API (issue 23): requests generated from the OpenAPI document,
sent anonymously and with a token of each role, never get a 5xx, and every answer is what the
document says it is (its content type and its schema, error answers included).

Small on purpose (a few examples per operation, derandomised) so that it runs in the suite.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.auth_fixtures import TokenKit

EXAMPLES_PER_OPERATION = 10


@pytest.mark.usefixtures("seeded")
def test_no_operation_answers_a_server_error(
    app: FastAPI, client: TestClient, tokens: TokenKit
) -> None:
    roles: dict[str, dict[str, str]] = {
        "anonymous": {},
        "reader": tokens.reader(),
        "writer": tokens.writer("mee-cn"),
        "reviewer": tokens.reviewer(),
        "admin": tokens.admin(),
    }
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    nonconforming: list[str] = []
    answered: list[int] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    assert len(operations) > 30

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), role=st.sampled_from(sorted(roles)))
        def run(case: Any, role: str) -> None:
            response = case.call(headers=roles[role])
            answered.append(response.status_code)
            try:
                case.validate_response(
                    response, checks=[content_type_conformance, response_schema_conformance]
                )
            except FailureGroup as exc:
                nonconforming.append(
                    f"{role}: {case.method} {case.formatted_path} -> {response.status_code}: "
                    + "; ".join(failure.title for failure in exc.exceptions)
                )
            if response.status_code >= 500:
                failures.append(
                    f"{role}: {case.method} {case.formatted_path} {case.query or ''} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        run()
    assert failures == [], "\n".join(failures[:20])
    assert nonconforming == [], "\n".join(sorted(set(nonconforming))[:20])
    # The requests got past authentication and validation often enough to mean something.
    assert sum(200 <= status < 300 for status in answered) > len(operations)
