"""Loading a hand-written state file: server-set fields are filled in, missing ones named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulators.compute import ComputeEmulator, StateError
from fakes.test_compute_emulator import call, instance_path

pytestmark = pytest.mark.integration

PROJECT = "mirror-proj"
ZONE = "us-west1-a"
SUBNET = f"projects/{PROJECT}/regions/us-west1/subnetworks/default"


def hand_written() -> dict[str, Any]:
    """What a person types: no selfLink, kind, id, or fingerprints anywhere."""
    return {
        "instances": [
            {
                "name": "iris-a",
                "zone": f"projects/{PROJECT}/zones/{ZONE}",
                "status": "RUNNING",
                "networkInterfaces": [
                    {
                        "network": f"projects/{PROJECT}/global/networks/default",
                        "subnetwork": SUBNET,
                        "networkIP": "10.0.0.10",
                        "accessConfigs": [{"name": "nat", "natIP": "34.120.0.10"}],
                    }
                ],
            }
        ],
        "subnetworks": [
            {
                "name": "default",
                "region": f"projects/{PROJECT}/regions/us-west1",
                "network": f"projects/{PROJECT}/global/networks/default",
                "ipCidrRange": "10.0.0.0/24",
            }
        ],
        "addresses": [
            {
                "name": "iris-vip",
                "region": f"projects/{PROJECT}/regions/us-west1",
                "address": "34.120.0.10",
            }
        ],
    }


def test_server_set_fields_are_filled_in_as_gce_would() -> None:
    with ComputeEmulator(hand_written()) as emu:
        status, body = call(emu, "GET", instance_path("iris-a", ZONE))
        address = emu.address(PROJECT, "us-west1", "iris-vip")

    assert status == 200
    assert body["selfLink"].endswith(f"/projects/{PROJECT}/zones/{ZONE}/instances/iris-a")
    assert body["kind"] == "compute#instance"
    assert body["id"].isdigit()
    assert body["fingerprint"]
    assert body["labelFingerprint"] == "42WmSpB8rSM="
    nic = body["networkInterfaces"][0]
    assert nic["name"] == "nic0"
    assert nic["fingerprint"]
    assert address["status"] == "IN_USE"
    assert address["users"] == [body["selfLink"]]


def test_a_nic_without_fingerprint_can_be_updated_with_the_one_read_back() -> None:
    with ComputeEmulator(hand_written()) as emu:
        fingerprint = call(emu, "GET", instance_path("iris-a", ZONE))[1]["networkInterfaces"][0][
            "fingerprint"
        ]
        status, operation = call(
            emu,
            "PATCH",
            instance_path("iris-a", ZONE) + "/updateNetworkInterface",
            {"aliasIpRanges": [{"ipCidrRange": "10.0.0.250/32"}], "fingerprint": fingerprint},
            networkInterface="nic0",
        )
        held = emu.instance(PROJECT, ZONE, "iris-a")["networkInterfaces"][0]["aliasIpRanges"]

    assert status == 200, operation
    assert "error" not in operation
    assert held == [{"ipCidrRange": "10.0.0.250/32"}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["instances"][0].pop("zone"), "state: instances[0] (iris-a): missing 'zone'"),
        (lambda s: s["subnetworks"][0].pop("name"), "state: subnetworks[0]: missing 'name'"),
        (
            lambda s: s["addresses"][0].update(region="us-west1"),
            "state: addresses[0] (iris-vip): missing 'selfLink' (or a 'region' URL naming the "
            "project)",
        ),
    ],
)
def test_a_field_only_the_author_knows_is_refused_in_one_line(change: Any, message: str) -> None:
    state = hand_written()
    change(state)

    with pytest.raises(StateError) as raised:
        ComputeEmulator(state)

    assert str(raised.value) == message


def test_command_line_names_the_missing_field_instead_of_a_traceback(tmp_path: Path) -> None:
    state = hand_written()
    del state["instances"][0]["zone"]
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))

    done = subprocess.run(
        [sys.executable, "-m", "emulators.compute", "--state", str(state_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr == f"{state_file}: state: instances[0] (iris-a): missing 'zone'\n"
