"""Unit tests of the event contract: parser and schema against the golden event and bad input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from vipmover.errors import EventRejected
from vipmover.event import format_rfc3339, parse_event, parse_rfc3339, unwrap_message

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "function" / "event_schema.json").read_text(encoding="utf-8"))
GOLDEN = json.loads((ROOT / "tests" / "data" / "became_primary_event.json").read_text("utf-8"))


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_golden_event_is_valid_by_schema_and_parser() -> None:
    jsonschema.validate(GOLDEN, SCHEMA)
    event = parse_event(encode(GOLDEN))
    assert event.type == "became_primary"
    assert event.mirror == "IRISMIRROR"
    assert str(event.instance) == "iris-prod-1/us-west1-b/isc-backup-001"
    assert event.instance_id == "4311148427001234567"
    assert event.occurred_at == datetime(2026, 11, 25, 12, 0, 1, 234000, tzinfo=UTC)
    assert event.identity_token is None


def test_added_fields_are_ignored() -> None:
    doc = GOLDEN | {
        "failover_reason": "primary zone outage",
        "instance": GOLDEN["instance"] | {"hostname": "isc-backup-001.c.iris-prod-1.internal"},
    }
    jsonschema.validate(doc, SCHEMA)
    assert parse_event(encode(doc)).mirror == "IRISMIRROR"


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOLDEN.items() if k != key}


BAD_EVENTS: list[tuple[str, bytes, str]] = [
    ("not utf-8", b"\xff\xfe{}", "not_utf8"),
    ("not json", b"became primary!", "not_json"),
    ("json list", b"[1, 2]", "not_object"),
    ("wrong type", encode(GOLDEN | {"type": "became_backup"}), "bad_type"),
    ("no type", encode(without("type")), "bad_type"),
    ("version 2", encode(GOLDEN | {"version": 2}), "bad_version"),
    ("version as text", encode(GOLDEN | {"version": "1"}), "bad_version"),
    ("version true", encode(GOLDEN | {"version": True}), "bad_version"),
    ("no mirror", encode(without("mirror")), "bad_field"),
    ("empty member", encode(GOLDEN | {"member": ""}), "bad_field"),
    ("instance not object", encode(GOLDEN | {"instance": "isc-backup-001"}), "bad_field"),
    (
        "bad zone",
        encode(GOLDEN | {"instance": GOLDEN["instance"] | {"zone": "us-west1"}}),
        "bad_field",
    ),
    (
        "bad name",
        encode(GOLDEN | {"instance": GOLDEN["instance"] | {"name": "../etc"}}),
        "bad_field",
    ),
    ("numeric id", encode(GOLDEN | {"instance": GOLDEN["instance"] | {"id": 42}}), "bad_field"),
    ("no seconds fraction", encode(GOLDEN | {"occurred_at": "2026-11-25T12:00:01Z"}), "bad_field"),
    ("impossible date", encode(GOLDEN | {"occurred_at": "2026-13-45T12:00:01.000Z"}), "bad_field"),
    ("token not string", encode(GOLDEN | {"identity_token": 7}), "bad_field"),
    ("too large", encode(GOLDEN | {"padding": "x" * 70_000}), "too_large"),
]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(p, r) for _, p, r in BAD_EVENTS],
    ids=[name for name, _, _ in BAD_EVENTS],
)
def test_bad_event_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(payload)
    assert caught.value.reason == reason
    assert str(caught.value)


SHAPE_ONLY = {"too large", "impossible date", "not utf-8", "not json"}
"""Not for the schema: it judges decoded JSON's shape, not size, bytes or the calendar."""


@pytest.mark.parametrize(
    "payload",
    [p for name, p, _ in BAD_EVENTS if name not in SHAPE_ONLY],
    ids=[name for name, _, _ in BAD_EVENTS if name not in SHAPE_ONLY],
)
def test_schema_agrees_with_the_parser_on_bad_events(payload: bytes) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(payload), SCHEMA)


def test_unwrap_message_reads_pubsub_fields() -> None:
    message = unwrap_message(
        {
            "message": {
                "data": base64.b64encode(b"{}").decode(),
                "messageId": "123",
                "publishTime": "2026-11-25T12:00:01.123456789Z",
                "attributes": {"mirror": "IRISMIRROR"},
            },
            "subscription": "projects/p/subscriptions/s",
        }
    )
    assert message.data == b"{}"
    assert message.message_id == "123"
    assert message.publish_time == datetime(2026, 11, 25, 12, 0, 1, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "not_pubsub"),
        ({"message": "x"}, "not_pubsub"),
        ({"message": {}}, "no_data"),
        ({"message": {"data": "***"}}, "bad_base64"),
    ],
)
def test_unwrap_rejects_what_is_not_a_pubsub_message(data: Any, reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        unwrap_message(data)
    assert caught.value.reason == reason


def test_time_format_round_trips() -> None:
    moment = parse_rfc3339("2026-11-25T12:00:01.234Z")
    assert format_rfc3339(moment) == "2026-11-25T12:00:01.234Z"
    assert parse_rfc3339("2026-11-25T13:00:01+01:00") == datetime(
        2026, 11, 25, 12, 0, 1, tzinfo=UTC
    )
