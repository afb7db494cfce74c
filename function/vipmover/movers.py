"""The one contract of a mover, whatever the mode: `handler.mover_for` returns a `VipMover`.

Alias mode (`mover.Mover`) moves an alias IP range between the members' NICs; route mode
(`route_mover.RouteMover`) inserts a better VPC route. The handler, the operator's
`mirror-vip move` and the benchmarks drive either one through this signature alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .compute import ComputeGateway
from .config import InstanceRef, MirrorConfig
from .move_run import MoveReport
from .safeguards import Guard


@dataclass(frozen=True)
class MoveRequest:
    """What a move is asked to do: `VipMover.move`'s one argument, the same in both modes."""

    mirror: MirrorConfig
    target: InstanceRef
    """The new primary, already checked to be a member."""
    event_key: str
    """Identifies the event (the Pub/Sub message id), for the `requestId`s."""
    event_time_ms: int | None = None
    """When the event was published (Pub/Sub's clock), for the mirror's high-water mark; None
    moves unconditionally and records no mark."""
    heartbeat: bool = False
    """The event re-asserts the current primary rather than announcing a new one: it never
    takes the VIP from the newest mark's member, never records one."""
    guard: Guard | None = None
    """The event's safeguards (`safeguards`), consulted on every round's plan before anything
    is written; None checks nothing (the operator's own move)."""


@dataclass(frozen=True)
class GatewayMover:
    """What both modes' movers hold: the Compute boundary and one whole move's deadline."""

    gateway: ComputeGateway
    operation_timeout_s: float
    """Reads, writes, waits and the read-back of one move, in seconds."""


class VipMover(Protocol):
    """Moves one mirror's VIP (and public IP) to its new primary."""

    def move(
        self, request: MoveRequest, report: MoveReport
    ) -> Literal["moved", "already_in_place"]:
        """Make `request.target` the only holder of the mirror's VIP (and public IP).

        `report` receives the actions and step timings as the move goes.

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
