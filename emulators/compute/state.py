"""Loading a state file: the API's own JSON, often written by hand.

A resource pasted from `gcloud ... describe --format=json` loads as it is. One written by hand may
leave out what GCE sets itself (`kind`, `id`, `selfLink`, `fingerprint`, `labelFingerprint`, a
NIC's `name` and `fingerprint`, an address's `status`): those are filled in as GCE would. What only
the author can know (`name`, `zone` or `region`, and the project, read from `selfLink` or from a
`zone`/`region` URL) is required, and its absence is one `StateError` line naming the field and
the resource.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import secrets
from typing import Any

from emulators import JsonDict
from emulators.compute.urls import (
    instance_url,
    last_segment,
    region_url,
    route_url,
    segment_after,
    zone_url,
)

InstanceKey = tuple[str, str, str]
"""(project, zone, name)."""
RegionalKey = tuple[str, str, str]
"""(project, region, name)."""

EMPTY_LABELS_FINGERPRINT = "42WmSpB8rSM="
"""What GCE reports as the `labelFingerprint` of an instance that has no labels."""


class StateError(ValueError):
    """A state file resource that cannot be loaded; the message names the resource and field."""


def stable_id(*parts: str) -> str:
    """A deterministic 19-digit resource id, like the API's uint64 ids rendered as strings."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % 9 * 10**18 + 10**18)


def new_fingerprint() -> str:
    """A fresh fingerprint: 8 random bytes in standard base64, like the API's."""
    return base64.b64encode(secrets.token_bytes(8)).decode()


def load_state(
    state: Any,
) -> tuple[dict[InstanceKey, JsonDict], dict[RegionalKey, JsonDict], dict[RegionalKey, JsonDict]]:
    """Instances, subnetworks and addresses keyed by (project, zone or region, name).

    Raises:
        StateError: a resource lacks a field only its author can give, or the file's shape is off.
    """
    if not isinstance(state, dict):
        raise StateError("state: expected a JSON object with instances, subnetworks, addresses")
    instances = {
        _key(r, "instances", i, "zone"): _filled_instance(r, "instances", i)
        for i, r in enumerate(_resources(state, "instances"))
    }
    subnetworks = {
        _key(r, "subnetworks", i, "region"): _filled_regional(r, "subnetworks", i, "subnetwork")
        for i, r in enumerate(_resources(state, "subnetworks"))
    }
    addresses = {
        _key(r, "addresses", i, "region"): _filled_regional(r, "addresses", i, "address")
        for i, r in enumerate(_resources(state, "addresses"))
    }
    return instances, subnetworks, addresses


@dataclasses.dataclass
class VpcState:
    """Routes (global), forwarding rules (regional) and target instances (zonal), keyed like the
    other resources; a route's scope is `global`."""

    routes: dict[tuple[str, str, str], JsonDict] = dataclasses.field(default_factory=dict)
    forwarding_rules: dict[RegionalKey, JsonDict] = dataclasses.field(default_factory=dict)
    target_instances: dict[InstanceKey, JsonDict] = dataclasses.field(default_factory=dict)


def load_vpc_state(state: Any) -> VpcState:
    """The state file's `routes`, `forwardingRules` and `targetInstances` (each optional).

    Raises:
        StateError: as `load_state`; a route needs `name` and a `selfLink` or `network` URL.
    """
    if not isinstance(state, dict):
        raise StateError("state: expected a JSON object")
    routes = {}
    for index, route in enumerate(_resources(state, "routes")):
        name = _required(route, "name", "routes", index)
        project = _project(route, "network", "routes", index)
        route.setdefault("kind", "compute#route")
        route.setdefault("id", stable_id(project, "route", name))
        route.setdefault("priority", 1000)
        route.setdefault("selfLink", route_url(project, name))
        routes[(project, "global", name)] = route
    rules = {
        _key(r, "forwardingRules", i, "region"): _filled_regional(
            r, "forwardingRules", i, "forwardingRule"
        )
        for i, r in enumerate(_resources(state, "forwardingRules"))
    }
    targets = {}
    for index, target in enumerate(_resources(state, "targetInstances")):
        project, zone, name = _key(target, "targetInstances", index, "zone")
        target.setdefault("kind", "compute#targetInstance")
        target.setdefault("id", stable_id(project, zone, "targetInstance", name))
        if "projects/" not in target["zone"]:
            target["zone"] = zone_url(project, zone)
        target.setdefault("natPolicy", "NO_NAT")
        target.setdefault("selfLink", f"{zone_url(project, zone)}/targetInstances/{name}")
        targets[(project, zone, name)] = target
    return VpcState(routes, rules, targets)


def _resources(state: JsonDict, collection: str) -> list[JsonDict]:
    resources = state.get(collection, [])
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise StateError(f"state: '{collection}' must be a list of objects")
    return [copy.deepcopy(r) for r in resources]


def _where(resource: JsonDict, collection: str, index: int) -> str:
    name = resource.get("name")
    return f"state: {collection}[{index}]" + (f" ({name})" if isinstance(name, str) else "")


def _required(resource: JsonDict, field: str, collection: str, index: int) -> str:
    value = resource.get(field)
    if not isinstance(value, str) or not value:
        raise StateError(f"{_where(resource, collection, index)}: missing '{field}'")
    return value


def _project(resource: JsonDict, scope_field: str, collection: str, index: int) -> str:
    """The project, from `selfLink` or else from the zone/region URL."""
    for field in ("selfLink", scope_field):
        try:
            return segment_after(str(resource.get(field, "")), "projects")
        except ValueError:
            continue
    raise StateError(
        f"{_where(resource, collection, index)}: missing 'selfLink' "
        f"(or a '{scope_field}' URL naming the project)"
    )


def _key(resource: JsonDict, collection: str, index: int, scope_field: str) -> tuple[str, str, str]:
    name = _required(resource, "name", collection, index)
    scope = last_segment(_required(resource, scope_field, collection, index))
    return _project(resource, scope_field, collection, index), scope, name


def _filled_instance(resource: JsonDict, collection: str, index: int) -> JsonDict:
    project, zone, name = _key(resource, collection, index, "zone")
    resource.setdefault("kind", "compute#instance")
    resource.setdefault("id", stable_id(project, zone, name))
    if "projects/" not in resource["zone"]:
        resource["zone"] = zone_url(project, zone)
    resource.setdefault("selfLink", instance_url(project, zone, name))
    resource.setdefault("fingerprint", new_fingerprint())
    labels_fingerprint = new_fingerprint() if resource.get("labels") else EMPTY_LABELS_FINGERPRINT
    resource.setdefault("labelFingerprint", labels_fingerprint)
    for nic_index, nic in enumerate(resource.get("networkInterfaces", [])):
        nic.setdefault("kind", "compute#networkInterface")
        nic.setdefault("name", f"nic{nic_index}")
        nic.setdefault("fingerprint", new_fingerprint())
        for config in nic.get("accessConfigs", []):
            config.setdefault("kind", "compute#accessConfig")
    return resource


def _filled_regional(resource: JsonDict, collection: str, index: int, kind: str) -> JsonDict:
    project, region, name = _key(resource, collection, index, "region")
    resource.setdefault("kind", f"compute#{kind}")
    resource.setdefault("id", stable_id(project, region, kind, name))
    if "projects/" not in resource["region"]:
        resource["region"] = region_url(project, region)
    resource.setdefault("selfLink", f"{region_url(project, region)}/{collection}/{name}")
    if kind in {"subnetwork", "forwardingRule"}:
        resource.setdefault("fingerprint", new_fingerprint())
    return resource
