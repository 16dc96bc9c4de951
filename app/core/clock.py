"""The clock that stamps life-cycle events (upload, submit, publish, reject, withdraw, deprecate).

`as_of` answers depend on when a version was published and withdrawn, so those times come from
one injectable clock rather than from scattered `datetime.now()` calls. The app reads it from
`app.state.clock` (default: the real UTC clock); a test sets a controllable one there and
gets a history with real dates, written by the same code paths as in production, without
editing released rows (which the database forbids).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from app.core.db import utcnow

Clock = Callable[[], datetime]


def get_clock(request: Request) -> Clock:
    clock: Clock = getattr(request.app.state, "clock", utcnow)
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]
