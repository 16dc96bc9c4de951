"""Each route's dependency analysis, done once per test process instead of once per app.

FastAPI (since its include tree, fastapi/fastapi#15745) analyses the endpoint and dependencies
of every route of an included router again for each app, on that app's first request: pydantic
adapters for each parameter, recursively through sub-dependencies, and for its response model.
The suite builds one app per test, and that analysis was about 14 % of the in-process tests'
CPU (py-spy), the response fields another 3 %. What it produces depends only on the path, the
endpoint, the dependencies and the response model, which are module-level objects shared by
every app, and FastAPI only reads it afterwards; so it is kept per process, as FastAPI itself
kept it before the include tree. Endpoints made per app (a test's probe routes, closures) are
analysed fresh each time, and the caches are bounded. Arize-ai/phoenix#15881 does the same for
its suite. `efdb serve` and every server a test starts run FastAPI unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import fastapi.dependencies.models
import fastapi.routing
from fastapi import params

_ROUTING: Any = fastapi.routing
_DEPENDENCY_MODELS: Any = fastapi.dependencies.models
_MAX_ENTRIES = 4096
_Analysis = tuple[Any, Any, bool]


def install() -> None:
    original: Callable[..., _Analysis] = _ROUTING._build_dependant_with_parameterless_dependencies
    if getattr(original, "efdb_memoized", False):
        return
    cache: dict[tuple[Any, ...], _Analysis] = {}

    def memoized(
        *, path: str, call: Callable[..., Any], dependencies: Sequence[params.Depends]
    ) -> _Analysis:
        if "<locals>" in getattr(call, "__qualname__", "<locals>"):
            return original(path=path, call=call, dependencies=dependencies)
        # The key holds the objects themselves (not their ids), so an id is never reused.
        key = (path, call, *((d.dependency, d.use_cache, d.scope) for d in dependencies))
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable dependency: analysed fresh
            return original(path=path, call=call, dependencies=dependencies)
        if found is None:
            if len(cache) >= _MAX_ENTRIES:
                cache.clear()
            found = cache[key] = original(path=path, call=call, dependencies=dependencies)
        return found

    memoized.efdb_memoized = True  # type: ignore[attr-defined]
    _ROUTING._build_dependant_with_parameterless_dependencies = memoized
    _memoize_response_fields()


def forget_apps() -> None:
    """Empty FastAPI's own per-process caches of endpoint kinds (coroutine, generator…), which
    hold up to 4,096 endpoints each: the suite's apps have endpoints made per app (the docs
    pages are closures over their app), so each cache entry kept a whole app alive. Up to
    a thousand dead apps per worker (1.2 GB, 3.5 million objects) made every full garbage
    collection take seconds. Called after each test; the module-level endpoints are
    classified again in microseconds."""
    for cached in (
        _DEPENDENCY_MODELS._is_gen_callable_cached,
        _DEPENDENCY_MODELS._is_async_gen_callable_cached,
        _DEPENDENCY_MODELS._is_coroutine_callable_cached,
    ):
        cached.cache_clear()


def _memoize_response_fields() -> None:
    """The response model's field (a pydantic TypeAdapter) of each route, made again per app
    too: kept per (name, model, mode), which is all FastAPI gives it there."""
    original: Callable[..., Any] = _ROUTING.create_model_field
    cache: dict[tuple[Any, ...], Any] = {}

    def memoized(name: str, type_: Any, mode: str = "validation", **rest: Any) -> Any:
        if rest:
            return original(name=name, type_=type_, mode=mode, **rest)
        key = (name, type_, mode)
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable annotation: made fresh
            return original(name=name, type_=type_, mode=mode)
        if found is None:
            if len(cache) >= _MAX_ENTRIES:
                cache.clear()
            found = cache[key] = original(name=name, type_=type_, mode=mode)
        return found

    _ROUTING.create_model_field = memoized
