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
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from .compute import ComputeGateway, request_id
from .config import InstanceRef, MirrorConfig
from .errors import (
    AddressInUse,
    ApiUnavailable,
    Conflict,
    EventRejected,
    FingerprintRace,
    MirrorVipError,
    NotConverged,
    OperationTimeout,
    PublicIpRefused,
    PublicIpUnavailable,
    RequestRefused,
    RetryableError,
    public_ip_failure,
)
from .event import format_rfc3339
from .forwarding import RuleRead, plan_rule, retarget, rule_problem
from .plan import (
    AddressState,
    Mark,
    MarkDecision,
    MovePlan,
    NicState,
    PublicIpPlan,
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
from .reads import read_members
from .route_plan import ForwardingPlan, ForwardingRuleState
from .safeguards import Guard

MAX_FINGERPRINT_ATTEMPTS = 5
MAX_ROUNDS = 3
EPHEMERAL_CONFIG_NAME = "External NAT"
"""The name GCE and gcloud give an instance's default external IP."""


@dataclass
class MoveReport:
    """What the move did, for the outcome log line. Filled in as the move goes."""

    from_instance: str | None = None
    public_ip: str | None = None
    actions: list[str] = field(default_factory=list)
    steps_ms: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Best-effort writes that failed without failing the move, with their errors."""

    def step(self, name: str, started: float) -> None:
        self.steps_ms[name] = round((time.monotonic() - started) * 1000)


class Mover:
    """Moves an alias-mode mirror's VIP through a `ComputeGateway`: a `movers.VipMover`.

    Args:
        gateway: The Compute boundary.
        operation_timeout_s: Deadline for one whole move (reads, writes, waits, verification).
    """

    def __init__(self, gateway: ComputeGateway, operation_timeout_s: float) -> None:
        self.gateway = gateway
        self.operation_timeout_s = operation_timeout_s

    def move(
        self,
        mirror: MirrorConfig,
        target: InstanceRef,
        event_key: str,
        report: MoveReport,
        event_time_ms: int | None = None,
        *,
        heartbeat: bool = False,
        guard: Guard | None = None,
    ) -> Literal["moved", "already_in_place"]:
        """Alias mode's `VipMover.move`: off every other NIC, then onto the target's."""
        deadline = time.monotonic() + self.operation_timeout_s
        event = Mark(event_time_ms, target) if event_time_ms is not None else None
        goal = _Goal(mark_label(mirror.name), target, event, heartbeat)
        moved = False
        for _ in range(MAX_ROUNDS):
            result = self._round(mirror, goal, event_key, report, deadline, guard)
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
        run = _MoveRun(self.gateway, mirror, plan, seen.nics, event_key, report, deadline)
        chains = {"private_ms": run.move_private, "public_ms": run.move_public}
        if rule.set_target is not None:
            chains["public_ms"] = partial(run.retarget_rule, rule.set_target)
        if mark is not None:
            label = mark_label(mirror.name)
            chains["mark_ms"] = partial(run.record_marks, label, mark, extra_labels)
        _run_concurrently(chains, report)
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
        raise _unreadable_error(nic)
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


class _MoveRun:
    """The writes of one move: the private and the public chain, run concurrently.

    Where both chains write to one NIC, their writes are ordered so that no write invalidates
    the fingerprint of another one in flight (if GCE checks it again when an operation applies,
    that would cost a whole extra operation):

        old primary:  remove alias  ->  release static IP   (sent once the PATCH is accepted)
        new primary:  drop ephemeral IP  ->  add alias  ->  attach static IP

    The waits cost almost nothing: each write waited for is in the other chain's first slot.
    """

    def __init__(
        self,
        gateway: ComputeGateway,
        mirror: MirrorConfig,
        plan: MovePlan,
        nics: Mapping[InstanceRef, NicState | Unreadable],
        event_key: str,
        report: MoveReport,
        deadline: float,
    ) -> None:
        self.gateway = gateway
        self.mirror = mirror
        self.plan = plan
        self.nics = nics
        # requestIds are unique per delivery: GCE ties an id to its first operation, failures
        # included, so a redelivery reusing ids would only get the old failure back. Within a
        # delivery a retried call reuses its id; after any change the fingerprint differs.
        self.key = f"{event_key}/{secrets.token_hex(8)}"
        self.report = report
        self.deadline = deadline
        patched = (*plan.remove_from, *((plan.target,) if plan.add_to_target else ()))
        self._alias_sent = {ref: threading.Event() for ref in patched}
        self._target_cleared = threading.Event()
        self._target_dropped = False
        if not (plan.public and plan.public.clear_target and plan.public.blocked is None):
            self._target_cleared.set()

    # -- private VIP --------------------------------------------------------------------------

    def move_private(self) -> None:
        """Remove the VIP from every other holder, then add it to the target."""
        plan = self.plan
        try:
            removals = {
                f"remove:{ref.name}": partial(self._set_vip, self._nic(ref), False)
                for ref in plan.remove_from
            }
            _run_concurrently(removals, None)
            self.report.actions.extend(f"remove_alias:{ref.name}" for ref in plan.remove_from)
            if plan.add_to_target:
                self._add_to_target()
                self.report.actions.append(f"add_alias:{plan.target.name}")
        finally:
            for sent in self._alias_sent.values():
                sent.set()

    def _add_to_target(self) -> None:
        target = self.plan.target
        nic = self._nic(target)
        _wait_for(self._target_cleared, self.deadline, f"{target}: ephemeral IP removal")
        if self.plan.public and self.plan.public.clear_target:
            # Dropping the ephemeral IP changed the fingerprint: read it rather than earn a 412.
            nic = self.gateway.read_nic(target, self.mirror.network_interface, self.deadline)
        try:
            self._set_vip(nic, True)
        except AddressInUse as err:
            if self.plan.unreadable:
                names = ", ".join(str(u.instance) for u in self.plan.unreadable)
                raise AddressInUse(
                    f"{err}; unreadable member(s) {names} may still hold the VIP"
                ) from err
            raise AddressInUse(
                f"{err}; no readable member holds it: a resource outside mirror "
                f"{self.mirror.name} does"
            ) from err

    def _set_vip(self, nic: NicState, present: bool) -> None:
        """Add or remove the VIP on one NIC, keeping every other alias.

        A stale fingerprint, refused on the request (412) or when the operation applies
        (`CONDITION_NOT_MET`), means the NIC changed since it was read: read it again and redo
        the change from the fresh alias list.
        """
        mirror, gateway = self.mirror, self.gateway
        step = "add_alias" if present else "remove_alias"
        sent = self._alias_sent[nic.instance]
        try:
            for _ in range(MAX_FINGERPRINT_ATTEMPTS):
                if present:
                    aliases = aliases_with(nic, mirror.vip, mirror.subnetwork_range_name)
                else:
                    aliases = aliases_without(nic, mirror.vip)
                if aliases == nic.alias_ranges:
                    return
                rid = request_id(self.key, str(nic.instance), step, nic.fingerprint)
                try:
                    op = gateway.set_aliases(
                        nic, mirror.network_interface, aliases, rid, self.deadline
                    )
                    sent.set()
                    gateway.wait(op, self.deadline)
                    return
                except FingerprintRace:
                    pass  # refused on the request (412) or when it applied: read again
                nic = gateway.read_nic(nic.instance, mirror.network_interface, self.deadline)
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
        members = tuple(self.nics)
        tasks: dict[str, Callable[[], None]] = {}
        for ref, nic in self.nics.items():
            if isinstance(nic, NicState):
                extra = dict(extra_labels(ref)) if extra_labels else {}
                write = partial(self._write_mark, nic, label, mark, members, extra)
                tasks[ref.name] = (
                    write if ref == self.plan.target else partial(self._tolerate, write, ref)
                )
        _run_concurrently(tasks, None)

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
            rid = request_id(self.key, str(nic.instance), "setLabels", nic.label_fingerprint)
            try:
                op = self.gateway.set_labels(nic, labels, rid, self.deadline)
                self.gateway.wait(op, self.deadline)
            except FingerprintRace:
                # Another handler wrote the labels first: keep its mark if it is newer.
                nic = self.gateway.read_nic(
                    nic.instance, self.mirror.network_interface, self.deadline
                )
                continue
            self.report.actions.append(f"record_mark:{nic.instance.name}")
            return
        raise FingerprintRace(f"{nic.instance}: labels changed on every try")

    # -- public IP ----------------------------------------------------------------------------

    def retarget_rule(self, target_path: str) -> None:
        """The public IP as a forwarding rule: one regional setTarget, no zone involved."""
        target = self.plan.target
        note = f"VIP {self.mirror.vip} is on {target.name}"
        retarget(self.gateway, self.mirror, target_path, self.key, self.deadline, note)
        self.report.actions.append(f"retarget_forwarding_rule:{target.name}")

    def move_public(self) -> None:
        """Free the static IP and the target's access config slot, then attach the static IP.

        Former holders get an ephemeral IP back alongside the attach. If freeing fails after
        the target's own external IP was dropped, the target gets an ephemeral one back, so
        that no member is left without a way out.
        """
        public, target = self.plan.public, self.plan.target
        if public is None or public.blocked is not None or not public.changes:
            return
        frees: dict[str, Callable[[], None]] = {
            f"release:{ref.name}": partial(self._release, ref, name) for ref, name in public.release
        }
        if public.clear_target:
            frees[f"clear:{target.name}"] = partial(self._clear_target, public.clear_target)
        try:
            _run_concurrently(frees, None)
        except MirrorVipError:
            if self._target_dropped:
                self._tolerate(partial(self._restore_ephemeral, target), target)
            raise
        self.report.actions.extend(_public_free_actions(public, target))
        then: dict[str, Callable[[], None]] = {}
        if public.attach:
            then["attach"] = self._attach
        for ref in public.restore:
            then[f"restore:{ref.name}"] = partial(self._restore_ephemeral, ref)
        _run_concurrently(then, None)

    def _attach(self) -> None:
        public, config, target = self.plan.public, self.mirror.public_ip, self.plan.target
        assert public is not None
        assert config is not None
        self._after_alias_patch(target)
        rid = request_id(self.key, str(target), "addAccessConfig", self._nic(target).fingerprint)
        try:
            op = self.gateway.add_access_config(
                target,
                self.mirror.network_interface,
                config.access_config_name,
                rid,
                self.deadline,
                nat_ip=public.address,
                network_tier=public.network_tier,
            )
            self.gateway.wait(op, self.deadline)
        except Conflict:
            # Another handler attached an access config first: fine if it is ours.
            now = self.gateway.read_nic(target, self.mirror.network_interface, self.deadline)
            if any(c.nat_ip == public.address for c in now.access_configs):
                return
            raise
        self.report.actions.append(f"attach_public_ip:{target.name}")

    def _has_own_external_ip(self, ref: InstanceRef) -> bool:
        now = self.gateway.read_nic(ref, self.mirror.network_interface, self.deadline)
        public = self.plan.public
        return any(c.nat_ip and public and c.nat_ip != public.address for c in now.access_configs)

    def _restore_ephemeral(self, ref: InstanceRef) -> None:
        """Give `ref` an ephemeral external IP: it may need one to reach Google APIs."""
        rid = request_id(self.key, str(ref), "addEphemeralAccessConfig")
        try:
            op = self.gateway.add_access_config(
                ref, self.mirror.network_interface, EPHEMERAL_CONFIG_NAME, rid, self.deadline
            )
            self.gateway.wait(op, self.deadline)
        except Conflict:
            # A concurrent handler of the same event restored it first: fine if it is not ours.
            if self._has_own_external_ip(ref):
                return
            raise
        except MirrorVipError as err:
            # A redelivery would not know that this member had an external IP: a human must.
            raise PublicIpRefused(
                f"{ref.name} lost its external IP and could not get an ephemeral one back: {err}"
            ) from err
        self.report.actions.append(f"restore_ephemeral_ip:{ref.name}")

    def _clear_target(self, name: str) -> None:
        try:
            self._delete_access_config(self.plan.target, name)
            self._target_dropped = True
        finally:
            self._target_cleared.set()

    def _release(self, ref: InstanceRef, name: str) -> None:
        self._after_alias_patch(ref)
        self._delete_access_config(ref, name)

    def _delete_access_config(self, ref: InstanceRef, name: str) -> None:
        rid = request_id(self.key, str(ref), "deleteAccessConfig", name)
        op = self.gateway.delete_access_config(
            ref, self.mirror.network_interface, name, rid, self.deadline
        )
        self.gateway.wait(op, self.deadline)

    def _after_alias_patch(self, ref: InstanceRef) -> None:
        """Hold an access-config write to `ref` until its alias PATCH, if any, is accepted."""
        sent = self._alias_sent.get(ref)
        if sent is not None:
            _wait_for(sent, self.deadline, f"{ref}: alias update")

    def _tolerate(self, task: Callable[[], None], ref: InstanceRef) -> None:
        """Run a best-effort write; its failure becomes a `failed:` action, not the move's."""
        try:
            task()
        except MirrorVipError as err:
            step = getattr(task, "func", task).__name__.strip("_")
            self.report.actions.append(f"failed:{step}:{ref.name}")
            self.report.notes.append(f"{step} on {ref.name}: {err}")

    def _nic(self, ref: InstanceRef) -> NicState:
        nic = self.nics[ref]
        if isinstance(nic, Unreadable):
            raise _unreadable_error(nic)
        return nic


def _wait_for(event: threading.Event, deadline: float, what: str) -> None:
    if not event.wait(max(0.0, deadline - time.monotonic())):
        raise OperationTimeout(f"{what} did not happen before the deadline")


def _public_free_actions(public: PublicIpPlan, target: InstanceRef) -> list[str]:
    actions = [f"release_public_ip:{ref.name}" for ref, _ in public.release]
    if public.clear_target:
        actions.append(f"drop_ephemeral_ip:{target.name}")
    return actions


def _unreadable_error(nic: Unreadable) -> MirrorVipError:
    """The read's own error kind, naming the member: a 404 is permanent, a 503 is not."""
    message = f"cannot read {nic.instance}: {nic.error}"
    if isinstance(nic.cause, ApiUnavailable | RequestRefused | OperationTimeout):
        return type(nic.cause)(message)
    return RetryableError(message)


def _run_concurrently(tasks: Mapping[str, Callable[[], None]], report: MoveReport | None) -> None:
    """Run the tasks in parallel, wait for all of them, then raise the first failure.

    Waiting for every task before raising means no write is left running unobserved. With a
    report, each task's own duration is recorded under its name.

    Raises:
        The first retryable failure if any, else the first failure; with a report, the
        others are kept in its notes.
    """

    def timed(name: str, task: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            task()
        finally:
            if report:
                report.step(name, started)

    if len(tasks) <= 1:
        for name, task in tasks.items():
            timed(name, task)
        return
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(timed, name, task) for name, task in tasks.items()]
        errors = [error for future in futures if (error := future.exception())]
    # A retryable failure wins over a permanent one: the redelivery it asks for finishes the
    # other chains' work too (a mark not written, say), where an acknowledgement would lose it.
    retryable = [error for error in errors if isinstance(error, RetryableError)]
    if retryable or errors:
        chosen = (retryable or errors)[0]
        if report is not None:
            report.notes.extend(
                f"also failed: {type(e).__name__}: {e}" for e in errors if e is not chosen
            )
        raise chosen
