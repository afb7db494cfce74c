"""What one alias-mode round reads, all at once: every member's NIC, the static address, the rule.

Shared by the mover and the operator's `mirror-vip status`, so that both see the mirror the same
way. Nothing read here raises: a member that cannot be read is `Unreadable` (its zone may be
down), and an address or forwarding rule that cannot be read is kept as its error, so that it
never blocks the private VIP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from .compute import RETRY_ATTEMPTS, ComputeGateway
from .config import InstanceRef, MirrorConfig
from .errors import MirrorVipError, kept
from .forwarding import RuleRead, read_rule
from .plan import AddressState, NicState, Unreadable


@dataclass(frozen=True)
class MemberReads:
    """The members' NICs, and the public IP's resource (or why it could not be read)."""

    nics: dict[InstanceRef, NicState | Unreadable]
    address: AddressState | MirrorVipError | None
    rule: RuleRead


def read_members(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> MemberReads:
    """Every member's NIC, the static address and the forwarding rule, concurrently."""

    def read_address() -> AddressState | MirrorVipError | None:
        public = mirror.public_ip
        if public is None:
            return None
        read = gateway.read_address
        return kept(partial(read, mirror.project, public.region, public.address_name, deadline))

    with ThreadPoolExecutor(max_workers=len(mirror.members) + 2) as pool:
        address = pool.submit(read_address)
        rule = pool.submit(read_rule, gateway, mirror, deadline)
        reads = {
            ref: pool.submit(read_member, gateway, mirror, ref, deadline) for ref in mirror.members
        }
        nics = {ref: future.result() for ref, future in reads.items()}
        return MemberReads(nics, address.result(), rule.result())


def read_member(
    gateway: ComputeGateway,
    mirror: MirrorConfig,
    ref: InstanceRef,
    deadline: float,
    attempts: int = RETRY_ATTEMPTS,
) -> NicState | Unreadable:
    """One member's NIC, or why it cannot be read (its zone may be down)."""
    try:
        return gateway.read_nic(ref, mirror.network_interface, deadline, attempts)
    except MirrorVipError as err:
        return Unreadable(ref, str(err), err)
