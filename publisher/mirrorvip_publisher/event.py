"""Build the mirror-vip v1 event (`function/event_schema.json`): plain data, no I/O."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from .metadata import InstanceFacts

EVENT_VERSION = 1
BECAME_PRIMARY = "became_primary"
HEARTBEAT = "heartbeat"
EVENT_TYPES = (BECAME_PRIMARY, HEARTBEAT)
MAX_MIRROR_CHARS = 64
MAX_MEMBER_CHARS = 128


def format_occurred_at(epoch_seconds: float) -> str:
    """RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-25T12:00:00.123Z`."""
    millis = int(epoch_seconds * 1000)
    seconds, fraction = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}Z"


def check_names(mirror: str, member: str) -> list[str]:
    """Problems with the names IRIS handed us (the contract's limits), as messages."""
    problems = []
    if not isinstance(mirror, str) or not 1 <= len(mirror) <= MAX_MIRROR_CHARS:
        problems.append(f"mirror must be 1..{MAX_MIRROR_CHARS} characters, got {mirror!r}")
    if not isinstance(member, str) or not 1 <= len(member) <= MAX_MEMBER_CHARS:
        problems.append(f"member must be 1..{MAX_MEMBER_CHARS} characters, got {member!r}")
    return problems


def build_event(
    event_type: str,
    mirror: str,
    member: str,
    instance: InstanceFacts,
    occurred_at: float,
    identity_token: str | None = None,
) -> dict[str, Any]:
    """The v1 event as a dict; `identity_token` is left out when there is none."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not one of {EVENT_TYPES}")
    event: dict[str, Any] = {
        "type": event_type,
        "version": EVENT_VERSION,
        "mirror": mirror,
        "member": member,
        "instance": instance.as_event_field(),
        "occurred_at": format_occurred_at(occurred_at),
    }
    if identity_token:
        event["identity_token"] = identity_token
    return event


TOKEN_FIELD = "identity_token"  # noqa: S105 - a field name, not a secret
DRY_RUN_MARK = "dry-run:"
"""Put before the digest in a dry run's audience: the function never accepts such a token."""


def event_digest(event: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical event without its token: what the token is bound to.

    Canonical: sorted keys, no spaces, ASCII escapes. The function recomputes it from the event
    it receives (`vipmover.canonical`); a contract test proves both sides agree.
    """
    unsigned = {key: value for key, value in event.items() if key != TOKEN_FIELD}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def bound_audience(audience: str, event: dict[str, Any], *, dry_run: bool = False) -> str:
    """The audience to ask the metadata server for: `<audience>#<event digest>`.

    A token for it proves this one event, so it cannot be reused for another. A dry run asks
    for `<audience>#dry-run:<digest>`, which the function refuses: a token fetched to test the
    installation can never move the VIP.
    """
    return f"{audience}#{DRY_RUN_MARK if dry_run else ''}{event_digest(event)}"


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the Pub/Sub message data."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8")


def message_attributes(event: dict[str, Any]) -> dict[str, str]:
    """Attributes let subscribers filter without decoding the data."""
    return {"type": str(event["type"]), "mirror": str(event["mirror"])}
