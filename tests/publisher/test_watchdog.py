"""The watchdog: an announcement ends within its budget even when a step ignores its timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mirrorvip_publisher import PublisherConfig, notify_become_primary
from mirrorvip_publisher.watchdog import Finished, Raised, TimedOut, run_with_watchdog

SLACK_SECONDS = 0.5


@pytest.fixture
def blocker() -> Iterator[threading.Event]:
    """An event that hung steps wait on; set at teardown so no abandoned thread lingers."""
    release = threading.Event()
    yield release
    release.set()


def test_a_value_is_returned() -> None:
    assert run_with_watchdog(lambda: 42, 5.0) == Finished(42)


def test_an_exception_is_returned_not_raised() -> None:
    def fail() -> int:
        raise ValueError("bad")

    ran = run_with_watchdog(fail, 5.0)

    assert isinstance(ran, Raised)
    assert str(ran.error) == "bad"


def test_a_hung_function_times_out_on_time(blocker: threading.Event) -> None:
    started = time.monotonic()
    ran = run_with_watchdog(blocker.wait, 0.3)

    assert ran == TimedOut(0.3)
    assert time.monotonic() - started <= 0.3 + SLACK_SECONDS


def test_a_lookup_that_ignores_its_timeout_ends_the_attempt_within_budget(
    blocker: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A DNS lookup has no timeout of its own: the metadata request's timeout does not cover it.
    real_getaddrinfo = socket.getaddrinfo

    def hung_lookup(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "metadata.hung.invalid":
            blocker.wait()
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung_lookup)
    # Without the watchdog the call would return only once the lookup does.
    release_later = threading.Timer(5.0, blocker.set)
    release_later.start()
    config = PublisherConfig(
        topic="projects/mirrorvip-test/topics/vip",
        budget_seconds=1.0,
        total_seconds=1.0,
        metadata_host="metadata.hung.invalid",
    )

    started = time.monotonic()
    try:
        result = notify_become_primary("MIRRORA", "IRIS-A", config=config)
    finally:
        release_later.cancel()

    assert time.monotonic() - started <= 1.0 + SLACK_SECONDS
    assert str(result).startswith(
        "failed: metadata: time budget of 1 s ran out while reading instance metadata"
    ), str(result)
