"""Events as the publisher sends them and as Pub/Sub delivers them, for the test mirror."""

from __future__ import annotations

from typing import Any

from cloudevents.http import CloudEvent

from local import events
from local.events import MESSAGE_PUBLISHED
from local.mirrors import Member

from .mirrors import MIRROR, PROJECT

TOPIC = f"projects/{PROJECT}/topics/mirror-vip"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/eventarc-mirror-vip"
__all__ = ["MESSAGE_PUBLISHED", "SUBSCRIPTION", "TOPIC", "became_primary", "cloud_event"]


def became_primary(
    member: Member, *, mirror: str = MIRROR, project: str = PROJECT, **overrides: Any
) -> dict[str, Any]:
    """A v1 event saying `member` became primary."""
    return events.became_primary(member, mirror=mirror, project=project, **overrides)


def cloud_event(
    payload: dict[str, Any] | bytes,
    *,
    message_id: str | None = None,
    publish_time: str | None = None,
) -> CloudEvent:
    """The event as Eventarc delivers it to the function from the test topic."""
    return events.cloud_event(
        payload,
        topic=TOPIC,
        subscription=SUBSCRIPTION,
        attributes={"type": "became_primary", "mirror": MIRROR},
        message_id=message_id,
        publish_time=publish_time,
    )
