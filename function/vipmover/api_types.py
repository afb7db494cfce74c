"""The Compute API's JSON, typed: only the fields the mover reads or writes.

The gateway speaks plain REST (see `compute.py` for why), so these TypedDicts are the contract with
the API. Every key is checked against Google's discovery document (`compute.v1.json`) by
`tests/function/test_api_types.py`; `SCHEMAS` names the discovery schema each one mirrors.
"""

from __future__ import annotations

from typing import TypedDict


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


class AddressListJson(TypedDict, total=False):
    items: list[AddressJson]
    nextPageToken: str


class InstancesScopedListJson(TypedDict, total=False):
    instances: list[InstanceJson]


class InstanceAggregatedListJson(TypedDict, total=False):
    items: dict[str, InstancesScopedListJson]
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


class SubnetworksScopedListJson(TypedDict, total=False):
    subnetworks: list[SubnetworkJson]


class SubnetworkAggregatedListJson(TypedDict, total=False):
    items: dict[str, SubnetworksScopedListJson]
    nextPageToken: str
    unreachables: list[str]


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


class RouteListJson(TypedDict, total=False):
    items: list[RouteJson]
    nextPageToken: str


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
    "AddressList": AddressListJson,
    "Operation": OperationJson,
    "InstancesSetLabelsRequest": InstancesSetLabelsRequestJson,
    "InstancesScopedList": InstancesScopedListJson,
    "InstanceAggregatedList": InstanceAggregatedListJson,
    "SubnetworkSecondaryRange": SubnetworkSecondaryRangeJson,
    "Subnetwork": SubnetworkJson,
    "SubnetworksScopedList": SubnetworksScopedListJson,
    "SubnetworkAggregatedList": SubnetworkAggregatedListJson,
    "TargetInstance": TargetInstanceJson,
    "TestPermissionsRequest": TestPermissionsRequestJson,
    "TestPermissionsResponse": TestPermissionsResponseJson,
    "Route": RouteJson,
    "RouteList": RouteListJson,
    "ForwardingRule": ForwardingRuleJson,
    "TargetReference": TargetReferenceJson,
}
"""Discovery schema name -> the TypedDict that mirrors it (nested error shapes are checked by
their parent's path)."""
