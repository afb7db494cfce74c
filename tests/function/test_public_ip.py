"""The static public IP: no member is left without an external IP, and it never blocks the VIP.

A member without an external IP may be unable to reach Google APIs (no Cloud NAT, no Private
Google Access), so its publisher could not announce its next promotion. And clients on the
private network need the VIP whatever happens to the public side.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from local.mirrors import compute_state, mirror_layout, route_layout, static_address
from support import mirrors
from support.compute_view import aliases, assert_vip_on, nat_ips, nic0
from support.events import became_primary, cloud_event
from support.function_app import Delivery

pytestmark = pytest.mark.integration

EPHEMERAL = "192.0.2.7"
DELETE_CONFIG = "compute.instances.deleteAccessConfig"


def assert_vip_moved_but_not_the_public_ip(delivery: Delivery, *, retry: bool) -> None:
    delivery.assert_failed("PublicIpUnavailable" if retry else "PublicIpRefused", retry=retry)
    assert "add_alias:isc-backup-001" in delivery.outcome["actions"]
    assert f"VIP {mirrors.VIP} is on isc-backup-001" in delivery.outcome["error"]


def test_restore_ephemeral_false_leaves_the_old_primary_without_external_ip(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    config = mirrors.config()
    config["mirrors"][mirrors.MIRROR]["public_ip"]["restore_ephemeral"] = False
    function = start_function(config)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert delivery.outcome["outcome"] == "moved"
    assert not [a for a in delivery.outcome["actions"] if a.startswith("restore_")]
    assert nat_ips(compute, mirrors.primary()) == []
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_new_primarys_own_reserved_address_is_never_detached(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(), mirrors.backup(nat_ip="203.0.113.20")
    state = mirrors.state(primary, backup)
    link = state["instances"][1]["selfLink"]
    own = static_address(mirrors.PROJECT, mirrors.REGION, "backup-own", "203.0.113.20", user=link)
    state["addresses"].append(own)
    compute.load_state(state)
    function = start_function()

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert_vip_moved_but_not_the_public_ip(delivery, retry=False)
    assert "isc-backup-001 holds reserved address backup-own" in delivery.outcome["error"]
    assert nat_ips(compute, backup) == ["203.0.113.20"]
    assert nat_ips(compute, primary) == [mirrors.STATIC_IP]
    assert aliases(compute, backup) == [mirrors.VIP]


def test_static_ip_held_in_a_zone_that_is_down_keeps_the_new_primarys_own_ip(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """The static IP cannot be released from a zone that is down: never drop the target's IP."""
    primary, backup = mirrors.primary(aliases=()), mirrors.backup(nat_ip=EPHEMERAL)
    compute.load_state(mirrors.state(primary, backup))
    function = start_function()
    compute.set_zone_down(primary.zone)
    event = cloud_event(became_primary(backup))

    delivery = function.deliver(event)

    assert_vip_moved_but_not_the_public_ip(delivery, retry=True)
    assert "cannot be read now" in delivery.outcome["error"]
    assert nat_ips(compute, backup) == [EPHEMERAL]
    assert aliases(compute, backup) == [mirrors.VIP]

    compute.set_zone_down(primary.zone, down=False)
    redelivered = function.deliver(event)

    assert redelivered.outcome["outcome"] == "moved"
    assert_vip_on(compute, backup, primary)
    (restored,) = nat_ips(compute, primary)
    assert restored != mirrors.STATIC_IP


def test_static_ip_used_by_a_vm_outside_the_mirror_is_left_alone(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    stranger = mirrors.backup(
        name="someone-else-001",
        network_ip="10.0.0.99",
        nat_ip=mirrors.STATIC_IP,
        access_config_name="theirs",
    )
    primary, backup = mirrors.primary(nat_ip=None), mirrors.backup(nat_ip=EPHEMERAL)
    compute.load_state(mirrors.state(primary, backup, stranger))
    function = start_function(mirrors.config(mirrors.mirror_config([primary, backup])))

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert_vip_moved_but_not_the_public_ip(delivery, retry=False)
    assert (
        "someone-else-001, which is not a member of mirror IRISMIRROR"
        in (delivery.outcome["error"])
    )
    assert nat_ips(compute, stranger) == [mirrors.STATIC_IP]
    assert nat_ips(compute, backup) == [EPHEMERAL]


def test_a_standard_tier_address_is_attached_with_its_tier(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    primary, backup = mirrors.primary(nat_ip=None), mirrors.backup()
    state = mirrors.state(primary, backup)
    state["addresses"][0]["networkTier"] = "STANDARD"
    compute.load_state(state)
    function = start_function()

    delivery = function.deliver(cloud_event(became_primary(backup)))

    assert delivery.outcome["outcome"] == "moved"
    assert nic0(compute, backup)["accessConfigs"][0]["networkTier"] == "STANDARD"
    assert_vip_on(compute, backup, primary)


ADDRESS_READ_FAILURES: list[tuple[str, dict[str, Any], bool]] = [
    ("typo in address_name (404)", {"address": "isc-mirro"}, False),
    ("permission denied (403)", {"code": 403, "reason": "forbidden"}, False),
    ("API down (503)", {"code": 503, "reason": "backendError"}, True),
]


@pytest.mark.parametrize(
    ("fault", "retry"),
    [(f, r) for _, f, r in ADDRESS_READ_FAILURES],
    ids=[name for name, _, _ in ADDRESS_READ_FAILURES],
)
def test_a_failed_address_read_never_blocks_the_private_vip(
    start_function: FunctionFactory, compute: ComputeEmulator, fault: dict[str, Any], retry: bool
) -> None:
    config = mirrors.config()
    if "address" in fault:
        config["mirrors"][mirrors.MIRROR]["public_ip"]["address_name"] = fault["address"]
    else:
        compute.fail_next(
            "compute.addresses.get", count=100, code=fault["code"], reason=fault["reason"]
        )
    function = start_function(config)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert_vip_moved_but_not_the_public_ip(delivery, retry=retry)
    assert aliases(compute, mirrors.primary()) == []
    assert nat_ips(compute, mirrors.primary()) == [mirrors.STATIC_IP]


def test_a_failed_release_gives_the_new_primary_its_external_ip_back(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """Dropping the target's ephemeral IP and releasing the static IP run side by side: if the
    release fails, the target must not be left with no external IP until a redelivery."""
    primary, backup = mirrors.primary(), mirrors.backup(nat_ip=EPHEMERAL)
    compute.load_state(mirrors.state(primary, backup))
    compute.fail_next_operation(DELETE_CONFIG, instance=primary.name)
    function = start_function()
    event = cloud_event(became_primary(backup))

    failed = function.deliver(event)

    assert failed.outcome["retry"] is True
    assert "restore_ephemeral_ip:isc-backup-001" in failed.outcome["actions"]
    (own,) = nat_ips(compute, backup)
    assert own != mirrors.STATIC_IP

    assert function.deliver(event).outcome["outcome"] == "moved"
    assert_vip_on(compute, backup, primary)


def test_a_permanent_public_failure_never_hides_a_retryable_one(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """The old primary cannot get an ephemeral IP back (permanent, reported) while the new
    primary's mark fails to be written (retryable): the event must be redelivered, or the mark
    is lost; and the permanent failure must still be in the line."""
    compute.fail_next_operation(
        "compute.instances.addAccessConfig",
        instance=mirrors.primary().name,
        error_code="QUOTA_EXCEEDED",
        message="Quota 'EXTERNAL_ADDRESSES' exceeded.",
    )
    compute.fail_next("compute.instances.setLabels", count=100, code=503)
    function = start_function()
    event = cloud_event(became_primary(mirrors.backup()))

    failed = function.deliver(event)

    assert failed.outcome["retry"] is True
    assert failed.outcome["error_reason"] == "ApiUnavailable"
    assert any("could not get an ephemeral one back" in n for n in failed.outcome["notes"])
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_a_forwarding_rule_public_ip_follows_in_alias_mode(
    start_function: FunctionFactory, compute: ComputeEmulator
) -> None:
    """Alias mode may keep its public IP on a forwarding rule (regional) instead of an access
    config: the move retargets the rule at the new primary's target instance."""
    alias = dataclasses.replace(mirror_layout(0, project=mirrors.PROJECT), public=None)
    regional = compute_state([route_layout(0, project=mirrors.PROJECT)])
    state = compute_state([alias])
    state["targetInstances"] = regional["targetInstances"]
    state["forwardingRules"] = regional["forwardingRules"]
    compute.load_state(state)
    (rule,) = regional["forwardingRules"]
    config = mirrors.config()
    entry = config["mirrors"][mirrors.MIRROR]
    entry["public_ip"] = {"forwarding_rule": rule["name"], "region": mirrors.REGION}
    for member in entry["members"]:
        member["target_instance"] = f"{member['instance']}-ti"
    function = start_function(config)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert delivery.outcome["outcome"] == "moved"
    assert "retarget_forwarding_rule:isc-backup-001" in delivery.outcome["actions"]
    assert delivery.outcome["public_ip"] == rule["IPAddress"]
    target = compute.state()["forwardingRules"][0]["target"]
    assert target.endswith(f"/zones/{mirrors.BACKUP_ZONE}/targetInstances/isc-backup-001-ti")
    assert aliases(compute, mirrors.backup()) == [mirrors.VIP]
