"""Every IAM binding deploy.sh makes, with its scope, read from its --dry-run output.

The function's Compute permissions are granted on the member VMs, their subnetworks, and the
configured addresses / forwarding rules / target instances / routes (a project binding conditioned
on their names); only read-only list and operation permissions are project-wide. The tables below
pin that exactly: widening a grant is a deliberate change to this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from local.mirrors import mirror_config, route_layout

from . import script
from .script import DEPLOY_DIR, PROJECT, Command, dry_run, load_deploy_script

pytestmark = pytest.mark.unit

ROLES = f"projects/{PROJECT}/roles"
READ_ONLY = re.compile(
    r"^compute\.[A-Za-z]+\.(list|aggregatedList)$|^compute\.[a-z]+Operations\.get$"
)
Binding = tuple[str, str, str, str]
"""(role, member, resource, condition title or "-")."""


def resource_of(c: Command) -> str:
    """The resource a binding command is made on, as `kind:name[@location]`."""
    kind = c.words[1:3]
    if kind[0] == "projects":
        return f"project:{c.words[3]}"
    if kind == ("compute", "instances"):
        return f"instance:{c.words[4]}@{c.flag('zone')}"
    if c.startswith("gcloud", "compute", "networks", "subnets"):
        return f"subnetwork:{c.words[5]}@{c.flag('region')}"
    if kind == ("pubsub", "topics"):
        return f"topic:{c.words[4]}"
    if kind == ("pubsub", "subscriptions"):
        return f"subscription:{c.words[4]}"
    if kind == ("functions", "add-invoker-policy-binding"):
        return f"function:{c.words[3]}"
    raise AssertionError(f"unknown binding command {c.argv}")


def condition_title(c: Command) -> str:
    """The binding's condition: `-` for none, else its title (from the flag or the file)."""
    if (path := c.flag("condition-from-file")) is not None:
        return str(json.loads(Path(path).read_text())["title"])
    value = c.flag("condition")
    if value in (None, "None"):
        return "-"
    assert value is not None
    fields = dict(part.split("=", 1) for part in value.removeprefix("^;^").split(";"))
    return fields["title"]


def bindings(commands: list[Command], verb: str = "add") -> list[Binding]:
    """Every `*-iam-policy-binding` (and invoker binding) of a dry run, in order."""
    made = [
        c
        for c in commands
        if any(
            w in (f"{verb}-iam-policy-binding", f"{verb}-invoker-policy-binding") for w in c.words
        )
    ]
    return [
        (
            c.flag("role") or "roles/run.invoker",
            c.flag("member") or "",
            resource_of(c),
            condition_title(c),
        )
        for c in made
    ]


def named_title(commands: list[Command]) -> str:
    [title] = {
        b[3] for b in bindings(commands) if b[0] == f"{ROLES}/mirrorVipMoverOnNamedResources"
    }
    return title


def fn(role: str) -> str:
    return f"{ROLES}/mirrorVipMover{role}"


F, T, B, IRIS = (
    f"serviceAccount:{sa}"
    for sa in (script.FUNCTION_SA, script.TRIGGER_SA, script.BUILD_SA, script.IRIS_SA)
)
PUBSUB_AGENT = "serviceAccount:service-DRY_RUN_PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"


def test_every_binding_of_a_full_deployment_with_its_scope(tmp_path: Path) -> None:
    commands = dry_run(tmp_path)
    named = named_title(commands)
    assert re.fullmatch(r"mirror-vip-resources-[0-9a-f]{12}", named)
    assert bindings(commands) == [
        (fn("ProjectReads"), F, f"project:{PROJECT}", "-"),
        (fn("OnNamedResources"), F, f"project:{PROJECT}", named),
        (fn("OnInstances"), F, "instance:iris-a@us-central1-a", "-"),
        (fn("OnSubnetworks"), F, "subnetwork:DRY_RUN_SUBNETWORK_OF_iris-a@us-central1", "-"),
        (fn("OnInstances"), F, "instance:iris-b@us-central1-b", "-"),
        (fn("OnSubnetworks"), F, "subnetwork:DRY_RUN_SUBNETWORK_OF_iris-b@us-central1", "-"),
        ("roles/logging.logWriter", B, f"project:{PROJECT}", "-"),
        (
            "roles/artifactregistry.writer",
            B,
            f"project:{PROJECT}",
            "mirror-vip build: artifactregistry.writer",
        ),
        (
            "roles/storage.objectViewer",
            B,
            f"project:{PROJECT}",
            "mirror-vip build: storage.objectViewer",
        ),
        ("roles/eventarc.eventReceiver", T, f"project:{PROJECT}", "-"),
        ("roles/pubsub.publisher", IRIS, "topic:mirror-vip-events", "-"),
        ("roles/run.invoker", T, "function:mirror-vip", "-"),
        ("roles/pubsub.publisher", PUBSUB_AGENT, "topic:mirror-vip-events-dead-letter", "-"),
        ("roles/pubsub.subscriber", PUBSUB_AGENT, "subscription:DRY_RUN_TRIGGER_SUBSCRIPTION", "-"),
    ]


def created_roles(commands: list[Command]) -> dict[str, list[str]]:
    """Role name -> its permissions, for every custom role a dry run creates."""
    return {
        f"{ROLES}/{c.words[4]}": json.loads(Path(c.flag("file") or "").read_text())[
            "includedPermissions"
        ]
        for c in commands
        if c.startswith("gcloud", "iam", "roles", "create")
    }


def test_no_project_wide_grant_of_a_compute_permission_without_a_condition_but_reads(
    tmp_path: Path,
) -> None:
    commands = dry_run(tmp_path)
    roles = created_roles(commands)
    unconditioned = [b for b in bindings(commands) if b[2].startswith("project:") and b[3] == "-"]
    compute = {p for b in unconditioned for p in roles.get(b[0], [])}
    assert compute, "the project-wide reads are expected"
    assert all(READ_ONLY.match(p) for p in compute), sorted(compute)
    # and nothing that can change a VM, a subnetwork or an address is bound on the project bare
    assert not {p for p in compute if ".instances." in p or ".subnetworks." in p}


def test_the_named_condition_lists_exactly_the_configured_address(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "iam")
    [add] = [c for c in commands if c.flag("condition-from-file")]
    condition = json.loads(Path(add.flag("condition-from-file") or "").read_text())
    address = f"projects/{PROJECT}/regions/us-central1/addresses/iris-public-ip"
    assert condition["expression"] == f'resource.name == "{address}"'


def test_route_mode_conditions_name_the_rule_targets_routes_and_network(tmp_path: Path) -> None:
    layout = route_layout(0, project=PROJECT)
    config = tmp_path / "mirrors.json"
    config.write_text(json.dumps(mirror_config([layout])))
    commands = dry_run(tmp_path, "iam", MIRROR_CONFIG_FILE=str(config))
    [add] = [c for c in commands if c.flag("condition-from-file")]
    clauses = set(
        json.loads(Path(add.flag("condition-from-file") or "").read_text())["expression"].split(
            " ||\n"
        )
    )
    base = f"projects/{PROJECT}"
    parsed = load_deploy_script("render_iam").parse_config(mirror_config([layout]), lambda: PROJECT)
    (mirror,) = parsed.mirrors.values()
    expected = {
        f'resource.name == "{base}/zones/{m.zone}/targetInstances/{name}"'
        for m, name in mirror.target_instances
    }
    rule = mirror.forwarding_rule
    expected.add(
        f'resource.name == "{base}/regions/{rule.region}/forwardingRules/{rule.forwarding_rule}"'
    )
    slug = load_deploy_script("render_iam").route_slug(mirror.name)
    expected.add(f'resource.name.startsWith("{base}/global/routes/mirror-vip-{slug}-")')
    expected.add(
        f'resource.name == "{base}/global/networks/{mirror.network}"'
        if mirror.network
        else f'resource.name.startsWith("{base}/global/networks/")'
    )
    assert clauses == expected
    # route mode's members need no subnetwork grant (no alias range, no access config)
    assert not [b for b in bindings(commands) if b[2].startswith("subnetwork:")]


def test_teardown_revokes_every_binding_deploy_grants_on_compute_and_the_project(
    tmp_path: Path,
) -> None:
    granted = {
        b[:3]
        for b in bindings(dry_run(tmp_path))
        if b[2].split(":")[0] in ("project", "instance", "subnetwork")
    }
    revoked = {b[:3] for b in bindings(dry_run(tmp_path, "teardown"), verb="remove")}
    assert granted <= revoked
    # the project-wide role of deployments before the split is revoked too
    assert (f"{ROLES}/mirrorVipMover", F, f"project:{PROJECT}") in revoked


def test_role_file_scope_comments_match_where_permissions_are_granted() -> None:
    render_iam = load_deploy_script("render_iam")
    for line in (DEPLOY_DIR / "function-role.yaml").read_text().splitlines():
        if match := re.fullmatch(r"  - (compute\.\S+)  # \[(\w+)\]", line):
            assert render_iam.scope_of(match.group(1)) == match.group(2), line
    role = yaml.safe_load((DEPLOY_DIR / "function-role.yaml").read_text())
    tagged = re.findall(
        r"^  - (compute\.\S+)  # \[\w+\]$", (DEPLOY_DIR / "function-role.yaml").read_text(), re.M
    )
    assert tagged == role["includedPermissions"], "every permission says where it is granted"


@pytest.mark.parametrize(
    ("permission", "message"),
    [
        ("compute.disks.get", "no scope decided for 'disks'"),
        ("storage.objects.get", "is not a compute.X.Y permission"),
    ],
)
def test_a_permission_of_an_undecided_scope_stops_the_deployment(
    tmp_path: Path, permission: str, message: str
) -> None:
    role = yaml.safe_load((DEPLOY_DIR / "function-role.yaml").read_text())
    role["includedPermissions"].append(permission)
    role_file = tmp_path / "role.yaml"
    role_file.write_text(yaml.safe_dump(role))
    render_iam = load_deploy_script("render_iam")
    with pytest.raises(render_iam.RoleError, match=re.escape(message)):
        render_iam.split_role(role, "mirrorVipMover")


def test_a_mirror_in_another_project_is_refused_before_any_grant(tmp_path: Path) -> None:
    mirrors = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text())
    mirrors["mirrors"]["IRISMIRROR"]["project"] = "other-project-1"
    config = tmp_path / "mirrors.yaml"
    config.write_text(yaml.safe_dump(mirrors))
    result = script.run_deploy(
        "--dry-run", "iam", config=script.write_config(tmp_path, MIRROR_CONFIG_FILE=str(config))
    )
    assert result.returncode != 0
    assert "mirrors.IRISMIRROR.project: 'other-project-1' is not" in result.stderr
    assert not [
        line
        for line in result.stdout.splitlines()
        if "-iam-policy-binding" in line or "roles create" in line
    ]
