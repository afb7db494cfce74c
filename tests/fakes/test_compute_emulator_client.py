"""The real google-cloud-compute REST client against the emulator.

Proves the emulator speaks the wire format the function uses, and documents the client bug
(googleapis/google-cloud-python#11931): an empty repeated field is dropped from the body, so
`NetworkInterface(alias_ip_ranges=[])` does not clear aliases. The emulator must not "help" it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from emulators.compute.server import ComputeEmulator
from emulators.compute.urls import instance_url
from fakes.layout import vip_on_first_vm

pytestmark = pytest.mark.integration

PROJECT = "client-proj"
ZONE_A = "us-central1-a"
ZONE_B = "us-central1-c"
REGION = "us-central1"
VIP = "10.0.0.250/32"
PUBLIC_IP = "34.120.0.20"


@pytest.fixture
def emu() -> Iterator[ComputeEmulator]:
    state = vip_on_first_vm(PROJECT, ZONE_A, ZONE_B, vip=VIP, public_ip=PUBLIC_IP)
    with ComputeEmulator(state) as emulator:
        yield emulator


C = TypeVar("C", compute_v1.InstancesClient, compute_v1.ZoneOperationsClient)


def rest_client(cls: type[C], emu: ComputeEmulator) -> C:
    """A google-cloud-compute client on the emulator (REST: the emulator speaks no gRPC)."""
    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return cls(credentials=credentials, client_options={"api_endpoint": emu.url}, transport="rest")


@pytest.fixture
def instances(emu: ComputeEmulator) -> Iterator[compute_v1.InstancesClient]:
    with rest_client(compute_v1.InstancesClient, emu) as client:
        yield client


@pytest.fixture
def operations(emu: ComputeEmulator) -> Iterator[compute_v1.ZoneOperationsClient]:
    with rest_client(compute_v1.ZoneOperationsClient, emu) as client:
        yield client


def test_get_decodes_the_emulated_instance(
    emu: ComputeEmulator, instances: compute_v1.InstancesClient
) -> None:
    got = instances.get(project=PROJECT, zone=ZONE_A, instance="iris-a")

    nic = got.network_interfaces[0]
    assert got.name == "iris-a"
    assert got.status == "RUNNING"
    assert nic.network_i_p == "10.0.0.10"
    assert [r.ip_cidr_range for r in nic.alias_ip_ranges] == [VIP]
    assert nic.access_configs[0].nat_i_p == PUBLIC_IP
    assert (
        nic.fingerprint
        == emu.instance(PROJECT, ZONE_A, "iris-a")["networkInterfaces"][0]["fingerprint"]
    )


def test_errors_map_to_api_core_exceptions(instances: compute_v1.InstancesClient) -> None:
    with pytest.raises(exceptions.NotFound, match="was not found"):
        instances.get(project=PROJECT, zone=ZONE_A, instance="missing")
    with pytest.raises(exceptions.PreconditionFailed):
        instances.update_network_interface(
            project=PROJECT,
            zone=ZONE_A,
            instance="iris-a",
            network_interface="nic0",
            network_interface_resource=compute_v1.NetworkInterface(
                alias_ip_ranges=[compute_v1.AliasIpRange(ip_cidr_range=VIP)],
                fingerprint="c3RhbGVzdGE=",
            ),
        )


def test_static_ip_moves_with_delete_then_add_access_config(
    emu: ComputeEmulator,
    instances: compute_v1.InstancesClient,
    operations: compute_v1.ZoneOperationsClient,
) -> None:
    emu.set_op_latency(0.2)
    deleting = instances.delete_access_config(
        project=PROJECT,
        zone=ZONE_A,
        instance="iris-a",
        access_config="External NAT",
        network_interface="nic0",
    )
    deleted = operations.wait(project=PROJECT, zone=ZONE_A, operation=deleting.name)
    adding = instances.add_access_config(
        project=PROJECT,
        zone=ZONE_B,
        instance="iris-b",
        network_interface="nic0",
        access_config_resource=compute_v1.AccessConfig(
            name="External NAT", type_="ONE_TO_ONE_NAT", nat_i_p=PUBLIC_IP
        ),
    )
    added = operations.wait(project=PROJECT, zone=ZONE_B, operation=adding.name)

    assert deleted.status == compute_v1.Operation.Status.DONE
    assert added.status == compute_v1.Operation.Status.DONE
    assert not added.error.errors
    b_nic = emu.instance(PROJECT, ZONE_B, "iris-b")["networkInterfaces"][0]
    assert b_nic["accessConfigs"][0]["natIP"] == PUBLIC_IP
    assert "accessConfigs" not in emu.instance(PROJECT, ZONE_A, "iris-a")["networkInterfaces"][0]
    assert emu.address(PROJECT, REGION, "iris-vip")["users"] == [
        instance_url(PROJECT, ZONE_B, "iris-b")
    ]


def test_client_drops_empty_alias_list_so_the_alias_stays(
    emu: ComputeEmulator, instances: compute_v1.InstancesClient
) -> None:
    fingerprint = (
        instances.get(project=PROJECT, zone=ZONE_A, instance="iris-a")
        .network_interfaces[0]
        .fingerprint
    )

    operation = instances.update_network_interface(
        project=PROJECT,
        zone=ZONE_A,
        instance="iris-a",
        network_interface="nic0",
        network_interface_resource=compute_v1.NetworkInterface(
            alias_ip_ranges=[], fingerprint=fingerprint
        ),
    )

    sent = emu.mutations()[-1].body
    nic = emu.instance(PROJECT, ZONE_A, "iris-a")["networkInterfaces"][0]
    assert operation.status == compute_v1.Operation.Status.DONE
    assert sent == {"fingerprint": fingerprint}
    assert [r["ipCidrRange"] for r in nic["aliasIpRanges"]] == [VIP]
