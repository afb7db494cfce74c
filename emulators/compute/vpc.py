"""Routes, forwarding rules and target instances: what route mode moves, with GCE's invariants.

Routes are global resources and forwarding rules regional ones: their mutations run as global and
regional operations, and a zone that is down does not stop them (the server fails only paths that
name that zone). Validation on the request is synchronous (`ApiError`); `Plan.apply` re-checks
what may have changed by the time the operation finishes (`OperationFailure`).

Invariants (docs/compute-emulator.md, "Routes and forwarding rules"):
* a route's `destRange` may not lie inside a subnetwork range (primary or secondary) of its
  network; its name is unique in the project (409 `alreadyExists`, pending inserts included);
* the emulator serves `nextHopInstance` routes only; the instance must exist and have a NIC in
  the route's network;
* `forwardingRules.setTarget` needs an existing target instance in the rule's region.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

from emulators import JsonDict
from emulators.compute.errors import ApiError, OperationFailure, invalid, not_found, unknown_field
from emulators.compute.resources import ComputeModel, Plan
from emulators.compute.state import new_fingerprint, stable_id
from emulators.compute.urls import (
    API_ROOT,
    region_of,
    resource_key,
    resource_path,
    route_url,
)
from emulators.rfc3339 import format_rfc3339

ROUTE_FIELDS = frozenset(
    {
        "asPaths",
        "creationTimestamp",
        "description",
        "destRange",
        "id",
        "kind",
        "name",
        "network",
        "nextHopGateway",
        "nextHopHub",
        "nextHopIlb",
        "nextHopInstance",
        "nextHopInterRegionCost",
        "nextHopInterconnectAttachment",
        "nextHopIp",
        "nextHopMed",
        "nextHopNetwork",
        "nextHopOrigin",
        "nextHopPeering",
        "nextHopVpnTunnel",
        "params",
        "priority",
        "routeStatus",
        "routeType",
        "selfLink",
        "tags",
        "warnings",
    }
)
NEXT_HOP_FIELDS = (
    "nextHopGateway",
    "nextHopIlb",
    "nextHopInstance",
    "nextHopIp",
    "nextHopVpnTunnel",
)
OUTPUT_ONLY = frozenset({"creationTimestamp", "id", "kind", "selfLink", "routeStatus", "routeType"})
NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
MAX_PRIORITY = 65535


def _route_path(project: str, name: str) -> str:
    return f"projects/{project}/global/routes/{name}"


def _instance_key(url: str) -> tuple[str, str, str] | None:
    try:
        return resource_key(url, "zones", "instances")
    except ValueError:
        return None


def network_ranges(model: ComputeModel, network: str) -> list[ipaddress.IPv4Network]:
    """Every primary and secondary range of the subnetworks in `network`."""
    wanted = resource_path(network)
    ranges = []
    for subnet in model.subnetworks.values():
        if resource_path(subnet.get("network", "")) != wanted:
            continue
        ranges.append(ipaddress.IPv4Network(subnet["ipCidrRange"]))
        ranges.extend(
            ipaddress.IPv4Network(r["ipCidrRange"]) for r in subnet.get("secondaryIpRanges", [])
        )
    return ranges


def _known_networks(model: ComputeModel, project: str) -> set[str]:
    """Networks exist where subnetworks or NICs name them (the state has no network list)."""
    links = [s.get("network", "") for s in model.subnetworks.values()]
    links += [
        nic.get("network", "")
        for instance in model.instances.values()
        for nic in instance.get("networkInterfaces", [])
    ]
    return {resource_path(link) for link in links if f"projects/{project}/" in resource_path(link)}


class VpcPlanner:
    """Plans the route and forwarding-rule mutations on a `ComputeModel`."""

    def __init__(self, model: ComputeModel) -> None:
        self.model = model
        self.pending_routes: set[tuple[str, str]] = set()
        """(project, name) of routes whose insert is accepted but not yet applied."""

    # ---- routes --------------------------------------------------------------------------------

    def plan_insert_route(self, project: str, body: Any) -> Plan:
        """Validate `routes.insert`; the route exists once its global operation is DONE."""
        route = self._checked_route(project, body)
        name = route["name"]
        self.pending_routes.add((project, name))
        key = (project, "global", name)

        def apply() -> None:
            self.pending_routes.discard((project, name))
            if key in self.model.vpc.routes:
                raise OperationFailure(
                    "RESOURCE_ALREADY_EXISTS",
                    f"The resource '{_route_path(project, name)}' already exists",
                    409,
                )
            hop = _instance_key(route["nextHopInstance"])
            if hop is None or hop not in self.model.instances:
                raise OperationFailure(
                    "RESOURCE_NOT_FOUND",
                    f"The resource '{resource_path(route['nextHopInstance'])}' was not found",
                    404,
                )
            self.model.vpc.routes[key] = copy.deepcopy(route)

        return Plan("insert", key, route["selfLink"], route["id"], apply)

    def plan_delete_route(self, project: str, name: str) -> Plan:
        key = (project, "global", name)
        route = self.model.vpc.routes.get(key)
        if route is None:
            raise not_found(_route_path(project, name))

        def apply() -> None:
            if self.model.vpc.routes.pop(key, None) is None:
                raise OperationFailure(
                    "RESOURCE_NOT_FOUND",
                    f"The resource '{_route_path(project, name)}' was not found",
                    404,
                )

        return Plan("delete", key, route["selfLink"], str(route.get("id", "")), apply)

    def _checked_route(self, project: str, body: Any) -> JsonDict:
        if not isinstance(body, dict):
            raise ApiError(400, "badRequest", "Invalid JSON payload received.")
        unknown = set(body) - ROUTE_FIELDS
        if unknown:
            raise unknown_field(sorted(unknown)[0], "resource")
        name = body.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise invalid(
                "resource.name",
                name,
                "Must be a match of regex '[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?'",
            )
        pending = (project, name) in self.pending_routes
        if (project, "global", name) in self.model.vpc.routes or pending:
            raise ApiError(
                409, "alreadyExists", f"The resource '{_route_path(project, name)}' already exists"
            )
        network = self._network(project, body.get("network"))
        dest = _dest_range(body.get("destRange"))
        for subnet_range in network_ranges(self.model, network):
            if dest.subnet_of(subnet_range):
                raise invalid(
                    "resource.destRange",
                    body["destRange"],
                    f"The destination range lies inside subnetwork range {subnet_range} of "
                    f"network '{network}'; a route may not be more specific than a subnet route.",
                )
        priority = body.get("priority", 1000)
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not 0 <= priority <= MAX_PRIORITY
        ):
            raise invalid("resource.priority", priority, f"Must be between 0 and {MAX_PRIORITY}.")
        hop = self._next_hop_instance(body, network)
        route: JsonDict = {
            "kind": "compute#route",
            "id": stable_id(project, "route", name, format_rfc3339()),
            "creationTimestamp": format_rfc3339(zulu=False),
            "name": name,
            "network": f"{API_ROOT}/{network}",
            "destRange": str(dest),
            "priority": priority,
            "nextHopInstance": hop,
            "routeType": "STATIC",
            "selfLink": route_url(project, name),
        }
        for optional in ("description", "tags"):
            if body.get(optional):
                route[optional] = copy.deepcopy(body[optional])
        return route

    def _network(self, project: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ApiError(400, "required", "Required field 'resource.network' not specified")
        path = resource_path(value)
        if not path.startswith("projects/"):
            path = f"projects/{project}/global/networks/{value.rsplit('/', 1)[-1]}"
        if path not in _known_networks(self.model, project):
            raise not_found(path)
        return path

    def _next_hop_instance(self, body: JsonDict, network: str) -> str:
        hops = [field for field in NEXT_HOP_FIELDS if body.get(field)]
        if len(hops) != 1:
            raise invalid("resource", hops, "Exactly one next hop must be specified.")
        if hops != ["nextHopInstance"]:
            raise invalid(
                f"resource.{hops[0]}", body[hops[0]], "The emulator serves nextHopInstance only."
            )
        url = str(body["nextHopInstance"])
        key = _instance_key(url)
        instance = self.model.instances.get(key) if key else None
        if key is None or instance is None:
            raise not_found(resource_path(url))
        networks = [
            resource_path(n.get("network", "")) for n in instance.get("networkInterfaces", [])
        ]
        if network not in networks:
            raise invalid(
                "resource.nextHopInstance",
                url,
                f"The next hop instance has no network interface in network '{network}'.",
            )
        return f"{API_ROOT}/{resource_path(url)}"

    # ---- forwarding rules ----------------------------------------------------------------------

    def plan_set_target(self, key: tuple[str, str, str], body: Any) -> Plan:
        """Validate `forwardingRules.setTarget`; the rule points at the target once DONE."""
        project, region, name = key
        rule = self.model.vpc.forwarding_rules.get(key)
        if rule is None:
            raise not_found(f"projects/{project}/regions/{region}/forwardingRules/{name}")
        if not isinstance(body, dict):
            raise ApiError(400, "badRequest", "Invalid JSON payload received.")
        unknown = set(body) - {"target"}
        if unknown:
            raise unknown_field(sorted(unknown)[0], "resource")
        target_key = self._target_instance(body.get("target"), region)

        def apply() -> None:
            target = self.model.vpc.target_instances.get(target_key)
            if target is None:
                raise OperationFailure(
                    "RESOURCE_NOT_FOUND",
                    f"The resource '{resource_path(str(body['target']))}' was not found",
                    404,
                )
            current = self.model.vpc.forwarding_rules[key]
            current["target"] = target["selfLink"]
            current["fingerprint"] = new_fingerprint()

        scope_key = (project, f"regions/{region}", name)
        return Plan("SetTarget", scope_key, rule["selfLink"], str(rule.get("id", "")), apply)

    def _target_instance(self, value: Any, region: str) -> tuple[str, str, str]:
        if not isinstance(value, str) or not value:
            raise ApiError(400, "required", "Required field 'resource.target' not specified")
        try:
            key = resource_key(value, "zones", "targetInstances")
        except ValueError:
            raise invalid(
                "resource.target", value, "A protocol forwarding rule targets a target instance."
            ) from None
        if key not in self.model.vpc.target_instances:
            raise not_found(resource_path(value))
        if region_of(key[1]) != region:
            raise invalid(
                "resource.target", value, f"The target instance is not in region '{region}'."
            )
        return key


def _dest_range(value: Any) -> ipaddress.IPv4Network:
    if not isinstance(value, str) or not value:
        raise ApiError(400, "required", "Required field 'resource.destRange' not specified")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise invalid("resource.destRange", value, "The IP CIDR range is invalid.") from None
