"""Query and path parameter types shared by the read API."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated

from fastapi import Path, Query, Request

from app.core.errors import InvalidParameter
from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.core.problem_text import Message

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
# A dataset named by its slug, or as publisher/dataset.
DATASET_REF_PATTERN = r"^(?:[a-z0-9][a-z0-9-]{0,63}/)?[a-z0-9][a-z0-9-]{0,63}$"

PublisherSlug = Annotated[
    str, Path(pattern=SLUG_PATTERN, description="Publisher slug, e.g. `mee-cn`")
]
DatasetSlug = Annotated[
    str, Path(pattern=SLUG_PATTERN, description="Dataset slug, unique within its publisher")
]
VersionPath = Annotated[
    str,
    Path(description="A release of the dataset: semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0"),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="Opaque cursor from the previous page's `next`")
]
DEFAULT_PAGE = DEFAULT_LIMIT


def only_query_params(
    allowed: Iterable[str],
) -> Callable[[Request], Coroutine[None, None, None]]:
    """A dependency that refuses unknown query parameters: a typo must not widen a search."""
    allowed_set = frozenset(allowed)

    # async: a pure check, so it runs on the event loop rather than in the thread pool.
    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed_set)
        if unknown:
            raise InvalidParameter(
                Message(
                    "query.unknown_parameters",
                    unknown=", ".join(unknown),
                    accepted=", ".join(sorted(allowed_set)),
                ),
                errors=[
                    {"loc": ["query", name], "code": "unknown_parameter", "detail": "not accepted"}
                    for name in unknown
                ],
            )

    return check
