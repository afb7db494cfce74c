"""RFC 3339 timestamps as Google APIs write them (millisecond precision)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_rfc3339(moment: datetime | None = None, *, zulu: bool = True) -> str:
    """`2026-11-25T12:00:01.234Z` (Pub/Sub's style) or, with `zulu=False`, `...234+00:00`
    (Compute operations carry an explicit offset). `moment` defaults to now."""
    text = (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if zulu else text


def rfc3339_to_epoch(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (`Z` or an offset)."""
    return datetime.fromisoformat(text).timestamp()
