"""Operations (zonal, regional, global): one per accepted mutation, applied when due, and the
`requestId`s naming them.

A mutation's `Plan` (see `resources`) is applied when its operation finishes: at once with latency
0, else the operation is PENDING for half the latency, RUNNING for the other half, then applies
and is DONE. Operations and requestIds are never forgotten (GCE keeps requestIds at least 60
minutes). All methods run under the emulator's lock, which they share through `lock`.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from emulators import JsonDict
from emulators.compute.errors import HTTP_STATUS_TEXT, OperationFailure, not_found
from emulators.compute.resources import Plan
from emulators.compute.urls import scope_url
from emulators.rfc3339 import format_rfc3339

OPERATION_USER = "emulator@compute-emulator.invalid"

OperationKey = tuple[str, str, str]
"""(project, scope, operation name); the scope is a zone name, `regions/R` or `global`."""


class _Countdown(Protocol):
    remaining: int


FaultT = TypeVar("FaultT", bound=_Countdown)


def take_fault(
    queue: list[FaultT] | None, matches: Callable[[FaultT], bool] = lambda _: True
) -> FaultT | None:
    """The first matching injected fault of a queue, dropped once it fired `remaining` times."""
    fault = next((f for f in queue or () if matches(f)), None)
    if fault is None or queue is None:
        return None
    fault.remaining -= 1
    if fault.remaining <= 0:
        queue.remove(fault)
    return fault


@dataclass
class _InjectedOperationFault:
    remaining: int
    error_code: str | None
    """None: the operation ends DONE without error but applies nothing."""
    message: str
    instance: str | None = None
    """Only operations on this instance; None: any."""


@dataclass
class Operation:
    resource: JsonDict
    plan: Plan | None
    failure: OperationFailure | None = None


def operation_name() -> str:
    """`operation-<epoch ms>-<13 hex>-<8 hex>-<8 hex>`, the shape GCE uses."""
    millis = int(time.time() * 1000)
    first, second, third = secrets.token_hex(7)[:13], secrets.token_hex(4), secrets.token_hex(4)
    return f"operation-{millis}-{first}-{second}-{third}"


def _now() -> str:
    return format_rfc3339(zulu=False)


def new_operation(plan: Plan) -> JsonDict:
    """A PENDING `compute#operation` for a plan, as the mutation's response shows it."""
    project, scope, _ = plan.target
    name = operation_name()
    where: JsonDict = {}
    if scope.startswith("regions/"):
        where["region"] = scope_url(project, scope)
    elif scope != "global":
        where["zone"] = scope_url(project, scope)
    return {
        "kind": "compute#operation",
        "id": str(random.randrange(10**18, 10**19)),  # noqa: S311 - ids, not secrets
        "name": name,
        **where,
        "operationType": plan.operation_type,
        "targetLink": plan.target_link,
        "targetId": plan.target_id,
        "status": "PENDING",
        "user": OPERATION_USER,
        "progress": 0,
        "insertTime": _now(),
        "selfLink": f"{scope_url(project, scope)}/operations/{name}",
    }


class Operations:
    """Every operation, the requestIds that name them, and the schedule that finishes them."""

    def __init__(self, lock: threading.Condition, default_latency: float) -> None:
        self._lock = lock
        self.default_latency = default_latency
        self.latencies: dict[str, float] = {}
        self._operations: dict[OperationKey, Operation] = {}
        self._request_ids: dict[tuple[str, str], OperationKey] = {}
        self._faults: dict[str, list[_InjectedOperationFault]] = {}
        self._schedule: list[tuple[float, int, str, OperationKey]] = []
        self._sequence = itertools.count()
        self.stopping = False

    def fail_next(
        self,
        method_id: str,
        count: int,
        error_code: str | None,
        message: str,
        instance: str | None = None,
    ) -> None:
        self._faults.setdefault(method_id, []).append(
            _InjectedOperationFault(count, error_code, message, instance)
        )

    def replay(self, project: str, request_id: str | None) -> JsonDict | None:
        """The operation a repeated `requestId` already started, if any."""
        seen = self._request_ids.get((project, request_id)) if request_id else None
        return None if seen is None else copy.deepcopy(self._operations[seen].resource)

    def start(self, method_id: str, plan: Plan, request_id: str | None) -> JsonDict:
        """Create the operation, schedule (or apply) it; returns the response body."""
        resource = new_operation(plan)
        key: OperationKey = (plan.target[0], plan.target[1], resource["name"])
        fault = take_fault(
            self._faults.get(method_id), lambda f: f.instance in {None, plan.target[2]}
        )
        failure = None
        if fault is not None and fault.error_code is None:
            plan = dataclasses.replace(plan, apply=lambda: None)
        elif fault is not None and fault.error_code is not None:
            status = 500 if fault.error_code == "INTERNAL_ERROR" else 400
            failure = OperationFailure(fault.error_code, fault.message, status)
        self._operations[key] = Operation(resource, plan, failure)
        if request_id:
            self._request_ids[(plan.target[0], request_id)] = key
        latency = self.latencies.get(method_id, self.default_latency)
        if latency <= 0:
            self._finish(key)
        else:
            due = time.monotonic()
            heapq.heappush(self._schedule, (due + latency / 2, next(self._sequence), "run", key))
            heapq.heappush(self._schedule, (due + latency, next(self._sequence), "done", key))
            self._lock.notify_all()
        return copy.deepcopy(resource)

    def _finish(self, key: OperationKey) -> None:
        """Apply the plan (or the injected failure) and mark the operation DONE."""
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
        now = _now()
        resource.setdefault("startTime", now)
        resource.update(status="DONE", progress=100, endTime=now)
        if failure is not None:
            resource["error"] = {"errors": [{"code": failure.code, "message": failure.message}]}
            resource["httpErrorStatusCode"] = failure.http_status
            resource["httpErrorMessage"] = HTTP_STATUS_TEXT.get(failure.http_status, "ERROR")
        self._lock.notify_all()

    def run_schedule(self) -> None:
        """Advance delayed operations at their due times until `stopping`; never polls."""
        with self._lock:
            while not self.stopping:
                if not self._schedule:
                    self._lock.wait()
                    continue
                due, _, step, key = self._schedule[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._lock.wait(timeout=delay)
                    continue
                heapq.heappop(self._schedule)
                if step == "run":
                    resource = self._operations[key].resource
                    if resource["status"] == "PENDING":
                        resource.update(status="RUNNING", progress=50, startTime=_now())
                else:
                    self._finish(key)

    def get(self, key: OperationKey) -> Operation:
        try:
            return self._operations[key]
        except KeyError:
            project, scope, name = key
            where = scope if scope == "global" or "/" in scope else f"zones/{scope}"
            raise not_found(f"projects/{project}/{where}/operations/{name}") from None

    def wait(self, key: OperationKey, max_seconds: float) -> JsonDict:
        """Long-poll until DONE, `stopping` or `max_seconds`, like `*Operations.wait`."""
        with self._lock:
            operation = self.get(key)
            self._lock.wait_for(
                lambda: operation.resource["status"] == "DONE" or self.stopping,
                timeout=max_seconds,
            )
            return copy.deepcopy(operation.resource)

    def in_zone(self, project: str, zone: str) -> list[JsonDict]:
        return [
            op.resource for (p, z, _), op in self._operations.items() if (p, z) == (project, zone)
        ]

    def all(self) -> list[JsonDict]:
        """Every operation, oldest first (deep copies)."""
        return [copy.deepcopy(op.resource) for op in self._operations.values()]
