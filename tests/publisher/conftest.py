"""Fixtures for the publisher: one Pub/Sub emulator per session, a metadata emulator per test.

Each test gets its own topic and subscription (unique names), a clean `MIRRORVIP_*` environment
(restored by monkeypatch), and the publisher's per-process caches cleared, so tests do not see
each other's clients or VMs.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLR0402 - mypy resolves this form
import pytest
from google.api_core import exceptions

from emulators.metadata import VM, MetadataEmulator
from emulators.pubsub import PubSubEmulator, emulator_publisher, emulator_subscriber
from mirrorvip_publisher import metadata, pubsub

PROJECT = "mirrorvip-test"
ZONE = "us-central1-a"


@dataclass(frozen=True)
class Pulled:
    """One message as a subscriber receives it."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    message_id: str

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.data)
        return loaded


@dataclass(frozen=True)
class Channel:
    """A topic with an ordered pull subscription on the emulator."""

    topic: str
    subscription: str
    subscriber: Any
    publisher: Any
    """A test's own publisher, with message ordering (for sentinels)."""

    def published_so_far(self, ordering_key: str, timeout: float = 10.0) -> list[Pulled]:
        """Every message published with `ordering_key` so far, complete without any time window.

        Publishes a sentinel with the same ordering key and pulls until it arrives: an ordered
        subscription delivers one key's messages in publish order, so whatever the code under test
        had published (and Pub/Sub had acknowledged) arrives before the sentinel. An empty list
        means nothing was published, not that nothing arrived in time.
        """
        marker = uuid.uuid4().hex
        self.publisher.publish(
            self.topic, b"sentinel", ordering_key=ordering_key, sentinel=marker
        ).result(timeout=timeout)
        got: list[Pulled] = []
        deadline = time.monotonic() + timeout
        while not any(m.attributes.get("sentinel") == marker for m in got):
            left = deadline - time.monotonic()
            assert left > 0, f"the sentinel did not arrive within {timeout:g} s: {got}"
            got += self.pull(count=1, timeout=left)
        return [m for m in got if m.attributes.get("sentinel") != marker]

    def pull(self, count: int = 1, timeout: float = 10.0) -> list[Pulled]:
        """Poll until count messages arrived (acking them) or the deadline passes."""
        got: list[Pulled] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and (left := deadline - time.monotonic()) > 0:
            try:
                response = self.subscriber.pull(
                    subscription=self.subscription,
                    max_messages=count - len(got),
                    timeout=min(left, 1.0),
                )
            except exceptions.DeadlineExceeded:
                continue  # long poll ended empty
            if not response.received_messages:
                continue
            for received in response.received_messages:
                message = received.message
                got.append(
                    Pulled(
                        bytes(message.data),
                        dict(message.attributes),
                        message.ordering_key,
                        message.message_id,
                    )
                )
            self.subscriber.acknowledge(
                subscription=self.subscription,
                ack_ids=[received.ack_id for received in response.received_messages],
            )
        return got


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """Started once: the JVM takes seconds."""
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No publisher settings leak in from the machine or from other tests."""
    for name in (
        "MIRRORVIP_CONFIG",
        "MIRRORVIP_TOPIC",
        "MIRRORVIP_BUDGET_SECONDS",
        "MIRRORVIP_TOTAL_SECONDS",
        "MIRRORVIP_IDENTITY_TOKEN",
        "MIRRORVIP_AUDIENCE",
        "MIRRORVIP_PUBSUB_ENDPOINT",
        "GCE_METADATA_HOST",
        "PUBSUB_EMULATOR_HOST",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    metadata.forget_instance_facts()
    pubsub.forget_clients()
    yield monkeypatch
    metadata.forget_instance_facts()
    pubsub.forget_clients()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def vm() -> VM:
    """This test's VM, with a unique name."""
    return VM(project=PROJECT, zone=ZONE, name=unique("iris"), id=str(uuid.uuid4().int % 10**19))


@pytest.fixture
def metadata_server(vm: VM, clean_env: pytest.MonkeyPatch) -> Iterator[MetadataEmulator]:
    """The VM's metadata server, found by the publisher through GCE_METADATA_HOST."""
    with MetadataEmulator([vm]) as emulator:
        clean_env.setenv("GCE_METADATA_HOST", emulator.host)
        yield emulator


@pytest.fixture
def channel(pubsub_emulator: PubSubEmulator, clean_env: pytest.MonkeyPatch) -> Iterator[Channel]:
    """A fresh topic and ordered subscription; the publisher's topic and endpoint set."""
    clean_env.setenv("MIRRORVIP_PUBSUB_ENDPOINT", pubsub_emulator.host)
    topic = f"projects/{PROJECT}/topics/{unique('vip')}"
    subscription = f"projects/{PROJECT}/subscriptions/{unique('sub')}"
    publisher = emulator_publisher(
        pubsub_emulator.host,
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
    )
    subscriber = emulator_subscriber(pubsub_emulator.host)
    try:
        publisher.create_topic(name=topic, timeout=10)
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "enable_message_ordering": True},
            timeout=10,
        )
        clean_env.setenv("MIRRORVIP_TOPIC", topic)
        yield Channel(topic, subscription, subscriber, publisher)
    finally:
        with contextlib.suppress(exceptions.GoogleAPICallError):
            subscriber.delete_subscription(subscription=subscription, timeout=10)
            publisher.delete_topic(topic=topic, timeout=10)
        subscriber.close()
        publisher.transport.close()
