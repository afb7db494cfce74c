"""What happened after a publish call, reconstructed from the emulators' own records.

The Compute emulator records requests and operations on this process's monotonic clock, the one
`LocalStack.publish` times the publisher with, so a move's milestones (which the e2e tests and the
benchmark measure) and the timeline the demo prints are read off them, without trusting the
function's word. These functions read any `Recorded` (a started `LocalStack`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from emulators import JsonDict
from emulators.compute import ComputeEmulator
from emulators.rfc3339 import rfc3339_to_epoch
from local.mirrors import MirrorLayout
from local.route_view import route_milestones, route_timeline


class Recorded(Protocol):
    """What a timeline reads: the Compute emulator's record and the mirrors' layouts."""

    @property
    def compute(self) -> ComputeEmulator: ...

    @property
    def mirrors(self) -> Mapping[str, MirrorLayout]: ...


@dataclass(frozen=True)
class Published:
    """One publisher call: when it started and ended (this process's monotonic clock)."""

    mirror: str
    member: str
    instance: str
    started: float
    returned: float
    ok: bool
    message_id: str | None
    summary: str
    wall_started: float
    """`time.time()` at `started`: converts the emulator's RFC 3339 operation times."""
    event: JsonDict | None = None
    """The v1 event as published (the message data)."""


@dataclass(frozen=True)
class TimelineEntry:
    seconds: float
    """Since the publish call started."""
    what: str


def instance_in_path(path: str) -> str | None:
    """The instance a Compute request path names, if any."""
    parts = path.split("/")
    if "instances" in parts:
        index = parts.index("instances")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


@dataclass(frozen=True)
class OperationView:
    """A mutation's operation on one of a mirror's members, with times on the monotonic clock."""

    kind: str
    instance: str
    inserted: float
    ended: float | None
    error: str | None


def operations_since(stack: Recorded, published: Published, mirror: str) -> list[OperationView]:
    """The mirror's operations inserted after the publish call, times converted to monotonic."""
    names = {m.name for m in stack.mirrors[mirror].members}
    offset = published.wall_started - published.started
    views = []
    for op in stack.compute.operations():
        inserted = rfc3339_to_epoch(op["insertTime"]) - offset
        instance = str(op.get("targetLink", "")).rsplit("/", 1)[-1]
        if inserted < published.started - 0.001 or instance not in names:
            continue
        ended = rfc3339_to_epoch(op["endTime"]) - offset if op.get("endTime") else None
        errors = (op.get("error") or {}).get("errors") or []
        error = errors[0].get("code") if errors else None
        views.append(OperationView(op["operationType"], instance, inserted, ended, error))
    return views


def milestones(stack: Recorded, published: Published) -> dict[str, float]:
    """Key moments of one move, as monotonic times: `received` (the function's first read),
    `alias_removed`, `alias_added`, `public_released`, `public_attached` (operations applied)."""
    layout = stack.mirrors[published.mirror]
    if layout.mode == "route":
        return route_milestones(stack, published)
    names = {m.name for m in layout.members}
    found: dict[str, float] = {}
    reads = [
        r.time
        for r in stack.compute.requests()
        if r.time >= published.started
        and r.method_id == "compute.instances.get"
        and instance_in_path(r.path) in names
    ]
    if reads:
        found["received"] = min(reads)
    for op in operations_since(stack, published, published.mirror):
        if op.ended is None or op.error:
            continue
        to_target = op.instance == published.instance
        key = {
            ("updateNetworkInterface", False): "alias_removed",
            ("updateNetworkInterface", True): "alias_added",
            ("deleteAccessConfig", False): "public_released",
            ("deleteAccessConfig", True): "ephemeral_dropped",
            ("addAccessConfig", True): "public_attached",
        }.get((op.kind, to_target))
        if key is not None:
            found[key] = max(found.get(key, 0.0), op.ended)
    return found


def build_timeline(
    stack: Recorded, published: Published, outcome: Mapping[str, Any] | None
) -> list[TimelineEntry]:
    layout = stack.mirrors[published.mirror]
    old = [m.name for m in layout.members if m.name != published.instance]
    entries = [
        TimelineEntry(0.0, f"publisher called on {published.instance} (notify_become_primary)"),
        TimelineEntry(
            published.returned - published.started,
            f"event published: message {published.message_id}"
            if published.ok
            else f"publish FAILED: {published.summary}",
        ),
    ]
    if layout.mode == "route":
        entries += route_timeline(stack, published)
    names = {m.name for m in layout.members}
    for request in stack.compute.requests():
        if request.time < published.started or instance_in_path(request.path) not in names:
            continue
        if request.method_id == "compute.instances.get":
            continue
        if request.http_method in {"PATCH", "POST"} and "operations" not in request.path:
            instance = instance_in_path(request.path)
            what = request.method_id.rsplit(".", 1)[-1]
            if what == "updateNetworkInterface":
                body = request.body if isinstance(request.body, dict) else {}
                ranges = [a.get("ipCidrRange") for a in body.get("aliasIpRanges", [])]
                what = "add alias" if layout.vip in ranges else "remove alias"
            entries.append(
                TimelineEntry(request.time - published.started, f"  request: {what} on {instance}")
            )
    marks = milestones(stack, published)
    labels = {
        "received": "function received the event (first instances.get)",
        "alias_removed": f"alias {layout.vip} removed from {', '.join(old)} (operation DONE)",
        "alias_added": f"alias {layout.vip} added to {published.instance} (operation DONE)",
        "public_released": f"static IP released by {', '.join(old)} (operation DONE)",
        "ephemeral_dropped": f"ephemeral IP dropped from {published.instance} (operation DONE)",
        "public_attached": f"static IP attached to {published.instance} (operation DONE)",
    }
    for key, label in labels.items():
        if key in marks and layout.mode == "alias":
            entries.append(TimelineEntry(marks[key] - published.started, label))
    if outcome is not None:
        began = marks.get("received", published.returned)
        entries.append(
            TimelineEntry(
                began - published.started + int(outcome.get("duration_ms") or 0) / 1000,
                f"function logged its outcome: {outcome.get('outcome')}, "
                f"{outcome.get('duration_ms')} ms after receiving",
            )
        )
    return sorted(entries, key=lambda e: e.seconds)


def format_timeline(entries: Sequence[TimelineEntry]) -> str:
    return "\n".join(f"  +{entry.seconds:7.3f} s  {entry.what}" for entry in entries)
