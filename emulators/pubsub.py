"""Start and stop Google's Pub/Sub emulator (Java) for tests and the local demo.

Why not `gcloud beta emulators pubsub start`: that wrapper starts a Java child and killing the
wrapper leaves the JVM running and holding its port. We run the SDK's own launcher
(`<sdk>/platform/pubsub-emulator/bin/cloud-pubsub-emulator`, a shell script that `exec`s java) in
its own process group and stop the whole group, so nothing survives `stop()`.

Readiness is "the gRPC port accepts connections" (polled with a deadline, never a fixed sleep); the
JVM needs a few seconds on a busy machine.

Library use::

    with PubSubEmulator() as emu:
        os.environ["PUBSUB_EMULATOR_HOST"] = emu.host

Command line (prints the export line, runs until Ctrl-C)::

    python deploy/local/pubsub_emulator.py --port 8085 --topic projects/demo-project/topics/vip
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Self

from emulators.service import Service

LAUNCHER_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
DEFAULT_SDK_ROOTS = (Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"))
LOG_TAIL_CHARS = 2000


class PubSubEmulatorError(RuntimeError):
    """The emulator could not be found, did not start in time, or died while starting."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the emulator takes a port number, not a socket)."""
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


def find_launcher() -> Path:
    """Locate the SDK's emulator launcher.

    Order: `$PUBSUB_EMULATOR_LAUNCHER`, `$CLOUDSDK_ROOT_DIR`, the Debian package locations, then
    `gcloud info` (slowest, so last).
    """
    explicit = os.environ.get("PUBSUB_EMULATOR_LAUNCHER")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise PubSubEmulatorError(f"PUBSUB_EMULATOR_LAUNCHER={explicit} is not a file")
        return path
    roots: list[Path] = []
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        roots.append(Path(os.environ["CLOUDSDK_ROOT_DIR"]))
    roots.extend(DEFAULT_SDK_ROOTS)
    for root in roots:
        if (root / LAUNCHER_RELATIVE).is_file():
            return root / LAUNCHER_RELATIVE
    gcloud = shutil.which("gcloud")
    if gcloud:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            if out and (Path(out) / LAUNCHER_RELATIVE).is_file():
                return Path(out) / LAUNCHER_RELATIVE
    raise PubSubEmulatorError(
        "Pub/Sub emulator launcher not found: install google-cloud-cli-pubsub-emulator "
        "or set PUBSUB_EMULATOR_LAUNCHER"
    )


class PubSubEmulator(Service):
    """One Pub/Sub emulator JVM, owned by this object.

    Args:
        port: port to listen on; 0 picks a free one.
        bind_host: interface to listen on.
        startup_timeout: seconds to wait for the port before giving up.
        launcher: emulator launcher script; found with `find_launcher()` when None.
        data_dir: emulator data directory; a temporary one when None (removed on stop).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        bind_host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        launcher: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self._requested_port = port
        self.bind_host = bind_host
        self.startup_timeout = startup_timeout
        self._launcher = launcher
        self._data_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST."""
        if not self.port:
            raise PubSubEmulatorError("emulator not started")
        return f"{self.bind_host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self) -> str:
        """The last part of the emulator's output, for error messages."""
        if self._log is None:
            return ""
        self._log.flush()
        data = Path(self._log.name).read_bytes()
        return data[-LOG_TAIL_CHARS:].decode(errors="replace")

    def start(self) -> Self:
        """Start the JVM and return once its port accepts connections."""
        if self._proc is not None:
            raise PubSubEmulatorError("emulator already started")
        launcher = self._launcher or find_launcher()
        self._tmp = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
        data_dir = self._data_dir or Path(self._tmp.name) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(Path(self._tmp.name) / "emulator.log", "w+b")  # noqa: SIM115 (owned until stop)
        self.port = self._requested_port or free_port(self.bind_host)
        self._proc = subprocess.Popen(
            [str(launcher), f"--host={self.bind_host}", f"--port={self.port}", f"--dir={data_dir}"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills the JVM too
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PubSubEmulatorError(
                    f"Pub/Sub emulator exited with {self._proc.returncode} while starting:\n"
                    f"{self.log_tail()}"
                )
            if port_accepts(self.bind_host, self.port):
                return
            time.sleep(0.05)  # polling interval, not a wait for readiness
        raise PubSubEmulatorError(
            f"Pub/Sub emulator did not listen on {self.bind_host}:{self.port} within "
            f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and remove temporary files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait(timeout=timeout)
            # The launcher execs java, but kill any straggler left in the group anyway.
            _kill_group(proc, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def create_topics(host: str, topics: list[str]) -> None:
    """Create `projects/P/topics/T` topics on the emulator at host (idempotent)."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLC0415, PLR0402
    from google.api_core import exceptions  # noqa: PLC0415 (heavy; only for the CLI)

    publisher = pubsub_v1.PublisherClient()
    try:
        for topic in topics:
            with contextlib.suppress(exceptions.AlreadyExists):
                publisher.create_topic(name=topic, timeout=10)
    finally:
        publisher.transport.close()


def main(argv: list[str] | None = None) -> int:
    """Run an emulator in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--bind-host", default="127.0.0.1")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--topic", action="append", default=[], help="projects/P/topics/T to create; repeatable"
    )
    args = parser.parse_args(argv)
    stop_requested = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with PubSubEmulator(
        args.port, bind_host=args.bind_host, startup_timeout=args.startup_timeout
    ) as emu:
        if args.topic:
            create_topics(emu.host, args.topic)
        print(f"export PUBSUB_EMULATOR_HOST={emu.host}", flush=True)
        while emu.running and not stop_requested.wait(0.5):
            pass
        if not emu.running:
            print(f"emulator exited:\n{emu.log_tail()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
