"""Every part of the OpenAPI document says what it means (issue 14, part 3).

A user reading the published document, or the docstrings of a client generated from it, must
learn what each operation does, what each parameter and field means (unit, format, example),
and what each answer is, without reading this service's code. Each test names every part that
is missing its description, so one run lists all the work left.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from app.cli import openapi_document

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_document())
    return document


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = _document()["components"]["schemas"]
    return schemas


def _operations() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in _document()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _is_described(schema: dict[str, Any]) -> bool:
    """A schema is described by its own description, or (a `$ref`, or an optional `$ref`) by the
    description of the schema it refers to."""
    if schema.get("description", "").strip():
        return True
    if "$ref" in schema:
        return bool(_schemas()[schema["$ref"].rsplit("/", 1)[-1]].get("description", "").strip())
    for combinator in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in schema.get(combinator, []) if b.get("type") != "null"]
        if len(branches) == 1:
            return _is_described(branches[0])
    return False


def test_every_operation_has_a_description() -> None:
    missing = [name for name, op in _operations() if not op.get("description", "").strip()]
    assert not missing, "operations without a description:\n" + "\n".join(missing)


def test_every_parameter_has_a_description() -> None:
    missing = [
        f"{name} {parameter['in']} parameter `{parameter['name']}`"
        for name, operation in _operations()
        for parameter in operation.get("parameters", [])
        if not parameter.get("description", "").strip()
    ]
    assert not missing, "parameters without a description:\n" + "\n".join(missing)


def test_every_component_schema_has_a_description() -> None:
    missing = [
        name for name, schema in _schemas().items() if not schema.get("description", "").strip()
    ]
    assert not missing, "schemas without a description:\n" + "\n".join(missing)


def test_every_schema_property_has_a_description() -> None:
    missing = [
        f"{name}.{field}"
        for name, schema in _schemas().items()
        for field, prop in schema.get("properties", {}).items()
        if not _is_described(prop)
    ]
    assert not missing, "schema properties without a description:\n" + "\n".join(missing)


def test_every_request_body_and_answer_is_described() -> None:
    """Request bodies and their form fields are described, problem answers refer to the
    described `Problem` schema, a file download says what the file is, and no answer keeps
    FastAPI's generic wording for an error this service words itself."""
    missing = []
    for name, operation in _operations():
        for media_type, entry in operation.get("requestBody", {}).get("content", {}).items():
            schema = entry.get("schema", {})
            if not _is_described(schema):
                missing.append(f"{name} request body ({media_type})")
            missing += [
                f"{name} request body ({media_type}) field `{field}`"
                for field, prop in schema.get("properties", {}).items()
                if not _is_described(prop)
            ]
        for status, response in operation["responses"].items():
            if response.get("description", "") in ("", "Validation Error"):
                missing.append(f"{name} {status}: {response.get('description')!r}")
            for media_type, entry in response.get("content", {}).items():
                error = status[0] in "45"
                file = not (media_type.startswith("application/json") or "+json" in media_type)
                if (error or file) and not _is_described(entry.get("schema", {})):
                    missing.append(f"{name} {status} {media_type} body")
    assert not missing, "request bodies and answers without a description:\n" + "\n".join(missing)


def _named(schema: dict[str, Any]) -> bool:
    """A component (`$ref`), a list of them, or a choice between them."""
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _named(schema.get("items", {}))
    choices: list[dict[str, Any]] = schema.get("anyOf") or schema.get("oneOf") or []
    return bool(choices) and all(_named(choice) for choice in choices)


def test_every_json_answer_is_a_named_model() -> None:
    """A generated client gets a typed object, never a bare dict, from every JSON answer."""
    untyped = [
        f"{name} -> {status} {media_type}"
        for name, operation in _operations()
        for status, response in operation.get("responses", {}).items()
        for media_type, content in response.get("content", {}).items()
        if "json" in media_type and not _named(content.get("schema", {}))
    ]
    assert untyped == []
