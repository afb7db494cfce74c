"""The one boundary with the Compute Engine API.

Reads and access-config changes go through google-cloud-compute. `updateNetworkInterface` does
not: that client drops empty repeated fields when it serialises the body (googleapis/
google-cloud-python#11931), so `aliasIpRanges: []` never reaches the API and the VIP stays on
the old primary. We send that one PATCH ourselves, with the same credentials and endpoint, and
the body written out explicitly.

Operations are awaited with `zoneOperations.wait` through a client built on our endpoint
(`ExtendedOperation.result()` polls the real API even when pointed at an emulator).

Every call is retried a few times on what may clear (429, 5xx, GCE's rate-quota 403s and
`resourceNotReady` 400s, network and credential-refresh errors, garbled answers); mutations carry
a deterministic `requestId`, so a retry whose first attempt did land is not applied twice. Every
foreign exception is mapped onto `errors` here, in `map_api_error`, and nowhere else.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .config import InstanceRef
from .errors import (
    AddressInUse,
    ApiUnavailable,
    Conflict,
    FingerprintRace,
    MirrorVipError,
    OperationFailed,
    OperationTimeout,
    RequestRefused,
)
from .plan import AccessConfig, AddressState, AliasRange, NicState

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import compute_v1

REAL_ENDPOINT = "https://compute.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/compute",)
CALL_TIMEOUT_S = 30.0
WAIT_CALL_S = 125.0
"""zoneOperations.wait answers by about 2 minutes; give the HTTP call a little more."""
RETRY_ATTEMPTS = 4
ONE_ACCESS_CONFIG = "At most one access config"
"""GCE's 400 when a NIC already has its one access config (a concurrent attach, here)."""
IN_USE_TEXT = "already being used by another resource"
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "resourceNotReady"})
"""Reasons of 403/400 answers that clear by themselves: rate quotas, an instance restarting."""
RETRY_BASE_S = 0.2
REQUEST_ID_NAMESPACE = uuid.UUID("5b0f7f3e-2b0c-4c43-9a1e-6d1f0c6a1a10")

T = TypeVar("T")


@dataclass(frozen=True)
class Operation:
    """A zonal operation: where to wait for it, and its error if it was already DONE."""

    project: str
    zone: str
    name: str
    done: bool
    error: tuple[str, str] | None = None


def request_id(*parts: str) -> str:
    """A UUID naming one intended change (delivery, target, step, fingerprint).

    A retried call with the same id returns the first call's operation instead of applying the
    change again; any change in the NIC changes the fingerprint and so the id.
    """
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, "/".join(parts)))


def _is_retryable_status(code: int | None) -> bool:
    return code == 429 or (code is not None and code >= 500)


def _reasons(err: Any) -> set[str]:
    """GCE's `reason`s of an API error (`error.errors[].reason`, or the ErrorInfo reason)."""
    reasons = {e.get("reason") for e in (err.errors or ()) if isinstance(e, dict)}
    if getattr(err, "reason", None):
        reasons.add(err.reason)
    return {reason for reason in reasons if reason}


def _map_http_error(method_id: str, err: Any) -> MirrorVipError:
    """An HTTP error answer, classified by GCE's `reason` as much as by its status."""
    code = err.code if isinstance(err.code, int) else None
    text = f"{method_id}: HTTP {code}: {err.message}"
    reasons = _reasons(err)
    if code == 412:
        return FingerprintRace(f"{method_id}: fingerprint changed (HTTP 412: {err.message})")
    if _is_retryable_status(code) or reasons & TRANSIENT_REASONS:
        return ApiUnavailable(f"{text} ({', '.join(sorted(reasons)) or 'transient'})")
    if IN_USE_TEXT in str(err.message) or AddressInUse.code in reasons:
        return AddressInUse(f"{AddressInUse.code}: {err.message}")
    if ONE_ACCESS_CONFIG in str(err.message):
        return Conflict(text)
    return RequestRefused(text)


def map_api_error(method_id: str, err: Exception) -> MirrorVipError | None:
    """Our error for a foreign one raised by a call, or None when it is not an API failure.

    `ApiUnavailable` means "may clear": the caller retries it in place, then asks for a
    redelivery. Everything else is raised at once.
    """
    from google.api_core import exceptions as gexc  # noqa: PLC0415
    from google.auth import exceptions as auth_exc  # noqa: PLC0415
    from google.protobuf import json_format  # type: ignore[import-untyped]  # noqa: PLC0415
    from requests import exceptions as rexc  # noqa: PLC0415

    if isinstance(err, gexc.GoogleAPICallError):
        return _map_http_error(method_id, err)
    if isinstance(err, rexc.ConnectionError | rexc.Timeout):
        return ApiUnavailable(f"{method_id}: {type(err).__name__}: {err}")
    if isinstance(err, auth_exc.TransportError | auth_exc.RefreshError):
        return ApiUnavailable(f"{method_id}: credentials: {type(err).__name__}: {err}")
    if isinstance(err, ValueError | json_format.ParseError):
        # requests' JSONDecodeError is a ValueError: an HTML error page from a proxy, say.
        return ApiUnavailable(f"{method_id}: answer is not the API's JSON: {err}"[:300])
    return None


class _Clients:
    """The Compute clients of one process, built once and lazily (importing costs nothing)."""

    def __init__(self, endpoint: str, emulated: bool, credentials: Credentials | None) -> None:
        self.endpoint = endpoint
        self._emulated = emulated
        self._credentials = credentials
        self._lock = threading.Lock()
        self._instances: compute_v1.InstancesClient | None = None
        self._operations: compute_v1.ZoneOperationsClient | None = None
        self._addresses: compute_v1.AddressesClient | None = None
        self._session: AuthorizedSession | None = None

    def _creds(self) -> Credentials:
        if self._credentials is None:
            if self._emulated:
                from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415

                self._credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                import google.auth  # noqa: PLC0415

                self._credentials, _ = google.auth.default(scopes=SCOPES)
        return self._credentials

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "credentials": self._creds(),
            "client_options": {"api_endpoint": self.endpoint},
            "transport": "rest",
        }

    def instances(self) -> compute_v1.InstancesClient:
        with self._lock:
            if self._instances is None:
                from google.cloud import compute_v1  # noqa: PLC0415

                self._instances = compute_v1.InstancesClient(**self._client_kwargs())
            return self._instances

    def operations(self) -> compute_v1.ZoneOperationsClient:
        with self._lock:
            if self._operations is None:
                from google.cloud import compute_v1  # noqa: PLC0415

                self._operations = compute_v1.ZoneOperationsClient(**self._client_kwargs())
            return self._operations

    def addresses(self) -> compute_v1.AddressesClient:
        with self._lock:
            if self._addresses is None:
                from google.cloud import compute_v1  # noqa: PLC0415

                self._addresses = compute_v1.AddressesClient(**self._client_kwargs())
            return self._addresses

    def session(self) -> AuthorizedSession:
        with self._lock:
            if self._session is None:
                from google.auth.transport.requests import AuthorizedSession  # noqa: PLC0415

                self._session = AuthorizedSession(self._creds())  # type: ignore[no-untyped-call]
            return self._session


class ComputeGateway:
    """Typed, retried, counted access to the few Compute methods the mover needs.

    Args:
        endpoint: `http://127.0.0.1:PORT` for an emulator (anonymous credentials), or None for the
            real API with application default credentials.
        credentials: Overrides the credentials chosen from `endpoint`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        clients: _Clients | None = None,
    ) -> None:
        self.endpoint = (endpoint or REAL_ENDPOINT).rstrip("/")
        self._clients = clients or _Clients(self.endpoint, endpoint is not None, credentials)
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    def for_event(self) -> ComputeGateway:
        """A gateway sharing this one's clients, counting only its own calls.

        One per event, so that the outcome's `api_calls` is right when events run concurrently.
        """
        return ComputeGateway(self._clients.endpoint, clients=self._clients)

    def warm_up(self) -> None:
        """Build every client now (at start-up) rather than on the first event's critical path."""
        self._clients.instances()
        self._clients.operations()
        self._clients.addresses()
        self._clients.session()

    # -- accounting and error mapping ---------------------------------------------------------

    def calls(self) -> Counter[str]:
        """API calls made so far, by discovery method id (e.g. `compute.instances.get`)."""
        with self._lock:
            return Counter(self._calls)

    @contextmanager
    def _counted(self, method_id: str) -> Iterator[None]:
        with self._lock:
            self._calls[method_id] += 1
        yield

    def _call(self, method_id: str, fn: Callable[[], T], deadline: float) -> T:
        """Run one API call, retrying what may clear, and map failures onto our errors.

        Raises:
            OperationTimeout: the move's deadline passed before the call could be made, so
                that the function still has time to log its outcome.
        """
        attempt = 0
        while True:
            if time.monotonic() >= deadline:
                raise OperationTimeout(f"{method_id}: the move's deadline passed")
            attempt += 1
            try:
                with self._counted(method_id):
                    return fn()
            except MirrorVipError:
                raise
            except Exception as err:
                failure = map_api_error(method_id, err)
                if failure is None:
                    raise
                if not isinstance(failure, ApiUnavailable):
                    raise failure from err
            pause = RETRY_BASE_S * 2 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311
            if attempt >= RETRY_ATTEMPTS or time.monotonic() + pause >= deadline:
                raise failure
            time.sleep(pause)

    # -- reads --------------------------------------------------------------------------------

    def read_nic(self, ref: InstanceRef, nic_name: str, deadline: float) -> NicState:
        """The named NIC of one instance, as plain data."""
        instance = self._call(
            "compute.instances.get",
            lambda: self._clients.instances().get(
                project=ref.project,
                zone=ref.zone,
                instance=ref.name,
                retry=None,
                timeout=CALL_TIMEOUT_S,
            ),
            deadline,
        )
        for nic in instance.network_interfaces:
            if nic.name == nic_name:
                return NicState(
                    instance=ref,
                    fingerprint=nic.fingerprint,
                    alias_ranges=tuple(
                        AliasRange(a.ip_cidr_range, a.subnetwork_range_name or None)
                        for a in nic.alias_ip_ranges
                    ),
                    access_configs=tuple(
                        AccessConfig(c.name, c.nat_i_p or None) for c in nic.access_configs
                    ),
                    status=instance.status,
                    labels=dict(instance.labels),
                    label_fingerprint=instance.label_fingerprint,
                )
        raise RequestRefused(f"{ref} has no network interface {nic_name}")

    def read_address(self, project: str, region: str, name: str, deadline: float) -> AddressState:
        """A reserved address: its IP, who uses it, and its network tier."""
        address = self._call(
            "compute.addresses.get",
            lambda: self._clients.addresses().get(
                project=project, region=region, address=name, retry=None, timeout=CALL_TIMEOUT_S
            ),
            deadline,
        )
        if not address.address:
            raise RequestRefused(f"address {project}/{region}/{name} has no IP")
        return AddressState(
            name=name,
            ip=address.address,
            status=address.status,
            users=tuple(address.users),
            network_tier=address.network_tier or None,
        )

    def reserved_address_named(
        self, project: str, region: str, ip: str, deadline: float
    ) -> str | None:
        """The name of the reserved address with this IP in the region, or None (ephemeral)."""

        def find() -> str | None:
            from google.cloud import compute_v1  # noqa: PLC0415

            request = compute_v1.ListAddressesRequest(
                project=project, region=region, filter=f'address = "{ip}"'
            )
            pages = self._clients.addresses().list(
                request=request, retry=None, timeout=CALL_TIMEOUT_S
            )
            return next((a.name for a in pages if a.address == ip), None)

        return self._call("compute.addresses.list", find, deadline)

    # -- mutations ----------------------------------------------------------------------------

    def set_aliases(
        self,
        nic: NicState,
        nic_name: str,
        aliases: Sequence[AliasRange],
        request_id: str,
        deadline: float,
    ) -> Operation:
        """PATCH the NIC's alias list to exactly `aliases` (an empty list really clears it).

        Raises:
            FingerprintRace: on 412; the caller re-reads and retries.
            AddressInUse: GCE refused the request because another resource holds a range.
        """
        ref = nic.instance
        url = (
            f"{self.endpoint}/compute/v1/projects/{ref.project}/zones/{ref.zone}"
            f"/instances/{ref.name}/updateNetworkInterface"
        )
        body = {
            "fingerprint": nic.fingerprint,
            "aliasIpRanges": [
                {"ipCidrRange": a.ip_cidr_range}
                | (
                    {"subnetworkRangeName": a.subnetwork_range_name}
                    if a.subnetwork_range_name
                    else {}
                )
                for a in aliases
            ],
        }

        def patch() -> dict[str, Any]:
            from google.api_core import exceptions as gexc  # noqa: PLC0415

            response = self._clients.session().patch(
                url,
                params={"networkInterface": nic_name, "requestId": request_id},
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=CALL_TIMEOUT_S,
            )
            if response.status_code >= 400:
                raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
            result: dict[str, Any] = response.json()
            return result

        raw = self._call("compute.instances.updateNetworkInterface", patch, deadline)
        errors = (raw.get("error") or {}).get("errors") or [{}]
        error = (
            (errors[0].get("code", "UNKNOWN"), errors[0].get("message", ""))
            if "error" in raw
            else None
        )
        return Operation(ref.project, ref.zone, raw["name"], raw.get("status") == "DONE", error)

    def set_labels(
        self,
        nic: NicState,
        labels: Mapping[str, str],
        request_id: str,
        deadline: float,
    ) -> Operation:
        """Replace the instance's labels (setLabels replaces the whole map).

        Raises:
            FingerprintRace: on 412; the caller re-reads and retries.
        """
        from google.cloud import compute_v1  # noqa: PLC0415

        ref = nic.instance
        request = compute_v1.SetLabelsInstanceRequest(
            project=ref.project,
            zone=ref.zone,
            instance=ref.name,
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                labels=dict(labels), label_fingerprint=nic.label_fingerprint
            ),
            request_id=request_id,
        )
        return self._mutate(
            "compute.instances.setLabels",
            ref,
            self._clients.instances().set_labels_unary,
            request,
            deadline,
        )

    def delete_access_config(
        self, ref: InstanceRef, nic_name: str, config_name: str, request_id: str, deadline: float
    ) -> Operation:
        """Remove one access config (and so its external IP) from a NIC."""
        from google.cloud import compute_v1  # noqa: PLC0415

        request = compute_v1.DeleteAccessConfigInstanceRequest(
            project=ref.project,
            zone=ref.zone,
            instance=ref.name,
            access_config=config_name,
            network_interface=nic_name,
            request_id=request_id,
        )
        return self._mutate(
            "compute.instances.deleteAccessConfig",
            ref,
            self._clients.instances().delete_access_config_unary,
            request,
            deadline,
        )

    def add_access_config(
        self,
        ref: InstanceRef,
        nic_name: str,
        config_name: str,
        request_id: str,
        deadline: float,
        *,
        nat_ip: str | None = None,
        network_tier: str | None = None,
    ) -> Operation:
        """Give a NIC an external IP: the static `nat_ip` (with its tier), or an ephemeral one.

        Raises:
            Conflict: the NIC already has its one access config (a concurrent attach).
        """
        from google.cloud import compute_v1  # noqa: PLC0415

        config = compute_v1.AccessConfig(name=config_name, type_="ONE_TO_ONE_NAT")
        if nat_ip is not None:
            config.nat_i_p = nat_ip
        if network_tier is not None:
            # GCE refuses a STANDARD-tier address attached with the default (PREMIUM) tier.
            config.network_tier = network_tier
        request = compute_v1.AddAccessConfigInstanceRequest(
            project=ref.project,
            zone=ref.zone,
            instance=ref.name,
            network_interface=nic_name,
            access_config_resource=config,
            request_id=request_id,
        )
        return self._mutate(
            "compute.instances.addAccessConfig",
            ref,
            self._clients.instances().add_access_config_unary,
            request,
            deadline,
        )

    def _mutate(
        self,
        method_id: str,
        ref: InstanceRef,
        send: Callable[..., compute_v1.Operation],
        request: Any,
        deadline: float,
    ) -> Operation:
        """Send one instance mutation through the client, retried by `_call`."""
        op = self._call(
            method_id, lambda: send(request=request, retry=None, timeout=CALL_TIMEOUT_S), deadline
        )
        return self._operation(ref.project, ref.zone, op)

    @staticmethod
    def _operation(project: str, zone: str, op: compute_v1.Operation) -> Operation:
        from google.cloud import compute_v1  # noqa: PLC0415

        error = None
        if op.error and op.error.errors:
            error = (op.error.errors[0].code or "UNKNOWN", op.error.errors[0].message or "")
        done = op.status == compute_v1.Operation.Status.DONE
        return Operation(project, zone, op.name, done, error)

    # -- operations ---------------------------------------------------------------------------

    def wait(self, op: Operation, deadline: float) -> None:
        """Block until the operation is DONE; raise if it failed or the deadline passed.

        Raises:
            OperationFailed: the operation finished with an error.
            OperationTimeout: still running at `deadline`.
        """
        while not op.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(f"operation {op.name} in {op.zone} still running")
            try:
                result = self._call(
                    "compute.zoneOperations.wait",
                    partial(
                        self._clients.operations().wait,
                        project=op.project,
                        zone=op.zone,
                        operation=op.name,
                        retry=None,
                        timeout=min(WAIT_CALL_S, max(remaining, 1.0)),
                    ),
                    deadline,
                )
            except ApiUnavailable:
                if time.monotonic() >= deadline:
                    raise OperationTimeout(
                        f"operation {op.name} in {op.zone} still running"
                    ) from None
                raise
            op = self._operation(op.project, op.zone, result)
        if op.error and op.error[0] == AddressInUse.code:
            raise AddressInUse(f"{op.error[0]}: {op.error[1]}")
        if op.error:
            raise OperationFailed(op.error[0], op.error[1] or "operation failed")
