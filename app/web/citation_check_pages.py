"""`/citations`: a verifier pastes a footprint's factor citations as CSV and reads, for each,
what `POST /v1/citations:verify` answers (the same service function, called in process, as
an anonymous reader). The form posts (a thousand citations do not fit in a URL); nothing is
written. Lines are numbered as the reader pasted them, a header line included."""

from __future__ import annotations

import csv
import io
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response

from app.changes.citations import MAX_CITATIONS, parse_citations, verify_citations
from app.core.db import SessionDep
from app.core.errors import InvalidParameter
from app.core.http_cache import PRIVATE
from app.core.params import only_query_params
from app.core.principal import ANONYMOUS
from app.web.i18n import Translator, negotiate
from app.web.templating import PageMeta, render_page

router = APIRouter()

COLUMNS = ("id", "content_sha256", "value")
EXAMPLE = "id,content_sha256,value\nmee-cn/cn-electricity-co2/national-average-2022@1.0.0,,0.5703\n"
# Citations shown in the page's curl/Python snippets (past it, the snippets would be huge).
SNIPPET_CITATIONS = 20
_LANG_ONLY = [Depends(only_query_params(("lang",)))]


def read_pasted(text: str, t: Translator) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """The citations of a pasted CSV, the line each came from, and what is wrong, by line."""
    rows = list(csv.reader(io.StringIO(text)))
    errors: list[str] = []
    citations: list[dict[str, Any]] = []
    lines: list[int] = []
    columns = list(COLUMNS)
    start = 0
    if rows and rows[0] and rows[0][0].strip().lower() == "id":
        columns = [cell.strip().lower() for cell in rows[0]]
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            errors.append(t("citations_unknown_columns", columns=", ".join(unknown)))
            return [], [], errors
        start = 1
    for number, row in enumerate(rows[start:], start=start + 1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            errors.append(t("citations_too_many_cells", line=number, n=len(columns)))
            continue
        cells = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        item: dict[str, Any] = {"id": cells.get("id", "")}
        if cells.get("content_sha256"):
            item["content_sha256"] = cells["content_sha256"]
        if cells.get("value"):
            try:
                value = float(cells["value"])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                errors.append(t("citations_bad_value", line=number, value=cells["value"]))
                continue
            item["value"] = value
        citations.append(item)
        lines.append(number)
    return citations, lines, errors


def _page(request: Request, context: dict[str, Any], *, status: int = 200) -> Response:
    t = Translator(negotiate(request))
    body = context.get("api_body")
    meta = PageMeta(
        title=t("citations_title"),
        api_path="/v1/citations:verify" if body else None,
        api_body=body,
    )
    return render_page(
        request,
        "citations.html",
        {"pasted": "", "results": None, "errors": [], "example": EXAMPLE, **context},
        meta=meta,
        status_code=status,
        cache_control=PRIVATE if request.method == "POST" else "public, max-age=60",
    )


@router.get("/citations", dependencies=_LANG_ONLY)
def citations_form(request: Request) -> Response:
    return _page(request, {})


PastedCsv = Annotated[str, Form(alias="csv", description="The citations, as CSV")]


@router.post("/citations", dependencies=_LANG_ONLY)
def citations_check(request: Request, session: SessionDep, text: PastedCsv = "") -> Response:
    t = Translator(negotiate(request))
    raw, lines, errors = read_pasted(text, t)
    if not errors and not raw:
        errors.append(t("citations_empty"))
    if not errors and len(raw) > MAX_CITATIONS:
        errors.append(t("citations_too_many", n=len(raw), max=MAX_CITATIONS))
    parsed = []
    if not errors:
        try:
            parsed = parse_citations(raw)
        except InvalidParameter as problem:
            for error in problem.errors or []:
                index = int(error["loc"][2])
                errors.append(
                    t("citations_line_error", line=lines[index], field=error["loc"][-1])
                    + f" {error['detail']}"
                )
    if errors:
        return _page(request, {"pasted": text, "errors": errors}, status=422)
    verdicts = verify_citations(session, viewer=ANONYMOUS, citations=parsed)
    results = [{**v, "line": lines[v["index"]]} for v in verdicts]
    attention = [r for r in results if _needs_attention(r)]
    context = {
        "pasted": text,
        "results": results,
        "attention": len(attention),
        "api_body": {"citations": raw} if len(raw) <= SNIPPET_CITATIONS else None,
    }
    return _page(request, context)


def _needs_attention(verdict: dict[str, Any]) -> bool:
    return (
        not verdict["found"]
        or verdict["release_status"] != "published"
        or verdict["dataset_status"] != "active"
        or verdict["value_matches"] is False
        or verdict["content_sha256_matches"] is False
    )
