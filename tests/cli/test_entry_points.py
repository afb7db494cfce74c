"""The command is reachable as `mirror-vip` and `python -m vipmover`, and the function's entry
point imports none of it (its cold start is measured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.function_process import FUNCTION_DIR
from support import mirrors

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).parent / "mirror-vip"


def test_the_function_entry_point_does_not_import_the_command() -> None:
    env = {
        **os.environ,
        "MIRROR_CONFIG": json.dumps(mirrors.config()),
        "COMPUTE_API_ENDPOINT": "http://127.0.0.1:9",
        "PYTHONPATH": str(FUNCTION_DIR),
    }
    probe = "import sys, main; print(sorted(m for m in sys.modules if m.startswith('vipmover')))"

    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout

    assert "vipmover.handler" in loaded
    assert "vipmover.cli" not in loaded


@pytest.mark.parametrize(
    ("command", "pythonpath"),
    [([str(SCRIPT)], ""), ([sys.executable, "-m", "vipmover"], str(FUNCTION_DIR))],
    ids=["console-script", "python-m"],
)
def test_the_command_runs_and_a_missing_config_exits_2(command: list[str], pythonpath: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRROR_CONFIG", "PYTHON"))}
    env["PYTHONPATH"] = pythonpath

    done = subprocess.run(
        [*command, "status", "--json"], env=env, capture_output=True, text=True, check=False
    )

    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["error"] == "MIRROR_CONFIG or MIRROR_CONFIG_FILE must be set"
