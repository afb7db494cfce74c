"""Every shell script in the repository is shellcheck clean."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import require_tool
from .script import REPO_ROOT

pytestmark = pytest.mark.unit

SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "__pycache__",
}


def shell_scripts() -> list[Path]:
    """*.sh files, plus extension-less scripts whose first line names bash or sh (.ci/run)."""
    found = []
    for directory, subdirs, files in os.walk(REPO_ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
        found += [p for name in files if is_shell_script(p := Path(directory) / name)]
    return sorted(found)


def is_shell_script(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    if path.suffix or not path.is_file():
        return False
    with path.open("rb") as handle:
        first = handle.readline(100)
    return first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh"))


def test_deploy_script_is_found() -> None:
    assert REPO_ROOT / "deploy" / "gcp" / "deploy.sh" in shell_scripts()


def test_shell_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck (.ci/run does)")
    scripts = shell_scripts()
    result = subprocess.run(
        [shellcheck, "--external-sources", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
