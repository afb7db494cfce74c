"""Route mode's safeguards: the same guard as alias mode, its state carried in the routes.

Every scenario drives the real function (functions-framework test client) against the Compute
emulator holding a route-mode mirror, with events signed by the metadata emulator as the
publisher signs them and each member's IRIS answered by the health simulator. Each test names
what the emulator holds afterwards (the routes, the forwarding rule) and what was logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from emulators.iris_health import IrisHealthSimulator
from emulators.metadata import MetadataEmulator
from local.mirrors import Member, compute_state, route_layout
from mirrorvip_publisher.event import bound_audience
from support import mirrors
from support.events import became_primary
from support.function_app import Delivery, FunctionUnderTest
from support.signing import AUDIENCE, identity_config, signed
from vipmover.compute import RETRY_ATTEMPTS
from vipmover.route_mover import GUARD_READ_ATTEMPTS

from .conftest import deliver

pytestmark = pytest.mark.integration

LAYOUT = route_layout(0, project=mirrors.PROJECT)
PRIMARY, BACKUP = LAYOUT.members
RULE = ("isc-mirror-fr", mirrors.REGION)
SET_TARGET = "compute.forwardingRules.setTarget"


@pytest.fixture
def compute() -> Iterator[ComputeEmulator]:
    """The route-mode mirror (`start_function` points the function at it)."""
    with ComputeEmulator(compute_state([LAYOUT])) as emulator:
        yield emulator


def start(
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator | None,
    moves: int = 0,
) -> FunctionUnderTest:
    """The route mirror, identity verified, corroborated by `iris` (None: not asked), with a
    takeover limit of `moves` in 10 minutes (0: off)."""
    entry = LAYOUT.config_entry() | {"takeover_limit": {"moves": moves, "minutes": 10}}
    if iris is not None:
        entry["corroborate"] = {"url": iris.url_template, "timeout_seconds": 2}
    config = mirrors.config({LAYOUT.name: entry}) | {"identity": identity_config(metadata)}
    return start_function(config)


def place_on_primary(function: FunctionUnderTest, metadata: MetadataEmulator) -> None:
    """The primary's own first announcement routes the VIP to it (nobody to take it from)."""
    outcome = deliver(function, signed(metadata, PRIMARY), seconds_from_now=-30).outcome
    assert outcome["outcome"] == "moved", outcome


def routed_to(compute: ComputeEmulator) -> list[str]:
    """The next hops of the VIP's routes, best first."""
    found = sorted(compute.routes(mirrors.PROJECT), key=lambda r: r["priority"])
    return [r["nextHopInstance"].rsplit("/", 1)[-1] for r in found]


def rule_target(compute: ComputeEmulator) -> str:
    target: str = compute.forwarding_rule(mirrors.PROJECT, RULE[1], RULE[0])["target"]
    return target.rsplit("/", 1)[-1]


def assert_refused(delivery: Delivery, reason: str) -> None:
    outcome = delivery.outcome
    assert delivery.status == 200, outcome
    assert (outcome["outcome"], outcome["error_reason"]) == ("rejected", reason), outcome
    assert outcome["mode"] == "route"
    assert outcome["severity"] == "ERROR"
    assert reason in outcome["alerts"]


def stop(compute: ComputeEmulator, member: Member) -> None:
    compute.edit_instance(
        mirrors.PROJECT, member.zone, member.name, lambda vm: vm.update(status="TERMINATED")
    )


# -- corroboration ---------------------------------------------------------------------------------


def test_a_backup_cannot_take_the_route_from_a_primary_whose_iris_still_answers(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """A process on the backup publishes with the backup's own valid token; the backup's IRIS
    even says it is primary (a compromised target is not trusted)."""
    function = start(start_function, metadata, iris)
    place_on_primary(function, metadata)
    writes = len(compute.mutations())
    iris.set_lying(BACKUP.name)

    delivery = deliver(function, signed(metadata, BACKUP))

    assert_refused(delivery, "holder_still_primary")
    assert PRIMARY.name in delivery.outcome["error"]
    assert len(compute.mutations()) == writes
    assert routed_to(compute) == [PRIMARY.name]
    assert rule_target(compute) == PRIMARY.target_instance


@pytest.mark.parametrize("why", ["iris does not answer", "vm not running", "zone down"])
def test_a_holder_that_is_not_primary_any_more_does_not_block_the_route(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
    why: str,
) -> None:
    # One move allowed, and spent by the first route: only a holder that is not RUNNING (or
    # cannot be read) lets the second through, corroborated or not.
    moves = 3 if why == "iris does not answer" else 1
    function = start(start_function, metadata, iris, moves=moves)
    place_on_primary(function, metadata)
    if why == "iris does not answer":
        iris.set_down(PRIMARY.name)
    elif why == "vm not running":  # IRIS still says SUCCESS, but the VM has stopped
        stop(compute, PRIMARY)
    else:  # IRIS still says SUCCESS, but nothing in its zone answers
        compute.set_zone_down(PRIMARY.zone)

    delivery = deliver(function, signed(metadata, BACKUP))

    assert delivery.outcome["outcome"] == "moved", delivery.outcome
    assert routed_to(compute) == [BACKUP.name]
    assert rule_target(compute) == BACKUP.target_instance
    assert delivery.outcome["alerts"] == []


def test_the_guard_does_not_wait_out_a_zone_that_is_down(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """Route mode exists for this day: the old primary's reads answer 503, and since an
    unreadable member never blocks, each round tries it GUARD_READ_ATTEMPTS times, not the
    gateway's usual RETRY_ATTEMPTS (about 1.4 s of backoff on the failover's path)."""
    function = start(start_function, metadata, iris)
    place_on_primary(function, metadata)
    compute.set_zone_down(PRIMARY.zone)
    compute.clear_requests()

    delivery = deliver(function, signed(metadata, BACKUP))

    assert delivery.outcome["outcome"] == "moved", delivery.outcome
    down_reads = [
        r
        for r in compute.requests()
        if r.method_id == "compute.instances.get" and f"/instances/{PRIMARY.name}" in r.path
    ]
    rounds = delivery.outcome["api_calls"]["compute.routes.list"]
    assert len(down_reads) == rounds * GUARD_READ_ATTEMPTS < rounds * RETRY_ATTEMPTS


# -- takeover limit --------------------------------------------------------------------------------


def test_more_than_n_route_moves_in_m_minutes_are_refused_while_the_holder_runs(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """IRIS itself flips (a flapping mirror): every move is corroborated; the history lives in
    the routes, so the 4th move within the window is refused."""
    function = start(start_function, metadata, iris, moves=3)
    issued = datetime.now(UTC).timestamp() - 30
    results = []
    for step, member in enumerate((PRIMARY, BACKUP, PRIMARY, BACKUP)):
        iris.set_primary(member.name)
        event = signed(metadata, member, issued_at=issued + step)
        results.append(deliver(function, event, seconds_from_now=step).outcome)

    assert [r["outcome"] for r in results] == ["moved", "moved", "moved", "rejected"]
    assert results[3]["error_reason"] == "takeover_limit"
    assert "takeover_limit" in results[3]["alerts"]
    assert routed_to(compute) == [PRIMARY.name]
    (route,) = compute.routes(mirrors.PROJECT)
    assert " moves=" in route["description"]
    # Unless the holder is not RUNNING: then it is a failover, and it goes through.
    stop(compute, PRIMARY)
    again = deliver(function, signed(metadata, BACKUP, issued_at=issued + 9), seconds_from_now=5)
    assert again.outcome["outcome"] == "moved", again.outcome
    assert routed_to(compute) == [BACKUP.name]


# -- tokens accepted once --------------------------------------------------------------------------


def test_a_replayed_failover_is_refused_in_route_mode(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """The backup's signed failover, re-published (a new message) after the failback within
    the token's minute: refused, though the failover's own route was deleted by the failback."""
    function = start(start_function, metadata, None)
    failover = signed(metadata, BACKUP)
    first = deliver(function, failover, message_id="1001", seconds_from_now=-2)
    failback = deliver(function, signed(metadata, PRIMARY), message_id="1002", seconds_from_now=-1)

    replay = deliver(function, failover, message_id="1003")

    assert (first.outcome["outcome"], failback.outcome["outcome"]) == ("moved", "moved")
    assert_refused(replay, "token_replayed")
    assert routed_to(compute) == [PRIMARY.name]
    assert rule_target(compute) == PRIMARY.target_instance


def test_the_redelivery_of_a_half_done_route_move_is_not_a_replay(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """The first delivery inserted the route (recording its token), then the forwarding
    rule's operation failed: Pub/Sub's redelivery (same message id, same token) finishes."""
    function = start(start_function, metadata, None)
    place_on_primary(function, metadata)
    compute.fail_next_operation(SET_TARGET)
    event = signed(metadata, BACKUP)

    failed = deliver(function, event, message_id="2001")
    redelivered = deliver(function, event, message_id="2001")

    assert (failed.outcome["outcome"], failed.outcome["retry"]) == ("failed", True)
    assert routed_to(compute) == [BACKUP.name]
    (route,) = compute.routes(mirrors.PROJECT)
    assert f"{BACKUP.name}:" in route["description"]  # the token, recorded by the first try
    assert redelivered.outcome["outcome"] == "moved", redelivered.outcome
    assert rule_target(compute) == BACKUP.target_instance


def test_the_event_must_name_the_live_vm_in_route_mode(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """A token and event of a VM since deleted and re-created under the same name."""
    function = start(start_function, metadata, None)
    event = became_primary(BACKUP)
    event["instance"]["id"] = "77"
    token = metadata.mint_token(
        bound_audience(AUDIENCE, event),
        BACKUP.name,
        overrides={"google": {"compute_engine": {"instance_id": "77"}}},
    )
    event["identity_token"] = token

    assert_refused(deliver(function, event), "instance_id_mismatch")
    assert compute.routes(mirrors.PROJECT) == []
