"""Announce "this member is primary": read metadata, fetch a token, publish, all within a budget.

The budget is enforced twice. Every step cuts its own timeouts to what is left of a shared
`Deadline`; and the whole announcement runs in a worker thread that the caller waits for at most
`budget + GRACE_SECONDS`, so even a step that ignores its timeout (a DNS lookup, a stuck C
extension) cannot hold IRIS longer than that. A failed announcement is a `PublishResult` with a
reason, never an exception: ^ZMIRROR only logs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import event as events
from .config import PublisherConfig, load_config
from .errors import IdentityTokenError, NotPrimaryError, PublisherError
from .metadata import Deadline, MetadataClient, cached_instance_facts
from .pubsub import publish_message

# Let the steps' own timeouts report first; the watchdog is the backstop.
GRACE_SECONDS = 0.25
# The identity token is optional: a failing token endpoint may use at most this share of the time
# left, so that the event still goes out (without a token) and the function decides.
IDENTITY_SHARE = 0.5


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
    warnings: tuple[str, ...] = field(default_factory=tuple)
    dry_run: bool = False

    @property
    def summary(self) -> str:
        return str(self)

    def __str__(self) -> str:
        about = f"{self.event_type}, mirror {self.mirror!r}, {self.elapsed_seconds:.3f} s"
        notes = "".join(f"; warning: {warning}" for warning in self.warnings)
        if not self.ok:
            return f"failed: {self.stage}: {self.reason} ({about}{notes})"
        if self.dry_run:
            return f"dry run: not published ({about}{notes})"
        return f"published {self.message_id} ({about}{notes})"


class _Progress:
    """Which step the worker is in, for the watchdog's failure reason."""

    def __init__(self) -> None:
        self.step = "starting"
        self.warnings: list[str] = []


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
    """Build and publish one event within the configured budget; never raises.

    Args:
        event_type: `became_primary` or `heartbeat`.
        mirror: IRIS mirror name.
        member: this member's name.
        config: settings; read from the config file and environment when None.
        dry_run: build the event (metadata, token) but do not publish it.
        started: monotonic start time, when the caller already spent some of the budget.
    """
    started = time.monotonic() if started is None else started
    occurred_at = time.time()
    try:
        problems = events.check_names(mirror, member)
        if problems:
            return _failure(event_type, mirror, started, "arguments", "; ".join(problems))
        cfg = config or load_config()
    except PublisherError as exc:
        return _failure(event_type, mirror, started, exc.stage, str(exc))
    except Exception as exc:  # noqa: BLE001 (never raise into IRIS)
        return _failure(event_type, mirror, started, "config", _one_line(exc))
    deadline = Deadline(cfg.budget_seconds, start=started)
    progress = _Progress()
    outcome: list[PublishResult] = []

    def work() -> None:
        try:
            outcome.append(
                _announce_steps(
                    event_type,
                    mirror,
                    member,
                    cfg,
                    deadline,
                    progress,
                    occurred_at,
                    dry_run,
                    started,
                )
            )
        except PublisherError as exc:
            outcome.append(
                _failure(event_type, mirror, started, exc.stage, str(exc), progress.warnings)
            )
        except Exception as exc:  # noqa: BLE001 (never raise into IRIS)
            outcome.append(
                _failure(
                    event_type, mirror, started, progress.step, _one_line(exc), progress.warnings
                )
            )

    worker = threading.Thread(target=work, name="mirrorvip-announce", daemon=True)
    worker.start()
    worker.join(deadline.remaining() + GRACE_SECONDS)
    if outcome:
        return outcome[0]
    return _failure(
        event_type,
        mirror,
        started,
        "budget",
        f"time budget of {cfg.budget_seconds:g} s ran out while {progress.step}",
        progress.warnings,
    )


def _announce_steps(
    event_type: str,
    mirror: str,
    member: str,
    cfg: PublisherConfig,
    deadline: Deadline,
    progress: _Progress,
    occurred_at: float,
    dry_run: bool,
    started: float,
) -> PublishResult:
    metadata = MetadataClient(cfg.metadata_host)
    progress.step = "reading instance metadata"
    facts = cached_instance_facts(metadata, deadline)
    token = None
    if cfg.identity_token:
        progress.step = "fetching the identity token"
        try:
            token = metadata.identity_token(cfg.audience, deadline.share(IDENTITY_SHARE))
        except IdentityTokenError as exc:
            # Still announce: the function decides whether an event without a token is enough.
            progress.warnings.append(str(exc))
    event = events.build_event(event_type, mirror, member, facts, occurred_at, token)
    message_id = None
    if not dry_run:
        progress.step = "publishing to Pub/Sub"
        message_id = publish_message(
            cfg.topic,
            events.encode_event(event),
            events.message_attributes(event),
            ordering_key=mirror,
            deadline=deadline,
        )
    return PublishResult(
        ok=True,
        event_type=event_type,
        mirror=mirror,
        elapsed_seconds=time.monotonic() - started,
        message_id=message_id,
        event=event,
        warnings=tuple(progress.warnings),
        dry_run=dry_run,
    )


def _failure(
    event_type: str,
    mirror: str,
    started: float,
    stage: str,
    reason: str,
    warnings: list[str] | None = None,
) -> PublishResult:
    return PublishResult(
        ok=False,
        event_type=event_type,
        mirror=str(mirror),
        elapsed_seconds=time.monotonic() - started,
        stage=stage,
        reason=reason,
        warnings=tuple(warnings or ()),
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"
