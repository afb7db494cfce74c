"""Move one mirror's VIP (and static public IP) to its new primary: read, plan, apply, verify.

The private VIP and the public IP move concurrently, each as a short chain of operations:

    private:  remove VIP from every other holder (in parallel) -> add VIP to the new primary
    public:   release the static IP + drop the new primary's ephemeral IP
              -> attach the static IP + give the old holder an ephemeral IP back
    mark:     the event's time and member, as a label on every member

Each NIC write is read-modify-write with the NIC's fingerprint; a 412 re-reads and retries, so
an alias added by someone else in the meantime is kept. When nothing needs to change, nothing
is written: a duplicate delivery costs only reads. After the writes, the state is read back and
checked against the plan.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from .compute import request_id
from .config import InstanceRef, MirrorConfig
from .errors import (
    AddressInUse,
    EventRejected,
    FingerprintRace,
    MirrorVipError,
    NotConverged,
    PublicIpRefused,
    PublicIpUnavailable,
    public_ip_failure,
)
from .event import format_rfc3339
from .forwarding import RuleRead, plan_rule, rule_problem
from .move_run import (
    MAX_FINGERPRINT_ATTEMPTS,
    MoveReport,
    MoveRun,
    run_concurrently,
    unreadable_error,
    wait_for,
)
from .movers import GatewayMover, MoveRequest
from .plan import (
    AddressState,
    Mark,
    MarkDecision,
    MovePlan,
    NicState,
    Unreadable,
    aliases_with,
    aliases_without,
    decide_mark,
    holds_vip,
    mark_label,
    mark_value,
    newest_mark,
    parse_mark,
    plan_move,
    superseded_by,
)
from .public_chain import PublicChain
from .reads import read_members
from .route_plan import ForwardingPlan, ForwardingRuleState
from .safeguards import Guard

MAX_ROUNDS = 3


class Mover(GatewayMover):
    """Moves an alias-mode mirror's VIP through a `ComputeGateway`: a `movers.VipMover`."""

    def move(
        self, request: MoveRequest, report: MoveReport
    ) -> Literal["moved", "already_in_place"]:
        """Alias mode's `VipMover.move`: off every other NIC, then onto the target's."""
        mirror, heartbeat = request.mirror, request.heartbeat
        deadline = time.monotonic() + self.operation_timeout_s
        time_ms = request.event_time_ms
        event = Mark(time_ms, request.target) if time_ms is not None else None
        goal = _Goal(mark_label(mirror.name), request.target, event, heartbeat)
        moved = False
        for _ in range(MAX_ROUNDS):
            result = self._round(mirror, goal, request.event_key, report, deadline, request.guard)
            goal, moved = result.goal, moved or result.changed
            if not result.settled:
                continue
            if goal.stale is not None and not moved:
                raise EventRejected(
                    "stale_heartbeat" if heartbeat else "stale_event",
                    _stale_message(goal.stale, result.newest, heartbeat=heartbeat),
                )
            _raise_public_problem(mirror, result.plan, result.seen, report)
            return "moved" if moved else "already_in_place"
        raise NotConverged(
            f"{mirror.name}: not converged after {MAX_ROUNDS} rounds: " + "; ".join(result.problems)
        )

    def _round(
        self,
        mirror: MirrorConfig,
        goal: _Goal,
        event_key: str,
        report: MoveReport,
        deadline: float,
        guard: Guard | None,
    ) -> _Round:
        """Read, decide, and if anything must change, write and read back once."""
        seen = self._read(mirror, deadline, report)
        horizon = guard.mark_horizon_ms if guard else None
        newest = newest_mark(seen.nics, goal.label, horizon)
        decision = decide_mark(goal.event, newest, goal.target, heartbeat=goal.heartbeat)
        if decision.stale:
            report.actions.append(f"superseded_by:{decision.target.name}")
        goal = goal.decided(decision)
        _check_target(seen.nics[goal.target])
        plan = self._plan(mirror, goal.target, seen, deadline)
        rule = plan_rule(mirror, goal.target, seen.rule)
        if report.from_instance is None and plan.previous_holder:
            report.from_instance = str(plan.previous_holder)
        if guard is not None:
            guard.check(goal.target, plan, seen.nics)
        changes = plan.changes or rule.set_target is not None
        if not changes and not decision.record:
            return _Round(goal, plan, seen, newest, settled=True, changed=False)
        mark = goal.event if decision.record else None
        extra = partial(guard.labels, plan=plan) if guard else None
        self._apply(mirror, plan, rule, seen, mark, event_key, report, deadline, extra)
        started = time.monotonic()
        after = self._read_back(mirror, seen.nics, deadline)
        report.step("verify", started)
        successor = superseded_by(goal.event, goal.target, newest_mark(after, goal.label, horizon))
        if successor is not None:
            # A newer event was recorded while we moved: converge on its member, as its own
            # handler does, so that whichever finishes last leaves the VIP there.
            report.actions.append(f"superseded_by:{successor.holder.name}")
            goal = dataclasses.replace(goal, target=successor.holder, event=None)
            return _Round(goal, plan, seen, newest, settled=False, changed=changes)
        # Someone may have changed the NICs while we wrote: then read again and plan again.
        problems = _divergences(mirror, plan, seen.nics, after)
        return _Round(goal, plan, seen, newest, not problems, changes, tuple(problems))

    def _apply(
        self,
        mirror: MirrorConfig,
        plan: MovePlan,
        rule: ForwardingPlan,
        seen: _Seen,
        mark: Mark | None,
        event_key: str,
        report: MoveReport,
        deadline: float,
        extra_labels: Callable[[InstanceRef], Mapping[str, str]] | None = None,
    ) -> None:
        """Run the private chain, the public chain and the mark writes concurrently.

        The public chain is the access-config dance for a reserved address, or one regional
        `setTarget` for a forwarding rule (`rule`).
        """
        started = time.monotonic()
        run = MoveRun(self.gateway, mirror, plan, seen.nics, event_key, report, deadline)
        private, public = _PrivateChain(run), PublicChain(run)
        chains = {"private_ms": private.move_private, "public_ms": public.move_public}
        if rule.set_target is not None:
            chains["public_ms"] = partial(public.retarget_rule, rule.set_target)
        if mark is not None:
            label = mark_label(mirror.name)
            chains["mark_ms"] = partial(private.record_marks, label, mark, extra_labels)
        run_concurrently(chains, report)
        report.step("apply", started)

    def _read(self, mirror: MirrorConfig, deadline: float, report: MoveReport) -> _Seen:
        """Every member's NIC and the public IP's resource, all at once (`reads`)."""
        started = time.monotonic()
        read = read_members(self.gateway, mirror, deadline)
        report.step("read", started)
        for public in (read.rule, read.address):
            if isinstance(public, AddressState | ForwardingRuleState):
                report.public_ip = public.ip
        if isinstance(read.address, AddressState) or read.address is None:
            return _Seen(read.nics, read.address, None, rule=read.rule)
        return _Seen(read.nics, None, read.address, rule=read.rule)

    def _plan(
        self, mirror: MirrorConfig, target: InstanceRef, seen: _Seen, deadline: float
    ) -> MovePlan:
        """The plan for `target`, after asking whether its own external IP is a reserved one."""
        reserved = None
        nic = seen.nics[target]
        address = seen.address
        if address is not None and isinstance(nic, NicState):
            own = [c.nat_ip for c in nic.access_configs if c.nat_ip]
            if own and address.ip not in own:
                try:
                    reserved = self.gateway.reserved_address_named(
                        mirror.project, target.region, own[0], deadline
                    )
                except MirrorVipError as err:
                    # Not knowing whether it is reserved, keep it: the public side waits.
                    seen.public_errors.append(err)
                    address = None
        return plan_move(mirror, target, seen.nics, address, reserved)

    def _read_back(
        self,
        mirror: MirrorConfig,
        before: Mapping[InstanceRef, NicState | Unreadable],
        deadline: float,
    ) -> dict[InstanceRef, NicState | Unreadable]:
        """Read again every member that was readable before the move."""
        readable = [ref for ref, nic in before.items() if isinstance(nic, NicState)]
        with ThreadPoolExecutor(max_workers=len(readable)) as pool:
            reads = [
                pool.submit(self.gateway.read_nic, ref, mirror.network_interface, deadline)
                for ref in readable
            ]
            return {ref: future.result() for ref, future in zip(readable, reads, strict=True)}


@dataclass(frozen=True)
class _Goal:
    """Where the VIP must go, for which event, as the rounds of one move learn more."""

    label: str
    target: InstanceRef
    event: Mark | None
    heartbeat: bool
    stale: Mark | None = None
    """The event, once it turned out older than the newest mark (it then moves nothing)."""

    def decided(self, decision: MarkDecision) -> _Goal:
        stale = self.event if decision.stale else self.stale
        return dataclasses.replace(self, target=decision.target, event=decision.event, stale=stale)


@dataclass(frozen=True)
class _Round:
    """What one round did and whether the state is now settled."""

    goal: _Goal
    plan: MovePlan
    seen: _Seen
    newest: Mark | None
    settled: bool
    changed: bool
    problems: tuple[str, ...] = ()


@dataclass
class _Seen:
    """One round's reads: every member's NIC, and the static address or why it is missing."""

    nics: dict[InstanceRef, NicState | Unreadable]
    address: AddressState | None
    address_error: MirrorVipError | None
    public_errors: list[MirrorVipError] = field(default_factory=list)
    rule: RuleRead = None
    """The forwarding rule holding the public IP, when the mirror's public IP is one."""


def _raise_public_problem(
    mirror: MirrorConfig, plan: MovePlan, seen: _Seen, report: MoveReport
) -> None:
    """After the private VIP is settled, say why the static IP did not follow, if it did not."""
    note = f"VIP {mirror.vip} is on {plan.target.name}"
    rule = rule_problem(seen.rule, plan_rule(mirror, plan.target, seen.rule), note)
    if rule is not None:
        raise rule
    if mirror.public_ip is None:
        return
    problems = [e for e in (seen.address_error, *seen.public_errors) if e is not None]
    if problems:
        raise public_ip_failure(problems[0], note)
    blocked = plan.public.blocked if plan.public else None
    if blocked is not None:
        report.actions.append("public_ip_blocked")
        cause: MirrorVipError = (
            PublicIpUnavailable(blocked.reason)
            if blocked.retryable
            else PublicIpRefused(blocked.reason)
        )
        raise public_ip_failure(cause, note)


def _check_target(nic: NicState | Unreadable) -> None:
    if isinstance(nic, Unreadable):
        raise unreadable_error(nic)
    if nic.status != "RUNNING":
        raise EventRejected(
            "target_not_running",
            f"{nic.instance} is {nic.status}; a VM that is not running cannot be primary",
        )


def _stale_message(event: Mark, newest: Mark | None, *, heartbeat: bool) -> str:
    assert newest is not None
    if heartbeat:
        return (
            f"heartbeat from {event.holder}, but the last applied event "
            f"({_ms_to_text(newest.time_ms)}) made {newest.holder} primary; a heartbeat never "
            "takes the VIP from it"
        )
    return (
        f"event for {event.holder} published at {_ms_to_text(event.time_ms)} is older than the "
        f"last applied event ({_ms_to_text(newest.time_ms)}), which made {newest.holder} primary"
    )


def _ms_to_text(time_ms: int) -> str:
    return format_rfc3339(datetime.fromtimestamp(time_ms / 1000, UTC))


def _divergences(
    mirror: MirrorConfig,
    plan: MovePlan,
    before: Mapping[InstanceRef, NicState | Unreadable],
    after: Mapping[InstanceRef, NicState | Unreadable],
) -> list[str]:
    """How the read-back differs from the plan: holders of the VIP and public IP, lost aliases."""
    problems = []
    for ref, now in after.items():
        was = before[ref]
        if isinstance(was, NicState) and isinstance(now, NicState):
            problems.extend(_divergence(mirror, plan, was, now))
    return problems


def _divergence(mirror: MirrorConfig, plan: MovePlan, was: NicState, now: NicState) -> list[str]:
    """How one NIC, read back after the move, differs from the plan."""
    ref = now.instance
    should_hold = ref == plan.target
    problems = []
    if holds_vip(now, mirror.vip) != should_hold:
        problems.append(f"{ref} {'lacks' if should_hold else 'still holds'} the VIP")
    lost = set(aliases_without(was, mirror.vip)) - set(aliases_without(now, mirror.vip))
    if lost:
        problems.append(f"{ref} lost alias(es) {sorted(a.ip_cidr_range for a in lost)}")
    if plan.public is not None and plan.public.blocked is None:
        has_ip = any(c.nat_ip == plan.public.address for c in now.access_configs)
        if has_ip != should_hold:
            problems.append(
                f"{ref} {'lacks' if should_hold else 'still has'} {plan.public.address}"
            )
    return problems


class _PrivateChain:
    """The private VIP's chain and the marks of one `MoveRun`."""

    def __init__(self, run: MoveRun) -> None:
        self.run = run

    # -- private VIP --------------------------------------------------------------------------

    def move_private(self) -> None:
        """Remove the VIP from every other holder, then add it to the target."""
        plan = self.run.plan
        try:
            removals = {
                f"remove:{ref.name}": partial(self._set_vip, self.run.nic(ref), False)
                for ref in plan.remove_from
            }
            run_concurrently(removals, None)
            self.run.report.actions.extend(f"remove_alias:{ref.name}" for ref in plan.remove_from)
            if plan.add_to_target:
                self._add_to_target()
                self.run.report.actions.append(f"add_alias:{plan.target.name}")
        finally:
            for sent in self.run.alias_sent.values():
                sent.set()

    def _add_to_target(self) -> None:
        target = self.run.plan.target
        nic = self.run.nic(target)
        wait_for(self.run.target_cleared, self.run.deadline, f"{target}: ephemeral IP removal")
        if self.run.plan.public and self.run.plan.public.clear_target:
            # Dropping the ephemeral IP changed the fingerprint: read it rather than earn a 412.
            nic = self.run.gateway.read_nic(
                target, self.run.mirror.network_interface, self.run.deadline
            )
        try:
            self._set_vip(nic, True)
        except AddressInUse as err:
            if self.run.plan.unreadable:
                names = ", ".join(str(u.instance) for u in self.run.plan.unreadable)
                raise AddressInUse(
                    f"{err}; unreadable member(s) {names} may still hold the VIP"
                ) from err
            raise AddressInUse(
                f"{err}; no readable member holds it: a resource outside mirror "
                f"{self.run.mirror.name} does"
            ) from err

    def _set_vip(self, nic: NicState, present: bool) -> None:
        """Add or remove the VIP on one NIC, keeping every other alias.

        A stale fingerprint, refused on the request (412) or when the operation applies
        (`CONDITION_NOT_MET`), means the NIC changed since it was read: read it again and redo
        the change from the fresh alias list.
        """
        mirror, gateway = self.run.mirror, self.run.gateway
        step = "add_alias" if present else "remove_alias"
        sent = self.run.alias_sent[nic.instance]
        try:
            for _ in range(MAX_FINGERPRINT_ATTEMPTS):
                if present:
                    aliases = aliases_with(nic, mirror.vip, mirror.subnetwork_range_name)
                else:
                    aliases = aliases_without(nic, mirror.vip)
                if aliases == nic.alias_ranges:
                    return
                rid = request_id(self.run.key, str(nic.instance), step, nic.fingerprint)
                try:
                    op = gateway.set_aliases(
                        nic, mirror.network_interface, aliases, rid, self.run.deadline
                    )
                    sent.set()
                    gateway.wait(op, self.run.deadline)
                    return
                except FingerprintRace:
                    pass  # refused on the request (412) or when it applied: read again
                nic = gateway.read_nic(nic.instance, mirror.network_interface, self.run.deadline)
        finally:
            sent.set()
        raise FingerprintRace(f"{nic.instance}: NIC changed on {MAX_FINGERPRINT_ATTEMPTS} tries")

    # -- high-water mark ----------------------------------------------------------------------

    def record_marks(
        self,
        label: str,
        mark: Mark,
        extra_labels: Callable[[InstanceRef], Mapping[str, str]] | None = None,
    ) -> None:
        """Record the event as the mirror's mark on every readable member.

        The mark on the new primary must be written (it fails the move otherwise); the copies
        on the other members make the mark survive a rewrite of the holder's labels, and are
        best effort (the old primary's zone may be down): a copy not written is reported.
        `extra_labels` gives the labels written with it (the safeguards' history and tokens).
        """
        members = tuple(self.run.nics)
        tasks: dict[str, Callable[[], None]] = {}
        for ref, nic in self.run.nics.items():
            if isinstance(nic, NicState):
                extra = dict(extra_labels(ref)) if extra_labels else {}
                write = partial(self._write_mark, nic, label, mark, members, extra)
                tasks[ref.name] = (
                    write if ref == self.run.plan.target else partial(self.run.tolerate, write, ref)
                )
        run_concurrently(tasks, None)

    def _write_mark(
        self,
        nic: NicState,
        label: str,
        mark: Mark,
        members: tuple[InstanceRef, ...],
        extra: Mapping[str, str],
    ) -> None:
        """setLabels replaces the whole map: keep the instance's other labels; 412 re-reads."""
        for _ in range(MAX_FINGERPRINT_ATTEMPTS):
            current = parse_mark(nic.labels.get(label, ""), nic.instance, members)
            written = all(nic.labels.get(key) == value for key, value in extra.items())
            if current is not None and (current > mark or (current == mark and written)):
                return
            labels = {**nic.labels, **extra, label: mark_value(mark)}
            rid = request_id(self.run.key, str(nic.instance), "setLabels", nic.label_fingerprint)
            try:
                op = self.run.gateway.set_labels(nic, labels, rid, self.run.deadline)
                self.run.gateway.wait(op, self.run.deadline)
            except FingerprintRace:
                # Another handler wrote the labels first: keep its mark if it is newer.
                nic = self.run.gateway.read_nic(
                    nic.instance, self.run.mirror.network_interface, self.run.deadline
                )
                continue
            self.run.report.actions.append(f"record_mark:{nic.instance.name}")
            return
        raise FingerprintRace(f"{nic.instance}: labels changed on every try")
