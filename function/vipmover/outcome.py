"""The one structured log line per event, and the logger that writes it.

Cloud Logging parses each JSON line on stdout into `jsonPayload`, taking `severity` and
`message` as the entry's own; the log-based metrics, dashboard and alerts in `deploy/gcp/` read
the fields below, so renaming one is a breaking change (a test checks every field they reference
against `LOG_FIELDS`). The line is written by `JsonLineHandler`, not google-cloud-logging's
`StructuredLogHandler`: importing that library costs about 0.8 s of every cold start, and a test
checks that both write the same fields.
"""

from __future__ import annotations

import json
import logging
import sys
import unicodedata
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
UNKNOWN = "unknown"
"""`mirror`/`member` until the event matches the configuration: labels of metrics and alerts
can then only take configured values, whatever a sender writes."""
CLAIMED_CHARS = 80


def clean(text: str) -> str:
    """The text without control, format (bidi overrides, zero-width) or unassigned characters:
    a sender's string must not forge lines, reorder what a reader sees, or hide text."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cn", "Co"))


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {clean(str(key)): _cleaned(item) for key, item in value.items()}
    return value


@dataclass
class Outcome:
    """Everything an SRE needs to know about one event, as one log line."""

    event_id: str
    outcome: OutcomeName = "failed"
    event_type: str | None = None
    mirror: str | None = None
    """The configured mirror's name, `unknown` until the event matched one."""
    member: str | None = None
    """The configured member's instance name, `unknown` until the event matched one."""
    claimed: str | None = None
    """What the event claimed (`mirror/member`), cleaned and cut to 80 characters."""
    from_instance: str | None = None
    to_instance: str | None = None
    vip: str | None = None
    mode: str | None = None
    """`alias` or `route`: how the mirror's VIP follows its primary."""
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
    alerts: list[str] = field(default_factory=list)
    """Safeguards that refused the event or saw something impossible (`holder_still_primary`,
    `takeover_limit`, `token_replayed`, `future_mark:<member>`...): the line logs at ERROR."""
    from_member: bool = False
    """The event named a configured member of a configured mirror: its rejection may be a
    lost failover (a missing identity token, say), so it is logged at ERROR and alerts."""
    component: str = COMPONENT

    def severity(self) -> int:
        """INFO for success, WARNING for noise, ERROR for what may leave the VIP behind."""
        routine = self.error_reason in ROUTINE_REJECTIONS
        if self.alerts or (self.outcome == "rejected" and self.from_member and not routine):
            return logging.ERROR
        return SEVERITY[self.outcome]

    def message(self) -> str:
        mirror = self.mirror or "?"
        if self.outcome == "moved":
            source = f" from {self.from_instance}" if self.from_instance else " (no holder before)"
            return f"{mirror}: VIP {self.vip} moved{source} to {self.to_instance}"
        if self.outcome == "already_in_place":
            return f"{mirror}: VIP {self.vip} already on {self.to_instance}"
        if self.outcome == "rejected":
            return f"{mirror}: event rejected: {self.error}"
        return f"{mirror}: VIP move to {self.to_instance} failed: {self.error}"

    def fields(self) -> dict[str, Any]:
        """Every field, strings cleaned (`clean`)."""
        cleaned: dict[str, Any] = _cleaned(asdict(self))
        return cleaned


LOG_FIELDS: frozenset[str] = frozenset(Outcome.__dataclass_fields__) | {"message", "severity"}


class JsonLineHandler(logging.Handler):
    """One JSON object per record on whatever `sys.stdout` is now, as Cloud Logging reads it.

    `extra={"json_fields": {...}}` puts fields at the top level of the line (so in
    `jsonPayload`), as google-cloud-logging's `StructuredLogHandler` does.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = getattr(record, "json_fields", None) or {}
            line = {
                **fields,
                "message": record.getMessage(),
                "severity": record.levelname,
                "logging.googleapis.com/labels": {"python_logger": record.name},
                "logging.googleapis.com/sourceLocation": {
                    "file": record.pathname,
                    "line": record.lineno,
                    "function": record.funcName,
                },
            }
            sys.stdout.write(json.dumps(line, default=str) + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the handler
            self.handleError(record)


def outcome_logger() -> logging.Logger:
    """The logger whose records become structured JSON lines on stdout (set up once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        logger.addHandler(JsonLineHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def log_outcome(outcome: Outcome) -> None:
    """Write the event's one outcome line."""
    outcome_logger().log(
        outcome.severity(), clean(outcome.message()), extra={"json_fields": outcome.fields()}
    )
