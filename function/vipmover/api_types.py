"""The Compute API's JSON, typed: only the fields the mover reads or writes.

The gateway speaks plain REST (see `compute.py` for why), so these TypedDicts are the contract with
the API. Every key is checked against Google's discovery document (`compute.v1.json`) by
`tests/function/test_api_types.py`; `SCHEMAS` names the discovery schema each one mirrors.
"""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class AliasIpRangeJson(TypedDict, total=False):
    ipCidrRange: str
    subnetworkRangeName: str


class AccessConfigJson(TypedDict, total=False):
    kind: str
    type: str
    name: str
    natIP: str
    networkTier: str


class NetworkInterfaceJson(TypedDict, total=False):
    name: str
    network: str
    subnetwork: str
    networkIP: str
    fingerprint: str
    aliasIpRanges: list[AliasIpRangeJson]
    accessConfigs: list[AccessConfigJson]


class InstanceJson(TypedDict, total=False):
    id: str
    name: str
    zone: str
    status: str
    canIpForward: bool
    labels: dict[str, str]
    labelFingerprint: str
    networkInterfaces: list[NetworkInterfaceJson]
    selfLink: str


class AddressJson(TypedDict, total=False):
    name: str
    address: str
    addressType: str
    region: str
    status: str
    users: list[str]
    networkTier: str


class ListJson(TypedDict, Generic[T], total=False):
    """One page of any `*.list` answer (`AddressList`, `RouteList`)."""

    items: list[T]
    nextPageToken: str


class AggregatedListJson(TypedDict, total=False):
    """One page of any `*.aggregatedList` answer: scope (`zones/Z`) -> {collection: [resource]}."""

    items: dict[str, dict[str, list[Any]]]
    nextPageToken: str
    unreachables: list[str]


class SubnetworkSecondaryRangeJson(TypedDict, total=False):
    rangeName: str
    ipCidrRange: str


class SubnetworkJson(TypedDict, total=False):
    name: str
    network: str
    region: str
    ipCidrRange: str
    secondaryIpRanges: list[SubnetworkSecondaryRangeJson]
    selfLink: str


class TargetInstanceJson(TypedDict, total=False):
    name: str
    zone: str
    instance: str
    selfLink: str


class TestPermissionsRequestJson(TypedDict):
    permissions: list[str]


class TestPermissionsResponseJson(TypedDict, total=False):
    permissions: list[str]


class RouteJson(TypedDict, total=False):
    name: str
    description: str
    network: str
    destRange: str
    priority: int
    nextHopInstance: str
    nextHopIp: str
    nextHopGateway: str
    nextHopIlb: str
    nextHopVpnTunnel: str


class ForwardingRuleJson(TypedDict, total=False):
    name: str
    IPAddress: str
    target: str


class TargetReferenceJson(TypedDict):
    target: str


class OperationErrorItemJson(TypedDict, total=False):
    code: str
    message: str


class OperationErrorJson(TypedDict, total=False):
    errors: list[OperationErrorItemJson]


class OperationJson(TypedDict, total=False):
    name: str
    zone: str
    region: str
    status: str
    error: OperationErrorJson


class InstancesSetLabelsRequestJson(TypedDict):
    labels: dict[str, str]
    labelFingerprint: str


SCHEMAS: dict[str, type] = {
    "AliasIpRange": AliasIpRangeJson,
    "AccessConfig": AccessConfigJson,
    "NetworkInterface": NetworkInterfaceJson,
    "Instance": InstanceJson,
    "Address": AddressJson,
    "AddressList": ListJson,
    "Operation": OperationJson,
    "InstancesSetLabelsRequest": InstancesSetLabelsRequestJson,
    "InstanceAggregatedList": AggregatedListJson,
    "SubnetworkSecondaryRange": SubnetworkSecondaryRangeJson,
    "Subnetwork": SubnetworkJson,
    "SubnetworkAggregatedList": AggregatedListJson,
    "TargetInstance": TargetInstanceJson,
    "TestPermissionsRequest": TestPermissionsRequestJson,
    "TestPermissionsResponse": TestPermissionsResponseJson,
    "Route": RouteJson,
    "RouteList": ListJson,
    "ForwardingRule": ForwardingRuleJson,
    "TargetReference": TargetReferenceJson,
}
"""Discovery schema name -> the TypedDict that mirrors it (nested error shapes are checked by
their parent's path)."""
