"""cloudbuild.yaml tests first, with the project's one test command, then deploys with deploy.sh."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from .script import REPO_ROOT

pytestmark = pytest.mark.unit

TEST_COMMAND = "make test"


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((REPO_ROOT / "cloudbuild.yaml").read_text())
    return parsed


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


def test_test_step_comes_before_deploy_and_deploy_waits_for_it(build: dict[str, Any]) -> None:
    ids = [s.get("id") for s in build["steps"]]
    assert ids.index("test") < ids.index("deploy")
    assert step(build, "deploy")["waitFor"] == ["test"]


def test_test_step_runs_ci_run_which_runs_the_readme_test_command(build: dict[str, Any]) -> None:
    assert last_command(script_of(step(build, "test"))) == ".ci/run"
    assert last_command((REPO_ROOT / ".ci" / "run").read_text()) == TEST_COMMAND
    readme = REPO_ROOT / "README.md"
    assert readme.is_file(), "README.md is missing: it must document the test command"
    assert re.search(rf"^\s*(\$ )?{re.escape(TEST_COMMAND)}\s*$", readme.read_text(), re.M), (
        f"README.md does not show `{TEST_COMMAND}` as the test command"
    )


def test_test_step_image_has_the_emulator(build: dict[str, Any]) -> None:
    image = step(build, "test")["name"]
    assert image == "${_IMAGE}"
    assert build["substitutions"]["_IMAGE"].endswith(":emulators")
    assert step(build, "deploy")["name"] == image  # the deploy step reuses the test's .venv


def test_deploy_step_runs_deploy_sh_non_interactively(build: dict[str, Any]) -> None:
    deploy = step(build, "deploy")
    words = shlex.split(last_command(script_of(deploy)))
    assert words[0] == "deploy/gcp/deploy.sh"
    assert words[words.index("--config") + 1] == "${_DEPLOY_CONFIG}"
    assert "--dry-run" not in words
    assert "MIRROR_VIP_PROJECT=$PROJECT_ID" in deploy["env"]
    assert "MIRROR_VIP_REGION=${_REGION}" in deploy["env"]


def test_every_substitution_used_is_declared_and_documented(build: dict[str, Any]) -> None:
    text = (REPO_ROOT / "cloudbuild.yaml").read_text()
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", text))
    assert used == set(build["substitutions"])
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    for name in used:
        assert f"#   {name}" in header, f"{name} is not documented in cloudbuild.yaml's header"


def test_default_deploy_config_is_the_documented_file(build: dict[str, Any]) -> None:
    config = Path(build["substitutions"]["_DEPLOY_CONFIG"])
    assert config.parent == Path("deploy/gcp")
    assert (REPO_ROOT / config.parent / f"{config.name}.example").is_file()
