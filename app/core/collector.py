"""Python's cyclic garbage collector, tuned once per server process when the app starts.

A 1000-line `POST /v1/factors:resolve` builds ~50,000 short-lived dicts and lists: with the
default thresholds (a young collection every 700 allocations) that is ~70 collections per
call, some of them full ones over the whole heap (~800,000 objects once the app is loaded),
which took as long as the resolution itself and made its slowest calls (bench/resolve.py).

- `gc.freeze()` after startup: the modules, routes and tables loaded by then live as long as
  the process, so no collection walks them again;
- a young generation of `YOUNG_THRESHOLD` allocations (Python 3.13's default is 2,000; objects
  freed by reference counting, nearly all of them, never wait for a collection): cycles are
  still collected, in fewer and larger steps.
"""

from __future__ import annotations

import gc
import threading

YOUNG_THRESHOLD = 20_000

_tuned = False
_lock = threading.Lock()


def tune_collector() -> None:
    """Once per process: collect, freeze what is alive, raise the young threshold."""
    global _tuned
    with _lock:
        if _tuned:
            return
        _tuned = True
        # Garbage first, so that only live objects are frozen.
        gc.collect()
        gc.freeze()
        _, middle, old = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
