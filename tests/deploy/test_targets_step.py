"""deploy.sh's `targets` step: a target instance per member, and route mode's canIpForward.

The dry run shows what a first deployment creates; the real run is driven against the Compute
emulator by the real gcloud CLI, which is what stops a deployment whose route-mode member would
drop the VIP's packets (canIpForward can only be set when a VM is created).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from emulators.compute.server import ComputeEmulator
from local.mirrors import compute_state, mirror_config, route_layout

from .script import PROJECT, mutations, parse_dry_run, run_deploy, write_config

pytestmark = pytest.mark.integration

LAYOUT = route_layout(0, project=PROJECT)


def route_config(tmp_path: Path) -> Path:
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(mirror_config([LAYOUT])))
    return path


def gcloud_env(emulator: ComputeEmulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "MIRROR_VIP_"))}
    return env | {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": f"{emulator.url}/compute/v1/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }


def test_a_first_deployment_creates_one_target_instance_per_member(tmp_path: Path) -> None:
    config = write_config(tmp_path, MIRROR_CONFIG_FILE=str(route_config(tmp_path)))

    result = run_deploy("--dry-run", "targets", config=config)

    assert result.returncode == 0, result.stderr
    commands = parse_dry_run(result.stdout)
    created = [
        c for c in commands if c.startswith("gcloud", "compute", "target-instances", "create")
    ]
    assert [(c.words[-1], c.flag("instance"), c.flag("zone")) for c in created] == [
        (m.target_instance, m.name, m.zone) for m in LAYOUT.members
    ]
    checked = [c for c in commands if c.startswith("gcloud", "compute", "instances", "describe")]
    assert [c.flag("format") for c in checked] == ["value(canIpForward)"] * len(LAYOUT.members)


def test_existing_target_instances_and_forwarding_members_need_no_change(tmp_path: Path) -> None:
    with ComputeEmulator(compute_state([LAYOUT])) as emulator:
        config = write_config(tmp_path, MIRROR_CONFIG_FILE=str(route_config(tmp_path)))

        result = run_deploy("targets", config=config, env=gcloud_env(emulator, tmp_path))

    assert result.returncode == 0, result.stderr
    assert mutations(result.stderr) == []


def test_a_route_member_without_can_ip_forward_stops_the_deployment(tmp_path: Path) -> None:
    members = (LAYOUT.members[0], dataclasses.replace(LAYOUT.members[1], can_ip_forward=False))
    layout = dataclasses.replace(LAYOUT, members=members)
    with ComputeEmulator(compute_state([layout])) as emulator:
        config = write_config(tmp_path, MIRROR_CONFIG_FILE=str(route_config(tmp_path)))

        result = run_deploy("targets", config=config, env=gcloud_env(emulator, tmp_path))

    assert result.returncode == 2
    assert f"{members[1].name} has canIpForward=false" in result.stderr
    assert "--can-ip-forward" in result.stderr


def test_a_full_deployment_creates_the_target_instances_before_the_function(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, MIRROR_CONFIG_FILE=str(route_config(tmp_path)))

    result = run_deploy("--dry-run", config=config)

    assert result.returncode == 0, result.stderr
    words = [c.words[:4] for c in parse_dry_run(result.stdout)]
    create = words.index(("gcloud", "compute", "target-instances", "create"))
    assert create < words.index(("gcloud", "functions", "deploy", "mirror-vip"))
