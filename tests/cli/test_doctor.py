"""`mirror-vip doctor`: a healthy mirror has no problem; every problem it reports is provoked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulators.compute import ComputeEmulator
from emulators.compute.urls import subnetwork_url
from local.mirrors import Member, static_address
from support import mirrors

from .conftest import Cli

pytestmark = pytest.mark.integration


def checks(cli: Cli, *args: str) -> tuple[int, list[dict[str, Any]]]:
    run = cli("doctor", "--json", *args)
    return run.code, run.mirror["checks"]


def findings(found: list[dict[str, Any]], level: str) -> list[tuple[str, str]]:
    return [(c["name"], c["detail"]) for c in found if c["level"] == level]


def edit_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = mirrors.config()
    edit(document["mirrors"]["IRISMIRROR"])
    path.write_text(json.dumps(document))


def test_a_healthy_mirror_has_no_problem(cli: Cli) -> None:
    code, found = checks(cli)

    assert code == 0
    assert findings(found, "problem") == []
    assert [name for name, _ in findings(found, "warning")] == ["vip_reserved", "topic"]


def test_a_reserved_internal_vip_is_ok(cli: Cli, compute: ComputeEmulator) -> None:
    state = mirrors.state()
    vip = static_address(mirrors.PROJECT, mirrors.REGION, "irismirror-vip", "10.0.0.250")
    vip["addressType"] = "INTERNAL"
    state["addresses"].append(vip)
    compute.load_state(state)

    _, found = checks(cli)

    assert ("vip_reserved", "10.0.0.250 is reserved as irismirror-vip") in findings(found, "ok")


@pytest.mark.parametrize(
    ("members", "name", "detail"),
    [
        ((mirrors.primary(),), "member isc-backup-001", "does not exist in us-west1-b"),
        (
            (mirrors.primary(), mirrors.backup(status="TERMINATED")),
            "member isc-backup-001",
            "is TERMINATED: a failover to it fails",
        ),
        (
            (mirrors.primary(aliases=()), mirrors.backup()),
            "holdings",
            "VIP 10.0.0.250/32 on no member",
        ),
    ],
)
def test_member_and_holding_problems(
    cli: Cli, compute: ComputeEmulator, members: tuple[Member, ...], name: str, detail: str
) -> None:
    compute.load_state(mirrors.state(*members))

    code, found = checks(cli)

    assert code == 1
    assert (name, detail) in findings(found, "problem")


def test_a_member_in_a_zone_that_is_down_is_a_problem(cli: Cli, compute: ComputeEmulator) -> None:
    compute.set_zone_down(mirrors.BACKUP_ZONE)

    code, found = checks(cli)

    assert code == 1
    assert any(
        name == "member isc-backup-001" and "cannot be read" in detail
        for name, detail in findings(found, "problem")
    )


def test_a_member_without_the_nic_is_a_problem(cli: Cli, config_file: Path) -> None:
    edit_config(config_file, lambda m: m.update(network_interface="nic1"))

    code, found = checks(cli)

    assert code == 1
    assert ("member isc-primary-001", "has no nic1") in findings(found, "problem")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            {"private_vip": "10.5.0.9/32"},
            "VIP 10.5.0.9/32 is outside default primary range 10.0.0.0/24",
        ),
        ({"private_vip": "10.0.0.1/32"}, "VIP 10.0.0.1/32 uses a reserved address"),
        ({"private_vip": "10.0.0.12/32"}, "the VIP overlaps a member's own IP"),
        ({"subnetwork_range_name": "nope"}, "default has no secondary range nope"),
        (
            {"subnetwork_range_name": "vips"},
            "VIP 10.0.0.250/32 is outside default range vips 10.1.0.0/24",
        ),
    ],
)
def test_vip_placement_problems(
    cli: Cli, config_file: Path, change: dict[str, str], detail: str
) -> None:
    edit_config(config_file, lambda m: m.update(change))

    code, found = checks(cli)

    assert code == 1
    assert ("vip_in_subnet", detail) in findings(found, "problem")


def test_members_in_two_subnetworks_are_a_problem(cli: Cli, compute: ComputeEmulator) -> None:
    state = mirrors.state()
    other = dict(state["subnetworks"][0], name="other", id="2")
    other["selfLink"] = subnetwork_url(mirrors.PROJECT, mirrors.REGION, "other")
    state["subnetworks"].append(other)
    state["instances"][1]["networkInterfaces"][0]["subnetwork"] = other["selfLink"]
    compute.load_state(state)

    code, found = checks(cli)

    assert code == 1
    assert any(
        name == "vip_in_subnet" and detail.startswith("members in different subnetworks")
        for name, detail in findings(found, "problem")
    )


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"address_name": "gone"}, "address gone in us-west1: "),
        ({"region": "us-east1"}, "address isc-mirror in us-east1, members in us-west1"),
    ],
)
def test_static_address_problems(
    cli: Cli, config_file: Path, change: dict[str, str], detail: str
) -> None:
    edit_config(config_file, lambda m: m["public_ip"].update(change))

    code, found = checks(cli)

    assert code == 1
    assert any(
        name == "static_address" and text.startswith(detail)
        for name, text in findings(found, "problem")
    )


def test_an_internal_address_as_the_static_ip_is_a_problem(
    cli: Cli, compute: ComputeEmulator
) -> None:
    state = mirrors.state()
    state["addresses"][0]["addressType"] = "INTERNAL"
    compute.load_state(state)

    _, found = checks(cli)

    assert ("static_address", "address isc-mirror in us-west1 is INTERNAL") in findings(
        found, "problem"
    )


def test_non_members_holding_the_vip_or_the_static_ip_are_problems(
    cli: Cli, compute: ComputeEmulator
) -> None:
    squatter = Member("web-1", "us-west1-c", "10.0.0.40", aliases=(mirrors.VIP,))
    thief = Member("web-2", "us-west1-c", "10.0.0.41", nat_ip=mirrors.STATIC_IP)
    compute.load_state(
        mirrors.state(mirrors.primary(nat_ip=None), mirrors.backup(), squatter, thief)
    )

    code, found = checks(cli)

    assert code == 1
    problems = findings(found, "problem")
    assert ("outsiders", "web-1 holds the VIP") in problems
    assert ("outsiders", "web-2 holds the static IP") in problems


def test_a_missing_permission_of_the_role_is_a_problem(cli: Cli, compute: ComputeEmulator) -> None:
    compute.deny_permissions(
        "compute.instances.setLabels", "compute.subnetworks.use", "compute.addresses.use"
    )

    code, found = checks(cli)

    assert code == 1
    [(_, detail)] = [f for f in findings(found, "problem") if f[0] == "permissions"]
    assert detail.startswith(
        "missing compute.instances.setLabels, compute.subnetworks.use, compute.addresses.use"
    )


def test_a_missing_role_file_is_a_warning(cli: Cli, tmp_path: Path) -> None:
    _, found = checks(cli, "--role-file", str(tmp_path / "none.yaml"))

    assert "permissions" in [name for name, _ in findings(found, "warning")]
