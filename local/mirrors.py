"""The IRIS mirrors a local run serves, as plain data, and the Compute emulator state they imply.

One builder for the demo, the stack, the e2e tests, the function's tests and the emulator's
tests: a `MirrorLayout` is members (the first holds the VIP), a VIP and an optional static IP;
`compute_state` turns layouts into the emulator's state, every resource in the API's own JSON as
`gcloud compute ... describe --format=json` prints it; `mirror_config` into MIRROR_CONFIG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from emulators import JsonDict
from emulators.compute.state import stable_id
from emulators.compute.urls import (
    address_url,
    instance_url,
    network_url,
    region_of,
    region_url,
    subnetwork_url,
    zone_url,
)

DEFAULT_PROJECT = "iris-demo-1"
SUBNET_CIDR = "10.0.0.0/24"
SECONDARY_RANGES = {"vips": "10.1.0.0/24"}


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
    can_ip_forward: bool = False
    """Route mode needs it: a VM drops packets for an address it does not own without it."""

    @property
    def target_instance(self) -> str:
        """The name of its target instance (route mode's forwarding rule points at one)."""
        return f"{self.name}-ti"


@dataclass(frozen=True)
class MirrorLayout:
    """One IRIS mirror as the stack seeds it: members (the first holds the VIP), VIP, static IP.

    `members` are emulator `Member`s; the initial primary must carry the VIP in `aliases` and the
    static IP as `nat_ip` (with `access_config_name` = `public[0]`), as `mirror_layout` builds.
    """

    name: str
    project: str
    vip: str
    members: tuple[Member, ...]
    public: tuple[str, str] | None = None
    """(reserved address name, IP), or in route mode (forwarding rule name, IP)."""
    mode: str = "alias"
    """`route`: the VIP lies outside the subnet and no member holds it at first; the forwarding
    rule points at the first member's target instance."""

    @property
    def region(self) -> str:
        return region_of(self.members[0].zone)

    def member(self, name: str) -> Member:
        """The member whose VM is called `name`."""
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"{name} is not a member of mirror {self.name}")

    def config_entry(self) -> JsonDict:
        """This mirror's entry in MIRROR_CONFIG, in the documented shape."""
        if self.mode == "route":
            return self._route_config_entry()
        entry: JsonDict = {
            "project": self.project,
            "network_interface": "nic0",
            "private_vip": self.vip,
            "subnetwork_range_name": None,
            "members": [{"instance": m.name, "zone": m.zone} for m in self.members],
        }
        if self.public:
            entry["public_ip"] = {
                "address_name": self.public[0],
                "region": self.region,
                "access_config_name": self.public[0],
            }
        return entry

    def _route_config_entry(self) -> JsonDict:
        entry: JsonDict = {
            "project": self.project,
            "mode": "route",
            "private_vip": self.vip,
            "network": "default",
            "members": [
                {"instance": m.name, "zone": m.zone, "target_instance": m.target_instance}
                for m in self.members
            ],
        }
        if self.public:
            entry["public_ip"] = {"forwarding_rule": self.public[0], "region": self.region}
        return entry


ROUTE_VIP_NET = "10.100.0.0/24"
"""Route-mode VIPs: outside every subnet range of the network, as GCE requires of a route."""


def route_layout(index: int, *, project: str = DEFAULT_PROJECT) -> MirrorLayout:
    """Mirror number `index` in route mode: like `mirror_layout`, with the VIP 10.100.0.(250 -
    index)/32 outside the subnet, canIpForward members, and a forwarding rule for the public IP
    targeting the first member's target instance. No route exists yet: the first
    `became_primary` inserts it."""
    alias = mirror_layout(index, project=project)
    members = tuple(
        Member(m.name, m.zone, m.network_ip, status=m.status, can_ip_forward=True)
        for m in alias.members
    )
    assert alias.public is not None
    rule = (f"{alias.public[0]}-fr", alias.public[1])
    vip = f"10.100.0.{250 - index}/32"
    return MirrorLayout(alias.name, project, vip, members, rule, mode="route")


def iris_member_name(member: Member) -> str:
    """The IRIS mirror member name for a VM (what ^ZMIRROR passes): `isc-a-001` -> `ISC_A_001`."""
    return member.name.upper().replace("-", "_")


def mirror_layout(index: int, *, project: str = DEFAULT_PROJECT) -> MirrorLayout:
    """Mirror number `index` (0-based) of a deployment: two members in two zones, distinct VIPs.

    Mirror 0 is `IRISMIRROR` with VIP 10.0.0.250/32; others are `IRISMIRROR02`... with VIPs
    counting down from 10.0.0.249 (up to 100 mirrors fit in the /24 next to the members' IPs).
    """
    if not 0 <= index < 100:
        raise ValueError("index must be 0..99")
    suffix = f"{index + 1:03d}"
    static = ("isc-mirror" if index == 0 else f"isc-mirror-{suffix}", f"203.0.113.{10 + index}")
    primary = Member(
        name=f"isc-primary-{suffix}",
        zone="us-west1-a",
        network_ip=f"10.0.0.{11 + 2 * index}",
        aliases=(f"10.0.0.{250 - index}/32",),
        nat_ip=static[1],
        access_config_name=static[0],
    )
    backup = Member(
        name=f"isc-backup-{suffix}", zone="us-west1-b", network_ip=f"10.0.0.{12 + 2 * index}"
    )
    name = "IRISMIRROR" if index == 0 else f"IRISMIRROR{index + 1:02d}"
    return MirrorLayout(name, project, f"10.0.0.{250 - index}/32", (primary, backup), static)


def compute_state(
    mirrors: Sequence[MirrorLayout],
    *,
    subnet_cidr: str = SUBNET_CIDR,
    secondary: dict[str, str] | None = SECONDARY_RANGES,
) -> JsonDict:
    """One Compute emulator state holding every mirror: one project, and in each members' region
    one `default` subnetwork with `subnet_cidr` and the named `secondary` ranges."""
    projects = {m.project for m in mirrors}
    if len(projects) != 1:
        raise ValueError(f"one project, got {sorted(projects)}")
    project = projects.pop()
    members = [member for mirror in mirrors for member in mirror.members]
    regions = sorted({region_of(m.zone) for m in members})
    state: JsonDict = {
        "instances": [_instance(project, m) for m in members],
        "subnetworks": [
            _subnetwork(project, region, subnet_cidr, secondary=secondary) for region in regions
        ],
        "addresses": [],
    }
    state["targetInstances"] = [
        _target_instance(project, m)
        for mirror in mirrors
        if mirror.mode == "route"
        for m in mirror.members
    ]
    state["forwardingRules"] = [
        _forwarding_rule(project, mirror)
        for mirror in mirrors
        if mirror.mode == "route" and mirror.public
    ]
    for mirror in mirrors:
        if mirror.public and mirror.mode == "alias":
            name, ip = mirror.public
            holder = next((m for m in mirror.members if m.nat_ip == ip), None)
            user = instance_url(project, holder.zone, holder.name) if holder else None
            state["addresses"].append(static_address(project, mirror.region, name, ip, user=user))
    return state


def mirror_state(
    project: str,
    members: Sequence[Member],
    *,
    secondary: dict[str, str] | None = None,
    public_address: tuple[str, str] | None = None,
) -> JsonDict:
    """`compute_state` of one unnamed mirror: for tests that need VMs rather than a mirror.

    `public_address` is `(name, ip)` of a reserved address in the first member's region, in use
    by whichever member has that IP as its `nat_ip`.
    """
    layout = MirrorLayout("", project, "", tuple(members), public_address)
    return compute_state([layout], secondary=secondary)


def mirror_config(mirrors: Sequence[MirrorLayout]) -> JsonDict:
    """The MIRROR_CONFIG document for one deployment serving every mirror."""
    return {"mirrors": {m.name: m.config_entry() for m in mirrors}}


def _instance(project: str, member: Member, *, network: str = "default") -> JsonDict:
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
        "canIpForward": member.can_ip_forward,
        "selfLink": instance_url(project, member.zone, member.name),
    }


def _target_instance(project: str, member: Member) -> JsonDict:
    """One `compute#targetInstance` for a member (deploy.sh creates one per member)."""
    zone = zone_url(project, member.zone)
    return {
        "kind": "compute#targetInstance",
        "id": stable_id(project, member.zone, "targetInstance", member.target_instance),
        "name": member.target_instance,
        "zone": zone,
        "instance": instance_url(project, member.zone, member.name),
        "natPolicy": "NO_NAT",
        "selfLink": f"{zone}/targetInstances/{member.target_instance}",
    }


def _forwarding_rule(project: str, mirror: MirrorLayout) -> JsonDict:
    """The external protocol forwarding rule holding the static IP, on the first member."""
    assert mirror.public is not None
    name, ip = mirror.public
    first = mirror.members[0]
    return {
        "kind": "compute#forwardingRule",
        "id": stable_id(project, mirror.region, "forwardingRule", name),
        "name": name,
        "region": region_url(project, mirror.region),
        "IPAddress": ip,
        "IPProtocol": "TCP",
        "allPorts": True,
        "loadBalancingScheme": "EXTERNAL",
        "networkTier": "PREMIUM",
        "target": f"{zone_url(project, first.zone)}/targetInstances/{first.target_instance}",
        "fingerprint": "AAAAAAAAAAA=",
        "selfLink": f"{region_url(project, mirror.region)}/forwardingRules/{name}",
    }


def _subnetwork(
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
        "region": region_url(project, region),
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
        "region": region_url(project, region),
        "status": "IN_USE" if user else "RESERVED",
        "selfLink": address_url(project, region, name),
    }
    if user:
        body["users"] = [user]
    return body
