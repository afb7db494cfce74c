"""Child processes that must not outlive their owner: the Pub/Sub emulator's JVM, the function.

Each runs in its own process group (`start_new_session`), because what we start forks (the SDK
launcher execs java; functions-framework runs a gunicorn arbiter and worker) and killing only the
first process leaves the rest holding the port. Readiness is "the port accepts connections",
polled with a deadline, never a fixed sleep. Stopping signals the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

POLL_INTERVAL_S = 0.02


class StartupError(RuntimeError):
    """A child process exited while starting, or did not listen in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for programs that take a port number, not a socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ProcessGroup:
    """One command started in its own process group, its output appended to `log_path`.

    Args:
        name: What to call it in errors (`Pub/Sub emulator`, `function`).
        command: The argument list.
        log_path: Where stdout and stderr go (appended to: a restart keeps one log).
        env: The whole environment (None: inherit).
        cwd: Working directory (None: inherit).
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed by stop or kill)
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what the process wrote, for error messages."""
        try:
            return self.log_path.read_bytes()[-chars:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_port(self, host: str, port: int, timeout: float) -> None:
        """Return once host:port accepts connections; on exit or timeout stop and raise.

        Raises:
            StartupError: the process exited first, or `timeout` passed.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise StartupError(
                    f"{self.name} exited with {code} while starting:\n{self.log_tail()}"
                )
            if port_accepts(host, port, timeout=0.1):
                return
            time.sleep(POLL_INTERVAL_S)  # polling interval, not a wait for readiness
        self.stop()
        within = f"within {timeout:.0f} s"
        raise StartupError(
            f"{self.name} did not listen on {host}:{port} {within}:\n{self.log_tail()}"
        )

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL the whole group at once (a crash: no cleanup) and reap the leader."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=timeout)
        self._log.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL it if the leader lingers, then kill any straggler."""
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=timeout)
        self._signal(signal.SIGKILL)  # e.g. a gunicorn worker left in the group
        self._log.close()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
