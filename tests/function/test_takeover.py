"""Only the real primary gets the VIP: a backup with its own valid token cannot take it.

Every scenario drives the real function (functions-framework test client) against the Compute
emulator, with events signed by the metadata emulator exactly as the publisher signs them, and
each member's IRIS answered by the health simulator. Issue 14's scenarios, one test each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from emulators.iris_health import IrisHealthSimulator
from emulators.metadata import MetadataEmulator
from local.mirrors import Member
from mirrorvip_publisher.event import bound_audience
from support import mirrors
from support.compute_view import UPDATE_NIC, aliases, assert_vip_on, mutation_count
from support.events import became_primary, cloud_event
from support.function_app import Delivery
from support.signing import AUDIENCE, identity_config, signed

from .conftest import deliver

pytestmark = pytest.mark.integration
PRIMARY, BACKUP = mirrors.primary(), mirrors.backup()


def guarded_config(
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator | None,
    takeover_limit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The default mirror, identity verified, corroborated by `iris` (None: not corroborated)."""
    config = mirrors.config()
    entry = config["mirrors"][mirrors.MIRROR]
    if iris is not None:
        entry["corroborate"] = {"url": iris.url_template, "timeout_seconds": 2}
    if takeover_limit is not None:
        entry["takeover_limit"] = takeover_limit
    return config | {"identity": identity_config(metadata)}


def assert_refused(delivery: Delivery, reason: str) -> None:
    outcome = delivery.outcome
    assert delivery.status == 200, outcome
    assert (outcome["outcome"], outcome["error_reason"]) == ("rejected", reason), outcome
    assert outcome["severity"] == "ERROR"
    assert reason in outcome["alerts"]


# -- 1. corroboration ------------------------------------------------------------------------------


def test_backup_with_a_valid_token_cannot_take_the_vip_from_a_healthy_primary(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """The review's attack: a process on the backup publishes with the backup's own token."""
    function = start_function(guarded_config(metadata, iris))
    iris.set_lying(BACKUP.name)  # a compromised target also says it is primary: not trusted

    delivery = deliver(function, signed(metadata, BACKUP))

    assert_refused(delivery, "holder_still_primary")
    assert PRIMARY.name in delivery.outcome["error"]
    assert compute.mutations() == []
    assert_vip_on(compute, PRIMARY, BACKUP)
    assert PRIMARY.name in iris.requests()


def test_alternating_takeovers_and_heartbeats_are_all_refused(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """6 alternating attempts (the review got 6 of 6 accepted in 1.5 s): none is accepted."""
    function = start_function(guarded_config(metadata, iris, {"moves": 0}))
    outcomes = [
        deliver(function, signed(metadata, BACKUP, event_type=kind)).outcome
        for kind in ("became_primary", "heartbeat") * 3
    ]

    assert [o["error_reason"] for o in outcomes] == ["holder_still_primary"] * 6
    assert compute.mutations() == []


@pytest.mark.parametrize("why", ["iris does not answer", "vm not running", "iris demoted it"])
def test_a_holder_that_is_not_primary_any_more_does_not_block_the_failover(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
    why: str,
) -> None:
    function = start_function(guarded_config(metadata, iris))
    if why == "iris does not answer":
        iris.set_down(PRIMARY.name)
    elif why == "vm not running":  # IRIS still says SUCCESS, but the VM is stopping
        compute.edit_instance(
            mirrors.PROJECT, PRIMARY.zone, PRIMARY.name, lambda vm: vm.update(status="STOPPING")
        )
    else:
        iris.set_primary(BACKUP.name)

    delivery = deliver(function, signed(metadata, BACKUP))

    assert delivery.outcome["outcome"] == "moved", delivery.outcome
    assert mirrors.VIP in aliases(compute, BACKUP)
    assert delivery.outcome["alerts"] == []


# -- rate limit ------------------------------------------------------------------------------------


def test_more_than_n_moves_in_m_minutes_are_refused_while_the_holder_runs(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    iris: IrisHealthSimulator,
) -> None:
    """IRIS itself flips (a flapping mirror): every move is corroborated, the 4th is refused."""
    function = start_function(guarded_config(metadata, iris, {"moves": 3, "minutes": 10}))
    results = []
    for step, member in enumerate((BACKUP, PRIMARY, BACKUP, PRIMARY)):
        iris.set_primary(member.name)
        event = signed(metadata, member, issued_at=datetime.now(UTC).timestamp() - 30 + step)
        results.append(deliver(function, event, seconds_from_now=step * 0.6).outcome)

    assert [r["outcome"] for r in results] == ["moved", "moved", "moved", "rejected"]
    assert results[3]["error_reason"] == "takeover_limit"
    assert "takeover_limit" in results[3]["alerts"]
    assert mirrors.VIP in aliases(compute, BACKUP)
    # Unless the holder is not RUNNING: then it is a failover, and it goes through.
    compute.edit_instance(
        mirrors.PROJECT, BACKUP.zone, BACKUP.name, lambda vm: vm.update(status="TERMINATED")
    )
    again = deliver(function, signed(metadata, PRIMARY), seconds_from_now=3)
    assert again.outcome["outcome"] == "moved", again.outcome


def test_moves_zero_switches_the_limit_off(
    start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    function = start_function(guarded_config(metadata, None, {"moves": 0}))
    issued = datetime.now(UTC).timestamp() - 30
    outcomes = [
        deliver(
            function, signed(metadata, member, issued_at=issued + n), seconds_from_now=n * 0.6
        ).outcome["outcome"]
        for n, member in enumerate((BACKUP, PRIMARY) * 3)
    ]
    assert outcomes == ["moved"] * 6


# -- 2. tokens bound to one event, once ------------------------------------------------------------


def test_a_token_cannot_carry_another_event(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """A heartbeat's token pasted onto a became_primary: the digest differs, the audience too."""
    function = start_function(guarded_config(metadata, None))
    heartbeat = signed(metadata, BACKUP, event_type="heartbeat")
    forged = heartbeat | {"type": "became_primary"}

    assert_refused_without_alert(deliver(function, forged), "wrong_audience")
    assert compute.mutations() == []


def assert_refused_without_alert(delivery: Delivery, reason: str) -> None:
    outcome = delivery.outcome
    assert (outcome["outcome"], outcome["error_reason"]) == ("rejected", reason), outcome
    assert outcome["severity"] == "ERROR"  # it names a configured member: it alerts


def test_a_replayed_event_is_refused_and_its_redelivery_is_not(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """The backup's signed failover, re-published (new message) after the failback, within the
    token's minute: refused. Pub/Sub's redelivery of the original message is still accepted."""
    function = start_function(guarded_config(metadata, None, {"moves": 0}))
    failover = signed(metadata, BACKUP)
    first = deliver(function, failover, message_id="1001")
    failback = deliver(function, signed(metadata, PRIMARY), message_id="1002", seconds_from_now=0.6)

    replay = deliver(function, failover, message_id="1003", seconds_from_now=1.2)
    redelivery = deliver(function, failover, message_id="1001")

    assert (first.outcome["outcome"], failback.outcome["outcome"]) == ("moved", "moved")
    assert_refused(replay, "token_replayed")
    assert redelivery.outcome["outcome"] in ("already_in_place", "rejected")
    assert redelivery.outcome["error_reason"] in (None, "stale_event")
    assert_vip_on(compute, PRIMARY, BACKUP)


@pytest.mark.parametrize(
    ("issued_minutes_ago", "publish_minutes_from_now", "reason"),
    [(64, 0, "token_stale"), (0, 10, "publish_time_in_future")],
    ids=["token issued 64 min before publish", "publishTime 10 min ahead"],
)
def test_tokens_must_be_fresh_at_a_sane_publish_time(
    compute: ComputeEmulator,
    start_function: FunctionFactory,
    metadata: MetadataEmulator,
    issued_minutes_ago: float,
    publish_minutes_from_now: float,
    reason: str,
) -> None:
    function = start_function(guarded_config(metadata, None))
    issued = datetime.now(UTC) - timedelta(minutes=issued_minutes_ago)
    event = signed(metadata, BACKUP, issued_at=issued.timestamp())

    delivery = deliver(function, event, seconds_from_now=publish_minutes_from_now * 60)

    assert_refused_without_alert(delivery, reason)
    assert compute.mutations() == []


# -- 3. fail closed --------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", [None, {}, "absent"], ids=["null", "empty", "absent"])
def test_identity_is_required_unless_switched_off(
    compute: ComputeEmulator, start_function: FunctionFactory, identity: Any
) -> None:
    config = mirrors.config()
    if identity == "absent":
        del config["identity"]
    else:
        config["identity"] = identity

    delivery = start_function(config).deliver(cloud_event(became_primary(BACKUP)))

    assert delivery.outcome["error_reason"] == "missing_token"
    assert compute.mutations() == []


def test_a_mark_in_the_future_is_ignored_and_alerted(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """A label claiming an event from 2100 would make every real failover look stale."""
    year_2100_ms = 4_102_444_800_000
    compute.edit_instance(
        mirrors.PROJECT,
        PRIMARY.zone,
        PRIMARY.name,
        lambda vm: vm["labels"].update({"mirror-vip-irismirror": f"{year_2100_ms}-{PRIMARY.name}"}),
    )
    function = start_function(guarded_config(metadata, None))

    delivery = deliver(function, signed(metadata, BACKUP))

    assert delivery.outcome["outcome"] == "moved", delivery.outcome
    assert delivery.outcome["alerts"] == [f"future_mark:{PRIMARY.name}"]
    assert delivery.outcome["severity"] == "ERROR"
    assert mirrors.VIP in aliases(compute, BACKUP)


def test_the_event_must_name_the_live_vm_not_a_deleted_namesake(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """A token and event of a VM since deleted and re-created under the same name (id 77)."""
    function = start_function(guarded_config(metadata, None))
    event = signed_with_id(metadata, BACKUP, "77")

    assert_refused(deliver(function, event), "instance_id_mismatch")
    assert mutation_count(compute) == 0


def signed_with_id(metadata: MetadataEmulator, member: Member, instance_id: str) -> dict[str, Any]:
    """The member's event and its token, both naming another instance id."""
    event = became_primary(member)
    event["instance"]["id"] = instance_id
    token = metadata.mint_token(
        bound_audience(AUDIENCE, event),
        member.name,
        overrides={"google": {"compute_engine": {"instance_id": instance_id}}},
    )
    return event | {"identity_token": token}


def test_the_redelivery_of_a_failed_move_is_not_a_replay(
    compute: ComputeEmulator, start_function: FunctionFactory, metadata: MetadataEmulator
) -> None:
    """The first delivery recorded the token with the mark, then an operation failed: Pub/Sub's
    redelivery (same message id) carries the same token and must finish the move."""
    function = start_function(guarded_config(metadata, None))
    compute.fail_next_operation(UPDATE_NIC, instance=BACKUP.name)
    event = signed(metadata, BACKUP)

    failed = deliver(function, event, message_id="2001")
    redelivered = deliver(function, event, message_id="2001")

    assert (failed.outcome["outcome"], failed.outcome["retry"]) == ("failed", True)
    token_label = f"mirror-vip-token-{mirrors.MIRROR.lower()}"
    labels = compute.instance(mirrors.PROJECT, BACKUP.zone, BACKUP.name)["labels"]
    assert labels[token_label].endswith("-2001")  # recorded by the failed delivery
    assert redelivered.outcome["outcome"] == "moved", redelivered.outcome
    assert_vip_on(compute, BACKUP, PRIMARY)
