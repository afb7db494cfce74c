"""What the Compute API's failures mean to us: each answer mapped onto `errors` by GCE's `reason`.

The gateway (`compute.py`) calls `map_api_error` for every exception a call raises and
`operation_error` for a finished operation's error, and nowhere else is a foreign error
classified. `ApiUnavailable` means "may clear": retried in the call, then redelivered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import (
    AddressInUse,
    AlreadyExists,
    ApiUnavailable,
    Conflict,
    FingerprintRace,
    MirrorVipError,
    NotFound,
    OperationFailed,
    RequestRefused,
)

ONE_ACCESS_CONFIG = "At most one access config"
"""GCE's 400 when a NIC already has its one access config (a concurrent attach, here)."""
IN_USE_TEXT = "already being used by another resource"
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "resourceNotReady"})
"""Reasons of 403/400 answers that clear by themselves: rate quotas, an instance restarting."""


def is_retryable_status(code: int | None) -> bool:
    return code == 429 or (code is not None and code >= 500)


@dataclass
class HttpError(Exception):
    """An error answer of the API: its status, message and GCE's `reason`s."""

    status: int
    message: str
    reasons: frozenset[str]

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"


def http_error(status: int, text: str) -> HttpError:
    """Parse Google's error body (`{"error": {"message", "errors": [{"reason"}]}}`), or not."""
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return HttpError(status, text[:200] or "no body", frozenset())
    items = error.get("errors")
    if not isinstance(items, list):
        items = []
    reasons = {str(e["reason"]) for e in items if isinstance(e, dict) and e.get("reason")}
    return HttpError(status, str(error.get("message", "")), frozenset(reasons))


def _map_http_error(method_id: str, err: HttpError) -> MirrorVipError:
    """An HTTP error answer, classified by GCE's `reason` as much as by its status."""
    text = f"{method_id}: {err}"
    if err.status == 412:
        return FingerprintRace(f"{method_id}: fingerprint changed ({err})")
    if is_retryable_status(err.status) or err.reasons & TRANSIENT_REASONS:
        return ApiUnavailable(f"{text} ({', '.join(sorted(err.reasons)) or 'transient'})")
    if IN_USE_TEXT in err.message or AddressInUse.code in err.reasons:
        return AddressInUse(f"{AddressInUse.code}: {err.message}")
    if ONE_ACCESS_CONFIG in err.message:
        return Conflict(text)
    by_status: dict[int, type[RequestRefused] | type[AlreadyExists]] = {
        404: NotFound,
        409: AlreadyExists,
    }
    return by_status.get(err.status, RequestRefused)(text)


def map_api_error(method_id: str, err: Exception) -> MirrorVipError | None:
    """Our error for a foreign one raised by a call, or None when it is not an API failure.

    `ApiUnavailable` means "may clear": the caller retries it in place, then asks for a
    redelivery. Everything else is raised at once.
    """
    from google.auth import exceptions as auth_exc  # noqa: PLC0415
    from requests import exceptions as rexc  # noqa: PLC0415

    if isinstance(err, HttpError):
        return _map_http_error(method_id, err)
    if isinstance(err, rexc.ConnectionError | rexc.Timeout):
        return ApiUnavailable(f"{method_id}: {type(err).__name__}: {err}")
    if isinstance(err, auth_exc.TransportError | auth_exc.RefreshError):
        return ApiUnavailable(f"{method_id}: credentials: {type(err).__name__}: {err}")
    if isinstance(err, ValueError):
        # requests' JSONDecodeError is a ValueError: an HTML error page from a proxy, say.
        return ApiUnavailable(f"{method_id}: answer is not the API's JSON: {err}"[:300])
    return None


def operation_error(name: str, code: str, message: str) -> MirrorVipError:
    """A failed operation's error, in the same classes as the request-time answers: where GCE
    reports a conflict (in the answer or in the operation) does not matter."""
    if code == AddressInUse.code:
        return AddressInUse(f"{code}: {message}")
    if code == "CONDITION_NOT_MET":
        return FingerprintRace(f"operation {name}: {code}: {message}")
    if ONE_ACCESS_CONFIG in message:
        return Conflict(f"operation {name}: {code}: {message}")
    return OperationFailed(code, message or "operation failed")
