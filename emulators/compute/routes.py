"""The discovery document's methods the emulator serves, and the one shape of a list response."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from emulators import JsonDict
from emulators.compute.urls import API_ROOT

SERVICE_PREFIX = "/compute/v1/"


@dataclass(frozen=True)
class Route:
    """One discovery method: its id, HTTP verb and path template relative to `compute/v1/`."""

    method_id: str
    http_method: str
    template: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(regex))


_ZONE = "projects/{project}/zones/{zone}"
_INSTANCE = f"{_ZONE}/instances/{{instance}}"
_REGION = "projects/{project}/regions/{region}"
_GLOBAL = "projects/{project}/global"


def _operations(collection: str, scope: str) -> tuple[Route, Route]:
    """`get` and the long-poll `wait` of one operations collection."""
    path = f"{scope}/operations/{{operation}}"
    return (
        Route(f"compute.{collection}.get", "GET", path),
        Route(f"compute.{collection}.wait", "POST", f"{path}/wait"),
    )


def _test_iam_permissions(collection: str, scope: str) -> Route:
    """`testIamPermissions` on one resource: `mirror-vip doctor` checks the caller's rights."""
    return Route(
        f"compute.{collection}.testIamPermissions",
        "POST",
        f"{scope}/{collection}/{{resource}}/testIamPermissions",
    )


ROUTES: tuple[Route, ...] = (
    # What the function calls: read, mutate, wait.
    Route("compute.instances.get", "GET", _INSTANCE),
    Route(
        "compute.instances.updateNetworkInterface", "PATCH", f"{_INSTANCE}/updateNetworkInterface"
    ),
    Route("compute.instances.addAccessConfig", "POST", f"{_INSTANCE}/addAccessConfig"),
    Route("compute.instances.deleteAccessConfig", "POST", f"{_INSTANCE}/deleteAccessConfig"),
    Route("compute.instances.setLabels", "POST", f"{_INSTANCE}/setLabels"),
    Route("compute.addresses.get", "GET", f"{_REGION}/addresses/{{address}}"),
    *_operations("zoneOperations", _ZONE),
    # Lists: the planned `mirror-vip status/doctor` reads instances and addresses project-wide.
    Route("compute.instances.list", "GET", f"{_ZONE}/instances"),
    Route("compute.instances.aggregatedList", "GET", "projects/{project}/aggregated/instances"),
    Route("compute.addresses.list", "GET", f"{_REGION}/addresses"),
    Route("compute.addresses.aggregatedList", "GET", "projects/{project}/aggregated/addresses"),
    # Subnetworks: `doctor` checks that the VIP lies in the members' subnetwork (alias mode),
    # or outside every subnetwork range of the network (route mode).
    Route("compute.subnetworks.get", "GET", f"{_REGION}/subnetworks/{{subnetwork}}"),
    Route("compute.subnetworks.list", "GET", f"{_REGION}/subnetworks"),
    Route("compute.subnetworks.aggregatedList", "GET", "projects/{project}/aggregated/subnetworks"),
    # Operations list: `doctor` shows a move's operations still pending on a member.
    Route("compute.zoneOperations.list", "GET", f"{_ZONE}/operations"),
    # Zones: gcloud resolves and lists zones; `set_zone_down` shows up in aggregated lists.
    Route("compute.zones.get", "GET", "projects/{project}/zones/{zone}"),
    Route("compute.zones.list", "GET", "projects/{project}/zones"),
    # testIamPermissions: `mirror-vip doctor` checks the caller's rights on the mirror's resources.
    _test_iam_permissions("instances", _ZONE),
    _test_iam_permissions("subnetworks", _REGION),
    _test_iam_permissions("addresses", _REGION),
    # Route mode: the VIP as a custom static route (global), the public IP as a forwarding
    # rule (regional) pointing at one target instance per member.
    Route("compute.routes.insert", "POST", f"{_GLOBAL}/routes"),
    Route("compute.routes.delete", "DELETE", f"{_GLOBAL}/routes/{{route}}"),
    Route("compute.routes.get", "GET", f"{_GLOBAL}/routes/{{route}}"),
    Route("compute.routes.list", "GET", f"{_GLOBAL}/routes"),
    *_operations("globalOperations", _GLOBAL),
    *_operations("regionOperations", _REGION),
    Route("compute.forwardingRules.get", "GET", f"{_REGION}/forwardingRules/{{forwardingRule}}"),
    Route("compute.forwardingRules.list", "GET", f"{_REGION}/forwardingRules"),
    Route(
        "compute.forwardingRules.setTarget",
        "POST",
        f"{_REGION}/forwardingRules/{{forwardingRule}}/setTarget",
    ),
    Route("compute.targetInstances.get", "GET", f"{_ZONE}/targetInstances/{{targetInstance}}"),
    Route("compute.targetInstances.list", "GET", f"{_ZONE}/targetInstances"),
    _test_iam_permissions("targetInstances", _ZONE),
)


def match_route(http_method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """The route serving `path` (under SERVICE_PREFIX) and its path parameters."""
    if not path.startswith(SERVICE_PREFIX):
        return None, {}
    relative = path[len(SERVICE_PREFIX) :]
    for route in ROUTES:
        match = route.pattern.fullmatch(relative)
        if match and route.http_method == http_method:
            return route, match.groupdict()
    return None, {}


def list_body(
    kind: str,
    path: str,
    items: list[JsonDict] | Mapping[str, JsonDict],
    unreachables: Iterable[str] = (),
) -> JsonDict:
    """A `*List` (items a list) or `*AggregatedList` (items keyed by scope) response."""
    body: JsonDict = {"kind": kind, "id": path, "items": items, "selfLink": f"{API_ROOT}/{path}"}
    if unreachables:
        body["unreachables"] = sorted(unreachables)
    return body
