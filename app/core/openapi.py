"""The OpenAPI document says what the API really sends.

FastAPI documents a 422 body of its own (`HTTPValidationError`) that this service never sends and
leaves other error answers and binary files without a schema, so a client generated from the
document crashes on a 422 and drops the export downloads. Here, once per app:

- every error answer (the statuses a route declares without a body of its own, FastAPI's 422,
  and the `4XX` / `5XX` ranges) is an RFC 9457 `application/problem+json` body of the `Problem`
  schema, as `app.core.errors` writes it; the token endpoints keep their RFC 6749 error body;
- every file download (Parquet, Arrow, CSV, …) is declared `type: string, format: binary` under
  its own media type, and its schema says what the file is;
- a request refused by validation (422) says what the problem details list, and a form body
  FastAPI names after its route (`Body_…`) says whose form it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import PROBLEM_MEDIA_TYPE

_REF = "#/components/schemas/{model}"


class ProblemItem(BaseModel):
    """One thing wrong with a request: where (`row`/`column` in a file, `loc` in a request) and
    what (`code`, `detail`)."""

    model_config = ConfigDict(extra="allow", title="ProblemItem")

    code: str | None = Field(None, description="Machine-readable reason, e.g. `unknown_unit`.")
    detail: str | None = Field(None, description="What was wrong, for a person.")
    sheet: str | None = Field(
        None,
        description="The sheet the row is on: of an XLSX upload, or of a publisher's workbook "
        "read by an importer (`source_format`); absent for other formats.",
    )
    row: int | None = Field(
        None,
        description="1-based row of the uploaded file (the CSV header is row 1; an XLSX row "
        "as the spreadsheet numbers it).",
    )
    column: str | None = Field(
        None,
        description="Column of the uploaded file: the field name, or, for a publisher's own "
        "file read by an importer (`source_format`), that file's column header.",
    )
    field: str | None = Field(
        None,
        description="The upload-format field the publisher's column was mapped to (importers "
        "only).",
    )
    process: str | None = Field(
        None,
        description="In an openLCA JSON-LD zip (`source_format` `olca-jsonld`): the process's "
        "`@id`; `row` is then its position among the zip's processes.",
    )
    exchange: int | None = Field(
        None,
        description="In an openLCA JSON-LD zip: the `internalId` of the process's exchange the "
        "field was read from (absent for the process's own fields).",
    )
    loc: list[str] | None = Field(
        None, description="Where in the request: `body`, `query` or `path`, then the name."
    )


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error answer."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code of this answer.")
    detail: str = Field(description="What went wrong in this request, for a person.")
    instance: str | None = Field(None, description="The request path the problem concerns.")
    errors: list[ProblemItem] | None = Field(
        None, description="Each problem found, with its location (validation failures)."
    )


_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}}
_BINARY_SCHEMA = {"type": "string", "format": "binary"}
_UNUSED_DEFAULTS = ("HTTPValidationError", "ValidationError")
_FASTAPI_DEFAULT_422 = "Validation Error"
_INVALID_REQUEST = (
    "The request is invalid (problem details, RFC 9457): `errors` names each invalid "
    "parameter or field by its `loc`"
)
_GENERIC_SUCCESS = "Successful Response"


def _is_json(media_type: str) -> bool:
    base = media_type.split(";")[0].strip()
    return base == "application/json" or base.endswith("+json")


def _declares_own_body(response: dict[str, Any]) -> bool:
    schemas = [entry.get("schema") for entry in response.get("content", {}).values()]
    return any(
        schema and schema.get("$ref", "").rsplit("/", 1)[-1] not in _UNUSED_DEFAULTS
        for schema in schemas
    )


def _describe_answers(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        if status[0] in "45":
            # A route's own error body stays (the token endpoints answer RFC 6749 errors);
            # FastAPI's default 422 body, and an error declared without a body, are problems.
            if not _declares_own_body(response):
                response["content"] = dict(_PROBLEM_CONTENT)
            if response.get("description") == _FASTAPI_DEFAULT_422:
                response["description"] = _INVALID_REQUEST
            continue
        for media_type, entry in response.get("content", {}).items():
            if _is_json(media_type):
                continue
            schema = entry.setdefault("schema", dict(_BINARY_SCHEMA))
            if not schema:
                schema.update(_BINARY_SCHEMA)
            if not schema.get("description"):
                what = response.get("description")
                base = media_type.split(";")[0].strip()
                schema["description"] = (
                    f"The file (`{base}`): {what}"
                    if what and what != _GENERIC_SUCCESS
                    else f"The file (`{base}`)"
                )
    responses.setdefault(
        "4XX", {"description": "The request was refused (problem details, RFC 9457)"}
    )
    responses.setdefault("5XX", {"description": "The service failed (problem details, RFC 9457)"})
    for status in ("4XX", "5XX"):
        responses[status]["content"] = dict(_PROBLEM_CONTENT)


def _describe_form_bodies(spec: dict[str, Any], schemas: dict[str, Any]) -> None:
    """FastAPI names the schema of a route's form fields `Body_<operation id>` and gives it no
    description: it is the form of that operation."""
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            for entry in content.values():
                name = entry.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if name.startswith("Body_") and not schemas[name].get("description"):
                    schemas[name]["description"] = (
                        f"The form fields of the request: {operation.get('summary', name)}."
                    )


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with the answers described as above."""
    spec = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
        license_info=app.license_info,
    )
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            _describe_answers(operation)
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in _UNUSED_DEFAULTS:
        schemas.pop(name, None)
    _describe_form_bodies(spec, schemas)
    for model in (Problem, ProblemItem):
        schema = model.model_json_schema(ref_template=_REF)
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    return spec


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
