"""The public IP as an external forwarding rule, in either mode: point it at the new primary.

A forwarding rule is regional: `forwardingRules.setTarget` to the new primary's target instance
is one regional operation that no zone's outage blocks, unlike an access config bound to the old
primary's NIC. Route mode always uses it for the public IP; alias mode may (`public_ip` with
`forwarding_rule` instead of `address_name`). The decision is `route_plan.plan_forwarding`.
"""

from __future__ import annotations

from functools import partial

from .compute import ComputeGateway, request_id
from .config import InstanceRef, MirrorConfig
from .errors import MirrorVipError, PublicIpRefused, kept, public_ip_failure
from .route_plan import ForwardingPlan, ForwardingRuleState, plan_forwarding

RuleRead = ForwardingRuleState | MirrorVipError | None
"""The rule as read, the error that prevented it (it must not block the VIP), or no rule."""


def read_rule(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> RuleRead:
    """The mirror's forwarding rule, if it has one; a failed read is returned, not raised."""
    rule = mirror.forwarding_rule
    if rule is None:
        return None
    read = gateway.read_forwarding_rule
    return kept(partial(read, mirror.project, rule.region, rule.forwarding_rule, deadline))


def plan_rule(mirror: MirrorConfig, target: InstanceRef, rule: RuleRead) -> ForwardingPlan:
    """What to do with the rule; nothing when it could not be read (reported afterwards)."""
    if isinstance(rule, ForwardingRuleState):
        return plan_forwarding(mirror, target, rule)
    return ForwardingPlan()


def retarget(
    gateway: ComputeGateway,
    mirror: MirrorConfig,
    target_path: str,
    key: str,
    deadline: float,
    vip_note: str,
) -> None:
    """Point the rule at `target_path` and wait; a failure says that the VIP did move."""
    rule = mirror.forwarding_rule
    assert rule is not None
    rid = request_id(key, "setTarget", target_path)
    try:
        op = gateway.set_forwarding_target(
            mirror.project, rule.region, rule.forwarding_rule, target_path, rid, deadline
        )
        gateway.wait(op, deadline)
    except MirrorVipError as err:
        raise public_ip_failure(err, vip_note) from err


def rule_problem(rule: RuleRead, public: ForwardingPlan, vip_note: str) -> MirrorVipError | None:
    """Once the VIP is settled, why the public IP did not follow, if it did not."""
    if isinstance(rule, MirrorVipError):
        return public_ip_failure(rule, vip_note)
    if public.blocked is not None:
        return public_ip_failure(PublicIpRefused(public.blocked), vip_note)
    return None
