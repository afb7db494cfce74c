"""`mirror-vip` on a route-mode mirror, against the Compute emulator: status with every route
drift, plan, move (the function's `RouteMover`), doctor with every route-mode problem provoked.

The routes are seeded the way mirror-vip writes them (`route_plan.route_name/route_description`),
or as someone else's; every assertion is on the exit code, the `--json` document, or what the
emulator holds afterwards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.compute import ComputeEmulator
from emulators.compute.urls import instance_url, network_url, route_url
from local.mirrors import Member, MirrorLayout, compute_state, route_layout
from support import mirrors
from vipmover.config import parse_config
from vipmover.plan import Mark
from vipmover.route_plan import BASE_PRIORITY, route_description, route_name

from .conftest import Cli

pytestmark = pytest.mark.integration

LAYOUT = route_layout(0, project=mirrors.PROJECT)
PRIMARY, BACKUP = LAYOUT.members
VIP = LAYOUT.vip
RULE, RULE_IP = LAYOUT.public or ("", "")
MARK_MS = 1777593600000
MIRROR = parse_config({"mirrors": {LAYOUT.name: LAYOUT.config_entry()}}).mirrors[LAYOUT.name]


def own_route(member: Member, priority: int = BASE_PRIORITY, mark_ms: int = MARK_MS) -> Any:
    """A route as mirror-vip writes it: named and described with its mark."""
    ref = next(m for m in MIRROR.members if m.name == member.name)
    mark = Mark(mark_ms, ref)
    name = route_name(MIRROR, ref, mark, priority)
    return _route(name, member.zone, member.name, priority, route_description(MIRROR, ref, mark))


def foreign_route(name: str, zone: str, instance: str, priority: int) -> Any:
    """A route for the VIP that someone else wrote."""
    return _route(name, zone, instance, priority, "ops team")


def _route(name: str, zone: str, instance: str, priority: int, description: str) -> Any:
    return {
        "name": name,
        "description": description,
        "network": network_url(mirrors.PROJECT, "default"),
        "destRange": VIP,
        "priority": priority,
        "nextHopInstance": instance_url(mirrors.PROJECT, zone, instance),
        "selfLink": route_url(mirrors.PROJECT, name),
    }


def state(*routes: Any, layout: MirrorLayout = LAYOUT) -> dict[str, Any]:
    """The route layout's state (rule on the primary) with `routes` (default: ours, to it)."""
    seeded = compute_state([layout])
    seeded["routes"] = list(routes) if routes else [own_route(PRIMARY)]
    return seeded


@pytest.fixture
def compute() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(state()) as emulator:
        yield emulator


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps({"mirrors": {LAYOUT.name: LAYOUT.config_entry()}}))
    return path


def hops(compute: ComputeEmulator) -> list[tuple[str, int]]:
    """(next hop instance, priority) of every route in the emulator, best first."""
    found = sorted(compute.routes(mirrors.PROJECT), key=lambda r: r["priority"])
    return [(r["nextHopInstance"].rsplit("/", 1)[-1], r["priority"]) for r in found]


def rule_target(compute: ComputeEmulator) -> str:
    rule = compute.forwarding_rule(mirrors.PROJECT, mirrors.REGION, RULE)
    return str(rule["target"]).rsplit("/", 1)[-1]


def drifts(cli: Cli) -> tuple[int, list[str], list[str]]:
    run = cli("status", "--json")
    found = run.mirror["drifts"]
    return run.code, [d["code"] for d in found], [d["message"] for d in found]


# -- status -----------------------------------------------------------------------------------


def test_status_names_the_route_the_rule_and_the_mark(cli: Cli) -> None:
    run = cli("status", "--json")

    doc = run.mirror
    assert run.code == 0
    assert doc["mode"] == "route"
    assert doc["consistent"] is True
    assert doc["vip_holders"] == [PRIMARY.name]
    assert (doc["public_ip"], doc["public_ip_holders"]) == (RULE_IP, [PRIMARY.name])
    assert doc["high_water_mark"]["member"] == PRIMARY.name
    assert doc["high_water_mark"]["route"] == own_route(PRIMARY)["name"]
    assert doc["routes"] == [
        {
            "name": own_route(PRIMARY)["name"],
            "priority": BASE_PRIORITY,
            "next_hop": PRIMARY.name,
            "mirror_vip": True,
            "mark_ms": MARK_MS,
            "carries_traffic": True,
        }
    ]
    assert doc["forwarding_rule"]["target"].endswith(f"/targetInstances/{PRIMARY.target_instance}")


def test_status_text_lists_the_routes_best_first(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(
        state(own_route(PRIMARY), foreign_route("ops-vip", BACKUP.zone, BACKUP.name, 2000))
    )

    run = cli("status")

    assert run.code == 0
    assert "IRISMIRROR (route mode): consistent" in run.out
    lines = run.out.splitlines()
    ours = next(i for i, line in enumerate(lines) if own_route(PRIMARY)["name"] in line)
    theirs = next(i for i, line in enumerate(lines) if "ops-vip" in line)
    assert ours < theirs
    assert "carries the VIP" in lines[ours]
    assert "NOT mirror-vip's" in lines[theirs]


def test_with_the_primarys_zone_down_the_vip_is_still_read(
    cli: Cli, compute: ComputeEmulator
) -> None:
    compute.set_zone_down(PRIMARY.zone)

    run = cli("status", "--json")

    assert run.code == 1
    assert run.mirror["vip_holders"] == [PRIMARY.name]  # routes are global
    assert run.mirror["members"][0]["status"] == "UNREACHABLE"
    assert "member_unreachable" in [d["code"] for d in run.mirror["drifts"]]


def _without(member: Member) -> dict[str, Any]:
    seeded = state()
    seeded["instances"] = [i for i in seeded["instances"] if i["name"] != member.name]
    return seeded


def _edited(edit: Any) -> dict[str, Any]:
    seeded = state()
    edit(seeded)
    return seeded


def _instance(seeded: dict[str, Any], member: Member) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in seeded["instances"] if i["name"] == member.name)
    return found


@pytest.mark.parametrize(
    ("seeded", "code", "message"),
    [
        (
            state(foreign_route("unrelated", BACKUP.zone, BACKUP.name, 900)) | {"routes": []},
            "vip_on_no_member",
            f"VIP {VIP} on no member: no route for it",
        ),
        (
            _without(PRIMARY),
            "route_to_deleted_instance",
            f"route {own_route(PRIMARY)['name']} sends the VIP to {PRIMARY.name}, which does "
            "not exist",
        ),
        (
            state(own_route(PRIMARY), foreign_route("ops-vip", BACKUP.zone, BACKUP.name, 1000)),
            "ecmp",
            f"2 best routes with equal priority 1000 (ECMP): {own_route(PRIMARY)['name']}, "
            f"ops-vip split the VIP between {PRIMARY.name}, {BACKUP.name}",
        ),
        (
            state(own_route(PRIMARY), foreign_route("ops-vip", BACKUP.zone, BACKUP.name, 500)),
            "foreign_route",
            "route ops-vip (not mirror-vip's, priority 500) beats mirror-vip's best (1000): it "
            f"sends the VIP to {BACKUP.name}",
        ),
        (
            state(own_route(BACKUP, BASE_PRIORITY - 1)),
            "static_ip_elsewhere",
            f"static IP on {PRIMARY.name} but VIP on {BACKUP.name}",
        ),
        (
            state(foreign_route("web-vip", "us-west1-c", "web-1", 900)),
            "vip_on_non_member",
            "VIP routed to web-1, which is not a member",
        ),
        (
            state(own_route(PRIMARY), foreign_route("web-vip", "us-west1-c", "web-1", 2000)),
            "route_to_deleted_instance",
            "route web-vip sends the VIP to web-1, which does not exist",
        ),
        (
            _edited(lambda s: _instance(s, PRIMARY).update(status="TERMINATED")),
            "holder_not_running",
            f"VIP routed to {PRIMARY.name}, which is TERMINATED",
        ),
        (
            _edited(lambda s: _instance(s, PRIMARY).update(canIpForward=False)),
            "holder_cannot_forward",
            f"VIP routed to {PRIMARY.name}, which has canIpForward=false: GCE drops the VIP's "
            "packets",
        ),
        (
            _edited(lambda s: s.update(forwardingRules=[])),
            "static_ip_unreadable",
            f"forwarding rule {RULE} cannot be read: ",
        ),
        (
            _edited(
                lambda s: s["forwardingRules"][0].update(
                    target=s["forwardingRules"][0]["target"].replace(
                        PRIMARY.target_instance, "web-ti"
                    )
                )
            ),
            "static_ip_on_non_member",
            f"static IP {RULE_IP}: forwarding rule {RULE} targets ",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isidentifier() else "",
)
def test_every_route_drift_is_named_and_degrades(
    cli: Cli, compute: ComputeEmulator, seeded: dict[str, Any], code: str, message: str
) -> None:
    compute.load_state(json.loads(json.dumps(seeded)))

    exit_code, codes, messages = drifts(cli)

    assert exit_code == 1
    assert code in codes
    assert any(m.startswith(message) for m in messages), messages


def test_a_mark_naming_another_member_is_a_drift(cli: Cli, compute: ComputeEmulator) -> None:
    # Ours says the backup was made primary last, but someone's better route sends it elsewhere.
    older = own_route(PRIMARY, BASE_PRIORITY, MARK_MS)
    newer = own_route(BACKUP, BASE_PRIORITY - 1, MARK_MS + 1000)
    compute.load_state(state(older, newer, foreign_route("ops", PRIMARY.zone, PRIMARY.name, 10)))

    _, codes, messages = drifts(cli)

    assert "mark_disagrees" in codes
    assert f"high-water mark names {BACKUP.name} but VIP on {PRIMARY.name}" in messages


def test_a_denied_routes_list_exits_3(cli: Cli, compute: ComputeEmulator) -> None:
    compute.fail_next("compute.routes.list", count=1, code=403, reason="forbidden")

    run = cli("status", "--json")

    assert run.code == 3
    assert any("routes:" in d for d in run.mirror["details"])


def test_an_unreachable_api_exits_3(cli: Cli, compute: ComputeEmulator) -> None:
    compute.stop()

    assert cli("status", "--json").code == 3


# -- plan and move ----------------------------------------------------------------------------


def test_plan_inserts_first_and_deletes_after_with_one_critical_operation(
    cli: Cli, compute: ComputeEmulator
) -> None:
    run = cli("plan", "--to", BACKUP.name, "--json")

    plan = run.mirror
    assert run.code == 0
    assert (plan["mode"], plan["changes"], plan["refused"]) == ("route", True, None)
    assert [
        (w["id"], w["method"], w["instance"], w["after"], w["cleanup"]) for w in plan["writes"]
    ] == [
        (1, "compute.routes.insert", BACKUP.name, [], False),
        (2, "compute.routes.delete", PRIMARY.name, [1], True),
        (3, "compute.forwardingRules.setTarget", BACKUP.name, [], False),
    ]
    assert f"priority {BASE_PRIORITY - 1}" in plan["writes"][0]["what"]
    assert plan["critical_path"] == [1]
    assert plan["critical_path_operations"] == 1
    assert compute.mutations() == []


def test_plan_text_marks_the_critical_path_and_the_cleanup(cli: Cli) -> None:
    run = cli("plan", "--to", BACKUP.name)

    [insert, delete, retarget] = [line.strip() for line in run.out.splitlines()[1:4]]
    assert insert.startswith("*#1 private insert ")
    assert delete.startswith("#2 private delete ")
    assert delete.endswith("after #1 (cleanup)")
    assert retarget.startswith("#3 public  setTarget ")
    assert "critical path (*): 1 operation(s) in sequence" in run.out


def test_plan_to_a_stopped_member_is_refused(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(_edited(lambda s: _instance(s, BACKUP).update(status="TERMINATED")))

    run = cli("plan", "--to", BACKUP.name, "--json")

    assert run.code == 1
    assert run.mirror["refused"] == (
        f"{BACKUP.name} is TERMINATED; a VM that is not running cannot be primary"
    )


def test_plan_with_no_better_priority_left_is_refused(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(state(foreign_route("pinned", PRIMARY.zone, PRIMARY.name, 0)))

    run = cli("plan", "--to", BACKUP.name, "--json")

    assert run.code == 1
    assert "already has priority 0" in run.mirror["refused"]


def test_move_routes_the_vip_and_retargets_the_rule(cli: Cli, compute: ComputeEmulator) -> None:
    run = cli("move", "--to", BACKUP.name, "--yes", "--json")

    assert run.code == 0
    assert hops(compute) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert rule_target(compute) == BACKUP.target_instance
    outcome = run.mirror["outcome"]
    assert (outcome["outcome"], outcome["mode"], outcome["event_type"]) == (
        "moved",
        "route",
        "manual_move",
    )
    assert outcome["from_instance"] == f"{mirrors.PROJECT}/{PRIMARY.zone}/{PRIMARY.name}"
    assert sorted(outcome["actions"]) == [
        f"delete_route:{PRIMARY.name}",
        f"insert_route:{BACKUP.name}",
        f"retarget_forwarding_rule:{BACKUP.name}",
    ]
    after = cli("status", "--json").mirror
    assert (after["consistent"], after["high_water_mark"]["member"]) == (True, BACKUP.name)


def test_move_with_the_old_primarys_zone_down_completes(cli: Cli, compute: ComputeEmulator) -> None:
    compute.set_zone_down(PRIMARY.zone)

    run = cli("move", "--to", BACKUP.name, "--yes", "--json")

    assert run.code == 0
    assert hops(compute) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert rule_target(compute) == BACKUP.target_instance


def test_move_declined_writes_nothing(
    cli: Cli, compute: ComputeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    assert cli("move", "--to", BACKUP.name).code == 1
    assert compute.mutations() == []
    assert hops(compute) == [(PRIMARY.name, BASE_PRIORITY)]


# -- doctor -----------------------------------------------------------------------------------


def checks(cli: Cli) -> tuple[int, list[dict[str, Any]]]:
    run = cli("doctor", "--json")
    return run.code, run.mirror["checks"]


def findings(found: list[dict[str, Any]], level: str) -> list[tuple[str, str]]:
    return [(c["name"], c["detail"]) for c in found if c["level"] == level]


def test_doctor_on_a_healthy_route_mirror_finds_no_problem(cli: Cli) -> None:
    code, found = checks(cli)

    assert code == 0
    assert findings(found, "problem") == []
    assert [name for name, _ in findings(found, "warning")] == ["topic"]
    ok = dict(findings(found, "ok"))
    assert ok["vip_outside_subnets"] == (
        f"VIP {VIP} lies outside every subnet range of default (1 subnetworks)"
    )
    assert (
        ok[f"target_instance {BACKUP.target_instance}"]
        == f"in {BACKUP.zone}, points at {BACKUP.name}"
    )
    assert "not testable per resource: " in ok["permissions"]
    assert "compute.routes.create" in ok["permissions"]
    assert "compute.forwardingRules.setTarget" in ok["permissions"]


def _config(path: Path, **changes: Any) -> None:
    entry = LAYOUT.config_entry() | changes
    path.write_text(json.dumps({"mirrors": {LAYOUT.name: entry}}))


def test_a_vip_inside_a_subnet_range_is_a_problem(cli: Cli, config_file: Path) -> None:
    _config(config_file, private_vip="10.1.0.7/32")

    code, found = checks(cli)

    assert code == 1
    [(_, detail)] = [f for f in findings(found, "problem") if f[0] == "vip_outside_subnets"]
    assert detail == (
        "VIP 10.1.0.7/32 lies inside subnetwork default (us-west1) range vips 10.1.0.0/24 of "
        "default"
    )


def test_a_member_without_can_ip_forward_is_a_problem_with_its_fix(
    cli: Cli, compute: ComputeEmulator
) -> None:
    compute.load_state(_edited(lambda s: _instance(s, BACKUP).update(canIpForward=False)))

    code, found = checks(cli)

    assert code == 1
    [problem] = [c for c in found if c["name"] == "can_ip_forward" and c["level"] == "problem"]
    assert problem["detail"].startswith(f"{BACKUP.name} has canIpForward=false")
    assert f"--zone {BACKUP.zone} --can-ip-forward" in problem["fix"]


def test_a_missing_forwarding_rule_is_a_problem(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(_edited(lambda s: s.update(forwardingRules=[])))

    code, found = checks(cli)

    assert code == 1
    assert (
        "forwarding_rule",
        f"forwarding rule {RULE} in {mirrors.REGION} does not exist",
    ) in findings(found, "problem")


def test_a_missing_target_instance_is_a_problem_with_its_create_command(
    cli: Cli, compute: ComputeEmulator
) -> None:
    compute.load_state(
        _edited(
            lambda s: s.update(
                targetInstances=[
                    t for t in s["targetInstances"] if t["name"] != BACKUP.target_instance
                ]
            )
        )
    )

    code, found = checks(cli)

    assert code == 1
    [problem] = [c for c in found if c["name"] == f"target_instance {BACKUP.target_instance}"]
    assert (problem["level"], problem["detail"]) == ("problem", f"does not exist in {BACKUP.zone}")
    assert problem["fix"] == (
        f"gcloud compute target-instances create {BACKUP.target_instance} "
        f"--instance={BACKUP.name} --zone={BACKUP.zone}"
    )


def test_a_target_instance_pointing_at_another_vm_is_a_problem(
    cli: Cli, compute: ComputeEmulator
) -> None:
    def elsewhere(s: dict[str, Any]) -> None:
        target = next(t for t in s["targetInstances"] if t["name"] == BACKUP.target_instance)
        target["instance"] = instance_url(mirrors.PROJECT, BACKUP.zone, "web-1")

    compute.load_state(_edited(elsewhere))

    code, found = checks(cli)

    assert code == 1
    assert (
        f"target_instance {BACKUP.target_instance}",
        f"points at web-1, not at {BACKUP.name}",
    ) in findings(found, "problem")


def test_missing_route_mode_permissions_are_a_problem(cli: Cli, compute: ComputeEmulator) -> None:
    compute.deny_permissions("compute.instances.use", "compute.targetInstances.use")

    code, found = checks(cli)

    assert code == 1
    [(_, detail)] = [f for f in findings(found, "problem") if f[0] == "permissions"]
    assert detail.startswith("missing compute.instances.use, compute.targetInstances.use;")
    assert "compute.routes.create" in detail.split("not testable per resource: ")[1]


def test_route_drifts_are_doctor_problems(cli: Cli, compute: ComputeEmulator) -> None:
    compute.load_state(
        state(own_route(PRIMARY), foreign_route("ops-vip", BACKUP.zone, BACKUP.name, 1000))
    )

    code, found = checks(cli)

    assert code == 1
    assert any(
        name == "holdings" and "(ECMP)" in detail for name, detail in findings(found, "problem")
    )
