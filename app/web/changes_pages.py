"""The change feed for people: `/changes` (the newest changes first, in the reader's
language) and its Atom twin `/changes.atom` (RFC 4287, for feed readers); `/changes.json` is
`GET /v1/changes` for exactly the changes the page shows, its route function called in
process. All three read `app.changes.feed` as an anonymous reader: registered datasets'
changes are only in the API, for readers with `factors:read`."""

from __future__ import annotations

import hashlib
from typing import Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Depends, Request, Response

from app.changes import feed
from app.changes.router import (
    After,
    DatasetFilter,
    PublisherFilter,
    feed_filter,
    list_changes,
)
from app.core.audit import chain_cursor, parse_chain_cursor
from app.core.db import SessionDep
from app.core.http_cache import SHORT_LIVED, etag_matches
from app.core.params import DEFAULT_PAGE, Cursor, Limit
from app.core.principal import ANONYMOUS
from app.web.i18n import Translator, negotiate
from app.web.params import declared_params_only
from app.web.templating import PageMeta, Twin, public_url, query_string, render_page

router = APIRouter(dependencies=[Depends(declared_params_only)])

CHANGES_SHOWN = 50
ATOM_MEDIA_TYPE = "application/atom+xml"
_ATOM = "http://www.w3.org/2005/Atom"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@router.get("/changes.json")
def changes_json(
    request: Request,
    session: SessionDep,
    after: After = None,
    limit: Limit = DEFAULT_PAGE,
    publisher: PublisherFilter = None,
    dataset: DatasetFilter = None,
) -> Response:
    return list_changes(
        request,
        session,
        ANONYMOUS,
        after=after,
        limit=limit,
        publisher=publisher,
        dataset=dataset,
    )


def _newest(
    session: SessionDep, *, before: str | None, publisher: str | None, dataset: str | None
) -> feed.ChangesPage:
    position = parse_chain_cursor(before, loc=("query", "before")) if before else 0
    return feed.changes_page(
        session,
        viewer=ANONYMOUS,
        after=position,
        limit=CHANGES_SHOWN,
        wanted=feed_filter(publisher, dataset),
        newest_first=True,
    )


def describe(change: dict[str, Any], t: Translator) -> str:
    """One line saying what happened, in the reader's language (titles of Atom entries)."""
    where = f"{change['publisher']}/{change['dataset']}"
    kind = change["type"]
    if kind == "release.published":
        return t("changes_said_published", dataset=where, version=change["version"])
    if kind == "release.withdrawn":
        return t("changes_said_withdrawn", dataset=where, version=change["version"])
    if kind == "dataset.deprecated":
        return t("changes_said_deprecated", dataset=where)
    return t("changes_said_reference", tables=", ".join(sorted(change["reference"] or {})))


@router.get("/changes.atom")
def changes_atom(
    request: Request,
    session: SessionDep,
    publisher: PublisherFilter = None,
    dataset: DatasetFilter = None,
) -> Response:
    """The newest changes as an Atom feed, in the language `?lang=` or `Accept-Language` asks."""
    lang = negotiate(request)
    t = Translator(lang)
    page = _newest(session, before=None, publisher=publisher, dataset=dataset)
    base = public_url(request)
    filters = query_string(publisher=publisher, dataset=dataset)
    ET.register_namespace("", _ATOM)
    root = ET.Element(f"{{{_ATOM}}}feed", {_XML_LANG: "zh-CN" if lang == "zh" else "en"})

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{_ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    sub(root, "id", f"{base}/changes.atom{filters}")
    sub(root, "title", t("changes_title"))
    sub(root, "subtitle", t("changes_intro"))
    newest = page.items[0]["occurred_at"] if page.items else "1970-01-01T00:00:00+00:00"
    sub(root, "updated", newest)
    sub(root, "link", rel="self", type=ATOM_MEDIA_TYPE, href=f"{base}/changes.atom{filters}")
    sub(root, "link", rel="alternate", type="text/html", href=f"{base}/changes{filters}")
    author = sub(root, "author")
    sub(author, "name", t("site_name"))
    sub(author, "uri", base)
    for change in page.items:
        entry = sub(root, "entry")
        sub(entry, "id", f"{base}/v1/changes?after={chain_cursor(change['audit_event_id'] - 1)}")
        sub(entry, "title", describe(change, t))
        sub(entry, "updated", change["occurred_at"])
        sub(entry, "published", change["occurred_at"])
        sub(entry, "category", term=change["type"])
        if change["dataset"] is not None:
            target = f"/datasets/{change['publisher']}/{change['dataset']}"
            if change["type"].startswith("release.") and change["version"]:
                target += f"/versions/{change['version']}"
            sub(entry, "link", rel="alternate", type="text/html", href=f"{base}{target}")
        sub(entry, "summary", _summary(change, t))
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": SHORT_LIVED, "Content-Language": lang}
    if "lang" not in request.query_params:
        headers["Vary"] = "Accept-Language"
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=ATOM_MEDIA_TYPE, headers=headers)


def _summary(change: dict[str, Any], t: Translator) -> str:
    parts = [describe(change, t)]
    if change["reason"]:
        parts.append(t("changes_reason", reason=change["reason"]))
    if change["superseded_by"]:
        parts.append(t("changes_successor", successor=change["superseded_by"]))
    if change["content_sha256"]:
        parts.append(f"content_sha256 {change['content_sha256']}")
    if change["type"].startswith("release."):
        parts.append(t("changes_current", version=change["current_version"] or "—"))
    parts.append(t("changes_audit", id=change["audit_event_id"], hash=change["audit_hash"]))
    return " · ".join(parts)


@router.get("/changes")
def changes_page(
    request: Request,
    session: SessionDep,
    publisher: PublisherFilter = None,
    dataset: DatasetFilter = None,
    before: Cursor = None,
) -> Response:
    t = Translator(negotiate(request))
    page = _newest(session, before=before, publisher=publisher, dataset=dataset)
    filters = {"publisher": publisher, "dataset": dataset}
    twins = [Twin(ATOM_MEDIA_TYPE, f"/changes.atom{query_string(**filters)}", "Atom")]
    api_path = f"/v1/changes{query_string(**filters)}"
    if page.items:
        # The API's page holding exactly these changes: from just before the oldest shown.
        oldest = page.items[-1]["audit_event_id"]
        api_query = query_string(after=chain_cursor(oldest - 1), limit=len(page.items), **filters)
        twins.insert(0, Twin("application/json", f"/changes.json{api_query}", "JSON"))
        api_path = f"/v1/changes{api_query}"
    meta = PageMeta(title=t("changes_title"), twins=twins, api_path=api_path)
    older = (
        f"/changes{query_string(before=chain_cursor(page.position), **filters)}"
        if page.more
        else None
    )
    context = {
        "changes": [{**c, "said": describe(c, t)} for c in page.items],
        "older_href": older,
        "filters": filters,
    }
    return render_page(request, "changes.html", context, meta=meta)
