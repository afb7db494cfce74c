"""What `doctor` reports in either mode: a `Check`, a guard for failed reads, the role's test."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import MirrorVipError
from .session import Session

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, and what to do about it."""

    name: str
    level: Level
    detail: str
    fix: str = ""


def guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check whose reads failed is a problem naming the failure, not a crash."""
    try:
        return run()
    except MirrorVipError as err:
        return [Check(name, "problem", f"could not check: {err}", "see the error")]


def role_permissions(path: Path) -> list[str]:
    """The custom role's `includedPermissions` (the one list the deployment grants)."""
    import yaml  # noqa: PLC0415

    role = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [str(p) for p in role.get("includedPermissions", [])]


def permission_check(
    session: Session,
    role_file: Path,
    resources: Mapping[str, Sequence[str]],
    deadline: float,
) -> list[Check]:
    """Whether the caller holds the role's permissions on the mirror's resources.

    Args:
        resources: Every collection this mode's calls use (`instances`, ...) -> the resources
            (`P/zones/Z/instances/N`) to ask `testIamPermissions` of; none for a project-level
            one (routes, operations), whose permissions are reported as not testable. The role's
            permissions of other collections serve the other mode: not asked.
    """
    if not role_file.exists():
        return [Check("permissions", "warning", f"role file {role_file} not found", "--role-file")]
    wanted = role_permissions(role_file)
    missing: list[str] = []
    unchecked: list[str] = []
    for collection, paths in resources.items():
        asked = [p for p in wanted if p.startswith(f"compute.{collection}.")]
        if not paths or not asked:
            unchecked.extend(asked)
            continue
        for path in paths:
            granted = session.gateway.test_iam_permissions(path, asked, deadline)
            missing.extend(p for p in asked if p not in granted and p not in missing)
    other = [p for p in wanted if p.split(".")[1] not in resources]
    note = f"; not testable per resource: {', '.join(sorted(unchecked))}" if unchecked else ""
    note += f"; other mode's, not asked: {', '.join(sorted(other))}" if other else ""
    unchecked += other
    if missing:
        fix = (
            "re-run `deploy/gcp/deploy.sh --config ENV iam`: it binds the roles on each member, "
            'subnetwork and named resource (docs/deploy-gcp.md, "Permissions")'
        )
        return [Check("permissions", "problem", f"missing {', '.join(missing)}{note}", fix)]
    return [Check("permissions", "ok", f"{len(wanted) - len(unchecked)} permissions held{note}")]
