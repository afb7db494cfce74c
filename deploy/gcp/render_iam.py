"""Split the function's custom role by where GCE lets each permission be granted; list the bindings.

`function-role.yaml` is the one list of what the function's Compute calls need (the `doctor`
command checks it too). Granting it on the project would let the function touch every VM, address
and route of the project; this script narrows each permission to the resources the mirror config
names, as far as GCE allows:

- `instance`: instances have their own IAM policy: bound on each member VM.
- `subnetwork`: subnetworks have their own IAM policy: bound on each alias-mode member's subnetwork
  (deploy.sh reads which one from the VM; the mirror config does not say).
- `named`: addresses, forwarding rules, target instances, routes and networks have no IAM policy of
  their own: bound on the project **with an IAM condition** on `resource.name`, listing exactly the
  configured resources (routes: the names mirror-vip gives them, `mirror-vip-<mirror>-`).
- `project`: list calls and operation reads are checked on the project (a list has no resource
  name to match, an operation's name is random): bound on the project, read-only.

A permission of a collection not in `COLLECTION_SCOPE` is refused: its scope must be decided, not
defaulted to the project.

Usage::

    python deploy/gcp/render_iam.py --role-file deploy/gcp/function-role.yaml \
        --mirror-config mirrors.yaml --project P --role-prefix mirrorVipMover --out-dir BUILD

writes one gcloud role file per scope and the condition file into BUILD, and prints one line per
thing for deploy.sh (fields separated by spaces):

    role ROLE_ID ROLE_FILE                      a custom role to create or update
    project ROLE_ID PROJECT - -                 a project binding without a condition
    project ROLE_ID PROJECT FILE TITLE          one with the condition in FILE, titled TITLE
    instance ROLE_ID ZONE INSTANCE              a binding on a member VM
    subnetwork ROLE_ID ZONE INSTANCE NIC_INDEX  a binding on that VM NIC's subnetwork
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "function"))

from vipmover.config import Config, MirrorConfig, decode_document, parse_config  # noqa: E402
from vipmover.errors import ConfigError  # noqa: E402
from vipmover.route_plan import ROUTE_PREFIX, route_slug  # noqa: E402

Scope = Literal["instance", "subnetwork", "named", "project"]

COLLECTION_SCOPE: Mapping[str, Scope] = {
    "instances": "instance",
    "subnetworks": "subnetwork",
    "addresses": "named",
    "forwardingRules": "named",
    "targetInstances": "named",
    "routes": "named",
    "networks": "named",
    "zoneOperations": "project",
    "regionOperations": "project",
    "globalOperations": "project",
}
"""Where a permission of each Compute collection can be granted (only instances and subnetworks,
of these, have `setIamPolicy` in compute.v1)."""
LIST_METHODS = ("list", "aggregatedList")
"""Checked on the project whatever the collection: a list call names no resource."""

ROLE_SUFFIX: Mapping[Scope, str] = {
    "instance": "OnInstances",
    "subnetwork": "OnSubnetworks",
    "named": "OnNamedResources",
    "project": "ProjectReads",
}
TITLE: Mapping[Scope, str] = {
    "instance": "on member VMs",
    "subnetwork": "on member subnetworks",
    "named": "on named resources, conditioned",
    "project": "project-wide reads",
}
CONDITION_TITLE = "mirror-vip-resources-{digest}"
"""No spaces (deploy.sh reads it as one field); the digest of the expression tells deploy.sh
whether the binding in place is this one or one from an older mirror config."""


class RoleError(ValueError):
    """The role file holds a permission whose scope is not decided, or is malformed."""


@dataclass(frozen=True)
class ScopedRole:
    """One custom role: the role file's permissions that are granted the same way."""

    scope: Scope
    role_id: str
    title: str
    permissions: tuple[str, ...]

    def gcloud_file(self, description: str) -> dict[str, Any]:
        """What `gcloud iam roles create|update --file` reads."""
        return {
            "title": self.title,
            "description": description,
            "stage": "GA",
            "includedPermissions": list(self.permissions),
        }


def scope_of(permission: str) -> Scope:
    """Where `compute.COLLECTION.METHOD` is granted.

    Raises:
        RoleError: not a Compute permission, or of a collection whose scope is not decided.
    """
    parts = permission.split(".")
    if len(parts) != 3 or parts[0] != "compute":
        raise RoleError(f"includedPermissions: {permission!r} is not a compute.X.Y permission")
    if parts[2] in LIST_METHODS:
        return "project"
    scope = COLLECTION_SCOPE.get(parts[1])
    if scope is None:
        raise RoleError(
            f"includedPermissions: {permission!r}: no scope decided for {parts[1]!r} "
            "(add it to COLLECTION_SCOPE in deploy/gcp/render_iam.py)"
        )
    return scope


def split_role(role: Mapping[str, Any], prefix: str) -> list[ScopedRole]:
    """The role file's permissions grouped by scope, one role per scope (in `ROLE_SUFFIX` order).

    Raises:
        RoleError: naming the permission whose scope is not decided.
    """
    permissions = role.get("includedPermissions")
    if not isinstance(permissions, list) or not permissions:
        raise RoleError("includedPermissions: required, a non-empty list")
    by_scope: dict[Scope, list[str]] = {scope: [] for scope in ROLE_SUFFIX}
    for permission in permissions:
        by_scope[scope_of(str(permission))].append(str(permission))
    title = str(role.get("title", "mirror-vip"))
    return [
        ScopedRole(scope, f"{prefix}{ROLE_SUFFIX[scope]}", f"{title} ({TITLE[scope]})", tuple(held))
        for scope, held in by_scope.items()
        if held
    ]


def named_resources(mirror: MirrorConfig) -> list[str]:
    """IAM condition clauses naming the mirror's address, forwarding rule, target instances,
    routes and network: the only resources of those collections the function may touch."""
    base = f"projects/{mirror.project}"
    names: list[str] = []
    if mirror.public_ip is not None:
        ip = mirror.public_ip
        names.append(f"{base}/regions/{ip.region}/addresses/{ip.address_name}")
    if mirror.forwarding_rule is not None:
        rule = mirror.forwarding_rule
        names.append(f"{base}/regions/{rule.region}/forwardingRules/{rule.forwarding_rule}")
    names += [
        f"{base}/zones/{ref.zone}/targetInstances/{name}" for ref, name in mirror.target_instances
    ]
    clauses = [f'resource.name == "{name}"' for name in names]
    if mirror.mode == "route":
        routes = f"{base}/global/routes/{ROUTE_PREFIX}{route_slug(mirror.name)}-"
        clauses.append(f'resource.name.startsWith("{routes}")')
        if mirror.network is not None:
            clauses.append(f'resource.name == "{base}/global/networks/{mirror.network}"')
        else:  # the network of the primary's NIC, which only the VM can tell
            clauses.append(f'resource.name.startsWith("{base}/global/networks/")')
    return clauses


def condition(config: Config) -> dict[str, str] | None:
    """The `named` role's condition (None when no mirror names such a resource)."""
    clauses = sorted({c for mirror in config.mirrors.values() for c in named_resources(mirror)})
    if not clauses:
        return None
    expression = " ||\n".join(clauses)
    digest = hashlib.sha256(expression.encode()).hexdigest()[:12]
    return {
        "title": CONDITION_TITLE.format(digest=digest),
        "description": "Only the addresses, forwarding rules, target instances, routes and "
        "networks of the mirror config (deploy/gcp/render_iam.py).",
        "expression": expression,
    }


def member_bindings(config: Config, roles: Mapping[Scope, str]) -> list[str]:
    """`instance` lines for every member, `subnetwork` lines for alias-mode members."""
    lines: list[str] = []
    for mirror in config.mirrors.values():
        nic_index = mirror.network_interface.removeprefix("nic")
        for ref in mirror.members:
            if "instance" in roles:
                lines.append(f"instance {roles['instance']} {ref.zone} {ref.name}")
            if mirror.mode == "alias" and "subnetwork" in roles:
                lines.append(f"subnetwork {roles['subnetwork']} {ref.zone} {ref.name} {nic_index}")
    return list(dict.fromkeys(lines))  # a VM in two mirrors is bound once


def check_projects(config: Config, project: str) -> None:
    """Project custom roles can only be granted in their project.

    Raises:
        ConfigError: naming the mirror in another project.
    """
    for mirror in config.mirrors.values():
        if mirror.project != project:
            raise ConfigError(
                f"mirrors.{mirror.name}.project: {mirror.project!r} is not {project!r}; deploy.sh "
                "grants the function's roles in its own project only (docs/deploy-gcp.md)"
            )


def plan(
    role: Mapping[str, Any], config: Config, project: str, prefix: str, out_dir: Path
) -> list[str]:
    """Write the role files and the condition file into `out_dir`; return deploy.sh's lines.

    Raises:
        RoleError: the role file holds a permission whose scope is not decided.
        ConfigError: a mirror lives in another project.
    """
    check_projects(config, project)
    scoped = split_role(role, prefix)
    description = str(role.get("description", "")).strip()
    lines = []
    for each in scoped:
        path = out_dir / f"role-{each.scope}.json"
        path.write_text(json.dumps(each.gcloud_file(description), indent=2), encoding="utf-8")
        lines.append(f"role {each.role_id} {path}")
    roles = {each.scope: each.role_id for each in scoped}
    if "project" in roles:
        lines.append(f"project {roles['project']} {project} - -")
    named = condition(config)
    if "named" in roles and named is not None:
        path = out_dir / "condition-named.json"
        path.write_text(json.dumps(named, indent=2), encoding="utf-8")
        lines.append(f"project {roles['named']} {project} {path} {named['title']}")
    return lines + member_bindings(config, roles)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--role-file", type=Path, required=True)
    parser.add_argument("--mirror-config", type=Path, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--role-prefix", required=True, help="custom role ids start with this")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        role = decode_document(args.role_file.read_text(encoding="utf-8"), str(args.role_file))
        if not isinstance(role, dict):
            raise RoleError("expected a mapping with includedPermissions")
    except (RoleError, ConfigError, OSError) as err:
        print(f"role file {args.role_file}: {err}", file=sys.stderr)
        return 2
    try:
        text = args.mirror_config.read_text(encoding="utf-8")
        config = parse_config(decode_document(text, str(args.mirror_config)), lambda: args.project)
        lines = plan(role, config, args.project, args.role_prefix, args.out_dir)
    except RoleError as err:
        print(f"role file {args.role_file}: {err}", file=sys.stderr)
        return 2
    except (ConfigError, OSError) as err:
        print(f"mirror config {args.mirror_config}: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
