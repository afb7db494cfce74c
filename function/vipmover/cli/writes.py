"""A `MovePlan` as the API writes a move would send: their order and the critical path.

The order is the mover's (`move_run.MoveRun`): the private chain (remove the VIP from every other
holder, then add it to the new primary), the public chain (release the static IP and drop the new
primary's ephemeral IP, then attach the static IP and give the old holder an ephemeral IP back)
and the high-water mark, all concurrent; a write waits only for the writes in its `after`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import InstanceRef, MirrorConfig
from ..plan import MovePlan, NicState, Unreadable

UPDATE_NIC = "compute.instances.updateNetworkInterface"
ADD_CONFIG = "compute.instances.addAccessConfig"
DELETE_CONFIG = "compute.instances.deleteAccessConfig"
SET_LABELS = "compute.instances.setLabels"


@dataclass(frozen=True)
class Write:
    """One mutation a move would send; each costs one operation to wait for."""

    id: int
    chain: str
    method: str
    instance: str
    what: str
    after: tuple[int, ...] = ()
    """Writes whose operations must be DONE first."""
    sent_after: tuple[int, ...] = ()
    """Writes that must only have been accepted first (same NIC: keeps fingerprints valid)."""
    cleanup: bool = False
    """Runs after the move has taken effect (route mode deletes older routes): off the path."""

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain,
            "method": self.method,
            "instance": self.instance,
            "what": self.what,
            "after": list(self.after),
            "sent_after": list(self.sent_after),
            "cleanup": self.cleanup,
        }


@dataclass(frozen=True)
class PlanParts:
    """What `plan` shows for one mode: the writes, and why the move would be refused."""

    writes: list[Write]
    refusal: str | None
    changes: bool
    public_blocked: str | None


class Writes:
    """Numbers writes as they are added."""

    def __init__(self) -> None:
        self.items: list[Write] = []

    def add(
        self,
        chain: str,
        method: str,
        ref: InstanceRef,
        what: str,
        *after: int,
        sent_after: tuple[int, ...] = (),
        cleanup: bool = False,
    ) -> int:
        write = Write(
            len(self.items) + 1, chain, method, ref.name, what, tuple(after), sent_after, cleanup
        )
        self.items.append(write)
        return write.id


def planned_writes(
    mirror: MirrorConfig,
    plan: MovePlan,
    nics: Mapping[InstanceRef, NicState | Unreadable],
    *,
    record_mark: bool,
) -> list[Write]:
    """The writes of `plan`, each with the writes it waits for."""
    writes = Writes()
    public = plan.public if plan.public and plan.public.blocked is None else None
    removals = {
        ref: writes.add("private", UPDATE_NIC, ref, f"remove alias {mirror.vip}")
        for ref in plan.remove_from
    }
    clear = None
    if public and public.clear_target:
        what = f"drop its own external IP ({public.clear_target}) to make room"
        clear = writes.add("public", DELETE_CONFIG, plan.target, what)
    add = None
    if plan.add_to_target:
        before = (*removals.values(), *((clear,) if clear else ()))
        add = writes.add("private", UPDATE_NIC, plan.target, f"add alias {mirror.vip}", *before)
    if public is not None:
        frees = [clear] if clear else []
        for ref, config in public.release:
            sent = (removals[ref],) if ref in removals else ()
            what = f"release static IP {public.address} ({config})"
            frees.append(writes.add("public", DELETE_CONFIG, ref, what, sent_after=sent))
        if public.attach:
            sent = (add,) if add else ()
            what = f"attach static IP {public.address}"
            writes.add("public", ADD_CONFIG, plan.target, what, *frees, sent_after=sent)
        for ref in public.restore:
            writes.add("public", ADD_CONFIG, ref, "give back an ephemeral external IP", *frees)
    if record_mark:
        for ref, nic in nics.items():
            if isinstance(nic, NicState):
                writes.add("mark", SET_LABELS, ref, "record the high-water mark")
    return writes.items


def critical_path(writes: list[Write]) -> list[int]:
    """The longest chain of operations that wait for each other: what the move's time is made of.

    A `sent_after` wait costs only a request's round trip, not an operation, so it is left out;
    so are cleanup writes, which run once the move has taken effect.
    """
    longest: dict[int, list[int]] = {}
    for write in (w for w in writes if not w.cleanup):  # `after` names earlier writes
        before = max((longest[i] for i in write.after if i in longest), key=len, default=[])
        longest[write.id] = [*before, write.id]
    return max(longest.values(), key=len, default=[])
