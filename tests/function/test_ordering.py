"""Stale, out-of-order, duplicated and concurrent events, and level-triggered healing.

Pub/Sub delivers at least once and in no particular order, and two function instances may handle
two events for one mirror at the same time. Whatever happens, the VIP must end on the member of
the newest event, on exactly one member, with every other alias range intact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.compute.server import ComputeEmulator
from local.mirrors import Member
from support import mirrors
from support.events import became_primary, cloud_event
from vipmover.compute import ComputeGateway
from vipmover.config import parse_config
from vipmover.handler import App, handle
from vipmover.outcome import Outcome
from vipmover.plan import mark_label

pytestmark = pytest.mark.integration

PRIMARY = mirrors.primary(aliases=("10.0.0.32/28", mirrors.VIP))
BACKUP = mirrors.backup(aliases=("vips:10.1.0.8/32",))
OTHER_ALIASES = {PRIMARY.name: ["10.0.0.32/28"], BACKUP.name: ["10.1.0.8/32"]}
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MUTATIONS = ("updateNetworkInterface", "AccessConfig", "setLabels")


@dataclass(frozen=True)
class Sent:
    """One event as Pub/Sub would hold it: fixed message id and publish time."""

    member: Member
    message_id: str
    published: datetime
    type: str = "became_primary"

    def data(self) -> Any:
        stamp = self.published.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        payload = became_primary(self.member, type=self.type, occurred_at=stamp)
        return cloud_event(payload, message_id=self.message_id, publish_time=stamp).data


def events(*members: Member, step_s: float = 60.0) -> list[Sent]:
    """Events for `members` in order, a minute apart."""
    return [
        Sent(member, f"msg-{index}", T0 + timedelta(seconds=index * step_s))
        for index, member in enumerate(members)
    ]


@pytest.fixture
def emulator() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(mirrors.state(PRIMARY, BACKUP)) as emulator:
        yield emulator


def new_instance(emulator: ComputeEmulator) -> App:
    """A fresh function instance: its own config and Compute clients."""
    return App(parse_config(mirrors.config()), ComputeGateway(emulator.url))


def deliver(app: App, sent: Sent) -> Outcome:
    return handle(app, sent.message_id, sent.data())


def deliver_until_acked(
    emulator: ComputeEmulator, batch: Sequence[Sent], *, parallel: bool
) -> None:
    """Deliver like Pub/Sub: whatever asked for a retry is delivered again, up to 6 rounds."""
    pending = list(batch)
    for _ in range(6):
        if not pending:
            return
        apps = [new_instance(emulator) for _ in pending]
        if parallel:
            with ThreadPoolExecutor(max_workers=len(pending)) as pool:
                outcomes = list(pool.map(deliver, apps, pending))
        else:
            outcomes = [deliver(app, sent) for app, sent in zip(apps, pending, strict=True)]
        pending = [sent for sent, out in zip(pending, outcomes, strict=True) if out.retry]
    raise AssertionError(f"still failing after 6 deliveries: {pending}")


def holders(emulator: ComputeEmulator) -> list[str]:
    return [
        member.name
        for member in (PRIMARY, BACKUP)
        if any(
            alias["ipCidrRange"] == mirrors.VIP
            for alias in emulator.instance(mirrors.PROJECT, member.zone, member.name)[
                "networkInterfaces"
            ][0].get("aliasIpRanges", [])
        )
    ]


def assert_invariants(emulator: ComputeEmulator, newest: Sent) -> None:
    """One holder, the newest event's member; static IP with it; other aliases intact."""
    assert holders(emulator) == [newest.member.name]
    for member in (PRIMARY, BACKUP):
        instance = emulator.instance(mirrors.PROJECT, member.zone, member.name)
        nic = instance["networkInterfaces"][0]
        others = [
            a["ipCidrRange"]
            for a in nic.get("aliasIpRanges", [])
            if a["ipCidrRange"] != mirrors.VIP
        ]
        assert others == OTHER_ALIASES[member.name]
        has_static = any(c.get("natIP") == mirrors.STATIC_IP for c in nic.get("accessConfigs", []))
        assert has_static == (member == newest.member)


def heartbeat_after_failover(
    emulator: ComputeEmulator, sender: Member, *, step_s: float = 60.0
) -> tuple[App, Sent, Sent]:
    """The VIP moved to the backup (delivered); then `sender`'s heartbeat, `step_s` later."""
    to_backup, later = events(BACKUP, sender, step_s=step_s)
    heartbeat = Sent(sender, f"hb-{sender.name}", later.published, type="heartbeat")
    app = new_instance(emulator)
    assert deliver(app, to_backup).outcome == "moved"
    return app, to_backup, heartbeat


def mutation_count(emulator: ComputeEmulator) -> int:
    return sum(1 for r in emulator.mutations() if any(m in r.method_id for m in MUTATIONS))


def test_late_redelivery_of_an_older_event_never_moves_the_vip_back(
    emulator: ComputeEmulator,
) -> None:
    to_primary, to_backup = events(PRIMARY, BACKUP, step_s=7200)
    app = new_instance(emulator)
    assert deliver(app, to_backup).outcome == "moved"
    before = mutation_count(emulator)

    late = deliver(app, to_primary)  # published two hours before the failover it would undo

    assert late.outcome == "rejected"
    assert late.error_reason == "stale_event"
    assert "older than the last applied event" in (late.error or "")
    assert mutation_count(emulator) == before
    assert_invariants(emulator, to_backup)


def test_mark_is_a_label_on_every_member_and_other_labels_are_kept(
    emulator: ComputeEmulator,
) -> None:
    emulator.edit_instance(
        mirrors.PROJECT, BACKUP.zone, BACKUP.name, lambda inst: inst["labels"].update(env="prod")
    )
    (to_backup,) = events(BACKUP)
    assert deliver(new_instance(emulator), to_backup).outcome == "moved"

    mark = f"{round(to_backup.published.timestamp() * 1000)}-{BACKUP.name}"
    labels = emulator.instance(mirrors.PROJECT, BACKUP.zone, BACKUP.name)["labels"]
    assert labels == {"env": "prod", mark_label(mirrors.MIRROR): mark}
    # A copy on the old primary names the holder, so the mark survives a rewrite of its labels.
    labels = emulator.instance(mirrors.PROJECT, PRIMARY.zone, PRIMARY.name)["labels"]
    assert labels == {mark_label(mirrors.MIRROR): mark}


def test_old_event_for_the_current_holder_agrees_and_changes_nothing(
    emulator: ComputeEmulator,
) -> None:
    first_backup, to_primary, to_backup = events(BACKUP, PRIMARY, BACKUP)
    app = new_instance(emulator)
    assert deliver(app, to_primary).outcome == "already_in_place"  # VIP starts on the primary
    assert deliver(app, to_backup).outcome == "moved"
    before = mutation_count(emulator)

    assert deliver(app, first_backup).outcome == "already_in_place"
    assert mutation_count(emulator) == before


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(5)),
    members=st.lists(st.sampled_from([PRIMARY, BACKUP]), min_size=5, max_size=5),
)
def test_shuffled_sequences_end_on_the_newest_events_member(
    order: list[int], members: list[Member]
) -> None:
    sent = events(*members)
    with ComputeEmulator(mirrors.state(PRIMARY, BACKUP)) as emulator:
        deliver_until_acked(emulator, [sent[i] for i in order], parallel=False)
        assert_invariants(emulator, sent[-1])


def test_two_instances_at_once_end_on_the_newer_events_member(emulator: ComputeEmulator) -> None:
    emulator.set_op_latency(0.3)
    older, newer = events(BACKUP, PRIMARY, step_s=1)

    deliver_until_acked(emulator, [newer, older], parallel=True)

    assert_invariants(emulator, newer)


def test_duplicates_cost_no_mutation(emulator: ComputeEmulator) -> None:
    (to_backup,) = events(BACKUP)
    deliver_until_acked(emulator, [to_backup], parallel=False)
    before = mutation_count(emulator)

    deliver_until_acked(emulator, [to_backup, to_backup, to_backup], parallel=True)

    assert mutation_count(emulator) == before
    assert_invariants(emulator, to_backup)


FAULTS = st.sampled_from(["none", "http503", "http429", "op_error", "lost_response"])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.lists(st.sampled_from([PRIMARY, BACKUP]), min_size=2, max_size=4),
    duplicates=st.lists(st.integers(min_value=0, max_value=3), max_size=3),
    order=st.randoms(use_true_random=False),
    faults=st.lists(FAULTS, min_size=1, max_size=3),
)
def test_random_interleavings_keep_the_invariants(
    members: list[Member], duplicates: list[int], order: Any, faults: list[str]
) -> None:
    """Concurrent deliveries of events, duplicates, in any order, with injected faults."""
    sent = events(*members, step_s=1)
    batch = sent + [sent[i % len(sent)] for i in duplicates]
    order.shuffle(batch)
    with ComputeEmulator(mirrors.state(PRIMARY, BACKUP), op_latency=0.05) as emulator:
        for fault in faults:
            inject(emulator, fault)
        deliver_until_acked(emulator, batch, parallel=True)
        assert_invariants(emulator, sent[-1])
        before = mutation_count(emulator)
        deliver_until_acked(emulator, [sent[-1]], parallel=False)  # one more duplicate
        assert mutation_count(emulator) == before


def inject(emulator: ComputeEmulator, fault: str) -> None:
    method = "compute.instances.updateNetworkInterface"
    if fault == "http503":
        emulator.fail_next(method, count=2, code=503)
    elif fault == "http429":
        emulator.fail_next("compute.instances.get", count=3, code=429)
    elif fault == "op_error":
        emulator.fail_next_operation(method)
    elif fault == "lost_response":
        emulator.fail_next(method, count=1, code=503, after_apply=True)


def test_heartbeat_is_a_cheap_no_op_when_all_is_in_place(emulator: ComputeEmulator) -> None:
    app, _, heartbeat = heartbeat_after_failover(emulator, BACKUP)
    before = mutation_count(emulator)

    outcome = deliver(app, heartbeat)

    assert outcome.outcome == "already_in_place"
    assert outcome.event_type == "heartbeat"
    assert mutation_count(emulator) == before
    assert set(outcome.api_calls) == {"compute.instances.get", "compute.addresses.get"}


def test_heartbeat_repairs_drift(emulator: ComputeEmulator) -> None:
    app, to_backup, heartbeat = heartbeat_after_failover(emulator, BACKUP)

    def remove_vip_by_hand(instance: dict[str, Any]) -> None:
        nic = instance["networkInterfaces"][0]
        nic["aliasIpRanges"] = [a for a in nic["aliasIpRanges"] if a["ipCidrRange"] != mirrors.VIP]

    emulator.edit_instance(mirrors.PROJECT, BACKUP.zone, BACKUP.name, remove_vip_by_hand)
    assert holders(emulator) == []

    outcome = deliver(app, heartbeat)

    assert outcome.outcome == "moved"
    assert outcome.actions == ["add_alias:isc-backup-001"]
    assert_invariants(emulator, to_backup)


def test_concurrent_newer_event_supersedes_a_move_in_flight(emulator: ComputeEmulator) -> None:
    """An older event's handler that sees a newer mark after its move hands the VIP on."""
    emulator.set_op_latency(0.4)
    older, newer = events(BACKUP, PRIMARY, step_s=1)
    slow = new_instance(emulator)
    result: list[Outcome] = []
    worker = threading.Thread(target=lambda: result.append(deliver(slow, older)))
    worker.start()
    # Record the newer event's mark while the older move is in flight, as a concurrent
    # handler would, by delivering the newer event once the older one has started writing.
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not emulator.mutations() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.005)
    fast = deliver(new_instance(emulator), newer)
    worker.join()

    deliver_until_acked(
        emulator, [o for o, r in ((older, result[0]), (newer, fast)) if r.retry], parallel=False
    )
    assert_invariants(emulator, newer)


def test_api_calls_are_counted_per_event_when_events_run_at_once() -> None:
    """One function instance, two mirrors failing over at once: each line counts its own calls."""
    other_primary = mirrors.primary(
        name="isc2-primary-001", network_ip="10.0.0.21", aliases=("10.0.0.251/32",), nat_ip=None
    )
    other_backup = mirrors.backup(name="isc2-backup-001", network_ip="10.0.0.22")
    first_primary = mirrors.primary(nat_ip=None)
    state = mirrors.state(
        first_primary, mirrors.backup(), other_primary, other_backup, public=False
    )
    config = mirrors.config(
        mirrors.mirror_config(public=False),
        mirrors.mirror_config(
            [other_primary, other_backup], name="OTHER", vip="10.0.0.251/32", public=False
        ),
    )
    with ComputeEmulator(state, op_latency=0.2) as emulator:
        app = App(parse_config(config), ComputeGateway(emulator.url))
        first = cloud_event(became_primary(mirrors.backup())).data
        second = cloud_event(became_primary(other_backup, mirror="OTHER")).data
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(lambda data: handle(app, "m", data), [first, second]))

    for outcome in outcomes:
        assert outcome.outcome == "moved"
        assert outcome.api_calls["compute.instances.updateNetworkInterface"] == 2
        assert outcome.api_calls["compute.instances.get"] == 4


def test_heartbeat_from_a_demoted_member_never_takes_the_vip_back(
    emulator: ComputeEmulator,
) -> None:
    """The primary checked `IsPrimary()` just before it was demoted; its heartbeat is published
    after the backup's `became_primary` and delivered last: it must not move the VIP back."""
    app, to_backup, late_heartbeat = heartbeat_after_failover(emulator, PRIMARY, step_s=1)
    before = mutation_count(emulator)

    outcome = deliver(app, late_heartbeat)

    assert outcome.outcome == "rejected"
    assert outcome.error_reason == "stale_heartbeat"
    assert outcome.actions == [f"superseded_by:{BACKUP.name}"]
    assert mutation_count(emulator) == before
    assert_invariants(emulator, to_backup)


def test_stale_guard_survives_a_rewrite_of_the_holders_labels(emulator: ComputeEmulator) -> None:
    """Terraform (or `--clear-labels`) wipes the new primary's labels; a two-hour-old
    redelivery of the old primary's announcement must still not move the VIP."""
    to_primary, to_backup = events(PRIMARY, BACKUP, step_s=7200)
    app = new_instance(emulator)
    assert deliver(app, to_primary).outcome == "already_in_place"
    assert deliver(app, to_backup).outcome == "moved"
    emulator.edit_instance(
        mirrors.PROJECT, BACKUP.zone, BACKUP.name, lambda inst: inst.update(labels={})
    )
    before = mutation_count(emulator)

    late = deliver(app, to_primary)

    assert late.outcome == "rejected"
    assert late.error_reason == "stale_event"
    assert mutation_count(emulator) == before
    assert_invariants(emulator, to_backup)


def test_mirror_names_are_matched_without_case(emulator: ComputeEmulator) -> None:
    """IRIS upper-cases mirror names; a config written in lower case must still match."""
    app = App(
        parse_config(mirrors.config(mirrors.mirror_config(name="irismirror"))),
        ComputeGateway(emulator.url),
    )

    outcome = deliver(app, events(BACKUP)[0])  # the event says IRISMIRROR

    assert outcome.outcome == "moved"
    assert outcome.mirror == "irismirror"
    assert holders(emulator) == [BACKUP.name]


def test_newer_mark_recorded_during_the_move_hands_the_vip_on(emulator: ComputeEmulator) -> None:
    """The newer event's handler records its mark first: the older one, reading the marks back
    after its writes, must hand the VIP to the newer event's member even though its own writes
    all landed as planned."""
    emulator.set_op_latency(0.4)
    older, newer = events(BACKUP, PRIMARY, step_s=1)
    newer_mark = f"{round(newer.published.timestamp() * 1000)}-{PRIMARY.name}"
    result: list[Outcome] = []
    worker = threading.Thread(target=lambda: result.append(deliver(new_instance(emulator), older)))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not emulator.mutations() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.005)
    emulator.edit_instance(
        mirrors.PROJECT,
        PRIMARY.zone,
        PRIMARY.name,
        lambda inst: inst["labels"].update({mark_label(mirrors.MIRROR): newer_mark}),
    )
    worker.join()

    assert result[0].outcome == "moved"
    assert f"superseded_by:{PRIMARY.name}" in result[0].actions
    assert_invariants(emulator, newer)


def test_a_write_that_reports_success_but_did_nothing_is_caught_by_the_read_back(
    emulator: ComputeEmulator,
) -> None:
    """GCE can report DONE for a change it did not make (kubeip #59): the move reads back."""
    emulator.load_state(mirrors.state(mirrors.primary(aliases=()), BACKUP))
    emulator.drop_next_operation("compute.instances.updateNetworkInterface")

    outcome = deliver(new_instance(emulator), events(BACKUP)[0])

    assert outcome.outcome == "moved"
    assert outcome.actions.count(f"add_alias:{BACKUP.name}") == 2
    assert holders(emulator) == [BACKUP.name]


def test_concurrent_duplicates_of_a_failover_all_succeed_or_retry(
    emulator: ComputeEmulator,
) -> None:
    """Three instances handle one failover at once: each releases the static IP and gives the
    old primary an ephemeral IP back; only one restore lands, and the others must see that it
    did rather than report a member left without an external IP (found by the random test)."""
    emulator.set_op_latency(0.2)
    (to_backup,) = events(BACKUP)
    apps = [new_instance(emulator) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(deliver, apps, [to_backup] * 3))

    for outcome in outcomes:
        assert outcome.retry or outcome.outcome in {"moved", "already_in_place"}, outcome.error
    deliver_until_acked(
        emulator, [o for o in (to_backup,) if any(x.retry for x in outcomes)], parallel=False
    )
    assert_invariants(emulator, to_backup)
    primary_nic = emulator.instance(mirrors.PROJECT, PRIMARY.zone, PRIMARY.name)[
        "networkInterfaces"
    ][0]
    assert len(primary_nic["accessConfigs"]) == 1
