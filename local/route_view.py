"""Route mode on the local stack: who receives the VIP, and when a move's operations applied.

Read the way the rest of `local/` reads alias mode: the holder through the Compute API itself
(google-cloud-compute against the emulator), the milestones from the emulator's own record of
requests and operations, on this process's monotonic clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.rfc3339 import rfc3339_to_epoch
from local.mirrors import MirrorLayout

if TYPE_CHECKING:
    from local.stack import Holder
    from local.timeline import Published, Recorded, TimelineEntry


def route_holder(compute_url: str, layout: MirrorLayout) -> Holder:
    """The members the best routes for the VIP point at, and the forwarding rule's member."""
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    from google.cloud import compute_v1  # noqa: PLC0415

    from local.stack import Holder  # noqa: PLC0415

    kwargs: dict[str, Any] = {
        "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
        "client_options": {"api_endpoint": compute_url},
        "transport": "rest",
    }
    with compute_v1.RoutesClient(**kwargs) as routes:
        query = {"project": layout.project, "filter": f'destRange = "{layout.vip}"'}
        found = list(routes.list(request=query))
    best = min((r.priority for r in found), default=None)
    vip_on = sorted({r.next_hop_instance.rsplit("/", 1)[-1] for r in found if r.priority == best})
    public_on: tuple[str, ...] = ()
    if layout.public:
        with compute_v1.ForwardingRulesClient(**kwargs) as rules:
            rule = rules.get(
                project=layout.project, region=layout.region, forwarding_rule=layout.public[0]
            )
        target = rule.target.rsplit("/", 1)[-1]
        public_on = tuple(m.name for m in layout.members if m.target_instance == target)
    return Holder(tuple(vip_on), public_on, "FORWARDING_RULE" if layout.public else None, public_on)


def route_milestones(stack: Recorded, published: Published) -> dict[str, float]:
    """`received` (the function's first routes.list), `route_inserted` (the route to the new
    primary applied), `old_routes_deleted`, `rule_retargeted` (operations DONE)."""
    hops: dict[str, str] = {}
    found: dict[str, float] = {}
    for request in stack.compute.requests():
        if request.time < published.started:
            continue
        if request.method_id == "compute.routes.list":
            found.setdefault("received", request.time)
        if request.method_id == "compute.routes.insert" and isinstance(request.body, dict):
            hops[str(request.body.get("name"))] = str(request.body.get("nextHopInstance", ""))
    offset = published.wall_started - published.started
    for op in stack.compute.operations():
        if not op.get("endTime") or op.get("error"):
            continue
        ended = rfc3339_to_epoch(op["endTime"]) - offset
        if ended < published.started:
            continue
        name = str(op.get("targetLink", "")).rsplit("/", 1)[-1]
        kind = op["operationType"]
        if kind == "insert" and hops.get(name, "").endswith(f"/instances/{published.instance}"):
            found["route_inserted"] = min(found.get("route_inserted", ended), ended)
        elif kind == "delete" and "/global/routes/" in str(op.get("targetLink")):
            found["old_routes_deleted"] = max(found.get("old_routes_deleted", 0.0), ended)
        elif kind == "SetTarget":
            found["rule_retargeted"] = ended
    return found


def route_timeline(stack: Recorded, published: Published) -> list[TimelineEntry]:
    """The route-mode requests and milestones after a publish (the timeline's middle)."""
    from local.timeline import TimelineEntry  # noqa: PLC0415

    layout = stack.mirrors[published.mirror]
    entries = []
    for request in stack.compute.requests():
        if request.time < published.started or request.method_id not in {
            "compute.routes.insert",
            "compute.routes.delete",
            "compute.forwardingRules.setTarget",
        }:
            continue
        what = request.method_id.removeprefix("compute.")
        if isinstance(request.body, dict) and "priority" in request.body:
            hop = str(request.body.get("nextHopInstance", "")).rsplit("/", 1)[-1]
            what += f" (to {hop}, priority {request.body['priority']})"
        entries.append(TimelineEntry(request.time - published.started, f"  request: {what}"))
    labels = {
        "received": "function received the event (first routes.list)",
        "route_inserted": f"route {layout.vip} -> {published.instance} applied: the VIP has "
        "moved (CRITICAL PATH: one global operation)",
        "old_routes_deleted": "older routes deleted (off the critical path)",
        "rule_retargeted": f"forwarding rule now targets {published.instance} (regional op)",
    }
    marks = route_milestones(stack, published)
    entries += [
        TimelineEntry(marks[key] - published.started, label)
        for key, label in labels.items()
        if key in marks
    ]
    return entries
