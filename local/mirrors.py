"""Build Compute Engine emulator state for IRIS mirrors, in the API's own JSON form.

The Compute emulator loads `{"instances": [...], "subnetworks": [...], "addresses": [...]}` where
every resource is exactly what `gcloud compute ... describe --format=json` prints. These builders
produce that shape so that tests, the demo and a hand-written state file all agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

API_ROOT = "https://www.googleapis.com/compute/v1"

JsonDict = dict[str, Any]


def region_of(zone: str) -> str:
    """`us-west1-a` -> `us-west1`."""
    return zone.rsplit("-", 1)[0]


def zone_url(project: str, zone: str) -> str:
    return f"{API_ROOT}/projects/{project}/zones/{zone}"


def instance_url(project: str, zone: str, name: str) -> str:
    return f"{zone_url(project, zone)}/instances/{name}"


def subnetwork_url(project: str, region: str, name: str) -> str:
    return f"{API_ROOT}/projects/{project}/regions/{region}/subnetworks/{name}"


def network_url(project: str, name: str) -> str:
    return f"{API_ROOT}/projects/{project}/global/networks/{name}"


def address_url(project: str, region: str, name: str) -> str:
    return f"{API_ROOT}/projects/{project}/regions/{region}/addresses/{name}"


def stable_id(*parts: str) -> str:
    """A deterministic 19-digit resource id, like the API's uint64 ids rendered as strings."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % 9 * 10**18 + 10**18)


@dataclass(frozen=True)
class Member:
    """One VM of a mirror as it should exist in the emulator."""

    name: str
    zone: str
    network_ip: str
    aliases: tuple[str, ...] = ()
    """Alias CIDR ranges on nic0; `name:cidr` puts the range in a named secondary range."""
    nat_ip: str | None = None
    """External IP on nic0's access config (static or ephemeral)."""
    access_config_name: str = "External NAT"
    status: str = "RUNNING"
    labels: dict[str, str] = field(default_factory=dict)


def instance(project: str, member: Member, *, network: str = "default") -> JsonDict:
    """One `compute#instance` with a single NIC, as the API returns it."""
    region = region_of(member.zone)
    alias_ranges: list[JsonDict] = []
    for alias in member.aliases:
        range_name, _, cidr = alias.rpartition(":")
        entry: JsonDict = {"ipCidrRange": cidr}
        if range_name:
            entry["subnetworkRangeName"] = range_name
        alias_ranges.append(entry)
    nic: JsonDict = {
        "kind": "compute#networkInterface",
        "name": "nic0",
        "network": network_url(project, network),
        "subnetwork": subnetwork_url(project, region, network),
        "networkIP": member.network_ip,
        "stackType": "IPV4_ONLY",
        "fingerprint": "AAAAAAAAAAA=",
    }
    if alias_ranges:
        nic["aliasIpRanges"] = alias_ranges
    if member.nat_ip:
        nic["accessConfigs"] = [
            {
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": member.access_config_name,
                "natIP": member.nat_ip,
                "networkTier": "PREMIUM",
            }
        ]
    return {
        "kind": "compute#instance",
        "id": stable_id(project, member.zone, member.name),
        "creationTimestamp": "2026-01-01T00:00:00.000-08:00",
        "name": member.name,
        "machineType": f"{zone_url(project, member.zone)}/machineTypes/n2-standard-4",
        "status": member.status,
        "zone": zone_url(project, member.zone),
        "networkInterfaces": [nic],
        "labels": dict(member.labels),
        "labelFingerprint": "42WmSpB8rSM=",
        "fingerprint": "AAAAAAAAAAA=",
        "selfLink": instance_url(project, member.zone, member.name),
    }


def subnetwork(
    project: str,
    region: str,
    cidr: str,
    *,
    name: str = "default",
    secondary: dict[str, str] | None = None,
) -> JsonDict:
    """One `compute#subnetwork`; `secondary` maps range names to CIDRs."""
    body: JsonDict = {
        "kind": "compute#subnetwork",
        "id": stable_id(project, region, name),
        "name": name,
        "network": network_url(project, name),
        "ipCidrRange": cidr,
        "gatewayAddress": cidr.split("/", maxsplit=1)[0].rsplit(".", 1)[0] + ".1",
        "region": f"{API_ROOT}/projects/{project}/regions/{region}",
        "stackType": "IPV4_ONLY",
        "fingerprint": "AAAAAAAAAAA=",
        "selfLink": subnetwork_url(project, region, name),
    }
    if secondary:
        body["secondaryIpRanges"] = [
            {"rangeName": range_name, "ipCidrRange": range_cidr}
            for range_name, range_cidr in secondary.items()
        ]
    return body


def static_address(
    project: str, region: str, name: str, ip: str, *, user: str | None = None
) -> JsonDict:
    """One reserved external `compute#address`; `user` is the self link of the instance using it."""
    body: JsonDict = {
        "kind": "compute#address",
        "id": stable_id(project, region, "address", name),
        "creationTimestamp": "2026-01-01T00:00:00.000-08:00",
        "name": name,
        "address": ip,
        "addressType": "EXTERNAL",
        "networkTier": "PREMIUM",
        "region": f"{API_ROOT}/projects/{project}/regions/{region}",
        "status": "IN_USE" if user else "RESERVED",
        "selfLink": address_url(project, region, name),
    }
    if user:
        body["users"] = [user]
    return body


def mirror_state(
    project: str,
    members: list[Member],
    *,
    subnet_cidr: str = "10.0.0.0/24",
    secondary: dict[str, str] | None = None,
    public_address: tuple[str, str] | None = None,
) -> JsonDict:
    """A whole emulator state: the members, their regional subnet(s) and an optional static IP.

    Args:
        project: Project holding every resource.
        members: The VMs; every member's region gets the same `default` subnetwork.
        subnet_cidr: Primary range of the subnetwork.
        secondary: Named secondary ranges of the subnetwork.
        public_address: `(name, ip)` of a reserved external address in the first member's region;
            it is marked in use by whichever member has that IP as its `nat_ip`.
    """
    regions = sorted({region_of(m.zone) for m in members})
    state: JsonDict = {
        "instances": [instance(project, m) for m in members],
        "subnetworks": [
            subnetwork(project, region, subnet_cidr, secondary=secondary) for region in regions
        ],
        "addresses": [],
    }
    if public_address:
        name, ip = public_address
        holder = next((m for m in members if m.nat_ip == ip), None)
        user = instance_url(project, holder.zone, holder.name) if holder else None
        state["addresses"].append(
            static_address(project, region_of(members[0].zone), name, ip, user=user)
        )
    return state
