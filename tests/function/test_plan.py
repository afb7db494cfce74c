"""Unit tests of the planner: who loses the VIP, who gains it, and what happens to other aliases."""

from __future__ import annotations

import pytest

from support import mirrors
from vipmover.config import InstanceRef, parse_config
from vipmover.plan import (
    AccessConfig,
    AliasRange,
    NicState,
    Unreadable,
    aliases_with,
    aliases_without,
    plan_move,
)

pytestmark = pytest.mark.unit

MIRROR = parse_config(mirrors.config()).mirrors[mirrors.MIRROR]
A, B = MIRROR.members
VIP = AliasRange(mirrors.VIP)
OTHER = AliasRange("10.0.0.32/28")
SECONDARY = AliasRange("10.1.0.5/32", "vips")
STATIC = AccessConfig(mirrors.STATIC_NAME, mirrors.STATIC_IP)
EPHEMERAL = AccessConfig("External NAT", "192.0.2.7")


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
    plan = plan_move(MIRROR, B, {A: nic(A, OTHER), B: nic(B, VIP)}, mirrors.STATIC_IP)
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
        mirrors.STATIC_IP,
    )
    assert plan.public is not None
    assert plan.public.release == ((A, mirrors.STATIC_NAME),)
    assert plan.public.clear_target == "External NAT"
    assert plan.public.attach


def test_public_ip_already_on_target_needs_nothing() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A), B: nic(B, VIP, configs=(STATIC,))}, mirrors.STATIC_IP)
    assert plan.public is not None
    assert not plan.public.changes
    assert not plan.changes


def test_public_ip_on_no_member_is_attached_without_releases() -> None:
    plan = plan_move(MIRROR, B, {A: nic(A), B: nic(B, VIP)}, mirrors.STATIC_IP)
    assert plan.public is not None
    assert plan.public.release == ()
    assert plan.public.clear_target is None
    assert plan.public.attach
