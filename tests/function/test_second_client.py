"""The gateway's plain REST makes the same move as google-cloud-compute, Google's own client.

The function speaks REST through google-auth (the client library's import was most of a cold
start). To show that its hand-typed JSON means what the library's would, one failover is made
twice on two identical emulators: by the real function, and call by call through
google-cloud-compute. Both must leave the same state. (The one call the library cannot make is
an alias list emptied to `[]`, googleapis/google-cloud-python#11931: here the old primary keeps
another alias, so the list is not empty.)
"""

from __future__ import annotations

from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from emulators.compute.server import ComputeEmulator
from support import mirrors
from support.events import became_primary, cloud_event
from vipmover.compute import ComputeGateway
from vipmover.config import parse_config
from vipmover.handler import App, handle

pytestmark = pytest.mark.integration

OTHER = "10.0.0.32/28"
PRIMARY = mirrors.primary(aliases=(OTHER, mirrors.VIP))
BACKUP = mirrors.backup()


def state() -> dict[str, Any]:
    return mirrors.state(PRIMARY, BACKUP)


def nics(emulator: ComputeEmulator) -> dict[str, Any]:
    """What a move changes, without the fingerprints (new random values at every write)."""
    seen = {}
    for member in (PRIMARY, BACKUP):
        instance = emulator.instance(mirrors.PROJECT, member.zone, member.name)
        nic = {k: v for k, v in instance["networkInterfaces"][0].items() if k != "fingerprint"}
        seen[member.name] = {"nic": nic, "labels": instance["labels"]}
    address = emulator.address(mirrors.PROJECT, mirrors.REGION, mirrors.STATIC_NAME)
    seen["address"] = {k: address.get(k) for k in ("status", "users", "networkTier")}
    return seen


def move_with_the_client_library(emulator: ComputeEmulator, labels: dict[str, str]) -> None:
    """The function's writes, in its order, through google-cloud-compute."""
    options = {"api_endpoint": emulator.url}
    creds = AnonymousCredentials()  # type: ignore[no-untyped-call]
    instances = compute_v1.InstancesClient(
        credentials=creds, client_options=options, transport="rest"
    )
    operations = compute_v1.ZoneOperationsClient(
        credentials=creds, client_options=options, transport="rest"
    )
    project = mirrors.PROJECT

    def call(member: Any, method: str, **fields: Any) -> None:
        """One instance mutation, waited for; it must succeed."""
        send = getattr(instances, method)
        operation = send(project=project, zone=member.zone, instance=member.name, **fields)
        result = operations.wait(project=project, zone=member.zone, operation=operation.name)
        assert not result.error.errors, result.error

    def read(member: Any) -> compute_v1.Instance:
        return instances.get(project=project, zone=member.zone, instance=member.name)

    def set_aliases(member: Any, ranges: list[str]) -> None:
        body = compute_v1.NetworkInterface(
            fingerprint=read(member).network_interfaces[0].fingerprint,
            alias_ip_ranges=[compute_v1.AliasIpRange(ip_cidr_range=r) for r in ranges],
        )
        call(
            member,
            "update_network_interface",
            network_interface="nic0",
            network_interface_resource=body,
        )

    def add_config(member: Any, **fields: str) -> None:
        config = compute_v1.AccessConfig(type_="ONE_TO_ONE_NAT", **fields)
        call(member, "add_access_config", network_interface="nic0", access_config_resource=config)

    set_aliases(PRIMARY, [OTHER])
    call(
        PRIMARY, "delete_access_config", access_config=mirrors.STATIC_NAME, network_interface="nic0"
    )
    set_aliases(BACKUP, [mirrors.VIP])
    add_config(BACKUP, name=mirrors.STATIC_NAME, nat_i_p=mirrors.STATIC_IP, network_tier="PREMIUM")
    add_config(PRIMARY, name="External NAT")
    for member in (PRIMARY, BACKUP):
        request = compute_v1.InstancesSetLabelsRequest(
            labels=labels, label_fingerprint=read(member).label_fingerprint
        )
        call(member, "set_labels", instances_set_labels_request_resource=request)


def test_the_gateway_and_the_client_library_make_the_same_move() -> None:
    with ComputeEmulator(state()) as ours, ComputeEmulator(state()) as theirs:
        app = App(parse_config(mirrors.config()), ComputeGateway(ours.url))
        outcome = handle(app, "m-1", cloud_event(became_primary(BACKUP)).data)
        assert outcome.outcome == "moved", outcome.error
        labels = ours.instance(mirrors.PROJECT, BACKUP.zone, BACKUP.name)["labels"]

        move_with_the_client_library(theirs, labels)

        assert nics(ours) == nics(theirs)
        assert nics(ours)[BACKUP.name]["nic"]["aliasIpRanges"] == [{"ipCidrRange": mirrors.VIP}]
