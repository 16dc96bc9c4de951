"""Who is reading: anonymous callers see public datasets; `factors:read` sees registered ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request


@dataclass(frozen=True)
class Viewer:
    client_id: str | None = None
    publisher: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_read_registered(self) -> bool:
        return "factors:read" in self.scopes or "admin" in self.scopes


ANONYMOUS = Viewer()


def get_viewer(request: Request) -> Viewer:
    # Bearer tokens are verified by the auth domain once it is installed on the app;
    # until then every reader is anonymous.
    viewer = getattr(request.state, "viewer", None)
    return viewer if isinstance(viewer, Viewer) else ANONYMOUS


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
