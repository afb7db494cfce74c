"""Run a step on a worker thread and stop waiting for it at a deadline.

Python 3.9 compatible at runtime, as the whole publisher (IRIS's embedded Python may be 3.9):
the `X | Y` types appear only in annotations, which are never evaluated.

Why a thread: every step already cuts its own timeouts to the budget, but some waits ignore
them (a DNS lookup, a stuck C extension). The announcement must end within its budget all the
same, so the caller waits for the worker at most `timeout` and then moves on; the abandoned
worker is a daemon thread and cannot keep the process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The step returned `value` in time."""

    value: T


@dataclass(frozen=True)
class Raised:
    """The step raised `error` in time (the caller decides what it means)."""

    error: Exception


@dataclass(frozen=True)
class TimedOut:
    """The step was still running when the caller stopped waiting."""

    waited_seconds: float


def run_with_watchdog(
    fn: Callable[[], T], timeout: float, *, name: str = "mirrorvip-watchdog"
) -> Finished[T] | Raised | TimedOut:
    """Run `fn` on a daemon thread; wait for it at most `timeout` seconds. Never raises.

    Args:
        fn: the work; its exceptions (not BaseExceptions such as SystemExit) are returned.
        timeout: seconds to wait for it; the thread may run on afterwards, abandoned.
        name: the worker thread's name, for thread dumps.

    Returns:
        `Finished(value)`, `Raised(error)` or `TimedOut(timeout)`.
    """
    outcome: list[Finished[T] | Raised] = []

    def work() -> None:
        try:
            outcome.append(Finished(fn()))
        except Exception as exc:  # noqa: BLE001 (handed to the caller, not lost in the thread)
            outcome.append(Raised(exc))

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    worker.join(max(0.0, timeout))
    return outcome[0] if outcome else TimedOut(timeout)
