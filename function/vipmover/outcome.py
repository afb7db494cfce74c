"""The one structured log line per event, and the logger that writes it.

Cloud Logging parses each JSON line on stdout into `jsonPayload`; the log-based metrics,
dashboard and alerts in `deploy/gcp/` read the fields below, so renaming one is a breaking change
(a test checks every field they reference against `LOG_FIELDS`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

OutcomeName = Literal["moved", "already_in_place", "rejected", "failed"]
SEVERITY: dict[str, int] = {
    "moved": logging.INFO,
    "already_in_place": logging.INFO,
    "rejected": logging.WARNING,
    "failed": logging.ERROR,
}
ROUTINE_REJECTIONS = frozenset({"stale_event", "stale_heartbeat"})
"""Rejections of a member's event that are the ordering guard at work, not a lost failover."""
LOGGER_NAME = "mirror_vip"
COMPONENT = "mirror-vip"


@dataclass
class Outcome:
    """Everything an SRE needs to know about one event, as one log line."""

    event_id: str
    outcome: OutcomeName = "failed"
    event_type: str | None = None
    mirror: str | None = None
    member: str | None = None
    from_instance: str | None = None
    to_instance: str | None = None
    vip: str | None = None
    public_ip: str | None = None
    actions: list[str] = field(default_factory=list)
    steps_ms: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Best-effort writes that failed without failing the move (e.g. a mark copy)."""
    duration_ms: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None
    """Short code for dashboards: an EventRejected reason or the error's class name."""
    retry: bool = False
    """True when the function raised so that Pub/Sub redelivers the event."""
    publish_time: str | None = None
    occurred_at: str | None = None
    identity: Literal["verified", "not_required"] | None = None
    """Whether the sender's identity token was verified; None when rejected before or by it."""
    from_member: bool = False
    """The event named a configured member of a configured mirror: its rejection may be a
    lost failover (a missing identity token, say), so it is logged at ERROR and alerts."""
    component: str = COMPONENT

    def severity(self) -> int:
        """INFO for success, WARNING for noise, ERROR for what may leave the VIP behind."""
        routine = self.error_reason in ROUTINE_REJECTIONS
        if self.outcome == "rejected" and self.from_member and not routine:
            return logging.ERROR
        return SEVERITY[self.outcome]

    def message(self) -> str:
        mirror = self.mirror or "?"
        if self.outcome == "moved":
            return f"{mirror}: VIP {self.vip} moved from {self.from_instance} to {self.to_instance}"
        if self.outcome == "already_in_place":
            return f"{mirror}: VIP {self.vip} already on {self.to_instance}"
        if self.outcome == "rejected":
            return f"{mirror}: event rejected: {self.error}"
        return f"{mirror}: VIP move to {self.to_instance} failed: {self.error}"

    def fields(self) -> dict[str, Any]:
        return asdict(self)


LOG_FIELDS: frozenset[str] = frozenset(Outcome.__dataclass_fields__) | {"message", "severity"}


class _CurrentStdout:
    """Write to whatever `sys.stdout` is now (test capture and the local stack redirect it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def outcome_logger() -> logging.Logger:
    """The logger whose records become structured JSON lines on stdout (set up once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        from google.cloud.logging.handlers import StructuredLogHandler  # noqa: PLC0415

        handler = StructuredLogHandler(stream=_CurrentStdout())  # type: ignore[no-untyped-call]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def log_outcome(outcome: Outcome) -> None:
    """Write the event's one outcome line."""
    outcome_logger().log(
        outcome.severity(), outcome.message(), extra={"json_fields": outcome.fields()}
    )
