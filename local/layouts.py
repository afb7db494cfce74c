"""The IRIS mirrors a local stack serves, as plain data, apart from the stack that runs them.
The demo, the e2e tests and the benchmark each describe their mirrors as `MirrorLayout`s, and
several parts need them without anything running: the Compute emulator's seeded state, the
function's MIRROR_CONFIG, the IRIS member name ^ZMIRROR passes to the publisher. Keeping these
pure functions here lets a test reseed the emulator (`compute_state`) or build a layout without
importing the processes and threads of `stack`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from local.mirrors import Member, instance_url, mirror_state, region_of, static_address

DEFAULT_PROJECT = "iris-demo-1"
SUBNET_CIDR = "10.0.0.0/24"
SECONDARY_RANGES = {"vips": "10.1.0.0/24"}

JsonDict = dict[str, Any]


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
    """(reserved address name, IP)."""

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
        entry: JsonDict = {
            "project": self.project,
            "network_interface": "nic0",
            "private_vip": self.vip,
            "members": [{"instance": m.name, "zone": m.zone} for m in self.members],
        }
        if self.public:
            entry["public_ip"] = {
                "address_name": self.public[0],
                "region": self.region,
                "access_config_name": self.public[0],
            }
        return entry


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


def compute_state(mirrors: Sequence[MirrorLayout]) -> JsonDict:
    """One Compute emulator state holding every mirror (one project, one subnetwork per region)."""
    projects = {m.project for m in mirrors}
    if len(projects) != 1:
        raise ValueError(f"the stack serves one project, got {sorted(projects)}")
    project = projects.pop()
    members = [member for mirror in mirrors for member in mirror.members]
    state = mirror_state(project, members, subnet_cidr=SUBNET_CIDR, secondary=SECONDARY_RANGES)
    for mirror in mirrors:
        if mirror.public:
            name, ip = mirror.public
            holder = next((m for m in mirror.members if m.nat_ip == ip), None)
            user = instance_url(project, holder.zone, holder.name) if holder else None
            state["addresses"].append(static_address(project, mirror.region, name, ip, user=user))
    return state


def mirror_config(mirrors: Sequence[MirrorLayout]) -> JsonDict:
    """The MIRROR_CONFIG document for one deployment serving every mirror."""
    return {"mirrors": {m.name: m.config_entry() for m in mirrors}}
