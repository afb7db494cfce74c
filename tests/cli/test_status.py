"""`mirror-vip status` and `plan` against the Compute emulator: holders, every drift, exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from emulators.compute import ComputeEmulator
from local.mirrors import Member
from support import mirrors

from .conftest import Cli

pytestmark = pytest.mark.integration


def test_a_clean_mirror_is_consistent_and_read_quickly(cli: Cli) -> None:
    started = time.monotonic()
    run = cli("status", "--json")
    elapsed = time.monotonic() - started

    assert run.code == 0
    assert run.doc["command"] == "status"
    assert run.mirror["vip_holders"] == ["isc-primary-001"]
    assert run.mirror["public_ip_holders"] == ["isc-primary-001"]
    assert run.mirror["consistent"] is True
    assert [m["status"] for m in run.mirror["members"]] == ["RUNNING", "RUNNING"]
    assert elapsed < 1.0


def test_status_reports_the_high_water_mark_after_a_move(cli: Cli) -> None:
    assert cli("move", "--to", "isc-backup-001", "--yes").code == 0

    run = cli("status", "--json")

    assert run.mirror["high_water_mark"]["member"] == "isc-backup-001"
    assert run.mirror["high_water_mark"]["label"] == "mirror-vip-irismirror"


def drifts(cli: Cli) -> tuple[int, list[str], list[str]]:
    run = cli("status", "--json")
    found = run.mirror["drifts"]
    return run.code, [d["code"] for d in found], [d["message"] for d in found]


@pytest.mark.parametrize(
    ("members", "code", "message"),
    [
        (
            (mirrors.primary(aliases=()), mirrors.backup()),
            "vip_on_no_member",
            "VIP 10.0.0.250/32 on no member",
        ),
        (
            (mirrors.primary(), mirrors.backup(aliases=(mirrors.VIP,))),
            "vip_on_several_members",
            "VIP 10.0.0.250/32 on 2 members: isc-primary-001, isc-backup-001",
        ),
        (
            (mirrors.primary(aliases=()), mirrors.backup(aliases=(mirrors.VIP,))),
            "static_ip_elsewhere",
            "static IP on isc-primary-001 but VIP on isc-backup-001",
        ),
        (
            (mirrors.primary(status="TERMINATED"), mirrors.backup()),
            "holder_not_running",
            "VIP on isc-primary-001, which is TERMINATED",
        ),
        (
            (mirrors.primary(nat_ip=None), mirrors.backup()),
            "static_ip_on_no_member",
            "static IP 203.0.113.10 on no member",
        ),
        (
            (mirrors.primary(),),
            "member_missing",
            "isc-backup-001 does not exist",
        ),
    ],
)
def test_every_drift_is_named_and_degrades(
    cli: Cli, compute: ComputeEmulator, members: tuple[Member, ...], code: str, message: str
) -> None:
    compute.load_state(mirrors.state(*members))

    exit_code, codes, messages = drifts(cli)

    assert exit_code == 1
    assert code in codes
    assert message in messages


def test_a_static_ip_used_by_a_non_member_is_a_drift(cli: Cli, compute: ComputeEmulator) -> None:
    outsider = Member("web-1", "us-west1-a", "10.0.0.40", nat_ip=mirrors.STATIC_IP)
    compute.load_state(mirrors.state(mirrors.primary(nat_ip=None), mirrors.backup(), outsider))

    _, codes, messages = drifts(cli)

    assert "static_ip_on_non_member" in codes
    assert any("web-1" in m for m in messages)


def test_a_mark_naming_another_member_is_a_drift(cli: Cli, compute: ComputeEmulator) -> None:
    label = {"mirror-vip-irismirror": "1700000000000-isc-backup-001"}
    compute.load_state(mirrors.state(mirrors.primary(labels=label), mirrors.backup()))

    _, codes, messages = drifts(cli)

    assert codes == ["mark_disagrees"]
    assert messages == ["high-water mark names isc-backup-001 but VIP on isc-primary-001"]


def test_a_zone_down_makes_its_member_unreachable(cli: Cli, compute: ComputeEmulator) -> None:
    compute.set_zone_down(mirrors.BACKUP_ZONE)

    run = cli("status", "--json")

    assert run.code == 1
    assert run.mirror["members"][1]["status"] == "UNREACHABLE"
    assert "member_unreachable" in [d["code"] for d in run.mirror["drifts"]]


def test_an_unreachable_api_exits_3(cli: Cli, compute: ComputeEmulator) -> None:
    compute.stop()

    run = cli("status", "--json")

    assert run.code == 3
    assert run.mirror["error"] == "Compute API unreachable or denied"


def test_a_denied_api_exits_3(cli: Cli, compute: ComputeEmulator) -> None:
    compute.fail_next("compute.instances.get", count=2, code=403, reason="forbidden")

    assert cli("status", "--json").code == 3


def test_a_bad_config_exits_2_naming_the_field(cli: Cli, config_file: Path) -> None:
    document = mirrors.config()
    document["mirrors"]["IRISMIRROR"]["privte_vip"] = "10.0.0.9"
    config_file.write_text(json.dumps(document))

    run = cli("status", "--json")

    assert run.code == 2
    assert "privte_vip" in run.doc["error"]


def test_an_unknown_mirror_exits_2(cli: Cli) -> None:
    run = cli("status", "--json", "--mirror", "NOPE")

    assert run.code == 2
    assert "NOPE" in run.doc["error"]


def test_plan_lists_writes_in_order_with_the_critical_path(
    cli: Cli, compute: ComputeEmulator
) -> None:
    before = len(compute.mutations())

    run = cli("plan", "--to", "isc-backup-001", "--json")

    plan = run.mirror
    assert run.code == 0
    assert [(w["method"].rsplit(".", 1)[1], w["instance"]) for w in plan["writes"]] == [
        ("updateNetworkInterface", "isc-primary-001"),
        ("updateNetworkInterface", "isc-backup-001"),
        ("deleteAccessConfig", "isc-primary-001"),
        ("addAccessConfig", "isc-backup-001"),
        ("addAccessConfig", "isc-primary-001"),
        ("setLabels", "isc-primary-001"),
        ("setLabels", "isc-backup-001"),
    ]
    assert plan["writes"][1]["after"] == [1]
    assert plan["writes"][2]["sent_after"] == [1]
    assert plan["critical_path"] == [1, 2]
    assert len(compute.mutations()) == before


def test_plan_to_the_holder_writes_only_the_mark(cli: Cli) -> None:
    plan = cli("plan", "--to", "ISC_PRIMARY_001", "--json").mirror

    assert plan["changes"] is False
    assert {w["method"] for w in plan["writes"]} == {"compute.instances.setLabels"}


def test_plan_to_a_stopped_member_is_refused(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(mirrors.state(mirrors.primary(), mirrors.backup(status="TERMINATED")))

    run = cli("plan", "--to", "isc-backup-001", "--json")

    assert run.code == 1
    assert "TERMINATED" in run.mirror["refused"]


def test_plan_to_a_non_member_exits_2(cli: Cli) -> None:
    assert cli("plan", "--to", "web-1", "--json").code == 2
