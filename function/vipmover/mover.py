"""Move one mirror's VIP (and static public IP) to its new primary: read, plan, apply, verify.

The private VIP and the public IP move concurrently, each as a short chain of operations:

    private:  remove VIP from every other holder (in parallel) -> add VIP to the new primary
    public:   release the static IP + drop the new primary's ephemeral IP -> attach the static IP

Each NIC write is read-modify-write with the NIC's fingerprint; a 412 re-reads and retries, so
an alias added by someone else in the meantime is kept. When nothing needs to change, nothing
is written: a duplicate delivery costs only reads. After the writes, the state is read back and
checked against the plan.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from .compute import ComputeGateway, request_id
from .config import InstanceRef, MirrorConfig
from .errors import (
    Conflict,
    EventRejected,
    FingerprintRace,
    MirrorVipError,
    NotConverged,
    OperationFailed,
    OperationTimeout,
    RetryableError,
)
from .event import format_rfc3339
from .plan import (
    Mark,
    MovePlan,
    NicState,
    PublicIpPlan,
    Unreadable,
    aliases_with,
    aliases_without,
    decide_mark,
    holds_vip,
    mark_label,
    newest_mark,
    plan_move,
    superseded_by,
)

MAX_FINGERPRINT_ATTEMPTS = 5
MAX_ROUNDS = 3


@dataclass
class MoveReport:
    """What the move did, for the outcome log line. Filled in as the move goes."""

    from_instance: str | None = None
    public_ip: str | None = None
    actions: list[str] = field(default_factory=list)
    steps_ms: dict[str, int] = field(default_factory=dict)

    def step(self, name: str, started: float) -> None:
        self.steps_ms[name] = round((time.monotonic() - started) * 1000)


class Mover:
    """Applies plans through a `ComputeGateway`.

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
    ) -> Literal["moved", "already_in_place"]:
        """Make `target` the only holder of the mirror's VIP (and public IP).

        Args:
            mirror: The mirror's configuration.
            target: The new primary, already checked to be a member.
            event_key: Identifies the event (the Pub/Sub message id), for the `requestId`s.
            report: Receives the actions and step timings.
            event_time_ms: When the event was published (Pub/Sub's clock), for the mirror's
                high-water mark; None moves unconditionally and records no mark.
            heartbeat: The event re-asserts the current primary rather than announcing a new
                one: the mark is not advanced for it when its member already holds it.

        Returns:
            `moved`, or `already_in_place` when nothing had to change.

        Raises:
            EventRejected: the event is stale, or the new primary is not running.
            RetryableError: a call, an operation or the final check failed.
            RequestRefused: the API refused a request as invalid.
        """
        deadline = time.monotonic() + self.operation_timeout_s
        label = mark_label(mirror.name)
        event = Mark(event_time_ms, target) if event_time_ms is not None else None
        stale: Mark | None = None
        moved = False
        for _ in range(MAX_ROUNDS):
            started = time.monotonic()
            nics, address = self._read(mirror, deadline)
            report.step("read", started)
            report.public_ip = address
            newest = newest_mark(nics, label)
            decision = decide_mark(event, newest, target, heartbeat=heartbeat)
            if decision.stale:
                stale = event
                report.actions.append(f"superseded_by:{decision.target.name}")
            target, event = decision.target, decision.event
            _check_target(nics[target])
            plan = plan_move(mirror, target, nics, address)
            if report.from_instance is None and plan.previous_holder:
                report.from_instance = str(plan.previous_holder)
            if not plan.changes and not decision.record:
                if moved:
                    return "moved"
                if stale is not None:
                    raise EventRejected("stale_event", _stale_message(stale, newest))
                return "already_in_place"
            started = time.monotonic()
            run = _MoveRun(self.gateway, mirror, plan, nics, event_key, report, deadline)
            chains = {"private_ms": run.move_private, "public_ms": run.move_public}
            if decision.record and event is not None:
                chains["mark_ms"] = partial(run.record_mark, label, event.time_ms)
            _run_concurrently(chains, report)
            report.step("apply", started)
            moved = moved or plan.changes
            started = time.monotonic()
            after = self._read_back(mirror, nics, deadline)
            report.step("verify", started)
            successor = superseded_by(event, target, newest_mark(after, label))
            if successor is not None:
                # A newer event was recorded while we moved: converge on its member, as its own
                # handler does, so that whichever finishes last leaves the VIP there.
                report.actions.append(f"superseded_by:{successor.holder.name}")
                target, event = successor.holder, None
                continue
            if not _divergences(mirror, plan, nics, after):
                return "moved" if moved else "already_in_place"
            # Someone changed the NICs while we wrote: read again and plan again.
        raise NotConverged(
            f"{mirror.name}: not converged after {MAX_ROUNDS} rounds: "
            + "; ".join(_divergences(mirror, plan, nics, after))
        )

    def _read(
        self, mirror: MirrorConfig, deadline: float
    ) -> tuple[dict[InstanceRef, NicState | Unreadable], str | None]:
        """Every member's NIC and the static address, all at once."""

        def read_one(ref: InstanceRef) -> NicState | Unreadable:
            try:
                return self.gateway.read_nic(ref, mirror.network_interface, deadline)
            except MirrorVipError as err:
                return Unreadable(ref, str(err))

        public = mirror.public_ip
        with ThreadPoolExecutor(max_workers=len(mirror.members) + 1) as pool:
            address: Future[str] | None = None
            if public:
                address = pool.submit(
                    self.gateway.address_ip,
                    mirror.project,
                    public.region,
                    public.address_name,
                    deadline,
                )
            reads = {ref: pool.submit(read_one, ref) for ref in mirror.members}
            nics = {ref: future.result() for ref, future in reads.items()}
            return nics, address.result() if address else None

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


def _check_target(nic: NicState | Unreadable) -> None:
    if isinstance(nic, Unreadable):
        raise _unreadable_error(nic)
    if nic.status != "RUNNING":
        raise EventRejected(
            "target_not_running",
            f"{nic.instance} is {nic.status}; a VM that is not running cannot be primary",
        )


def _stale_message(event: Mark, newest: Mark | None) -> str:
    assert newest is not None
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
    if plan.public is not None:
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
        if not (plan.public and plan.public.clear_target):
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
        except OperationFailed as err:
            if self.plan.unreadable and err.code == "IP_IN_USE_BY_ANOTHER_RESOURCE":
                names = ", ".join(str(u.instance) for u in self.plan.unreadable)
                raise OperationFailed(
                    err.code, f"{err}; unreadable member(s) {names} may still hold the VIP"
                ) from err
            raise

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
                    pass
                except OperationFailed as err:
                    if err.code != "CONDITION_NOT_MET":
                        raise
                nic = gateway.read_nic(nic.instance, mirror.network_interface, self.deadline)
        finally:
            sent.set()
        raise FingerprintRace(f"{nic.instance}: NIC changed on {MAX_FINGERPRINT_ATTEMPTS} tries")

    # -- high-water mark ----------------------------------------------------------------------

    def record_mark(self, label: str, time_ms: int) -> None:
        """Label the new primary with the event's time: the mirror's newest applied event.

        setLabels replaces the whole map, so the instance's other labels are read and kept; a
        412 means they changed, so read again. Labels have their own fingerprint, so this runs
        alongside the NIC writes without disturbing them.
        """
        target = self._nic(self.plan.target)
        for _ in range(MAX_FINGERPRINT_ATTEMPTS):
            current = target.labels.get(label, "")
            if current.isdigit() and int(current) >= time_ms:
                return
            labels = {**target.labels, label: str(time_ms)}
            rid = request_id(self.key, str(target.instance), "setLabels", target.label_fingerprint)
            try:
                op = self.gateway.set_labels(target, labels, rid, self.deadline)
            except FingerprintRace:
                target = self.gateway.read_nic(
                    target.instance, self.mirror.network_interface, self.deadline
                )
                continue
            self.gateway.wait(op, self.deadline)
            self.report.actions.append(f"record_mark:{target.instance.name}")
            return
        raise FingerprintRace(f"{target.instance}: labels changed on every try")

    # -- public IP ----------------------------------------------------------------------------

    def move_public(self) -> None:
        """Free the static IP and the target's access config slot, then attach the static IP."""
        public, config, target = self.plan.public, self.mirror.public_ip, self.plan.target
        if public is None or config is None or not public.changes:
            return
        frees: dict[str, Callable[[], None]] = {
            f"release:{ref.name}": partial(self._release, ref, name) for ref, name in public.release
        }
        if public.clear_target:
            frees[f"clear:{target.name}"] = partial(self._clear_target, public.clear_target)
        _run_concurrently(frees, None)
        self.report.actions.extend(_public_free_actions(public, target))
        if public.attach:
            self._after_alias_patch(target)
            rid = request_id(
                self.key, str(target), "addAccessConfig", self._nic(target).fingerprint
            )
            try:
                op = self.gateway.add_access_config(
                    target,
                    self.mirror.network_interface,
                    config.access_config_name,
                    public.address,
                    rid,
                    self.deadline,
                )
            except Conflict:
                # Another handler attached an access config first: fine if it is ours.
                now = self.gateway.read_nic(target, self.mirror.network_interface, self.deadline)
                if any(c.nat_ip == public.address for c in now.access_configs):
                    return
                raise
            self.gateway.wait(op, self.deadline)
            self.report.actions.append(f"attach_public_ip:{target.name}")

    def _clear_target(self, name: str) -> None:
        try:
            self._delete_access_config(self.plan.target, name)
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


def _unreadable_error(nic: Unreadable) -> RetryableError:
    return RetryableError(f"cannot read {nic.instance}: {nic.error}")


def _run_concurrently(tasks: Mapping[str, Callable[[], None]], report: MoveReport | None) -> None:
    """Run the tasks in parallel, wait for all of them, then raise the first failure.

    Waiting for every task before raising means no write is left running unobserved. With a
    report, each task's own duration is recorded under its name.
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
    if errors:
        raise errors[0]
