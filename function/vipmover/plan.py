"""What must change to put a mirror's VIP on its new primary: pure functions on plain data.

The mover reads every member's NIC into a `NicState`, then `plan_move` decides who loses the VIP,
whether the new primary must gain it, and how the static public IP moves. Nothing here talks to
an API, so every decision is unit-tested directly. The alias-list helpers are also used at write
time, on the freshest read, so that a retry after a 412 never drops an alias that appeared since.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import InstanceRef, MirrorConfig


@dataclass(frozen=True)
class AliasRange:
    """One alias IP range of a NIC, as the API names it."""

    ip_cidr_range: str
    subnetwork_range_name: str | None = None

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.ip_cidr_range, strict=False)


@dataclass(frozen=True)
class AccessConfig:
    """One access config (external IP) of a NIC."""

    name: str
    nat_ip: str | None


@dataclass(frozen=True)
class NicState:
    """One member's network interface as read from the API."""

    instance: InstanceRef
    fingerprint: str
    alias_ranges: tuple[AliasRange, ...]
    access_configs: tuple[AccessConfig, ...]
    status: str = "RUNNING"
    labels: Mapping[str, str] = field(default_factory=dict)
    """The instance's labels; they carry each mirror's high-water mark."""
    label_fingerprint: str = ""


@dataclass(frozen=True)
class Unreadable:
    """A member whose NIC could not be read (its zone may be down)."""

    instance: InstanceRef
    error: str


@dataclass(frozen=True)
class PublicIpPlan:
    """How the static external IP gets to the new primary.

    `release` and `clear_target` are independent and run concurrently; `attach` runs after both.
    """

    address: str
    release: tuple[tuple[InstanceRef, str], ...] = ()
    """(holder, access config name) pairs that hold the static IP and must let it go."""
    clear_target: str | None = None
    """Name of an access config on the new primary (an ephemeral IP) that must make room."""
    attach: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.release or self.clear_target or self.attach)


@dataclass(frozen=True)
class MovePlan:
    """Everything that must change; an empty plan means the state is already right."""

    target: InstanceRef
    holders: tuple[InstanceRef, ...]
    """Members that held the VIP when read (the target included, if it did)."""
    remove_from: tuple[InstanceRef, ...]
    add_to_target: bool
    public: PublicIpPlan | None = None
    unreadable: tuple[Unreadable, ...] = field(default=())

    @property
    def changes(self) -> bool:
        return bool(self.remove_from or self.add_to_target or (self.public and self.public.changes))

    @property
    def previous_holder(self) -> InstanceRef | None:
        """The member the VIP moves away from (the first, if several held it)."""
        return self.remove_from[0] if self.remove_from else None


@dataclass(frozen=True, order=True)
class Mark:
    """A mirror's high-water mark: the newest event applied, and the member it made primary.

    Ordered by time, then member, so that two marks always compare the same way everywhere.
    """

    time_ms: int
    holder: InstanceRef


MARK_PREFIX = "mirror-vip-"


def mark_label(mirror_name: str) -> str:
    """The instance label key holding a mirror's mark, e.g. `mirror-vip-irismirror`.

    Label keys allow lowercase letters, digits, `_` and `-`, 63 characters at most.
    """
    return (MARK_PREFIX + re.sub(r"[^a-z0-9_-]", "-", mirror_name.lower()))[:63]


def newest_mark(nics: Mapping[InstanceRef, NicState | Unreadable], label: str) -> Mark | None:
    """The newest mark carried by any readable member, if any (unparsable values are ignored)."""
    marks = [
        Mark(int(nic.labels[label]), ref)
        for ref, nic in nics.items()
        if isinstance(nic, NicState) and nic.labels.get(label, "").isdigit()
    ]
    return max(marks, default=None)


def is_stale(event: Mark, newest: Mark | None) -> bool:
    """An event older than the newest applied one, for another member, must not move the VIP.

    An old event for the member that is already the newest holder is harmless (it agrees).
    """
    return newest is not None and event.holder != newest.holder and event < newest


@dataclass(frozen=True)
class MarkDecision:
    """What the high-water mark means for one round of a move."""

    target: InstanceRef
    """Where the VIP must go: the event's member, or the newest mark's when the event is stale."""
    event: Mark | None
    """The event still to be honoured (None once it turned out stale)."""
    stale: bool
    record: bool
    """Write the event's time as the new mark on `target`."""


def decide_mark(
    event: Mark | None, newest: Mark | None, target: InstanceRef, *, heartbeat: bool = False
) -> MarkDecision:
    """Decide the target and whether to record a mark, from the event and the newest mark.

    A stale event must not move the VIP, but the state must still match the newest event, so
    the target becomes the newest mark's member (a no-op unless something broke halfway). A newer
    event becomes the mark; a heartbeat from the member that already holds the mark only
    re-asserts it, so it costs no write when all is in place.
    """
    if event is not None and newest is not None and is_stale(event, newest):
        return MarkDecision(newest.holder, None, stale=True, record=False)
    record = (
        event is not None
        and (newest is None or newest < event)
        and not (heartbeat and newest is not None and newest.holder == target)
    )
    return MarkDecision(target, event, stale=False, record=record)


def superseded_by(event: Mark | None, target: InstanceRef, after: Mark | None) -> Mark | None:
    """The newer mark recorded by another handler while we moved, if any: it wins."""
    if after is not None and after.holder != target and (event is None or event < after):
        return after
    return None


def holds_vip(nic: NicState, vip: str) -> bool:
    """True when one of the NIC's alias ranges is exactly the VIP (`10.0.0.250` == `/32`)."""
    wanted = ipaddress.ip_network(vip, strict=False)
    return any(alias.network() == wanted for alias in nic.alias_ranges)


def aliases_without(nic: NicState, vip: str) -> tuple[AliasRange, ...]:
    """The NIC's alias list minus the VIP; every other range is kept."""
    wanted = ipaddress.ip_network(vip, strict=False)
    return tuple(alias for alias in nic.alias_ranges if alias.network() != wanted)


def aliases_with(nic: NicState, vip: str, range_name: str | None) -> tuple[AliasRange, ...]:
    """The NIC's alias list plus the VIP (unchanged if it is already there)."""
    if holds_vip(nic, vip):
        return nic.alias_ranges
    return (*nic.alias_ranges, AliasRange(vip, range_name))


def plan_move(
    mirror: MirrorConfig,
    target: InstanceRef,
    nics: Mapping[InstanceRef, NicState | Unreadable],
    public_address: str | None = None,
) -> MovePlan:
    """Decide what must change so that `target`, and only `target`, holds the mirror's VIP.

    Args:
        mirror: The mirror's configuration.
        target: The member that became primary; must be one of `mirror.members`.
        nics: What was read for each member; unreadable members are left alone and reported.
        public_address: The static external IP's address, when the mirror has one.
    """
    readable = {ref: nic for ref, nic in nics.items() if isinstance(nic, NicState)}
    unreadable = tuple(nic for nic in nics.values() if isinstance(nic, Unreadable))
    holders = tuple(sorted(ref for ref, nic in readable.items() if holds_vip(nic, mirror.vip)))
    target_nic = readable.get(target)
    public = None
    if public_address is not None:
        public = _plan_public_ip(target, target_nic, readable, public_address)
    return MovePlan(
        target=target,
        holders=holders,
        remove_from=tuple(ref for ref in holders if ref != target),
        add_to_target=target_nic is None or not holds_vip(target_nic, mirror.vip),
        public=public,
        unreadable=unreadable,
    )


def _plan_public_ip(
    target: InstanceRef,
    target_nic: NicState | None,
    readable: Mapping[InstanceRef, NicState],
    address: str,
) -> PublicIpPlan:
    release = tuple(
        (ref, config.name)
        for ref, nic in sorted(readable.items())
        if ref != target
        for config in nic.access_configs
        if config.nat_ip == address
    )
    target_has_it = target_nic is not None and any(
        config.nat_ip == address for config in target_nic.access_configs
    )
    clear_target = None
    if target_nic is not None and not target_has_it and target_nic.access_configs:
        clear_target = target_nic.access_configs[0].name
    return PublicIpPlan(
        address=address, release=release, clear_target=clear_target, attach=not target_has_it
    )
