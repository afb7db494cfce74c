"""The one boundary with the Compute Engine API: plain REST through google-auth.

Every call is an HTTPS request through one `AuthorizedSession` (google-auth + requests), with the
JSON shapes typed in `api_types`. Not google-cloud-compute: importing it takes about 3 s, most of
a cold start, and every failover lands on a cold function (README, "Benchmarks"). Plain REST also
sends `aliasIpRanges: []` as written, which that client drops (googleapis/google-cloud-python
#11931), and waits on the operation endpoint of our own API root (its `ExtendedOperation.result()`
polls the real API even when pointed at an emulator). A test drives the same moves through
google-cloud-compute against the emulator, as a second, independent client.

Every call is retried a few times on what may clear (429, 5xx, GCE's rate-quota 403s and
`resourceNotReady` 400s, network and credential-refresh errors, garbled answers); mutations carry
a deterministic `requestId`, so a retry whose first attempt did land is not applied twice. Every
foreign exception is mapped onto `errors` in one place, `api_errors.map_api_error`.
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
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from .api_errors import http_error, map_api_error, operation_error
from .api_types import (
    AccessConfigJson,
    AddressJson,
    AggregatedListJson,
    AliasIpRangeJson,
    ForwardingRuleJson,
    InstanceJson,
    InstancesSetLabelsRequestJson,
    ListJson,
    NetworkInterfaceJson,
    OperationJson,
    RouteJson,
    SubnetworkJson,
    TargetInstanceJson,
    TargetReferenceJson,
    TestPermissionsRequestJson,
    TestPermissionsResponseJson,
)
from .config import InstanceRef
from .errors import (
    ApiUnavailable,
    MirrorVipError,
    NotFound,
    OperationTimeout,
    RequestRefused,
)
from .plan import AccessConfig, AddressState, AliasRange, NicState
from .route_plan import ForwardingRuleState, NewRoute, RouteState, instance_path

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import AuthorizedSession

REAL_ENDPOINT = "https://compute.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/compute",)
CALL_TIMEOUT_S = 30.0
WAIT_CALL_S = 125.0
"""zoneOperations.wait answers by about 2 minutes; give the HTTP call a little more."""
RETRY_ATTEMPTS = 4
RETRY_BASE_S = 0.2
REQUEST_ID_NAMESPACE = uuid.UUID("5b0f7f3e-2b0c-4c43-9a1e-6d1f0c6a1a10")

T = TypeVar("T")


@dataclass(frozen=True)
class Operation:
    """An operation: where to wait for it, and its error if it was already DONE."""

    project: str
    zone: str
    """The zone of a zonal operation; `regions/R` or `global` for the others."""
    name: str
    done: bool
    error: tuple[str, str] | None = None

    @property
    def scope(self) -> tuple[str, str]:
        """(`zoneOperations` | `regionOperations` | `globalOperations`, path under project)."""
        if self.zone == "global":
            return "globalOperations", "global"
        if self.zone.startswith("regions/"):
            return "regionOperations", self.zone
        return "zoneOperations", f"zones/{self.zone}"


@dataclass(frozen=True)
class HopState:
    """What route mode needs to know of the new primary's VM."""

    instance: InstanceRef
    status: str
    can_ip_forward: bool
    network: str
    """The network of the mirror's NIC, `projects/P/global/networks/N`."""
    network_ip: str = ""
    """The NIC's internal IP (where its IRIS answers the safeguards' probes)."""
    instance_id: str = ""
    """The live VM's numeric id (an identity token must be this VM's)."""


def request_id(*parts: str) -> str:
    """A UUID naming one intended change (delivery, target, step, fingerprint).

    A retried call with the same id returns the first call's operation instead of applying the
    change again; any change in the NIC changes the fingerprint and so the id.
    """
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, "/".join(parts)))


class _Session:
    """The one authorised HTTP session of a process, built once (at start-up, by `warm_up`)."""

    def __init__(self, emulated: bool, credentials: Credentials | None) -> None:
        self._emulated = emulated
        self._credentials = credentials
        self._lock = threading.Lock()
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

    def get(self) -> AuthorizedSession:
        with self._lock:
            if self._session is None:
                from google.auth.transport.requests import AuthorizedSession  # noqa: PLC0415
                from requests.adapters import HTTPAdapter  # noqa: PLC0415

                session = AuthorizedSession(self._creds())  # type: ignore[no-untyped-call]
                # Many mirrors may fail over at once (a zone outage): one connection each.
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
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
        session: _Session | None = None,
    ) -> None:
        self.endpoint = (endpoint or REAL_ENDPOINT).rstrip("/")
        self._root = f"{self.endpoint}/compute/v1/projects"
        self._session = session or _Session(endpoint is not None, credentials)
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    def for_event(self) -> ComputeGateway:
        """A gateway sharing this one's session, counting only its own calls.

        One per event, so that the outcome's `api_calls` is right when events run concurrently.
        """
        return ComputeGateway(self.endpoint, session=self._session)

    def warm_up(self) -> None:
        """Build the session now (at start-up) rather than on the first event's critical path."""
        self._session.get()

    # -- accounting, transport and error mapping ----------------------------------------------

    def calls(self) -> Counter[str]:
        """API calls made so far, by discovery method id (e.g. `compute.instances.get`)."""
        with self._lock:
            return Counter(self._calls)

    @contextmanager
    def _counted(self, method_id: str) -> Iterator[None]:
        with self._lock:
            self._calls[method_id] += 1
        yield

    def _call(
        self,
        method_id: str,
        fn: Callable[[], T],
        deadline: float,
        attempts: int = RETRY_ATTEMPTS,
    ) -> T:
        """Run one API call, retrying what may clear (`attempts` tries in all), and map
        failures onto our errors.

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
            if attempt >= attempts or time.monotonic() + pause >= deadline:
                raise failure
            time.sleep(pause)

    def _request(
        self,
        method_id: str,
        verb: str,
        path: str,
        deadline: float,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float = CALL_TIMEOUT_S,
        attempts: int = RETRY_ATTEMPTS,
    ) -> dict[str, Any]:
        """One retried REST call under `projects/`; the answer must be a JSON object."""
        url = f"{self._root}/{path}"
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}

        def send() -> dict[str, Any]:
            response = self._session.get().request(  # type: ignore[no-untyped-call]
                verb, url, params=params, data=data, headers=headers, timeout=timeout
            )
            if response.status_code >= 400:
                raise http_error(response.status_code, response.text)
            answer = response.json()
            if not isinstance(answer, dict):
                raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
            return answer

        return self._call(method_id, send, deadline, attempts)

    def _pages(
        self, method_id: str, path: str, deadline: float, params: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every page of a list or aggregatedList call, following `nextPageToken`."""
        query = dict(params or {})
        while True:
            page = self._request(method_id, "GET", path, deadline, params=query)
            yield page
            if not page.get("nextPageToken"):
                return
            query["pageToken"] = str(page["nextPageToken"])

    # -- reads --------------------------------------------------------------------------------

    def read_instance(
        self, ref: InstanceRef, deadline: float, attempts: int = RETRY_ATTEMPTS
    ) -> InstanceJson:
        """The whole instance resource (its NICs' subnetworks and IPs, `canIpForward`)."""
        path = f"{ref.project}/zones/{ref.zone}/instances/{ref.name}"
        answer = self._request("compute.instances.get", "GET", path, deadline, attempts=attempts)
        return cast(InstanceJson, answer)

    def read_nic(
        self, ref: InstanceRef, nic_name: str, deadline: float, attempts: int = RETRY_ATTEMPTS
    ) -> NicState:
        """The named NIC of one instance, as plain data; `attempts` tries at most."""
        instance = self.read_instance(ref, deadline, attempts)
        nic = _nic_named(instance, nic_name, ref)
        return NicState(
            instance=ref,
            fingerprint=nic.get("fingerprint", ""),
            alias_ranges=tuple(
                AliasRange(a.get("ipCidrRange", ""), a.get("subnetworkRangeName") or None)
                for a in nic.get("aliasIpRanges", [])
            ),
            access_configs=tuple(
                AccessConfig(c.get("name", ""), c.get("natIP") or None)
                for c in nic.get("accessConfigs", [])
            ),
            status=instance.get("status", ""),
            labels=dict(instance.get("labels", {})),
            label_fingerprint=instance.get("labelFingerprint", ""),
            network_ip=nic.get("networkIP", ""),
            instance_id=str(instance.get("id", "")),
        )

    def read_address(self, project: str, region: str, name: str, deadline: float) -> AddressState:
        """A reserved address: its IP, who uses it, and its network tier."""
        address = cast(
            AddressJson,
            self._request(
                "compute.addresses.get",
                "GET",
                f"{project}/regions/{region}/addresses/{name}",
                deadline,
            ),
        )
        if not address.get("address"):
            raise RequestRefused(f"address {project}/{region}/{name} has no IP")
        return AddressState(
            name=name,
            ip=address["address"],
            status=address.get("status", ""),
            users=tuple(address.get("users", [])),
            network_tier=address.get("networkTier") or None,
        )

    def reserved_address_named(
        self, project: str, region: str, ip: str, deadline: float
    ) -> str | None:
        """The name of the reserved address with this IP in the region, or None (ephemeral)."""
        found = self.list_addresses(project, region, deadline, f'address = "{ip}"')
        return next((a.get("name") for a in found if a.get("address") == ip), None)

    # -- reads for the operator's command (`vipmover.cli`) -------------------------------------

    def read_subnetwork(
        self, project: str, region: str, name: str, deadline: float
    ) -> SubnetworkJson:
        """One subnetwork: its primary and secondary ranges."""
        path = f"{project}/regions/{region}/subnetworks/{name}"
        return cast(SubnetworkJson, self._request("compute.subnetworks.get", "GET", path, deadline))

    def read_target_instance(
        self, project: str, zone: str, name: str, deadline: float
    ) -> TargetInstanceJson:
        """One target instance: the VM it points at (route mode's forwarding rule targets one)."""
        path = f"{project}/zones/{zone}/targetInstances/{name}"
        return cast(
            TargetInstanceJson, self._request("compute.targetInstances.get", "GET", path, deadline)
        )

    def list_addresses(
        self, project: str, region: str, deadline: float, filter_text: str = ""
    ) -> list[AddressJson]:
        """Every address of a region matching `filter_text`, all pages."""
        params = {"filter": filter_text} if filter_text else {}
        path = f"{project}/regions/{region}/addresses"
        return [
            address
            for page in self._pages("compute.addresses.list", path, deadline, params)
            for address in cast(ListJson[AddressJson], page).get("items", [])
        ]

    def list_all(
        self, project: str, collection: Literal["instances", "subnetworks"], deadline: float
    ) -> tuple[list[Any], list[str]]:
        """Every resource of a collection in every scope (aggregatedList, all pages), typed by
        the caller (`InstanceJson`, `SubnetworkJson`), and the scopes that did not answer (a
        zone or region that is down)."""
        found: list[Any] = []
        unreachable: list[str] = []
        method_id = f"compute.{collection}.aggregatedList"
        for page in self._pages(method_id, f"{project}/aggregated/{collection}", deadline):
            for scoped in cast(AggregatedListJson, page).get("items", {}).values():
                found.extend(scoped.get(collection, []))
            unreachable.extend(page.get("unreachables", []))
        return found, unreachable

    def test_iam_permissions(
        self, resource_path: str, permissions: Sequence[str], deadline: float
    ) -> frozenset[str]:
        """The `permissions` the caller holds on one resource.

        Args:
            resource_path: Under `projects/`, e.g. `P/zones/Z/instances/N`; its collection
                names the method (`compute.instances.testIamPermissions`).
        """
        collection = resource_path.split("/")[-2]
        body: TestPermissionsRequestJson = {"permissions": list(permissions)}
        answer = cast(
            TestPermissionsResponseJson,
            self._request(
                f"compute.{collection}.testIamPermissions",
                "POST",
                f"{resource_path}/testIamPermissions",
                deadline,
                body=body,
            ),
        )
        return frozenset(answer.get("permissions", []))

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
        ranges: list[AliasIpRangeJson] = []
        for alias in aliases:
            entry: AliasIpRangeJson = {"ipCidrRange": alias.ip_cidr_range}
            if alias.subnetwork_range_name:
                entry["subnetworkRangeName"] = alias.subnetwork_range_name
            ranges.append(entry)
        return self._mutate(
            "compute.instances.updateNetworkInterface",
            "PATCH",
            nic.instance,
            "updateNetworkInterface",
            deadline,
            params={"networkInterface": nic_name, "requestId": request_id},
            body={"fingerprint": nic.fingerprint, "aliasIpRanges": ranges},
        )

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
        body: InstancesSetLabelsRequestJson = {
            "labels": dict(labels),
            "labelFingerprint": nic.label_fingerprint,
        }
        return self._mutate(
            "compute.instances.setLabels",
            "POST",
            nic.instance,
            "setLabels",
            deadline,
            params={"requestId": request_id},
            body=body,
        )

    def delete_access_config(
        self, ref: InstanceRef, nic_name: str, config_name: str, request_id: str, deadline: float
    ) -> Operation:
        """Remove one access config (and so its external IP) from a NIC."""
        return self._mutate(
            "compute.instances.deleteAccessConfig",
            "POST",
            ref,
            "deleteAccessConfig",
            deadline,
            params={
                "networkInterface": nic_name,
                "accessConfig": config_name,
                "requestId": request_id,
            },
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
        config: AccessConfigJson = {"name": config_name, "type": "ONE_TO_ONE_NAT"}
        if nat_ip is not None:
            config["natIP"] = nat_ip
        if network_tier is not None:
            # GCE refuses a STANDARD-tier address attached with the default (PREMIUM) tier.
            config["networkTier"] = network_tier
        return self._mutate(
            "compute.instances.addAccessConfig",
            "POST",
            ref,
            "addAccessConfig",
            deadline,
            params={"networkInterface": nic_name, "requestId": request_id},
            body=config,
        )

    def _mutate(
        self,
        method_id: str,
        verb: str,
        ref: InstanceRef,
        verb_path: str,
        deadline: float,
        *,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Send one instance mutation; the answer is its zonal operation."""
        answer = self._request(
            method_id,
            verb,
            f"{ref.project}/zones/{ref.zone}/instances/{ref.name}/{verb_path}",
            deadline,
            params=params,
            body=body,
        )
        return _operation(ref.project, ref.zone, cast(OperationJson, answer))

    # -- route mode: routes, forwarding rules (global and regional: no zone on the path) ------

    def read_hop(self, ref: InstanceRef, nic_name: str, deadline: float) -> HopState:
        """The new primary's status, `canIpForward` and the network of its NIC."""
        instance = self.read_instance(ref, deadline)
        nic = _nic_named(instance, nic_name, ref)
        return HopState(
            ref,
            instance.get("status", ""),
            bool(instance.get("canIpForward", False)),
            _resource_path(nic.get("network", "")),
            nic.get("networkIP", ""),
            str(instance.get("id", "")),
        )

    def list_routes(self, project: str, dest_range: str, deadline: float) -> list[RouteState]:
        """Every route in the project whose `destRange` is `dest_range`, in any network."""
        params = {"filter": f'destRange = "{dest_range}"'}
        pages = self._pages("compute.routes.list", f"{project}/global/routes", deadline, params)
        return [
            _route_state(route)
            for page in pages
            for route in cast(ListJson[RouteJson], page).get("items", [])
        ]

    def insert_route(
        self,
        project: str,
        network: str,
        dest_range: str,
        route: NewRoute,
        request_id: str,
        deadline: float,
    ) -> Operation:
        """Insert a `nextHopInstance` route; its global operation is returned.

        Raises:
            Conflict: a route of that name exists already (a concurrent duplicate's insert).
        """
        body: RouteJson = {
            "name": route.name,
            "description": route.description,
            "network": network,
            "destRange": dest_range,
            "priority": route.priority,
            "nextHopInstance": instance_path(route.holder),
        }
        answer = self._request(
            "compute.routes.insert",
            "POST",
            f"{project}/global/routes",
            deadline,
            params={"requestId": request_id},
            body=body,
        )
        return _operation(project, "global", cast(OperationJson, answer))

    def route_exists(self, project: str, name: str, deadline: float) -> bool:
        """Whether the route exists now (False on 404)."""
        try:
            self._request("compute.routes.get", "GET", f"{project}/global/routes/{name}", deadline)
        except NotFound:
            return False
        return True

    def delete_route(
        self, project: str, name: str, request_id: str, deadline: float
    ) -> Operation | None:
        """Delete a route; None when it is already gone (404)."""
        try:
            answer = self._request(
                "compute.routes.delete",
                "DELETE",
                f"{project}/global/routes/{name}",
                deadline,
                params={"requestId": request_id},
            )
        except NotFound:
            return None
        return _operation(project, "global", cast(OperationJson, answer))

    def read_forwarding_rule(
        self, project: str, region: str, name: str, deadline: float
    ) -> ForwardingRuleState:
        rule = cast(
            ForwardingRuleJson,
            self._request(
                "compute.forwardingRules.get",
                "GET",
                f"{project}/regions/{region}/forwardingRules/{name}",
                deadline,
            ),
        )
        return ForwardingRuleState(
            name, rule.get("IPAddress", ""), _resource_path(rule.get("target", ""))
        )

    def set_forwarding_target(
        self, project: str, region: str, name: str, target: str, request_id: str, deadline: float
    ) -> Operation:
        """Point a forwarding rule at `target` (a target instance path): a regional operation."""
        body: TargetReferenceJson = {"target": target}
        answer = self._request(
            "compute.forwardingRules.setTarget",
            "POST",
            f"{project}/regions/{region}/forwardingRules/{name}/setTarget",
            deadline,
            params={"requestId": request_id},
            body=body,
        )
        return _operation(project, f"regions/{region}", cast(OperationJson, answer))

    # -- operations ---------------------------------------------------------------------------

    def wait(self, op: Operation, deadline: float) -> None:
        """Block until the operation is DONE; raise if it failed or the deadline passed.

        Raises:
            OperationFailed: the operation finished with an error.
            AddressInUse: it failed because another resource holds an address.
            FingerprintRace: the fingerprint it carried was stale when it applied.
            Conflict: the NIC already had its one access config when it applied.
            OperationTimeout: still running at `deadline`.
        """
        collection, scope = op.scope
        while not op.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(f"operation {op.name} in {op.zone} still running")
            try:
                answer = self._request(
                    f"compute.{collection}.wait",
                    "POST",
                    f"{op.project}/{scope}/operations/{op.name}/wait",
                    deadline,
                    timeout=min(WAIT_CALL_S, max(remaining, 1.0)),
                )
            except ApiUnavailable:
                if time.monotonic() >= deadline:
                    raise OperationTimeout(
                        f"operation {op.name} in {op.zone} still running"
                    ) from None
                raise
            op = _operation(op.project, op.zone, cast(OperationJson, answer))
        if op.error:
            raise operation_error(op.name, *op.error)


def _nic_named(instance: InstanceJson, nic_name: str, ref: InstanceRef) -> NetworkInterfaceJson:
    """The instance's NIC called `nic_name`; a missing one is a configuration error."""
    for nic in instance.get("networkInterfaces", []):
        if nic.get("name") == nic_name:
            return nic
    raise RequestRefused(f"{ref} has no network interface {nic_name}")


def _operation(project: str, zone: str, answer: OperationJson) -> Operation:
    """Our view of an operation resource: where to wait for it, and its first error."""
    errors = answer.get("error", {}).get("errors") or []
    error = (errors[0].get("code") or "UNKNOWN", errors[0].get("message") or "") if errors else None
    if "error" in answer and error is None:
        error = ("UNKNOWN", "operation failed")
    return Operation(project, zone, answer.get("name", ""), answer.get("status") == "DONE", error)


def _resource_path(url: str) -> str:
    """`https://.../compute/v1/projects/p/...` -> `projects/p/...` (partial URLs too)."""
    index = url.find("projects/")
    return url[index:] if index >= 0 else url


def _route_state(route: RouteJson) -> RouteState:
    hops = ("nextHopInstance", "nextHopIp", "nextHopGateway", "nextHopIlb", "nextHopVpnTunnel")
    hop = next((str(route[h]) for h in hops if route.get(h)), "")  # type: ignore[literal-required]
    return RouteState(
        name=route.get("name", ""),
        network=_resource_path(route.get("network", "")),
        dest_range=route.get("destRange", ""),
        priority=int(route.get("priority", 1000)),
        next_hop=_resource_path(hop),
        description=route.get("description", ""),
    )
