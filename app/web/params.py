"""Query parameters on pages and twins follow the API's rule: an unknown one is refused.

A typo such as `?regoin=CN` must not silently widen what a page shows. Routes that declare
their parameters get the check from their own signature (`declared_params_only`); routes that
read a form's fields from the query string name them (`app.core.params.only_query_params`).
Every page also accepts `lang`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.core.params import only_query_params

LANG_PARAM = "lang"


def _query_names(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub)


# Keyed by the endpoint function (routes are not hashable; each app builds its own copies).
_declared_by_endpoint: dict[Callable[..., Any], frozenset[str]] = {}


def _declared(route: APIRoute) -> frozenset[str]:
    names = _declared_by_endpoint.get(route.endpoint)
    if names is None:
        names = frozenset({LANG_PARAM, *_query_names(route.dependant)})
        _declared_by_endpoint[route.endpoint] = names
    return names


async def declared_params_only(request: Request) -> None:
    """Refuse query parameters the matched route does not declare (plus `lang`)."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        await only_query_params(_declared(route))(request)
