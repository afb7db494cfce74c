"""What must change to put a mirror's VIP on its new primary: pure functions on plain data.

The mover reads every member's NIC into a `NicState`, then `plan_move` decides who loses the VIP,
whether the new primary must gain it, and how the static public IP moves. Nothing here talks to
an API, so every decision is unit-tested directly. The alias-list helpers are also used at write
time, on the freshest read, so that a retry after a 412 never drops an alias that appeared since.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .config import LABEL_PREFIXES, InstanceRef, MirrorConfig, label_key


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
    network_ip: str = ""
    """The NIC's internal IP: where the member's IRIS answers health probes."""
    instance_id: str = ""
    """The live VM's numeric id: an event's `instance.id` must be this VM's, not a namesake's."""


@dataclass(frozen=True)
class Unreadable:
    """A member whose NIC could not be read (its zone may be down)."""

    instance: InstanceRef
    error: str
    cause: Exception | None = field(default=None, compare=False)
    """The error that made it unreadable, so that the right kind is raised if it matters."""


@dataclass(frozen=True)
class AddressState:
    """The mirror's reserved static external address, as read from the API."""

    name: str
    ip: str
    status: str = "RESERVED"
    users: tuple[str, ...] = ()
    """Self links of the resources using it (at most one instance)."""
    network_tier: str | None = None


@dataclass(frozen=True)
class PublicIpBlocked:
    """Why the static IP cannot move now; the private VIP moves anyway."""

    reason: str
    retryable: bool


@dataclass(frozen=True)
class PublicIpPlan:
    """How the static external IP gets to the new primary.

    `release` and `clear_target` are independent and run concurrently; `attach` and `restore`
    run after both. With `blocked`, nothing on the public side changes at all.
    """

    address: str
    release: tuple[tuple[InstanceRef, str], ...] = ()
    """(holder, access config name) pairs that hold the static IP and must let it go."""
    clear_target: str | None = None
    """Name of an access config on the new primary (an ephemeral IP) that must make room."""
    attach: bool = False
    network_tier: str | None = None
    """The address's tier, carried in the access config that attaches it."""
    restore: tuple[InstanceRef, ...] = ()
    """Former holders that get an ephemeral external IP back, so they can still reach Google."""
    blocked: PublicIpBlocked | None = None

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


MARK_PREFIX = LABEL_PREFIXES[0]
LABEL_VALUE_MAX = 63


def mark_label(mirror_name: str) -> str:
    """The instance label key holding a mirror's mark, e.g. `mirror-vip-irismirror`."""
    return label_key(MARK_PREFIX, mirror_name)


def mark_value(mark: Mark) -> str:
    """The label value recording `mark` on every member: `<epoch ms>-<holder's instance name>`.

    The value names its holder, so the mark survives on the other members when the holder's
    labels are rewritten (Terraform, `--clear-labels`, a re-created VM).
    """
    return f"{mark.time_ms}-{mark.holder.name}"[:LABEL_VALUE_MAX]


def parse_mark(value: str, carrier: InstanceRef, members: Sequence[InstanceRef]) -> Mark | None:
    """The mark a label value records, or None for anything else (ASCII digits only).

    A bare number (the first release's format) names the member that carries it.
    """
    digits, dash, _ = value.partition("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 16:
        return None
    if not dash:
        return Mark(int(digits), carrier)
    named = [m for m in members if mark_value(Mark(int(digits), m)) == value]
    return Mark(int(digits), named[0]) if len(named) == 1 else None


def newest_mark(
    nics: Mapping[InstanceRef, NicState | Unreadable], label: str, not_after_ms: int | None = None
) -> Mark | None:
    """The newest mark carried by any readable member, if any (unparsable values are ignored).

    `nics` holds every configured member, so a value naming a member no longer configured
    is ignored too. A mark later than `not_after_ms` (the function's clock plus its skew) is
    ignored: no event can have been published then, and one such label would otherwise make
    every real failover look stale (`future_marks` names them, for an alert).
    """
    marks = [mark for _, mark in _marks(nics, label) if not _after(mark, not_after_ms)]
    return max(marks, default=None)


def future_marks(
    nics: Mapping[InstanceRef, NicState | Unreadable], label: str, not_after_ms: int
) -> tuple[InstanceRef, ...]:
    """The members carrying a mark later than `not_after_ms`, which `newest_mark` ignores."""
    return tuple(ref for ref, mark in _marks(nics, label) if _after(mark, not_after_ms))


def _marks(
    nics: Mapping[InstanceRef, NicState | Unreadable], label: str
) -> list[tuple[InstanceRef, Mark]]:
    members = tuple(nics)
    return [
        (ref, mark)
        for ref, nic in nics.items()
        if isinstance(nic, NicState) and label in nic.labels
        if (mark := parse_mark(nic.labels[label], ref, members)) is not None
    ]


def _after(mark: Mark, not_after_ms: int | None) -> bool:
    return not_after_ms is not None and mark.time_ms > not_after_ms


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
    the target becomes the newest mark's member (a no-op unless something broke halfway).

    A heartbeat only says "I am still primary", checked at some moment before it was delivered:
    it never takes the VIP from the member of the newest `became_primary`, however late that
    was published, and it never records a mark (a heartbeat checked just before its member was
    demoted must not make the real failover's event look stale). It places the VIP only for
    the mark's member, or when there is no mark at all.
    """
    if (
        event is not None
        and newest is not None
        and newest.holder != target
        and (heartbeat or event < newest)
    ):
        return MarkDecision(newest.holder, None, stale=True, record=False)
    record = event is not None and not heartbeat and (newest is None or newest < event)
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
    address: AddressState | None = None,
    target_reserved: str | None = None,
) -> MovePlan:
    """Decide what must change so that `target`, and only `target`, holds the mirror's VIP.

    Args:
        mirror: The mirror's configuration.
        target: The member that became primary; must be one of `mirror.members`.
        nics: What was read for each member; unreadable members are left alone and reported.
        address: The static external address, when the mirror has one and it could be read.
        target_reserved: The name of a reserved address that the target's own external IP is.
    """
    readable = {ref: nic for ref, nic in nics.items() if isinstance(nic, NicState)}
    unreadable = tuple(nic for nic in nics.values() if isinstance(nic, Unreadable))
    holders = tuple(sorted(ref for ref, nic in readable.items() if holds_vip(nic, mirror.vip)))
    target_nic = readable.get(target)
    public = None
    if address is not None:
        public = _plan_public_ip(mirror, target, nics, address, target_reserved)
    return MovePlan(
        target=target,
        holders=holders,
        remove_from=tuple(ref for ref in holders if ref != target),
        add_to_target=target_nic is None or not holds_vip(target_nic, mirror.vip),
        public=public,
        unreadable=unreadable,
    )


def instance_of(link: str) -> InstanceRef | None:
    """The instance a self link names (`.../projects/P/zones/Z/instances/N`), if it is one."""
    match = re.search(r"projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$", link)
    return InstanceRef(*match.groups()) if match else None


def _plan_public_ip(
    mirror: MirrorConfig,
    target: InstanceRef,
    nics: Mapping[InstanceRef, NicState | Unreadable],
    address: AddressState,
    target_reserved: str | None,
) -> PublicIpPlan:
    readable = {ref: nic for ref, nic in nics.items() if isinstance(nic, NicState)}
    target_nic = readable.get(target)
    target_has_it = target_nic is not None and any(
        config.nat_ip == address.ip for config in target_nic.access_configs
    )
    if not target_has_it:
        blocked = _public_ip_blocker(mirror, target, nics, address, target_reserved)
        if blocked is not None:
            return PublicIpPlan(address=address.ip, blocked=blocked)
    release = tuple(
        (ref, config.name)
        for ref, nic in sorted(readable.items())
        if ref != target
        for config in nic.access_configs
        if config.nat_ip == address.ip
    )
    clear_target = None
    if target_nic is not None and not target_has_it and target_nic.access_configs:
        clear_target = target_nic.access_configs[0].name
    restore_ephemeral = mirror.public_ip is not None and mirror.public_ip.restore_ephemeral
    return PublicIpPlan(
        address=address.ip,
        release=release,
        clear_target=clear_target,
        attach=not target_has_it,
        network_tier=address.network_tier,
        restore=tuple(ref for ref, _ in release) if restore_ephemeral else (),
    )


def _public_ip_blocker(
    mirror: MirrorConfig,
    target: InstanceRef,
    nics: Mapping[InstanceRef, NicState | Unreadable],
    address: AddressState,
    target_reserved: str | None,
) -> PublicIpBlocked | None:
    """Why the static IP cannot be attached to `target` now, before anything is changed.

    The new primary's own external IP is dropped only when the static IP can really follow:
    never for a holder that cannot be reached (its zone down) or that is not a member.
    """
    what = f"static IP {address.ip} (address {address.name})"
    for user in address.users:
        ref = instance_of(user)
        if ref is None or ref not in nics:
            return PublicIpBlocked(
                f"{what} is in use by {user}, which is not a member of mirror {mirror.name}; "
                "mirror-vip will not take it",
                retryable=False,
            )
        if isinstance(nics[ref], Unreadable) and ref != target:
            return PublicIpBlocked(
                f"{what} is held by {ref}, which cannot be read now; the new primary keeps its "
                "own external IP until the static IP can be released",
                retryable=True,
            )
    if target_reserved is not None:
        return PublicIpBlocked(
            f"{target.name} holds reserved address {target_reserved}; mirror-vip will not "
            "detach it",
            retryable=False,
        )
    return None
