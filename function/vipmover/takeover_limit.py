"""The takeover rate limit: at most N moves of one mirror in M minutes while the holder runs.

A member that keeps claiming the VIP (a compromised backup, a flapping mirror) would otherwise
move it back and forth as fast as events arrive. The recent move times live in one instance
label per mirror, `mirror-vip-moves-<mirror>`, on every member (written with the high-water mark,
so a holder whose labels are rewritten does not erase the history): base-36 epoch milliseconds
of Pub/Sub's publishTime (8 characters until 2059), joined by `-`, newest last; milliseconds, so
that moves within one second stay distinct. The history is the union over every readable
member. A move away from a holder that is not RUNNING is never refused: that is a failover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .config import LABEL_PREFIXES, InstanceRef, label_key
from .errors import EventRejected
from .plan import NicState, Unreadable
from .safeguards_config import TakeoverLimit

MOVES_PREFIX = LABEL_PREFIXES[1]
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def moves_label(mirror_name: str) -> str:
    """The label key of a mirror's move history, e.g. `mirror-vip-moves-irismirror`."""
    return label_key(MOVES_PREFIX, mirror_name)


def _base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = DIGITS[digit] + text
        if not number:
            return text


def parse_moves(value: str) -> tuple[int, ...]:
    """Epoch milliseconds in a history value; anything that is not base-36 ASCII is ignored."""
    times = []
    for part in value.split("-"):
        if 0 < len(part) <= 9 and all(c in DIGITS for c in part):
            times.append(int(part, 36))
    return tuple(times)


def recent_moves(nics: Mapping[InstanceRef, NicState | Unreadable], label: str) -> tuple[int, ...]:
    """Every move time any readable member records, oldest first, without duplicates."""
    seen: set[int] = set()
    for nic in nics.values():
        if isinstance(nic, NicState):
            seen.update(parse_moves(nic.labels.get(label, "")))
    return tuple(sorted(seen))


def check_takeover(
    limit: TakeoverLimit,
    moves: Iterable[int],
    event_time_ms: int,
    holders: Iterable[NicState],
    mirror: str,
) -> None:
    """Refuse a move away from a running holder when the mirror already moved too often.

    Raises:
        EventRejected: `takeover_limit`.
    """
    running = [nic.instance.name for nic in holders if nic.status == "RUNNING"]
    if not limit.enabled or not running:
        return
    since = event_time_ms - limit.window_ms
    recent = [t for t in moves if t > since]
    if len(recent) >= limit.moves:
        raise EventRejected(
            "takeover_limit",
            f"mirror {mirror} moved {len(recent)} times in the last {limit.minutes:g} min "
            f"(takeover_limit.moves {limit.moves}) and its holder {', '.join(running)} is "
            "RUNNING: the VIP stays until the window passes or the holder stops",
        )


def history_after(
    limit: TakeoverLimit, moves: Iterable[int], event_time_ms: int
) -> tuple[int, ...]:
    """The history once this move is recorded: the newest `limit.moves` times (>= 1)."""
    return tuple(sorted({*moves, event_time_ms})[-max(limit.moves, 1) :])


def format_moves(moves: Iterable[int]) -> str:
    """A history as its label value (`parse_moves` reads it back)."""
    return "-".join(_base36(t) for t in moves)


def moves_after(limit: TakeoverLimit, moves: Iterable[int], event_time_ms: int) -> str:
    """The history value once this move is recorded: the newest `limit.moves` times (>= 1)."""
    return format_moves(history_after(limit, moves, event_time_ms))
