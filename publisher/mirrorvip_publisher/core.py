"""Announce "this member is primary": read metadata, fetch a token, publish; retry until done.

One attempt reads the instance facts, fetches the identity token and publishes within a budget
(`budget_seconds`, default 5 s), enforced twice: every step cuts its own timeouts to what is left
of a shared `Deadline`, and the attempt runs in a worker thread that the caller waits for at most
`budget + GRACE_SECONDS`, so even a step that ignores its timeout (a DNS lookup, a stuck C
extension) cannot hold the caller longer than that.

A failed attempt whose error is retryable is repeated, with backoff, until `total_seconds`
(default 60 s) have passed since the announcement started: ^ZMIRROR JOBs the announcement, so the
failover does not wait for it. With the identity token on, no event is sent without one: the
deployed function would reject and acknowledge it, and the failover would be lost while
messages.log said "published". So the token is retried like the rest, and an announcement that
never got one reports `failed: identity`.

A failed announcement is a `PublishResult` with a reason, never an exception: ^ZMIRROR only logs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import event as events
from .config import MIN_BUDGET_SECONDS, PublisherConfig, load_config
from .errors import NotPrimaryError, PublisherError
from .key_file import key_file_on_vm_warning
from .metadata import Deadline, MetadataClient, cached_instance_facts
from .pubsub import publish_message
from .watchdog import Finished, Raised, TimedOut, run_with_watchdog

# Let the steps' own timeouts report first; the watchdog is the backstop.
GRACE_SECONDS = 0.25
# Pause between failed attempts: doubles from the first to the largest.
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class PublishResult:
    """The outcome of one announcement; `str()` is the line ^ZMIRROR writes to messages.log."""

    ok: bool
    event_type: str
    mirror: str
    elapsed_seconds: float
    message_id: str | None = None
    stage: str | None = None
    reason: str | None = None
    event: dict[str, Any] | None = None
    dry_run: bool = False
    attempts: int = 1
    retryable: bool = False
    """Whether another attempt may succeed (a failed attempt that `announce` may repeat)."""
    warning: str = ""
    """Something to fix that did not stop the announcement; ^ZMIRROR logs it as a warning."""

    @property
    def summary(self) -> str:
        return str(self)

    def __str__(self) -> str:
        about = f"{self.event_type}, mirror {self.mirror!r}, {self.elapsed_seconds:.3f} s"
        if self.attempts > 1:
            about += f", {self.attempts} attempts"
        if not self.ok:
            return f"failed: {self.stage}: {self.reason} ({about})"
        if self.dry_run:
            return f"dry run: not published ({about})"
        return f"published {self.message_id} ({about})"


class _Progress:
    """Which step the worker is in, for the watchdog's failure reason."""

    def __init__(self) -> None:
        self.stage = "publisher"
        self.step = "starting"
        self.warning = ""

    def enter(self, stage: str, step: str) -> None:
        self.stage, self.step = stage, step


def notify_become_primary(
    mirror: str, member: str, *, config: PublisherConfig | None = None
) -> PublishResult:
    """Publish a `became_primary` event for this VM. What ^ZMIRROR NotifyBecomePrimary calls.

    Args:
        mirror: IRIS mirror name (`$SYSTEM.Mirror.MirrorName()`).
        member: this member's mirror member name.
        config: settings; read from the config file and environment when None.

    Returns:
        A `PublishResult`; never raises.
    """
    return announce(events.BECAME_PRIMARY, mirror, member, config=config)


def heartbeat(
    mirror: str,
    member: str,
    *,
    is_primary: Callable[[], bool] | None = None,
    config: PublisherConfig | None = None,
) -> PublishResult:
    """Re-announce "I am primary", but only if this member really is the primary.

    Args:
        mirror: IRIS mirror name.
        member: this member's name.
        is_primary: the primary check; default asks IRIS (`%SYSTEM.Mirror.IsPrimary()`), which
            only works inside IRIS. Drills outside IRIS pass `lambda: True`.
        config: settings; read from the config file and environment when None.

    Returns:
        A `PublishResult`; stage `primary_check` when refused. Never raises.
    """
    started = time.monotonic()
    try:
        check = is_primary or iris_is_primary
        if not check():
            raise NotPrimaryError(f"this member is not the primary of mirror {mirror!r}")
    except PublisherError as exc:
        return _failure(events.HEARTBEAT, mirror, started, exc.stage, str(exc))
    except Exception as exc:  # noqa: BLE001 (never raise into IRIS)
        return _failure(events.HEARTBEAT, mirror, started, "primary_check", _one_line(exc))
    return announce(events.HEARTBEAT, mirror, member, config=config, started=started)


def iris_is_primary() -> bool:
    """Ask IRIS whether this member is the mirror's primary.

    Raises:
        NotPrimaryError: not running inside IRIS, so primacy cannot be shown.
    """
    try:
        import iris  # type: ignore[import-not-found]  # noqa: PLC0415 (exists only inside IRIS)
    except ImportError:
        raise NotPrimaryError(
            "not running inside IRIS, cannot check that this member is primary "
            "(use --assume-primary for drills)"
        ) from None
    return bool(iris.cls("%SYSTEM.Mirror").IsPrimary())


def announce(
    event_type: str,
    mirror: str,
    member: str,
    *,
    config: PublisherConfig | None = None,
    dry_run: bool = False,
    started: float | None = None,
) -> PublishResult:
    """Build and publish one event, retrying failed attempts for the configured total; never raises.

    Args:
        event_type: `became_primary` or `heartbeat`.
        mirror: IRIS mirror name.
        member: this member's name.
        config: settings; read from the config file and environment when None.
        dry_run: build the event (metadata, token) but do not publish it.
        started: monotonic start time, when the caller already spent some of the time.

    Returns:
        The successful attempt, or the last failed one, with the number of attempts.
    """
    started = time.monotonic() if started is None else started
    occurred_at = time.time()  # when this member became primary, whichever attempt succeeds
    cfg = _checked_config(event_type, mirror, member, config, started)
    if isinstance(cfg, PublishResult):
        return cfg
    announcement = _Announcement(event_type, mirror, member, cfg, occurred_at, dry_run, started)
    return announcement.retry_until_total()


def _checked_config(
    event_type: str, mirror: str, member: str, config: PublisherConfig | None, started: float
) -> PublisherConfig | PublishResult:
    """The settings to announce with, or the failure that stops the announcement at once."""
    try:
        problems = events.check_names(mirror, member)
        if problems:
            return _failure(event_type, mirror, started, "arguments", "; ".join(problems))
        return config or load_config()
    except PublisherError as exc:
        return _failure(event_type, mirror, started, exc.stage, str(exc))
    except Exception as exc:  # noqa: BLE001 (never raise into IRIS)
        return _failure(event_type, mirror, started, "config", _one_line(exc))


@dataclass(frozen=True)
class _Announcement:
    """What every attempt of one announcement shares."""

    event_type: str
    mirror: str
    member: str
    cfg: PublisherConfig
    occurred_at: float
    dry_run: bool
    started: float

    def retry_until_total(self) -> PublishResult:
        """Attempts with backoff while they fail retryably and the total time allows."""
        total = Deadline(self.cfg.total_seconds, start=self.started)
        attempt_start, attempts, backoff, warning = self.started, 0, FIRST_RETRY_SECONDS, ""
        while True:
            attempts += 1
            budget = min(self.cfg.budget_seconds, total.end - attempt_start)
            result = self.attempt(Deadline(budget, attempt_start))
            warning = warning or result.warning  # given once: keep it from whichever attempt
            pause = min(backoff, total.remaining())
            if result.ok or not result.retryable or total.remaining() - pause < MIN_BUDGET_SECONDS:
                elapsed = time.monotonic() - self.started
                return replace(result, attempts=attempts, elapsed_seconds=elapsed, warning=warning)
            time.sleep(pause)  # retry backoff, bounded by the total
            attempt_start, backoff = time.monotonic(), min(backoff * 2, MAX_RETRY_SECONDS)

    def attempt(self, deadline: Deadline) -> PublishResult:
        """One attempt, on a worker thread that the caller waits for only until the deadline."""
        progress = _Progress()
        ran = run_with_watchdog(
            lambda: self._steps(deadline, progress),
            deadline.remaining() + GRACE_SECONDS,
            name="mirrorvip-announce",
        )
        return replace(self._result(ran, deadline, progress), warning=progress.warning)

    def _result(
        self,
        ran: Finished[PublishResult] | Raised | TimedOut,
        deadline: Deadline,
        progress: _Progress,
    ) -> PublishResult:
        """What the watchdog saw, as a result: a hang or an exception names the step."""
        if isinstance(ran, Finished):
            return ran.value
        if isinstance(ran, TimedOut):
            reason = f"time budget of {deadline.budget_seconds:.3g} s ran out while {progress.step}"
            return self.failure(progress.stage, reason, retryable=True)
        if isinstance(ran.error, PublisherError):
            return self.failure(ran.error.stage, str(ran.error), retryable=ran.error.retryable)
        reason = f"{_one_line(ran.error)} (while {progress.step})"
        return self.failure(progress.stage, reason, retryable=True)

    def _steps(self, deadline: Deadline, progress: _Progress) -> PublishResult:
        metadata = MetadataClient(self.cfg.metadata_host)
        progress.enter("metadata", "reading instance metadata")
        facts = cached_instance_facts(metadata, deadline)
        progress.warning = key_file_on_vm_warning()  # the metadata server answered: a VM
        event = events.build_event(
            self.event_type, self.mirror, self.member, facts, self.occurred_at
        )
        if self.cfg.identity_token:
            progress.enter("identity", "fetching the identity token")
            audience = events.bound_audience(self.cfg.audience, event, dry_run=self.dry_run)
            event[events.TOKEN_FIELD] = metadata.identity_token(audience, deadline)
        message_id = None
        if not self.dry_run:
            progress.enter("publish", "publishing to Pub/Sub")
            message_id = publish_message(
                self.cfg.topic,
                events.encode_event(event),
                events.message_attributes(event),
                ordering_key=self.mirror,
                deadline=deadline,
                endpoint=self.cfg.pubsub_endpoint,
            )
        return PublishResult(
            ok=True,
            event_type=self.event_type,
            mirror=self.mirror,
            elapsed_seconds=time.monotonic() - self.started,
            message_id=message_id,
            event=event,
            dry_run=self.dry_run,
        )

    def failure(self, stage: str, reason: str, *, retryable: bool) -> PublishResult:
        return _failure(self.event_type, self.mirror, self.started, stage, reason, retryable)


def _failure(
    event_type: str,
    mirror: str,
    started: float,
    stage: str,
    reason: str,
    retryable: bool = False,
) -> PublishResult:
    return PublishResult(
        ok=False,
        event_type=event_type,
        mirror=str(mirror),
        elapsed_seconds=time.monotonic() - started,
        stage=stage,
        reason=reason,
        retryable=retryable,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"
