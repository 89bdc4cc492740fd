"""Graceful stop on SIGINT (Ctrl-C) and SIGTERM.

``with GracefulStop() as stop:`` installs handlers that only record the signal; the training
loop asks ``stop.requested`` between steps, finishes the step it is in, saves ``last.pt`` and
ends with the conventional exit status (128 + signal: 130 for SIGINT, 143 for SIGTERM). A
second signal while the first is being handled raises ``KeyboardInterrupt`` at once (the user
insists), which the command line turns into one line, not a traceback.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Raised by the command line's loop after a graceful stop; carries the exit status."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + int(signum)


class GracefulStop:
    """Records SIGINT / SIGTERM instead of raising; restores the old handlers on exit.

    Outside the main thread (signal handlers cannot be installed there) it does nothing and
    `requested` stays None.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._old = {}

    @property
    def requested(self) -> Optional[int]:
        return self.signum

    @staticmethod
    def name(signum: int) -> str:
        return signal.Signals(signum).name

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:           # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
