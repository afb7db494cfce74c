"""`on_mirror_event` end to end within the function: real CloudEvents through functions-framework,
the real google-cloud-compute client, and the Compute emulator over HTTP.

Every test asserts what the emulator holds afterwards and what the function logged.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from local.mirrors import Member
from support import mirrors
from support.compute_view import (
    UPDATE_NIC,
    aliases,
    assert_vip_on,
    mutation_count,
    nat_ips,
    nic0,
)
from support.events import became_primary, cloud_event
from support.function_app import FunctionUnderTest
from vipmover.errors import ConfigError

pytestmark = pytest.mark.integration


def seeded(
    start_function: FunctionFactory,
    compute: ComputeEmulator,
    primary: Member,
    backup: Member,
    *,
    public: bool = True,
) -> FunctionUnderTest:
    """The emulator holds these two members; the function serves their mirror (with or
    without the static public IP)."""
    compute.load_state(mirrors.state(primary, backup, public=public))
    config = mirrors.config() if public else mirrors.config(mirrors.mirror_config(public=False))
    return start_function(config)


def test_failover_moves_vip_and_public_ip(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    primary, backup = mirrors.primary(), mirrors.backup()
    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.status == 200
    assert_vip_on(compute, backup, primary)
    # The old primary's alias list really became empty on the wire (google-cloud-compute would
    # have sent no aliasIpRanges at all and left the VIP in place).
    assert nic0(compute, primary).get("aliasIpRanges", []) == []
    outcome = delivery.outcome
    assert outcome["outcome"] == "moved"
    assert outcome["severity"] == "INFO"
    assert outcome["from_instance"] == f"{mirrors.PROJECT}/{primary.zone}/{primary.name}"
    assert outcome["to_instance"] == f"{mirrors.PROJECT}/{backup.zone}/{backup.name}"
    assert outcome["vip"] == mirrors.VIP
    assert outcome["public_ip"] == mirrors.STATIC_IP
    # The private and public chains run concurrently: each chain is ordered, not their mix.
    assert sorted(outcome["actions"]) == [
        "add_alias:isc-backup-001",
        "attach_public_ip:isc-backup-001",
        "record_mark:isc-backup-001",
        "record_mark:isc-primary-001",
        "release_public_ip:isc-primary-001",
        "remove_alias:isc-primary-001",
        "restore_ephemeral_ip:isc-primary-001",
    ]
    # The old primary keeps a way out to Google APIs: an ephemeral external IP, not the static.
    (restored,) = nat_ips(compute, primary)
    assert restored not in {None, mirrors.STATIC_IP}
    private = [a for a in outcome["actions"] if "alias" in a]
    assert private == ["remove_alias:isc-primary-001", "add_alias:isc-backup-001"]
    assert outcome["api_calls"][UPDATE_NIC] >= 2  # more when a concurrent write caused a 412
    assert set(outcome["steps_ms"]) >= {"read", "private_ms", "public_ms", "apply", "verify"}
    assert outcome["duration_ms"] >= outcome["steps_ms"]["apply"]
    assert outcome["error"] is None


def test_failback_returns_everything(compute: ComputeEmulator, function: FunctionUnderTest) -> None:
    primary, backup = mirrors.primary(), mirrors.backup()
    assert function.deliver(cloud_event(became_primary(backup))).outcome["outcome"] == "moved"
    delivery = function.deliver(cloud_event(became_primary(primary)))

    assert delivery.outcome["outcome"] == "moved"
    assert_vip_on(compute, primary, backup)


def test_duplicate_delivery_costs_only_reads(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    event = cloud_event(became_primary(mirrors.backup()))
    assert function.deliver(event).outcome["outcome"] == "moved"
    mutations_after_first = mutation_count(compute)

    again = function.deliver(event, binary=True)

    assert again.status == 200
    assert again.outcome["outcome"] == "already_in_place"
    assert again.outcome["actions"] == []
    assert mutation_count(compute) == mutations_after_first
    assert set(again.outcome["api_calls"]) == {"compute.instances.get", "compute.addresses.get"}


def test_vip_on_no_member_is_added(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(aliases=()), mirrors.backup()
    function = seeded(start_function, compute, primary, backup, public=False)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.outcome["outcome"] == "moved"
    assert delivery.outcome["from_instance"] is None
    assert aliases(compute, backup) == [mirrors.VIP]
    assert aliases(compute, primary) == []


def test_vip_on_both_members_ends_on_the_new_primary_only(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary = mirrors.primary(nat_ip=None)
    backup = mirrors.backup(aliases=(mirrors.VIP,))
    function = seeded(start_function, compute, primary, backup, public=False)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.outcome["outcome"] == "moved"
    assert sorted(delivery.outcome["actions"]) == [
        "record_mark:isc-backup-001",
        "record_mark:isc-primary-001",
        "remove_alias:isc-primary-001",
    ]
    assert aliases(compute, backup) == [mirrors.VIP]
    assert aliases(compute, primary) == []


def test_other_aliases_are_kept_on_both_members(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary = mirrors.primary(aliases=("10.0.0.32/28", mirrors.VIP, "vips:10.1.0.7/32"))
    backup = mirrors.backup(aliases=("vips:10.1.0.8/32",))
    function = seeded(start_function, compute, primary, backup)

    assert function.deliver(cloud_event(became_primary(backup))).outcome["outcome"] == "moved"

    assert aliases(compute, primary) == ["10.0.0.32/28", "10.1.0.7/32"]
    assert aliases(compute, backup) == ["10.1.0.8/32", mirrors.VIP]
    kept = nic0(compute, primary)["aliasIpRanges"][1]
    assert kept == {"ipCidrRange": "10.1.0.7/32", "subnetworkRangeName": "vips"}


def test_ephemeral_ip_on_new_primary_makes_room_for_the_static_ip(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(), mirrors.backup(nat_ip="192.0.2.7")
    function = seeded(start_function, compute, primary, backup)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.outcome["outcome"] == "moved"
    assert "drop_ephemeral_ip:isc-backup-001" in delivery.outcome["actions"]
    assert nat_ips(compute, backup) == [mirrors.STATIC_IP]
    assert nic0(compute, backup)["accessConfigs"][0]["name"] == mirrors.STATIC_NAME
    assert_vip_on(compute, backup, primary)


def test_public_ip_on_no_member_is_attached(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(nat_ip=None), mirrors.backup()
    function = seeded(start_function, compute, primary, backup)

    assert function.deliver(cloud_event(became_primary(backup))).outcome["outcome"] == "moved"

    assert_vip_on(compute, backup, primary)


def test_fingerprint_race_rereads_and_keeps_the_racing_alias(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """Someone adds an alias to the new primary while the VIP leaves the old one: a real 412."""
    primary, backup = mirrors.primary(nat_ip=None), mirrors.backup()
    function = seeded(start_function, compute, primary, backup, public=False)
    compute.set_op_latency(0.5, UPDATE_NIC)

    def add_alias_by_hand_during_the_removal() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(r.method_id == UPDATE_NIC for r in compute.mutations()):
                compute.edit_instance(
                    mirrors.PROJECT,
                    backup.zone,
                    backup.name,
                    lambda inst: (
                        inst["networkInterfaces"][0]
                        .setdefault("aliasIpRanges", [])
                        .append({"ipCidrRange": "10.0.0.64/28"})
                    ),
                )
                return
            time.sleep(0.005)

    racer = threading.Thread(target=add_alias_by_hand_during_the_removal)
    racer.start()
    delivery = function.deliver(cloud_event(became_primary(backup)))
    racer.join()

    assert delivery.outcome["outcome"] == "moved"
    assert aliases(compute, backup) == ["10.0.0.64/28", mirrors.VIP]
    assert aliases(compute, primary) == []
    patches = [r for r in compute.requests() if r.method_id == UPDATE_NIC]
    assert len(patches) == 3  # remove, stale add (412), add after re-read


@pytest.mark.parametrize(
    ("code", "error_reason", "detail"),
    [
        (412, "FingerprintRace", "NIC changed on 5 tries"),  # someone keeps changing the NIC
        (503, "ApiUnavailable", "updateNetworkInterface: HTTP 503"),  # the API is down
    ],
)
def test_a_fault_that_outlasts_the_retries_asks_for_redelivery(
    compute: ComputeEmulator, function: FunctionUnderTest, code: int, error_reason: str, detail: str
) -> None:
    """Give up this delivery at ERROR, change nothing, let Pub/Sub retry later."""
    compute.fail_next(UPDATE_NIC, count=100, code=code)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    delivery.assert_failed(error_reason, retry=True)
    assert detail in delivery.outcome["error"]
    assert delivery.outcome["severity"] == "ERROR"
    assert aliases(compute, mirrors.primary()) == [mirrors.VIP]
    assert aliases(compute, mirrors.backup()) == []


def test_lost_response_is_retried_with_the_same_request_id(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    """The PATCH lands but its response is lost: the retry must not apply it twice."""
    compute.fail_next(UPDATE_NIC, count=1, code=503, after_apply=True)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert delivery.outcome["outcome"] == "moved"
    patches = [r for r in compute.requests() if r.method_id == UPDATE_NIC]
    assert patches[0].query["requestId"] == patches[1].query["requestId"]
    applied = [op for op in compute.operations() if op["operationType"] == "updateNetworkInterface"]
    assert len(applied) == 2  # one removal (deduplicated retry) and one addition
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_operation_error_fails_then_redelivery_completes(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    primary, backup = mirrors.primary(), mirrors.backup()
    compute.fail_next_operation(UPDATE_NIC, error_code="INTERNAL_ERROR", message="Internal error.")
    event = cloud_event(became_primary(backup))

    failed = function.deliver(event)

    assert failed.status == 500
    assert failed.outcome["outcome"] == "failed"
    assert failed.outcome["error_reason"] == "OperationFailed"
    assert "INTERNAL_ERROR" in failed.outcome["error"]
    # The public IP moved concurrently; the private VIP did not: nothing half-done is hidden.
    assert mirrors.VIP in aliases(compute, primary)

    redelivered = function.deliver(event)

    assert redelivered.outcome["outcome"] == "moved"
    assert_vip_on(compute, backup, primary)


@pytest.mark.parametrize("mode", ["operation", "http"])
def test_old_primary_zone_down_holding_the_vip_is_a_clear_retryable_failure(
    start_function: FunctionFactory, compute: ComputeEmulator, mode: str
) -> None:
    """GCE's "already being used" on the request (http) or in the operation: both retryable."""
    primary, backup = mirrors.primary(nat_ip=None), mirrors.backup()
    compute.load_state(mirrors.state(primary, backup, public=False))
    compute.set_alias_conflict_mode("http" if mode == "http" else "operation")
    function = start_function(mirrors.config(mirrors.mirror_config(public=False)))
    compute.set_zone_down(primary.zone)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    delivery.assert_failed("AddressInUse", retry=True)
    assert "IP_IN_USE_BY_ANOTHER_RESOURCE" in delivery.outcome["error"]
    assert "isc-primary-001" in delivery.outcome["error"]
    compute.set_zone_down(primary.zone, down=False)
    assert aliases(compute, primary) == [mirrors.VIP]
    assert aliases(compute, backup) == []


def test_old_primary_zone_down_without_the_vip_still_moves_it(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(aliases=(), nat_ip=None), mirrors.backup()
    function = seeded(start_function, compute, primary, backup, public=False)
    compute.set_zone_down(primary.zone)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.outcome["outcome"] == "moved"
    assert aliases(compute, backup) == [mirrors.VIP]


def test_stopped_new_primary_is_rejected_without_change(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(), mirrors.backup(status="TERMINATED")
    function = seeded(start_function, compute, primary, backup)

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "rejected"
    assert delivery.outcome["error_reason"] == "target_not_running"
    assert mutation_count(compute) == 0


def test_raw_pubsub_push_envelope_is_accepted(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    """A push subscription posts the bare envelope; functions-framework makes it a CloudEvent."""
    event = cloud_event(became_primary(mirrors.backup()))
    delivery = function.post_json(event.data, path=f"/projects/{mirrors.PROJECT}/topics/mirror-vip")

    assert delivery.outcome["outcome"] == "moved"
    assert delivery.outcome["event_id"] == event.data["message"]["messageId"]
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def _bad(event: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps(event | changes).encode()


BACKUP_EVENT = became_primary(mirrors.backup())
BAD_INPUTS: list[tuple[str, bytes, str]] = [
    ("not json", b"{oops", "not_json"),
    ("not utf-8", b"\xc3\x28", "not_utf8"),
    ("wrong type", _bad(BACKUP_EVENT, type="became_backup"), "bad_type"),
    ("wrong version", _bad(BACKUP_EVENT, version=2), "bad_version"),
    ("unknown mirror", _bad(BACKUP_EVENT, mirror="NOSUCHMIRROR"), "unknown_mirror"),
    (
        "member not in mirror",
        _bad(BACKUP_EVENT, instance=BACKUP_EVENT["instance"] | {"name": "isc-arbiter-001"}),
        "not_a_member",
    ),
    (
        "member in the wrong zone",
        _bad(BACKUP_EVENT, instance=BACKUP_EVENT["instance"] | {"zone": "us-west1-c"}),
        "not_a_member",
    ),
    (
        "wrong project",
        _bad(BACKUP_EVENT, instance=BACKUP_EVENT["instance"] | {"project": "someone-else-1"}),
        "wrong_project",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [(p, r) for _, p, r in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS]
)
def test_bad_input_is_rejected_acknowledged_and_changes_nothing(
    compute: ComputeEmulator, function: FunctionUnderTest, payload: bytes, reason: str
) -> None:
    before = compute.instance(mirrors.PROJECT, mirrors.PRIMARY_ZONE, "isc-primary-001")

    delivery = function.deliver(cloud_event(payload))

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "rejected"
    assert delivery.outcome["error_reason"] == reason
    assert delivery.outcome["severity"] == "WARNING"
    assert delivery.outcome["retry"] is False
    assert mutation_count(compute) == 0
    assert compute.instance(mirrors.PROJECT, mirrors.PRIMARY_ZONE, "isc-primary-001") == before


def test_bad_config_fails_at_start_with_the_field_named(start_function: FunctionFactory) -> None:
    config = mirrors.config()
    config["mirrors"][mirrors.MIRROR]["private_vip"] = "10.0.0.300/32"
    with pytest.raises(ConfigError, match=r"mirrors\.IRISMIRROR\.private_vip"):
        start_function(config)


def test_operation_timeout_fails_then_redelivery_completes(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """An operation still running at the move's deadline: a retryable failure, nothing lost."""
    config = mirrors.config()
    config["operation_timeout_seconds"] = 1
    function = start_function(config)
    compute.set_op_latency(3.0, UPDATE_NIC)
    event = cloud_event(became_primary(mirrors.backup()))

    timed_out = function.deliver(event)

    timed_out.assert_failed("OperationTimeout", retry=True)
    compute.set_op_latency(0.0, UPDATE_NIC)
    redelivered = function.deliver(event)
    assert redelivered.outcome["outcome"] == "moved"
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())
