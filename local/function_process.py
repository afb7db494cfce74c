"""The Cloud Function as a local process, because a crash test needs a real one to kill.

functions-framework serves `on_mirror_event` from function/main.py in its own process group
(`emulators.process.ProcessGroup`: an arbiter and a worker, killed together), so a test can
SIGKILL it mid-move and nothing it forks survives a stop. The stack and the benchmark's cold-start
measurement both run it this way. Its structured outcome lines are parsed back from its output,
which is all the stack ever takes from the function's own word.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from emulators import JsonDict
from emulators.process import ProcessGroup, StartupError

REPO = Path(__file__).resolve().parents[1]
FUNCTION_DIR = REPO / "function"
FUNCTION_SOURCE = FUNCTION_DIR / "main.py"
COMPONENT = "mirror-vip"
"""The outcome line's `component` (function/vipmover/outcome.py, which local/ cannot import)."""


def outcome_lines(text: str) -> list[JsonDict]:
    """The function's structured outcome records among everything it wrote to stdout."""
    records: list[JsonDict] = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("component") == COMPONENT:
                records.append(record)
    return records


class FunctionProcess:
    """functions-framework serving `on_mirror_event` from function/main.py, in its own group.

    Args:
        port: Port to serve on (the push subscription's endpoint names it, so restarts reuse it).
        env: Extra environment (MIRROR_CONFIG, COMPUTE_API_ENDPOINT, THREADS, ...).
        log_path: Where stdout and stderr go; outcome lines are parsed from it. Appended to, so
            a restarted function keeps one log.
        source: The function's source file; another one only for the cold-start benchmark
            (a bare hello-world function, an earlier release).
        target: The function to serve in `source`.
    """

    def __init__(
        self,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        *,
        source: Path = FUNCTION_SOURCE,
        target: str = "on_mirror_event",
    ) -> None:
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self.source = source
        self.target = target
        self._group: ProcessGroup | None = None
        self.started_at = 0.0
        self.ready_at = 0.0

    @property
    def running(self) -> bool:
        return self._group is not None and self._group.running

    @property
    def pid(self) -> int | None:
        return self._group.pid if self._group is not None else None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "functions_framework",
            f"--target={self.target}",
            f"--source={self.source}",
            "--signature-type=cloudevent",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]

    def start(self, timeout: float = 60.0) -> FunctionProcess:
        """Start and return once the port accepts connections (`ready_at - started_at` is the
        cold start: interpreter, imports, config, Compute clients, gunicorn)."""
        if self.running:
            raise StartupError("function already running")
        env = os.environ.copy() | self.env
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.source.parent), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.started_at = time.monotonic()
        self._group = ProcessGroup(
            "function", self.command(), self.log_path, env=env, cwd=self.source.parent
        )
        try:
            self._group.wait_for_port("127.0.0.1", self.port, timeout)
        except BaseException:
            self.stop()
            raise
        self.ready_at = time.monotonic()
        return self

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, no cleanup, no response to Pub/Sub."""
        group, self._group = self._group, None
        if group is not None:
            group.kill()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group (gunicorn shuts its worker down), SIGKILL what is left. Idempotent."""
        group, self._group = self._group, None
        if group is not None:
            group.stop(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def outcomes(self) -> list[JsonDict]:
        """Every outcome line the function (all its incarnations) has written so far."""
        return outcome_lines(self.log_text())
