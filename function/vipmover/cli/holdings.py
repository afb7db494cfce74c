"""Who holds a mirror's VIP and public IP now, and every way that differs from one clean holder.

Each mode has one reader that produces a `Holdings` (`readers.read_holdings` picks it);
`status`, `plan`, `move`, `drill` and `doctor` work on that. Alias mode is read here (every
member's NIC and the static address, in parallel, with the function's own gateway); route mode
in `route_holdings` (the VIP's routes, the members' VMs and the forwarding rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..compute import ComputeGateway
from ..config import InstanceRef, MirrorConfig
from ..errors import ApiUnavailable, MirrorVipError, RequestRefused
from ..event import format_rfc3339
from ..plan import (
    AddressState,
    Mark,
    NicState,
    Unreadable,
    holds_vip,
    instance_of,
    mark_label,
    newest_mark,
)
from ..reads import read_members

if TYPE_CHECKING:
    from .route_holdings import RouteReads


@dataclass(frozen=True)
class Drift:
    """One way the state differs from "exactly one holder, the public IP on the same member"."""

    code: str
    message: str


@dataclass(frozen=True)
class MemberView:
    """One member as read: its status, what it holds, or why it could not be read."""

    instance: InstanceRef
    status: str
    """RUNNING, TERMINATED, ..., `NOT_FOUND` or `UNREACHABLE`."""
    holds_vip: bool = False
    holds_public_ip: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Holdings:
    """A mirror's holders as read through the Compute API, with the reads the planner takes."""

    mirror: MirrorConfig
    mode: str
    members: tuple[MemberView, ...]
    vip_holders: tuple[InstanceRef, ...]
    public_ip: str | None
    public_holders: tuple[InstanceRef, ...]
    address: AddressState | None
    address_error: str | None
    mark: Mark | None
    drifts: tuple[Drift, ...]
    nics: Mapping[InstanceRef, NicState | Unreadable] = field(default_factory=dict)
    unreachable_api: bool = False
    """No member could be read because the API is unreachable or denies us: exit code 3."""
    mark_source: tuple[str, str] | None = None
    """Where the mark is kept: (`label`, label key) or (`route`, route name)."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """A version per resource a move writes (NIC fingerprints; route names): a write shows."""
    route: RouteReads | None = None
    """Route mode's reads (its routes, VMs and forwarding rule)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The mode's own part of the `--json` document."""

    @property
    def read_errors(self) -> list[str]:
        """Why the reads failed, for the exit-3 answer."""
        errors = {m.error or "" for m in self.members}
        if self.route is not None and self.route.routes_error is not None:
            errors.add(f"routes: {self.route.routes_error}")
        return sorted(errors - {""}) or sorted(errors)

    @property
    def consistent(self) -> bool:
        return not self.drifts

    def document(self) -> dict[str, Any]:
        """The `--json` form (documented in the README, "Operate")."""
        mark = None
        if self.mark is not None:
            when = datetime.fromtimestamp(self.mark.time_ms / 1000, UTC)
            mark = {"time": format_rfc3339(when), "member": self.mark.holder.name}
            if self.mark_source is not None:
                mark[self.mark_source[0]] = self.mark_source[1]
        return {
            "mirror": self.mirror.name,
            "mode": self.mode,
            "vip": self.mirror.vip,
            "vip_holders": [ref.name for ref in self.vip_holders],
            "public_ip": self.public_ip,
            "public_ip_holders": [ref.name for ref in self.public_holders],
            "high_water_mark": mark,
            "consistent": self.consistent,
            "drifts": [{"code": d.code, "message": d.message} for d in self.drifts],
            "members": [
                {
                    "instance": m.instance.name,
                    "zone": m.instance.zone,
                    "status": m.status,
                    "holds_vip": m.holds_vip,
                    "holds_public_ip": m.holds_public_ip,
                    "error": m.error,
                }
                for m in self.members
            ],
            **self.extra,
        }


def read_alias_holdings(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> Holdings:
    """Every member's NIC and the static address, read as the mover reads them."""
    read = read_members(gateway, mirror, deadline)
    return alias_holdings(mirror, read.nics, read.address)


def alias_holdings(
    mirror: MirrorConfig,
    nics: Mapping[InstanceRef, NicState | Unreadable],
    address: AddressState | MirrorVipError | None,
) -> Holdings:
    """What the reads add up to (pure): holders, the mark and every drift."""
    address_state = address if isinstance(address, AddressState) else None
    ip = address_state.ip if address_state else None
    views = tuple(_member_view(nic, mirror.vip, ip) for nic in nics.values())
    vip_holders = tuple(v.instance for v in views if v.holds_vip)
    public_holders = tuple(v.instance for v in views if v.holds_public_ip)
    mark = newest_mark(nics, mark_label(mirror.name))
    address_error = str(address) if isinstance(address, MirrorVipError) else None
    drifts = alias_drifts(mirror, views, address_state, address_error, mark)
    unreadable = [nic for nic in nics.values() if isinstance(nic, Unreadable)]
    return Holdings(
        mirror=mirror,
        mode="alias",
        members=views,
        vip_holders=vip_holders,
        public_ip=ip,
        public_holders=public_holders,
        address=address_state,
        address_error=address_error,
        mark=mark,
        drifts=drifts,
        nics=dict(nics),
        unreachable_api=len(unreadable) == len(nics)
        and all(api_failure(nic.cause, nic.error) for nic in unreadable),
        mark_source=("label", mark_label(mirror.name)),
        versions={
            str(ref): f"{nic.fingerprint}/{nic.label_fingerprint}"
            for ref, nic in nics.items()
            if isinstance(nic, NicState)
        },
    )


def api_failure(cause: Exception | None, error: str) -> bool:
    """The read failed because the API is unreachable or denies the caller, not the resource."""
    if isinstance(cause, ApiUnavailable):
        return True
    return isinstance(cause, RequestRefused) and any(f"HTTP {code}" in error for code in (401, 403))


def has_public_ip(mirror: MirrorConfig) -> bool:
    """The mirror moves a public IP too (a static address, or route mode's forwarding rule)."""
    return mirror.public_ip is not None or mirror.forwarding_rule is not None


def _member_view(nic: NicState | Unreadable, vip: str, public_ip: str | None) -> MemberView:
    if isinstance(nic, Unreadable):
        status = "NOT_FOUND" if "HTTP 404" in nic.error else "UNREACHABLE"
        return MemberView(nic.instance, status, error=nic.error)
    has_ip = public_ip is not None and any(c.nat_ip == public_ip for c in nic.access_configs)
    return MemberView(nic.instance, nic.status, holds_vip(nic, vip), has_ip)


def alias_drifts(
    mirror: MirrorConfig,
    views: tuple[MemberView, ...],
    address: AddressState | None,
    address_error: str | None,
    mark: Mark | None,
) -> tuple[Drift, ...]:
    """Every named way the state is not "one running holder, the static IP with it"."""
    drifts: list[Drift] = []
    holders = [v for v in views if v.holds_vip]
    names = ", ".join(v.instance.name for v in holders)
    if not holders:
        drifts.append(Drift("vip_on_no_member", f"VIP {mirror.vip} on no member"))
    elif len(holders) > 1:
        drifts.append(
            Drift("vip_on_several_members", f"VIP {mirror.vip} on {len(holders)} members: {names}")
        )
    drifts.extend(
        Drift("holder_not_running", f"VIP on {v.instance.name}, which is {v.status}")
        for v in holders
        if v.status != "RUNNING"
    )
    for view in views:
        if view.status == "NOT_FOUND":
            drifts.append(Drift("member_missing", f"{view.instance.name} does not exist"))
        elif view.status == "UNREACHABLE":
            drifts.append(
                Drift("member_unreachable", f"{view.instance.name} cannot be read: {view.error}")
            )
    if mirror.public_ip is not None:
        drifts.extend(_public_drifts(mirror, views, address, address_error))
    if mark is not None and len(holders) == 1 and mark.holder != holders[0].instance:
        drifts.append(
            Drift(
                "mark_disagrees",
                f"high-water mark names {mark.holder.name} but VIP on {holders[0].instance.name}",
            )
        )
    return tuple(drifts)


def _public_drifts(
    mirror: MirrorConfig,
    views: tuple[MemberView, ...],
    address: AddressState | None,
    address_error: str | None,
) -> list[Drift]:
    assert mirror.public_ip is not None
    name = mirror.public_ip.address_name
    if address is None:
        return [Drift("static_ip_unreadable", f"address {name} cannot be read: {address_error}")]
    drifts: list[Drift] = []
    members = {str(v.instance): v for v in views}
    outsiders = [u for u in address.users if not _is_member_link(u, members)]
    drifts.extend(
        Drift("static_ip_on_non_member", f"static IP {address.ip} in use by {user}")
        for user in outsiders
    )
    holders = [v for v in views if v.holds_public_ip]
    vip_holders = [v for v in views if v.holds_vip]
    if not holders and not outsiders:
        drifts.append(Drift("static_ip_on_no_member", f"static IP {address.ip} on no member"))
    elif len(vip_holders) == 1 and holders and holders[0] is not vip_holders[0]:
        drifts.append(
            Drift(
                "static_ip_elsewhere",
                f"static IP on {holders[0].instance.name} but VIP on "
                f"{vip_holders[0].instance.name}",
            )
        )
    return drifts


def _is_member_link(link: str, members: Mapping[str, MemberView]) -> bool:
    ref = instance_of(link)
    return ref is not None and str(ref) in members
