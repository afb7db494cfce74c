"""Errors of the VIP mover, split by what Pub/Sub should do with the event.

MirrorVipError
├── PermanentError        redelivery cannot help: log, acknowledge, never retry
│   ├── ConfigError       the mirror configuration is invalid (raised at start-up)
│   ├── EventRejected     the event is malformed, unknown or not allowed
│   ├── RequestRefused    the Compute API refused a request as invalid (400, 403, 404)
│   │   └── NotFound      404: the resource does not exist (a route already deleted, say)
│   └── PublicIpRefused   the private VIP moved; the static IP cannot follow (config, a non-member)
└── RetryableError        redelivery may succeed: raise, so Pub/Sub redelivers
    ├── ApiUnavailable    429, 5xx, rate quotas, resourceNotReady, network, auth and garbled answers
    ├── OperationFailed   an operation finished with an error
    ├── OperationTimeout  an operation did not finish before its deadline
    ├── FingerprintRace   412 kept happening: someone else keeps changing the NIC or labels
    ├── Conflict          a concurrent change got there first (e.g. the NIC's one access config)
    │   ├── AddressInUse  GCE says the VIP is used by another resource (HTTP 400 or operation error)
    │   └── AlreadyExists 409: a resource of that name exists (a concurrent route insert)
    ├── NotConverged      the state read back after the move is not the desired one
    ├── PublicIpUnavailable  the private VIP moved; the static IP failed in a way that may clear
    └── IdentityUnavailable  the signing certs to verify identity tokens could not be fetched

Whether an API answer is transient is decided by GCE's `reason`, not by the HTTP status alone:
a 403 `rateLimitExceeded` is a rate quota, not a missing permission.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class MirrorVipError(Exception):
    """Base of every error the mover raises on purpose."""


class PermanentError(MirrorVipError):
    """The same event will fail the same way: acknowledge it."""


class ConfigError(PermanentError):
    """The mirror configuration is invalid; the message names the field."""


class EventRejected(PermanentError):
    """The event cannot be acted on. `reason` is a short machine-readable code for dashboards."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RequestRefused(PermanentError):
    """The Compute API answered 4xx (other than 412 and 429): fix the config or IAM."""


class NotFound(RequestRefused):
    """The Compute API answered 404: the named resource does not exist."""


class PublicIpRefused(PermanentError):
    """The private VIP is in place, but the static public IP cannot be moved by redelivery."""


class RetryableError(MirrorVipError):
    """A later delivery of the same event may succeed."""


class ApiUnavailable(RetryableError):
    """A Compute API call failed in a way that may clear (429, 5xx, network)."""


class OperationFailed(RetryableError):
    """A Compute operation finished with an error (for example IP_IN_USE_BY_ANOTHER_RESOURCE)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class OperationTimeout(RetryableError):
    """A Compute operation was still running at its deadline."""


class FingerprintRace(RetryableError):
    """The NIC's fingerprint changed under us on every attempt."""


class Conflict(RetryableError):
    """The API refused a change because a concurrent one got there first."""


class AddressInUse(Conflict):
    """GCE refused the VIP because another resource still holds it.

    `IP_IN_USE_BY_ANOTHER_RESOURCE`, reported either on the request (HTTP 400) or in the
    finished operation; both mean the same.
    """

    code = "IP_IN_USE_BY_ANOTHER_RESOURCE"


class AlreadyExists(Conflict):
    """The Compute API answered 409: a resource of that name exists already."""


class NotConverged(RetryableError):
    """After the move, the state read back is not what was planned."""


class PublicIpUnavailable(RetryableError):
    """The private VIP is in place; the static public IP failed in a way a redelivery may fix."""


def public_ip_failure(cause: MirrorVipError, vip_note: str) -> MirrorVipError:
    """Report a public-IP failure after the private VIP moved, keeping the cause's retry class."""
    message = f"{vip_note}; static public IP not moved: {cause}"
    if isinstance(cause, RetryableError):
        return PublicIpUnavailable(message)
    return PublicIpRefused(message)


class IdentityUnavailable(RetryableError):
    """Google's signing certs could not be fetched, so no identity token can be judged yet."""


def kept(read: Callable[[], T]) -> T | MirrorVipError:
    """Run a read, returning its error instead of raising it: whether it matters is decided
    later (a forwarding rule must not block the VIP, an unreadable holder does not block)."""
    try:
        return read()
    except MirrorVipError as err:
        return err
