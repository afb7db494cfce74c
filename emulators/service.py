"""A start/stop lifecycle usable as a context manager, shared by the emulators and the stack."""

from __future__ import annotations

import signal
import threading
from typing import Self


class Service:
    """Something that runs in the background: `start()` it and `stop()` it, or use `with`.

    `with` always stops it, on errors too, so `stop()` must be idempotent and safe to call on a
    half-started service.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM or SIGINT sets: the command lines serve until it is set."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
