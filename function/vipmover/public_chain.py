"""The public IP's chain of one move: a static external IP (access configs) or a forwarding rule.

    release the static IP + drop the new primary's ephemeral IP
        -> attach the static IP + give the old holder an ephemeral IP back

A NIC has at most one access config, so the new primary's own external IP goes before the static
one can come; no member is left without a way out (README, "The static public IP").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from .compute import request_id
from .config import InstanceRef
from .errors import Conflict, MirrorVipError, PublicIpRefused
from .forwarding import retarget
from .move_run import MoveRun, run_concurrently
from .plan import PublicIpPlan

EPHEMERAL_CONFIG_NAME = "External NAT"
"""The name GCE and gcloud give an instance's default external IP."""


class PublicChain:
    """Moves the static public IP for one `MoveRun`, alongside its private chain."""

    def __init__(self, run: MoveRun) -> None:
        self.run = run
        self._target_dropped = False

    def retarget_rule(self, target_path: str) -> None:
        """The public IP as a forwarding rule: one regional setTarget, no zone involved."""
        target = self.run.plan.target
        note = f"VIP {self.run.mirror.vip} is on {target.name}"
        retarget(
            self.run.gateway, self.run.mirror, target_path, self.run.key, self.run.deadline, note
        )
        self.run.report.actions.append(f"retarget_forwarding_rule:{target.name}")

    def move_public(self) -> None:
        """Free the static IP and the target's access config slot, then attach the static IP.

        Former holders get an ephemeral IP back alongside the attach. If freeing fails after
        the target's own external IP was dropped, the target gets an ephemeral one back, so
        that no member is left without a way out.
        """
        public, target = self.run.plan.public, self.run.plan.target
        if public is None or public.blocked is not None or not public.changes:
            return
        frees: dict[str, Callable[[], None]] = {
            f"release:{ref.name}": partial(self._release, ref, name) for ref, name in public.release
        }
        if public.clear_target:
            frees[f"clear:{target.name}"] = partial(self._clear_target, public.clear_target)
        try:
            run_concurrently(frees, None)
        except MirrorVipError:
            if self._target_dropped:
                self.run.tolerate(partial(self._restore_ephemeral, target), target)
            raise
        self.run.report.actions.extend(_public_free_actions(public, target))
        then: dict[str, Callable[[], None]] = {}
        if public.attach:
            then["attach"] = self._attach
        for ref in public.restore:
            then[f"restore:{ref.name}"] = partial(self._restore_ephemeral, ref)
        run_concurrently(then, None)

    def _attach(self) -> None:
        public, config, target = (
            self.run.plan.public,
            self.run.mirror.public_ip,
            self.run.plan.target,
        )
        assert public is not None
        assert config is not None
        self.run.after_alias_patch(target)
        rid = request_id(
            self.run.key, str(target), "addAccessConfig", self.run.nic(target).fingerprint
        )
        try:
            op = self.run.gateway.add_access_config(
                target,
                self.run.mirror.network_interface,
                config.access_config_name,
                rid,
                self.run.deadline,
                nat_ip=public.address,
                network_tier=public.network_tier,
            )
            self.run.gateway.wait(op, self.run.deadline)
        except Conflict:
            # Another handler attached an access config first: fine if it is ours.
            now = self.run.gateway.read_nic(
                target, self.run.mirror.network_interface, self.run.deadline
            )
            if any(c.nat_ip == public.address for c in now.access_configs):
                return
            raise
        self.run.report.actions.append(f"attach_public_ip:{target.name}")

    def _has_own_external_ip(self, ref: InstanceRef) -> bool:
        now = self.run.gateway.read_nic(ref, self.run.mirror.network_interface, self.run.deadline)
        public = self.run.plan.public
        return any(c.nat_ip and public and c.nat_ip != public.address for c in now.access_configs)

    def _restore_ephemeral(self, ref: InstanceRef) -> None:
        """Give `ref` an ephemeral external IP: it may need one to reach Google APIs."""
        rid = request_id(self.run.key, str(ref), "addEphemeralAccessConfig")
        try:
            op = self.run.gateway.add_access_config(
                ref,
                self.run.mirror.network_interface,
                EPHEMERAL_CONFIG_NAME,
                rid,
                self.run.deadline,
            )
            self.run.gateway.wait(op, self.run.deadline)
        except Conflict:
            # A concurrent handler of the same event restored it first: fine if it is not ours.
            if self._has_own_external_ip(ref):
                return
            raise
        except MirrorVipError as err:
            # A redelivery would not know that this member had an external IP: a human must.
            raise PublicIpRefused(
                f"{ref.name} lost its external IP and could not get an ephemeral one back: {err}"
            ) from err
        self.run.report.actions.append(f"restore_ephemeral_ip:{ref.name}")

    def _clear_target(self, name: str) -> None:
        try:
            self._delete_access_config(self.run.plan.target, name)
            self._target_dropped = True
        finally:
            self.run.target_cleared.set()

    def _release(self, ref: InstanceRef, name: str) -> None:
        self.run.after_alias_patch(ref)
        self._delete_access_config(ref, name)

    def _delete_access_config(self, ref: InstanceRef, name: str) -> None:
        rid = request_id(self.run.key, str(ref), "deleteAccessConfig", name)
        op = self.run.gateway.delete_access_config(
            ref, self.run.mirror.network_interface, name, rid, self.run.deadline
        )
        self.run.gateway.wait(op, self.run.deadline)


def _public_free_actions(public: PublicIpPlan, target: InstanceRef) -> list[str]:
    actions = [f"release_public_ip:{ref.name}" for ref, _ in public.release]
    if public.clear_target:
        actions.append(f"drop_ephemeral_ip:{target.name}")
    return actions
