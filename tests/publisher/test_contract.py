"""The event the publisher really sends is event contract v1: the JSON schema accepts it, and so
does the function's own parser (`vipmover.event.parse_event`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emulators.metadata import VM, MetadataEmulator
from mirrorvip_publisher import announce, notify_become_primary
from mirrorvip_publisher.config import default_audience
from mirrorvip_publisher.event import (
    BECAME_PRIMARY,
    bound_audience,
    build_event,
    encode_event,
    event_digest,
    format_occurred_at,
)
from mirrorvip_publisher.metadata import InstanceFacts
from vipmover.config import IdentityConfig
from vipmover.errors import EventRejected
from vipmover.event import parse_event
from vipmover.identity import CertsCache, verify_identity

from .conftest import Channel

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "function" / "event_schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


FACTS = InstanceFacts("mirrorvip-test", "us-central1-a", "iris-a", "1234567890123456789")


@pytest.mark.unit
@pytest.mark.parametrize("event_type", ["became_primary", "heartbeat"])
@pytest.mark.parametrize("token", [None, "aaa.bbb.ccc"])
def test_built_events_follow_the_schema_and_the_parser(
    validator: jsonschema.protocols.Validator, event_type: str, token: str | None
) -> None:
    event = build_event(event_type, "MIRRORA", "IRIS-A", FACTS, 1_795_608_620.5, token)

    validator.validate(json.loads(encode_event(event)))
    parsed = parse_event(encode_event(event))
    assert (parsed.type, parsed.mirror, parsed.member) == (event_type, "MIRRORA", "IRIS-A")
    assert parsed.instance_id == FACTS.id
    assert parsed.identity_token == token


@pytest.mark.unit
@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_795_608_620.5, "2026-11-25T12:10:20.500Z"),
        (1_795_608_620.9999, "2026-11-25T12:10:20.999Z"),  # truncated, never rounded up to :21
    ],
)
def test_occurred_at_is_rfc3339_utc_millis(epoch: float, text: str) -> None:
    assert format_occurred_at(epoch) == text


@pytest.mark.integration
@pytest.mark.usefixtures("metadata_server")
def test_what_arrives_on_pubsub_is_contract_v1(
    channel: Channel, validator: jsonschema.protocols.Validator, vm: VM
) -> None:
    assert notify_become_primary("MIRRORA", "IRIS-A").ok
    [message] = channel.pull()

    event: dict[str, Any] = message.json()
    validator.validate(event)
    parsed = parse_event(message.data)
    assert parsed.instance.name == vm.name
    assert parsed.instance.zone == vm.zone
    assert parsed.identity_token == event["identity_token"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"member": "IRIS-Ä\u202e"},  # non-ASCII and a bidi control: escaped the same way
        {"future_field": {"b": [1, 2.5, None], "a": True}},  # a field added to the contract later
    ],
    ids=["plain", "non-ascii", "unknown-field"],
)
def test_publisher_and_function_bind_the_token_to_the_same_digest(extra: dict[str, Any]) -> None:
    """The publisher asks for `<topic>#<digest>`; the function recomputes the digest from what
    it received. Both must agree byte for byte, or every real token would be refused."""
    event = build_event("became_primary", "MIRRORA", "IRIS-A", FACTS, 1_795_608_620.5) | extra
    digest = event_digest(event)
    signed = event | {"identity_token": "aaa.bbb.ccc"}

    received = parse_event(encode_event(signed))

    assert received.digest == digest
    assert (
        bound_audience("//pubsub.googleapis.com/t", signed) == f"//pubsub.googleapis.com/t#{digest}"
    )
    # Another event (one field changed) has another digest: its token cannot carry this one.
    assert (
        parse_event(encode_event(signed | {"occurred_at": "2026-11-25T12:10:21.000Z"})).digest
        != digest
    )
    # A dry run's token names a different audience, which the function never expects.
    assert bound_audience("a", event, dry_run=True) != bound_audience("a", event)


def _function_verdict(event: dict[str, Any], topic: str, certs_url: str) -> str:
    """What the deployed function's identity check says of this event: `accepted` or a reason."""
    config = IdentityConfig(required=True, certs_url=certs_url)
    try:
        verify_identity(
            event.get("identity_token"),
            parse_event(encode_event(event)),
            config=config,
            source=default_audience(topic),
            publish_time=None,
            certs=CertsCache(),
        )
    except EventRejected as rejected:
        return rejected.reason
    return "accepted"


@pytest.mark.integration
def test_a_dry_run_token_is_refused_by_the_function_and_a_real_one_accepted(
    channel: Channel, metadata_server: MetadataEmulator
) -> None:
    dry = announce(BECAME_PRIMARY, "MIRRORA", "IRIS-A", dry_run=True)
    real = notify_become_primary("MIRRORA", "IRIS-A")
    assert dry.ok, str(dry)
    assert real.ok, str(real)
    assert dry.event is not None
    assert real.event is not None

    # Asked for with the dry-run mark, so it can never move the VIP.
    audiences = [r.query["audience"][0] for r in metadata_server.requests if "identity" in r.path]
    assert audiences[0].startswith(default_audience(channel.topic) + "#dry-run:")
    certs_url = metadata_server.certs_url
    assert _function_verdict(dry.event, channel.topic, certs_url) == "wrong_audience"
    assert _function_verdict(real.event, channel.topic, certs_url) == "accepted"
