"""Unit tests of the planner: who loses the VIP, who gains it, and what happens to other aliases."""

from __future__ import annotations

import pytest

from support import mirrors
from vipmover.config import InstanceRef, parse_config
from vipmover.plan import (
    AccessConfig,
    AddressState,
    AliasRange,
    Mark,
    MarkDecision,
    NicState,
    Unreadable,
    aliases_with,
    aliases_without,
    decide_mark,
    mark_label,
    newest_mark,
    plan_move,
    superseded_by,
)

pytestmark = pytest.mark.unit

MIRROR = parse_config(mirrors.config()).mirrors[mirrors.MIRROR]
A, B = MIRROR.members
VIP = AliasRange(mirrors.VIP)
OTHER = AliasRange("10.0.0.32/28")
SECONDARY = AliasRange("10.1.0.5/32", "vips")
STATIC = AccessConfig(mirrors.STATIC_NAME, mirrors.STATIC_IP)
EPHEMERAL = AccessConfig("External NAT", "192.0.2.7")
ADDRESS = AddressState(mirrors.STATIC_NAME, mirrors.STATIC_IP)


def nic(ref: InstanceRef, *aliases: AliasRange, configs: tuple[AccessConfig, ...] = ()) -> NicState:
    return NicState(ref, "fp", tuple(aliases), configs)


def test_failover_removes_from_the_holder_and_adds_to_the_target() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A, VIP), B: nic(B)})
    assert plan.holders == (A,)
    assert plan.remove_from == (A,)
    assert plan.add_to_target
    assert plan.previous_holder == A
    assert plan.changes


def test_target_already_sole_holder_needs_no_change() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A, OTHER), B: nic(B, VIP)}, ADDRESS)
    assert plan.public is not None
    assert plan.public.attach  # static IP is not on B yet
    plain = plan_move(MIRROR, B, {A: nic(A, OTHER), B: nic(B, VIP)})
    assert not plain.changes
    assert plain.previous_holder is None


def test_vip_on_no_member_is_only_added() -> None:
    plan = plan_move(MIRROR, A, {A: nic(A), B: nic(B)})
    assert plan.remove_from == ()
    assert plan.add_to_target


def test_vip_on_both_members_is_removed_from_the_other_only() -> None:
    plan = plan_move(MIRROR, A, {A: nic(A, VIP), B: nic(B, OTHER, VIP)})
    assert plan.holders == (A, B)
    assert plan.remove_from == (B,)
    assert not plan.add_to_target


def test_vip_matches_bare_address_and_slash_32_alike() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A, AliasRange("10.0.0.250")), B: nic(B)})
    assert plan.remove_from == (A,)


def test_unreadable_member_is_reported_not_planned() -> None:
    lost = Unreadable(A, "HTTP 503")
    plan = plan_move(MIRROR, B, {A: lost, B: nic(B)})
    assert plan.unreadable == (lost,)
    assert plan.remove_from == ()
    assert plan.add_to_target


def test_other_aliases_are_kept_in_order_on_both_sides() -> None:
    holder = nic(A, OTHER, VIP, SECONDARY)
    assert aliases_without(holder, mirrors.VIP) == (OTHER, SECONDARY)
    target = nic(B, SECONDARY)
    assert aliases_with(target, mirrors.VIP, None) == (SECONDARY, VIP)
    assert aliases_with(holder, mirrors.VIP, None) == holder.alias_ranges


def test_alias_in_a_named_secondary_range_carries_the_range_name() -> None:
    added = aliases_with(nic(B), "10.1.0.9/32", "vips")
    assert added == (AliasRange("10.1.0.9/32", "vips"),)


def test_public_ip_released_by_holder_and_ephemeral_cleared_on_target() -> None:
    plan = plan_move(
        MIRROR,
        B,
        {A: nic(A, VIP, configs=(STATIC,)), B: nic(B, configs=(EPHEMERAL,))},
        ADDRESS,
    )
    assert plan.public is not None
    assert plan.public.release == ((A, mirrors.STATIC_NAME),)
    assert plan.public.clear_target == "External NAT"
    assert plan.public.attach


def test_public_ip_already_on_target_needs_nothing() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A), B: nic(B, VIP, configs=(STATIC,))}, ADDRESS)
    assert plan.public is not None
    assert not plan.public.changes
    assert not plan.changes


def test_public_ip_on_no_member_is_attached_without_releases() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A), B: nic(B, VIP)}, ADDRESS)
    assert plan.public is not None
    assert plan.public.release == ()
    assert plan.public.clear_target is None
    assert plan.public.attach


T1, T2 = 1_000, 2_000


@pytest.mark.parametrize(
    ("event", "newest", "heartbeat", "expected"),
    [
        # first event ever: recorded
        (Mark(T1, B), None, False, MarkDecision(B, Mark(T1, B), stale=False, record=True)),
        # newer event for another member: recorded, moves
        (Mark(T2, B), Mark(T1, A), False, MarkDecision(B, Mark(T2, B), stale=False, record=True)),
        # older event for another member: stale, converge on the mark's member, write nothing
        (Mark(T1, A), Mark(T2, B), False, MarkDecision(B, None, stale=True, record=False)),
        # older event for the mark's member: agrees, nothing to record
        (Mark(T1, B), Mark(T2, B), False, MarkDecision(B, Mark(T1, B), stale=False, record=False)),
        # the same event again (redelivery): nothing to record
        (Mark(T2, B), Mark(T2, B), False, MarkDecision(B, Mark(T2, B), stale=False, record=False)),
        # newer became_primary from the mark's member: advances the mark
        (Mark(T2, B), Mark(T1, B), False, MarkDecision(B, Mark(T2, B), stale=False, record=True)),
        # newer heartbeat from the mark's member: no write
        (Mark(T2, B), Mark(T1, B), True, MarkDecision(B, Mark(T2, B), stale=False, record=False)),
        # heartbeat from another member, newer than the mark: never takes the VIP from it
        (Mark(T2, A), Mark(T1, B), True, MarkDecision(B, None, stale=True, record=False)),
        # heartbeat with no mark at all: places the VIP, records nothing
        (Mark(T2, A), None, True, MarkDecision(A, Mark(T2, A), stale=False, record=False)),
        # no event time: move, never record
        (None, Mark(T1, A), False, MarkDecision(B, None, stale=False, record=False)),
    ],
)
def test_mark_decisions(
    event: Mark | None, newest: Mark | None, heartbeat: bool, expected: MarkDecision
) -> None:
    target = event.holder if event else B
    assert decide_mark(event, newest, target, heartbeat=heartbeat) == expected


def test_a_newer_mark_recorded_meanwhile_supersedes_the_move() -> None:
    assert superseded_by(Mark(T1, B), B, Mark(T2, A)) == Mark(T2, A)
    assert superseded_by(None, B, Mark(T1, A)) == Mark(T1, A)
    assert superseded_by(Mark(T2, B), B, Mark(T1, A)) is None  # ours is newer
    assert superseded_by(Mark(T1, B), B, Mark(T2, B)) is None  # same member
    assert superseded_by(Mark(T1, B), B, None) is None


def test_newest_mark_ignores_other_mirrors_and_garbage() -> None:
    label = mark_label("IRIS Mirror/2")
    assert label == "mirror-vip-iris-mirror-2"
    nics = {
        A: NicState(A, "fp", (), (), labels={label: "1500", "mirror-vip-other": "9999"}),
        B: NicState(B, "fp", (), (), labels={label: "not-a-number"}),
    }
    assert newest_mark(nics, label) == Mark(1500, A)
    assert newest_mark({B: nics[B]}, label) is None
