"""Nothing heavy is imported to start the function or to handle an event.

google-cloud-compute's import took 2.7-3.0 s and google-cloud-logging's handler 0.8 s: together
most of a cold start, and every failover lands on a cold function. The benchmark measures the
start; this test fails at once if one of them (or the operator's command) creeps back in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import mirrors

pytestmark = pytest.mark.unit

FUNCTION = Path(__file__).resolve().parents[2] / "function"
HEAVY = ("google.cloud.compute_v1", "google.cloud.logging", "google.api_core", "vipmover.cli")

PROBE = """
import json, sys
import main
from vipmover.handler import handle
handle(main.APP, "m-1", {"message": {"data": "", "messageId": "m-1"}})
print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))))
"""


def test_starting_and_handling_an_event_imports_nothing_heavy() -> None:
    env = {
        **os.environ,
        "MIRROR_CONFIG": json.dumps(mirrors.config()),
        "COMPUTE_API_ENDPOINT": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY],
        cwd=FUNCTION,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
