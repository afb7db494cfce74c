"""The Pub/Sub message and the event contract v1 it carries (`function/event_schema.json`).

Two layers, both pure: `unwrap_message` takes the CloudEvent's data (the Pub/Sub push envelope's
`message`), `parse_event` takes the decoded message bytes. Each raises `EventRejected` with a
reason code and a message that says what was wrong. Fields added to the contract later are
ignored here, as the contract requires.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .canonical import event_digest
from .config import NAME_RE, PROJECT_RE, ZONE_RE, InstanceRef
from .errors import EventRejected

EVENT_TYPES = ("became_primary", "heartbeat")
OCCURRED_AT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
INSTANCE_ID_RE = re.compile(r"^[0-9]{1,20}$")
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class PubSubMessage:
    """What Pub/Sub tells us besides the data: the id (shared by redeliveries) and its clock."""

    message_id: str
    publish_time: datetime | None
    data: bytes


@dataclass(frozen=True)
class MirrorEvent:
    """A validated v1 event: `instance` claims to be the mirror's new primary."""

    type: str
    mirror: str
    member: str
    instance: InstanceRef
    instance_id: str
    occurred_at: datetime
    identity_token: str | None
    digest: str = ""
    """sha256 of the canonical event without its token: what the token's audience is bound to."""


RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339(text: str) -> datetime:
    """Parse `2026-11-25T12:00:00.123456789Z` (Pub/Sub's nanoseconds are cut to micro).

    `datetime.fromisoformat` accepts far more than RFC 3339 (dates alone, basic format), so the
    shape is checked first.
    """
    if not RFC3339_RE.match(text):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"not a representable time: {text!r}") from None


def unwrap_message(data: Any) -> PubSubMessage:
    """Take the Pub/Sub message out of a `messagePublished` CloudEvent's data."""
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise EventRejected("not_pubsub", "CloudEvent data has no Pub/Sub 'message' object")
    message = data["message"]
    encoded = message.get("data")
    if not isinstance(encoded, str) or not encoded:
        raise EventRejected("no_data", "Pub/Sub message has no data")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EventRejected("bad_base64", "Pub/Sub message data is not base64") from None
    publish_time = None
    if isinstance(message.get("publishTime"), str):
        try:
            publish_time = parse_rfc3339(message["publishTime"])
        except ValueError:
            publish_time = None
    return PubSubMessage(
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        publish_time=publish_time,
        data=payload,
    )


def _field(
    obj: Mapping[str, Any],
    key: str,
    pattern: re.Pattern[str] | None = None,
    max_len: int = 128,
    where: str = "",
) -> str:
    value = obj.get(key)
    name = f"{where}{key}"
    if not isinstance(value, str) or not value:
        raise EventRejected("bad_field", f"event field '{name}' must be a non-empty string")
    if len(value) > max_len or (pattern and not pattern.fullmatch(value)):
        raise EventRejected("bad_field", f"event field '{name}' is not valid: {value[:80]!r}")
    return value


def parse_event(payload: bytes) -> MirrorEvent:
    """Decode and validate one v1 event.

    Raises:
        EventRejected: `too_large`, `not_utf8`, `not_json`, `not_object`, `bad_type`,
            `bad_version` or `bad_field`, with a message naming the field.
    """
    if len(payload) > MAX_EVENT_BYTES:
        raise EventRejected("too_large", f"event is {len(payload)} bytes (max {MAX_EVENT_BYTES})")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise EventRejected("not_utf8", "event data is not UTF-8") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # ValueError too: integers beyond 4300 digits
        raise EventRejected("not_json", "event data is not JSON") from None
    if not isinstance(doc, dict):
        raise EventRejected("not_object", "event must be a JSON object")
    event_type = doc.get("type")
    if event_type not in EVENT_TYPES:
        raise EventRejected(
            "bad_type",
            f"event type {str(event_type)[:40]!r} is not one of {', '.join(EVENT_TYPES)}",
        )
    version = doc.get("version")
    if version != 1 or isinstance(version, bool):
        raise EventRejected("bad_version", f"event version {str(version)[:20]!r} is not 1")
    mirror = _field(doc, "mirror", max_len=64)
    member = _field(doc, "member")
    raw_instance = doc.get("instance")
    if not isinstance(raw_instance, dict):
        raise EventRejected("bad_field", "event field 'instance' must be an object")
    instance = InstanceRef(
        project=_field(raw_instance, "project", PROJECT_RE, where="instance."),
        zone=_field(raw_instance, "zone", ZONE_RE, where="instance."),
        name=_field(raw_instance, "name", NAME_RE, where="instance."),
    )
    instance_id = _field(raw_instance, "id", INSTANCE_ID_RE, where="instance.")
    occurred_text = _field(doc, "occurred_at", OCCURRED_AT_RE)
    try:
        occurred_at = parse_rfc3339(occurred_text)
    except ValueError:
        raise EventRejected(
            "bad_field", f"event field 'occurred_at' is not a time: {occurred_text!r}"
        ) from None
    token = doc.get("identity_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise EventRejected("bad_field", "event field 'identity_token' must be a string")
    return MirrorEvent(
        event_type, mirror, member, instance, instance_id, occurred_at, token, event_digest(doc)
    )


def format_rfc3339(moment: datetime) -> str:
    """The contract's time format: UTC, milliseconds, `Z`."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )
