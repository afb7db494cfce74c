"""The one contract of a mover, whatever the mode: `handler.mover_for` returns a `VipMover`.

Alias mode (`mover.Mover`) moves an alias IP range between the members' NICs; route mode
(`route_mover.RouteMover`) inserts a better VPC route. The handler, the operator's
`mirror-vip move` and the benchmarks drive either one through this signature alone.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .config import InstanceRef, MirrorConfig
from .move_run import MoveReport
from .safeguards import Guard


class VipMover(Protocol):
    """Moves one mirror's VIP (and public IP) to its new primary."""

    def move(
        self,
        mirror: MirrorConfig,
        target: InstanceRef,
        event_key: str,
        report: MoveReport,
        event_time_ms: int | None = None,
        *,
        heartbeat: bool = False,
        guard: Guard | None = None,
    ) -> Literal["moved", "already_in_place"]:
        """Make `target` the only holder of the mirror's VIP (and public IP).

        Args:
            mirror: The mirror's configuration.
            target: The new primary, already checked to be a member.
            event_key: Identifies the event (the Pub/Sub message id), for the `requestId`s.
            report: Receives the actions and step timings.
            event_time_ms: When the event was published (Pub/Sub's clock), for the mirror's
                high-water mark; None moves unconditionally and records no mark.
            heartbeat: The event re-asserts the current primary rather than announcing a new
                one: it never takes the VIP from the newest mark's member, never records one.
            guard: The event's safeguards (`safeguards`), consulted on every round's plan
                before anything is written; None checks nothing (the operator's own move).

        Returns:
            `moved`, or `already_in_place` when nothing had to change.

        Raises:
            EventRejected: the event is stale, the new primary is not running, or a
                safeguard refused it.
            RetryableError: a call, an operation or the final check failed, or the state
                did not settle.
            RequestRefused: the API refused a request as invalid (in route mode: a VIP
                inside a subnet, no better priority left).
            PublicIpRefused, PublicIpUnavailable: the private VIP is in place, the public IP
                is not.
        """
        ...
