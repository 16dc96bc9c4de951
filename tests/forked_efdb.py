"""`efdb ARGS` in a process of its own, forked from an interpreter that has imported efdb already.

A child process started with `python -m app.cli` spends 1.5-2 s of CPU before it serves its first
request, nearly all of it importing (FastAPI, SQLAlchemy, pydantic models, pint, pyarrow): some
sixty server starts cost the suite more CPU than anything else. Here a fork server (one per test
worker, started on first use) imports `app.cli` and `app.main` once, and each server is forked
from it: a real process with its own pid, working directory, environment, stdout/stderr file,
signal handling and exit status, running the same `app.cli.main(argv)` as the `efdb` script, so
SIGKILL, SIGTERM and restarts mean what they mean to an operator's process. What it does not
repeat is the interpreter's start; the tests about that (the README's Quick start, the installed
wheel) still start `python -m app.cli` / `efdb` themselves.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["app.cli", "app.main"])
_STARTED: list[ForkedEfdb] = []


def _run_efdb(argv: Sequence[str], env: dict[str, str], cwd: str, log: str) -> None:
    """In the child: the environment, directory and output of a process started with them."""
    from app.cli import main
    from app.core.config import get_settings

    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()  # settings are read from this environment, not the server's
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(list(argv)))


class ForkedEfdb:
    """The part of `subprocess.Popen` the tests use, for a forked `efdb` process."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self._process: BaseProcess = _CONTEXT.Process(
            target=_run_efdb, args=(list(argv), env, str(cwd), str(log)), daemon=False
        )
        self._process.start()
        self.args = ["efdb", *argv]
        self.pid = int(self._process.pid or 0)
        _STARTED.append(self)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@atexit.register  # runs before multiprocessing's own exit handler, which would wait for them
def _kill_leftovers() -> None:
    for process in _STARTED:
        process.kill()
