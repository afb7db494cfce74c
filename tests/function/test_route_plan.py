"""Unit tests of route mode's pure planner and its configuration: no API, plain data."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from local.mirrors import route_layout
from vipmover.config import InstanceRef, MirrorConfig, parse_config
from vipmover.errors import ConfigError
from vipmover.plan import Mark
from vipmover.route_plan import (
    BASE_PRIORITY,
    REBASE_BELOW,
    OwnRoute,
    RouteState,
    RouteView,
    instance_path,
    plan_routes,
    route_description,
    route_name,
    view_routes,
)

pytestmark = pytest.mark.unit

PROJECT = "iris-prod-1"
NETWORK = f"projects/{PROJECT}/global/networks/default"
LAYOUT = route_layout(0, project=PROJECT)


def entry(**changes: Any) -> dict[str, Any]:
    raw = LAYOUT.config_entry() | changes
    return {k: v for k, v in raw.items() if v is not None}


def mirror(members: int = 2) -> MirrorConfig:
    raw = entry()
    raw["members"] = [
        {"instance": f"iris-{i}", "zone": f"us-west1-{'abc'[i % 3]}", "target_instance": f"t{i}"}
        for i in range(members)
    ]
    return parse_config({"mirrors": {"M": raw}}).mirrors["M"]


def own(m: MirrorConfig, holder: InstanceRef, priority: int, time_ms: int | None) -> RouteState:
    mark = Mark(time_ms, holder) if time_ms is not None else None
    return RouteState(
        route_name(m, holder, mark, priority),
        NETWORK,
        m.vip,
        priority,
        instance_path(holder),
        route_description(m, holder, mark),
    )


def after(
    view: RouteView, m: MirrorConfig, target: InstanceRef, mark: Mark | None
) -> list[RouteState]:
    """The routes once the plan is applied."""
    plan = plan_routes(m, target, mark, view)
    gone = {o.route.name for o in plan.delete}
    kept = [o.route for o in view.ours if o.route.name not in gone] + list(view.foreign)
    if plan.insert:
        new = plan.insert
        kept.append(
            RouteState(
                new.name, NETWORK, m.vip, new.priority, instance_path(new.holder), new.description
            )
        )
    return kept


@pytest.mark.parametrize("members", [2, 3])
def test_two_concurrent_handlers_never_make_ecmp_between_members(members: int) -> None:
    """Both read the same routes and insert for different members: priorities differ by class."""
    m = mirror(members)
    for holder, t1, t2 in itertools.product(m.members, m.members, m.members):
        if t1 == t2:
            continue
        view = view_routes(m, NETWORK, [own(m, holder, BASE_PRIORITY - 7, 1)])
        first = plan_routes(m, t1, Mark(2, t1), view).insert
        second = plan_routes(m, t2, Mark(3, t2), view).insert
        assert first is not None
        assert second is not None
        assert first.priority != second.priority
        assert max(first.priority, second.priority) < BASE_PRIORITY - 7


def test_the_new_route_beats_every_route_and_older_ones_are_deleted() -> None:
    m = mirror()
    a, b = m.members
    foreign = RouteState("ops", NETWORK, m.vip, 700, instance_path(a))
    view = view_routes(m, NETWORK, [own(m, a, 998, 5), foreign])

    plan = plan_routes(m, b, Mark(9, b), view)

    assert plan.insert is not None
    assert plan.insert.priority == 699
    assert [o.route.next_hop for o in plan.delete] == [instance_path(a)]


def test_a_route_with_a_newer_mark_is_never_deleted() -> None:
    """It belongs to a concurrent handler of a newer event, which must win."""
    m = mirror()
    a, b = m.members
    view = view_routes(m, NETWORK, [own(m, a, 998, 5), own(m, b, 997, 20)])

    plan = plan_routes(m, a, Mark(10, a), view)

    assert [o.mark for o in plan.delete] == [Mark(5, a)]


def test_in_place_with_the_mark_means_no_change() -> None:
    m = mirror()
    a, _ = m.members
    view = view_routes(m, NETWORK, [own(m, a, 998, 5)])

    assert not plan_routes(m, a, Mark(5, a), view).changes
    assert not plan_routes(m, a, None, view).changes
    assert plan_routes(m, a, Mark(6, a), view).insert is not None  # a newer mark is recorded


def test_priorities_never_run_out_over_many_failovers() -> None:
    m = mirror()
    routes: list[RouteState] = []
    for step in range(3000):
        target = m.members[step % 2]
        view = view_routes(m, NETWORK, routes)
        plan = plan_routes(m, target, Mark(step + 1, target), view)
        assert plan.blocked is None
        routes = after(view, m, target, Mark(step + 1, target))
        view = view_routes(m, NETWORK, routes)
        rebase = plan_routes(m, target, None, view).rebase
        if rebase is not None:
            copy, low = rebase
            routes = [r for r in routes if r.name != low.route.name]
            routes.append(
                RouteState(
                    copy.name,
                    NETWORK,
                    m.vip,
                    copy.priority,
                    instance_path(target),
                    copy.description,
                )
            )
        assert len(routes) == 1
        assert routes[0].priority >= REBASE_BELOW - 2


def test_routes_of_another_mirror_or_network_are_not_ours() -> None:
    m = mirror()
    a, _ = m.members
    mine = own(m, a, 998, 5)
    other_network = RouteState(
        mine.name,
        f"projects/{PROJECT}/global/networks/x",
        m.vip,
        1,
        mine.next_hop,
        mine.description,
    )
    forged = RouteState("mirror-vip-m-5-abc", NETWORK, m.vip, 990, mine.next_hop, "hand made")

    view = view_routes(m, NETWORK, [mine, other_network, forged])

    assert [o.route for o in view.ours] == [mine]
    assert view.foreign == (forged,)
    assert isinstance(view.ours[0], OwnRoute)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "routed"}, "mode: expected 'alias' or 'route'"),
        ({"private_vip": "10.100.0.248/29"}, "private_vip: route mode routes one address"),
        ({"network": "Not_A_Name"}, "network: 'Not_A_Name' is not a network name"),
        (
            {"public_ip": {"forwarding_rule": "fr", "regin": "x"}},
            "public_ip: unknown key(s) 'regin'",
        ),
        ({"public_ip": {"address_name": "ip"}}, "public_ip.address_name: route mode moves"),
        ({"subnetwork_range_name": "vips"}, "subnetwork_range_name: alias mode only"),
        ({"colour": "blue"}, "unknown key(s) 'colour'"),
    ],
)
def test_route_config_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"mirrors\.M[.:]") as raised:
        parse_config({"mirrors": {"M": entry(**changes)}})

    assert message in str(raised.value)


def test_a_forwarding_rule_needs_every_members_target_instance() -> None:
    raw = entry()
    del raw["members"][1]["target_instance"]

    with pytest.raises(ConfigError, match=r"mirrors\.M\.members\[1\]\.target_instance: required"):
        parse_config({"mirrors": {"M": raw}})


def test_the_issues_example_parses() -> None:
    raw = {
        "mirrors": {
            "IRISMIRROR": {
                "project": "my-project",
                "mode": "route",
                "private_vip": "10.100.0.250/32",
                "network": "isc-net",
                "public_ip": {"forwarding_rule": "isc-mirror-fr", "region": "us-west1"},
                "members": [
                    {
                        "instance": "isc-primary-001",
                        "zone": "us-west1-a",
                        "target_instance": "isc-primary-001-ti",
                    },
                    {
                        "instance": "isc-backup-001",
                        "zone": "us-west1-b",
                        "target_instance": "isc-backup-001-ti",
                    },
                ],
            }
        }
    }

    parsed = parse_config(raw).mirrors["IRISMIRROR"]

    assert (parsed.mode, parsed.network) == ("route", "isc-net")
    assert parsed.forwarding_rule is not None
    assert parsed.target_instance(parsed.members[1]) == "isc-backup-001-ti"
    assert parsed.public_ip is None
