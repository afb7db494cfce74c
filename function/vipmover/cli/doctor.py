"""`doctor`: would a failover work? Each check says ok, warning or problem, and what to do.

Alias mode: the members exist, run and have the NIC; the VIP lies in their one subnetwork (in
the named secondary range, if any) and is reserved there; the static address exists in the
members' region with the tier the holder uses; nothing outside the mirror holds the VIP or the
static IP; the caller holds the function's custom role (`deploy/gcp/function-role.yaml`) on the
mirror's resources (`testIamPermissions`); the Pub/Sub topic exists; and the state has no drift.
Route mode has its own checks (`route_doctor`); the topic and the drift checks are shared.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api_types import InstanceJson
from ..config import MirrorConfig
from ..errors import MirrorVipError
from .checks import Check, guarded, permission_check
from .commands import MirrorResult, unreachable
from .holdings import Holdings
from .readers import read_holdings
from .route_doctor import route_checks
from .session import EXIT_DEGRADED, EXIT_OK, READ_TIMEOUT_S, Session

DEFAULT_ROLE_FILE = Path(__file__).resolve().parents[3] / "deploy" / "gcp" / "function-role.yaml"
"""The custom role beside the function's source in a checkout of mirror-vip."""


@dataclass(frozen=True)
class DoctorOptions:
    topic: str | None = None
    role_file: Path = DEFAULT_ROLE_FILE
    topic_exists: Callable[[str], bool | None] | None = None
    """Answers whether the topic exists (None: cannot tell); default asks Pub/Sub."""
    pubsub_endpoint: str = ""
    """`host:port` of a Pub/Sub emulator for the default question; empty for real Pub/Sub."""


def doctor(session: Session, mirror: MirrorConfig, options: DoctorOptions) -> MirrorResult:
    """Every check of one mirror; exit 1 when any is a problem."""
    deadline = time.monotonic() + READ_TIMEOUT_S
    holdings = read_holdings(session.gateway, mirror, deadline)
    if holdings.unreachable_api:
        return unreachable(mirror, holdings)
    if holdings.route is not None:
        mode_checks = route_checks(session, holdings, options.role_file, deadline)
    else:
        mode_checks = _alias_checks(session, holdings, options, deadline)
    summary = f"mirror {mirror.name} ({holdings.mode} mode): {len(mirror.members)} members, "
    checks = [
        Check("config", "ok", summary + mirror.vip),
        *mode_checks,
        _topic(options),
        *_drift_checks(holdings),
    ]
    worst = EXIT_DEGRADED if any(c.level == "problem" for c in checks) else EXIT_OK
    document = {
        "mirror": mirror.name,
        "checks": [c.__dict__ for c in checks],
        "problems": sum(c.level == "problem" for c in checks),
        "warnings": sum(c.level == "warning" for c in checks),
    }
    lines = [f"{mirror.name}: {document['problems']} problem(s), {document['warnings']} warning(s)"]
    for c in checks:
        lines.append(f"  {c.level:<8} {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"  {'':<8} -> {c.fix}")
    return MirrorResult(worst, document, lines)


def _alias_checks(
    session: Session, holdings: Holdings, options: DoctorOptions, deadline: float
) -> list[Check]:
    mirror = holdings.mirror
    instances = _instances(session, holdings, deadline)
    return [
        *_member_checks(holdings),
        *_subnet_checks(session, mirror, instances, deadline),
        *guarded("static_address", lambda: _static_address(session, holdings, deadline)),
        *guarded("outsiders", lambda: _outsiders(session, holdings, deadline)),
        *guarded(
            "permissions",
            lambda: _permissions(
                session, holdings, options, _subnetwork(mirror, instances), deadline
            ),
        ),
    ]


def _instances(session: Session, h: Holdings, deadline: float) -> dict[str, InstanceJson]:
    readable = [v.instance for v in h.members if v.error is None]
    with ThreadPoolExecutor(max_workers=max(1, len(readable))) as pool:
        reads = {r.name: pool.submit(session.gateway.read_instance, r, deadline) for r in readable}
        return {name: future.result() for name, future in reads.items()}


def _member_checks(h: Holdings) -> list[Check]:
    checks = []
    nic = h.mirror.network_interface
    for m in h.members:
        name = f"member {m.instance.name}"
        if m.status == "NOT_FOUND":
            fix = "create it, or correct instance/zone in the config"
            checks.append(Check(name, "problem", f"does not exist in {m.instance.zone}", fix))
        elif m.error and "has no network interface" in m.error:
            checks.append(Check(name, "problem", f"has no {nic}", "set network_interface"))
        elif m.error:
            checks.append(Check(name, "problem", f"cannot be read: {m.error}", "retry later"))
        elif m.status != "RUNNING":
            fix = f"start it: gcloud compute instances start {m.instance.name}"
            checks.append(Check(name, "problem", f"is {m.status}: a failover to it fails", fix))
        else:
            checks.append(Check(name, "ok", f"RUNNING in {m.instance.zone}, has {nic}"))
    return checks


def _subnet_checks(
    session: Session, mirror: MirrorConfig, instances: dict[str, InstanceJson], deadline: float
) -> list[Check]:
    links = {
        name: next(
            (
                n.get("subnetwork", "")
                for n in inst.get("networkInterfaces", [])
                if n.get("name") == mirror.network_interface
            ),
            "",
        )
        for name, inst in instances.items()
    }
    distinct = sorted(set(links.values()))
    if len(distinct) != 1:
        detail = "; ".join(f"{n}: {link.rsplit('/', 1)[-1] or '?'}" for n, link in links.items())
        fix = "alias IPs move only within one subnetwork: put the members in one"
        return [
            Check("vip_in_subnet", "problem", f"members in different subnetworks ({detail})", fix)
        ]
    match = re.search(r"projects/([^/]+)/regions/([^/]+)/subnetworks/([^/]+)$", distinct[0])
    if match is None:
        return [Check("vip_in_subnet", "problem", f"unrecognised subnetwork {distinct[0]}", "")]
    project, region, name = match.groups()
    try:
        subnet = session.gateway.read_subnetwork(project, region, name, deadline)
    except MirrorVipError as err:
        return [Check("vip_in_subnet", "problem", f"cannot read subnetwork {name}: {err}", "")]
    checks = [_vip_in_range(mirror, subnet, name)]
    own_ips = {
        n.get("networkIP") for i in instances.values() for n in i.get("networkInterfaces", [])
    }
    if any(ip and ipaddress.ip_address(ip) in mirror.private_vip for ip in own_ips):
        checks.append(Check("vip_in_subnet", "problem", "the VIP overlaps a member's own IP", ""))
    checks.extend(guarded("vip_reserved", lambda: _vip_reserved(session, mirror, region, deadline)))
    return checks


def _vip_in_range(mirror: MirrorConfig, subnet: Any, name: str) -> Check:
    """The VIP inside the subnetwork's primary range (or the named secondary range), and not
    one of the range's reserved addresses (the first two and the last two)."""
    wanted = mirror.subnetwork_range_name
    cidr = subnet.get("ipCidrRange", "")
    if wanted:
        ranges = {
            r.get("rangeName"): r.get("ipCidrRange", "")
            for r in subnet.get("secondaryIpRanges", [])
        }
        if wanted not in ranges:
            fix = f"add the secondary range {wanted} to {name}, or fix subnetwork_range_name"
            return Check("vip_in_subnet", "problem", f"{name} has no secondary range {wanted}", fix)
        cidr = ranges[wanted]
    network = ipaddress.ip_network(cidr)
    where = f"{name} {'range ' + wanted if wanted else 'primary range'} {cidr}"
    if not mirror.private_vip.subnet_of(network):  # type: ignore[arg-type]
        fix = "choose a VIP inside the range (or set subnetwork_range_name)"
        return Check("vip_in_subnet", "problem", f"VIP {mirror.vip} is outside {where}", fix)
    reserved = {network[0], network[1], network[-2], network[-1]}
    if any(ip in mirror.private_vip for ip in reserved):
        fix = "GCE reserves the first two and last two addresses: choose another VIP"
        return Check("vip_in_subnet", "problem", f"VIP {mirror.vip} uses a reserved address", fix)
    return Check("vip_in_subnet", "ok", f"VIP {mirror.vip} lies in {where}")


def _vip_reserved(
    session: Session, mirror: MirrorConfig, region: str, deadline: float
) -> list[Check]:
    ip = str(mirror.private_vip.network_address)
    found = session.gateway.list_addresses(mirror.project, region, deadline, f'address = "{ip}"')
    internal = [a for a in found if a.get("addressType") == "INTERNAL"]
    if internal:
        return [Check("vip_reserved", "ok", f"{ip} is reserved as {internal[0].get('name')}")]
    fix = (
        f"gcloud compute addresses create {mirror.name.lower()}-vip --region {region} "
        f"--subnet SUBNET --addresses {ip}"
    )
    detail = f"{ip} is not a reserved internal address: a new VM could be given it"
    return [Check("vip_reserved", "warning", detail, fix)]


def _static_address(session: Session, h: Holdings, deadline: float) -> list[Check]:
    public = h.mirror.public_ip
    if public is None:
        return [Check("static_address", "ok", "no static public IP configured")]
    region = h.mirror.members[0].region
    where = f"address {public.address_name} in {public.region}"
    if public.region != region:
        fix = f"an external IP attaches only in its own region: reserve it in {region}"
        return [Check("static_address", "problem", f"{where}, members in {region}", fix)]
    if h.address is None:
        fix = f"gcloud compute addresses create {public.address_name} --region {public.region}"
        return [Check("static_address", "problem", f"{where}: {h.address_error}", fix)]
    found = session.gateway.list_addresses(
        h.mirror.project, public.region, deadline, f'name = "{public.address_name}"'
    )
    kind = found[0].get("addressType", "EXTERNAL") if found else "EXTERNAL"
    if kind != "EXTERNAL":
        return [Check("static_address", "problem", f"{where} is {kind}", "reserve an EXTERNAL one")]
    tier = h.address.network_tier or "PREMIUM"
    return [
        Check("static_address", "ok", f"{where}: {h.address.ip}, {tier} tier, {h.address.status}")
    ]


def _outsiders(session: Session, h: Holdings, deadline: float) -> list[Check]:
    members = {(m.instance.zone, m.instance.name) for m in h.members}
    found, unreachable_zones = session.gateway.list_all(h.mirror.project, "instances", deadline)
    instances: list[InstanceJson] = found
    checks = []
    for inst in instances:
        zone = inst.get("zone", "").rsplit("/", 1)[-1]
        if (zone, inst.get("name", "")) in members:
            continue
        for nic in inst.get("networkInterfaces", []):
            ranges = [a.get("ipCidrRange", "") for a in nic.get("aliasIpRanges", [])]
            if any(
                ipaddress.ip_network(r, strict=False).overlaps(h.mirror.private_vip) for r in ranges
            ):
                fix = f"remove the alias from {inst.get('name')}: it is not a member"
                checks.append(
                    Check("outsiders", "problem", f"{inst.get('name')} holds the VIP", fix)
                )
            nat = [c.get("natIP") for c in nic.get("accessConfigs", [])]
            if h.public_ip is not None and h.public_ip in nat:
                fix = f"detach it from {inst.get('name')}: it is not a member"
                checks.append(
                    Check("outsiders", "problem", f"{inst.get('name')} holds the static IP", fix)
                )
    if unreachable_zones:
        detail = f"zones not listed: {', '.join(unreachable_zones)}"
        checks.append(Check("outsiders", "warning", detail, "run doctor again later"))
    return checks or [Check("outsiders", "ok", "no non-member holds the VIP or the static IP")]


def _subnetwork(mirror: MirrorConfig, instances: dict[str, InstanceJson]) -> str | None:
    """`P/regions/R/subnetworks/S` of the first readable member's NIC, for testIamPermissions."""
    for instance in instances.values():
        for nic in instance.get("networkInterfaces", []):
            link = nic.get("subnetwork", "")
            if nic.get("name") == mirror.network_interface and "/projects/" in link:
                return link.split("/projects/", 1)[1]
    return None


def _permissions(
    session: Session,
    h: Holdings,
    options: DoctorOptions,
    subnetwork: str | None,
    deadline: float,
) -> list[Check]:
    """The role on one member, its subnetwork and the static address."""
    mirror, first = h.mirror, h.mirror.members[0]
    resources: dict[str, list[str]] = {
        "instances": [f"{mirror.project}/zones/{first.zone}/instances/{first.name}"],
        "subnetworks": [subnetwork] if subnetwork else [],
        "addresses": [],
        "networks": [],
        "zoneOperations": [],
    }
    if mirror.public_ip is not None and h.address is not None:
        public = mirror.public_ip
        resources["addresses"] = [
            f"{mirror.project}/regions/{public.region}/addresses/{public.address_name}"
        ]
    return permission_check(session, options.role_file, resources, deadline)


def _topic(options: DoctorOptions) -> Check:
    if not options.topic:
        return Check("topic", "warning", "not checked", "give --topic or MIRROR_VIP_TOPIC")
    if options.topic_exists is not None:
        exists = options.topic_exists(options.topic)
    else:
        exists = topic_exists(options.topic, options.pubsub_endpoint)
    if exists is None:
        return Check("topic", "warning", f"cannot tell whether {options.topic} exists", "")
    if not exists:
        fix = f"gcloud pubsub topics create {options.topic.rsplit('/', 1)[-1]}"
        return Check("topic", "problem", f"{options.topic} does not exist", fix)
    return Check("topic", "ok", f"{options.topic} exists")


def topic_exists(topic: str, endpoint: str = "") -> bool | None:
    """Ask Pub/Sub, or the emulator at endpoint (`host:port`); None when it cannot say."""
    from google.api_core import exceptions  # noqa: PLC0415

    client = _publisher_client(endpoint)
    try:
        client.get_topic(topic=topic, timeout=10)
    except exceptions.NotFound:
        return False
    except exceptions.GoogleAPIError:
        return None
    finally:
        client.transport.close()
    return True


def _publisher_client(endpoint: str) -> Any:
    """A Pub/Sub client; for an emulator a plain-text channel without credentials, as the
    library builds for `PUBSUB_EMULATOR_HOST` (built here so the option, not the env, decides)."""
    import importlib  # noqa: PLC0415

    pubsub: Any = importlib.import_module("google.cloud.pubsub_v1")
    if not endpoint:
        return pubsub.PublisherClient()
    grpc: Any = importlib.import_module("grpc")
    transports: Any = importlib.import_module("google.pubsub_v1.services.publisher.transports")
    channel = grpc.insecure_channel(endpoint)
    return pubsub.PublisherClient(
        transport=transports.PublisherGrpcTransport(host=endpoint, channel=channel)
    )


def _drift_checks(h: Holdings) -> list[Check]:
    if not h.drifts:
        return [Check("holdings", "ok", "exactly one holder, the static IP with it")]
    return [
        Check("holdings", "problem", d.message, "mirror-vip move --to <the IRIS primary>")
        for d in h.drifts
    ]
