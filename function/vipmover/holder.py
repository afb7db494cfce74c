"""Who holds a mirror's VIP now, in either mode: one read, for `status` and `doctor` alike.

Alias mode asks every member's NIC (a member whose zone is down is reported unreadable); route
mode asks the VIP's routes (global) and the forwarding rule (regional), so it answers even when a
member's zone is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compute import ComputeGateway
from .config import MirrorConfig
from .errors import MirrorVipError
from .plan import holds_vip, instance_of
from .route_plan import member_of_target, view_routes


@dataclass(frozen=True)
class VipHolder:
    """Where a mirror's VIP and public IP are now."""

    mode: str
    vip_on: tuple[str, ...]
    """Instances that receive the VIP (`project/zone/name`); several with alias conflicts or
    ECMP routes, none when nothing routes it."""
    public_ip_on: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    """Members (alias mode) or resources (route mode) that could not be read, with why."""


def who_holds_vip(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> VipHolder:
    """Read where the mirror's VIP (and public IP) are, without changing anything."""
    if mirror.mode == "route":
        return _route_holder(gateway, mirror, deadline)
    return _alias_holder(gateway, mirror, deadline)


def _alias_holder(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> VipHolder:
    vip_on: list[str] = []
    public_on: list[str] = []
    unreadable: list[str] = []
    public_ip = None
    if mirror.public_ip is not None:
        try:
            address = gateway.read_address(
                mirror.project, mirror.public_ip.region, mirror.public_ip.address_name, deadline
            )
            public_ip = address.ip
        except MirrorVipError as err:
            unreadable.append(f"address {mirror.public_ip.address_name}: {err}")
    for member in mirror.members:
        try:
            nic = gateway.read_nic(member, mirror.network_interface, deadline)
        except MirrorVipError as err:
            unreadable.append(f"{member}: {err}")
            continue
        if holds_vip(nic, mirror.vip):
            vip_on.append(str(member))
        if public_ip is not None and any(c.nat_ip == public_ip for c in nic.access_configs):
            public_on.append(str(member))
    return VipHolder("alias", tuple(vip_on), tuple(public_on), tuple(unreadable))


def _route_holder(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> VipHolder:
    routes = gateway.list_routes(mirror.project, mirror.vip, deadline)
    networks = (
        {f"projects/{mirror.project}/global/networks/{mirror.network}"}
        if mirror.network
        else {r.network for r in routes}
    )
    hops: set[str] = set()
    for network in networks:
        view = view_routes(mirror, network, routes)
        hops.update(view.holders())
    vip_on = tuple(sorted(str(instance_of(h) or h) for h in hops))
    public_on: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    rule = mirror.forwarding_rule
    if rule is not None:
        try:
            state = gateway.read_forwarding_rule(
                mirror.project, rule.region, rule.forwarding_rule, deadline
            )
            member = member_of_target(mirror, state.target)
            public_on = (str(member) if member else state.target,)
        except MirrorVipError as err:
            unreadable = (f"forwarding rule {rule.forwarding_rule}: {err}",)
    return VipHolder("route", vip_on, public_on, unreadable)
