"""`doctor` in route mode: what a route-mode failover needs, each check with its fix.

The members exist and run, each with `canIpForward` (without it GCE drops the packets a route
sends to an address the VM does not own); the VIP /32 lies outside every subnet range of the
network (GCE refuses a route inside one); the forwarding rule exists in its region and every
member has its target instance, in its zone, pointing at it; and the caller holds the role's
permissions where `testIamPermissions` can tell (an instance, the target instances; routes,
networks, forwarding rules and operations cannot be asked on a resource).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..api_types import SubnetworkJson, TargetInstanceJson
from ..compute import HopState
from ..config import InstanceRef, MirrorConfig
from ..errors import MirrorVipError, NotFound
from ..route_plan import ForwardingRuleState, instance_path
from .checks import Check, guarded, permission_check
from .holdings import Holdings
from .session import Session

TargetReads = Mapping[InstanceRef, TargetInstanceJson | MirrorVipError | None]


def route_checks(session: Session, h: Holdings, role_file: Path, deadline: float) -> list[Check]:
    """Every route-mode check of one mirror (the drift and topic checks are added by `doctor`)."""
    targets = _read_targets(session, h.mirror, deadline)
    return [
        *_member_checks(h),
        *guarded("vip_outside_subnets", lambda: _vip_outside_subnets(session, h, deadline)),
        *_forwarding_checks(h, targets),
        *guarded(
            "permissions",
            lambda: permission_check(session, role_file, _resources(h, targets), deadline),
        ),
    ]


def _member_checks(h: Holdings) -> list[Check]:
    reads = h.route
    assert reads is not None
    checks = []
    nic = h.mirror.network_interface
    for ref, hop in reads.hops.items():
        name = f"member {ref.name}"
        if isinstance(hop, NotFound):
            fix = "create it, or correct instance/zone in the config"
            checks.append(Check(name, "problem", f"does not exist in {ref.zone}", fix))
        elif isinstance(hop, MirrorVipError) and "has no network interface" in str(hop):
            checks.append(Check(name, "problem", f"has no {nic}", "set network_interface"))
        elif isinstance(hop, MirrorVipError):
            checks.append(Check(name, "problem", f"cannot be read: {hop}", "retry later"))
        else:
            checks.extend(_running_member(ref, hop, nic))
    return checks


def _running_member(ref: InstanceRef, hop: HopState, nic: str) -> list[Check]:
    name = f"member {ref.name}"
    if hop.status != "RUNNING":
        fix = f"start it: gcloud compute instances start {ref.name} --zone {ref.zone}"
        checks = [Check(name, "problem", f"is {hop.status}: a failover to it fails", fix)]
    else:
        checks = [Check(name, "ok", f"RUNNING in {ref.zone}, has {nic}")]
    if hop.can_ip_forward:
        checks.append(Check("can_ip_forward", "ok", f"{ref.name} forwards (canIpForward=true)"))
    else:
        detail = (
            f"{ref.name} has canIpForward=false: GCE drops the VIP's packets once the route "
            "sends them to it"
        )
        fix = (
            f"canIpForward is set when a VM is created: recreate {ref.name} (keeping its disks) "
            f"with gcloud compute instances create {ref.name} --zone {ref.zone} --can-ip-forward"
        )
        checks.append(Check("can_ip_forward", "problem", detail, fix))
    return checks


def _vip_outside_subnets(session: Session, h: Holdings, deadline: float) -> list[Check]:
    """GCE refuses a route whose destination lies inside a subnet range of its network."""
    reads, mirror = h.route, h.mirror
    assert reads is not None
    name = "vip_outside_subnets"
    if reads.network is None:
        fix = f"set mirrors.{mirror.name}.network"
        return [Check(name, "problem", "the network is unknown (no member readable)", fix)]
    network = reads.network.rsplit("/", 1)[-1]
    found, unreachable = session.gateway.list_all(mirror.project, "subnetworks", deadline)
    subnets: list[SubnetworkJson] = found
    mine = [s for s in subnets if _path(s.get("network", "")) == reads.network]
    inside = [
        f"{s.get('name')} ({s.get('region', '').rsplit('/', 1)[-1]}) {label} {cidr}"
        for s in mine
        for label, cidr in _ranges(s)
        if ipaddress.ip_network(cidr).overlaps(mirror.private_vip)
    ]
    if inside:
        detail = f"VIP {mirror.vip} lies inside subnetwork {'; '.join(inside)} of {network}"
        fix = (
            f"GCE refuses a route inside a subnet range: choose a /32 outside every subnet "
            f"range of {network} for mirrors.{mirror.name}.private_vip"
        )
        return [Check(name, "problem", detail, fix)]
    checks = [
        Check(
            name,
            "ok",
            f"VIP {mirror.vip} lies outside every subnet range of {network} "
            f"({len(mine)} subnetworks)",
        )
    ]
    if unreachable:
        detail = f"regions not listed: {', '.join(unreachable)}"
        checks.append(Check(name, "warning", detail, "run doctor again later"))
    return checks


def _ranges(subnet: SubnetworkJson) -> list[tuple[str, str]]:
    primary = [("primary range", subnet.get("ipCidrRange", ""))]
    secondary = [
        (f"range {r.get('rangeName', '?')}", r.get("ipCidrRange", ""))
        for r in subnet.get("secondaryIpRanges", [])
    ]
    return [(label, cidr) for label, cidr in primary + secondary if cidr]


def _path(link: str) -> str:
    index = link.find("projects/")
    return link[index:] if index >= 0 else link


def _read_targets(session: Session, mirror: MirrorConfig, deadline: float) -> TargetReads:
    """Each member's target instance (None: not configured), concurrently."""

    def read(ref: InstanceRef) -> TargetInstanceJson | MirrorVipError | None:
        name = mirror.target_instance(ref)
        if name is None:
            return None
        try:
            return session.gateway.read_target_instance(ref.project, ref.zone, name, deadline)
        except MirrorVipError as err:
            return err

    if mirror.forwarding_rule is None:
        return {}
    with ThreadPoolExecutor(max_workers=len(mirror.members)) as pool:
        return dict(zip(mirror.members, pool.map(read, mirror.members), strict=True))


def _forwarding_checks(h: Holdings, targets: TargetReads) -> list[Check]:
    """The rule exists in its region; every member's target instance exists and points at it."""
    mirror, reads = h.mirror, h.route
    assert reads is not None
    config = mirror.forwarding_rule
    if config is None:
        return [Check("forwarding_rule", "ok", "no public IP configured")]
    rule, where = reads.rule, f"forwarding rule {config.forwarding_rule} in {config.region}"
    if isinstance(rule, NotFound):
        fix = (
            f"gcloud compute forwarding-rules create {config.forwarding_rule} --region "
            f"{config.region} --address=ADDRESS --ip-protocol=TCP --ports=ALL "
            f"--target-instance=TARGET_INSTANCE --target-instance-zone=ZONE"
        )
        checks = [Check("forwarding_rule", "problem", f"{where} does not exist", fix)]
    elif isinstance(rule, ForwardingRuleState):
        detail = f"{where}: {rule.ip} -> {rule.target.rsplit('/', 1)[-1]}"
        checks = [Check("forwarding_rule", "ok", detail)]
    else:
        checks = [Check("forwarding_rule", "problem", f"{where} cannot be read: {rule}", "")]
    for ref, found in targets.items():
        checks.append(_target_check(mirror, ref, found, config.region))
    return checks


def _target_check(
    mirror: MirrorConfig,
    ref: InstanceRef,
    found: TargetInstanceJson | MirrorVipError | None,
    region: str,
) -> Check:
    name = mirror.target_instance(ref)
    check = f"target_instance {name}"
    create = (
        f"gcloud compute target-instances create {name} --instance={ref.name} --zone={ref.zone}"
    )
    if ref.region != region:
        detail = (
            f"{ref.name} is in {ref.zone}, outside the rule's region {region}: a forwarding "
            "rule targets target instances of its own region only"
        )
        return Check(check, "problem", detail, "keep the members with a public IP in one region")
    if isinstance(found, NotFound):
        return Check(check, "problem", f"does not exist in {ref.zone}", create)
    if isinstance(found, MirrorVipError) or found is None:
        return Check(check, "problem", f"cannot be read: {found}", "retry later")
    points_at = _path(found.get("instance", ""))
    if points_at != instance_path(ref):
        detail = f"points at {points_at.rsplit('/', 1)[-1] or '?'}, not at {ref.name}"
        fix = f"gcloud compute target-instances delete {name} --zone={ref.zone}, then {create}"
        return Check(check, "problem", detail, fix)
    return Check(check, "ok", f"in {ref.zone}, points at {ref.name}")


def _resources(h: Holdings, targets: TargetReads) -> dict[str, list[str]]:
    """The collections route mode's calls use, with the resources `testIamPermissions` can be
    asked of: a readable member, the target instances that exist (forwarding rules, networks and
    routes have no `testIamPermissions` on a resource in compute v1, or none to ask yet)."""
    mirror, reads = h.mirror, h.route
    assert reads is not None
    readable = [ref for ref, hop in reads.hops.items() if isinstance(hop, HopState)]
    first = (readable or list(mirror.members))[0]
    existing = [
        f"{ref.project}/zones/{ref.zone}/targetInstances/{mirror.target_instance(ref)}"
        for ref, found in targets.items()
        if found is not None and not isinstance(found, MirrorVipError)
    ]
    project_level = ("routes", "networks", "forwardingRules", "globalOperations")
    return {
        "instances": [f"{first.project}/zones/{first.zone}/instances/{first.name}"],
        "targetInstances": existing,
        **{collection: [] for collection in (*project_level, "regionOperations")},
    }
