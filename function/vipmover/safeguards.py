"""The checks between "this VM proved who it is" and "so it gets the VIP", for any mover.

One `Guard` per event, begun before the reads (so corroboration probes run alongside them),
consulted once a round has read the members and planned, and asked what to write with the
high-water mark. Its state lives where the mark lives: in alias mode in the members' labels
(`check`, `labels`), in route mode in the route's description (`verify`, `ledger_after`; see
`route_plan.Ledger`). Either way the mover hands `verify` the same `Stakes`:

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
from .route_plan import Ledger
from .takeover_limit import check_takeover, history_after, moves_after, moves_label, recent_moves


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


@dataclass(frozen=True)
class Stakes:
    """What one round would do, as the safeguards judge it, in either mode."""

    members: Mapping[InstanceRef, NicState | Unreadable]
    """The members read this round: status, internal IP and live id of each."""
    holders: tuple[InstanceRef, ...]
    """The members that receive the VIP now."""
    taking_from: tuple[InstanceRef, ...]
    """The holders that this round's writes take the VIP from."""
    changes: bool
    moves: tuple[int, ...]
    """The mirror's recent move times (the takeover limit's history)."""
    tokens: Mapping[str, str]
    """Each member's last accepted token, by instance name (`replay`)."""


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
            EventRejected: see `verify`.
        """
        label = mark_label(self.mirror.name)
        for ref in future_marks(nics, label, self.mark_horizon_ms):
            self._alert(f"future_mark:{ref.name}")
        sender = nics.get(self.facts.instance)
        token_key = token_label(self.mirror.name)
        recorded = sender.labels.get(token_key) if isinstance(sender, NicState) else None
        stakes = Stakes(
            nics,
            plan.holders,
            plan.remove_from,
            plan.changes,
            recent_moves(nics, moves_label(self.mirror.name)),
            {self.facts.instance.name: recorded} if recorded else {},
        )
        self.verify(target, stakes)

    @property
    def reads_members(self) -> bool:
        """Whether `verify` needs every member's status and IP (not only the new primary's)."""
        return self.probes is not None or self.mirror.takeover_limit.enabled

    def verify(self, target: InstanceRef, stakes: Stakes) -> None:
        """Refuse a round's writes if a safeguard says no; nothing has been written yet.

        Raises:
            EventRejected: `instance_id_mismatch`, `holder_still_primary`,
                `other_member_primary`, `takeover_limit` or `token_replayed`.
        """
        try:
            self._check_instance_id(stakes.members)
            self._moves = stakes.moves
            if not stakes.changes:
                return
            if self.probes is not None:
                verdict = self.probes.check(target, stakes.holders, stakes.members)
                self.notes.extend(verdict.describe())
            holders = [
                nic
                for ref in stakes.taking_from
                if isinstance(nic := stakes.members.get(ref), NicState)
            ]
            check_takeover(
                self.mirror.takeover_limit,
                self._moves,
                self.facts.time_ms,
                holders,
                self.mirror.name,
            )
            self._check_token(target, stakes.tokens)
        except EventRejected as err:
            self._alert(err.reason)
            raise

    def ledger_after(self, current: Ledger, *, moving: bool) -> Ledger:
        """The ledger a route recording this event carries: `current` plus this move (when
        the VIP changes hands) and the sender's token."""
        ledger = current
        if self.mirror.takeover_limit.enabled and moving:
            moves = history_after(self.mirror.takeover_limit, current.moves, self.facts.time_ms)
            ledger = Ledger(moves, ledger.tokens)
        if self.facts.token is not None:
            ledger = ledger.with_token(self.facts.instance.name, self.facts.token.value())
        return ledger

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

    def _check_token(self, target: InstanceRef, tokens: Mapping[str, str]) -> None:
        if self.facts.token is None or target != self.facts.instance:
            return
        name = self.facts.instance.name
        check_token_once(self.facts.token, tokens.get(name, ""), name)

    def _alert(self, name: str) -> None:
        if name not in self.alerts:
            self.alerts.append(name)
