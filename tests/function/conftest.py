"""Servers the safeguards' tests share: the members' metadata servers and their IRIS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulators.iris_health import IrisHealthSimulator
from emulators.metadata import MetadataEmulator
from support import mirrors
from support.events import cloud_event
from support.function_app import Delivery, FunctionUnderTest
from support.signing import metadata_servers
from vipmover.event import format_rfc3339


@pytest.fixture
def metadata() -> Iterator[MetadataEmulator]:
    """The primary's and the backup's metadata servers (route mode's layout names them alike)."""
    with metadata_servers() as emulator:
        yield emulator


@pytest.fixture
def iris() -> Iterator[IrisHealthSimulator]:
    """Both members' IRIS; the primary (which holds the VIP) answers SUCCESS."""
    names = [mirrors.primary().name, mirrors.backup().name]
    with IrisHealthSimulator(names) as simulator:
        simulator.set_primary(names[0])
        yield simulator


def deliver(
    function: FunctionUnderTest,
    event: dict[str, Any],
    *,
    message_id: str | None = None,
    seconds_from_now: float = 0,
) -> Delivery:
    """Deliver `event` as Pub/Sub would, published `seconds_from_now` (the marks' clock)."""
    publish_time = format_rfc3339(datetime.now(UTC) + timedelta(seconds=seconds_from_now))
    return function.deliver(cloud_event(event, message_id=message_id, publish_time=publish_time))
