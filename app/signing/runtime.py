"""The app's release keys (`app.state.release_keys`), as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.signing.keys import ReleaseKeys


def get_release_keys(request: Request) -> ReleaseKeys:
    keys: ReleaseKeys | None = getattr(request.app.state, "release_keys", None)
    if keys is None:
        keys = request.app.state.release_keys = ReleaseKeys(request.app.state.settings)
    return keys


ReleaseKeysDep = Annotated[ReleaseKeys, Depends(get_release_keys)]
