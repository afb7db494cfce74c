"""The state one move's concurrent chains share, and how they run side by side.

A move writes in up to three chains at once: the private VIP (`mover.py`), the public IP
(`public_chain.py`) and the marks (`mover.py`). They share the NICs as read, one deadline, the
report, and two kinds of signal: "this member's alias PATCH was accepted" and "the target's own
external IP is gone", which order the writes that touch one NIC (see `MoveRun`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .compute import ComputeGateway
from .config import InstanceRef, MirrorConfig
from .errors import (
    ApiUnavailable,
    MirrorVipError,
    OperationTimeout,
    RequestRefused,
    RetryableError,
)
from .plan import MovePlan, NicState, Unreadable

MAX_FINGERPRINT_ATTEMPTS = 5


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


class MoveRun:
    """The writes of one move: what the private and the public chain share while they run.

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
        self.alias_sent = {ref: threading.Event() for ref in patched}
        self.target_cleared = threading.Event()
        if not (plan.public and plan.public.clear_target and plan.public.blocked is None):
            self.target_cleared.set()

    def after_alias_patch(self, ref: InstanceRef) -> None:
        """Hold an access-config write to `ref` until its alias PATCH, if any, is accepted."""
        sent = self.alias_sent.get(ref)
        if sent is not None:
            wait_for(sent, self.deadline, f"{ref}: alias update")

    def tolerate(self, task: Callable[[], None], ref: InstanceRef) -> None:
        """Run a best-effort write; its failure becomes a `failed:` action, not the move's."""
        try:
            task()
        except MirrorVipError as err:
            step = getattr(task, "func", task).__name__.strip("_")
            self.report.actions.append(f"failed:{step}:{ref.name}")
            self.report.notes.append(f"{step} on {ref.name}: {err}")

    def nic(self, ref: InstanceRef) -> NicState:
        nic = self.nics[ref]
        if isinstance(nic, Unreadable):
            raise unreadable_error(nic)
        return nic


def wait_for(event: threading.Event, deadline: float, what: str) -> None:
    if not event.wait(max(0.0, deadline - time.monotonic())):
        raise OperationTimeout(f"{what} did not happen before the deadline")


def unreadable_error(nic: Unreadable) -> MirrorVipError:
    """The read's own error kind, naming the member: a 404 is permanent, a 503 is not."""
    message = f"cannot read {nic.instance}: {nic.error}"
    if isinstance(nic.cause, ApiUnavailable | RequestRefused | OperationTimeout):
        return type(nic.cause)(message)
    return RetryableError(message)


def run_concurrently(tasks: Mapping[str, Callable[[], None]], report: MoveReport | None) -> None:
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
