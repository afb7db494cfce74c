"""Errors are classified by what GCE says, and every failure ends in one outcome line.

A 403 is not always "permission denied": GCE answers a rate quota with 403
`rateLimitExceeded`, and a restarting instance with 400 `resourceNotReady`. Both clear by
themselves, so they are retried in the call and then redelivered, never acknowledged as
permanent. Whatever else goes wrong (credentials, a garbled answer, a bug), the function logs one
`failed` line and asks for a redelivery instead of dying with a bare HTTP 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from support import mirrors
from support.compute_view import UPDATE_NIC, aliases, assert_vip_on, mutation_count
from support.events import became_primary, cloud_event
from support.function_app import FunctionUnderTest
from vipmover.compute import RETRY_ATTEMPTS, ComputeGateway
from vipmover.config import parse_config
from vipmover.handler import App, handle

pytestmark = pytest.mark.integration

TRANSIENT = [
    (403, "rateLimitExceeded", "Rate Limit Exceeded"),
    (403, "userRateLimitExceeded", "Quota exceeded for quota metric 'Queries'."),
    (400, "resourceNotReady", "The resource 'isc-primary-001' is not ready"),
]


@pytest.mark.parametrize(("code", "reason", "message"), TRANSIENT, ids=[r for _, r, _ in TRANSIENT])
def test_transient_reasons_are_retried_in_the_call(
    compute: ComputeEmulator, function: FunctionUnderTest, code: int, reason: str, message: str
) -> None:
    compute.fail_next("compute.instances.get", count=2, code=code, reason=reason, message=message)
    compute.fail_next(UPDATE_NIC, count=1, code=code, reason=reason, message=message)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "moved"
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


@pytest.mark.parametrize(("code", "reason", "message"), TRANSIENT, ids=[r for _, r, _ in TRANSIENT])
def test_transient_reasons_that_last_ask_for_redelivery(
    compute: ComputeEmulator, function: FunctionUnderTest, code: int, reason: str, message: str
) -> None:
    """A rate quota that outlasts the in-call retries: redelivered, never acknowledged."""
    compute.fail_next(UPDATE_NIC, count=RETRY_ATTEMPTS, code=code, reason=reason, message=message)
    event = cloud_event(became_primary(mirrors.backup()))

    failed = function.deliver(event)

    failed.assert_failed("ApiUnavailable", retry=True)
    assert reason in failed.outcome["error"]
    assert mirrors.VIP in aliases(compute, mirrors.primary())

    redelivered = function.deliver(event)

    assert redelivered.outcome["outcome"] == "moved"
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_a_real_permission_denial_is_permanent(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    """403 `forbidden` will not clear by redelivery: logged, acknowledged, alerted."""
    compute.fail_next(
        UPDATE_NIC,
        code=403,
        reason="forbidden",
        message="Required 'compute.instances.updateNetworkInterface' permission",
    )

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    delivery.assert_failed("RequestRefused", retry=False)


def test_a_fingerprint_race_on_an_access_config_call_is_one_retryable_line(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    """A 412 on addAccessConfig used to escape as a foreign exception: HTTP 500, no line."""
    compute.fail_next("compute.instances.addAccessConfig", count=100, code=412)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))  # one line

    delivery.assert_failed("FingerprintRace", retry=True)


def stale_fingerprint_twice(compute: ComputeEmulator) -> None:
    compute.fail_next(UPDATE_NIC, count=2, code=412)


def throttled_then_unavailable(compute: ComputeEmulator) -> None:
    compute.fail_next("compute.instances.get", count=2, code=429)
    compute.fail_next(UPDATE_NIC, count=1, code=503)
    compute.fail_next("compute.zoneOperations.wait", count=1, code=500)


def garbled_answers(compute: ComputeEmulator) -> None:
    compute.garble_next("compute.instances.get", count=1)
    compute.garble_next(UPDATE_NIC, count=1)


@pytest.mark.parametrize(
    "inject",
    [stale_fingerprint_twice, throttled_then_unavailable, garbled_answers],
    ids=lambda inject: inject.__name__,
)
def test_faults_that_pass_are_retried_in_the_call(
    compute: ComputeEmulator, function: FunctionUnderTest, inject: Callable[[ComputeEmulator], None]
) -> None:
    """412 races, 429/5xx and non-JSON answers that clear within the retries: one delivery."""
    inject(compute)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "moved"
    assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_a_garbled_answer_that_lasts_is_one_retryable_line(
    compute: ComputeEmulator, function: FunctionUnderTest
) -> None:
    compute.garble_next(UPDATE_NIC, count=RETRY_ATTEMPTS)

    delivery = function.deliver(cloud_event(became_primary(mirrors.backup())))

    delivery.assert_failed("ApiUnavailable", retry=True)
    assert "not the API's JSON" in delivery.outcome["error"]
    assert mirrors.VIP in aliases(compute, mirrors.primary())


class _FailingCredentials(Credentials):
    """Credentials whose refresh fails the way it can on Cloud Run."""

    def __init__(self, error: Exception) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._error = error

    def refresh(self, request: Any) -> None:  # noqa: ARG002 - the transport is never reached
        raise self._error


UNREACHABLE = auth_exceptions.TransportError("metadata server unreachable")  # type: ignore[no-untyped-call]
DISABLED = auth_exceptions.RefreshError("invalid_grant: account disabled")  # type: ignore[no-untyped-call]
CREDENTIAL_FAILURES = [
    (UNREACHABLE, "ApiUnavailable"),
    (DISABLED, "ApiUnavailable"),
    (RuntimeError("a bug nobody foresaw"), "RuntimeError"),
]


@pytest.mark.parametrize(
    ("error", "reason"),
    CREDENTIAL_FAILURES,
    ids=[type(error).__name__ for error, _ in CREDENTIAL_FAILURES],
)
def test_credential_failures_and_anything_unforeseen_ask_for_redelivery(
    compute: ComputeEmulator, error: Exception, reason: str
) -> None:
    gateway = ComputeGateway(compute.url, credentials=_FailingCredentials(error))
    app = App(parse_config(mirrors.config()), gateway)

    outcome = handle(app, "m-1", cloud_event(became_primary(mirrors.backup())).data)

    assert outcome.outcome == "failed"
    assert outcome.retry is True
    assert outcome.error_reason == reason
    assert mutation_count(compute) == 0


@pytest.mark.parametrize("mode", ["operation", "http"])
def test_vip_held_outside_the_mirror_is_retryable_and_says_who_may_hold_it(
    start_function: FunctionFactory, compute: ComputeEmulator, mode: str
) -> None:
    """GCE reports "already being used" on the request or in the operation: same handling."""
    stranger = mirrors.backup(
        name="someone-else-001", network_ip="10.0.0.99", aliases=(mirrors.VIP,)
    )
    primary, backup = mirrors.primary(aliases=(), nat_ip=None), mirrors.backup()
    compute.load_state(mirrors.state(primary, backup, stranger, public=False))
    compute.set_alias_conflict_mode("http" if mode == "http" else "operation")
    function = start_function(
        mirrors.config(mirrors.mirror_config([primary, backup], public=False))
    )

    delivery = function.deliver(cloud_event(became_primary(backup)))

    delivery.assert_failed("AddressInUse", retry=True)
    assert "IP_IN_USE_BY_ANOTHER_RESOURCE" in delivery.outcome["error"]
    assert "a resource outside mirror IRISMIRROR" in delivery.outcome["error"]
    assert aliases(compute, backup) == []
