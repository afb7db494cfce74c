"""The Compute API's errors: HTTP errors with Google's body, and errors inside an operation."""

from __future__ import annotations

from typing import Any

from emulators import JsonDict


class ApiError(Exception):
    """A synchronous HTTP error with the standard Google error body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        location: str | None = None,
        location_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.location = location
        self.location_type = location_type

    def body(self) -> JsonDict:
        """`{"error": {"code", "message", "errors": [...]}}` as Google APIs answer."""
        item: JsonDict = {"message": self.message, "domain": "global", "reason": self.reason}
        if self.location:
            item["location"] = self.location
            item["locationType"] = self.location_type or "parameter"
        return {"error": {"code": self.code, "message": self.message, "errors": [item]}}


class OperationFailure(Exception):
    """An error found when an operation applies; it ends up in the operation's `error`."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


HTTP_STATUS_TEXT = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    412: "PRECONDITION FAILED",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
}


def not_found(path: str) -> ApiError:
    """404 as GCE words it: `The resource 'projects/P/zones/Z/instances/N' was not found`."""
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def invalid(field: str, value: Any, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field}': '{value}'. {why}")


def required(field: str) -> ApiError:
    return ApiError(400, "required", f"Required field '{field}' not specified")


def ip_in_use(cidr: str) -> str:
    return f"IP '{cidr}' is already being used by another resource."


def unknown_field(name: str, where: str) -> ApiError:
    """What the API front end answers for a body field that the schema does not know."""
    return ApiError(
        400,
        "invalid",
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.",
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


def error_payload(code: int, reason: str | None = None, message: str | None = None) -> JsonDict:
    default_reason, default_message = DEFAULT_REASONS.get(code, ("backendError", "Error"))
    return ApiError(code, reason or default_reason, message or default_message).body()
