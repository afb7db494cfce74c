"""Move one mirror's VIP in route mode: read, decide, insert, then delete; repeat until settled.

Each round reads the VIP's routes (global), the new primary's VM (its own zone) and the
forwarding rule (regional) concurrently, decides with the same high-water-mark rules as alias
mode (`plan.decide_mark`, the mark read from the routes' descriptions), plans with
`route_plan`, and applies:

    routes:  insert the winning route -> delete our older routes (in parallel)   [-> rebase]
    public:  forwardingRules.setTarget to the new primary's target instance

The route chain and the public chain run concurrently; the insert is the only write on the
critical path, and nothing here touches the old primary's zone. A round that changed something
is followed by another that reads again, so the move ends on a read that needs no change.

With a guard (`safeguards`), each round also reads every other member's VM (for the
corroboration probes and the takeover limit; a member whose zone is down is unreadable and
blocks nothing) and hands the guard the round's `Stakes` before anything is written. The
safeguards' own state (move history, last accepted tokens) lives in the routes' descriptions
(`route_plan.Ledger`), written by the same insert that records the mark.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from .compute import ComputeGateway, HopState, request_id
from .config import InstanceRef, MirrorConfig
from .errors import (
    AlreadyExists,
    EventRejected,
    MirrorVipError,
    NotConverged,
    OperationFailed,
    OperationTimeout,
    RequestRefused,
    kept,
)
from .event import format_rfc3339
from .forwarding import RuleRead, plan_rule, read_rule, retarget, rule_problem
from .move_run import MoveReport, run_concurrently
from .movers import GatewayMover, MoveRequest
from .plan import Mark, MarkDecision, NicState, Unreadable, decide_mark, instance_of
from .reads import read_member
from .route_plan import (
    ForwardingPlan,
    ForwardingRuleState,
    Ledger,
    NewRoute,
    OwnRoute,
    RoutePlan,
    RouteView,
    instance_path,
    plan_routes,
    view_routes,
)
from .safeguards import Guard, Stakes

MAX_ROUNDS = 5
EXISTS_POLL_S = 0.2
"""How often to look for a route that a concurrent duplicate inserted (409) until it exists."""
GUARD_READ_ATTEMPTS = 2
"""Tries of the safeguards' read of each other member (one retry absorbs a blip). A member that
cannot be read never blocks a move, so more tries would only delay the failover that route mode
is for: the old primary's zone down, its reads answering 503 (4 tries cost about 1.4 s)."""


@dataclass(frozen=True)
class _Seen:
    """One round's reads."""

    view: RouteView
    network: str
    hop: HopState | MirrorVipError
    rule: RuleRead
    members: dict[InstanceRef, NicState | Unreadable]
    """The new primary's VM, and with a guard that needs them every other member's."""


class RouteMover(GatewayMover):
    """Moves a route-mode mirror's VIP: a `movers.VipMover`."""

    def move(
        self, request: MoveRequest, report: MoveReport
    ) -> Literal["moved", "already_in_place"]:
        """Route mode's `VipMover.move`: route the VIP (and the forwarding rule) to the target."""
        mirror, target, guard = request.mirror, request.target, request.guard
        heartbeat, time_ms = request.heartbeat, request.event_time_ms
        deadline = time.monotonic() + self.operation_timeout_s
        key = f"{request.event_key}/{secrets.token_hex(8)}"
        run = _Run(self.gateway, mirror, key, report, deadline)
        event = Mark(time_ms, target) if time_ms is not None else None
        stale: Mark | None = None
        moved = False
        goal = target
        for _ in range(MAX_ROUNDS):
            seen = run.read(target, others=guard is not None and guard.reads_members)
            newest = seen.view.newest_mark
            stamp = _stamp(guard, seen.view, goal)
            decided = plan_round(
                mirror, goal, event, seen.view, seen.rule, heartbeat=heartbeat, stamp=stamp
            )
            decision, plan, public = decided.decision, decided.routes, decided.public
            if decision.stale:
                report.actions.append(f"superseded_by:{decision.target.name}")
                stale = stale or event
            elif decision.target == target:
                _check_hop(seen.hop, report)
            goal, event = decision.target, decision.event
            if report.from_instance is None:
                report.from_instance = _previous_holder(seen.view, goal)
            if plan.blocked is not None:
                raise RequestRefused(f"{mirror.name}: {plan.blocked}")
            if guard is not None:
                guard.verify(goal, _stakes(mirror, seen, plan, public))
            if not plan.changes and public.set_target is None:
                if stale is not None and not moved:
                    raise _stale_rejection(stale, newest, heartbeat=heartbeat)
                _raise_public_problem(mirror, goal, seen.rule, public)
                return "moved" if moved else "already_in_place"
            moved = run.apply(seen, plan, public) or moved
        raise NotConverged(f"{mirror.name}: routes not settled after {MAX_ROUNDS} rounds")


@dataclass(frozen=True)
class RoundPlan:
    """One round's decision: whose mark wins, the route writes and the forwarding rule's."""

    decision: MarkDecision
    routes: RoutePlan
    public: ForwardingPlan


def plan_round(
    mirror: MirrorConfig,
    goal: InstanceRef,
    event: Mark | None,
    view: RouteView,
    rule: ForwardingRuleState | MirrorVipError | None,
    *,
    heartbeat: bool = False,
    stamp: Ledger | None = None,
) -> RoundPlan:
    """Decide one round from its reads (pure); `mirror-vip plan` shows what this returns.

    Args:
        goal: The member the event names (in later rounds: the member the last round chose).
        event: The event's mark (None: none to record).
        stamp: The safeguards' ledger to write with the event's mark, if it is recorded.
    """
    newest = view.newest_mark
    decision = decide_mark(event, newest, goal, heartbeat=heartbeat)
    chosen = decision.target
    carried = (
        decision.event
        if decision.record
        else (newest if newest and newest.holder == chosen else None)
    )
    routes = plan_routes(mirror, chosen, carried, view, stamp if decision.record else None)
    return RoundPlan(decision, routes, plan_rule(mirror, chosen, rule))


@dataclass(frozen=True)
class _Run:
    """The reads and writes of one move, sharing its requestId key, report and deadline."""

    gateway: ComputeGateway
    mirror: MirrorConfig
    key: str
    report: MoveReport
    deadline: float

    # -- reads --------------------------------------------------------------------------------

    def read(self, event_member: InstanceRef, *, others: bool = False) -> _Seen:
        """Routes, the event's member's VM and the forwarding rule, all at once; with `others`,
        every other member's VM too."""
        started = time.monotonic()
        mirror, gateway, deadline = self.mirror, self.gateway, self.deadline
        rest = [ref for ref in mirror.members if ref != event_member] if others else []
        with ThreadPoolExecutor(max_workers=3 + len(rest)) as pool:
            routes = pool.submit(gateway.list_routes, mirror.project, mirror.vip, deadline)
            hop = pool.submit(
                kept, partial(gateway.read_hop, event_member, mirror.network_interface, deadline)
            )
            rule = pool.submit(read_rule, gateway, mirror, deadline)
            reads = {
                ref: pool.submit(read_member, gateway, mirror, ref, deadline, GUARD_READ_ATTEMPTS)
                for ref in rest
            }
            seen_hop = hop.result()
            network = self._network(seen_hop)
            view = view_routes(mirror, network, routes.result())
            seen_rule = rule.result()
            members = {event_member: _as_member(event_member, seen_hop)}
            members |= {ref: future.result() for ref, future in reads.items()}
        self.report.step("read", started)
        if isinstance(seen_rule, ForwardingRuleState):
            self.report.public_ip = seen_rule.ip
        return _Seen(view, network, seen_hop, seen_rule, members)

    def _network(self, hop: HopState | MirrorVipError) -> str:
        """The configured network, else the network of the new primary's NIC."""
        if self.mirror.network is not None:
            return f"projects/{self.mirror.project}/global/networks/{self.mirror.network}"
        if isinstance(hop, MirrorVipError):
            raise type(hop)(f"{hop}; set mirrors.{self.mirror.name}.network to route without it")
        return hop.network

    # -- writes -------------------------------------------------------------------------------

    def apply(self, seen: _Seen, plan: RoutePlan, public: ForwardingPlan) -> bool:
        """Run the route chain and the public chain concurrently.

        Returns:
            Whether the VIP or the public IP changed hands (not a mark or a cleanup).
        """
        started = time.monotonic()
        chains = {"private_ms": partial(self._routes, seen.network, plan)}
        if public.set_target is not None:
            chains["public_ms"] = partial(self._retarget, public.set_target, plan.target)
        run_concurrently(chains, self.report)
        self.report.step("apply", started)
        new_holder = plan.insert is not None and seen.view.holders() != (
            instance_path(plan.target),
        )
        return new_holder or public.set_target is not None

    def _routes(self, network: str, plan: RoutePlan) -> None:
        """Make before break: the new route, then (in parallel) the deletion of older ones."""
        if plan.insert is not None:
            started = time.monotonic()
            self._insert(network, plan.insert)
            self.report.step("insert_route", started)
            self.report.actions.append(f"insert_route:{plan.insert.holder.name}")
        deletes = {f"delete:{own.route.name}": partial(self._delete, own) for own in plan.delete}
        run_concurrently(deletes, None)
        if plan.rebase is not None:
            copy, low = plan.rebase
            self._insert(network, copy)
            self._delete(low)
            self.report.actions.append(f"rebase_route:{copy.holder.name}")

    def _insert(self, network: str, route: NewRoute) -> None:
        mirror = self.mirror
        rid = request_id(self.key, "routes.insert", route.name)
        try:
            op = self.gateway.insert_route(
                mirror.project, network, mirror.vip, route, rid, self.deadline
            )
            self.gateway.wait(op, self.deadline)
        except AlreadyExists:
            self._await_route(route.name)  # a concurrent duplicate inserts the same route
        except OperationFailed as err:
            if err.code != "RESOURCE_ALREADY_EXISTS":
                raise
        except RequestRefused as err:
            if "destRange" not in str(err):
                raise
            raise RequestRefused(
                f"mirrors.{mirror.name}.private_vip: {mirror.vip} cannot be routed in {network}: "
                f"{err}; in route mode the VIP must lie outside every subnet range"
            ) from err

    def _await_route(self, name: str) -> None:
        """Wait until a route whose insert someone else started exists."""
        while not self.gateway.route_exists(self.mirror.project, name, self.deadline):
            if time.monotonic() + EXISTS_POLL_S >= self.deadline:
                raise OperationTimeout(f"route {name}: inserted elsewhere, still not there")
            time.sleep(EXISTS_POLL_S)

    def _delete(self, own: OwnRoute) -> None:
        rid = request_id(self.key, "routes.delete", own.route.name)
        try:
            op = self.gateway.delete_route(self.mirror.project, own.route.name, rid, self.deadline)
            if op is not None:
                self.gateway.wait(op, self.deadline)
        except OperationFailed as err:
            if err.code != "RESOURCE_NOT_FOUND":
                raise
        hop = own.holder.name if own.holder else own.route.next_hop
        self.report.actions.append(f"delete_route:{hop}")

    def _retarget(self, target_path: str, member: InstanceRef) -> None:
        note = f"VIP {self.mirror.vip} is routed to {member.name}"
        retarget(self.gateway, self.mirror, target_path, self.key, self.deadline, note)
        self.report.actions.append(f"retarget_forwarding_rule:{member.name}")


def _as_member(ref: InstanceRef, hop: HopState | MirrorVipError) -> NicState | Unreadable:
    """The new primary's VM as the safeguards see every member: status, IP, live id."""
    if isinstance(hop, MirrorVipError):
        return Unreadable(ref, str(hop), hop)
    return NicState(
        ref, "", (), (), hop.status, network_ip=hop.network_ip, instance_id=hop.instance_id
    )


def _stamp(guard: Guard | None, view: RouteView, goal: InstanceRef) -> Ledger | None:
    """The ledger a route recording the event carries; None without a guard (carried on)."""
    if guard is None:
        return None
    return guard.ledger_after(view.ledger(), moving=view.holders() != (instance_path(goal),))


def _stakes(mirror: MirrorConfig, seen: _Seen, plan: RoutePlan, public: ForwardingPlan) -> Stakes:
    """The round as the guard judges it: the VIP changes hands only if a route is inserted."""
    holders = tuple(
        ref
        for hop in seen.view.holders()
        if (ref := instance_of(hop)) is not None and ref in mirror.members
    )
    taking = tuple(ref for ref in holders if ref != plan.target) if plan.insert else ()
    ledger = seen.view.ledger()
    changes = plan.changes or public.set_target is not None
    return Stakes(seen.members, holders, taking, changes, ledger.moves, dict(ledger.tokens))


def _raise_public_problem(
    mirror: MirrorConfig, target: InstanceRef, rule: RuleRead, public: ForwardingPlan
) -> None:
    """Once the routes are settled, say why the public IP did not follow, if it did not."""
    problem = rule_problem(rule, public, f"VIP {mirror.vip} is routed to {target.name}")
    if problem is not None:
        raise problem


def _check_hop(hop: HopState | MirrorVipError, report: MoveReport) -> None:
    """The new primary must be running; without canIpForward it will drop the VIP's packets."""
    if isinstance(hop, MirrorVipError):
        raise hop
    if hop.status != "RUNNING":
        raise EventRejected(
            "target_not_running",
            f"{hop.instance} is {hop.status}; a VM that is not running cannot be primary",
        )
    if not hop.can_ip_forward:
        report.notes.append(
            f"{hop.instance.name} has canIpForward=false: the route sends it the VIP's packets "
            "but GCE drops them (recreate the VM with --can-ip-forward)"
        )


def _previous_holder(view: RouteView, goal: InstanceRef) -> str | None:
    """The member the VIP is routed to now, if it is one member other than `goal`."""
    holders = view.holders()
    ref = instance_of(holders[0]) if len(holders) == 1 else None
    return str(ref) if ref is not None and ref != goal else None


def _stale_rejection(event: Mark, newest: Mark | None, *, heartbeat: bool) -> EventRejected:
    holder = newest.holder if newest is not None else event.holder
    newest_at = _ms_text(newest.time_ms) if newest is not None else "?"
    if heartbeat:
        return EventRejected(
            "stale_heartbeat",
            f"heartbeat from {event.holder}, but the last applied event ({newest_at}) made "
            f"{holder} primary; a heartbeat never takes the VIP from it",
        )
    return EventRejected(
        "stale_event",
        f"event for {event.holder} published at {_ms_text(event.time_ms)} is older than the last "
        f"applied event ({newest_at}), which made {holder} primary",
    )


def _ms_text(time_ms: int) -> str:
    return format_rfc3339(datetime.fromtimestamp(time_ms / 1000, UTC))
