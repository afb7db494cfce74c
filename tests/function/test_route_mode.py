"""Route mode end to end within the function: real CloudEvents through functions-framework, the
Compute emulator over HTTP. Every test asserts what the emulator holds (routes, the forwarding
rule's target) and what the function logged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from emulators.compute.state import VpcState
from emulators.rfc3339 import format_rfc3339
from local.mirrors import MirrorLayout, compute_state, route_layout
from support import mirrors
from support.events import became_primary, cloud_event
from support.function_app import FunctionUnderTest
from vipmover.config import parse_config
from vipmover.plan import Mark
from vipmover.route_plan import BASE_PRIORITY, route_description, route_name

pytestmark = pytest.mark.integration

LAYOUT = route_layout(0, project=mirrors.PROJECT)
PRIMARY, BACKUP = LAYOUT.members
RULE = ("isc-mirror-fr", mirrors.REGION)
MUTATING = {"compute.routes.insert", "compute.routes.delete", "compute.forwardingRules.setTarget"}


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(compute_state([LAYOUT])) as emulator:
        yield emulator


@pytest.fixture
def route_function(
    emu: ComputeEmulator, start_function: FunctionFactory, monkeypatch: pytest.MonkeyPatch
) -> FunctionUnderTest:
    monkeypatch.setenv("COMPUTE_API_ENDPOINT", emu.url)
    return start_function(config(), COMPUTE_API_ENDPOINT=emu.url)


def config(layout: MirrorLayout = LAYOUT) -> dict[str, Any]:
    """The route mirror; events here are unsigned (identity has its own tests)."""
    return mirrors.config({layout.name: layout.config_entry()})


def at(seconds: float) -> str:
    """A publish time `seconds` after a fixed instant (events' order is Pub/Sub's clock)."""
    return format_rfc3339(datetime(2026, 5, 1, tzinfo=UTC) + timedelta(seconds=seconds))


def deliver(function: FunctionUnderTest, member: Any, seconds: float, **kw: Any) -> dict[str, Any]:
    event = cloud_event(became_primary(member, **kw), publish_time=at(seconds))
    return function.deliver(event).outcome


def routes(emu: ComputeEmulator) -> list[tuple[str, int]]:
    """(next hop instance name, priority) of every route, best first."""
    found = sorted(emu.routes(mirrors.PROJECT), key=lambda r: r["priority"])
    return [(r["nextHopInstance"].rsplit("/", 1)[-1], r["priority"]) for r in found]


def rule_target(emu: ComputeEmulator) -> str:
    target: str = emu.forwarding_rule(mirrors.PROJECT, RULE[1], RULE[0])["target"]
    return target.rsplit("/", 1)[-1]


def test_first_announcement_routes_the_vip_to_the_primary(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    outcome = deliver(route_function, PRIMARY, 0)

    assert outcome["outcome"] == "moved"
    assert outcome["mode"] == "route"
    assert routes(emu) == [(PRIMARY.name, BASE_PRIORITY)]
    (route,) = emu.routes(mirrors.PROJECT)
    assert route["destRange"] == LAYOUT.vip
    assert "mark=1777593600000" in route["description"]
    assert rule_target(emu) == PRIMARY.target_instance


def test_failover_makes_before_it_breaks_and_retargets_the_rule(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, PRIMARY, 0)
    emu.set_op_latency(0.3)
    emu.clear_requests()

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "moved"
    assert outcome["from_instance"] == f"{mirrors.PROJECT}/{PRIMARY.zone}/{PRIMARY.name}"
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert rule_target(emu) == BACKUP.target_instance
    assert sorted(outcome["actions"]) == [
        f"delete_route:{PRIMARY.name}",
        f"insert_route:{BACKUP.name}",
        f"retarget_forwarding_rule:{BACKUP.name}",
    ]
    writes = [r for r in emu.mutations() if r.method_id in MUTATING]
    insert = next(r for r in writes if r.method_id == "compute.routes.insert")
    delete = next(r for r in writes if r.method_id == "compute.routes.delete")
    # The old route goes only once the new one has applied (the insert's operation took 0.3 s).
    assert delete.time - insert.time >= 0.3
    assert insert.body["priority"] < BASE_PRIORITY


def test_failover_with_the_old_primarys_zone_down_completes(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, PRIMARY, 0)
    emu.set_zone_down(PRIMARY.zone)
    emu.clear_requests()

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "moved"
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert rule_target(emu) == BACKUP.target_instance
    # Nothing is written there; the safeguards' read of the old primary's VM fails and does
    # not block (an unreadable holder is not RUNNING: that is the failover).
    assert not [r.path for r in emu.mutations() if f"/zones/{PRIMARY.zone}/" in r.path]


def test_duplicate_delivery_costs_no_write(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, PRIMARY, 0)
    event = cloud_event(became_primary(BACKUP), publish_time=at(10))
    assert route_function.deliver(event).outcome["outcome"] == "moved"
    writes = len(emu.mutations())

    again = route_function.deliver(event).outcome

    assert again["outcome"] == "already_in_place"
    assert again["actions"] == []
    assert len(emu.mutations()) == writes


def test_stale_event_never_moves_the_vip(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, BACKUP, 10)
    writes = len(emu.mutations())

    outcome = deliver(route_function, PRIMARY, 5)

    assert outcome["outcome"] == "rejected"
    assert outcome["error_reason"] == "stale_event"
    assert outcome["actions"] == [f"superseded_by:{BACKUP.name}"]
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert len(emu.mutations()) == writes


def test_a_restart_as_primary_records_its_newer_mark(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, PRIMARY, 0)
    deliver(route_function, PRIMARY, 20)  # NotifyBecomePrimary also runs at start-up

    outcome = deliver(route_function, BACKUP, 10)  # published before the restart's event

    assert outcome["error_reason"] == "stale_event"
    assert [hop for hop, _ in routes(emu)] == [PRIMARY.name]


def test_heartbeat_repairs_a_route_deleted_by_hand(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    deliver(route_function, BACKUP, 10)
    emu.edit_vpc(lambda vpc: vpc.routes.clear())

    outcome = deliver(route_function, BACKUP, 30, type="heartbeat")

    assert outcome["outcome"] == "moved"
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]


def test_routes_of_others_are_never_touched_but_beaten(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    foreign = _route("someone-elses", PRIMARY, 500, description="ops team")
    emu.edit_vpc(
        lambda vpc: vpc.routes.update({(mirrors.PROJECT, "global", foreign["name"]): foreign})
    )

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "moved"
    assert routes(emu) == [(BACKUP.name, 499), (PRIMARY.name, 500)]


def test_priorities_are_rebased_before_they_run_out(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    mirror = parse_config(config()).mirrors[LAYOUT.name]
    ref = mirror.members[0]
    mark = Mark(1777593600000, ref)
    low = _route(
        route_name(mirror, ref, mark, 50), PRIMARY, 50, route_description(mirror, ref, mark)
    )
    emu.edit_vpc(lambda vpc: vpc.routes.update({(mirrors.PROJECT, "global", low["name"]): low}))

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "moved"
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]
    assert f"rebase_route:{BACKUP.name}" in outcome["actions"]


def test_no_better_priority_left_is_a_clear_permanent_failure(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    foreign = _route("pinned-by-ops", PRIMARY, 0)
    emu.edit_vpc(
        lambda vpc: vpc.routes.update({(mirrors.PROJECT, "global", foreign["name"]): foreign})
    )

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "failed"
    assert outcome["retry"] is False
    assert "priority 0" in outcome["error"]
    assert routes(emu) == [(PRIMARY.name, 0)]


def test_a_vip_inside_a_subnet_is_refused_naming_the_field(
    emu: ComputeEmulator, start_function: FunctionFactory
) -> None:
    inside = MirrorLayout(
        LAYOUT.name, LAYOUT.project, "10.0.0.250/32", LAYOUT.members, LAYOUT.public, "route"
    )
    function = start_function(config(inside), COMPUTE_API_ENDPOINT=emu.url)

    outcome = deliver(function, BACKUP, 10)

    assert outcome["outcome"] == "failed"
    assert outcome["retry"] is False
    assert f"mirrors.{LAYOUT.name}.private_vip" in outcome["error"]
    assert emu.routes(mirrors.PROJECT) == []


def test_a_rule_pointing_outside_the_mirror_is_not_taken(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    def elsewhere(vpc: VpcState) -> None:
        stranger = dict(
            vpc.target_instances[(mirrors.PROJECT, PRIMARY.zone, PRIMARY.target_instance)]
        )
        stranger["name"] = "web-ti"
        stranger["selfLink"] = stranger["selfLink"].replace(PRIMARY.target_instance, "web-ti")
        vpc.target_instances[(mirrors.PROJECT, PRIMARY.zone, "web-ti")] = stranger
        vpc.forwarding_rules[(mirrors.PROJECT, RULE[1], RULE[0])]["target"] = stranger["selfLink"]

    emu.edit_vpc(elsewhere)

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "failed"
    assert outcome["error_reason"] == "PublicIpRefused"
    assert routes(emu) == [(BACKUP.name, BASE_PRIORITY - 1)]  # odd: the second member's class
    assert rule_target(emu) == "web-ti"


def test_a_member_without_can_ip_forward_is_noted(
    emu: ComputeEmulator, route_function: FunctionUnderTest
) -> None:
    emu.edit_instance(
        mirrors.PROJECT, BACKUP.zone, BACKUP.name, lambda vm: vm.update(canIpForward=False)
    )

    outcome = deliver(route_function, BACKUP, 10)

    assert outcome["outcome"] == "moved"
    assert any("canIpForward=false" in note for note in outcome["notes"])


def _route(name: str, hop: Any, priority: int, description: str = "") -> dict[str, Any]:
    link = f"https://www.googleapis.com/compute/v1/projects/{mirrors.PROJECT}"
    route = {
        "kind": "compute#route",
        "name": name,
        "network": f"{link}/global/networks/default",
        "destRange": LAYOUT.vip,
        "priority": priority,
        "nextHopInstance": f"{link}/zones/{hop.zone}/instances/{hop.name}",
        "selfLink": f"{link}/global/routes/{name}",
    }
    if description:
        route["description"] = description
    return json.loads(json.dumps(route))  # type: ignore[no-any-return]
