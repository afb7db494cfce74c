"""deploy.sh's `egress` step: Direct VPC egress for the function, and one firewall rule that lets
exactly the function's egress subnet reach the members' IRIS health port(s) (corroboration)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from .script import DEPLOY_DIR, EGRESS_SUBNET, IRIS_SA, Command, dry_run, run_deploy
from .script import write_config as write_deploy_config

pytestmark = pytest.mark.unit

RULE = "mirror-vip-health-probes"


def only(commands: list[Command], *words: str) -> Command:
    matching = [c for c in commands if c.startswith(*words)]
    assert len(matching) == 1, f"expected one {' '.join(words)}, got {matching}"
    return matching[0]


def mirrors_with(tmp_path: Path, **corroborate: Any) -> Path:
    """The example config with a second mirror; `corroborate` per mirror name (absent: default)."""
    raw = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text())
    raw["mirrors"]["SECOND"] = {
        "private_vip": "10.0.0.251/32",
        "members": [
            {"instance": "iris-c", "zone": "us-central1-a"},
            {"instance": "iris-d", "zone": "us-central1-b"},
        ],
    }
    for name, value in corroborate.items():
        raw["mirrors"][name]["corroborate"] = value
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(raw))
    return path


def test_firewall_rule_admits_only_the_egress_subnet_to_the_health_port(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "egress")
    subnet = only(commands, "gcloud", "compute", "networks", "subnets", "describe")
    assert subnet.words[-1] == EGRESS_SUBNET
    create = only(commands, "gcloud", "compute", "firewall-rules", "create")
    assert create.words[-1] == RULE
    assert create.flag("direction") == "INGRESS"
    assert create.flag("action") == "ALLOW"
    assert create.flag("rules") == "tcp:52773"  # deploy's default corroborate URL
    assert create.flag("source-ranges") == "DRY_RUN_EGRESS_RANGE"  # the subnet's own range
    assert create.flag("network") == "DRY_RUN_EGRESS_NETWORK"
    assert create.flag("target-service-accounts") == IRIS_SA
    assert create.flag("source-tags") is None


def test_function_gets_direct_vpc_egress_for_private_ranges_after_it_is_deployed(
    tmp_path: Path,
) -> None:
    commands = dry_run(tmp_path)
    update = only(commands, "gcloud", "run", "services", "update")
    assert update.words[-1] == "mirror-vip"
    assert update.flag("subnet") == EGRESS_SUBNET
    assert update.flag("network") == "DRY_RUN_EGRESS_NETWORK"
    assert update.flag("vpc-egress") == "private-ranges-only"
    assert update.flag("region") == "us-central1"
    deploy = commands.index(only(commands, "gcloud", "functions", "deploy"))
    assert commands.index(update) > deploy


def test_every_mirrors_health_port_is_allowed(tmp_path: Path) -> None:
    config = mirrors_with(tmp_path, SECOND={"url": "https://{ip}:8443/csp/user/mirror_status.cxw"})
    commands = dry_run(tmp_path, "egress", MIRROR_CONFIG_FILE=str(config))
    rule = only(commands, "gcloud", "compute", "firewall-rules", "create")
    assert rule.flag("rules") == "tcp:8443,tcp:52773"


def test_a_mirror_without_corroboration_opens_no_port(tmp_path: Path) -> None:
    config = mirrors_with(tmp_path, IRISMIRROR=None)
    commands = dry_run(tmp_path, "egress", MIRROR_CONFIG_FILE=str(config))
    assert only(commands, "gcloud", "compute", "firewall-rules", "create").flag("rules") == (
        "tcp:52773"  # SECOND's default; IRISMIRROR probes nothing
    )


def test_no_corroboration_anywhere_skips_egress_and_needs_no_subnet(tmp_path: Path) -> None:
    config = mirrors_with(tmp_path, IRISMIRROR=None, SECOND=None)
    result = run_deploy(
        "--dry-run",
        "egress",
        config=write_deploy_config(tmp_path, MIRROR_CONFIG_FILE=str(config), EGRESS_SUBNET=""),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert "corroboration is off for every mirror" in result.stderr


def test_corroboration_without_an_egress_subnet_is_refused(tmp_path: Path) -> None:
    result = run_deploy(
        "--dry-run", "egress", config=write_deploy_config(tmp_path, EGRESS_SUBNET="")
    )
    assert result.returncode != 0
    assert "EGRESS_SUBNET is required" in result.stderr
    assert "firewall-rules" not in result.stdout


def test_teardown_deletes_the_firewall_rule(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "teardown")
    assert only(commands, "gcloud", "compute", "firewall-rules", "delete").words[-1] == RULE


SHIM = """#!/usr/bin/env bash
# Records every gcloud call; answers the egress subnet's network and range; the rule exists.
printf '%s\\n' "$*" >>"{log}"
case "$*" in
  "compute networks subnets describe"*) echo "vpc-a 10.8.0.0/26" ;;
esac
exit 0
"""


def test_an_existing_rule_is_updated_to_the_subnet_range_not_duplicated(tmp_path: Path) -> None:
    log = tmp_path / "gcloud.log"
    shim = tmp_path / "bin" / "gcloud"
    shim.parent.mkdir()
    shim.write_text(SHIM.format(log=log))
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}")

    result = run_deploy("egress", config=write_deploy_config(tmp_path), env=env)

    assert result.returncode == 0, result.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    changes = [c for c in calls if c[:2] in (["compute", "firewall-rules"], ["run", "services"])]
    assert [c[:3] for c in changes] == [
        ["compute", "firewall-rules", "describe"],
        ["compute", "firewall-rules", "update"],
        ["run", "services", "update"],
    ]
    assert "--source-ranges=10.8.0.0/26" in changes[1]
    assert "--rules=tcp:52773" in changes[1]
    assert f"--target-service-accounts={IRIS_SA}" in changes[1]
    assert "--network=vpc-a" in changes[2]
