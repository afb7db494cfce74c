"""The Cloud Function as a local process, because a crash test needs a real one to kill.
functions-framework serves `on_mirror_event` from function/main.py in a subprocess with its own
process group, so a test can SIGKILL it (gunicorn arbiter and worker together) mid-move and
nothing it forks survives a stop; the stack and the benchmark's cold-start measurement both run
it this way. The function's structured outcome lines are parsed back from its stdout, which is
all the stack ever takes from the function's own word.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from emulators.pubsub import port_accepts

REPO = Path(__file__).resolve().parents[1]
FUNCTION_DIR = REPO / "function"
FUNCTION_SOURCE = FUNCTION_DIR / "main.py"
COMPONENT = "mirror-vip"

JsonDict = dict[str, Any]


class StackError(RuntimeError):
    """A part of the stack did not start, or something awaited did not happen in time.

    Defined here, the lowest module that raises it, so that `stack` can import it without a cycle.
    """


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

    Own process group because functions-framework runs gunicorn (an arbiter and a worker): a
    kill must reach both, and a crash test kills the whole group with SIGKILL.

    Args:
        port: Port to serve on (the push subscription's endpoint names it, so restarts reuse it).
        env: Extra environment (MIRROR_CONFIG, COMPUTE_API_ENDPOINT, THREADS, ...).
        log_path: Where stdout and stderr go; outcome lines are parsed from it. Appended to, so
            a restarted function keeps one log.
    """

    def __init__(self, port: int, env: Mapping[str, str], log_path: Path) -> None:
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0
        self.ready_at = 0.0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "functions_framework",
            "--target=on_mirror_event",
            f"--source={FUNCTION_SOURCE}",
            "--signature-type=cloudevent",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]

    def start(self, timeout: float = 60.0) -> FunctionProcess:
        """Start and return once the port accepts connections (`ready_at - started_at` is the
        cold start: interpreter, imports, config, Compute clients, gunicorn)."""
        if self.running:
            raise StackError("function already running")
        env = os.environ.copy() | self.env
        env["PYTHONPATH"] = os.pathsep.join(
            [str(FUNCTION_DIR), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (owned until stop)
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(),
            cwd=FUNCTION_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise StackError(f"function exited with {code} while starting:\n{self.log_tail()}")
            if port_accepts("127.0.0.1", self.port, timeout=0.1):
                self.ready_at = time.monotonic()
                return self
            time.sleep(0.02)  # polling interval for the port, not a wait for readiness
        self.stop()
        raise StackError(f"function did not listen on {self.port} in {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, no cleanup, no response to Pub/Sub."""
        self._signal_group(signal.SIGKILL)
        self._reap(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group (gunicorn shuts its worker down), SIGKILL what is left. Idempotent."""
        if self._proc is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
            self._signal_group(signal.SIGKILL)  # stragglers in the group (a gunicorn worker)
            self._reap(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    def _reap(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.wait(timeout=timeout)

    def log_text(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def outcomes(self) -> list[JsonDict]:
        """Every outcome line the function (all its incarnations) has written so far."""
        return outcome_lines(self.log_text())
