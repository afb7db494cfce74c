"""A GCE metadata server emulator: one process standing in for the metadata servers of several VMs.

Why one port per VM: clients find the metadata server through `GCE_METADATA_HOST`, which is only
`host:port`, so each emulated VM listens on its own port and serves its own
`/computeMetadata/v1/...` tree (`/vm/<name>/computeMetadata/v1/...` also works on any port, for
tools that can only set a URL prefix). It serves the paths the publisher reads, instance identity
tokens with the real `format=full` claims, signed by a key generated at start-up with the library
that verifies them, and the signing certs at `/oauth2/v1/certs`. Like the real server it answers
403 without `Metadata-Flavor: Google`. Where it differs (no `?recursive`, `wait_for_change`,
access tokens or attributes) and its fault injection (`hang`, `fail`, `take_down`/`bring_up`,
`heal`): docs/publisher.md, "Local emulators".

    python -m emulators.metadata --port 8900 --vm proj-a/us-central1-a/iris-a/1001 \\
        --vm proj-a/us-central1-b/iris-b/1002
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from emulators.service import Service, stop_on_signals

METADATA_PREFIX = "/computeMetadata/v1/"
CERTS_PATH = "/oauth2/v1/certs"
TOKEN_ISSUER = "https://accounts.google.com"  # noqa: S105 (an issuer URL, not a secret)
TOKEN_LIFETIME_SECONDS = 3600


class MetadataEmulatorError(ValueError):
    """Bad emulator usage: unknown VM, not started, bad `--vm` spec (a ValueError for argparse)."""


# --------------------------------------------------------------------------------------------------
# VMs and signing keys


def _digits(*parts: str, length: int) -> str:
    """Deterministic numeric id (project numbers, service-account ids) from names."""
    value = int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")
    return str(10 ** (length - 1) + value % (9 * 10 ** (length - 1)))


@dataclass
class VM:
    """What one emulated VM's metadata server knows. Mutable: tests move aliases around."""

    project: str
    zone: str
    name: str
    id: str
    project_number: str = ""
    ip: str = "10.0.0.2"
    ip_aliases: list[str] = field(default_factory=list)
    email: str = ""
    creation_timestamp: int = 1_700_000_000

    def __post_init__(self) -> None:
        if not self.project_number:
            self.project_number = _digits(self.project, length=12)
        if not self.email:
            self.email = f"{self.project_number}-compute@developer.gserviceaccount.com"

    @classmethod
    def parse(cls, spec: str) -> VM:
        """`project/zone/name/id` (the `--vm` syntax)."""
        parts = spec.split("/")
        if len(parts) != 4 or not all(parts):
            raise MetadataEmulatorError(f"--vm wants project/zone/name/id, got {spec!r}")
        return cls(project=parts[0], zone=parts[1], name=parts[2], id=parts[3])

    @property
    def hostname(self) -> str:
        return f"{self.name}.{self.zone}.c.{self.project}.internal"

    @property
    def service_account_id(self) -> str:
        """The numeric unique id of the default service account (token `sub` and `azp`)."""
        return _digits(self.email, length=21)


@dataclass(frozen=True)
class SigningKey:
    """An RSA key with a `kid`, and a self-signed certificate for the certs endpoint."""

    kid: str
    private_pem: bytes
    certificate_pem: bytes

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """A fresh 2048-bit key (about 50 ms), so each emulator has its own trust root."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metadata-emulator")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(
            kid=kid or secrets.token_hex(20),
            private_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        )

    @functools.cached_property
    def _signer(self) -> crypt.RSASigner:
        """Parsed once: loading an RSA key costs tens of milliseconds, signing about one."""
        signer: crypt.RSASigner = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            self.private_pem, key_id=self.kid
        )
        return signer

    def sign(self, claims: Mapping[str, Any]) -> str:
        """An RS256 JWT over claims with this key's `kid`, by the library that verifies it."""
        token: bytes = jwt.encode(self._signer, dict(claims))  # type: ignore[no-untyped-call]
        return token.decode()


def identity_claims(
    vm: VM, audience: str, *, full: bool = True, now: float | None = None
) -> dict[str, Any]:
    """The claims of a real `instance/service-accounts/default/identity` token."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": TOKEN_ISSUER,
        "aud": audience,
        "azp": vm.service_account_id,
        "sub": vm.service_account_id,
        "email": vm.email,
        "email_verified": True,
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME_SECONDS,
    }
    if full:
        claims["google"] = {
            "compute_engine": {
                "project_id": vm.project,
                "project_number": int(vm.project_number),
                "zone": vm.zone,
                "instance_id": vm.id,
                "instance_name": vm.name,
                "instance_creation_timestamp": vm.creation_timestamp,
            }
        }
    return claims


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge overrides into base; a value of None deletes the claim."""
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering normally: hang first, and/or answer an error status."""

    hang_seconds: float = 0.0
    status: int | None = None
    path_contains: str = ""

    def applies_to(self, path: str) -> bool:
        return self.path_contains in path


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the emulator received, for tests to inspect (header names lower-cased)."""

    vm: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int


# --------------------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    vm_name: str
    emulator: MetadataEmulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM"  # what the real server calls itself
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests inspect `emulator.requests` instead."""

    def do_GET(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, body, content_type = self.server.emulator._respond(
            self.server.vm_name, self.path, headers
        )
        payload = body.encode()
        try:
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts in tests): nothing to answer


@dataclass
class _Listener:
    vm: VM
    port: int
    server: _Server | None = None
    thread: threading.Thread | None = None


class MetadataEmulator(Service):
    """Metadata servers for one or more VMs, each on its own port, in this process.

    Args:
        vms: the VMs; the first one is the default (`host`, `url`, plain paths on `port`).
        port: port for the first VM (0 picks a free one); the others always get free ports.
        bind_host: interface to listen on.
        signing_key: key for identity tokens; generated when None.
    """

    def __init__(
        self,
        vms: Iterable[VM] | None = None,
        *,
        port: int = 0,
        bind_host: str = "127.0.0.1",
        signing_key: SigningKey | None = None,
    ) -> None:
        vm_list = list(vms) if vms is not None else [VM("demo-project", "us-central1-a", "vm", "1")]
        if not vm_list:
            raise MetadataEmulatorError("at least one VM is needed")
        names = [vm.name for vm in vm_list]
        if len(set(names)) != len(names):
            raise MetadataEmulatorError(f"VM names must be unique: {names}")
        self.bind_host = bind_host
        self.signing_key = signing_key or SigningKey.generate()
        self._trusted: dict[str, SigningKey] = {self.signing_key.kid: self.signing_key}
        self._listeners = {
            vm.name: _Listener(vm, port if index == 0 else 0) for index, vm in enumerate(vm_list)
        }
        self._default = vm_list[0].name
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[ReceivedRequest] = []

    # ---- lifecycle

    def start(self) -> Self:
        """Bind every VM's port and serve in background threads."""
        self._stopping.clear()
        for name in self._listeners:
            self._serve(name)
        return self

    def stop(self) -> None:
        """Close every port; hung requests are released first so threads end promptly."""
        self._stopping.set()
        for name in self._listeners:
            self._unserve(name)

    def _serve(self, name: str) -> None:
        listener = self._listeners[name]
        if listener.server is not None:
            return
        server = _Server((self.bind_host, listener.port), _Handler)
        server.vm_name = name
        server.emulator = self
        listener.port = server.server_address[1]
        listener.server = server
        listener.thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"metadata-{name}",
            daemon=True,
        )
        listener.thread.start()

    def _unserve(self, name: str) -> None:
        listener = self._listeners[name]
        server, thread = listener.server, listener.thread
        listener.server = listener.thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # ---- addresses

    @property
    def vms(self) -> list[VM]:
        return [listener.vm for listener in self._listeners.values()]

    def vm(self, name: str | None = None) -> VM:
        """The VM object (mutable: change `ip_aliases` to mimic the guest agent)."""
        return self._listener(name).vm

    def _listener(self, name: str | None) -> _Listener:
        key = name or self._default
        if key not in self._listeners:
            raise MetadataEmulatorError(f"no VM named {key!r}; have {sorted(self._listeners)}")
        return self._listeners[key]

    def port_for(self, name: str | None = None) -> int:
        listener = self._listener(name)
        if not listener.port:
            raise MetadataEmulatorError("emulator not started")
        return listener.port

    def host_for(self, name: str | None = None) -> str:
        """`127.0.0.1:PORT` of a VM's metadata server: the value for GCE_METADATA_HOST."""
        return f"{self.bind_host}:{self.port_for(name)}"

    def url_for(self, name: str | None = None) -> str:
        return f"http://{self.host_for(name)}"

    @property
    def port(self) -> int:
        return self.port_for()

    @property
    def host(self) -> str:
        return self.host_for()

    @property
    def url(self) -> str:
        return self.url_for()

    @property
    def certs_url(self) -> str:
        """Where `google.oauth2.id_token.verify_token(certs_url=...)` finds the signing certs."""
        return f"{self.url}{CERTS_PATH}"

    # ---- tokens

    def trust(self, key: SigningKey) -> None:
        """Publish another key on the certs endpoint (key rotation tests)."""
        with self._lock:
            self._trusted[key.kid] = key

    def certs(self) -> dict[str, str]:
        with self._lock:
            return {kid: key.certificate_pem.decode() for kid, key in self._trusted.items()}

    def mint_token(
        self,
        audience: str,
        vm: str | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        key: SigningKey | None = None,
        now: float | None = None,
        full: bool = True,
    ) -> str:
        """An identity token as the VM would get it, optionally forged.

        Args:
            audience: the `aud` claim.
            vm: VM name; the default VM when None.
            overrides: claims to change (nested dicts merge; None deletes a claim).
            key: sign with this key instead of the emulator's (an untrusted key unless `trust`ed).
            now: the `iat` time (Unix seconds), to mint expired or future tokens.
            full: include the `google.compute_engine` claims (`format=full`).
        """
        claims = identity_claims(self.vm(vm), audience, full=full, now=now)
        if overrides:
            claims = _deep_merge(claims, overrides)
        return (key or self.signing_key).sign(claims)

    # ---- faults

    def hang(self, seconds: float, vm: str | None = None, *, path_contains: str = "") -> None:
        """Delay answers by seconds (released early by `heal` or `stop`)."""
        self._set_fault(vm, Fault(hang_seconds=seconds, path_contains=path_contains))

    def fail(self, status: int = 500, vm: str | None = None, *, path_contains: str = "") -> None:
        """Answer every matching request with status."""
        self._set_fault(vm, Fault(status=status, path_contains=path_contains))

    def heal(self, vm: str | None = None) -> None:
        """Clear hang/fail faults of one VM (all VMs when vm is None)."""
        with self._lock:
            if vm is None:
                self._faults.clear()
            else:
                self._faults.pop(self._listener(vm).vm.name, None)

    def take_down(self, vm: str | None = None) -> None:
        """Close the VM's port: connections are refused, as when nothing listens."""
        self._unserve(self._listener(vm).vm.name)

    def bring_up(self, vm: str | None = None) -> None:
        """Listen again on the same port after `take_down`."""
        self._serve(self._listener(vm).vm.name)

    def _set_fault(self, vm: str | None, fault: Fault) -> None:
        with self._lock:
            self._faults[self._listener(vm).vm.name] = fault

    # ---- request handling

    def _respond(
        self, port_vm: str, raw_path: str, headers: Mapping[str, str]
    ) -> tuple[int, str, str]:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        vm_name = port_vm
        if path.startswith("/vm/"):
            vm_name, _, rest = path[len("/vm/") :].partition("/")
            path = "/" + rest
        status, body, content_type = self._answer(vm_name, path, query, headers)
        with self._lock:
            self.requests.append(ReceivedRequest(vm_name, path, query, dict(headers), status))
        return status, body, content_type

    def _answer(  # noqa: PLR0911 (a routing table reads best as early returns)
        self,
        vm_name: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
    ) -> tuple[int, str, str]:
        text = "application/text"
        if vm_name not in self._listeners:
            return 404, f"no VM named {vm_name}\n", "text/plain"
        with self._lock:
            fault = self._faults.get(vm_name)
        if fault is not None and fault.applies_to(path):
            if fault.hang_seconds:
                self._stopping.wait(fault.hang_seconds)
            if fault.status is not None:
                return fault.status, "injected fault\n", "text/plain"
        if path == CERTS_PATH:
            return 200, json.dumps(self.certs()), "application/json; charset=UTF-8"
        if path in ("", "/"):
            return 200, "computeMetadata/\n", text
        if headers.get("metadata-flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header.\n", "text/html"
        if not path.startswith(METADATA_PREFIX):
            return 404, "Not Found\n", "text/html"
        vm = self._listeners[vm_name].vm
        key = path[len(METADATA_PREFIX) :]
        if key == "instance/service-accounts/default/identity":
            audience = query.get("audience", [""])[0]
            if not audience:
                return 400, "non-empty audience parameter required\n", "text/html"
            full = query.get("format", ["standard"])[0] == "full"
            return 200, self.mint_token(audience, vm.name, full=full), text
        answers: dict[str, Callable[[], str]] = {
            "project/project-id": lambda: vm.project,
            "project/numeric-project-id": lambda: vm.project_number,
            "instance/id": lambda: vm.id,
            "instance/name": lambda: vm.name,
            "instance/zone": lambda: f"projects/{vm.project_number}/zones/{vm.zone}",
            "instance/hostname": lambda: vm.hostname,
            "instance/network-interfaces/0/ip": lambda: vm.ip,
            "instance/network-interfaces/0/ip-aliases/": lambda: "".join(
                f"{alias}\n" for alias in vm.ip_aliases
            ),
            "instance/network-interfaces/0/ip-aliases": lambda: "".join(
                f"{alias}\n" for alias in vm.ip_aliases
            ),
            "instance/service-accounts/default/email": lambda: vm.email,
            "instance/service-accounts/default/": lambda: (
                "aliases\nemail\nidentity\nscopes\ntoken\n"
            ),
        }
        if key in answers:
            return 200, answers[key](), text
        return 404, "Not Found\n", "text/html"


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; print one `GCE_METADATA_HOST` line per VM."""
    parser = argparse.ArgumentParser(description="GCE metadata server emulator")
    parser.add_argument("--port", type=int, default=0, help="port of the first VM (0: free)")
    parser.add_argument("--bind-host", default="127.0.0.1")
    parser.add_argument(
        "--vm",
        action="append",
        type=VM.parse,
        default=[],
        help="project/zone/name/id; repeatable, one port each (first: --port)",
    )
    args = parser.parse_args(argv)
    stop_requested = stop_on_signals()
    with MetadataEmulator(args.vm or None, port=args.port, bind_host=args.bind_host) as emu:
        for vm in emu.vms:
            print(f"{vm.name}: GCE_METADATA_HOST={emu.host_for(vm.name)}", flush=True)
        print(f"certs: {emu.certs_url}", flush=True)
        stop_requested.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
