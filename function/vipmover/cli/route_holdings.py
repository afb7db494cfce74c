"""Route mode's holdings: the VIP's routes, every member's VM and the forwarding rule, read at once.

Who holds the VIP is decided by the same pure code the function uses (`route_plan.view_routes`:
the best routes' next hops, ours and others'), the mark is read from mirror-vip's route
descriptions, the public IP's holder is the member whose target instance the rule points at.
Every read is global or regional except each member's own VM, so a zone that is down costs only
that member's row.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..compute import ComputeGateway, HopState
from ..config import InstanceRef, MirrorConfig
from ..errors import MirrorVipError, NotFound, kept
from ..plan import instance_of
from ..route_plan import (
    ForwardingRuleState,
    RouteState,
    RouteView,
    instance_path,
    member_of_target,
    view_routes,
)
from .holdings import Drift, Holdings, MemberView, api_failure


@dataclass(frozen=True)
class RouteReads:
    """What route mode read, for `status`, `plan` and `doctor`."""

    network: str | None
    """`projects/P/global/networks/N`: configured, else the members' NIC's (None: unknown)."""
    view: RouteView
    hops: Mapping[InstanceRef, HopState | MirrorVipError]
    rule: ForwardingRuleState | MirrorVipError | None
    deleted_hops: frozenset[str] = frozenset()
    """Next-hop instances (`projects/P/zones/Z/instances/N`) of the VIP's routes that are gone."""
    routes_error: MirrorVipError | None = None

    def routes(self) -> list[RouteState]:
        """Every route for the VIP in the network, best first."""
        found = [o.route for o in self.view.ours] + list(self.view.foreign)
        return sorted(found, key=lambda r: (r.priority, r.name))

    def ours(self, route: RouteState) -> bool:
        return any(o.route == route for o in self.view.ours)


def read_route_holdings(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> Holdings:
    """The VIP's routes, each member's VM and the forwarding rule, concurrently; then the next
    hops that are not members (does the instance a route names still exist?)."""
    rule = mirror.forwarding_rule
    with ThreadPoolExecutor(max_workers=len(mirror.members) + 2) as pool:
        routes = pool.submit(
            kept, lambda: gateway.list_routes(mirror.project, mirror.vip, deadline)
        )
        hops = {
            ref: pool.submit(
                kept, lambda ref=ref: gateway.read_hop(ref, mirror.network_interface, deadline)
            )
            for ref in mirror.members
        }
        rule_read = (
            pool.submit(
                kept,
                lambda: gateway.read_forwarding_rule(
                    mirror.project, rule.region, rule.forwarding_rule, deadline
                ),
            )
            if rule is not None
            else None
        )
        found = routes.result()
        seen_hops = {ref: future.result() for ref, future in hops.items()}
        seen_rule = rule_read.result() if rule_read is not None else None
    network = _network(mirror, seen_hops, [] if isinstance(found, MirrorVipError) else found)
    if isinstance(found, MirrorVipError):
        reads = RouteReads(network, RouteView((), ()), seen_hops, seen_rule, routes_error=found)
        return route_holdings(mirror, reads)
    view = view_routes(mirror, network or "", found)
    deleted = _deleted_hops(gateway, mirror, view, seen_hops, deadline)
    return route_holdings(mirror, RouteReads(network, view, seen_hops, seen_rule, deleted))


def _network(
    mirror: MirrorConfig,
    hops: Mapping[InstanceRef, HopState | MirrorVipError],
    routes: list[RouteState],
) -> str | None:
    """The configured network, else the members' NIC's (as the mover takes the new primary's),
    else the network of the VIP's routes."""
    if mirror.network is not None:
        return f"projects/{mirror.project}/global/networks/{mirror.network}"
    for hop in hops.values():
        if isinstance(hop, HopState):
            return hop.network
    return min((r.network for r in routes), default=None)


def _deleted_hops(
    gateway: ComputeGateway,
    mirror: MirrorConfig,
    view: RouteView,
    hops: Mapping[InstanceRef, HopState | MirrorVipError],
    deadline: float,
) -> frozenset[str]:
    """The next-hop instances of the VIP's routes that answer 404 (members: already read)."""
    paths = {r.next_hop for r in [o.route for o in view.ours] + list(view.foreign)}
    deleted = {instance_path(ref) for ref, hop in hops.items() if isinstance(hop, NotFound)} & paths
    others = [
        ref for p in paths if (ref := instance_of(p)) is not None and ref not in mirror.members
    ]
    for ref in others:
        try:
            gateway.read_instance(ref, deadline)
        except NotFound:
            deleted.add(instance_path(ref))
        except MirrorVipError:
            continue  # unreadable (a zone down) is not "deleted"
    return frozenset(deleted)


def route_holdings(mirror: MirrorConfig, reads: RouteReads) -> Holdings:
    """What the reads add up to (pure): holders, the mark and every drift."""
    holders = set(reads.view.holders())
    rule = reads.rule if isinstance(reads.rule, ForwardingRuleState) else None
    public_member = member_of_target(mirror, rule.target) if rule else None
    views = tuple(_member_view(ref, hop, holders, public_member) for ref, hop in reads.hops.items())
    vip_holders = tuple(ref for path in sorted(holders) if (ref := instance_of(path)) is not None)
    mark = reads.view.newest_mark
    mark_route = next((o.route.name for o in reads.view.ours if mark and o.mark == mark), None)
    error = reads.routes_error
    return Holdings(
        mirror=mirror,
        mode="route",
        members=views,
        vip_holders=vip_holders,
        public_ip=rule.ip if rule else None,
        public_holders=(public_member,) if public_member else (),
        address=None,
        address_error=str(reads.rule) if isinstance(reads.rule, MirrorVipError) else None,
        mark=mark,
        drifts=route_drifts(mirror, reads, views),
        unreachable_api=error is not None and api_failure(error, str(error)),
        mark_source=("route", mark_route) if mark_route else None,
        versions={
            **{f"route {r.name}": str(r.priority) for r in reads.routes()},
            "forwarding rule": rule.target if rule else "",
        },
        route=reads,
        extra=route_document(mirror, reads),
    )


def _member_view(
    ref: InstanceRef,
    hop: HopState | MirrorVipError,
    holders: set[str],
    public_member: InstanceRef | None,
) -> MemberView:
    if isinstance(hop, NotFound):
        return MemberView(ref, "NOT_FOUND", error=str(hop))
    if isinstance(hop, MirrorVipError):
        return MemberView(ref, "UNREACHABLE", error=str(hop))
    return MemberView(ref, hop.status, instance_path(ref) in holders, ref == public_member)


def _hop_name(path: str) -> str:
    ref = instance_of(path)
    return ref.name if ref is not None else path


def route_drifts(
    mirror: MirrorConfig, reads: RouteReads, views: tuple[MemberView, ...]
) -> tuple[Drift, ...]:
    """Every named way the state is not "one route wins, to one running member that forwards,
    the forwarding rule on the same member"."""
    if reads.routes_error is not None:
        message = f"routes for {mirror.vip} cannot be read: {reads.routes_error}"
        return (Drift("routes_unreadable", message), *_member_drifts(views))
    drifts = [*_winner_drifts(mirror, reads), *_foreign_drifts(reads)]
    drifts.extend(
        Drift(
            "route_to_deleted_instance",
            f"route {r.name} sends the VIP to {_hop_name(r.next_hop)}, which does not exist",
        )
        for r in reads.routes()
        if r.next_hop in reads.deleted_hops
    )
    drifts.extend(_holder_drifts(reads, views))
    drifts.extend(_member_drifts(views))
    if mirror.forwarding_rule is not None:
        drifts.extend(_rule_drifts(mirror, reads, views))
    return tuple(drifts)


def _winner_drifts(mirror: MirrorConfig, reads: RouteReads) -> list[Drift]:
    winners = reads.view.winners()
    if not winners:
        return [Drift("vip_on_no_member", f"VIP {mirror.vip} on no member: no route for it")]
    drifts = []
    hops = sorted({r.next_hop for r in winners})
    if len(hops) > 1:
        names = ", ".join(r.name for r in winners)
        message = (
            f"{len(winners)} best routes with equal priority {winners[0].priority} (ECMP): "
            f"{names} split the VIP between {', '.join(map(_hop_name, hops))}"
        )
        drifts.append(Drift("ecmp", message))
    members = {instance_path(m) for m in mirror.members}
    drifts.extend(
        Drift("vip_on_non_member", f"VIP routed to {_hop_name(hop)}, which is not a member")
        for hop in hops
        if hop not in members
    )
    return drifts


def _foreign_drifts(reads: RouteReads) -> list[Drift]:
    """Routes not written by mirror-vip that beat or tie mirror-vip's best one (or stand alone)."""
    ours = min((o.route.priority for o in reads.view.ours), default=None)
    drifts = []
    for route in sorted(reads.view.foreign, key=lambda r: (r.priority, r.name)):
        if ours is not None and route.priority > ours:
            continue
        how = (
            "with no route of mirror-vip's"
            if ours is None
            else f"{'ties' if route.priority == ours else 'beats'} mirror-vip's best ({ours})"
        )
        message = (
            f"route {route.name} (not mirror-vip's, priority {route.priority}) {how}: it sends "
            f"the VIP to {_hop_name(route.next_hop)}"
        )
        drifts.append(Drift("foreign_route", message))
    return drifts


def _holder_drifts(reads: RouteReads, views: tuple[MemberView, ...]) -> list[Drift]:
    drifts = []
    for view in views:
        hop = reads.hops[view.instance]
        if not view.holds_vip or not isinstance(hop, HopState):
            continue
        if hop.status != "RUNNING":
            message = f"VIP routed to {view.instance.name}, which is {hop.status}"
            drifts.append(Drift("holder_not_running", message))
        if not hop.can_ip_forward:
            message = (
                f"VIP routed to {view.instance.name}, which has canIpForward=false: GCE drops "
                "the VIP's packets"
            )
            drifts.append(Drift("holder_cannot_forward", message))
    holders = [v for v in views if v.holds_vip]
    mark = reads.view.newest_mark
    if mark is not None and len(holders) == 1 and mark.holder != holders[0].instance:
        message = f"high-water mark names {mark.holder.name} but VIP on {holders[0].instance.name}"
        drifts.append(Drift("mark_disagrees", message))
    return drifts


def _member_drifts(views: tuple[MemberView, ...]) -> list[Drift]:
    drifts = []
    for view in views:
        if view.status == "NOT_FOUND":
            drifts.append(Drift("member_missing", f"{view.instance.name} does not exist"))
        elif view.status == "UNREACHABLE":
            message = f"{view.instance.name} cannot be read: {view.error}"
            drifts.append(Drift("member_unreachable", message))
    return drifts


def _rule_drifts(
    mirror: MirrorConfig, reads: RouteReads, views: tuple[MemberView, ...]
) -> list[Drift]:
    config = mirror.forwarding_rule
    assert config is not None
    rule = reads.rule
    if not isinstance(rule, ForwardingRuleState):
        message = f"forwarding rule {config.forwarding_rule} cannot be read: {rule}"
        return [Drift("static_ip_unreadable", message)]
    member = member_of_target(mirror, rule.target)
    if member is None:
        message = (
            f"static IP {rule.ip}: forwarding rule {rule.name} targets {rule.target}, which is "
            "not a member's target instance"
        )
        return [Drift("static_ip_on_non_member", message)]
    holders = [v.instance for v in views if v.holds_vip]
    if len(holders) == 1 and holders[0] != member:
        message = f"static IP on {member.name} but VIP on {holders[0].name}"
        return [Drift("static_ip_elsewhere", message)]
    return []


def route_document(mirror: MirrorConfig, reads: RouteReads) -> dict[str, Any]:
    """Route mode's part of the `--json` document: the network, every route, the rule."""
    winners = set(reads.view.winners())
    marks = {o.route.name: o.mark for o in reads.view.ours}
    rule = reads.rule
    forwarding = None
    if mirror.forwarding_rule is not None:
        forwarding = {
            "name": mirror.forwarding_rule.forwarding_rule,
            "region": mirror.forwarding_rule.region,
            "ip": rule.ip if isinstance(rule, ForwardingRuleState) else None,
            "target": rule.target if isinstance(rule, ForwardingRuleState) else None,
            "error": str(rule) if isinstance(rule, MirrorVipError) else None,
        }
    return {
        "network": reads.network,
        "routes": [
            {
                "name": r.name,
                "priority": r.priority,
                "next_hop": _hop_name(r.next_hop),
                "mirror_vip": reads.ours(r),
                "mark_ms": (m.time_ms if (m := marks.get(r.name)) is not None else None),
                "carries_traffic": r in winners,
            }
            for r in reads.routes()
        ],
        "forwarding_rule": forwarding,
        "can_ip_forward": {
            ref.name: hop.can_ip_forward
            for ref, hop in reads.hops.items()
            if isinstance(hop, HopState)
        },
    }


def route_lines(h: Holdings) -> list[str]:
    """The text form of route mode's own reads (the routes, the rule), for `status`."""
    reads = h.route
    assert reads is not None
    network = (reads.network or "?").rsplit("/", 1)[-1]
    lines = [f"  routes for {h.mirror.vip} in network {network} (best first):"]
    winners = set(reads.view.winners())
    for r in reads.routes():
        owner = "mirror-vip" if reads.ours(r) else "NOT mirror-vip's"
        live = "  <- carries the VIP" if r in winners else ""
        lines.append(f"    {r.priority:>5}  {_hop_name(r.next_hop):<20} {r.name} ({owner}){live}")
    if not reads.routes():
        lines.append("    none")
    if h.mirror.forwarding_rule is not None:
        rule = reads.rule
        where = f"forwarding rule {h.mirror.forwarding_rule.forwarding_rule}"
        if isinstance(rule, ForwardingRuleState):
            holder = ", ".join(r.name for r in h.public_holders) or rule.target
            lines.append(f"  static IP {rule.ip:<12} on {holder} ({where})")
        else:
            lines.append(f"  static IP ?            {where} cannot be read")
    return lines
