"""Route mode, decided: which route to insert and which to delete, as pure functions on plain data.

The VIP is a /32 outside every subnet, sent to the primary by a custom static route
(`destRange` = VIP, `nextHopInstance` = the primary). A failover is make before break:

    insert a route for the new primary, strictly better than every route for the VIP  (critical)
    -> delete mirror-vip's older routes for the VIP                               (off the path)

Invariants kept here:
* **No ECMP between members.** A route to the member at index `i` of `mirror.members` always has
  a priority `p` with `p % len(members) == i`, so two routes at one priority never point at two
  members, whatever two concurrent handlers do.
* **The high-water mark lives in the route.** Its description, written only by mirror-vip, says
  which event (Pub/Sub publish time) made which member primary; the name is derived from it, so
  a concurrent duplicate of the same insert gets 409. Deletion never removes a route carrying a
  newer mark than the one kept: that route is another handler's, and it wins (`superseded_by`).
* **The safeguards' state lives in the route too** (`Ledger`): the mirror's recent move times
  (the takeover limit) and each member's last accepted identity token (replay), carried forward
  from every route read into each route inserted. Routes are written whole and never updated,
  so the mark and the state it was checked against are one atomic write that no zone outage
  blocks.
* **Priorities never run out.** Each failover takes a lower number; once the kept route is below
  `REBASE_BELOW`, a copy for the same member is inserted near `BASE_PRIORITY` and the low one
  deleted. Both point at one member, so traffic does not notice.

Routes not written by mirror-vip (their name and description say so) are never touched, but
they count when choosing a better priority.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .config import InstanceRef, MirrorConfig
from .plan import Mark, instance_of
from .replay import issued_at
from .takeover_limit import format_moves, parse_moves

ROUTE_PREFIX = "mirror-vip-"
DESCRIPTION_RE = re.compile(
    r"mirror-vip: mirror=(?P<mirror>\S+) vip=(?P<vip>\S+) mark=(?P<mark>\d{1,16}|none) "
    r"holder=(?P<holder>\S+)(?: moves=(?P<moves>[0-9a-z-]*))?(?: tokens=(?P<tokens>\S*))?"
)
BASE_PRIORITY = 1000
REBASE_BELOW = 100
"""A kept route below this priority is moved back up near BASE_PRIORITY (900 failovers away)."""
MAX_PRIORITY = 65535


@dataclass(frozen=True)
class RouteState:
    """One route for the VIP, as read from the API."""

    name: str
    network: str
    """`projects/P/global/networks/N`."""
    dest_range: str
    priority: int
    next_hop: str
    """The next hop's resource path (`projects/P/zones/Z/instances/N`), or what else it is."""
    description: str = ""


@dataclass(frozen=True)
class Ledger:
    """The safeguards' state that a route carries (`moves=... tokens=...` in its description)."""

    moves: tuple[int, ...] = ()
    """The mirror's recent move times, epoch ms (the takeover limit's history)."""
    tokens: tuple[tuple[str, str], ...] = ()
    """(member instance name, its last accepted token as `TokenUse.value`), sorted by name."""

    def with_token(self, name: str, value: str) -> Ledger:
        return Ledger(self.moves, tuple(sorted({**dict(self.tokens), name: value}.items())))

    def text(self) -> str:
        """The description's tail; empty for an empty ledger (the first release's format)."""
        if not self.moves and not self.tokens:
            return ""
        tokens = ",".join(f"{name}:{value}" for name, value in self.tokens)
        return f" moves={format_moves(self.moves)} tokens={tokens}"


def parse_ledger(moves: str | None, tokens: str | None) -> Ledger:
    """The ledger a description says; malformed parts are ignored, as a label's would be."""
    pairs = {}
    for part in (tokens or "").split(","):
        name, colon, value = part.partition(":")
        if colon and name and issued_at(value) is not None:
            pairs[name] = value
    return Ledger(parse_moves(moves or ""), tuple(sorted(pairs.items())))


def merge_ledgers(ledgers: Sequence[Ledger]) -> Ledger:
    """Every move any route records, and each member's newest token among them."""
    moves = sorted({t for ledger in ledgers for t in ledger.moves if t})
    newest: dict[str, str] = {}
    for ledger in ledgers:
        for name, value in ledger.tokens:
            if name not in newest or _token_key(value) > _token_key(newest[name]):
                newest[name] = value
    return Ledger(tuple(moves), tuple(sorted(newest.items())))


def _token_key(value: str) -> tuple[int, str]:
    return (issued_at(value) or 0, value)


@dataclass(frozen=True)
class OwnRoute:
    """A route mirror-vip wrote for this mirror: whom it sends the VIP to, for which event."""

    route: RouteState
    holder: InstanceRef | None
    """None when it points at an instance that is no longer a member."""
    mark: Mark | None
    ledger: Ledger = Ledger()


@dataclass(frozen=True)
class RouteView:
    """Every route for the mirror's VIP in its network, split into ours and others'."""

    ours: tuple[OwnRoute, ...]
    foreign: tuple[RouteState, ...]

    @property
    def best_priority(self) -> int | None:
        routes = [o.route for o in self.ours] + list(self.foreign)
        return min((r.priority for r in routes), default=None)

    def winners(self) -> tuple[RouteState, ...]:
        """The routes that carry the VIP's traffic now (several: ECMP)."""
        best = self.best_priority
        routes = [o.route for o in self.ours] + list(self.foreign)
        return tuple(sorted((r for r in routes if r.priority == best), key=lambda r: r.name))

    def holders(self) -> tuple[str, ...]:
        """The next hops that receive the VIP now, by resource path (none, one, or ECMP)."""
        return tuple(sorted({r.next_hop for r in self.winners()}))

    @property
    def newest_mark(self) -> Mark | None:
        return max((o.mark for o in self.ours if o.mark is not None), default=None)

    def ledger(self) -> Ledger:
        """The safeguards' state, merged over all our routes (a new route carries it on)."""
        return merge_ledgers([o.ledger for o in self.ours])

    def keeper(self, target: InstanceRef) -> OwnRoute | None:
        """Our best route to `target` (newest mark first among equals), if any."""
        mine = sorted(
            (o for o in self.ours if o.holder == target),
            key=lambda o: (_mark_key(o.mark), o.route.name),
            reverse=True,
        )
        return min(mine, key=lambda o: o.route.priority, default=None)


@dataclass(frozen=True)
class NewRoute:
    """A route to insert."""

    name: str
    priority: int
    holder: InstanceRef
    mark: Mark | None
    description: str


@dataclass(frozen=True)
class RoutePlan:
    """What must change so that the VIP is routed to `target` alone, carrying `mark`."""

    target: InstanceRef
    insert: NewRoute | None = None
    """The critical-path write; wins at once."""
    delete: tuple[OwnRoute, ...] = ()
    """Our older routes, deleted once `insert` (if any) is DONE."""
    rebase: tuple[NewRoute, OwnRoute] | None = None
    """(copy near BASE_PRIORITY, low route it replaces): insert, then delete."""
    blocked: str | None = None
    """Why no better route can be inserted (priority 0 taken by someone else's route)."""

    @property
    def changes(self) -> bool:
        return bool(self.insert or self.delete or self.rebase)


@dataclass(frozen=True)
class ForwardingRuleState:
    """The mirror's protocol forwarding rule, as read from the API."""

    name: str
    ip: str
    target: str
    """The target's resource path (`projects/P/zones/Z/targetInstances/T`)."""


@dataclass(frozen=True)
class ForwardingPlan:
    """Point the forwarding rule at the target's target instance, or say why not."""

    set_target: str | None = None
    """The resource path of the new primary's target instance, when the rule must change."""
    blocked: str | None = None


def route_slug(mirror_name: str) -> str:
    """The mirror's part of a route name: lowercase, `-` for the rest, 20 characters at most."""
    return re.sub(r"[^a-z0-9]+", "-", mirror_name.lower()).strip("-")[:20].rstrip("-") or "m"


def route_description(
    mirror: MirrorConfig, holder: InstanceRef, mark: Mark | None, ledger: Ledger = Ledger()
) -> str:
    """What the route says about itself; parsed back by `view_routes`."""
    time = str(mark.time_ms) if mark is not None else "none"
    said = f"mirror-vip: mirror={mirror.name} vip={mirror.vip} mark={time} holder={holder}"
    return said + ledger.text()


def route_name(mirror: MirrorConfig, holder: InstanceRef, mark: Mark | None, priority: int) -> str:
    """`mirror-vip-<mirror>-<mark ms>-<hash>`: one name per (event, member, priority)."""
    time = mark.time_ms if mark is not None else 0
    digest = hashlib.sha256(f"{mirror.name}/{mirror.vip}/{time}/{holder}/{priority}".encode())
    return f"{ROUTE_PREFIX}{route_slug(mirror.name)}-{time}-{digest.hexdigest()[:8]}"


def view_routes(mirror: MirrorConfig, network: str, routes: Sequence[RouteState]) -> RouteView:
    """Our routes and others' among `routes`, keeping only the VIP's routes in `network`."""
    ours: list[OwnRoute] = []
    foreign: list[RouteState] = []
    for route in routes:
        if route.dest_range != mirror.vip or route.network != network:
            continue
        own = _own_route(mirror, route)
        if own is None:
            foreign.append(route)
        else:
            ours.append(own)
    return RouteView(tuple(ours), tuple(foreign))


def _own_route(mirror: MirrorConfig, route: RouteState) -> OwnRoute | None:
    """The route as ours if its name and description are mirror-vip's, for this mirror."""
    if not route.name.startswith(f"{ROUTE_PREFIX}{route_slug(mirror.name)}-"):
        return None
    said = DESCRIPTION_RE.fullmatch(route.description)
    if said is None or said["mirror"].casefold() != mirror.name.casefold():
        return None
    if said["vip"] != mirror.vip:
        return None
    ledger = parse_ledger(said["moves"], said["tokens"])
    hop = instance_of(route.next_hop)
    holder = hop if hop in mirror.members else None
    if holder is None or str(holder) != said["holder"]:
        return OwnRoute(route, holder, None, ledger)
    mark = Mark(int(said["mark"]), holder) if said["mark"] != "none" else None
    return OwnRoute(route, holder, mark, ledger)


def plan_routes(
    mirror: MirrorConfig,
    target: InstanceRef,
    mark: Mark | None,
    view: RouteView,
    stamp: Ledger | None = None,
) -> RoutePlan:
    """Decide the inserts and deletes that route the VIP to `target` alone, carrying `mark`.

    Args:
        mirror: The mirror; its member order fixes each member's priority residue.
        target: The member that must receive the VIP.
        mark: The event to record in the route (None: keep whatever the kept route says).
        view: What was read.
        stamp: The ledger that an inserted route carries: the safeguards' state once this
            event is recorded; None carries the view's on unchanged.
    """
    keeper = view.keeper(target)
    winners = view.winners()
    in_place = (
        keeper is not None
        and keeper.route in winners
        and all(r.next_hop == _path(target) for r in winners)
        and (mark is None or (keeper.mark is not None and keeper.mark >= mark))
    )
    if in_place:
        assert keeper is not None
        deletes = _older_than(view, keeper)
        rebase = None if deletes else _rebase(mirror, view, keeper)
        return RoutePlan(target, delete=deletes, rebase=rebase)
    carried = mark if mark is not None else (keeper.mark if keeper else None)
    ledger = stamp if stamp is not None else view.ledger()
    priority = _better_priority(mirror, target, view.best_priority)
    if priority is None:
        return RoutePlan(
            target,
            blocked=f"a route for {mirror.vip} already has priority {view.best_priority}; no "
            f"better priority is left for {target.name}",
        )
    new = _new_route(mirror, target, carried, priority, ledger)
    pseudo_keeper = OwnRoute(
        RouteState(new.name, "", mirror.vip, priority, _path(target)), target, carried
    )
    return RoutePlan(target, insert=new, delete=_older_than(view, pseudo_keeper))


def _new_route(
    mirror: MirrorConfig, holder: InstanceRef, mark: Mark | None, priority: int, ledger: Ledger
) -> NewRoute:
    return NewRoute(
        route_name(mirror, holder, mark, priority),
        priority,
        holder,
        mark,
        route_description(mirror, holder, mark, ledger),
    )


def _older_than(view: RouteView, keeper: OwnRoute) -> tuple[OwnRoute, ...]:
    """Our routes other than `keeper` that carry no newer mark than it does."""
    return tuple(
        own
        for own in view.ours
        if own.route.name != keeper.route.name and _mark_key(own.mark) <= _mark_key(keeper.mark)
    )


def _mark_key(mark: Mark | None) -> tuple[int, Mark | None]:
    """Orders marks oldest first, no mark before any."""
    return (0, None) if mark is None else (1, mark)


def _better_priority(mirror: MirrorConfig, target: InstanceRef, best: int | None) -> int | None:
    """The largest priority strictly below `best` (at most BASE) in the target's residue class."""
    ceiling = BASE_PRIORITY if best is None else min(best - 1, BASE_PRIORITY)
    return _in_class(mirror, target, ceiling)


def _in_class(mirror: MirrorConfig, target: InstanceRef, ceiling: int) -> int | None:
    """The largest p <= ceiling with p % len(members) == the target's index, or None."""
    count, index = len(mirror.members), mirror.members.index(target)
    priority = ceiling - ((ceiling - index) % count)
    return priority if priority >= 0 else None


def _rebase(
    mirror: MirrorConfig, view: RouteView, keeper: OwnRoute
) -> tuple[NewRoute, OwnRoute] | None:
    """A copy of a low kept route near BASE_PRIORITY, still better than every foreign route."""
    if keeper.route.priority >= REBASE_BELOW or keeper.holder is None:
        return None
    foreign = min((r.priority for r in view.foreign), default=BASE_PRIORITY + 1)
    priority = _in_class(mirror, keeper.holder, min(BASE_PRIORITY, foreign - 1))
    if priority is None or priority <= keeper.route.priority:
        return None
    return _new_route(mirror, keeper.holder, keeper.mark, priority, view.ledger()), keeper


def plan_forwarding(
    mirror: MirrorConfig, target: InstanceRef, rule: ForwardingRuleState
) -> ForwardingPlan:
    """Retarget the rule at `target`'s target instance; never take it from a non-member."""
    wanted = target_instance_path(mirror, target)
    if rule.target == wanted:
        return ForwardingPlan()
    ours = {target_instance_path(mirror, member) for member in mirror.members}
    if rule.target not in ours:
        return ForwardingPlan(
            blocked=f"forwarding rule {rule.name} ({rule.ip}) targets {rule.target}, which is not "
            f"a target instance of mirror {mirror.name}; mirror-vip will not take it"
        )
    return ForwardingPlan(set_target=wanted)


def target_instance_path(mirror: MirrorConfig, member: InstanceRef) -> str:
    """`projects/P/zones/Z/targetInstances/T` of a member's configured target instance."""
    name = mirror.target_instance(member)
    return f"projects/{member.project}/zones/{member.zone}/targetInstances/{name}"


def member_of_target(mirror: MirrorConfig, target_path: str) -> InstanceRef | None:
    """The member whose target instance this is, if any."""
    return next((m for m in mirror.members if target_instance_path(mirror, m) == target_path), None)


def _path(ref: InstanceRef) -> str:
    return f"projects/{ref.project}/zones/{ref.zone}/instances/{ref.name}"


def instance_path(ref: InstanceRef) -> str:
    """`projects/P/zones/Z/instances/N`: what a route's `nextHopInstance` names."""
    return _path(ref)
