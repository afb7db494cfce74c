"""The emulator checked against Google's machine-readable spec, the Compute v1 discovery document.

Every route must be a real method with its real verb and path, and every field the emulator emits
must exist in the method's response schema, so that code tested here cannot depend on a field or
an endpoint the real API does not have.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import googleapiclient
import pytest

from emulators.compute.routes import ROUTES
from emulators.compute.server import ComputeEmulator
from local.mirrors import Member, mirror_state

pytestmark = pytest.mark.integration

PROJECT = "disco-proj"
ZONE_A = "europe-west1-b"
ZONE_B = "europe-west1-c"
REGION = "europe-west1"
ROOT = f"/compute/v1/projects/{PROJECT}"
DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"
)
SCALARS: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "boolean": bool}
STANDARD_ERROR_FIELDS = {"code", "message", "errors", "status", "details"}
STANDARD_ERROR_ITEM_FIELDS = {"message", "domain", "reason", "location", "locationType"}


@pytest.fixture(scope="module")
def discovery() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DISCOVERY.read_text())
    return document


def method(discovery: dict[str, Any], method_id: str) -> dict[str, Any]:
    _, resource, name = method_id.split(".")
    found: dict[str, Any] = discovery["resources"][resource]["methods"][name]
    return found


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    state = mirror_state(
        PROJECT,
        [
            Member(
                "iris-a",
                ZONE_A,
                "10.0.0.10",
                aliases=("10.0.0.250/32", "vips:10.8.0.4/30"),
                nat_ip="34.1.2.3",
                labels={"mirror": "m1"},
            ),
            Member("iris-b", ZONE_B, "10.0.0.11", status="TERMINATED"),
        ],
        secondary={"vips": "10.8.0.0/24"},
        public_address=("iris-vip", "34.1.2.3"),
    )
    with ComputeEmulator(state) as emulator:
        yield emulator


def call(emu: ComputeEmulator, verb: str, path: str, body: Any = None, **query: str) -> Any:
    url = urlsplit(emu.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(
            verb,
            path + ("?" + urlencode(query) if query else ""),
            body=None if body is None else json.dumps(body),
        )
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def schema_violations(
    value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str
) -> Iterator[str]:
    """Every place where `value` uses a field or a JSON type that `schema` does not allow."""
    if "$ref" in schema:
        yield from schema_violations(value, schemas[schema["$ref"]], schemas, where)
        return
    kind = schema.get("type")
    if kind == "object":
        yield from object_violations(value, schema, schemas, where)
    elif kind == "array":
        if not isinstance(value, list):
            yield f"{where}: expected array, got {type(value).__name__}"
            return
        for index, item in enumerate(value):
            yield from schema_violations(item, schema["items"], schemas, f"{where}[{index}]")
    elif kind in SCALARS:
        if not isinstance(value, SCALARS[kind]) or (kind == "integer" and value is True):
            yield f"{where}: expected {kind}, got {type(value).__name__}"
        elif "enum" in schema and value not in schema["enum"]:
            yield f"{where}: {value!r} not one of {schema['enum']}"


def object_violations(
    value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str
) -> Iterator[str]:
    if not isinstance(value, dict):
        yield f"{where}: expected object, got {type(value).__name__}"
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            yield from schema_violations(item, properties[key], schemas, f"{where}.{key}")
        elif extra is not None:
            yield from schema_violations(item, extra, schemas, f"{where}[{key!r}]")
        else:
            yield f"{where}.{key}: not in schema"


def assert_matches(discovery: dict[str, Any], method_id: str, body: Any) -> None:
    if "error" in body and "kind" not in body:
        assert set(body) == {"error"}
        assert set(body["error"]) <= STANDARD_ERROR_FIELDS
        assert isinstance(body["error"]["code"], int)
        for item in body["error"]["errors"]:
            assert set(item) <= STANDARD_ERROR_ITEM_FIELDS
        return
    response = method(discovery, method_id)["response"]
    problems = list(schema_violations(body, response, discovery["schemas"], response["$ref"]))
    assert problems == []


def test_every_route_is_a_real_method_with_its_verb_and_path(discovery: dict[str, Any]) -> None:
    assert discovery["servicePath"] == "compute/v1/"
    for route in ROUTES:
        real = method(discovery, route.method_id)
        assert real["id"] == route.method_id
        assert (route.http_method, route.template) == (real["httpMethod"], real["path"])


@pytest.mark.parametrize(
    ("method_id", "parameters"),
    [
        ("compute.instances.updateNetworkInterface", {"networkInterface", "requestId"}),
        ("compute.instances.addAccessConfig", {"networkInterface", "requestId"}),
        ("compute.instances.deleteAccessConfig", {"accessConfig", "networkInterface", "requestId"}),
        ("compute.instances.setLabels", {"requestId"}),
        ("compute.instances.list", {"filter"}),
        ("compute.instances.aggregatedList", {"filter"}),
        ("compute.addresses.list", {"filter"}),
        ("compute.addresses.aggregatedList", {"filter"}),
        ("compute.zoneOperations.list", {"filter"}),
        ("compute.routes.insert", {"requestId"}),
        ("compute.routes.delete", {"requestId"}),
        ("compute.routes.list", {"filter"}),
        ("compute.forwardingRules.setTarget", {"requestId"}),
    ],
)
def test_query_parameters_the_emulator_reads_are_real(
    discovery: dict[str, Any], method_id: str, parameters: set[str]
) -> None:
    real = method(discovery, method_id)["parameters"]
    assert parameters <= {name for name, spec in real.items() if spec["location"] == "query"}


def test_request_bodies_the_emulator_takes_are_the_methods_request_schemas(
    discovery: dict[str, Any],
) -> None:
    expected = {
        "compute.instances.updateNetworkInterface": "NetworkInterface",
        "compute.instances.addAccessConfig": "AccessConfig",
        "compute.instances.setLabels": "InstancesSetLabelsRequest",
        "compute.instances.testIamPermissions": "TestPermissionsRequest",
        "compute.subnetworks.testIamPermissions": "TestPermissionsRequest",
        "compute.addresses.testIamPermissions": "TestPermissionsRequest",
        "compute.routes.insert": "Route",
        "compute.forwardingRules.setTarget": "TargetReference",
    }
    for method_id, schema in expected.items():
        assert method(discovery, method_id)["request"]["$ref"] == schema
    assert "request" not in method(discovery, "compute.instances.deleteAccessConfig")


def test_every_emitted_field_exists_in_the_discovery_schemas(
    emu: ComputeEmulator, discovery: dict[str, Any]
) -> None:
    instance_a = f"{ROOT}/zones/{ZONE_A}/instances/iris-a"
    fingerprint = emu.instance(PROJECT, ZONE_B, "iris-b")["networkInterfaces"][0]["fingerprint"]
    emu.set_op_latency(30, "compute.instances.setLabels")
    emu.fail_next_operation("compute.instances.deleteAccessConfig")
    responses: list[tuple[str, Any]] = [
        ("compute.instances.get", call(emu, "GET", instance_a)),
        ("compute.instances.get", call(emu, "GET", f"{ROOT}/zones/{ZONE_B}/instances/iris-b")),
        ("compute.instances.list", call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/instances")),
        ("compute.addresses.get", call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses/iris-vip")),
        ("compute.addresses.list", call(emu, "GET", f"{ROOT}/regions/{REGION}/addresses")),
        ("compute.addresses.aggregatedList", call(emu, "GET", f"{ROOT}/aggregated/addresses")),
        (
            "compute.subnetworks.get",
            call(emu, "GET", f"{ROOT}/regions/{REGION}/subnetworks/default"),
        ),
        ("compute.subnetworks.list", call(emu, "GET", f"{ROOT}/regions/{REGION}/subnetworks")),
        ("compute.zones.get", call(emu, "GET", f"{ROOT}/zones/{ZONE_A}")),
        ("compute.zones.list", call(emu, "GET", f"{ROOT}/zones")),
        (
            "compute.instances.updateNetworkInterface",
            call(
                emu,
                "PATCH",
                f"{ROOT}/zones/{ZONE_B}/instances/iris-b/updateNetworkInterface",
                {"aliasIpRanges": [{"ipCidrRange": "10.0.0.250/32"}], "fingerprint": fingerprint},
                networkInterface="nic0",
            ),
        ),
        (
            "compute.instances.deleteAccessConfig",
            call(
                emu,
                "POST",
                f"{instance_a}/deleteAccessConfig",
                accessConfig="External NAT",
                networkInterface="nic0",
            ),
        ),
        (
            "compute.instances.addAccessConfig",
            call(
                emu,
                "POST",
                f"{ROOT}/zones/{ZONE_B}/instances/iris-b/addAccessConfig",
                {"name": "External NAT", "type": "ONE_TO_ONE_NAT"},
                networkInterface="nic0",
            ),
        ),
        (
            "compute.instances.setLabels",
            call(
                emu,
                "POST",
                f"{instance_a}/setLabels",
                {"labels": {"a": "b"}, "labelFingerprint": "42WmSpB8rSM="},
            ),
        ),
        ("compute.instances.get", call(emu, "GET", f"{ROOT}/zones/{ZONE_B}/instances/iris-b")),
        ("compute.zoneOperations.list", call(emu, "GET", f"{ROOT}/zones/{ZONE_A}/operations")),
        ("compute.zoneOperations.list", call(emu, "GET", f"{ROOT}/zones/{ZONE_B}/operations")),
        (
            "compute.instances.testIamPermissions",
            call(
                emu,
                "POST",
                f"{instance_a}/testIamPermissions",
                {"permissions": ["compute.instances.get"]},
            ),
        ),
        (
            "compute.addresses.testIamPermissions",
            call(
                emu,
                "POST",
                f"{ROOT}/regions/{REGION}/addresses/iris-vip/testIamPermissions",
                {"permissions": ["compute.addresses.use"]},
            ),
        ),
        ("compute.instances.get", call(emu, "GET", f"{instance_a}x")),
        ("compute.instances.setLabels", call(emu, "POST", f"{instance_a}/setLabels", {})),
    ]
    emu.set_zone_down(ZONE_B)
    responses.append(
        ("compute.instances.aggregatedList", call(emu, "GET", f"{ROOT}/aggregated/instances"))
    )
    responses.append(("compute.instances.get", call(emu, "GET", f"{ROOT}/zones/{ZONE_B}/x")))

    for method_id, body in responses:
        assert_matches(discovery, method_id, body)
    operations = emu.operations()
    assert {op["status"] for op in operations} == {"DONE", "PENDING"}
    assert sum("error" in op for op in operations) == 2
    for operation in operations:
        assert_matches(discovery, "compute.zoneOperations.get", operation)


def test_the_validator_catches_invented_fields(discovery: dict[str, Any]) -> None:
    invented: dict[str, Any] = {
        "kind": "compute#instance",
        "aliasIp": "10.0.0.250",
        "networkInterfaces": [{"fingerprint": 7}],
    }

    problems = list(
        schema_violations(invented, {"$ref": "Instance"}, discovery["schemas"], "Instance")
    )

    assert problems == [
        "Instance.aliasIp: not in schema",
        "Instance.networkInterfaces[0].fingerprint: expected string, got int",
    ]
