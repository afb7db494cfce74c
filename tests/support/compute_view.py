"""What the Compute emulator holds for the test mirror, read the way the assertions need it."""

from __future__ import annotations

from typing import Any

from emulators.compute.server import ComputeEmulator
from local.mirrors import Member

from . import mirrors

UPDATE_NIC = "compute.instances.updateNetworkInterface"
MUTATIONS = frozenset(
    {
        UPDATE_NIC,
        "compute.instances.addAccessConfig",
        "compute.instances.deleteAccessConfig",
        "compute.instances.setLabels",
    }
)


def nic0(compute: ComputeEmulator, member: Member) -> dict[str, Any]:
    instance = compute.instance(mirrors.PROJECT, member.zone, member.name)
    nic: dict[str, Any] = instance["networkInterfaces"][0]
    return nic


def aliases(compute: ComputeEmulator, member: Member) -> list[str]:
    return [a["ipCidrRange"] for a in nic0(compute, member).get("aliasIpRanges", [])]


def nat_ips(compute: ComputeEmulator, member: Member) -> list[str]:
    return [c.get("natIP") for c in nic0(compute, member).get("accessConfigs", [])]


def static_address(compute: ComputeEmulator) -> dict[str, Any]:
    return compute.address(mirrors.PROJECT, mirrors.REGION, mirrors.STATIC_NAME)


def mutation_count(compute: ComputeEmulator) -> int:
    return sum(n for method, n in compute.call_counts().items() if method in MUTATIONS)


def assert_vip_on(compute: ComputeEmulator, holder: Member, *others: Member) -> None:
    """`holder` has the VIP and the static IP; the others have neither."""
    assert mirrors.VIP in aliases(compute, holder)
    assert mirrors.STATIC_IP in nat_ips(compute, holder)
    for other in others:
        assert mirrors.VIP not in aliases(compute, other)
        assert mirrors.STATIC_IP not in nat_ips(compute, other)
    address = static_address(compute)
    assert address["status"] == "IN_USE"
    assert address["users"] == [
        compute.instance(mirrors.PROJECT, holder.zone, holder.name)["selfLink"]
    ]
