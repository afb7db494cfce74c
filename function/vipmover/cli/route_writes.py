"""Route mode's `plan`: the function's own round decision (`route_mover.plan_round`), as writes.

The order is `RouteMover`'s: the route chain (insert the winning route; once it is DONE, delete
mirror-vip's older routes; then a rebase, if due) and the public chain (`forwardingRules.setTarget`)
run concurrently. The VIP has moved when the insert applies: the critical path is that one
operation (or the retarget, also one); the deletes are cleanup.
"""

from __future__ import annotations

from ..config import InstanceRef, MirrorConfig
from ..plan import Mark
from ..route_mover import plan_round
from ..route_plan import ForwardingPlan, RoutePlan
from .holdings import Holdings
from .route_holdings import RouteReads
from .writes import PlanParts, Write, Writes

INSERT_ROUTE = "compute.routes.insert"
DELETE_ROUTE = "compute.routes.delete"
SET_TARGET = "compute.forwardingRules.setTarget"


def route_plan_parts(holdings: Holdings, target: InstanceRef, now_ms: int) -> PlanParts:
    """What `mirror-vip move --to target` would write now (event time: now), or why not."""
    reads = holdings.route
    assert reads is not None
    mirror = holdings.mirror
    refusal = _refusal(reads, target)
    if reads.routes_error is not None:
        return PlanParts([], refusal or f"cannot read routes: {reads.routes_error}", False, None)
    decided = plan_round(mirror, target, Mark(now_ms, target), reads.view, reads.rule)
    routes, public = decided.routes, decided.public
    if routes.blocked is not None:
        refusal = refusal or routes.blocked
    writes = route_writes(mirror, routes, public)
    changes = routes.changes or public.set_target is not None
    return PlanParts(writes, refusal, changes, public.blocked)


def _refusal(reads: RouteReads, target: InstanceRef) -> str | None:
    """Why the mover would refuse this target (as `route_mover._check_hop` does)."""
    hop = reads.hops[target]
    if isinstance(hop, Exception):
        return f"cannot read {target}: {hop}"
    if hop.status != "RUNNING":
        return f"{target.name} is {hop.status}; a VM that is not running cannot be primary"
    return None


def route_writes(mirror: MirrorConfig, plan: RoutePlan, public: ForwardingPlan) -> list[Write]:
    """The writes of one round, each with the writes whose operations it waits for."""
    writes = Writes()
    insert = None
    if plan.insert is not None:
        new = plan.insert
        what = f"route {mirror.vip} -> {new.holder.name}, priority {new.priority} ({new.name})"
        insert = writes.add("private", INSERT_ROUTE, new.holder, what)
    deletes = []
    for own in plan.delete:
        hop = own.holder.name if own.holder else own.route.next_hop
        what = f"delete older route {own.route.name} (priority {own.route.priority}, to {hop})"
        after = (insert,) if insert else ()
        ref = own.holder or plan.target
        deletes.append(writes.add("private", DELETE_ROUTE, ref, what, *after, cleanup=True))
    if plan.rebase is not None:
        copy, low = plan.rebase
        what = f"rebase: copy of {low.route.name} at priority {copy.priority} ({copy.name})"
        rebased = writes.add("private", INSERT_ROUTE, copy.holder, what, *deletes, cleanup=True)
        what = f"rebase: delete the low route {low.route.name} (priority {low.route.priority})"
        writes.add("private", DELETE_ROUTE, copy.holder, what, rebased, cleanup=True)
    if public.set_target is not None:
        what = f"forwarding rule -> {public.set_target.rsplit('/', 1)[-1]}"
        writes.add("public", SET_TARGET, plan.target, what)
    return writes.items
