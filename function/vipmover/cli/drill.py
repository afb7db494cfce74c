"""`drill`: publish a real `became_primary` for a member, and time the VIP's arrival.

With `--metadata-host` (on the member itself: 169.254.169.254; on the local stack: the member's
metadata emulator) the event goes through the publisher's own `notify_become_primary`, identity
token included. Without it, the event is built by the publisher's `build_event` from the config's
instance facts and published without a token, which a function requiring identity rejects.
Arrival is judged only from the Compute API, by the mirror's mode's reader (`readers`): the
member alone holds the VIP (alias: on its NIC; route: the best route's next hop) and the public IP
(the static address; route: the forwarding rule's target), and the high-water mark is new and
names it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import InstanceRef, MirrorConfig
from ..plan import Mark
from .commands import MirrorResult, target_of
from .holdings import Holdings, has_public_ip
from .readers import read_holdings
from .session import EXIT_API, EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, READ_TIMEOUT_S, Session

POLL_S = 0.1


@dataclass(frozen=True)
class DrillOptions:
    """Where to publish and how long to wait."""

    topic: str
    timeout_s: float = 120.0
    metadata_host: str | None = None
    function_log: Path | None = None
    progress: Callable[[str], None] | None = None
    pubsub_endpoint: str = ""
    """`host:port` of a Pub/Sub emulator; empty for real Pub/Sub."""


@dataclass
class _Watch:
    """Milestones seen while polling, in seconds since the publish call."""

    before: Mapping[str, str]
    """`Holdings.versions` before the publish: any change is a first write."""
    mark_before: Mark | None
    seen: dict[str, float] = field(default_factory=dict)

    def note(self, what: str, at: float) -> None:
        self.seen.setdefault(what, at)


def drill(session: Session, mirror: MirrorConfig, to: str, options: DrillOptions) -> MirrorResult:
    """Publish for `to`, poll until the VIP is there or `timeout_s`, and report the timeline."""
    target = target_of(mirror, to)
    if target is None:
        message = f"{to!r} is not a member of mirror {mirror.name}"
        return MirrorResult(EXIT_USAGE, {"mirror": mirror.name, "error": message}, [message])
    if session.config.identity.required and options.metadata_host is None:
        message = (
            "the function requires identity tokens: run the drill on the member with "
            "--metadata-host 169.254.169.254 (or give the local stack's metadata host)"
        )
        return MirrorResult(EXIT_USAGE, {"mirror": mirror.name, "error": message}, [message])
    before = _read(session, mirror)
    watch = _Watch(before.versions, before.mark)
    started = time.monotonic()
    published = _publish(mirror, target, options)
    if published.get("error"):
        document = {"mirror": mirror.name, "to": target.name, **published, "arrived": False}
        return MirrorResult(EXIT_API, document, [f"publish failed: {published['error']}"])
    watch.note("published", time.monotonic() - started)
    arrived = _wait(session, mirror, target, watch, started, options)
    return _result(mirror, target, watch, published, arrived, options)


def _read(session: Session, mirror: MirrorConfig) -> Holdings:
    return read_holdings(session.gateway, mirror, time.monotonic() + READ_TIMEOUT_S)


def _written(before: Mapping[str, str], now: Mapping[str, str]) -> bool:
    """A resource changed, or a new one appeared (a route); one that went unreadable did not."""
    return any(now.get(key, version) != version for key, version in before.items()) or bool(
        now.keys() - before.keys()
    )


def _publish(mirror: MirrorConfig, target: InstanceRef, options: DrillOptions) -> dict[str, Any]:
    """Publish as the publisher would; `{"message_id"}` or `{"error"}`."""
    import mirrorvip_publisher as publisher  # noqa: PLC0415
    from mirrorvip_publisher import event as events  # noqa: PLC0415
    from mirrorvip_publisher.metadata import Deadline, InstanceFacts  # noqa: PLC0415
    from mirrorvip_publisher.pubsub import publish_message  # noqa: PLC0415

    member = target.name.upper().replace("-", "_")
    if options.metadata_host is not None:
        config = publisher.PublisherConfig(
            topic=options.topic,
            metadata_host=options.metadata_host,
            pubsub_endpoint=options.pubsub_endpoint,
        )
        result = publisher.notify_become_primary(mirror.name, member, config=config)
        if not result.ok:
            return {"error": str(result)}
        return {"message_id": result.message_id, "identity_token": True}
    facts = InstanceFacts(target.project, target.zone, target.name, "0")
    event = events.build_event(events.BECAME_PRIMARY, mirror.name, member, facts, time.time())
    try:
        message_id = publish_message(
            options.topic,
            events.encode_event(event),
            events.message_attributes(event),
            ordering_key=mirror.name,
            deadline=Deadline(30.0),
            endpoint=options.pubsub_endpoint,
        )
    except publisher.PublisherError as err:
        return {"error": str(err)}
    return {"message_id": message_id, "identity_token": False}


def _wait(
    session: Session,
    mirror: MirrorConfig,
    target: InstanceRef,
    watch: _Watch,
    started: float,
    options: DrillOptions,
) -> bool:
    """Poll the API until the VIP (and static IP, and a new mark) are on `target`."""
    deadline = started + options.timeout_s
    while True:
        now = _read(session, mirror)
        at = time.monotonic() - started
        if _written(watch.before, now.versions):
            watch.note("first write seen", at)
        if now.vip_holders == (target,):
            watch.note("VIP switched", at)
        wants_public = has_public_ip(mirror)
        if wants_public and now.public_holders == (target,):
            watch.note("public IP switched", at)
        new_mark = now.mark is not None and now.mark != watch.mark_before
        done = now.vip_holders == (target,) and (
            not wants_public or now.public_holders == (target,)
        )
        if options.progress is not None:
            vip = ", ".join(r.name for r in now.vip_holders) or "no member"
            options.progress(f"{at:6.1f} s  VIP on {vip}")
        if done and new_mark and now.mark is not None and now.mark.holder == target:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)  # polling interval of the API


def _result(
    mirror: MirrorConfig,
    target: InstanceRef,
    watch: _Watch,
    published: dict[str, Any],
    arrived: bool,
    options: DrillOptions,
) -> MirrorResult:
    ordered = sorted(watch.seen.items(), key=lambda item: item[1])
    timeline = [{"seconds": round(at, 3), "what": what} for what, at in ordered]
    outcome = None if arrived else _outcome_line(options.function_log, published["message_id"])
    document = {
        "mirror": mirror.name,
        "to": target.name,
        "message_id": published["message_id"],
        "identity_token": published["identity_token"],
        "arrived": arrived,
        "timeline": timeline,
        "outcome": outcome,
    }
    lines = [f"{mirror.name}: drill to {target.name}, message {published['message_id']}"]
    lines += [f"  +{e['seconds']:7.3f} s  {e['what']}" for e in timeline]
    if arrived:
        lines.append("  arrived: the VIP followed the event")
    else:
        lines.append(f"  NOT arrived within {options.timeout_s:g} s")
        lines.append(
            f"  function outcome: {json.dumps(outcome)}"
            if outcome
            else "  function outcome: not found; on GCP: gcloud logging read "
            f"'jsonPayload.event_id=\"{published['message_id']}\"'"
        )
    return MirrorResult(EXIT_OK if arrived else EXIT_DEGRADED, document, lines)


def _outcome_line(path: Path | None, event_id: str) -> dict[str, Any] | None:
    """The function's last outcome line for the event, from its log file (one JSON per line)."""
    if path is None or not path.exists():
        return None
    found = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event_id") == event_id:
            found = record
    return found


def terminal_progress(line: str) -> None:
    """Rewrite one status line on a terminal."""
    sys.stderr.write(f"\r  waiting: {line}   ")
    sys.stderr.flush()
