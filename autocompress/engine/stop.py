"""Ctrl-C and SIGTERM as a request to stop, honoured where the driver is between storage calls.

A KeyboardInterrupt raised inside an Optuna storage call can leave a SQLite read statement open: its shared lock then
outlives the call, and the writes that record the stopped trials fail with "database is locked". So the first signal
only sets a flag, which the driver checks at its safe points (at most a second apart); a second signal interrupts at
once, for a user who will not wait.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopRequested(Exception):
    """Raised by StopSignals.check at a safe point after the first Ctrl-C or SIGTERM."""


class StopSignals:
    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread; an embedding program keeps its own handling
        for signum in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(signum)
            if signum == signal.SIGINT and current is signal.SIG_IGN:
                continue  # started in the background of a script, which chose to ignore Ctrl-C: keep that choice
            self._previous[signum] = current
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise StopRequested
