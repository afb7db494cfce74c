"""End to end: the publisher on a member, Google's Pub/Sub emulator pushing to the function
under functions-framework (a real subprocess), and the Compute emulator behind it.

Each test asserts what the Compute API holds afterwards (read through google-cloud-compute) and
what the function logged; waits poll with deadlines.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from local.push_relay import post_push, push_envelope
from local.stack import LocalStack, holds_everything
from local.timeline import Published, milestones
from support import mirrors
from support.events import became_primary

from .conftest import LAYOUTS

pytestmark = pytest.mark.e2e

MOVE_TIMEOUT_S = 60.0
PRIMARY = mirrors.primary().name
BACKUP = mirrors.backup().name


def publish(stack: LocalStack, mirror: str, instance: str) -> Published:
    published = stack.publish(mirror, instance)
    assert published.ok, published.summary
    assert published.message_id is not None
    return published


def fail_over(stack: LocalStack, mirror: str, instance: str) -> dict[str, Any]:
    """Publish as `instance`, wait for the function's final outcome and the state to match."""
    published = publish(stack, mirror, instance)
    assert published.message_id is not None
    outcome = stack.wait_for_outcome(published.message_id, MOVE_TIMEOUT_S)
    stack.wait_for_holder(mirror, instance, MOVE_TIMEOUT_S)
    return outcome


def lines_for(stack: LocalStack, event_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.outcomes() if r.get("event_id") == event_id]


def assert_only_holder(stack: LocalStack, mirror: str, instance: str) -> None:
    layout = stack.mirrors[mirror]
    holder = stack.holder(mirror)
    assert holds_everything(holder, layout, instance), holder
    assert holder.address_status == "IN_USE"


def test_failover_and_failback(stack: LocalStack) -> None:
    mirror = mirrors.MIRROR

    over = fail_over(stack, mirror, BACKUP)

    assert over["outcome"] == "moved"
    assert over["from_instance"].endswith(f"/{PRIMARY}")
    assert over["to_instance"].endswith(f"/{BACKUP}")
    assert over["mirror"] == mirror
    assert over["retry"] is False
    assert over["identity"] == "verified"  # the backup's token, signed by its metadata server
    assert_only_holder(stack, mirror, BACKUP)

    back = fail_over(stack, mirror, PRIMARY)

    assert back["outcome"] == "moved"
    assert back["from_instance"].endswith(f"/{BACKUP}")
    assert_only_holder(stack, mirror, PRIMARY)


def test_duplicates_change_nothing(stack: LocalStack) -> None:
    """A redelivery (the same message id) writes nothing; the same event published again as a
    new message moves nothing (it only advances the mirror's high-water mark label, being a
    newer message)."""
    mirror = mirrors.MIRROR
    published = publish(stack, mirror, BACKUP)
    assert published.message_id is not None
    assert published.event is not None
    first = stack.wait_for_outcome(published.message_id, MOVE_TIMEOUT_S)
    assert first["outcome"] == "moved"
    data = json.dumps(published.event).encode()

    before_redelivery = time.monotonic()
    envelope = push_envelope(
        data,
        message_id=published.message_id,
        publish_time=first["publish_time"],
        subscription=stack.subscription,
        attributes={"type": "became_primary", "mirror": mirror},
    )
    assert post_push(stack.push_endpoint, envelope, timeout=30) == 200

    redelivered = lines_for(stack, published.message_id)
    assert [r["outcome"] for r in redelivered] == ["moved", "already_in_place"]
    assert redelivered[-1]["actions"] == []
    assert set(redelivered[-1]["api_calls"]) == {"compute.instances.get", "compute.addresses.get"}
    assert stack.mutations_since(before_redelivery) == []

    before_republish = time.monotonic()
    republished = stack.publish_raw(data, {"type": "became_primary", "mirror": mirror})
    again = stack.wait_for_outcome(republished, MOVE_TIMEOUT_S)

    assert again["outcome"] == "already_in_place"
    # A newer message: it only advances the mark, on every member.
    assert sorted(again["actions"]) == [f"record_mark:{BACKUP}", f"record_mark:{PRIMARY}"]
    assert set(stack.mutations_since(before_republish)) == {"compute.instances.setLabels"}
    assert_only_holder(stack, mirror, BACKUP)


def test_event_without_the_members_identity_token_moves_nothing(stack: LocalStack) -> None:
    """Anyone who can publish on the topic could claim to be the backup: without the member's
    identity token the function refuses, acknowledges (no retry) and writes nothing."""
    mirror = mirrors.MIRROR
    forged = became_primary(mirrors.backup())  # a well-formed v1 event, but no identity token
    assert "identity_token" not in forged
    before = time.monotonic()

    message_id = stack.publish_raw(
        json.dumps(forged).encode(), {"type": "became_primary", "mirror": mirror}
    )
    outcome = stack.wait_for_outcome(message_id, MOVE_TIMEOUT_S)

    assert outcome["outcome"] == "rejected"
    assert outcome["retry"] is False
    assert stack.mutations_since(before) == []
    assert_only_holder(stack, mirror, PRIMARY)


def test_function_killed_mid_move_is_completed_by_redelivery(stack: LocalStack) -> None:
    """kill -9 once the first mutation reached Compute; the restarted function finishes the job."""
    mirror = mirrors.MIRROR
    stack.compute.set_op_latency(1.0)  # the kill lands while operations are still running
    function = stack.function
    assert function is not None
    first_pid = function.pid
    operations_before = len(stack.compute.operations())
    published = publish(stack, mirror, BACKUP)
    assert published.message_id is not None

    deadline = time.monotonic() + MOVE_TIMEOUT_S
    while not stack.mutations_since(published.started, mirror):
        assert time.monotonic() < deadline, "no mutation reached the Compute emulator"
        time.sleep(0.01)  # polling interval
    stack.kill_function()
    killed_at = time.monotonic()
    assert lines_for(stack, published.message_id) == []  # died before it could log anything
    half_done = stack.holder(mirror)
    assert not holds_everything(half_done, stack.mirrors[mirror], BACKUP)

    stack.restart_function()
    outcome = stack.wait_for_outcome(published.message_id, MOVE_TIMEOUT_S)

    assert function.pid != first_pid
    # The killed handler never sent the attach (it waits for the release's operation), so the
    # redelivery had work left to do: it must report a move, not "already in place".
    assert outcome["outcome"] == "moved"
    assert outcome["retry"] is False
    stack.wait_for_holder(mirror, BACKUP, MOVE_TIMEOUT_S)
    assert_only_holder(stack, mirror, BACKUP)
    # Nothing was applied twice: one release from the old primary, one attach to the new one,
    # whichever handler sent them.
    applied = [
        (op["operationType"], op["targetLink"].rsplit("/", 1)[-1])
        for op in stack.compute.operations()[operations_before:]
        if "error" not in op
    ]
    assert applied.count(("deleteAccessConfig", PRIMARY)) == 1
    assert applied.count(("addAccessConfig", BACKUP)) == 1
    assert stack.mutations_since(killed_at, mirror)  # the redelivery did write
    holder = stack.holder(mirror)
    assert holder.vip_on == (BACKUP,)


def test_one_deployment_serves_several_mirrors(stack: LocalStack) -> None:
    """Each mirror's event moves only that mirror's VIP; the others stay where they were."""
    first, second, third = LAYOUTS

    outcome = fail_over(stack, second.name, second.members[1].name)

    assert outcome["mirror"] == second.name
    assert outcome["vip"] == second.vip
    assert_only_holder(stack, second.name, second.members[1].name)
    assert_only_holder(stack, first.name, first.members[0].name)
    assert_only_holder(stack, third.name, third.members[0].name)

    outcome = fail_over(stack, third.name, third.members[1].name)

    assert outcome["mirror"] == third.name
    assert_only_holder(stack, third.name, third.members[1].name)
    assert_only_holder(stack, second.name, second.members[1].name)
    assert_only_holder(stack, first.name, first.members[0].name)


def test_two_mirrors_fail_over_at_the_same_time(stack: LocalStack) -> None:
    """Two members publish concurrently; the function handles both events side by side."""
    moves = [(layout.name, layout.members[1].name) for layout in LAYOUTS[:2]]
    results: dict[str, Published] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(moves))

    def publish_as(mirror: str, instance: str) -> None:
        try:
            start.wait(timeout=10)
            results[mirror] = publish(stack, mirror, instance)
        except BaseException as error:  # noqa: BLE001 (re-raised in the test thread)
            errors.append(error)

    threads = [threading.Thread(target=publish_as, args=move) for move in moves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=MOVE_TIMEOUT_S)
    assert not errors, errors

    outcomes = {}
    for mirror, instance in moves:
        message_id = results[mirror].message_id
        assert message_id is not None
        outcomes[mirror] = stack.wait_for_outcome(message_id, MOVE_TIMEOUT_S)
        stack.wait_for_holder(mirror, instance, MOVE_TIMEOUT_S)
    for mirror, instance in moves:
        assert outcomes[mirror]["outcome"] == "moved"
        assert_only_holder(stack, mirror, instance)
    assert_only_holder(stack, LAYOUTS[2].name, LAYOUTS[2].members[0].name)
    # Handled concurrently: each event was received before the other one's move finished.
    (one, _), (other, _) = moves
    marks = {mirror: milestones(stack, results[mirror]) for mirror, _ in moves}
    assert marks[one]["received"] < marks[other]["alias_added"]
    assert marks[other]["received"] < marks[one]["alias_added"]
