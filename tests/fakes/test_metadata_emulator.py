"""The metadata emulator answers like GCE's metadata server: paths, the Metadata-Flavor rule,
identity tokens that google-auth verifies, several VMs in one process, and injected faults."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from emulators.metadata import VM, MetadataEmulator, MetadataEmulatorError, SigningKey

pytestmark = pytest.mark.integration

FLAVOR = {"Metadata-Flavor": "Google"}
AUDIENCE = "//pubsub.googleapis.com/projects/mirrorvip-test/topics/mirror-vip"


def make_vm(zone: str = "us-central1-a") -> VM:
    return VM(
        "mirrorvip-test", zone, f"iris-{uuid.uuid4().hex[:8]}", str(uuid.uuid4().int % 10**19)
    )


@pytest.fixture
def vms() -> list[VM]:
    return [make_vm("us-central1-a"), make_vm("us-central1-b")]


@pytest.fixture
def emulator(vms: list[VM]) -> Iterator[MetadataEmulator]:
    with MetadataEmulator(vms) as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies for 127.0.0.1
        yield session


def get(http: requests.Session, base: str, path: str, **params: str) -> requests.Response:
    return http.get(f"{base}/computeMetadata/v1/{path}", headers=FLAVOR, params=params, timeout=5)


def test_serves_the_paths_the_publisher_reads(
    emulator: MetadataEmulator, vms: list[VM], http: requests.Session
) -> None:
    vm = vms[0]
    vm.ip_aliases = ["10.0.2.248/29"]
    expected = {
        "project/project-id": vm.project,
        "project/numeric-project-id": vm.project_number,
        "instance/id": vm.id,
        "instance/name": vm.name,
        "instance/zone": f"projects/{vm.project_number}/zones/{vm.zone}",
        "instance/hostname": f"{vm.name}.{vm.zone}.c.{vm.project}.internal",
        "instance/network-interfaces/0/ip": vm.ip,
        "instance/network-interfaces/0/ip-aliases/": "10.0.2.248/29\n",
        "instance/service-accounts/default/email": vm.email,
    }
    for path, value in expected.items():
        response = get(http, emulator.url, path)
        assert (response.status_code, response.text) == (200, value), path
        assert response.headers["Metadata-Flavor"] == "Google"
    assert get(http, emulator.url, "instance/nothing-here").status_code == 404


def test_refuses_requests_without_metadata_flavor(
    emulator: MetadataEmulator, http: requests.Session
) -> None:
    response = http.get(f"{emulator.url}/computeMetadata/v1/instance/id", timeout=5)

    assert response.status_code == 403
    assert response.headers["Metadata-Flavor"] == "Google"
    assert "Metadata-Flavor" in response.text


def test_identity_token_verifies_with_google_auth(
    emulator: MetadataEmulator, vms: list[VM], http: requests.Session
) -> None:
    vm = vms[0]
    path = "instance/service-accounts/default/identity"
    token = get(http, emulator.url, path, audience=AUDIENCE, format="full").text

    claims = id_token.verify_token(
        token, Request(http), audience=AUDIENCE, certs_url=emulator.certs_url
    )

    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == vm.email
    assert claims["sub"] == claims["azp"] == vm.service_account_id
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["google"]["compute_engine"] == {
        "project_id": vm.project,
        "project_number": int(vm.project_number),
        "zone": vm.zone,
        "instance_id": vm.id,
        "instance_name": vm.name,
        "instance_creation_timestamp": vm.creation_timestamp,
    }
    assert get(http, emulator.url, path).status_code == 400  # audience is required


def test_wrong_audience_and_untrusted_key_are_rejected(
    emulator: MetadataEmulator, http: requests.Session
) -> None:
    good = emulator.mint_token(AUDIENCE)
    forged = emulator.mint_token(AUDIENCE, key=SigningKey.generate())

    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(good, Request(http), audience="other", certs_url=emulator.certs_url)
    with pytest.raises((ValueError, auth_exceptions.GoogleAuthError)):
        id_token.verify_token(
            forged, Request(http), audience=AUDIENCE, certs_url=emulator.certs_url
        )


def test_minted_tokens_take_overrides_and_trusted_keys(
    emulator: MetadataEmulator, vms: list[VM], http: requests.Session
) -> None:
    rotated = SigningKey.generate()
    emulator.trust(rotated)
    token = emulator.mint_token(
        AUDIENCE,
        vms[1].name,
        key=rotated,
        overrides={"google": {"compute_engine": {"instance_name": "impostor"}}, "email": None},
        now=time.time() - 60,
    )

    claims = id_token.verify_token(
        token, Request(http), audience=AUDIENCE, certs_url=emulator.certs_url
    )

    assert claims["google"]["compute_engine"]["instance_name"] == "impostor"
    assert claims["google"]["compute_engine"]["instance_id"] == vms[1].id
    assert "email" not in claims


def test_expired_tokens_fail_verification(
    emulator: MetadataEmulator, http: requests.Session
) -> None:
    token = emulator.mint_token(AUDIENCE, now=time.time() - 7200)

    with pytest.raises(ValueError, match="expired"):
        id_token.verify_token(token, Request(http), audience=AUDIENCE, certs_url=emulator.certs_url)


def test_one_process_serves_several_vms(
    emulator: MetadataEmulator, vms: list[VM], http: requests.Session
) -> None:
    assert emulator.host == emulator.host_for(vms[0].name)
    assert emulator.host_for(vms[0].name) != emulator.host_for(vms[1].name)
    for vm in vms:
        assert get(http, emulator.url_for(vm.name), "instance/name").text == vm.name
        # The path prefix form works on any port.
        prefixed = f"{emulator.url}/vm/{vm.name}/computeMetadata/v1/instance/id"
        assert http.get(prefixed, headers=FLAVOR, timeout=5).text == vm.id
    with pytest.raises(MetadataEmulatorError, match="no VM named"):
        emulator.host_for("no-such-vm")


def test_faults_hang_fail_and_down(
    emulator: MetadataEmulator, vms: list[VM], http: requests.Session
) -> None:
    first, second = (vm.name for vm in vms)
    emulator.fail(500, first)
    assert get(http, emulator.url_for(first), "instance/id").status_code == 500
    assert get(http, emulator.url_for(second), "instance/id").status_code == 200

    emulator.heal()
    emulator.hang(5, first, path_contains="identity")
    assert get(http, emulator.url_for(first), "instance/id").status_code == 200
    with pytest.raises(requests.Timeout):
        http.get(
            f"{emulator.url_for(first)}/computeMetadata/v1/instance/service-accounts/default/"
            f"identity?audience=a",
            headers=FLAVOR,
            timeout=0.3,
        )

    emulator.heal(first)
    emulator.take_down(first)
    with pytest.raises(requests.ConnectionError):
        get(http, emulator.url_for(first), "instance/id")
    emulator.bring_up(first)
    assert get(http, emulator.url_for(first), "instance/id").text == vms[0].id


def test_records_what_it_received(emulator: MetadataEmulator, http: requests.Session) -> None:
    get(http, emulator.url, "instance/zone")

    [request] = emulator.requests
    assert request.path == "/computeMetadata/v1/instance/zone"
    assert request.headers["metadata-flavor"] == "Google"
    assert request.status == 200


def test_vm_spec_parsing() -> None:
    assert VM.parse("p-1/us-east1-b/iris-a/42").zone == "us-east1-b"
    with pytest.raises(MetadataEmulatorError, match="project/zone/name/id"):
        VM.parse("p-1/us-east1-b/iris-a")
