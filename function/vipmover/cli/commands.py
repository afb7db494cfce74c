"""`status`, `plan` and `move`: where the VIP is, what a failover would write, do it by hand.

Both modes: the holdings come from the mode's reader, the plan from the mode's own planner,
the move from the mover `handler.mover_for` picks, as the function does.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import InstanceRef, MirrorConfig
from ..errors import MirrorVipError
from ..handler import mover_for, run_recorded
from ..move_run import MoveReport
from ..movers import MoveRequest
from ..outcome import Outcome, log_outcome
from ..plan import MovePlan, NicState, Unreadable, plan_move
from .holdings import Holdings
from .readers import read_holdings
from .route_holdings import route_lines
from .route_writes import route_plan_parts
from .session import EXIT_API, EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, READ_TIMEOUT_S, Session
from .writes import PlanParts, critical_path, planned_writes


@dataclass
class MirrorResult:
    """One mirror's part of a subcommand's answer: its exit code, JSON and text."""

    exit_code: int
    document: dict[str, Any]
    lines: list[str] = field(default_factory=list)


def unreachable(mirror: MirrorConfig, holdings: Holdings) -> MirrorResult:
    errors = holdings.read_errors
    return MirrorResult(
        EXIT_API,
        {"mirror": mirror.name, "error": "Compute API unreachable or denied", "details": errors},
        [f"{mirror.name}: Compute API unreachable or denied: {'; '.join(errors)}"],
    )


# -- status -----------------------------------------------------------------------------------


def status(session: Session, mirror: MirrorConfig) -> MirrorResult:
    """Who holds the VIP and the public IP, the mark, the members, every drift."""
    holdings = read_holdings(session.gateway, mirror, time.monotonic() + READ_TIMEOUT_S)
    if holdings.unreachable_api:
        return unreachable(mirror, holdings)
    code = EXIT_OK if holdings.consistent else EXIT_DEGRADED
    return MirrorResult(code, holdings.document(), status_lines(holdings))


def status_lines(h: Holdings) -> list[str]:
    """The text form of `status` for one mirror."""
    state = "consistent" if h.consistent else f"DRIFT ({len(h.drifts)})"
    lines = [f"{h.mirror.name} ({h.mode} mode): {state}"]
    lines.append(f"  VIP {h.mirror.vip:<18} on {_names(h.vip_holders)}")
    if h.mirror.public_ip is not None:
        ip = h.public_ip or "?"
        lines.append(
            f"  static IP {ip:<12} on {_names(h.public_holders)} "
            f"(address {h.mirror.public_ip.address_name})"
        )
    mark = h.document()["high_water_mark"]
    if mark is None:
        lines.append("  high-water mark      none recorded")
    else:
        lines.append(f"  high-water mark      {mark['time']} made {mark['member']} primary")
    if h.route is not None:
        lines.extend(route_lines(h))
    for drift in h.drifts:
        lines.append(f"  drift: {drift.message}")
    lines.append("  members:")
    for m in h.members:
        held = [
            what for what, yes in (("VIP", m.holds_vip), ("static IP", m.holds_public_ip)) if yes
        ]
        lines.append(
            f"    {m.instance.name:<20} {m.instance.zone:<14} {m.status:<12} "
            f"{', '.join(held) or '-'}"
        )
    return lines


def _names(refs: tuple[InstanceRef, ...]) -> str:
    return ", ".join(ref.name for ref in refs) or "no member"


# -- plan -------------------------------------------------------------------------------------


def target_of(mirror: MirrorConfig, name: str) -> InstanceRef | None:
    """The member called `name` (instance name, or IRIS's `ISC_BACKUP_001` spelling)."""
    wanted = name.lower().replace("_", "-")
    return next((m for m in mirror.members if m.name == wanted), None)


def compute_plan(session: Session, holdings: Holdings, target: InstanceRef) -> MovePlan:
    """The function's own plan for a move to `target`, from the holdings just read."""
    mirror, reserved = holdings.mirror, None
    nic = holdings.nics[target]
    address = holdings.address
    if address is not None and isinstance(nic, NicState):
        own = [c.nat_ip for c in nic.access_configs if c.nat_ip and c.nat_ip != address.ip]
        if own:
            reserved = session.gateway.reserved_address_named(
                mirror.project, target.region, own[0], time.monotonic() + READ_TIMEOUT_S
            )
    return plan_move(mirror, target, holdings.nics, address, reserved)


def plan(session: Session, mirror: MirrorConfig, to: str) -> MirrorResult:
    """What a failover to `to` would write now; writes nothing."""
    target = target_of(mirror, to)
    if target is None:
        return _not_a_member(mirror, to)
    holdings = read_holdings(session.gateway, mirror, time.monotonic() + READ_TIMEOUT_S)
    if holdings.unreachable_api:
        return unreachable(mirror, holdings)
    if holdings.route is not None:
        parts = route_plan_parts(holdings, target, int(time.time() * 1000))
    else:
        parts = _alias_plan_parts(session, holdings, target)
    document = plan_document(holdings, target, parts)
    code = EXIT_DEGRADED if parts.refusal else EXIT_OK
    return MirrorResult(code, document, plan_lines(document))


def _alias_plan_parts(session: Session, holdings: Holdings, target: InstanceRef) -> PlanParts:
    """The alias mover's plan (`plan.plan_move`) as writes, or why it would refuse."""
    refusal = _refusal(holdings.nics[target])
    move_plan: MovePlan | None
    try:
        move_plan = compute_plan(session, holdings, target)
    except MirrorVipError as err:
        refusal = refusal or f"cannot plan: {err}"
        move_plan = None
    if move_plan is None:
        return PlanParts([], refusal, False, None)
    writes = planned_writes(holdings.mirror, move_plan, holdings.nics, record_mark=True)
    public = move_plan.public
    blocked = public.blocked.reason if public and public.blocked else None
    return PlanParts(writes, refusal, move_plan.changes, blocked)


def _refusal(nic: NicState | Unreadable) -> str | None:
    """Why the mover would refuse this target (as `mover._check_target` does)."""
    if isinstance(nic, Unreadable):
        return f"cannot read {nic.instance}: {nic.error}"
    if nic.status != "RUNNING":
        return f"{nic.instance.name} is {nic.status}; a VM that is not running cannot be primary"
    return None


def _not_a_member(mirror: MirrorConfig, name: str) -> MirrorResult:
    members = ", ".join(m.name for m in mirror.members)
    message = f"{name!r} is not a member of mirror {mirror.name} (members: {members})"
    return MirrorResult(EXIT_USAGE, {"mirror": mirror.name, "error": message}, [message])


def plan_document(holdings: Holdings, target: InstanceRef, parts: PlanParts) -> dict[str, Any]:
    """The `--json` form of `plan`."""
    path = critical_path(parts.writes)
    return {
        "mirror": holdings.mirror.name,
        "mode": holdings.mode,
        "to": target.name,
        "refused": parts.refusal,
        "changes": parts.changes,
        "vip_holders": [r.name for r in holdings.vip_holders],
        "public_ip_blocked": parts.public_blocked,
        "writes": [w.document() for w in parts.writes],
        "critical_path": path,
        "critical_path_operations": len(path),
    }


def plan_lines(doc: dict[str, Any]) -> list[str]:
    lines = [f"{doc['mirror']}: plan for a move to {doc['to']}"]
    if doc["refused"]:
        lines.append(f"  refused: {doc['refused']}")
    if doc["public_ip_blocked"]:
        lines.append(f"  static IP stays: {doc['public_ip_blocked']}")
    if not doc["writes"]:
        lines.append("  nothing to write: already in place")
    on_path = set(doc["critical_path"])
    for w in doc["writes"]:
        after = f" after {', '.join(f'#{i}' for i in w['after'])}" if w["after"] else ""
        if w["cleanup"]:
            after += " (cleanup)"
        if w["sent_after"]:
            after += f" (sent once {', '.join(f'#{i}' for i in w['sent_after'])} is accepted)"
        star = "*" if w["id"] in on_path else " "
        lines.append(
            f"  {star}#{w['id']} {w['chain']:<7} {w['method'].rsplit('.', 1)[-1]:<22} "
            f"{w['instance']}: {w['what']}{after}"
        )
    if doc["writes"]:
        lines.append(
            f"  critical path (*): {doc['critical_path_operations']} operation(s) in sequence"
        )
    return lines


# -- move -------------------------------------------------------------------------------------


def move(
    session: Session, mirror: MirrorConfig, to: str, confirm: Callable[[list[str]], bool]
) -> MirrorResult:
    """The function's move to `to`, under the operator's credentials, after `confirm`."""
    shown = plan(session, mirror, to)
    if shown.exit_code != EXIT_OK:
        return shown
    if not confirm(shown.lines):
        declined = {"mirror": mirror.name, "to": to, "declined": True}
        return MirrorResult(EXIT_DEGRADED, declined, ["not moved: declined"])
    target = target_of(mirror, to)
    assert target is not None
    outcome = manual_move(session, mirror, target)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the answer (one JSON document)
        log_outcome(outcome)
    ok = outcome.outcome in {"moved", "already_in_place"}
    document: dict[str, Any] = {"mirror": mirror.name, "to": target.name}
    document["outcome"] = outcome.fields()
    return MirrorResult(EXIT_OK if ok else EXIT_DEGRADED, document, [outcome.message()])


def manual_move(session: Session, mirror: MirrorConfig, target: InstanceRef) -> Outcome:
    """`Mover.move` as the function runs it, with now (this host's clock) as the event time."""
    started = time.monotonic()
    gateway = session.gateway.for_event()
    outcome = Outcome(event_id=f"manual-{uuid.uuid4().hex[:12]}", event_type="manual_move")
    outcome.mirror, outcome.vip, outcome.to_instance = mirror.name, mirror.vip, str(target)
    outcome.mode = mirror.mode
    report = MoveReport()
    now_ms = int(time.time() * 1000)

    def work() -> None:
        mover = mover_for(mirror, gateway, session.config.operation_timeout_s)
        outcome.outcome = mover.move(MoveRequest(mirror, target, outcome.event_id, now_ms), report)

    return run_recorded(work, outcome, report, gateway, started)
