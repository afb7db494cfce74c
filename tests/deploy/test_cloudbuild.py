"""Cloud Build: cloudbuild.yaml only tests (the project's one test command, no deploy rights);
cloudbuild-deploy.yaml deploys with deploy.sh as its own service account, after refusing any
substitution value outside its allow-list, from an image pinned by digest."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .script import DEPLOY_DIR, REPO_ROOT

pytestmark = pytest.mark.unit

TEST_COMMAND = "make test"
BUILDS = ("cloudbuild.yaml", "cloudbuild-deploy.yaml")
DIGEST = re.compile(r"^[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")
CHECK = DEPLOY_DIR / "check_build_substitutions.sh"


def load(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((REPO_ROOT / name).read_text())
    return parsed


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    return load("cloudbuild.yaml")


@pytest.fixture(scope="module")
def deploy_build() -> dict[str, Any]:
    return load("cloudbuild-deploy.yaml")


def step(build: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in build["steps"] if s.get("id") == step_id]
    assert len(found) == 1, f"expected one step {step_id!r}"
    return found[0]


def script_of(step: dict[str, Any]) -> str:
    return "\n".join(str(arg) for arg in step["args"])


def last_command(script: str) -> str:
    lines = [line.strip() for line in script.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    return commands[-1]


def test_test_build_only_tests(build: dict[str, Any]) -> None:
    assert [s.get("id") for s in build["steps"]] == ["test"]
    lines = (REPO_ROOT / "cloudbuild.yaml").read_text().splitlines()
    assert not [line for line in lines if "deploy" in line and not line.lstrip().startswith("#")]
    assert build["serviceAccount"] == (
        "projects/$PROJECT_ID/serviceAccounts/mirror-vip-ci@$PROJECT_ID.iam.gserviceaccount.com"
    )


def test_test_step_runs_ci_run_which_runs_the_readme_test_command(build: dict[str, Any]) -> None:
    assert last_command(script_of(step(build, "test"))) == ".ci/run"
    assert last_command((REPO_ROOT / ".ci" / "run").read_text()) == TEST_COMMAND
    readme = REPO_ROOT / "README.md"
    assert readme.is_file(), "README.md is missing: it must document the test command"
    assert re.search(rf"^\s*(\$ )?{re.escape(TEST_COMMAND)}\s*$", readme.read_text(), re.M), (
        f"README.md does not show `{TEST_COMMAND}` as the test command"
    )


@pytest.mark.parametrize("name", BUILDS)
def test_every_step_runs_the_image_pinned_by_digest(name: str) -> None:
    build = load(name)
    assert {s["name"] for s in build["steps"]} == {"${_IMAGE}"}
    assert DIGEST.match(build["substitutions"]["_IMAGE"]), build["substitutions"]["_IMAGE"]


@pytest.mark.parametrize("name", BUILDS)
def test_unknown_substitutions_fail_the_build(name: str) -> None:
    assert load(name)["options"]["substitutionOption"] == "MUST_MATCH"
    assert load(name)["options"]["logging"] == "CLOUD_LOGGING_ONLY"  # required with serviceAccount


@pytest.mark.parametrize("name", BUILDS)
def test_every_substitution_used_is_declared_and_documented(name: str) -> None:
    text = (REPO_ROOT / name).read_text()
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", text))
    assert used == set(load(name)["substitutions"])
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    for each in used:
        assert f"#   {each}" in header, f"{each} is not documented in {name}'s header"


def test_deploy_build_runs_as_the_deploy_account(deploy_build: dict[str, Any]) -> None:
    assert deploy_build["serviceAccount"] == (
        "projects/$PROJECT_ID/serviceAccounts/"
        "mirror-vip-deployer@$PROJECT_ID.iam.gserviceaccount.com"
    )


def test_substitutions_reach_the_steps_only_as_environment(deploy_build: dict[str, Any]) -> None:
    for each in deploy_build["steps"]:
        assert "${_" not in script_of(each), f"step {each['id']} pastes a substitution as code"
        assert "${_" not in " ".join(each.get("env", []))
    assert set(deploy_build["options"]["env"]) == {
        "DEPLOY_REGION=${_REGION}",
        "DEPLOY_CONFIG=${_DEPLOY_CONFIG}",
        "DEPLOY_STEPS=${_DEPLOY_STEPS}",
    }


def test_deploy_step_validates_then_runs_deploy_sh_non_interactively(
    deploy_build: dict[str, Any],
) -> None:
    validate = step(deploy_build, "validate")
    assert validate["args"] == [str(CHECK.relative_to(REPO_ROOT))]
    deploy = step(deploy_build, "deploy")
    assert deploy["waitFor"] == ["validate"]
    words = shlex.split(last_command(script_of(deploy)))
    assert words[0] == "MIRROR_VIP_REGION=$$DEPLOY_REGION"
    assert words[1] == "deploy/gcp/deploy.sh"
    assert words[words.index("--config") + 1] == "$$DEPLOY_CONFIG"
    assert "--dry-run" not in words
    assert "MIRROR_VIP_PROJECT=$PROJECT_ID" in deploy["env"]


def test_default_deploy_config_is_the_documented_file(deploy_build: dict[str, Any]) -> None:
    config = Path(deploy_build["substitutions"]["_DEPLOY_CONFIG"])
    assert config.parent == Path("deploy/gcp")
    assert (REPO_ROOT / config.parent / f"{config.name}.example").is_file()


def check(tmp_path: Path, **values: str) -> subprocess.CompletedProcess[str]:
    """Run the validation step in a copy of the source that holds deploy/gcp/deploy.env."""
    (tmp_path / "deploy" / "gcp").mkdir(parents=True, exist_ok=True)
    (tmp_path / "deploy" / "gcp" / "deploy.env").write_text("PROJECT=p\n")
    env = {
        "DEPLOY_REGION": "us-central1",
        "DEPLOY_CONFIG": "deploy/gcp/deploy.env",
        "DEPLOY_STEPS": "all",
    } | values
    return subprocess.run(
        ["bash", str(CHECK)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
        env=dict(os.environ) | env,
    )


def deploy_sh_steps() -> list[str]:
    """deploy.sh's ALL_STEPS."""
    text = (DEPLOY_DIR / "deploy.sh").read_text()
    found = re.search(r"^ALL_STEPS=\(([^)]*)\)", text, re.M)
    assert found is not None
    return found.group(1).split()


def test_every_deploy_step_is_accepted(tmp_path: Path) -> None:
    for steps in ["all", *deploy_sh_steps(), " ".join(deploy_sh_steps())]:
        result = check(tmp_path, DEPLOY_STEPS=steps)
        assert result.returncode == 0, (steps, result.stderr)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("DEPLOY_STEPS", "teardown", "'teardown' is not one of"),
        ("DEPLOY_STEPS", "all; gcloud projects delete p", "'all;' is not one of"),
        ("DEPLOY_STEPS", "$(id)", "'$(id)' is not one of"),
        ("DEPLOY_STEPS", "*", "'*' is not one of"),
        ("DEPLOY_STEPS", "", "_DEPLOY_STEPS is empty"),
        ("DEPLOY_REGION", "us-central1 --project=other", "_REGION"),
        ("DEPLOY_CONFIG", "../../etc/passwd", "_DEPLOY_CONFIG"),
        ("DEPLOY_CONFIG", "deploy/gcp/missing.env", "is not in the source"),
    ],
)
def test_values_outside_the_allow_list_are_refused(
    tmp_path: Path, setting: str, value: str, named: str
) -> None:
    result = check(tmp_path, **{setting: value})
    assert result.returncode == 2
    assert named in result.stderr
