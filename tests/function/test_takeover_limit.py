"""The takeover limit's history label: pure functions."""

from __future__ import annotations

import pytest

from vipmover.config import InstanceRef
from vipmover.errors import EventRejected
from vipmover.plan import LABEL_VALUE_MAX, NicState
from vipmover.safeguards_config import MAX_TAKEOVER_MOVES, TakeoverLimit
from vipmover.takeover_limit import check_takeover, moves_after, parse_moves

pytestmark = pytest.mark.unit
HOLDER = NicState(InstanceRef("p", "us-west1-a", "a"), "fp", (), ())
NOW_MS = 1_795_608_620_500


def test_moves_within_one_second_are_counted_apart() -> None:
    limit = TakeoverLimit(moves=3, minutes=10)
    history: tuple[int, ...] = ()
    for offset_ms in (0, 200, 400):
        history = parse_moves(moves_after(limit, history, NOW_MS + offset_ms))
    assert len(history) == 3
    with pytest.raises(EventRejected) as caught:
        check_takeover(limit, history, NOW_MS + 600, [HOLDER], "M")
    assert caught.value.reason == "takeover_limit"


def test_the_longest_history_fits_one_label_value_until_2059() -> None:
    limit = TakeoverLimit(moves=MAX_TAKEOVER_MOVES)
    year_2059_ms = 2_808_000_000_000
    history = tuple(year_2059_ms + n for n in range(MAX_TAKEOVER_MOVES))
    value = moves_after(limit, history, year_2059_ms + 99)
    assert len(value) <= LABEL_VALUE_MAX
    assert parse_moves(value)[-1] == year_2059_ms + 99


def test_old_moves_leave_the_window_and_garbage_is_ignored() -> None:
    limit = TakeoverLimit(moves=1, minutes=10)
    check_takeover(limit, (NOW_MS - 10 * 60_000,), NOW_MS, [HOLDER], "M")
    assert parse_moves("zzzzzzzzzz-²-AB-") == ()
