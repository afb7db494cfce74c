"""Route mode end to end: the publisher, Pub/Sub's push, the function, and the Compute emulator.

The VIP is a VPC route and the public IP a forwarding rule; the drill that matters is the old
primary's zone going down before the failover: every zonal call there fails, and the move must
complete anyway (nothing on its path is zonal in that zone).
"""

from __future__ import annotations

import pytest

from local.mirrors import route_layout
from local.stack import LocalStack, StackOptions, holds_everything
from support import mirrors

pytestmark = pytest.mark.e2e

LAYOUT = route_layout(0, project=mirrors.PROJECT)
PRIMARY, BACKUP = (m.name for m in LAYOUT.members)


def fail_over(stack: LocalStack, to: str) -> dict[str, object]:
    published = stack.publish(LAYOUT.name, to)
    assert published.ok, published.summary
    assert published.message_id is not None
    outcome = stack.wait_for_outcome(published.message_id, 60)
    stack.wait_for_holder(LAYOUT.name, to, 30)
    return outcome


def test_route_mode_fails_over_and_back_and_through_a_zone_outage() -> None:
    options = StackOptions(op_latency=0.2, project=mirrors.PROJECT)
    with LocalStack([LAYOUT], options) as stack:
        assert fail_over(stack, PRIMARY)["outcome"] == "moved"  # the first route
        over = fail_over(stack, BACKUP)
        assert (over["outcome"], over["mode"]) == ("moved", "route")
        assert holds_everything(stack.holder(LAYOUT.name), LAYOUT, BACKUP)

        assert fail_over(stack, PRIMARY)["outcome"] == "moved"
        primary_zone = LAYOUT.member(PRIMARY).zone
        stack.compute.set_zone_down(primary_zone)
        try:
            outage = fail_over(stack, BACKUP)
        finally:
            stack.compute.set_zone_down(primary_zone, down=False)

        assert (outage["outcome"], outage["retry"]) == ("moved", False)
        assert holds_everything(stack.holder(LAYOUT.name), LAYOUT, BACKUP)
