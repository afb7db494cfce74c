"""The two-VM layout the Compute emulator tests share: iris-a holds the VIP and the static IP.

Each test file keeps its own project and zones (so the emulator is shown to work in any region);
only the shape of the state lives here.
"""

from __future__ import annotations

from typing import Any

from local.mirrors import Member, mirror_state


def vip_on_first_vm(
    project: str,
    zone_a: str,
    zone_b: str,
    *,
    vip: str,
    public_ip: str,
    secondary: dict[str, str] | None = None,
) -> dict[str, Any]:
    """iris-a (10.0.0.10) holds `vip` and `public_ip` (address `iris-vip`); iris-b has neither."""
    return mirror_state(
        project,
        [
            Member("iris-a", zone_a, "10.0.0.10", aliases=(vip,), nat_ip=public_ip),
            Member("iris-b", zone_b, "10.0.0.11"),
        ],
        secondary=secondary,
        public_address=("iris-vip", public_ip),
    )
