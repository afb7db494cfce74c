"""Errors of the VIP mover, split by what Pub/Sub should do with the event.

MirrorVipError
├── PermanentError        redelivery cannot help: log, acknowledge, never retry
│   ├── ConfigError       the mirror configuration is invalid (raised at start-up)
│   ├── EventRejected     the event is malformed, unknown or not allowed
│   └── RequestRefused    the Compute API refused a request as invalid (400, 403, 404)
└── RetryableError        redelivery may succeed: raise, so Pub/Sub redelivers
    ├── ApiUnavailable    429, 5xx, connection errors and timeouts of one call
    ├── OperationFailed   an operation finished with an error
    ├── OperationTimeout  an operation did not finish before its deadline
    ├── FingerprintRace   412 kept happening: someone else keeps changing the NIC
    ├── Conflict          a concurrent change got there first (e.g. the NIC's one access config)
    ├── NotConverged      the state read back after the move is not the desired one
    └── IdentityUnavailable  the signing certs to verify identity tokens could not be fetched
"""

from __future__ import annotations


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


class NotConverged(RetryableError):
    """After the move, the state read back is not what was planned."""


class IdentityUnavailable(RetryableError):
    """Google's signing certs could not be fetched, so no identity token can be judged yet."""
