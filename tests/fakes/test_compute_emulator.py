"""Semantics of the Compute Engine emulator, driven over HTTP and checked by the state it holds.

The function's correctness is proven against this emulator, so these tests pin the behaviours the
VIP mover relies on: PATCH semantics, fingerprints, requestId, operations, invariants, access
configs, fault injection and the real error bodies.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from emulators.compute.server import ComputeEmulator
from emulators.compute.urls import instance_url
from fakes.layout import vip_on_first_vm
from local.mirrors import Member, mirror_state

pytestmark = pytest.mark.integration

PROJECT = "mirror-proj"
ZONE_A = "us-west1-a"
ZONE_B = "us-west1-b"
REGION = "us-west1"
VIP = "10.0.0.250/32"
PUBLIC_IP = "34.120.0.10"
ROOT = "/compute/v1/projects/" + PROJECT
EMULATOR_MODULE = "emulators.compute"


def mirror() -> dict[str, Any]:
    """iris-a holds the VIP and the static public IP; iris-b has neither."""
    return vip_on_first_vm(
        PROJECT, ZONE_A, ZONE_B, vip=VIP, public_ip=PUBLIC_IP, secondary={"vips": "10.8.0.0/24"}
    )


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(mirror()) as emulator:
        yield emulator


def call(
    emu: ComputeEmulator,
    method: str,
    path: str,
    body: Any = None,
    **query: str,
) -> tuple[int, Any]:
    """One HTTP request with a fresh connection that is always closed."""
    url = urlsplit(emu.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        target = path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, target, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def instance_path(name: str, zone: str) -> str:
    return f"{ROOT}/zones/{zone}/instances/{name}"


def nic0(emu: ComputeEmulator, name: str, zone: str) -> dict[str, Any]:
    nic: dict[str, Any] = emu.instance(PROJECT, zone, name)["networkInterfaces"][0]
    return nic


def aliases(emu: ComputeEmulator, name: str, zone: str) -> list[str]:
    return [r["ipCidrRange"] for r in nic0(emu, name, zone).get("aliasIpRanges", [])]


def nic_call(
    emu: ComputeEmulator,
    verb: str,
    name: str,
    zone: str,
    method: str,
    body: dict[str, Any] | None = None,
    **query: str,
) -> tuple[int, Any]:
    """`instances.<method>` on the instance's nic0."""
    path = f"{instance_path(name, zone)}/{method}"
    return call(emu, verb, path, body, networkInterface="nic0", **query)


def patch_nic(
    emu: ComputeEmulator, name: str, zone: str, body: dict[str, Any], **query: str
) -> tuple[int, Any]:
    return nic_call(emu, "PATCH", name, zone, "updateNetworkInterface", body, **query)


def set_aliases(
    emu: ComputeEmulator, name: str, zone: str, ranges: list[dict[str, str]], **query: str
) -> tuple[int, Any]:
    fingerprint = nic0(emu, name, zone)["fingerprint"]
    return patch_nic(
        emu, name, zone, {"aliasIpRanges": ranges, "fingerprint": fingerprint}, **query
    )


def error_reason(body: Any) -> str:
    reason: str = body["error"]["errors"][0]["reason"]
    return reason


def op_error_code(operation: dict[str, Any]) -> str:
    code: str = operation["error"]["errors"][0]["code"]
    return code


# ---- reads and error bodies --------------------------------------------------------------------


def test_get_returns_the_loaded_instance_with_its_fingerprints(emu: ComputeEmulator) -> None:
    status, body = call(
        emu, "GET", instance_path("iris-a", ZONE_A), alt="json", prettyPrint="false"
    )

    assert status == 200
    assert body == mirror()["instances"][0]
    assert body["networkInterfaces"][0]["fingerprint"] == "AAAAAAAAAAA="


def test_unknown_instance_answers_google_404_body(emu: ComputeEmulator) -> None:
    status, body = call(emu, "GET", instance_path("nope", ZONE_A))

    assert status == 404
    message = f"The resource 'projects/{PROJECT}/zones/{ZONE_A}/instances/nope' was not found"
    assert body == {
        "error": {
            "code": 404,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "notFound"}],
        }
    }


def test_unknown_route_and_wrong_verb_answer_404(emu: ComputeEmulator) -> None:
    assert call(emu, "GET", f"{ROOT}/global/networks/default")[0] == 404
    assert call(emu, "POST", instance_path("iris-a", ZONE_A))[0] == 404
    assert emu.call_counts()["unknown"] == 2


def test_list_and_aggregated_list_filter_by_name(emu: ComputeEmulator) -> None:
    _, listed = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/instances", filter='name = "iris-a"')
    _, none = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/instances", filter='name = "iris-b"')
    _, aggregated = call(emu, "GET", f"{ROOT}/aggregated/instances", filter="name eq iris-.*")

    assert listed["kind"] == "compute#instanceList"
    assert [i["name"] for i in listed["items"]] == ["iris-a"]
    assert none["items"] == []
    assert aggregated["kind"] == "compute#instanceAggregatedList"
    assert {
        scope: [i["name"] for i in v["instances"]] for scope, v in aggregated["items"].items()
    } == {
        f"zones/{ZONE_A}": ["iris-a"],
        f"zones/{ZONE_B}": ["iris-b"],
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('name = "iris-vip"', ["iris-vip"]),
        (f'address = "{PUBLIC_IP}"', ["iris-vip"]),
        ("status = IN_USE", ["iris-vip"]),
        ("status = RESERVED", []),
        ("name eq iris-.*", ["iris-vip"]),
        ("name eq other", []),
        (f'(address = "{PUBLIC_IP}") (status != RESERVED)', ["iris-vip"]),
    ],
)
def test_address_list_filters(emu: ComputeEmulator, expression: str, expected: list[str]) -> None:
    status, body = call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses", filter=expression)

    assert status == 200
    assert body["kind"] == "compute#addressList"
    assert [a["name"] for a in body["items"]] == expected


def test_unparseable_filter_is_400(emu: ComputeEmulator) -> None:
    status, body = call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses", filter="name = (")

    assert status == 400
    assert error_reason(body) == "invalid"


def test_address_and_subnetwork_get(emu: ComputeEmulator) -> None:
    _, address = call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses/iris-vip")
    _, subnet = call(emu, "GET", f"{ROOT}/regions/{REGION}/subnetworks/default")

    assert address == emu.address(PROJECT, REGION, "iris-vip")
    assert address["users"] == [instance_url(PROJECT, ZONE_A, "iris-a")]
    assert subnet["secondaryIpRanges"] == [{"rangeName": "vips", "ipCidrRange": "10.8.0.0/24"}]


# ---- updateNetworkInterface: PATCH semantics and fingerprints ----------------------------------


def test_absent_alias_field_leaves_aliases_in_place(emu: ComputeEmulator) -> None:
    before = nic0(emu, "iris-a", ZONE_A)

    status, operation = patch_nic(emu, "iris-a", ZONE_A, {"fingerprint": before["fingerprint"]})

    assert status == 200
    assert operation["status"] == "DONE"
    assert "error" not in operation
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]
    assert nic0(emu, "iris-a", ZONE_A)["fingerprint"] != before["fingerprint"]


def test_empty_alias_list_clears_aliases(emu: ComputeEmulator) -> None:
    status, operation = set_aliases(emu, "iris-a", ZONE_A, [])

    assert (status, operation["status"]) == (200, "DONE")
    assert "aliasIpRanges" not in nic0(emu, "iris-a", ZONE_A)


def test_alias_moves_between_instances(emu: ComputeEmulator) -> None:
    set_aliases(emu, "iris-a", ZONE_A, [])
    status, operation = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.0.0.250"}])

    assert status == 200
    assert "error" not in operation
    assert aliases(emu, "iris-b", ZONE_B) == [VIP]
    assert aliases(emu, "iris-a", ZONE_A) == []


def test_missing_fingerprint_is_400(emu: ComputeEmulator) -> None:
    status, body = patch_nic(emu, "iris-a", ZONE_A, {"aliasIpRanges": []})

    assert status == 400
    assert body["error"]["code"] == 400
    assert error_reason(body) == "required"
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]


def test_stale_fingerprint_is_412_condition_not_met(emu: ComputeEmulator) -> None:
    stale = nic0(emu, "iris-a", ZONE_A)["fingerprint"]
    set_aliases(emu, "iris-a", ZONE_A, [{"ipCidrRange": VIP}, {"ipCidrRange": "10.0.0.251/32"}])

    status, body = patch_nic(emu, "iris-a", ZONE_A, {"aliasIpRanges": [], "fingerprint": stale})

    assert status == 412
    assert error_reason(body) == "conditionNotMet"
    assert aliases(emu, "iris-a", ZONE_A) == [VIP, "10.0.0.251/32"]


def test_url_safe_unpadded_fingerprint_is_accepted() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0xFE, 0xFB, 0xEF, 0xFF, 0xFE])
    standard = base64.b64encode(raw).decode()
    url_safe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "+" in standard or "/" in standard
    state = mirror()
    state["instances"][0]["networkInterfaces"][0]["fingerprint"] = standard
    with ComputeEmulator(state) as emu:
        status, operation = patch_nic(
            emu, "iris-a", ZONE_A, {"aliasIpRanges": [], "fingerprint": url_safe}
        )

        assert (status, operation["status"]) == (200, "DONE")
        assert aliases(emu, "iris-a", ZONE_A) == []


def test_only_aliases_and_network_may_change(emu: ComputeEmulator) -> None:
    nic = nic0(emu, "iris-a", ZONE_A)

    changed_ip = patch_nic(
        emu, "iris-a", ZONE_A, {"networkIP": "10.0.0.99", "fingerprint": nic["fingerprint"]}
    )
    unknown = patch_nic(emu, "iris-a", ZONE_A, {"colour": "red", "fingerprint": nic["fingerprint"]})
    whole_nic_back = patch_nic(emu, "iris-a", ZONE_A, {**nic, "aliasIpRanges": []})

    assert changed_ip[0] == 400
    assert error_reason(changed_ip[1]) == "invalid"
    assert unknown[0] == 400
    assert "Unknown name" in unknown[1]["error"]["message"]
    assert whole_nic_back[0] == 200
    assert nic0(emu, "iris-a", ZONE_A)["networkIP"] == "10.0.0.10"
    assert aliases(emu, "iris-a", ZONE_A) == []


def test_edit_instance_bumps_fingerprint_so_old_readers_get_412(emu: ComputeEmulator) -> None:
    old = nic0(emu, "iris-a", ZONE_A)["fingerprint"]

    emu.edit_instance(
        PROJECT, ZONE_A, "iris-a", lambda inst: inst["networkInterfaces"][0].pop("aliasIpRanges")
    )
    status, _ = patch_nic(emu, "iris-a", ZONE_A, {"aliasIpRanges": [], "fingerprint": old})

    assert aliases(emu, "iris-a", ZONE_A) == []
    assert nic0(emu, "iris-a", ZONE_A)["fingerprint"] != old
    assert status == 412


# ---- requestId -----------------------------------------------------------------------------------


def test_repeated_request_id_returns_same_operation_and_applies_once(emu: ComputeEmulator) -> None:
    request_id = str(uuid.uuid4())
    first_status, first = set_aliases(emu, "iris-a", ZONE_A, [], requestId=request_id)
    emu.edit_instance(
        PROJECT,
        ZONE_A,
        "iris-a",
        lambda inst: inst["networkInterfaces"][0].update(aliasIpRanges=[{"ipCidrRange": VIP}]),
    )

    again_status, again = set_aliases(
        emu, "iris-a", ZONE_A, [{"ipCidrRange": "10.0.0.251/32"}], requestId=request_id
    )

    assert (first_status, again_status) == (200, 200)
    assert again["name"] == first["name"]
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]
    assert len(emu.operations()) == 1


def test_retry_after_lost_response_with_request_id_applies_once(emu: ComputeEmulator) -> None:
    request_id = str(uuid.uuid4())
    stale = nic0(emu, "iris-a", ZONE_A)["fingerprint"]
    emu.fail_next("compute.instances.updateNetworkInterface", code=503, after_apply=True)

    lost_status, _ = patch_nic(
        emu, "iris-a", ZONE_A, {"aliasIpRanges": [], "fingerprint": stale}, requestId=request_id
    )
    retry_status, operation = patch_nic(
        emu, "iris-a", ZONE_A, {"aliasIpRanges": [], "fingerprint": stale}, requestId=request_id
    )

    assert lost_status == 503
    assert retry_status == 200
    assert operation["status"] == "DONE"
    assert "error" not in operation
    assert aliases(emu, "iris-a", ZONE_A) == []


# ---- operations ------------------------------------------------------------------------------


def test_operation_has_the_real_fields(emu: ComputeEmulator) -> None:
    _, operation = set_aliases(emu, "iris-a", ZONE_A, [])

    assert operation["kind"] == "compute#operation"
    assert operation["name"].startswith("operation-")
    assert operation["operationType"] == "updateNetworkInterface"
    assert operation["targetLink"] == instance_url(PROJECT, ZONE_A, "iris-a")
    assert operation["targetId"] == emu.instance(PROJECT, ZONE_A, "iris-a")["id"]
    assert operation["zone"].endswith(f"/projects/{PROJECT}/zones/{ZONE_A}")
    assert operation["selfLink"].endswith(f"/zones/{ZONE_A}/operations/{operation['name']}")
    assert operation["progress"] == 100
    assert {"insertTime", "startTime", "endTime", "user", "id"} <= set(operation)
    _, fetched = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}")
    assert fetched == operation
    _, listed = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations")
    assert [o["name"] for o in listed["items"]] == [operation["name"]]


def test_unknown_operation_is_404(emu: ComputeEmulator) -> None:
    status, body = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations/operation-1-x")

    assert status == 404
    assert body["error"]["message"] == (
        f"The resource 'projects/{PROJECT}/zones/{ZONE_A}/operations/operation-1-x' was not found"
    )


def test_delayed_operation_applies_later_and_wait_returns_when_done(emu: ComputeEmulator) -> None:
    emu.set_op_latency(0.5)

    _, operation = set_aliases(emu, "iris-a", ZONE_A, [])
    assert operation["status"] == "PENDING"
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]

    started = time.monotonic()
    status, done = call(emu, "POST", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}/wait")
    elapsed = time.monotonic() - started

    assert status == 200
    assert done["status"] == "DONE"
    assert elapsed < 3.0
    assert aliases(emu, "iris-a", ZONE_A) == []
    _, fetched = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}")
    assert fetched["status"] == "DONE"


def test_get_sees_pending_then_running_then_done(emu: ComputeEmulator) -> None:
    emu.set_op_latency(0.6, "compute.instances.setLabels")
    instance = emu.instance(PROJECT, ZONE_A, "iris-a")
    _, operation = call(
        emu,
        "POST",
        instance_path("iris-a", ZONE_A) + "/setLabels",
        {"labels": {"role": "primary"}, "labelFingerprint": instance["labelFingerprint"]},
    )
    seen = [operation["status"]]
    deadline = time.monotonic() + 10
    while seen[-1] != "DONE" and time.monotonic() < deadline:
        _, fetched = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}")
        if fetched["status"] != seen[-1]:
            seen.append(fetched["status"])

    assert seen == ["PENDING", "RUNNING", "DONE"]
    assert emu.instance(PROJECT, ZONE_A, "iris-a")["labels"] == {"role": "primary"}


def test_wait_gives_up_after_wait_max_seconds() -> None:
    with ComputeEmulator(mirror(), op_latency=30, wait_max_seconds=0.3) as emu:
        _, operation = set_aliases(emu, "iris-a", ZONE_A, [])
        started = time.monotonic()

        status, answer = call(
            emu, "POST", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}/wait"
        )

        assert status == 200
        assert answer["status"] in {"PENDING", "RUNNING"}
        assert 0.2 < time.monotonic() - started < 5
        assert aliases(emu, "iris-a", ZONE_A) == [VIP]


def test_stop_releases_a_long_poll() -> None:
    emu = ComputeEmulator(mirror(), op_latency=60).start()
    try:
        _, operation = set_aliases(emu, "iris-a", ZONE_A, [])
        answers: list[int] = []

        def long_poll() -> None:
            try:
                answers.append(
                    call(emu, "POST", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}/wait")[
                        0
                    ]
                )
            except OSError:
                answers.append(-1)

        poller = threading.Thread(target=long_poll)
        poller.start()
        deadline = time.monotonic() + 10
        while emu.call_counts()["compute.zoneOperations.wait"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        emu.stop()
        emu.stop()
    poller.join(timeout=10)
    assert not poller.is_alive()
    assert time.monotonic() - started < 5


def test_concurrent_patches_with_one_fingerprint_let_only_one_win() -> None:
    with ComputeEmulator(mirror(), op_latency=0.3) as emu:
        fingerprint = nic0(emu, "iris-a", ZONE_A)["fingerprint"]
        bodies = [
            {"aliasIpRanges": [{"ipCidrRange": "10.0.0.251/32"}], "fingerprint": fingerprint},
            {"aliasIpRanges": [{"ipCidrRange": "10.0.0.252/32"}], "fingerprint": fingerprint},
        ]
        operations = [patch_nic(emu, "iris-a", ZONE_A, body)[1] for body in bodies]
        results = [
            call(emu, "POST", f"{ROOT}/zones/{ZONE_A}/operations/{op['name']}/wait")[1]
            for op in operations
        ]

        assert [("error" in r) for r in results] == [False, True]
        assert op_error_code(results[1]) == "CONDITION_NOT_MET"
        assert aliases(emu, "iris-a", ZONE_A) == ["10.0.0.251/32"]


# ---- invariants ------------------------------------------------------------------------------


def test_alias_held_by_another_instance_fails_the_operation(emu: ComputeEmulator) -> None:
    status, operation = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": VIP}])

    assert status == 200
    assert operation["status"] == "DONE"
    assert operation["error"]["errors"] == [
        {
            "code": "IP_IN_USE_BY_ANOTHER_RESOURCE",
            "message": "IP '10.0.0.250/32' is already being used by another resource.",
        }
    ]
    assert operation["httpErrorStatusCode"] == 400
    assert operation["httpErrorMessage"] == "BAD REQUEST"
    assert aliases(emu, "iris-b", ZONE_B) == []


def test_alias_conflict_in_http_mode_is_a_400() -> None:
    with ComputeEmulator(mirror(), alias_conflict_mode="http") as emu:
        status, body = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.0.0.248/29"}])

        assert status == 400
        assert error_reason(body) == "IP_IN_USE_BY_ANOTHER_RESOURCE"
        assert "already being used by another resource" in body["error"]["message"]
        assert aliases(emu, "iris-b", ZONE_B) == []
        assert emu.operations() == []


def test_alias_on_another_instances_primary_ip_is_in_use(emu: ComputeEmulator) -> None:
    _, operation = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.0.0.10/32"}])

    assert op_error_code(operation) == "IP_IN_USE_BY_ANOTHER_RESOURCE"


@pytest.mark.parametrize(
    "cidr",
    [
        "10.1.0.5/32",  # outside the primary range
        "10.0.0.0/32",  # network address
        "10.0.0.1/32",  # gateway
        "10.0.0.254/32",  # second to last
        "10.0.0.255/32",  # broadcast
        "10.0.0.11/32",  # the NIC's own primary IP
    ],
)
def test_alias_outside_range_or_on_reserved_addresses_is_refused(
    emu: ComputeEmulator, cidr: str
) -> None:
    _, operation = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": cidr}])

    assert operation["status"] == "DONE"
    assert op_error_code(operation) == "INVALID_FIELD_VALUE"
    assert cidr in operation["error"]["errors"][0]["message"]
    assert aliases(emu, "iris-b", ZONE_B) == []


def test_secondary_range_alias(emu: ComputeEmulator) -> None:
    inside = set_aliases(
        emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.8.0.5/32", "subnetworkRangeName": "vips"}]
    )[1]
    assert "error" not in inside
    assert nic0(emu, "iris-b", ZONE_B)["aliasIpRanges"] == [
        {"ipCidrRange": "10.8.0.5/32", "subnetworkRangeName": "vips"}
    ]

    outside = set_aliases(
        emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.0.0.100/32", "subnetworkRangeName": "vips"}]
    )[1]
    unknown = set_aliases(
        emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.8.0.5/32", "subnetworkRangeName": "nope"}]
    )[1]

    assert op_error_code(outside) == "INVALID_FIELD_VALUE"
    assert op_error_code(unknown) == "INVALID_FIELD_VALUE"
    assert "nope" in unknown["error"]["errors"][0]["message"]
    assert aliases(emu, "iris-b", ZONE_B) == ["10.8.0.5/32"]


def test_malformed_cidr_is_400(emu: ComputeEmulator) -> None:
    status, body = set_aliases(emu, "iris-b", ZONE_B, [{"ipCidrRange": "10.0.0.250/24"}])

    assert status == 400
    assert error_reason(body) == "invalid"


def test_mutations_on_terminated_instances_are_allowed() -> None:
    state = mirror_state(PROJECT, [Member("iris-c", ZONE_A, "10.0.0.12", status="TERMINATED")])
    with ComputeEmulator(state) as emu:
        _, operation = set_aliases(emu, "iris-c", ZONE_A, [{"ipCidrRange": VIP}])

        assert "error" not in operation
        assert aliases(emu, "iris-c", ZONE_A) == [VIP]
        assert emu.instance(PROJECT, ZONE_A, "iris-c")["status"] == "TERMINATED"


# ---- access configs ----------------------------------------------------------------------------


def add_access_config(
    emu: ComputeEmulator, name: str, zone: str, config: dict[str, Any]
) -> tuple[int, Any]:
    return nic_call(emu, "POST", name, zone, "addAccessConfig", config)


def delete_access_config(
    emu: ComputeEmulator, name: str, zone: str, config_name: str
) -> tuple[int, Any]:
    return nic_call(emu, "POST", name, zone, "deleteAccessConfig", accessConfig=config_name)


def test_second_access_config_is_a_synchronous_400(emu: ComputeEmulator) -> None:
    status, body = add_access_config(emu, "iris-a", ZONE_A, {"name": "x", "type": "ONE_TO_ONE_NAT"})

    assert status == 400
    assert body["error"]["message"] == "At most one access config currently supported."
    assert len(nic0(emu, "iris-a", ZONE_A)["accessConfigs"]) == 1


def test_static_address_follows_its_access_config(emu: ComputeEmulator) -> None:
    _, deleted = delete_access_config(emu, "iris-a", ZONE_A, "External NAT")
    assert "error" not in deleted
    assert "accessConfigs" not in nic0(emu, "iris-a", ZONE_A)
    released = emu.address(PROJECT, REGION, "iris-vip")
    assert released["status"] == "RESERVED"
    assert "users" not in released

    _, added = add_access_config(
        emu,
        "iris-b",
        ZONE_B,
        {"name": "External NAT", "type": "ONE_TO_ONE_NAT", "natIP": PUBLIC_IP},
    )

    assert added["operationType"] == "addAccessConfig"
    assert "error" not in added
    assert nic0(emu, "iris-b", ZONE_B)["accessConfigs"] == [
        {
            "kind": "compute#accessConfig",
            "type": "ONE_TO_ONE_NAT",
            "name": "External NAT",
            "natIP": PUBLIC_IP,
            "networkTier": "PREMIUM",
        }
    ]
    taken = emu.address(PROJECT, REGION, "iris-vip")
    assert taken["status"] == "IN_USE"
    assert taken["users"] == [instance_url(PROJECT, ZONE_B, "iris-b")]


def test_static_address_in_use_elsewhere_fails_the_operation(emu: ComputeEmulator) -> None:
    _, operation = add_access_config(
        emu, "iris-b", ZONE_B, {"name": "External NAT", "natIP": PUBLIC_IP}
    )

    assert operation["status"] == "DONE"
    assert op_error_code(operation) == "IP_IN_USE_BY_ANOTHER_RESOURCE"
    assert "accessConfigs" not in nic0(emu, "iris-b", ZONE_B)
    assert emu.address(PROJECT, REGION, "iris-vip")["users"] == [
        instance_url(PROJECT, ZONE_A, "iris-a")
    ]


def test_standard_tier_address_is_refused_without_its_tier(emu: ComputeEmulator) -> None:
    """An omitted networkTier means PREMIUM: GCE refuses it for a STANDARD address."""
    state = mirror()
    state["addresses"][0]["networkTier"] = "STANDARD"
    emu.load_state(state)
    delete_access_config(emu, "iris-a", ZONE_A, "External NAT")

    status, body = add_access_config(emu, "iris-b", ZONE_B, {"name": "x", "natIP": PUBLIC_IP})

    assert status == 400
    assert body["error"]["errors"][0]["reason"] == "invalid"
    assert "STANDARD" in body["error"]["message"]
    assert "accessConfigs" not in nic0(emu, "iris-b", ZONE_B)

    status, operation = add_access_config(
        emu, "iris-b", ZONE_B, {"name": "x", "natIP": PUBLIC_IP, "networkTier": "STANDARD"}
    )

    assert (status, "error" in operation) == (200, False)
    assert nic0(emu, "iris-b", ZONE_B)["accessConfigs"][0]["networkTier"] == "STANDARD"


def test_access_config_without_nat_ip_gets_an_ephemeral_address(emu: ComputeEmulator) -> None:
    _, operation = add_access_config(emu, "iris-b", ZONE_B, {"type": "ONE_TO_ONE_NAT"})

    config = nic0(emu, "iris-b", ZONE_B)["accessConfigs"][0]
    assert "error" not in operation
    assert config["name"] == "External NAT"
    assert config["natIP"].startswith("192.0.2.")


def test_deleting_a_wrong_access_config_name_succeeds_and_changes_nothing(
    emu: ComputeEmulator,
) -> None:
    before = emu.instance(PROJECT, ZONE_A, "iris-a")

    status, operation = delete_access_config(emu, "iris-a", ZONE_A, "external-nat")

    assert status == 200
    assert operation["status"] == "DONE"
    assert "error" not in operation
    assert emu.instance(PROJECT, ZONE_A, "iris-a") == before
    assert emu.address(PROJECT, REGION, "iris-vip")["status"] == "IN_USE"


# ---- setLabels -------------------------------------------------------------------------------


def test_set_labels_changes_labels_and_fingerprint_and_refuses_stale(emu: ComputeEmulator) -> None:
    old = emu.instance(PROJECT, ZONE_A, "iris-a")["labelFingerprint"]
    path = instance_path("iris-a", ZONE_A) + "/setLabels"

    status, operation = call(
        emu, "POST", path, {"labels": {"mirror-role": "primary"}, "labelFingerprint": old}
    )
    stale_status, stale = call(emu, "POST", path, {"labels": {}, "labelFingerprint": old})

    after = emu.instance(PROJECT, ZONE_A, "iris-a")
    assert (status, operation["operationType"]) == (200, "setLabels")
    assert after["labels"] == {"mirror-role": "primary"}
    assert after["labelFingerprint"] != old
    assert stale_status == 412
    assert error_reason(stale) == "conditionNotMet"


# ---- fault injection -------------------------------------------------------------------------


def test_fail_next_answers_errors_then_recovers(emu: ComputeEmulator) -> None:
    emu.fail_next("compute.instances.get", count=2, code=503)

    first = call(emu, "GET", instance_path("iris-a", ZONE_A))
    second = call(emu, "GET", instance_path("iris-a", ZONE_A))
    third = call(emu, "GET", instance_path("iris-a", ZONE_A))

    assert [first[0], second[0], third[0]] == [503, 503, 200]
    assert first[1]["error"]["code"] == 503
    assert error_reason(first[1]) == "backendError"
    assert first[1]["error"]["errors"][0]["domain"] == "global"


def test_fail_next_on_a_mutation_applies_nothing(emu: ComputeEmulator) -> None:
    emu.fail_next("compute.instances.updateNetworkInterface", code=429)

    status, body = set_aliases(emu, "iris-a", ZONE_A, [])

    assert status == 429
    assert error_reason(body) == "rateLimitExceeded"
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]
    assert emu.operations() == []


def test_fail_next_with_custom_reason_and_message(emu: ComputeEmulator) -> None:
    emu.fail_next("compute.addresses.get", code=403, reason="forbidden", message="Nope.")

    status, body = call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses/iris-vip")

    assert status == 403
    assert body == {
        "error": {
            "code": 403,
            "message": "Nope.",
            "errors": [{"message": "Nope.", "domain": "global", "reason": "forbidden"}],
        }
    }


def test_fail_next_operation_ends_done_with_error_and_applies_nothing(emu: ComputeEmulator) -> None:
    emu.fail_next_operation("compute.instances.updateNetworkInterface")

    status, operation = set_aliases(emu, "iris-a", ZONE_A, [])

    assert status == 200
    assert operation["status"] == "DONE"
    assert operation["error"]["errors"] == [
        {"code": "INTERNAL_ERROR", "message": "Internal error."}
    ]
    assert operation["httpErrorStatusCode"] == 500
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]
    assert "error" not in set_aliases(emu, "iris-a", ZONE_A, [])[1]
    assert aliases(emu, "iris-a", ZONE_A) == []


def test_drop_next_operation_reports_success_and_applies_nothing(emu: ComputeEmulator) -> None:
    emu.drop_next_operation("compute.instances.updateNetworkInterface")

    status, operation = set_aliases(emu, "iris-a", ZONE_A, [])

    assert (status, operation["status"], "error" in operation) == (200, "DONE", False)
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]


def test_operation_fault_for_one_instance_spares_the_others(emu: ComputeEmulator) -> None:
    emu.fail_next_operation("compute.instances.updateNetworkInterface", instance="iris-a")

    assert "error" not in set_aliases(emu, "iris-b", ZONE_B, [])[1]
    assert op_error_code(set_aliases(emu, "iris-a", ZONE_A, [])[1]) == "INTERNAL_ERROR"


def test_garble_next_answers_an_html_page(emu: ComputeEmulator) -> None:
    emu.garble_next("compute.instances.get")
    url = urlsplit(emu.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request("GET", instance_path("iris-a", ZONE_A))
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Type")) == (
            200,
            "text/html; charset=UTF-8",
        )
        assert response.read().startswith(b"<html>")
    finally:
        connection.close()
    assert call(emu, "GET", instance_path("iris-a", ZONE_A))[0] == 200


def test_zone_down_answers_503_for_everything_in_it(emu: ComputeEmulator) -> None:
    _, operation = set_aliases(emu, "iris-a", ZONE_A, [])
    emu.set_zone_down(ZONE_A)

    get = call(emu, "GET", instance_path("iris-a", ZONE_A))
    op = call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations/{operation['name']}")
    other_zone = call(emu, "GET", instance_path("iris-b", ZONE_B))
    _, aggregated = call(emu, "GET", f"{ROOT}/aggregated/instances")

    assert (get[0], op[0], other_zone[0]) == (503, 503, 200)
    assert error_reason(get[1]) == "backendError"
    assert aggregated["unreachables"] == [f"zones/{ZONE_A}"]
    assert list(aggregated["items"]) == [f"zones/{ZONE_B}"]
    emu.set_zone_down(ZONE_A, down=False)
    assert call(emu, "GET", instance_path("iris-a", ZONE_A))[0] == 200


# ---- recording -------------------------------------------------------------------------------


def test_requests_are_recorded_in_order_with_method_ids(emu: ComputeEmulator) -> None:
    call(emu, "GET", instance_path("iris-a", ZONE_A), alt="json")
    set_aliases(emu, "iris-a", ZONE_A, [], requestId="r-1")

    recorded = emu.requests()
    assert [r.method_id for r in recorded] == [
        "compute.instances.get",
        "compute.instances.updateNetworkInterface",
    ]
    assert recorded[0].query == {"alt": ["json"]}
    assert recorded[1].http_method == "PATCH"
    assert recorded[1].query["requestId"] == ["r-1"]
    assert recorded[1].body["aliasIpRanges"] == []
    assert recorded[0].time <= recorded[1].time
    assert [m.method_id for m in emu.mutations()] == ["compute.instances.updateNetworkInterface"]
    assert emu.call_counts()["compute.instances.get"] == 1
    emu.clear_requests()
    assert emu.requests() == []


def test_load_state_replaces_resources(emu: ComputeEmulator) -> None:
    emu.load_state(mirror_state(PROJECT, [Member("solo", ZONE_A, "10.0.0.20")]))

    assert call(emu, "GET", instance_path("iris-a", ZONE_A))[0] == 404
    assert call(emu, "GET", instance_path("solo", ZONE_A))[0] == 200


# ---- command line ------------------------------------------------------------------------------


def test_command_line_serves_the_state_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(mirror()))
    process = subprocess.Popen(
        [sys.executable, "-m", EMULATOR_MODULE, "--port", "0", "--state", str(state_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("compute emulator listening on http://127.0.0.1:")
        url = urlsplit(line.split()[-1])
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        try:
            connection.request("GET", instance_path("iris-a", ZONE_A))
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["name"] == "iris-a"
        finally:
            connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
