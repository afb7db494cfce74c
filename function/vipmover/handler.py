"""Handle one Pub/Sub message: decode, authorise against the config, move, and say what happened.

`handle` never raises for a permanent problem: it returns an `Outcome` with `retry=False`, and
the entry point acknowledges. For a retryable one it returns `retry=True` and the entry point
raises, so that Pub/Sub redelivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .compute import ComputeGateway
from .config import Config, InstanceRef, MirrorConfig
from .errors import EventRejected, PermanentError, RetryableError
from .event import MirrorEvent, PubSubMessage, format_rfc3339, parse_event, unwrap_message
from .identity import CertsCache, verify_identity
from .move_run import MoveReport
from .mover import Mover
from .movers import MoveRequest, VipMover
from .outcome import CLAIMED_CHARS, UNKNOWN, Outcome
from .replay import TokenUse
from .route_mover import RouteMover
from .safeguards import EventFacts, Safeguards

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class App:
    """What stays alive between events in one function instance."""

    config: Config
    gateway: ComputeGateway
    certs: CertsCache = field(default_factory=CertsCache)
    """Google's signing certs for identity tokens, cached for this instance's lifetime."""
    safeguards: Safeguards = field(default_factory=Safeguards)
    """Corroboration, takeover limit, token replay: what stands between a token and a move."""


def handle(app: App, event_id: str, data: Any, source: str | None = None) -> Outcome:
    """Process one `messagePublished` CloudEvent's data.

    Args:
        app: Config and Compute access.
        event_id: The CloudEvent id (Pub/Sub message id; shared by redeliveries).
        data: The CloudEvent's data: `{"message": {...}, "subscription": ...}`.
        source: The CloudEvent source, `//pubsub.googleapis.com/projects/P/topics/T`.
    """
    started = time.monotonic()
    gateway = app.gateway.for_event()
    outcome = Outcome(event_id=event_id)
    report = MoveReport()

    def work() -> None:
        message = unwrap_message(data)
        event = parse_event(message.data)
        _describe(outcome, message, event)
        mirror, target = authorize(app.config, event)
        outcome.mirror, outcome.vip, outcome.from_member = mirror.name, mirror.vip, True
        outcome.member, outcome.mode = target.name, mirror.mode
        outcome.identity, token = _check_identity(app, event, message, source)
        time_ms = _event_time_ms(message, event)
        heartbeat = event.type == "heartbeat"
        mover = mover_for(mirror, gateway, app.config.operation_timeout_s)
        facts = EventFacts(target, event.instance_id, time_ms, round(time.time() * 1000), token)
        guard = app.safeguards.begin(mirror, facts)
        try:
            request = MoveRequest(mirror, target, outcome.event_id, time_ms, heartbeat, guard)
            outcome.outcome = mover.move(request, report)
        finally:
            guard.close()
            outcome.alerts, report.notes[:0] = guard.alerts, guard.notes

    return run_recorded(work, outcome, report, gateway, started)


def mover_for(
    mirror: MirrorConfig, gateway: ComputeGateway, operation_timeout_s: float
) -> VipMover:
    """The mover of the mirror's mode (shared with the operator's `mirror-vip move`)."""
    return (RouteMover if mirror.mode == "route" else Mover)(gateway, operation_timeout_s)


def run_recorded(
    work: Callable[[], None],
    outcome: Outcome,
    report: MoveReport,
    gateway: ComputeGateway,
    started: float,
) -> Outcome:
    """Run `work` (which sets `outcome.outcome`) and record in `outcome` how it ended.

    Shared with the operator's `mirror-vip move`, so that a manual move leaves the same line.
    """
    try:
        work()
    except EventRejected as err:
        outcome.outcome, outcome.error, outcome.error_reason = "rejected", str(err), err.reason
    except PermanentError as err:
        outcome.outcome, outcome.error = "failed", str(err)
        outcome.error_reason = type(err).__name__
    except RetryableError as err:
        outcome.outcome, outcome.error, outcome.retry = "failed", str(err), True
        outcome.error_reason = type(err).__name__
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, a redelivery
        # Anything unforeseen (a library's own exception, a bug) must still leave an outcome
        # line and ask for a redelivery, rather than a bare HTTP 500 that nobody sees.
        outcome.outcome, outcome.error, outcome.retry = "failed", str(err)[:500], True
        outcome.error_reason = type(err).__name__
    outcome.from_instance = outcome.from_instance or report.from_instance
    outcome.public_ip = report.public_ip
    outcome.actions = report.actions
    outcome.notes = report.notes
    outcome.steps_ms = report.steps_ms
    outcome.duration_ms = round((time.monotonic() - started) * 1000)
    outcome.api_calls = dict(gateway.calls())
    return outcome


def authorize(config: Config, event: MirrorEvent) -> tuple[MirrorConfig, InstanceRef]:
    """The configured mirror and member that the event names, or why it may not act.

    Raises:
        EventRejected: `unknown_mirror`, `wrong_project` or `not_a_member`.
    """
    mirror = config.mirror(event.mirror)
    if mirror is None:
        raise EventRejected("unknown_mirror", f"mirror {event.mirror!r} is not configured")
    if event.instance.project != mirror.project:
        raise EventRejected(
            "wrong_project",
            f"{event.instance} is not in project {mirror.project} of mirror {mirror.name}",
        )
    target = mirror.member(event.instance.project, event.instance.zone, event.instance.name)
    if target is None:
        raise EventRejected(
            "not_a_member", f"{event.instance} is not a configured member of mirror {mirror.name}"
        )
    return mirror, target


def _describe(outcome: Outcome, message: PubSubMessage, event: MirrorEvent) -> None:
    """What the event says, for the line, whatever happens next."""
    outcome.event_id = outcome.event_id or message.message_id
    if message.publish_time:
        outcome.publish_time = format_rfc3339(message.publish_time)
    outcome.event_type, outcome.mirror, outcome.member = event.type, UNKNOWN, UNKNOWN
    outcome.claimed = f"{event.mirror}/{event.member}"[:CLAIMED_CHARS]
    outcome.occurred_at = format_rfc3339(event.occurred_at)
    outcome.to_instance = str(event.instance)


def _check_identity(
    app: App, event: MirrorEvent, message: PubSubMessage, source: str | None
) -> tuple[Literal["verified", "not_required"], TokenUse | None]:
    """Whether the token was verified, and the verified token's use (for `replay`)."""
    if not app.config.identity.required:
        return "not_required", None
    claims = verify_identity(
        event.identity_token,
        event,
        config=app.config.identity,
        source=source,
        publish_time=message.publish_time,
        certs=app.certs,
    )
    return "verified", TokenUse(int(claims["iat"]), message.message_id)


def _event_time_ms(message: PubSubMessage, event: MirrorEvent) -> int:
    """Pub/Sub's publish time in whole milliseconds, truncated as the log line's times are, so
    that a redelivery compares equal."""
    published = message.publish_time or event.occurred_at
    return (published - EPOCH) // timedelta(milliseconds=1)
