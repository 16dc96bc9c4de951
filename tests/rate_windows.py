"""Counting to a rate budget within one minute.

The budgets are counted with the `limits` library's sliding window counter, whose windows turn
on the minute (epoch-aligned): after the turn, the previous minute's hits weigh in at the share
of it still inside the last 60 s, rounded down, so three hits just before the turn count as two
just after it. A test that spends a budget exactly, and straddles the turn, is let through once
more (a 401 where it expects a 429). Such tests start where enough of the minute remains.
"""

from __future__ import annotations

import time

MINUTE = 60.0


def start_within_one_minute(margin: float = 20.0) -> None:
    """Wait, if fewer than `margin` seconds of the current minute remain, for the next one."""
    left = MINUTE - time.time() % MINUTE
    if left < margin:
        time.sleep(left + 0.01)
