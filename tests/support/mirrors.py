"""The test mirror: two members in two zones, a VIP, a static public IP, and its config.

Values only; the Compute state and the config entry come from `local.mirrors`, the one builder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from local.mirrors import Member, MirrorLayout, mirror_state

PROJECT = "iris-prod-1"
MIRROR = "IRISMIRROR"
VIP = "10.0.0.250/32"
STATIC_NAME = "isc-mirror"
STATIC_IP = "203.0.113.10"
REGION = "us-west1"
PRIMARY_ZONE = "us-west1-a"
BACKUP_ZONE = "us-west1-b"


def primary(**changes: Any) -> Member:
    """The member that holds the VIP and the static IP in the default layout."""
    fields: dict[str, Any] = {
        "name": "isc-primary-001",
        "zone": PRIMARY_ZONE,
        "network_ip": "10.0.0.11",
        "aliases": (VIP,),
        "nat_ip": STATIC_IP,
        "access_config_name": STATIC_NAME,
    }
    return Member(**(fields | changes))


def backup(**changes: Any) -> Member:
    """The member that becomes primary in a failover."""
    fields: dict[str, Any] = {
        "name": "isc-backup-001",
        "zone": BACKUP_ZONE,
        "network_ip": "10.0.0.12",
    }
    return Member(**(fields | changes))


def state(*members: Member, public: bool = True) -> dict[str, Any]:
    """Emulator state for the members (default: primary + backup) and the static address."""
    chosen = list(members) or [primary(), backup()]
    return mirror_state(
        PROJECT,
        chosen,
        secondary={"vips": "10.1.0.0/24"},
        public_address=(STATIC_NAME, STATIC_IP) if public else None,
    )


def mirror_config(
    members: Iterable[Member] = (),
    *,
    name: str = MIRROR,
    vip: str = VIP,
    public: bool = True,
) -> dict[str, Any]:
    """One mirror's entry of MIRROR_CONFIG, in the documented shape."""
    chosen = tuple(members) or (primary(), backup())
    static = (STATIC_NAME, STATIC_IP) if public else None
    entry = MirrorLayout(name, PROJECT, vip, chosen, static).config_entry()
    # Tests flip the VIP quickly: the takeover limit is off unless a test switches it on.
    return {name: entry | {"takeover_limit": {"moves": 0}}}


def config(*mirrors: dict[str, Any], identity: bool = False) -> dict[str, Any]:
    """A whole MIRROR_CONFIG document (default: the one test mirror).

    Identity is required by default in the function's own config (fail closed); tests that send
    unsigned events say so here (`identity=False`, the default of this helper). Tests of
    identity itself sign events with the metadata emulator and set `identity` explicitly.
    """
    merged: dict[str, Any] = {}
    for mirror in mirrors or (mirror_config(),):
        merged |= mirror
    return {"mirrors": merged, "identity": {"required": identity}}
