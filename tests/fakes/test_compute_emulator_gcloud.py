"""The real gcloud CLI against the emulator: an independent client, Google's own.

gcloud re-encodes fingerprints URL-safe, adds `alt=json`, sends `"aliasIpRanges": []` to clear,
and waits on operations with zoneOperations.wait; passing here means the emulator accepts what
Google's tooling really sends. Each gcloud call costs one to three seconds, so the file keeps to a
handful of them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulators.compute.server import ComputeEmulator
from emulators.compute.urls import instance_url
from fakes.layout import vip_on_first_vm
from local.mirrors import compute_state, route_layout

GCLOUD = shutil.which("gcloud")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(GCLOUD is None, reason="the gcloud CLI is not installed"),
]

PROJECT = "gcloud-proj"
ZONE_A = "us-east1-b"
ZONE_B = "us-east1-c"
REGION = "us-east1"
VIP = "10.0.0.250/32"
PUBLIC_IP = "34.120.0.30"
FINGERPRINT = bytes([0xFB, 0xFF, 0xBF, 0xFE, 0xFB, 0xEF, 0xFF, 0xFE])
"""Encodes with `+` and `/`, so gcloud's URL-safe re-encoding (`-`, `_`) really differs."""

Gcloud = Callable[..., subprocess.CompletedProcess[str]]
ROUTE_LAYOUT = route_layout(0, project="gcloud-route-proj")


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    state = vip_on_first_vm(PROJECT, ZONE_A, ZONE_B, vip=VIP, public_ip=PUBLIC_IP)
    for instance in state["instances"]:
        instance["networkInterfaces"][0]["fingerprint"] = base64.b64encode(FINGERPRINT).decode()
    with ComputeEmulator(state) as emulator:
        yield emulator


@pytest.fixture
def gcloud(emu: ComputeEmulator, tmp_path: Path) -> Gcloud:
    """Run `gcloud compute ...` against the emulator with a scratch configuration."""
    return _gcloud_runner(emu, tmp_path, PROJECT)


def _gcloud_runner(emu: ComputeEmulator, tmp_path: Path, project: str) -> Gcloud:
    env = {
        **os.environ,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": f"{emu.url}/compute/v1/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GCLOUD or "gcloud", "compute", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def aliases(emu: ComputeEmulator, name: str, zone: str) -> list[str]:
    nic = emu.instance(PROJECT, zone, name)["networkInterfaces"][0]
    return [r["ipCidrRange"] for r in nic.get("aliasIpRanges", [])]


def test_describe_prints_exactly_the_emulated_instance(
    emu: ComputeEmulator, gcloud: Gcloud
) -> None:
    result = gcloud("instances", "describe", "iris-a", "--zone", ZONE_A, "--format=json")

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    emulated = emu.instance(PROJECT, ZONE_A, "iris-a")
    # gcloud decodes bytes fields and prints them URL-safe: equal as bytes, not as text.
    printed_nic, emulated_nic = printed["networkInterfaces"][0], emulated["networkInterfaces"][0]
    assert base64.urlsafe_b64decode(printed_nic.pop("fingerprint")) == FINGERPRINT
    assert base64.b64decode(emulated_nic.pop("fingerprint")) == FINGERPRINT
    assert printed == emulated
    assert emu.requests()[0].query["alt"] == ["json"]


def test_update_aliases_adds_then_clears_through_an_operation_wait(
    emu: ComputeEmulator, gcloud: Gcloud
) -> None:
    emu.set_op_latency(0.3)

    cleared = gcloud(
        "instances", "network-interfaces", "update", "iris-a", "--zone", ZONE_A, "--aliases="
    )
    added = gcloud(
        "instances", "network-interfaces", "update", "iris-b", "--zone", ZONE_B, f"--aliases={VIP}"
    )

    assert cleared.returncode == 0, cleared.stderr
    assert added.returncode == 0, added.stderr
    assert aliases(emu, "iris-a", ZONE_A) == []
    assert aliases(emu, "iris-b", ZONE_B) == [VIP]
    patches = [r for r in emu.requests() if r.method_id.endswith("updateNetworkInterface")]
    assert patches[0].body["aliasIpRanges"] == []
    assert base64.urlsafe_b64decode(patches[0].body["fingerprint"]) == FINGERPRINT
    assert "-" in patches[0].body["fingerprint"] or "_" in patches[0].body["fingerprint"]
    assert emu.call_counts()["compute.zoneOperations.wait"] >= 2


def test_alias_held_elsewhere_makes_gcloud_fail_with_the_operation_error(
    emu: ComputeEmulator, gcloud: Gcloud
) -> None:
    emu.set_op_latency(0.2)

    result = gcloud(
        "instances", "network-interfaces", "update", "iris-b", "--zone", ZONE_B, f"--aliases={VIP}"
    )

    assert result.returncode != 0
    assert "is already being used by another resource" in result.stderr
    assert aliases(emu, "iris-b", ZONE_B) == []
    assert aliases(emu, "iris-a", ZONE_A) == [VIP]


def test_static_ip_moves_with_delete_and_add_access_config(
    emu: ComputeEmulator, gcloud: Gcloud
) -> None:
    deleted = gcloud(
        "instances",
        "delete-access-config",
        "iris-a",
        "--zone",
        ZONE_A,
        "--access-config-name=External NAT",
    )
    added = gcloud(
        "instances",
        "add-access-config",
        "iris-b",
        "--zone",
        ZONE_B,
        "--access-config-name=External NAT",
        f"--address={PUBLIC_IP}",
    )

    assert deleted.returncode == 0, deleted.stderr
    assert added.returncode == 0, added.stderr
    assert "accessConfigs" not in emu.instance(PROJECT, ZONE_A, "iris-a")["networkInterfaces"][0]
    config = emu.instance(PROJECT, ZONE_B, "iris-b")["networkInterfaces"][0]["accessConfigs"][0]
    assert (config["name"], config["natIP"]) == ("External NAT", PUBLIC_IP)
    address = emu.address(PROJECT, REGION, "iris-vip")
    assert address["status"] == "IN_USE"
    assert address["users"] == [instance_url(PROJECT, ZONE_B, "iris-b")]


@pytest.fixture
def route_emu() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(compute_state([ROUTE_LAYOUT]), op_latency=0.2) as emulator:
        yield emulator


def test_route_mode_failover_by_hand_with_gcloud(
    route_emu: ComputeEmulator, tmp_path: Path
) -> None:
    """What route mode does, done with Google's CLI: route create (a global operation waited
    on), forwarding-rules set-target (a regional one), route delete."""
    run = _gcloud_runner(route_emu, tmp_path, ROUTE_LAYOUT.project)
    backup = ROUTE_LAYOUT.members[1]
    created = run(
        "routes",
        "create",
        "vip-to-backup",
        "--network=default",
        f"--destination-range={ROUTE_LAYOUT.vip}",
        "--priority=900",
        f"--next-hop-instance={backup.name}",
        f"--next-hop-instance-zone={backup.zone}",
    )
    inside = run(
        "routes",
        "create",
        "vip-in-subnet",
        "--network=default",
        "--destination-range=10.0.0.9/32",
        f"--next-hop-instance={backup.name}",
        f"--next-hop-instance-zone={backup.zone}",
    )
    retargeted = run(
        "forwarding-rules",
        "set-target",
        "isc-mirror-fr",
        f"--region={ROUTE_LAYOUT.region}",
        f"--target-instance={backup.target_instance}",
        f"--target-instance-zone={backup.zone}",
    )
    deleted = run("routes", "delete", "vip-to-backup", "--quiet")

    assert created.returncode == 0, created.stderr
    assert inside.returncode != 0
    assert "destRange" in inside.stderr
    assert retargeted.returncode == 0, retargeted.stderr
    assert deleted.returncode == 0, deleted.stderr
    rule = route_emu.forwarding_rule(ROUTE_LAYOUT.project, ROUTE_LAYOUT.region, "isc-mirror-fr")
    assert rule["target"].endswith(f"/zones/{backup.zone}/targetInstances/{backup.target_instance}")
    assert route_emu.routes(ROUTE_LAYOUT.project) == []
    waits = route_emu.call_counts()
    assert waits["compute.globalOperations.wait"] + waits["compute.globalOperations.get"] >= 2
    assert waits["compute.regionOperations.wait"] + waits["compute.regionOperations.get"] >= 1
