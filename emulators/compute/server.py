"""The Compute emulator's HTTP server: `ComputeEmulator`, what tests and the local stack start.

It owns the state (`resources.ComputeModel`), the operations (`operations.Operations`), the
record of every request and the injected faults, all under one lock; the HTTP handler only
hands it (method, path, body). What it serves, how faithfully, and where it differs from the
real API: docs/compute-emulator.md. Stdlib only.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from emulators import JsonDict
from emulators.compute.errors import DEFAULT_REASONS, ApiError, error_payload, ip_in_use, not_found
from emulators.compute.filters import parse_filter
from emulators.compute.operations import Operations, take_fault
from emulators.compute.resources import AliasConflictMode, ComputeModel, Plan
from emulators.compute.routes import Route, list_body, match_route
from emulators.compute.state import InstanceKey, VpcState
from emulators.compute.urls import API_ROOT, region_of
from emulators.compute.vpc import VpcPlanner
from emulators.service import Service

MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

_RESOURCES = {
    "instances": ("instance", "zone"),
    "addresses": ("address", "region"),
    "subnetworks": ("subnetwork", "region"),
    "routes": ("route", "global"),
    "forwardingRules": ("forwardingRule", "region"),
    "targetInstances": ("targetInstance", "zone"),
}
"""Collections read by get/list/aggregatedList: their kind (= the path parameter naming one)
and the path parameter of their scope (`global` for global resources)."""
WAIT_METHODS = frozenset(
    {
        "compute.zoneOperations.wait",
        "compute.regionOperations.wait",
        "compute.globalOperations.wait",
    }
)


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
    raw_body: str | None = None
    """An HTML page instead of the API's JSON (a proxy or front end answering)."""


GARBLED_BODY = "<html><body><h1>502 Bad Gateway</h1></body></html>"


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
        html = isinstance(payload, str)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", f"{'text/html' if html else 'application/json'}; charset=UTF-8"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


def _parse_body(raw_body: bytes) -> tuple[Any, ApiError | None]:
    """The JSON body, or the raw text and the 400 the API answers for it."""
    if not raw_body:
        return None, None
    text = raw_body.decode("utf-8", errors="replace")
    try:
        return json.loads(text), None
    except json.JSONDecodeError:
        return text, ApiError(400, "parseError", "Invalid JSON payload received.")


def _operation_key(params: dict[str, str]) -> tuple[str, str, str]:
    """(project, scope, name) of a zonal, regional or global operation's path parameters."""
    if "zone" in params:
        scope = params["zone"]
    elif "region" in params:
        scope = f"regions/{params['region']}"
    else:
        scope = "global"
    return params["project"], scope, params["operation"]


def _scope_path(scope_kind: str, scope: str) -> str:
    """`zones/Z`, `regions/R`, or `global`."""
    return "global" if scope_kind == "global" else f"{scope_kind}/{scope}"


def _zone_resource(project: str, zone: str) -> JsonDict:
    """A synthesised `compute#zone` (zones exist where instances are)."""
    return {
        "kind": "compute#zone",
        "id": str(int(hashlib.sha256(zone.encode()).hexdigest()[:12], 16) + 2 * 10**15),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": f"{API_ROOT}/projects/{project}/regions/{region_of(zone)}",
        "selfLink": f"{API_ROOT}/projects/{project}/zones/{zone}",
        "supportsPzs": False,
    }


class ComputeEmulator(Service):
    """An in-process Compute Engine API emulator on a local HTTP port.

    Args:
        state: Initial resources (see docs/compute-emulator.md, "The state file"); None: empty.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        op_latency: Seconds before a mutation's operation applies and is DONE; 0 applies it
            before the response.
        wait_max_seconds: How long `zoneOperations.wait` long-polls before answering a
            not-yet-DONE operation (GCE: about two minutes).
        alias_conflict_mode: Report an alias held by another instance in the finished operation
            (`"operation"`) or as an HTTP 400 on the request (`"http"`).
    """

    def __init__(
        self,
        state: JsonDict | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        op_latency: float = 0.0,
        wait_max_seconds: float = 120.0,
        alias_conflict_mode: AliasConflictMode = "operation",
    ) -> None:
        self._address = (host, port)
        self._wait_max_seconds = wait_max_seconds
        self._alias_conflict_mode: AliasConflictMode = alias_conflict_mode
        self._lock = threading.Condition(threading.RLock())
        self._model = ComputeModel()
        self._vpc = VpcPlanner(self._model)
        self._operations = Operations(self._lock, op_latency)
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, list[_InjectedFault]] = collections.defaultdict(list)
        self._zones_down: set[str] = set()
        self._denied: set[str] = set()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        if state is not None:
            self._model.load(state)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind, serve in background threads, and return self."""
        if self._server is not None:
            return self
        self._operations.stopping = False
        self._server = _Server(self._address, self)
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="compute-emulator-http",
            daemon=True,
        )
        scheduler = threading.Thread(
            target=self._operations.run_schedule, name="compute-emulator-ops", daemon=True
        )
        self._threads = [serve, scheduler]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end long-polls and keep-alive connections, join threads. Idempotent."""
        server, self._server = self._server, None
        with self._lock:
            self._operations.stopping = True
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

    def load_state(self, state: JsonDict) -> None:
        """Replace all resources (operations and requestIds are kept)."""
        with self._lock:
            self._model.load(state)

    def state(self) -> JsonDict:
        """Every resource, in the form `load_state` takes (deep copy)."""
        with self._lock:
            return self._model.dump()

    def instance(self, project: str, zone: str, name: str) -> JsonDict:
        """The instance as `instances.get` would return it (deep copy); KeyError if unknown."""
        with self._lock:
            return copy.deepcopy(self._model.instances[(project, zone, name)])

    def address(self, project: str, region: str, name: str) -> JsonDict:
        with self._lock:
            return copy.deepcopy(self._model.addresses[(project, region, name)])

    def routes(self, project: str) -> list[JsonDict]:
        """The project's routes, by name (deep copies)."""
        with self._lock:
            routes = self._model.vpc.routes
            return [copy.deepcopy(routes[k]) for k in sorted(routes) if k[0] == project]

    def forwarding_rule(self, project: str, region: str, name: str) -> JsonDict:
        with self._lock:
            return copy.deepcopy(self._model.vpc.forwarding_rules[(project, region, name)])

    def edit_vpc(self, edit: Callable[[VpcState], None]) -> None:
        """Change routes, forwarding rules or target instances out of band (a route deleted by
        hand in the console, say)."""
        with self._lock:
            edit(self._model.vpc)

    def operations(self) -> list[JsonDict]:
        """Every operation created so far, oldest first (deep copies)."""
        with self._lock:
            return self._operations.all()

    def edit_instance(
        self, project: str, zone: str, name: str, edit: Callable[[JsonDict], None]
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
        """Requests that ask for a change (`*Operations.wait` is a POST but changes nothing)."""
        return [
            r
            for r in self.requests()
            if r.http_method in MUTATING_METHODS and r.method_id not in WAIT_METHODS
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

    def garble_next(self, method_id: str, count: int = 1, code: int = 200) -> None:
        """Answer the next `count` calls with an HTML page instead of the API's JSON.

        What a proxy or Google's front end sends when something between us and the API fails.
        """
        with self._lock:
            self._faults[method_id].append(
                _InjectedFault(count, code, "", "", False, raw_body=GARBLED_BODY)
            )

    def set_op_latency(self, seconds: float, method_id: str | None = None) -> None:
        """Delay before operations apply; `method_id` None sets the default for all mutations."""
        with self._lock:
            if method_id is None:
                self._operations.default_latency = seconds
            else:
                self._operations.latencies[method_id] = seconds

    def fail_next_operation(
        self,
        method_id: str,
        count: int = 1,
        error_code: str = "INTERNAL_ERROR",
        message: str = "Internal error.",
        *,
        instance: str | None = None,
    ) -> None:
        """Accept the next `count` calls (on `instance`, if named) but fail their operations."""
        with self._lock:
            self._operations.fail_next(method_id, count, error_code, message, instance)

    def drop_next_operation(self, method_id: str, count: int = 1) -> None:
        """Accept the next `count` calls and end their operations DONE, without error, unapplied.

        A write that reports success and changes nothing (as `deleteAccessConfig` with a wrong
        name does, kubeip #59): what reading the state back after a move exists for.
        """
        with self._lock:
            self._operations.fail_next(method_id, count, None, "")

    def set_zone_down(self, zone: str, down: bool = True) -> None:
        """Every request whose path names `zone` (operations too) answers 503."""
        with self._lock:
            if down:
                self._zones_down.add(zone)
            else:
                self._zones_down.discard(zone)

    def deny_permissions(self, *permissions: str) -> None:
        """The caller lacks these permissions from now on, as `testIamPermissions` reports.

        Only `testIamPermissions` answers change: the methods themselves still succeed (see
        docs/compute-emulator.md).
        """
        with self._lock:
            self._denied.update(permissions)

    def grant_all_permissions(self) -> None:
        """Undo `deny_permissions`: the caller holds every permission (the default)."""
        with self._lock:
            self._denied.clear()

    # ---- HTTP dispatch -------------------------------------------------------------------------

    def handle(
        self, http_method: str, raw_path: str, raw_body: bytes
    ) -> tuple[int, JsonDict | str]:
        """Serve one request: record it, inject faults, route it.

        Returns:
            The status and the JSON body (or, for a garbled answer, an HTML page).
        """
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        body, body_error = _parse_body(raw_body)
        route, params = match_route(http_method, split.path)
        method_id = route.method_id if route else "unknown"
        with self._lock:
            self._requests.append(
                RecordedRequest(method_id, http_method, split.path, query, body, time.monotonic())
            )
            zone = self._zone_down_in(split.path)
            fault = take_fault(self._faults.get(method_id)) if zone is None else None
        if zone is not None:
            project = params.get("project", "-")
            message = f"The zone 'projects/{project}/zones/{zone}' is currently unavailable."
            return 503, error_payload(503, "backendError", message)
        if fault is not None and fault.raw_body is not None:
            return fault.code, fault.raw_body
        if fault is not None and not fault.after_apply:
            return fault.code, error_payload(fault.code, fault.reason, fault.message)
        status, payload = self._serve(route, params, query, body, body_error, split.path)
        if fault is not None:
            return fault.code, error_payload(fault.code, fault.reason, fault.message)
        return status, payload

    def _serve(
        self,
        route: Route | None,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        body_error: ApiError | None,
        path: str,
    ) -> tuple[int, JsonDict]:
        if route is None:
            message = f"The requested URL {path} was not found on this server."
            return 404, error_payload(404, "notFound", message)
        try:
            if body_error is not None:
                raise body_error
            return 200, self._call(route.method_id, params, query, body)
        except ApiError as error:
            return error.code, error.body()

    def _zone_down_in(self, path: str) -> str | None:
        parts = path.split("/")
        for index, part in enumerate(parts[:-1]):
            if part == "zones" and parts[index + 1] in self._zones_down:
                return parts[index + 1]
        return None

    def _call(
        self, method_id: str, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> JsonDict:
        def arg(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        if method_id in WAIT_METHODS:
            return self._operations.wait(_operation_key(params), self._wait_max_seconds)
        with self._lock:
            if method_id.endswith(".testIamPermissions"):
                return self._test_permissions(method_id, params, body)
            read = self._read(method_id, params, arg("filter") or "")
            if read is not None:
                return read
            return self._mutate(method_id, params, arg, body)

    # ---- reads ---------------------------------------------------------------------------------

    def _read(self, method_id: str, params: dict[str, str], filter_text: str) -> JsonDict | None:
        """Serve a read method (`get`, `list`, `aggregatedList`); None for a mutation."""
        _, collection, verb = method_id.split(".")
        if verb not in {"get", "list", "aggregatedList"}:
            return None
        project = params["project"]
        if collection in _RESOURCES:
            return self._read_resource(collection, verb, params, filter_text)
        if collection.endswith("Operations") and verb == "get":
            return copy.deepcopy(self._operations.get(_operation_key(params)).resource)
        if collection == "zoneOperations":
            return self._operation_list(params, filter_text)
        if verb == "get":
            return self._zone(project, params["zone"])
        return self._zone_list(project, filter_text)

    def _read_resource(
        self, collection: str, verb: str, params: dict[str, str], filter_text: str
    ) -> JsonDict:
        kind, scope_param = _RESOURCES[collection]
        project = params["project"]
        if verb == "aggregatedList":
            return self._aggregated_list(kind, project, filter_text)
        scope = params.get(scope_param, "global")
        if verb == "list":
            return self._scoped_list(kind, project, scope, filter_text)
        return self._get(kind, project, scope, params[kind])

    def _get(self, kind: str, project: str, scope: str, name: str) -> JsonDict:
        resources, collection, scope_kind = self._collection(kind)
        try:
            return copy.deepcopy(resources[(project, scope, name)])
        except KeyError:
            path = f"projects/{project}/{_scope_path(scope_kind, scope)}/{collection}/{name}"
            raise not_found(path) from None

    def _collection(self, kind: str) -> tuple[dict[tuple[str, str, str], JsonDict], str, str]:
        """(resources, collection name, scope kind) of a kind in `_RESOURCES`."""
        model = self._model
        return {
            "instance": (model.instances, "instances", "zones"),
            "address": (model.addresses, "addresses", "regions"),
            "subnetwork": (model.subnetworks, "subnetworks", "regions"),
            "route": (model.vpc.routes, "routes", "global"),
            "forwardingRule": (model.vpc.forwarding_rules, "forwardingRules", "regions"),
            "targetInstance": (model.vpc.target_instances, "targetInstances", "zones"),
        }[kind]

    def _scoped_list(self, kind: str, project: str, scope: str, filter_text: str) -> JsonDict:
        """`*.list` in a zone, a region or (routes) the project."""
        resources, collection, scope_kind = self._collection(kind)
        predicate = parse_filter(filter_text)
        items = [
            copy.deepcopy(resource)
            for (p, s, _), resource in resources.items()
            if (p, s) == (project, scope) and predicate(resource)
        ]
        path = f"projects/{project}/{_scope_path(scope_kind, scope)}/{collection}"
        return list_body(f"compute#{kind}List", path, items)

    def _aggregated_list(self, kind: str, project: str, filter_text: str) -> JsonDict:
        """`aggregatedList`: items keyed by `zones/Z` or `regions/R`; a zone down is unreachable."""
        resources, collection, scope_kind = self._collection(kind)
        predicate = parse_filter(filter_text)
        items: dict[str, JsonDict] = {}
        unreachable: set[str] = set()
        for (p, scope, _), resource in sorted(resources.items()):
            if p != project:
                continue
            if scope in self._zones_down:
                unreachable.add(f"{scope_kind}/{scope}")
            elif predicate(resource):
                entry = items.setdefault(f"{scope_kind}/{scope}", {collection: []})
                entry[collection].append(copy.deepcopy(resource))
        path = f"projects/{project}/aggregated/{collection}"
        return list_body(f"compute#{kind}AggregatedList", path, items, unreachable)

    def _operation_list(self, params: dict[str, str], filter_text: str) -> JsonDict:
        project, zone = params["project"], params["zone"]
        predicate = parse_filter(filter_text)
        items = [
            copy.deepcopy(op) for op in self._operations.in_zone(project, zone) if predicate(op)
        ]
        return list_body(
            "compute#operationList", f"projects/{project}/zones/{zone}/operations", items
        )

    def _zone_list(self, project: str, filter_text: str) -> JsonDict:
        predicate = parse_filter(filter_text)
        zones = [_zone_resource(project, z) for z in self._model.zones(project)]
        items = [z for z in zones if predicate(z)]
        return list_body("compute#zoneList", f"projects/{project}/zones", items)

    def _zone(self, project: str, zone: str) -> JsonDict:
        if zone not in self._model.zones(project):
            raise not_found(f"projects/{project}/zones/{zone}")
        return _zone_resource(project, zone)

    def _test_permissions(self, method_id: str, params: dict[str, str], body: Any) -> JsonDict:
        """The requested permissions the caller holds on an existing resource.

        Stricter than GCE may be: a permission of another resource type is a 400, so a check
        that asks the wrong resource fails here rather than passing vacuously.
        """
        _, collection, _ = method_id.split(".")
        kind, scope_param = _RESOURCES[collection]
        self._get(kind, params["project"], params[scope_param], params["resource"])
        wanted = body.get("permissions") if isinstance(body, dict) else None
        if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
            raise ApiError(400, "invalid", "Invalid value for field 'permissions'.")
        prefix = f"compute.{collection}."
        for permission in wanted:
            if not permission.startswith(prefix):
                raise ApiError(
                    400, "invalid", f"Permission {permission} is not valid for this resource."
                )
        granted = [p for p in wanted if p not in self._denied]
        return {"permissions": granted} if granted else {}

    # ---- mutations -----------------------------------------------------------------------------

    def _mutate(
        self,
        method_id: str,
        params: dict[str, str],
        arg: Callable[[str], str | None],
        body: Any,
    ) -> JsonDict:
        project = params["project"]
        request_id = arg("requestId")
        replayed = self._operations.replay(project, request_id)
        if replayed is not None:
            return replayed
        if method_id == "compute.routes.insert":
            plan = self._vpc.plan_insert_route(project, body)
        elif method_id == "compute.routes.delete":
            plan = self._vpc.plan_delete_route(project, params["route"])
        elif method_id == "compute.forwardingRules.setTarget":
            rule = (project, params["region"], params["forwardingRule"])
            plan = self._vpc.plan_set_target(rule, body)
        else:
            key: InstanceKey = (project, params["zone"], params["instance"])
            plan = self._plan(method_id, key, arg, body)
        return self._operations.start(method_id, plan, request_id)

    def _plan(
        self, method_id: str, key: InstanceKey, arg: Callable[[str], str | None], body: Any
    ) -> Plan:
        model = self._model
        nic_name = arg("networkInterface")
        if method_id == "compute.instances.updateNetworkInterface":
            plan, new_aliases = model.plan_update_network_interface(key, nic_name, body)
            if new_aliases and self._alias_conflict_mode == "http":
                self._refuse_alias_in_use(key, nic_name, new_aliases)
            return plan
        if method_id == "compute.instances.addAccessConfig":
            return model.plan_add_access_config(key, nic_name, body)
        if method_id == "compute.instances.deleteAccessConfig":
            return model.plan_delete_access_config(key, nic_name, arg("accessConfig"))
        if method_id == "compute.instances.setLabels":
            return model.plan_set_labels(key, body)
        raise ApiError(404, "notFound", f"Method {method_id} is not served.")  # pragma: no cover

    def _refuse_alias_in_use(
        self, key: InstanceKey, nic_name: str | None, aliases: list[JsonDict]
    ) -> None:
        """`alias_conflict_mode="http"`: the in-use alias is a 400 on the request itself."""
        nic = self._model.find_nic(self._model.get_instance(*key), nic_name)
        conflict = self._model.alias_conflict(key, nic.get("network", ""), aliases)
        if conflict is not None:
            raise ApiError(400, "IP_IN_USE_BY_ANOTHER_RESOURCE", ip_in_use(conflict))
