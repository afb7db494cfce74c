"""notify_become_primary against the Pub/Sub and metadata emulators: what really gets published,
and what happens within the time budget when a dependency is down, slow or failing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from emulators.metadata import VM, MetadataEmulator
from emulators.pubsub import PubSubEmulator
from mirrorvip_publisher import PublishResult, heartbeat, notify_become_primary
from mirrorvip_publisher.config import default_audience
from mirrorvip_publisher.event import bound_audience

from .conftest import Channel
from .tcp_proxy import HangingProxy

pytestmark = pytest.mark.integration

MIRROR = "MIRRORA"
MEMBER = "IRIS-A"
SLACK_SECONDS = 0.5
LIBRARY_EMULATOR_SWITCH = "PUBSUB_EMULATOR_HOST"
"""google-cloud-pubsub's own switch: set only to show that the publisher ignores it."""


@pytest.mark.usefixtures("metadata_server")
def test_the_event_arrives_with_attributes_and_ordering_key(channel: Channel, vm: VM) -> None:
    result = notify_become_primary(MIRROR, MEMBER)

    assert result.ok, str(result)
    assert str(result).startswith(f"published {result.message_id} ")
    [message] = channel.pull()
    assert message.message_id == result.message_id
    assert message.attributes == {"type": "became_primary", "mirror": MIRROR}
    assert message.ordering_key == MIRROR
    event = message.json()
    assert event["type"] == "became_primary"
    assert event["version"] == 1
    assert (event["mirror"], event["member"]) == (MIRROR, MEMBER)
    assert event["instance"] == {
        "project": vm.project,
        "zone": vm.zone,
        "name": vm.name,
        "id": vm.id,
    }


def test_the_identity_token_verifies_for_the_topic_audience_bound_to_the_event(
    channel: Channel, metadata_server: MetadataEmulator, vm: VM
) -> None:
    assert notify_become_primary(MIRROR, MEMBER).ok
    [message] = channel.pull()

    event = message.json()
    with requests.Session() as session:
        claims = id_token.verify_token(
            event["identity_token"],
            Request(session),
            # Bound to this one event: the topic, `#`, the digest of the event without the token.
            audience=bound_audience(default_audience(channel.topic), event),
            certs_url=metadata_server.certs_url,
        )
    assert claims["google"]["compute_engine"]["instance_id"] == vm.id
    assert claims["google"]["compute_engine"]["instance_name"] == vm.name


def test_configured_audience_and_identity_off(
    channel: Channel, metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_AUDIENCE", "https://vip.example")
    assert notify_become_primary(MIRROR, MEMBER).ok
    monkeypatch.setenv("MIRRORVIP_IDENTITY_TOKEN", "off")
    assert notify_become_primary(MIRROR, MEMBER).ok
    first, second = channel.pull(2)
    assert first.json()["identity_token"]
    assert "identity_token" not in second.json()
    audiences = [r.query.get("audience") for r in metadata_server.requests if "identity" in r.path]
    unsigned = {k: v for k, v in first.json().items() if k != "identity_token"}
    expected = bound_audience("https://vip.example", unsigned)
    assert audiences == [[expected]]
    assert expected.startswith("https://vip.example#")


def test_warm_calls_publish_in_order(channel: Channel, metadata_server: MetadataEmulator) -> None:
    results = [notify_become_primary(MIRROR, f"MEMBER-{n}") for n in range(3)]

    assert all(result.ok for result in results), [str(r) for r in results]
    members = [message.json()["member"] for message in channel.pull(3)]
    assert members == ["MEMBER-0", "MEMBER-1", "MEMBER-2"]
    # Instance facts are read once per process, the token on every call.
    paths = [request.path for request in metadata_server.requests]
    assert paths.count("/computeMetadata/v1/instance/name") == 1
    assert sum("identity" in path for path in paths) == 3


def announce_within(monkeypatch: pytest.MonkeyPatch, budget: float, total: float) -> PublishResult:
    """Announce with this budget and total; it must fail, and return within the total + slack."""
    monkeypatch.setenv("MIRRORVIP_BUDGET_SECONDS", f"{budget:g}")
    monkeypatch.setenv("MIRRORVIP_TOTAL_SECONDS", f"{total:g}")
    started = time.monotonic()
    result = notify_become_primary(MIRROR, MEMBER)
    elapsed = time.monotonic() - started
    assert elapsed <= total + SLACK_SECONDS, f"{elapsed:.2f} s: {result}"
    assert not result.ok
    assert result.reason
    return result


def identity_requests(metadata_server: MetadataEmulator) -> int:
    return sum("identity" in request.path for request in metadata_server.requests)


def test_without_an_identity_token_nothing_is_sent_and_identity_is_named(
    channel: Channel, metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.fail(500, path_contains="identity")
    started = time.monotonic()

    result = announce_within(monkeypatch, budget=1, total=3)

    # Retried for the whole total, token included, then reported: not "published".
    assert str(result).startswith("failed: identity: no identity token: "), str(result)
    assert result.attempts >= 2
    assert time.monotonic() - started >= 3 - 1
    assert identity_requests(metadata_server) > result.attempts  # retried inside attempts too
    # The deployed function would reject and acknowledge a tokenless event: none was sent.
    assert channel.published_so_far(MIRROR) == []


def test_an_identity_token_that_comes_back_within_the_total_is_published(
    channel: Channel, metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.fail(500, path_contains="identity")
    monkeypatch.setenv("MIRRORVIP_BUDGET_SECONDS", "1")
    monkeypatch.setenv("MIRRORVIP_TOTAL_SECONDS", "20")
    # Heal once a whole attempt has failed on the token: the next attempt must fetch it again.
    deadline = time.monotonic() + 15
    healed_at: list[float] = []

    def heal_after_a_failed_attempt() -> None:
        while time.monotonic() < deadline and identity_requests(metadata_server) < 6:
            time.sleep(0.01)  # polling interval
        metadata_server.heal()
        healed_at.append(time.monotonic())

    healer = threading.Thread(target=heal_after_a_failed_attempt)
    healer.start()
    result = notify_become_primary(MIRROR, MEMBER)
    returned = time.monotonic()
    healer.join()

    assert result.ok, str(result)
    assert result.attempts >= 2
    assert f", {result.attempts} attempts)" in str(result)
    [message] = channel.pull()
    assert message.message_id == result.message_id
    assert message.json()["identity_token"].count(".") == 2
    # After the heal, the next attempt starts within the largest retry pause.
    assert returned - healed_at[0] <= 5 + SLACK_SECONDS


def test_the_sentinel_check_sees_what_was_published_just_before(channel: Channel) -> None:
    # What the "nothing was published" checks rely on: no time window, a message published
    # a moment before is always seen.
    channel.publisher.publish(channel.topic, b"early", ordering_key=MIRROR).result(timeout=10)
    [early] = channel.published_so_far(MIRROR)
    assert early.data == b"early"
    assert channel.published_so_far(MIRROR) == []


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port with nothing listening (bound, never listened: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.usefixtures("channel", "metadata_server")
def test_pubsub_unreachable_fails_within_budget(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_PUBSUB_ENDPOINT", f"127.0.0.1:{closed_port}")

    result = announce_within(monkeypatch, budget=1.5, total=1.5)

    assert result.stage == "publish"
    assert "did not acknowledge within the 1.5 s budget" in str(result)


@pytest.mark.usefixtures("channel", "metadata_server")
def test_pubsub_unreachable_is_retried_until_the_total(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_PUBSUB_ENDPOINT", f"127.0.0.1:{closed_port}")
    started = time.monotonic()

    result = announce_within(monkeypatch, budget=1, total=3)

    assert time.monotonic() - started >= 3 - 1
    assert result.stage == "publish"
    assert result.attempts >= 2


@pytest.mark.usefixtures("metadata_server")
def test_the_configured_endpoint_wins_over_pubsub_emulator_host(
    channel: Channel, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library's own switch points at nothing; the config names the emulator.
    monkeypatch.setenv(LIBRARY_EMULATOR_SWITCH, f"127.0.0.1:{closed_port}")

    result = notify_become_primary(MIRROR, MEMBER)

    assert result.ok, str(result)
    [message] = channel.published_so_far(MIRROR)
    assert message.message_id == result.message_id


@pytest.mark.usefixtures("metadata_server")
def test_pubsub_emulator_host_cannot_divert_a_publisher_configured_for_real_pubsub(
    channel: Channel, pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_PUBSUB_ENDPOINT", "")  # real Pub/Sub (unreachable here)
    monkeypatch.setenv(LIBRARY_EMULATOR_SWITCH, pubsub_emulator.host)

    result = announce_within(monkeypatch, budget=1, total=1)

    # An environment variable in IRIS's processes must not send failovers elsewhere.
    assert result.stage == "publish", str(result)
    assert channel.published_so_far(MIRROR) == []


@pytest.mark.usefixtures("metadata_server")
def test_a_hung_first_publish_leaves_time_for_a_retry_that_arrives(
    channel: Channel, pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_BUDGET_SECONDS", "4")
    monkeypatch.setenv("MIRRORVIP_TOTAL_SECONDS", "4")  # one attempt: the retry is inside it
    with HangingProxy(pubsub_emulator.host, hang=1) as proxy:
        monkeypatch.setenv("MIRRORVIP_PUBSUB_ENDPOINT", proxy.host)

        started = time.monotonic()
        result = notify_become_primary(MIRROR, MEMBER)

        assert result.ok, str(result)
        assert time.monotonic() - started <= 4 + SLACK_SECONDS
        assert result.attempts == 1
        assert proxy.accepted >= 2  # the hung connection, then a new one
    [message] = channel.published_so_far(MIRROR)
    assert message.message_id == result.message_id


def test_metadata_hanging_fails_within_budget(
    channel: Channel, metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.hang(30)

    result = announce_within(monkeypatch, budget=1, total=1)

    assert result.stage == "metadata"
    assert "gave no answer" in str(result)
    assert channel.published_so_far(MIRROR) == []


@pytest.mark.usefixtures("channel")
def test_metadata_500_fails_within_budget(
    metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.fail(500)

    result = announce_within(monkeypatch, budget=1, total=1)

    assert result.stage == "metadata"
    assert "HTTP 500" in str(result)


@pytest.mark.usefixtures("channel")
def test_metadata_down_fails_within_budget(
    metadata_server: MetadataEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.take_down()

    result = announce_within(monkeypatch, budget=1, total=1)

    assert "unreachable" in str(result)


def test_metadata_recovering_within_budget_still_publishes(
    channel: Channel, metadata_server: MetadataEmulator
) -> None:
    metadata_server.fail(503)
    # Heal from another thread once the publisher has seen the failure, as a flapping server would.
    deadline = time.monotonic() + 5

    def heal_after_first_failure() -> None:
        while time.monotonic() < deadline and not metadata_server.requests:
            time.sleep(0.01)  # polling interval
        metadata_server.heal()

    healer = threading.Thread(target=heal_after_first_failure)
    healer.start()
    result = notify_become_primary(MIRROR, MEMBER)
    healer.join()

    assert result.ok, str(result)
    assert any(request.status == 503 for request in metadata_server.requests)
    assert len(channel.pull()) == 1


@pytest.mark.usefixtures("channel")
def test_missing_metadata_value_is_named(metadata_server: MetadataEmulator) -> None:
    metadata_server.fail(404, path_contains="instance/id")

    started = time.monotonic()
    result = notify_become_primary(MIRROR, MEMBER)

    assert not result.ok
    assert result.stage == "metadata"
    assert "answered 404 for instance/id" in str(result)
    # A 4xx answer will not change: reported at once, not retried for the total (60 s).
    assert result.attempts == 1
    assert time.monotonic() - started < 2.5


@pytest.mark.usefixtures("metadata_server")
def test_missing_topic_is_a_prompt_permanent_failure(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRRORVIP_TOPIC", channel.topic + "-missing")

    started = time.monotonic()
    result = notify_become_primary(MIRROR, MEMBER)

    assert time.monotonic() - started < 2.5
    assert result.stage == "publish"
    assert "NotFound" in str(result) or "NOT_FOUND" in str(result)
    assert result.attempts == 1


@pytest.mark.usefixtures("metadata_server")
def test_no_configuration_is_a_clear_failure_not_an_exception() -> None:
    result = notify_become_primary(MIRROR, MEMBER)

    assert not result.ok
    assert result.stage == "config"
    assert "MIRRORVIP_TOPIC" in str(result)


@pytest.mark.usefixtures("channel")
def test_bad_arguments_from_iris_are_reported() -> None:
    result = notify_become_primary("", MEMBER)

    assert str(result).startswith("failed: arguments: mirror must be 1..64 characters")


@pytest.mark.usefixtures("metadata_server")
def test_heartbeat_is_refused_outside_iris(channel: Channel) -> None:
    result = heartbeat(MIRROR, MEMBER)

    assert not result.ok
    assert result.stage == "primary_check"
    assert "not running inside IRIS" in str(result)
    assert channel.published_so_far(MIRROR) == []


@pytest.mark.usefixtures("metadata_server")
def test_heartbeat_is_refused_on_a_backup(channel: Channel) -> None:
    result = heartbeat(MIRROR, MEMBER, is_primary=lambda: False)

    assert str(result).startswith("failed: primary_check: this member is not the primary")
    assert channel.published_so_far(MIRROR) == []


@pytest.mark.usefixtures("metadata_server")
def test_heartbeat_from_the_primary_is_published(channel: Channel) -> None:
    result = heartbeat(MIRROR, MEMBER, is_primary=lambda: True)

    assert result.ok, str(result)
    [message] = channel.pull()
    assert message.json()["type"] == "heartbeat"
    assert message.attributes["type"] == "heartbeat"
