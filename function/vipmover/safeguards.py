"""The checks between "this VM proved who it is" and "so it gets the VIP", for any mover.

One `Guard` per event, begun before the reads (so corroboration probes run alongside them),
consulted once a round has read the members and planned (`check`), and asked which labels to
write with the high-water mark (`labels`):

* with a verified token, the event's `instance.id` (the token's) must be the live VM's id
  (`instance_id_mismatch`): a token of a deleted VM cannot act for a new one of the same name;
* a change must be corroborated by the members' IRIS (`corroborate`);
* a move away from a running holder is rate-limited (`takeover_limit`);
* a token that changes anything is accepted once (`replay`);
* a high-water mark in the future is ignored and alerted (`plan.future_marks`).

Each refusal is an `EventRejected` naming the member; each refusal and oddity is also an alert
name in `alerts`, which the outcome line carries (and which logs at ERROR).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .config import MAX_CLOCK_SKEW_S, InstanceRef, MirrorConfig
from .corroborate import Corroborator, Probes
from .errors import EventRejected
from .plan import MovePlan, NicState, Unreadable, future_marks, mark_label
from .replay import TokenUse, check_token_once, token_label
from .takeover_limit import check_takeover, moves_after, moves_label, recent_moves


@dataclass(frozen=True)
class EventFacts:
    """What the guard needs to know about the event besides its target."""

    instance: InstanceRef
    instance_id: str
    time_ms: int
    """Pub/Sub's publishTime in ms (the event's mark)."""
    now_ms: int
    """The function's clock, for marks from the future."""
    token: TokenUse | None = None
    """The verified identity token; None when identity is not required."""


class Safeguards:
    """What the guards keep between events in one function instance (the probes' IP cache)."""

    def __init__(self, corroborator: Corroborator | None = None) -> None:
        self.corroborator = corroborator or Corroborator()

    def begin(self, mirror: MirrorConfig, facts: EventFacts) -> Guard:
        """Start the corroboration probes now, so that they run while the mover reads."""
        return Guard(mirror, facts, self.corroborator.begin(mirror))


@dataclass
class Guard:
    """The safeguards of one event."""

    mirror: MirrorConfig
    facts: EventFacts
    probes: Probes | None
    alerts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _moves: tuple[int, ...] = ()

    @property
    def mark_horizon_ms(self) -> int:
        """Marks later than this cannot be real: ignore them."""
        return self.facts.now_ms + MAX_CLOCK_SKEW_S * 1000

    def check(
        self, target: InstanceRef, plan: MovePlan, nics: Mapping[InstanceRef, NicState | Unreadable]
    ) -> None:
        """Refuse the round's plan if a safeguard says no; nothing has been written yet.

        Raises:
            EventRejected: `instance_id_mismatch`, `holder_still_primary`,
                `other_member_primary`, `takeover_limit` or `token_replayed`.
        """
        label = mark_label(self.mirror.name)
        for ref in future_marks(nics, label, self.mark_horizon_ms):
            self._alert(f"future_mark:{ref.name}")
        try:
            self._check_instance_id(nics)
            self._moves = recent_moves(nics, moves_label(self.mirror.name))
            if not plan.changes:
                return
            if self.probes is not None:
                verdict = self.probes.check(target, plan.holders, nics)
                self.notes.extend(verdict.describe())
            holders = [nic for ref in plan.remove_from if isinstance(nic := nics[ref], NicState)]
            check_takeover(
                self.mirror.takeover_limit,
                self._moves,
                self.facts.time_ms,
                holders,
                self.mirror.name,
            )
            self._check_token(target, nics)
        except EventRejected as err:
            self._alert(err.reason)
            raise

    def labels(self, ref: InstanceRef, plan: MovePlan) -> dict[str, str]:
        """Labels to write on `ref` with the mark: the move history, and the sender's token."""
        labels = {}
        if self.mirror.takeover_limit.enabled and (plan.remove_from or plan.add_to_target):
            history = moves_after(self.mirror.takeover_limit, self._moves, self.facts.time_ms)
            labels[moves_label(self.mirror.name)] = history
        if self.facts.token is not None and ref == self.facts.instance:
            labels[token_label(self.mirror.name)] = self.facts.token.value()
        return labels

    def close(self) -> None:
        if self.probes is not None:
            self.probes.close()

    def _check_instance_id(self, nics: Mapping[InstanceRef, NicState | Unreadable]) -> None:
        nic = nics.get(self.facts.instance)
        if self.facts.token is None or not isinstance(nic, NicState) or not nic.instance_id:
            return  # without a verified token, the event's id proves nothing
        if nic.instance_id != self.facts.instance_id:
            raise EventRejected(
                "instance_id_mismatch",
                f"the event names {self.facts.instance} with id {self.facts.instance_id}, but "
                f"the live VM's id is {nic.instance_id} (re-created?)",
            )

    def _check_token(
        self, target: InstanceRef, nics: Mapping[InstanceRef, NicState | Unreadable]
    ) -> None:
        nic = nics.get(self.facts.instance)
        if (
            self.facts.token is None
            or target != self.facts.instance
            or not isinstance(nic, NicState)
        ):
            return
        check_token_once(self.facts.token, nic, token_label(self.mirror.name))

    def _alert(self, name: str) -> None:
        if name not in self.alerts:
            self.alerts.append(name)
