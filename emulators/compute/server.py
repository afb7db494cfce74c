"""A local Compute Engine API (v1) emulator for the calls that move a mirror's virtual IP.

It serves, under `/compute/v1/`, exactly the discovery document's paths and verbs for
instances.{get,list,aggregatedList,updateNetworkInterface,addAccessConfig,deleteAccessConfig,
setLabels}, addresses.{get,list,aggregatedList}, subnetworks.{get,list},
zoneOperations.{get,wait,list} and zones.{get,list}, with the real JSON field names and error
bodies. State is `{"instances", "subnetworks", "addresses"}` in the API's JSON form (see
`mirror_state`). Like pstest for Pub/Sub, each emulator owns its state, binds a free port, records
every request and offers fault injection. Stdlib only.

Faithful on purpose:
    * updateNetworkInterface is a true PATCH: an absent `aliasIpRanges` leaves the aliases alone,
      `[]` clears them. The NIC `fingerprint` is required (400) and must be current (412);
      fingerprints are compared as decoded bytes (gcloud sends URL-safe base64).
    * A repeated `requestId` returns the original operation and applies nothing again.
    * Invariants (alias in use by another instance, outside the subnetwork's range, on reserved
      addresses or the NIC's own IP; static IP in use) are checked when the operation applies and
      reported in the operation's `error`, as GCE does for work done asynchronously.
    * One access config per NIC; a wrong name in deleteAccessConfig succeeds and does nothing.

Where it differs from the real API:
    * Only the methods above exist; any other path answers a JSON 404 (Google's front end answers
      an HTML one). Pagination (`maxResults`, `pageToken`), `orderBy`, `fields` and
      `returnPartialSuccess` are ignored: every list is one page.
    * `filter` supports `FIELD = VALUE`, `!=`, `eq`/`ne` (RE2 full match, here Python `re`), `:`,
      `<`/`>`, parentheses, AND/OR/NOT; nested fields by dotted path.
    * Error messages for invariants are realistic but not byte-for-byte Google's; the in-use one
      is the documented "IP 'X' is already being used by another resource.". Whether GCE reports
      it in the operation or as HTTP 400 is unconfirmed: `alias_conflict_mode` chooses.
    * The NIC fingerprint is checked on the request (412) and again when the operation applies
      (operation error `CONDITION_NOT_MET`) so two concurrent PATCHes cannot both win.
    * Changing a NIC's network is accepted only on a stopped instance and does not re-address it.
    * Operations never expire; requestIds are remembered forever (GCE: at least 60 minutes).
    * Zones are synthesised from the instances loaded; nothing is authenticated. Empty scopes are
      left out of aggregatedList rather than listed with a NO_RESULTS_ON_PAGE warning.
    * With `op_latency` > 0 operations are PENDING for the first half and RUNNING for the second.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import hashlib
import heapq
import itertools
import json
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from emulators.compute.resources import (
    API_ROOT,
    HTTP_STATUS_TEXT,
    AliasConflictMode,
    ApiError,
    ComputeModel,
    InstanceKey,
    JsonDict,
    OperationFailure,
    Plan,
    ip_in_use,
    parse_filter,
)
from emulators.service import Service

SERVICE_PREFIX = "/compute/v1/"
MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
OPERATION_USER = "emulator@compute-emulator.invalid"


@dataclass(frozen=True)
class Route:
    """One discovery method: its id, HTTP verb and path template relative to `compute/v1/`."""

    method_id: str
    http_method: str
    template: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(regex))


ROUTES: tuple[Route, ...] = (
    Route("compute.instances.get", "GET", "projects/{project}/zones/{zone}/instances/{instance}"),
    Route("compute.instances.list", "GET", "projects/{project}/zones/{zone}/instances"),
    Route("compute.instances.aggregatedList", "GET", "projects/{project}/aggregated/instances"),
    Route(
        "compute.instances.updateNetworkInterface",
        "PATCH",
        "projects/{project}/zones/{zone}/instances/{instance}/updateNetworkInterface",
    ),
    Route(
        "compute.instances.addAccessConfig",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/addAccessConfig",
    ),
    Route(
        "compute.instances.deleteAccessConfig",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/deleteAccessConfig",
    ),
    Route(
        "compute.instances.setLabels",
        "POST",
        "projects/{project}/zones/{zone}/instances/{instance}/setLabels",
    ),
    Route(
        "compute.addresses.get", "GET", "projects/{project}/regions/{region}/addresses/{address}"
    ),
    Route("compute.addresses.list", "GET", "projects/{project}/regions/{region}/addresses"),
    Route("compute.addresses.aggregatedList", "GET", "projects/{project}/aggregated/addresses"),
    Route(
        "compute.subnetworks.get",
        "GET",
        "projects/{project}/regions/{region}/subnetworks/{subnetwork}",
    ),
    Route("compute.subnetworks.list", "GET", "projects/{project}/regions/{region}/subnetworks"),
    Route(
        "compute.zoneOperations.get",
        "GET",
        "projects/{project}/zones/{zone}/operations/{operation}",
    ),
    Route(
        "compute.zoneOperations.wait",
        "POST",
        "projects/{project}/zones/{zone}/operations/{operation}/wait",
    ),
    Route("compute.zoneOperations.list", "GET", "projects/{project}/zones/{zone}/operations"),
    Route("compute.zones.get", "GET", "projects/{project}/zones/{zone}"),
    Route("compute.zones.list", "GET", "projects/{project}/zones"),
)

DEFAULT_REASONS = {
    400: ("badRequest", "Bad Request"),
    401: ("required", "Login Required."),
    403: ("forbidden", "Required permission is missing."),
    404: ("notFound", "The requested resource was not found."),
    409: ("alreadyExists", "The resource already exists."),
    412: ("conditionNotMet", "Supplied fingerprint does not match current fingerprint."),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Internal error. Please try again or contact Google Support."),
    503: ("backendError", "The service is currently unavailable."),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it; `body` is parsed JSON (or raw text, or None)."""

    method_id: str
    http_method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    time: float


@dataclass
class _InjectedFault:
    remaining: int
    code: int
    reason: str
    message: str
    after_apply: bool


@dataclass
class _InjectedOperationFault:
    remaining: int
    error_code: str
    message: str


@dataclass
class _Operation:
    resource: JsonDict
    plan: Plan | None
    failure: OperationFailure | None = None


OperationKey = tuple[str, str, str]
"""(project, zone, operation name)."""


def rfc3339_now() -> str:
    """API-style timestamp: RFC 3339 with milliseconds and an explicit offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def operation_name() -> str:
    """`operation-<epoch ms>-<13 hex>-<8 hex>-<8 hex>`, the shape GCE uses."""
    millis = int(time.time() * 1000)
    first, second, third = secrets.token_hex(7)[:13], secrets.token_hex(4), secrets.token_hex(4)
    return f"operation-{millis}-{first}-{second}-{third}"


def resource_id() -> str:
    return str(random.randrange(10**18, 10**19))  # noqa: S311 - ids, not secrets


def error_payload(code: int, reason: str | None = None, message: str | None = None) -> JsonDict:
    default_reason, default_message = DEFAULT_REASONS.get(code, ("backendError", "Error"))
    return ApiError(code, reason or default_reason, message or default_message).body()


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that `stop` can end keep-alive handler threads promptly."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: ComputeEmulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read `requests()` instead of a log."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload = self.server.emulator.handle(self.command, self.path, raw)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class ComputeEmulator(Service):
    """An in-process Compute Engine API emulator on a local HTTP port.

    Args:
        state: Initial resources (`mirror_state` shape); None starts empty.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        op_latency: Seconds before a mutation's operation applies and is DONE; 0 applies it
            before the response.
        wait_max_seconds: How long `zoneOperations.wait` long-polls before answering a
            not-yet-DONE operation (GCE: about two minutes).
        alias_conflict_mode: Report an alias held by another instance in the finished operation
            (`"operation"`) or as an HTTP 400 on the request (`"http"`).
    """

    default_alias_conflict_mode: ClassVar[AliasConflictMode] = "operation"

    def __init__(
        self,
        state: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        op_latency: float = 0.0,
        wait_max_seconds: float = 120.0,
        alias_conflict_mode: AliasConflictMode = "operation",
    ) -> None:
        self._host = host
        self._port = port
        self._wait_max_seconds = wait_max_seconds
        self._alias_conflict_mode: AliasConflictMode = alias_conflict_mode
        self._lock = threading.Condition(threading.RLock())
        self._model = ComputeModel()
        self._operations: dict[OperationKey, _Operation] = {}
        self._request_ids: dict[tuple[str, str], OperationKey] = {}
        self._requests: list[RecordedRequest] = []
        self._default_latency = op_latency
        self._latencies: dict[str, float] = {}
        self._faults: dict[str, list[_InjectedFault]] = collections.defaultdict(list)
        self._operation_faults: dict[str, list[_InjectedOperationFault]] = collections.defaultdict(
            list
        )
        self._zones_down: set[str] = set()
        self._schedule: list[tuple[float, int, str, OperationKey]] = []
        self._sequence = itertools.count()
        self._stopping = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        if state is not None:
            self._model.load(state)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind, serve in background threads, and return self."""
        if self._server is not None:
            return self
        self._stopping = False
        self._server = _Server((self._host, self._port), self)
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="compute-emulator-http",
            daemon=True,
        )
        scheduler = threading.Thread(
            target=self._run_schedule, name="compute-emulator-ops", daemon=True
        )
        self._threads = [serve, scheduler]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end long-polls and keep-alive connections, join threads. Idempotent."""
        server, self._server = self._server, None
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    @property
    def url(self) -> str:
        """`http://HOST:PORT`, what `client_options={"api_endpoint": ...}` takes."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- state ---------------------------------------------------------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace all resources (operations and requestIds are kept)."""
        with self._lock:
            self._model.load(state)

    def state(self) -> dict[str, Any]:
        """Every resource, in the form `load_state` takes (deep copy)."""
        with self._lock:
            return self._model.dump()

    def instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        """The instance as `instances.get` would return it (deep copy); KeyError if unknown."""
        with self._lock:
            return copy.deepcopy(self._model.instances[(project, zone, name)])

    def address(self, project: str, region: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._model.addresses[(project, region, name)])

    def operations(self) -> list[dict[str, Any]]:
        """Every operation created so far, oldest first (deep copies)."""
        with self._lock:
            return [copy.deepcopy(op.resource) for op in self._operations.values()]

    def edit_instance(
        self, project: str, zone: str, name: str, edit: Callable[[dict[str, Any]], None]
    ) -> None:
        """Change an instance out of band (someone used the console); bumps fingerprints."""
        with self._lock:
            self._model.edit_instance((project, zone, name), edit)

    def set_alias_conflict_mode(self, mode: AliasConflictMode) -> None:
        with self._lock:
            self._alias_conflict_mode = mode

    # ---- recording -----------------------------------------------------------------------------

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def mutations(self) -> list[RecordedRequest]:
        """Requests that ask for a change (zoneOperations.wait is a POST but changes nothing)."""
        return [
            r
            for r in self.requests()
            if r.http_method in MUTATING_METHODS and r.method_id != "compute.zoneOperations.wait"
        ]

    def call_counts(self) -> collections.Counter[str]:
        return collections.Counter(r.method_id for r in self.requests())

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ---- fault injection -----------------------------------------------------------------------

    def fail_next(
        self,
        method_id: str,
        count: int = 1,
        code: int = 503,
        reason: str | None = None,
        message: str | None = None,
        *,
        after_apply: bool = False,
    ) -> None:
        """Answer the next `count` calls of `method_id` with an HTTP error.

        With `after_apply` the call is processed normally first and only the response is lost,
        the case a `requestId` retry exists for.
        """
        default_reason, default_message = DEFAULT_REASONS.get(code, ("backendError", "Error"))
        with self._lock:
            self._faults[method_id].append(
                _InjectedFault(
                    count, code, reason or default_reason, message or default_message, after_apply
                )
            )

    def set_op_latency(self, seconds: float, method_id: str | None = None) -> None:
        """Delay before operations apply; `method_id` None sets the default for all mutations."""
        with self._lock:
            if method_id is None:
                self._default_latency = seconds
            else:
                self._latencies[method_id] = seconds

    def fail_next_operation(
        self,
        method_id: str,
        count: int = 1,
        error_code: str = "INTERNAL_ERROR",
        message: str = "Internal error.",
    ) -> None:
        """Accept the next `count` calls but finish their operations with `error`, unapplied."""
        with self._lock:
            self._operation_faults[method_id].append(
                _InjectedOperationFault(count, error_code, message)
            )

    def set_zone_down(self, zone: str, down: bool = True) -> None:
        """Every request whose path names `zone` (operations too) answers 503."""
        with self._lock:
            if down:
                self._zones_down.add(zone)
            else:
                self._zones_down.discard(zone)

    # ---- HTTP dispatch -------------------------------------------------------------------------

    def handle(self, http_method: str, raw_path: str, raw_body: bytes) -> tuple[int, JsonDict]:
        """Serve one request: record it, inject faults, route it. Returns (status, JSON body)."""
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        body: Any = None
        body_error: ApiError | None = None
        if raw_body:
            text = raw_body.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
                body_error = ApiError(400, "parseError", "Invalid JSON payload received.")
        route, params = self._route(http_method, split.path)
        method_id = route.method_id if route else "unknown"
        with self._lock:
            self._requests.append(
                RecordedRequest(method_id, http_method, split.path, query, body, time.monotonic())
            )
            zone = self._zone_down_in(split.path)
            fault = self._take_fault(method_id) if zone is None else None
        if zone is not None:
            return 503, error_payload(
                503,
                "backendError",
                f"The zone 'projects/{params.get('project', '-')}/zones/{zone}' is currently "
                "unavailable.",
            )
        if fault is not None and not fault.after_apply:
            return fault.code, error_payload(fault.code, fault.reason, fault.message)
        if route is None:
            return 404, error_payload(
                404, "notFound", f"The requested URL {split.path} was not found on this server."
            )
        try:
            if body_error is not None:
                raise body_error
            status, payload = 200, self._call(route.method_id, params, query, body)
        except ApiError as error:
            status, payload = error.code, error.body()
        if fault is not None:
            return fault.code, error_payload(fault.code, fault.reason, fault.message)
        return status, payload

    @staticmethod
    def _route(http_method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        if not path.startswith(SERVICE_PREFIX):
            return None, {}
        relative = path[len(SERVICE_PREFIX) :]
        for route in ROUTES:
            match = route.pattern.fullmatch(relative)
            if match and route.http_method == http_method:
                return route, match.groupdict()
        return None, {}

    def _zone_down_in(self, path: str) -> str | None:
        parts = path.split("/")
        for index, part in enumerate(parts[:-1]):
            if part == "zones" and parts[index + 1] in self._zones_down:
                return parts[index + 1]
        return None

    def _take_fault(self, method_id: str) -> _InjectedFault | None:
        queue = self._faults.get(method_id)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    def _call(
        self, method_id: str, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> JsonDict:
        def arg(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        if method_id == "compute.zoneOperations.wait":
            return self._wait_operation((params["project"], params["zone"], params["operation"]))
        with self._lock:
            read = self._reads().get(method_id)
            if read is not None:
                return read(params, arg("filter"))
            return self._mutate(method_id, params["project"], params, arg, body)

    def _reads(self) -> dict[str, Callable[[dict[str, str], str | None], JsonDict]]:
        """Read methods by id; each takes the path parameters and the `filter` query value."""
        model = self._model
        return {
            "compute.instances.get": lambda p, _f: copy.deepcopy(
                model.get_instance(p["project"], p["zone"], p["instance"])
            ),
            "compute.instances.list": lambda p, f: self._instance_list(p["project"], p["zone"], f),
            "compute.instances.aggregatedList": lambda p, f: self._aggregated_instances(
                p["project"], f
            ),
            "compute.addresses.get": lambda p, _f: copy.deepcopy(
                model.get_address(p["project"], p["region"], p["address"])
            ),
            "compute.addresses.list": lambda p, f: self._regional_list(
                "compute#addressList", model.addresses, p["project"], p["region"], f
            ),
            "compute.addresses.aggregatedList": lambda p, f: self._aggregated_addresses(
                p["project"], f
            ),
            "compute.subnetworks.get": lambda p, _f: copy.deepcopy(
                model.get_subnetwork(p["project"], p["region"], p["subnetwork"])
            ),
            "compute.subnetworks.list": lambda p, f: self._regional_list(
                "compute#subnetworkList", model.subnetworks, p["project"], p["region"], f
            ),
            "compute.zoneOperations.get": lambda p, _f: copy.deepcopy(
                self._get_operation((p["project"], p["zone"], p["operation"])).resource
            ),
            "compute.zoneOperations.list": lambda p, f: self._operation_list(
                p["project"], p["zone"], f
            ),
            "compute.zones.get": lambda p, _f: self._zone(p["project"], p["zone"]),
            "compute.zones.list": lambda p, f: self._zone_list(p["project"], f),
        }

    # ---- reads ---------------------------------------------------------------------------------

    def _instance_list(self, project: str, zone: str, filter_text: str | None) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        items = [
            copy.deepcopy(inst)
            for (p, z, _), inst in self._model.instances.items()
            if p == project and z == zone and predicate(inst)
        ]
        return {
            "kind": "compute#instanceList",
            "id": f"projects/{project}/zones/{zone}/instances",
            "items": items,
            "selfLink": f"{API_ROOT}/projects/{project}/zones/{zone}/instances",
        }

    def _aggregated_instances(self, project: str, filter_text: str | None) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        items: dict[str, JsonDict] = {}
        unreachable: set[str] = set()
        for (p, zone, _), inst in sorted(self._model.instances.items()):
            if p != project:
                continue
            if zone in self._zones_down:
                unreachable.add(f"zones/{zone}")
                continue
            if predicate(inst):
                scope = items.setdefault(f"zones/{zone}", {"instances": []})
                scope["instances"].append(copy.deepcopy(inst))
        body: JsonDict = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project}/aggregated/instances",
            "items": items,
            "selfLink": f"{API_ROOT}/projects/{project}/aggregated/instances",
        }
        if unreachable:
            body["unreachables"] = sorted(unreachable)
        return body

    def _regional_list(
        self,
        kind: str,
        resources: dict[tuple[str, str, str], JsonDict],
        project: str,
        region: str,
        filter_text: str | None,
    ) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        collection = {"compute#addressList": "addresses", "compute#subnetworkList": "subnetworks"}[
            kind
        ]
        return {
            "kind": kind,
            "id": f"projects/{project}/regions/{region}/{collection}",
            "items": [
                copy.deepcopy(res)
                for (p, r, _), res in resources.items()
                if p == project and r == region and predicate(res)
            ],
            "selfLink": f"{API_ROOT}/projects/{project}/regions/{region}/{collection}",
        }

    def _aggregated_addresses(self, project: str, filter_text: str | None) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        items: dict[str, JsonDict] = {}
        for (p, region, _), address in sorted(self._model.addresses.items()):
            if p == project and predicate(address):
                scope = items.setdefault(f"regions/{region}", {"addresses": []})
                scope["addresses"].append(copy.deepcopy(address))
        return {
            "kind": "compute#addressAggregatedList",
            "id": f"projects/{project}/aggregated/addresses",
            "items": items,
            "selfLink": f"{API_ROOT}/projects/{project}/aggregated/addresses",
        }

    def _zone_list(self, project: str, filter_text: str | None) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        zones = [self._zone(project, z) for z in self._model.zones(project)]
        return {
            "kind": "compute#zoneList",
            "id": f"projects/{project}/zones",
            "items": [z for z in zones if predicate(z)],
            "selfLink": f"{API_ROOT}/projects/{project}/zones",
        }

    def _zone(self, project: str, zone: str) -> JsonDict:
        if zone not in self._model.zones(project):
            raise ApiError(
                404, "notFound", f"The resource 'projects/{project}/zones/{zone}' was not found"
            )
        region = zone.rsplit("-", 1)[0]
        return {
            "kind": "compute#zone",
            "id": str(int(hashlib.sha256(zone.encode()).hexdigest()[:12], 16) + 2 * 10**15),
            "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": zone,
            "description": zone,
            "status": "UP",
            "region": f"{API_ROOT}/projects/{project}/regions/{region}",
            "selfLink": f"{API_ROOT}/projects/{project}/zones/{zone}",
            "supportsPzs": False,
        }

    # ---- mutations and operations --------------------------------------------------------------

    def _mutate(
        self,
        method_id: str,
        project: str,
        params: dict[str, str],
        arg: Callable[[str], str | None],
        body: Any,
    ) -> JsonDict:
        key: InstanceKey = (project, params["zone"], params["instance"])
        request_id = arg("requestId")
        if request_id:
            seen = self._request_ids.get((project, request_id))
            if seen is not None:
                return copy.deepcopy(self._operations[seen].resource)
        model = self._model
        if method_id == "compute.instances.updateNetworkInterface":
            plan, new_aliases = model.plan_update_network_interface(
                key, arg("networkInterface"), body
            )
            if new_aliases and self._alias_conflict_mode == "http":
                nic = model.find_nic(model.get_instance(*key), arg("networkInterface"))
                conflict = model.alias_conflict(key, nic.get("network", ""), new_aliases)
                if conflict is not None:
                    raise ApiError(400, "IP_IN_USE_BY_ANOTHER_RESOURCE", ip_in_use(conflict))
        elif method_id == "compute.instances.addAccessConfig":
            plan = model.plan_add_access_config(key, arg("networkInterface"), body)
        elif method_id == "compute.instances.deleteAccessConfig":
            plan = model.plan_delete_access_config(
                key, arg("networkInterface"), arg("accessConfig")
            )
        elif method_id == "compute.instances.setLabels":
            plan = model.plan_set_labels(key, body)
        else:  # pragma: no cover - every mutating route is handled above
            raise ApiError(404, "notFound", f"Method {method_id} is not served.")
        operation = self._start_operation(method_id, plan)
        if request_id:
            self._request_ids[(project, request_id)] = operation
        return copy.deepcopy(self._operations[operation].resource)

    def _start_operation(self, method_id: str, plan: Plan) -> OperationKey:
        project, zone, _ = plan.target
        name = operation_name()
        now = rfc3339_now()
        resource: JsonDict = {
            "kind": "compute#operation",
            "id": resource_id(),
            "name": name,
            "zone": f"{API_ROOT}/projects/{project}/zones/{zone}",
            "operationType": plan.operation_type,
            "targetLink": plan.target_link,
            "targetId": plan.target_id,
            "status": "PENDING",
            "user": OPERATION_USER,
            "progress": 0,
            "insertTime": now,
            "selfLink": f"{API_ROOT}/projects/{project}/zones/{zone}/operations/{name}",
        }
        key: OperationKey = (project, zone, name)
        failure: OperationFailure | None = None
        queue = self._operation_faults.get(method_id)
        if queue:
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            status = 500 if fault.error_code == "INTERNAL_ERROR" else 400
            failure = OperationFailure(fault.error_code, fault.message, status)
        self._operations[key] = _Operation(resource, plan, failure)
        latency = self._latencies.get(method_id, self._default_latency)
        if latency <= 0:
            self._finish_operation(key)
        else:
            due = time.monotonic()
            heapq.heappush(self._schedule, (due + latency / 2, next(self._sequence), "run", key))
            heapq.heappush(self._schedule, (due + latency, next(self._sequence), "done", key))
            self._lock.notify_all()
        return key

    def _finish_operation(self, key: OperationKey) -> None:
        """Apply the plan (or the injected failure) and mark the operation DONE. Under the lock."""
        operation = self._operations[key]
        resource = operation.resource
        if resource["status"] == "DONE":
            return
        failure = operation.failure
        if failure is None and operation.plan is not None:
            try:
                operation.plan.apply()
            except OperationFailure as error:
                failure = error
        now = rfc3339_now()
        resource.setdefault("startTime", now)
        resource.update(status="DONE", progress=100, endTime=now)
        if failure is not None:
            resource["error"] = {"errors": [{"code": failure.code, "message": failure.message}]}
            resource["httpErrorStatusCode"] = failure.http_status
            resource["httpErrorMessage"] = HTTP_STATUS_TEXT.get(failure.http_status, "ERROR")
        self._lock.notify_all()

    def _run_schedule(self) -> None:
        """Advance delayed operations at their due times; waits on the condition, never polls."""
        with self._lock:
            while not self._stopping:
                if not self._schedule:
                    self._lock.wait()
                    continue
                due, _, step, key = self._schedule[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._lock.wait(timeout=delay)
                    continue
                heapq.heappop(self._schedule)
                if key not in self._operations:
                    continue
                if step == "run":
                    resource = self._operations[key].resource
                    if resource["status"] == "PENDING":
                        resource.update(status="RUNNING", progress=50, startTime=rfc3339_now())
                else:
                    self._finish_operation(key)

    def _get_operation(self, key: OperationKey) -> _Operation:
        try:
            return self._operations[key]
        except KeyError:
            project, zone, name = key
            raise ApiError(
                404,
                "notFound",
                f"The resource 'projects/{project}/zones/{zone}/operations/{name}' was not found",
            ) from None

    def _wait_operation(self, key: OperationKey) -> JsonDict:
        """Long-poll until DONE or `wait_max_seconds`, like zoneOperations.wait."""
        with self._lock:
            operation = self._get_operation(key)
            self._lock.wait_for(
                lambda: operation.resource["status"] == "DONE" or self._stopping,
                timeout=self._wait_max_seconds,
            )
            return copy.deepcopy(operation.resource)

    def _operation_list(self, project: str, zone: str, filter_text: str | None) -> JsonDict:
        predicate = parse_filter(filter_text or "")
        return {
            "kind": "compute#operationList",
            "id": f"projects/{project}/zones/{zone}/operations",
            "items": [
                copy.deepcopy(op.resource)
                for (p, z, _), op in self._operations.items()
                if p == project and z == zone and predicate(op.resource)
            ],
            "selfLink": f"{API_ROOT}/projects/{project}/zones/{zone}/operations",
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Compute Engine API emulator.")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--state", type=Path, help="JSON state file (instances/subnetworks/...)")
    parser.add_argument(
        "--op-latency", type=float, default=0.0, help="seconds before an operation is DONE"
    )
    parser.add_argument(
        "--wait-max-seconds", type=float, default=120.0, help="zoneOperations.wait long-poll cap"
    )
    parser.add_argument(
        "--alias-conflict-mode",
        choices=["operation", "http"],
        default="operation",
        help="report an alias held elsewhere in the operation error or as HTTP 400",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; prints the URL on one line once it is listening."""
    args = parse_args(argv)
    state = json.loads(args.state.read_text()) if args.state else None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    emulator = ComputeEmulator(
        state,
        host=args.host,
        port=args.port,
        op_latency=args.op_latency,
        wait_max_seconds=args.wait_max_seconds,
        alias_conflict_mode=args.alias_conflict_mode,
    )
    with emulator:
        print(f"compute emulator listening on {emulator.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
