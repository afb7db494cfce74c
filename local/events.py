"""Events as the publisher sends them and as Pub/Sub delivers them, for driving the function
without IRIS or Pub/Sub: the function's tests and the mover benchmark."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cloudevents.http import CloudEvent

from emulators.rfc3339 import format_rfc3339
from local.mirrors import Member, iris_member_name
from local.push_relay import push_envelope

MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def became_primary(
    member: Member, *, mirror: str, project: str, **overrides: Any
) -> dict[str, Any]:
    """A v1 event saying `member` became primary."""
    event: dict[str, Any] = {
        "type": "became_primary",
        "version": 1,
        "mirror": mirror,
        "member": iris_member_name(member),
        "instance": {
            "project": project,
            "zone": member.zone,
            "name": member.name,
            "id": "1234567890123456789",
        },
        "occurred_at": format_rfc3339(),
    }
    return event | overrides


def cloud_event(
    payload: dict[str, Any] | bytes,
    *,
    topic: str,
    subscription: str,
    attributes: dict[str, str] | None = None,
    message_id: str | None = None,
    publish_time: str | None = None,
) -> CloudEvent:
    """Wrap event bytes in a Pub/Sub message inside a `messagePublished` CloudEvent, as Eventarc
    delivers it from `topic` through `subscription`."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = message_id or str(uuid.uuid4().int)[:16]
    publish_time = publish_time or format_rfc3339()
    attributes = {
        "id": message_id,
        "type": MESSAGE_PUBLISHED,
        "source": f"//pubsub.googleapis.com/{topic}",
        "specversion": "1.0",
        "time": publish_time,
        "datacontenttype": "application/json",
    }
    envelope = push_envelope(
        data,
        message_id=message_id,
        publish_time=publish_time,
        subscription=subscription,
        attributes=attributes,
    )
    return CloudEvent(attributes, envelope)
