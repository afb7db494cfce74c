"""The emulator's routes, forwarding rules and target instances: GCE's invariants, Google's error
bodies, the discovery document's shapes, and a zone outage that stops nothing global or regional."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from emulators.compute.server import ComputeEmulator
from fakes.test_compute_emulator_discovery import DISCOVERY, assert_matches
from local.mirrors import compute_state, route_layout

pytestmark = pytest.mark.integration

LAYOUT = route_layout(0, project="vpc-proj-1")
PRIMARY, BACKUP = LAYOUT.members
ROOT = f"/compute/v1/projects/{LAYOUT.project}"
REGION = LAYOUT.region
RULE = f"/regions/{REGION}/forwardingRules/isc-mirror-fr"


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    with ComputeEmulator(compute_state([LAYOUT])) as emulator:
        yield emulator


def call(
    emu: ComputeEmulator, verb: str, path: str, body: Any = None, **query: str
) -> tuple[int, Any]:
    url = urlsplit(emu.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(
            verb,
            ROOT + path + ("?" + urlencode(query) if query else ""),
            body=None if body is None else json.dumps(body),
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def route(
    name: str = "r1", dest: str = LAYOUT.vip, hop: Any = PRIMARY, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "network": "global/networks/default",
        "destRange": dest,
        "priority": 900,
        "nextHopInstance": f"projects/{LAYOUT.project}/zones/{hop.zone}/instances/{hop.name}",
        **extra,
    }


def test_insert_applies_when_the_global_operation_is_done(emu: ComputeEmulator) -> None:
    emu.set_op_latency(0.2)
    status, op = call(
        emu, "POST", "/global/routes", route(), requestId="8a0b5f5e-1d1c-4c86-9d39-3c4b4f8f1e11"
    )

    assert status == 200
    assert op["status"] == "PENDING"
    assert "zone" not in op
    assert "region" not in op
    assert emu.routes(LAYOUT.project) == []
    _, done = call(emu, "POST", f"/global/operations/{op['name']}/wait")
    assert done["status"] == "DONE"
    (created,) = emu.routes(LAYOUT.project)
    assert created["nextHopInstance"].endswith(f"/zones/{PRIMARY.zone}/instances/{PRIMARY.name}")
    assert call(emu, "GET", f"/global/operations/{op['name']}")[1]["status"] == "DONE"


def test_a_route_name_is_unique_even_while_its_insert_is_pending(emu: ComputeEmulator) -> None:
    emu.set_op_latency(5)
    assert call(emu, "POST", "/global/routes", route())[0] == 200

    status, body = call(emu, "POST", "/global/routes", route(hop=BACKUP))

    assert status == 409
    assert body["error"]["errors"][0]["reason"] == "alreadyExists"


def test_a_route_inside_a_subnet_range_is_refused(emu: ComputeEmulator) -> None:
    status, body = call(emu, "POST", "/global/routes", route(dest="10.0.0.250/32"))

    assert status == 400
    assert "resource.destRange" in body["error"]["message"]
    assert emu.routes(LAYOUT.project) == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"nextHopInstance": f"projects/{LAYOUT.project}/zones/us-west1-a/instances/nobody"}, 404),
        ({"network": "global/networks/elsewhere"}, 404),
        ({"priority": 70000}, 400),
        ({"nextHopIp": "10.0.0.5"}, 400),
        ({"colour": "blue"}, 400),
    ],
)
def test_insert_refuses_what_gce_refuses(
    emu: ComputeEmulator, change: dict[str, Any], status: int
) -> None:
    assert call(emu, "POST", "/global/routes", route(**change))[0] == status
    assert emu.routes(LAYOUT.project) == []


def test_delete_and_list_with_a_filter(emu: ComputeEmulator) -> None:
    call(emu, "POST", "/global/routes", route("r1"))
    call(emu, "POST", "/global/routes", route("r2", dest="10.100.0.7/32"))

    _, listed = call(emu, "GET", "/global/routes", filter=f'destRange = "{LAYOUT.vip}"')
    status, _ = call(emu, "DELETE", "/global/routes/r1")

    assert [r["name"] for r in listed["items"]] == ["r1"]
    assert status == 200
    assert [r["name"] for r in emu.routes(LAYOUT.project)] == ["r2"]
    assert call(emu, "DELETE", "/global/routes/r1")[0] == 404


def test_set_target_needs_an_existing_target_instance(emu: ComputeEmulator) -> None:
    missing = f"projects/{LAYOUT.project}/zones/{BACKUP.zone}/targetInstances/nope"
    good = f"projects/{LAYOUT.project}/zones/{BACKUP.zone}/targetInstances/{BACKUP.target_instance}"

    refused = call(emu, "POST", f"{RULE}/setTarget", {"target": missing})
    status, op = call(emu, "POST", f"{RULE}/setTarget", {"target": good})

    assert refused[0] == 404
    assert status == 200
    assert op["region"].endswith(f"/regions/{REGION}")
    assert call(emu, "GET", RULE)[1]["target"].endswith(
        f"/targetInstances/{BACKUP.target_instance}"
    )


def test_a_zone_down_fails_zonal_calls_only(emu: ComputeEmulator) -> None:
    emu.set_zone_down(PRIMARY.zone)
    target = (
        f"projects/{LAYOUT.project}/zones/{BACKUP.zone}/targetInstances/{BACKUP.target_instance}"
    )

    zonal = call(emu, "GET", f"/zones/{PRIMARY.zone}/targetInstances/{PRIMARY.target_instance}")
    inserted = call(emu, "POST", "/global/routes", route(hop=BACKUP))
    deleted_prep = call(emu, "POST", "/global/routes", route("old", hop=PRIMARY))
    retargeted = call(emu, "POST", f"{RULE}/setTarget", {"target": target})

    assert zonal[0] == 503
    assert (inserted[0], deleted_prep[0], retargeted[0]) == (200, 200, 200)
    assert call(emu, "DELETE", "/global/routes/old")[0] == 200


def test_every_vpc_answer_matches_the_discovery_document(emu: ComputeEmulator) -> None:
    discovery: dict[str, Any] = json.loads(DISCOVERY.read_text())
    target = (
        f"projects/{LAYOUT.project}/zones/{BACKUP.zone}/targetInstances/{BACKUP.target_instance}"
    )
    emu.set_op_latency(30, "compute.routes.delete")
    answers = [
        ("compute.routes.insert", call(emu, "POST", "/global/routes", route(description="d"))),
        ("compute.routes.get", call(emu, "GET", "/global/routes/r1")),
        ("compute.routes.list", call(emu, "GET", "/global/routes")),
        ("compute.routes.delete", call(emu, "DELETE", "/global/routes/r1")),
        ("compute.routes.insert", call(emu, "POST", "/global/routes", route(dest="10.0.0.9/32"))),
        ("compute.forwardingRules.get", call(emu, "GET", RULE)),
        ("compute.forwardingRules.list", call(emu, "GET", f"/regions/{REGION}/forwardingRules")),
        (
            "compute.forwardingRules.setTarget",
            call(emu, "POST", f"{RULE}/setTarget", {"target": target}),
        ),
        (
            "compute.targetInstances.get",
            call(emu, "GET", f"/zones/{BACKUP.zone}/targetInstances/{BACKUP.target_instance}"),
        ),
        ("compute.targetInstances.list", call(emu, "GET", f"/zones/{BACKUP.zone}/targetInstances")),
    ]
    for op in emu.operations():
        scope = "regionOperations" if "region" in op else "globalOperations"
        answers.append((f"compute.{scope}.get", (200, op)))

    for method_id, (_, body) in answers:
        assert_matches(discovery, method_id, body)
