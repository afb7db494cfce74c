"""Events as the publisher sends them and as Pub/Sub delivers them to the function."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from cloudevents.http import CloudEvent

from local.mirrors import Member

from .mirrors import MIRROR, PROJECT

TOPIC = f"projects/{PROJECT}/topics/mirror-vip"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/eventarc-mirror-vip"
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def now_rfc3339() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def became_primary(
    member: Member, *, mirror: str = MIRROR, project: str = PROJECT, **overrides: Any
) -> dict[str, Any]:
    """A v1 event saying `member` became primary."""
    event: dict[str, Any] = {
        "type": "became_primary",
        "version": 1,
        "mirror": mirror,
        "member": member.name.upper().replace("-", "_"),
        "instance": {
            "project": project,
            "zone": member.zone,
            "name": member.name,
            "id": "1234567890123456789",
        },
        "occurred_at": now_rfc3339(),
    }
    return event | overrides


def cloud_event(
    payload: dict[str, Any] | bytes,
    *,
    message_id: str | None = None,
    publish_time: str | None = None,
) -> CloudEvent:
    """Wrap event bytes in a Pub/Sub message inside a `messagePublished` CloudEvent."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    message_id = message_id or str(uuid.uuid4().int)[:16]
    publish_time = publish_time or now_rfc3339()
    attributes = {
        "id": message_id,
        "type": MESSAGE_PUBLISHED,
        "source": f"//pubsub.googleapis.com/{TOPIC}",
        "specversion": "1.0",
        "time": publish_time,
        "datacontenttype": "application/json",
    }
    return CloudEvent(
        attributes,
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "publishTime": publish_time,
                "attributes": {"type": "became_primary", "mirror": MIRROR},
            },
            "subscription": SUBSCRIPTION,
        },
    )
