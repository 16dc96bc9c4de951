"""Who is reading: anonymous callers see public datasets; `factors:read` sees registered ones.

No Authorization header means anonymous. A header with a bad token is a 401, never a silent
downgrade to anonymous: a client whose token broke should hear so, not get fewer results.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from app.auth.dependencies import authenticate
from app.core.db import SessionDep
from app.core.principal import ANONYMOUS, Viewer

__all__ = ["ViewerDep", "get_viewer"]


async def get_viewer(request: Request, session: SessionDep) -> Viewer:
    # Anonymous readers are the common case: answer them on the event loop, and go to the
    # thread pool only when there is a token to check against the database.
    if "authorization" not in request.headers:
        return ANONYMOUS
    principal = await run_in_threadpool(authenticate, request, session, frozenset())
    return principal.as_viewer()


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
