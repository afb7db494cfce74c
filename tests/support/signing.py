"""Events signed as the publisher signs them: a metadata emulator's token bound to the event."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from emulators.compute.state import stable_id
from emulators.metadata import VM, MetadataEmulator
from local.mirrors import Member
from mirrorvip_publisher.event import bound_audience

from . import mirrors
from .events import TOPIC, became_primary

AUDIENCE = f"//pubsub.googleapis.com/{TOPIC}"


def live_id(member: Member) -> str:
    """The VM's id as the Compute emulator holds it."""
    return stable_id(mirrors.PROJECT, member.zone, member.name)


@contextmanager
def metadata_servers(*members: Member) -> Iterator[MetadataEmulator]:
    """Metadata servers of the members (default: primary and backup), ids as the live VMs'."""
    chosen = members or (mirrors.primary(), mirrors.backup())
    vms = [VM(mirrors.PROJECT, m.zone, m.name, live_id(m)) for m in chosen]
    with MetadataEmulator(vms) as emulator:
        yield emulator


def identity_config(metadata: MetadataEmulator) -> dict[str, Any]:
    """The `identity` section that verifies the emulator's tokens, as deploy writes it."""
    return {"required": True, "certs_url": metadata.certs_url, "audience": AUDIENCE}


def signed(
    metadata: MetadataEmulator,
    member: Member,
    *,
    event_type: str = "became_primary",
    issued_at: float | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The member's event with a token bound to it, as the publisher sends it."""
    event = became_primary(member, type=event_type)
    event["instance"]["id"] = live_id(member)
    audience = bound_audience(AUDIENCE, event)
    token = metadata.mint_token(audience, member.name, now=issued_at, overrides=overrides)
    return event | {"identity_token": token}
