"""RFC 9457 problem details: one error body for every failure the API reports."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.problem_text import (
    Lang,
    Localized,
    Message,
    catalogue,
    joined,
    language_from_header,
    localize,
    placeholders,
)
from app.core.suggest import did_you_mean, suggestion_message

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://efdb.example/problems/"

log = logging.getLogger("efdb")


class ProblemError(Exception):
    """A domain failure that maps onto one problem+json response."""

    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | Message,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        # More members of the problem body (RFC 9457 §3.2 extension members).
        self.extra = extra


class NotFound(ProblemError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidParameter(ProblemError):
    status, code, title = 422, "invalid-parameter", "Invalid parameter"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    lang: Lang = "en",
) -> JSONResponse:
    """The problem+json answer, its `detail` and `errors[]` (any `Message` in the body) in
    `lang`; `type` and `title` are the same in every language."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    for name, value in (extra or {}).items():
        body.setdefault(name, value)
    response = JSONResponse(
        localize(body, lang), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )
    response.headers["Content-Language"] = "zh-CN" if lang == "zh" else "en"
    vary = response.headers.get("vary")
    if vary is None:
        response.headers["Vary"] = "Accept-Language"
    elif "accept-language" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Accept-Language"
    return response


def headers_language(headers: Mapping[str, str] | None) -> Lang:
    """A problem's language from the request's `Accept-Language` (API clients)."""
    return language_from_header((headers or {}).get("accept-language"))


def scope_language(scope: Mapping[str, Any]) -> Lang:
    """The same, for middleware that holds an ASGI scope rather than a request."""
    for name, value in scope.get("headers") or ():
        if name == b"accept-language":
            return language_from_header(value.decode("latin-1"))
    return language_from_header(None)


# The language of a web explorer page's problem (its `?lang=`, then `Accept-Language`, then
# Chinese), set by the web package; None for requests that are not pages.
PageLanguage = Callable[[Request], Lang | None]


def problem_language(request: Request) -> Lang:
    """A page's own language for the explorer's pages; otherwise `Accept-Language`."""
    page_language: PageLanguage | None = getattr(request.app.state, "page_language", None)
    lang = page_language(request) if page_language is not None else None
    return lang if lang is not None else headers_language(request.headers)


_STATUS_CODES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    429: ("too-many-requests", "Too many requests"),
}


_QUOTED = re.compile(r"'([^']*)'")


def _choices_suggested(err: Mapping[str, Any]) -> list[str]:
    """For a value outside a fixed set (`?gwp=ar6`), the allowed values it may have meant."""
    if err.get("type") not in {"literal_error", "enum"} or not isinstance(err.get("input"), str):
        return []
    expected = (err.get("ctx") or {}).get("expected")
    if not isinstance(expected, str):
        return []
    return did_you_mean(err["input"], _QUOTED.findall(expected))


def _context_text(value: Any) -> str:
    if isinstance(value, Localized):  # our own words (e.g. a URL's problem), already bilingual
        return value
    text = str(value)
    return Localized(text, text.replace(" or ", " 或 ")) if " or " in text else text


def pydantic_message(err: Mapping[str, Any]) -> str:
    """A pydantic error's message: pydantic's English, and Chinese from the catalogue's
    `pydantic.<type>` (with the error's context), where the catalogue has that type."""
    english = str(err.get("msg", "invalid value"))
    context = dict(err.get("ctx") or {})
    if isinstance(context.get("detail"), Localized):  # our own check's message, translated
        return Localized(english, localize(context["detail"], "zh"))
    texts = catalogue().get(f"pydantic.{err.get('type')}")
    if texts is None:
        return english
    names = placeholders(texts["zh"])
    if not names <= set(context):
        return english
    params = {name: localize(_context_text(context[name]), "zh") for name in names}
    return Localized(english, texts["zh"].format(**params))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        item: dict[str, Any] = {
            "loc": [str(part) for part in err.get("loc", ())],
            "code": err.get("type", "invalid"),
            "detail": pydantic_message(err),
        }
        suggestions = _choices_suggested(err)
        if suggestions:
            item["detail"] = suggestion_message(item["detail"], suggestions)
            item["suggestions"] = suggestions
        errors.append(item)
    return errors


def _all_suggestions(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The problem's `suggestions` member: every error's "did you mean" values, in order."""
    found = [value for error in errors for value in error.get("suggestions", ())]
    return {"suggestions": list(dict.fromkeys(found))} if found else None


# Renders a problem as an HTML page for the web explorer's pages; None leaves it as JSON.
PageErrorRenderer = Callable[[Request, JSONResponse], Response | None]


def _for_reader(request: Request, problem: JSONResponse) -> Response:
    """The same problem, as a page when a person's browser asked for one of the explorer's pages."""
    renderer: PageErrorRenderer | None = getattr(request.app.state, "page_error_renderer", None)
    page = renderer(request, problem) if renderer is not None else None
    return page if page is not None else problem


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        lang = problem_language(request)
        return _for_reader(
            request,
            problem_response(
                status=exc.status,
                code=exc.code,
                title=exc.title,
                detail=exc.detail,
                instance=request.url.path,
                errors=exc.errors,
                headers=exc.headers,
                extra=exc.extra,
                lang=lang,
            ),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        where = joined(
            [
                Message("request.invalid_at", loc=".".join(e["loc"]), detail=e["detail"])
                for e in errors[:3]
            ]
        )
        return _for_reader(
            request,
            problem_response(
                status=422,
                code="invalid-request",
                title="Invalid request",
                detail=Message("request.invalid", where=where),
                instance=request.url.path,
                errors=errors,
                extra=_all_suggestions(errors),
                lang=problem_language(request),
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, title = _STATUS_CODES.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = Message("not_found.resource", path=request.url.path)
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = Message("method_not_allowed", method=request.method)
        return _for_reader(
            request,
            problem_response(
                status=exc.status_code,
                code=code,
                title=title,
                detail=detail,
                instance=request.url.path,
                headers=dict(exc.headers) if exc.headers else None,
                lang=problem_language(request),
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            status=500,
            code="internal-error",
            title="Internal server error",
            detail=Message("internal_error"),
            instance=request.url.path,
            lang=headers_language(request.headers),
        )
