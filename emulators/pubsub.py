"""Start and stop Google's Pub/Sub emulator (Java) for tests and the local demo.

Why not `gcloud beta emulators pubsub start`: that wrapper starts a Java child and killing the
wrapper leaves the JVM running and holding its port. We run the SDK's own launcher
(`<sdk>/platform/pubsub-emulator/bin/cloud-pubsub-emulator`, a shell script that `exec`s java) in
its own process group and stop the whole group, so nothing survives `stop()`.

Readiness is "the gRPC port accepts connections"; the JVM needs a few seconds on a busy machine.

Library use: clients are pointed at the emulator explicitly, never through the process-wide
`PUBSUB_EMULATOR_HOST`, so one process can talk to several emulators (and to nothing else)::

    with PubSubEmulator() as emu:
        publisher = emulator_publisher(emu.host)

Command line (prints the export line, runs until Ctrl-C)::

    python -m emulators.pubsub --port 8085 --topic projects/demo-project/topics/vip
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Self

from emulators.process import ProcessGroup, StartupError, free_port
from emulators.service import Service, stop_on_signals

LAUNCHER_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
DEFAULT_SDK_ROOTS = (Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"))
LOG_TAIL_CHARS = 2000


class PubSubEmulatorError(StartupError):
    """The emulator could not be found, did not start in time, or died while starting."""


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
    """

    def __init__(
        self, port: int = 0, *, bind_host: str = "127.0.0.1", startup_timeout: float = 60.0
    ) -> None:
        self._requested_port = port
        self.bind_host = bind_host
        self.startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._group: ProcessGroup | None = None
        self.port = 0

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`: the endpoint to give clients (`emulator_publisher(host)`)."""
        if not self.port:
            raise PubSubEmulatorError("emulator not started")
        return f"{self.bind_host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._group is not None and self._group.running

    def log_tail(self) -> str:
        """The last part of the emulator's output, for error messages."""
        return self._group.log_tail(LOG_TAIL_CHARS) if self._group is not None else ""

    def start(self) -> Self:
        """Start the JVM and return once its port accepts connections."""
        if self._group is not None:
            raise PubSubEmulatorError("emulator already started")
        launcher = find_launcher()
        self._tmp = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
        workdir = Path(self._tmp.name)
        self.port = self._requested_port or free_port(self.bind_host)
        command = [str(launcher), f"--host={self.bind_host}", f"--port={self.port}"]
        (workdir / "data").mkdir()
        command.append(f"--dir={workdir / 'data'}")
        self._group = ProcessGroup("Pub/Sub emulator", command, workdir / "emulator.log")
        try:
            self._group.wait_for_port(self.bind_host, self.port, self.startup_timeout)
        except StartupError as error:
            self.stop()
            raise PubSubEmulatorError(str(error)) from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and remove temporary files."""
        group, self._group = self._group, None
        if group is not None:
            group.stop(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def emulator_publisher(host: str, **options: Any) -> Any:
    """A `PublisherClient` for the emulator at host: a plain-text gRPC channel, no credentials.

    What the client library does when `PUBSUB_EMULATOR_HOST` is set, without the variable.

    Args:
        host: `host:port` of the emulator.
        **options: more `PublisherClient` arguments (`publisher_options`, `batch_settings`).
    """
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLC0415, PLR0402 (heavy)
    from google.pubsub_v1.services.publisher.transports import (  # noqa: PLC0415
        PublisherGrpcTransport,
    )

    transport = PublisherGrpcTransport(host=host, channel=_insecure_channel(host))
    return pubsub_v1.PublisherClient(transport=transport, **options)


def emulator_subscriber(host: str) -> Any:
    """A `SubscriberClient` for the emulator at host, built as `emulator_publisher` is."""
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLC0415, PLR0402 (heavy)
    from google.pubsub_v1.services.subscriber.transports import (  # noqa: PLC0415
        SubscriberGrpcTransport,
    )

    transport = SubscriberGrpcTransport(host=host, channel=_insecure_channel(host))
    return pubsub_v1.SubscriberClient(transport=transport)


def _insecure_channel(host: str) -> Any:
    grpc = importlib.import_module("grpc")  # ships no type information
    return grpc.insecure_channel(host)


def create_topics(host: str, topics: list[str]) -> None:
    """Create `projects/P/topics/T` topics on the emulator at host (idempotent)."""
    from google.api_core import exceptions  # noqa: PLC0415 (heavy; only for the CLI)

    publisher = emulator_publisher(host)
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
    stop_requested = stop_on_signals()
    with PubSubEmulator(
        args.port, bind_host=args.bind_host, startup_timeout=args.startup_timeout
    ) as emu:
        if args.topic:
            create_topics(emu.host, args.topic)
        print(f"export PUBSUB_EMULATOR_HOST={emu.host}", flush=True)  # other clients
        print(f"export MIRRORVIP_PUBSUB_ENDPOINT={emu.host}", flush=True)  # the publisher
        while emu.running and not stop_requested.wait(0.5):
            pass
        if not emu.running:
            print(f"emulator exited:\n{emu.log_tail()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
