"""The whole mirror-vip pipeline on one machine: what the demo, the e2e tests and the benchmark run.

`LocalStack` starts, on free ports and without cloud credentials:

* the Compute Engine emulator (in this process), holding the mirrors' VMs, VIPs and static IPs;
* a GCE metadata emulator (in this process) with one port per VM, so a publish "runs on" a VM;
* Google's Pub/Sub emulator (a JVM in its own process group) with the topic and a PUSH
  subscription to the function, as Eventarc has in the cloud;
* the Cloud Function under functions-framework, as a subprocess in its own process group (so a
  test can kill -9 it mid-move, and nothing it forks survives `stop`).

The publisher runs in this process, exactly as ^ZMIRROR's job calls it on a member:
`notify_become_primary(mirror, member)` with that member's metadata host. Everything the stack
reports (who holds the VIP, when an operation applied) is read from the emulators, never taken
from the function's word; the function's structured log lines are parsed from its stdout.

The Compute emulator records requests with `time.monotonic()` of this process, so publish calls,
API requests and operation end times share one clock: that is what the timelines are made of.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Self

from compute_emulator import ComputeEmulator
from lifecycle import Service
from metadata_emulator import VM, MetadataEmulator
from mirror_state import Member, instance_url, mirror_state, region_of, static_address
from pubsub_emulator import PubSubEmulator, free_port, port_accepts

REPO = Path(__file__).resolve().parents[2]
FUNCTION_DIR = REPO / "function"
FUNCTION_SOURCE = FUNCTION_DIR / "main.py"
PUBLISHER_DIR = REPO / "publisher"
COMPONENT = "mirror-vip"
DEFAULT_PROJECT = "iris-demo-1"
DEFAULT_TOPIC = "mirror-vip"
SUBNET_CIDR = "10.0.0.0/24"
SECONDARY_RANGES = {"vips": "10.1.0.0/24"}
PUBLISH_BUDGET_SECONDS = 10.0
"""The publisher's budget; the default 5 s is tight for a JVM emulator on a loaded 2-core box."""
MUTATING_TYPES = ("updateNetworkInterface", "deleteAccessConfig", "addAccessConfig", "setLabels")

JsonDict = dict[str, Any]


class StackError(RuntimeError):
    """A part of the stack did not start, or something awaited did not happen in time."""


# --------------------------------------------------------------------------------------------------
# What the stack holds: mirrors


@dataclass(frozen=True)
class MirrorLayout:
    """One IRIS mirror as the stack seeds it: members (the first holds the VIP), VIP, static IP.

    `members` are emulator `Member`s; the initial primary must carry the VIP in `aliases` and the
    static IP as `nat_ip` (with `access_config_name` = `public[0]`), as `mirror_layout` builds.
    """

    name: str
    project: str
    vip: str
    members: tuple[Member, ...]
    public: tuple[str, str] | None = None
    """(reserved address name, IP)."""

    @property
    def region(self) -> str:
        return region_of(self.members[0].zone)

    def member(self, name: str) -> Member:
        """The member whose VM is called `name`."""
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"{name} is not a member of mirror {self.name}")

    def config_entry(self) -> JsonDict:
        """This mirror's entry in MIRROR_CONFIG, in the documented shape."""
        entry: JsonDict = {
            "project": self.project,
            "network_interface": "nic0",
            "private_vip": self.vip,
            "members": [{"instance": m.name, "zone": m.zone} for m in self.members],
        }
        if self.public:
            entry["public_ip"] = {
                "address_name": self.public[0],
                "region": self.region,
                "access_config_name": self.public[0],
            }
        return entry


def iris_member_name(member: Member) -> str:
    """The IRIS mirror member name for a VM (what ^ZMIRROR passes): `isc-a-001` -> `ISC_A_001`."""
    return member.name.upper().replace("-", "_")


def mirror_layout(index: int, *, project: str = DEFAULT_PROJECT) -> MirrorLayout:
    """Mirror number `index` (0-based) of a deployment: two members in two zones, distinct VIPs.

    Mirror 0 is `IRISMIRROR` with VIP 10.0.0.250/32; others are `IRISMIRROR02`... with VIPs
    counting down from 10.0.0.249 (up to 100 mirrors fit in the /24 next to the members' IPs).
    """
    if not 0 <= index < 100:
        raise ValueError("index must be 0..99")
    suffix = f"{index + 1:03d}"
    static = ("isc-mirror" if index == 0 else f"isc-mirror-{suffix}", f"203.0.113.{10 + index}")
    primary = Member(
        name=f"isc-primary-{suffix}",
        zone="us-west1-a",
        network_ip=f"10.0.0.{11 + 2 * index}",
        aliases=(f"10.0.0.{250 - index}/32",),
        nat_ip=static[1],
        access_config_name=static[0],
    )
    backup = Member(
        name=f"isc-backup-{suffix}", zone="us-west1-b", network_ip=f"10.0.0.{12 + 2 * index}"
    )
    name = "IRISMIRROR" if index == 0 else f"IRISMIRROR{index + 1:02d}"
    return MirrorLayout(name, project, f"10.0.0.{250 - index}/32", (primary, backup), static)


def compute_state(mirrors: Sequence[MirrorLayout]) -> JsonDict:
    """One Compute emulator state holding every mirror (one project, one subnetwork per region)."""
    projects = {m.project for m in mirrors}
    if len(projects) != 1:
        raise ValueError(f"the stack serves one project, got {sorted(projects)}")
    project = projects.pop()
    members = [member for mirror in mirrors for member in mirror.members]
    state = mirror_state(project, members, subnet_cidr=SUBNET_CIDR, secondary=SECONDARY_RANGES)
    for mirror in mirrors:
        if mirror.public:
            name, ip = mirror.public
            holder = next((m for m in mirror.members if m.nat_ip == ip), None)
            user = instance_url(project, holder.zone, holder.name) if holder else None
            state["addresses"].append(static_address(project, mirror.region, name, ip, user=user))
    return state


def mirror_config(mirrors: Sequence[MirrorLayout]) -> JsonDict:
    """The MIRROR_CONFIG document for one deployment serving every mirror."""
    return {"mirrors": {m.name: m.config_entry() for m in mirrors}}


# --------------------------------------------------------------------------------------------------
# The function, as a process


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


class PushRelay:
    """Pull from a subscription with many threads and POST each message to the function as a
    push envelope: Eventarc's parallel delivery, which the emulator's push does not offer.

    A 2xx answer acknowledges; anything else (an exception in the function, a refused
    connection) leaves the message unacknowledged after a short pause, so it is redelivered.
    """

    PULL_TIMEOUT_S = 1.0
    NACK_PAUSE_S = 0.5

    def __init__(self, subscription: str, endpoint: str, threads: int) -> None:
        self.subscription = subscription
        self.endpoint = endpoint
        self.threads = threads
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")
        self._client: Any = pubsub_v1.SubscriberClient()

    def start(self) -> PushRelay:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"push-relay-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)
        self._workers.clear()
        self._client.close()

    def _run(self) -> None:
        from google.api_core import exceptions  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                response = self._client.pull(
                    subscription=self.subscription, max_messages=1, timeout=self.PULL_TIMEOUT_S
                )
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                continue
            except exceptions.GoogleAPICallError:
                if self._stop.wait(self.NACK_PAUSE_S):
                    return
                continue
            for received in response.received_messages:
                if self._deliver(received.message):
                    self._client.acknowledge(
                        subscription=self.subscription, ack_ids=[received.ack_id]
                    )
                else:
                    self._stop.wait(self.NACK_PAUSE_S)
                    self._client.modify_ack_deadline(
                        subscription=self.subscription,
                        ack_ids=[received.ack_id],
                        ack_deadline_seconds=0,
                    )

    def _deliver(self, message: Any) -> bool:
        envelope = {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "messageId": message.message_id,
                "publishTime": message.publish_time.rfc3339(),
                "attributes": dict(message.attributes),
            },
            "subscription": self.subscription,
        }
        request = urllib.request.Request(  # noqa: S310 (the stack's own localhost endpoint)
            self.endpoint,
            data=json.dumps(envelope).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
                return 200 <= int(answer.status) < 300
        except (OSError, urllib.error.URLError):
            return False


# --------------------------------------------------------------------------------------------------
# Observations


@dataclass(frozen=True)
class Holder:
    """Who holds a mirror's VIP and static IP, as read through the Compute API."""

    vip_on: tuple[str, ...]
    public_ip_on: tuple[str, ...]
    address_status: str | None
    address_users: tuple[str, ...]


@dataclass(frozen=True)
class Published:
    """One publisher call: when it started and ended (this process's monotonic clock)."""

    mirror: str
    member: str
    instance: str
    started: float
    returned: float
    ok: bool
    message_id: str | None
    summary: str
    wall_started: float
    """`time.time()` at `started`: converts the emulator's RFC 3339 operation times."""
    event: JsonDict | None = None
    """The v1 event as published (the message data)."""


@dataclass(frozen=True)
class TimelineEntry:
    seconds: float
    """Since the publish call started."""
    what: str


@dataclass
class StackOptions:
    """Knobs of the stack; the defaults are the demo's."""

    op_latency: float = 1.0
    project: str = DEFAULT_PROJECT
    topic: str = DEFAULT_TOPIC
    function_threads: int = 8
    """gunicorn threads in the function process (functions-framework's THREADS)."""
    ack_deadline_seconds: int = 20
    """Push subscription ack deadline: a move slower than this would be redelivered meanwhile."""
    minimum_backoff_seconds: float = 0.5
    maximum_backoff_seconds: float = 2.0
    function_env: dict[str, str] = field(default_factory=dict)
    identity_required: bool = True
    """The function accepts only events carrying a Google-signed instance identity token of the
    member they name (as deployed); the metadata emulator signs and serves the certs."""
    delivery: Literal["push", "relay"] = "push"
    """`push`: the emulator's push subscription. It runs two push loops per subscription, each
    waiting for the function's answer, so at most two events are in flight (and it ignores
    subscription filters, so sharding by mirror is not possible). `relay`: a pull subscription
    drained by `PushRelay` threads that POST the same envelope, for Eventarc-like parallelism."""
    relay_threads: int = 32


class LocalStack(Service):
    """Every part of the local pipeline, started together and stopped together.

    Use as a context manager; `stop` is idempotent and also runs when `start` fails half way.
    """

    def __init__(
        self, mirrors: Sequence[MirrorLayout], options: StackOptions | None = None
    ) -> None:
        if not mirrors:
            raise ValueError("at least one mirror")
        self.mirrors = {m.name: m for m in mirrors}
        self.options = options or StackOptions()
        self.project = self.options.project
        self.topic = f"projects/{self.project}/topics/{self.options.topic}"
        self.subscription = f"projects/{self.project}/subscriptions/{self.options.topic}-push"
        self.compute = ComputeEmulator(compute_state(mirrors), op_latency=self.options.op_latency)
        vms = [
            VM(
                project=m.project,
                zone=member.zone,
                name=member.name,
                id=_instance_id(m.project, member),
                ip=member.network_ip,
            )
            for m in mirrors
            for member in m.members
        ]
        self.metadata = MetadataEmulator(vms)
        self.pubsub = PubSubEmulator()
        self.function: FunctionProcess | None = None
        self.function_port = 0
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._saved_env: dict[str, str | None] = {}
        self._relay: PushRelay | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every part; on any failure stop what was started and re-raise."""
        try:
            self._workdir = tempfile.TemporaryDirectory(prefix="mirror-vip-stack-")
            self.compute.start()
            self.metadata.start()
            self.pubsub.start()
            self._set_env("PUBSUB_EMULATOR_HOST", self.pubsub.host)
            self.function_port = free_port()
            self.function = FunctionProcess(
                self.function_port, self.function_env(), self.workdir / "function.log"
            )
            self.function.start()
            self._create_topic_and_push_subscription()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the function, the emulators, close clients, restore env vars. Idempotent."""
        errors: list[BaseException] = []
        steps: list[Callable[[], None]] = []
        if self._relay is not None:
            steps.append(self._relay.stop)
        if self.function is not None:
            steps.append(self.function.stop)
        steps += [self.pubsub.stop, self._forget_publisher_clients, self.metadata.stop]
        steps += [self.compute.stop, self._restore_env]
        for step in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 (stop the rest, then report the first)
                errors.append(error)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        if errors:
            raise errors[0]

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise StackError("stack not started")
        return Path(self._workdir.name)

    def function_env(self) -> dict[str, str]:
        """The function's environment: what a deployment sets, pointed at the emulator."""
        return {
            "MIRROR_CONFIG": json.dumps(self.function_config()),
            "COMPUTE_API_ENDPOINT": self.compute.url,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "THREADS": str(self.options.function_threads),
            **self.options.function_env,
        }

    def function_config(self) -> JsonDict:
        """MIRROR_CONFIG: every mirror, and identity checked against the metadata emulator."""
        config = mirror_config(list(self.mirrors.values()))
        config["identity"] = {
            "required": self.options.identity_required,
            "certs_url": self.metadata.certs_url,
        }
        return config

    def kill_function(self) -> None:
        """Crash the function (SIGKILL of its process group)."""
        if self.function is not None:
            self.function.kill()

    def restart_function(self) -> FunctionProcess:
        """Start the function again on the same port (the push endpoint), same log file."""
        if self.function is None:
            raise StackError("stack not started")
        self.function.stop()
        return self.function.start()

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    @staticmethod
    def _forget_publisher_clients() -> None:
        from mirrorvip_publisher import pubsub  # noqa: PLC0415

        pubsub.forget_clients()

    def _create_topic_and_push_subscription(self) -> None:
        """The topic, and the subscription that stands in for Eventarc's trigger.

        `delivery="push"`: a push subscription to the function. The endpoint path names the
        topic so that functions-framework's conversion of the raw push envelope gives the
        CloudEvent the right `source`. `delivery="relay"`: a pull subscription that `PushRelay`
        drains with many threads, because the emulator pushes at most two messages at a time.
        """
        from google.api_core import exceptions  # noqa: PLC0415

        # Imported by name: google-cloud-pubsub ships no type information.
        pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")
        options = self.options
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        request: JsonDict = {
            "name": self.subscription,
            "topic": self.topic,
            "ack_deadline_seconds": options.ack_deadline_seconds,
            "retry_policy": {
                "minimum_backoff": timedelta(seconds=options.minimum_backoff_seconds),
                "maximum_backoff": timedelta(seconds=options.maximum_backoff_seconds),
            },
        }
        if options.delivery == "push":
            request["push_config"] = {"push_endpoint": self.push_endpoint}
        try:
            with contextlib.suppress(exceptions.AlreadyExists):
                publisher.create_topic(name=self.topic, timeout=30)
            subscriber.create_subscription(request=request, timeout=30)
        finally:
            publisher.transport.close()
            subscriber.close()
        if options.delivery == "relay":
            self._relay = PushRelay(
                self.subscription, self.push_endpoint, options.relay_threads
            ).start()

    @property
    def push_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.function_port}/{self.topic}"

    # ---- publishing -----------------------------------------------------------------------------

    def publisher_env(self, member: Member) -> dict[str, str]:
        """The environment a member's IRIS gives the publisher (as in the config reference)."""
        return {
            "MIRRORVIP_TOPIC": self.topic,
            "MIRRORVIP_BUDGET_SECONDS": str(PUBLISH_BUDGET_SECONDS),
            "GCE_METADATA_HOST": self.metadata.host_for(member.name),
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
        }

    def publish(self, mirror: str, instance: str) -> Published:
        """`notify_become_primary` as ^ZMIRROR calls it on `instance` (a member of `mirror`).

        The config is read from an environment naming this member's metadata server, so
        several members can publish concurrently from this one process.
        """
        from mirrorvip_publisher import load_config, notify_become_primary  # noqa: PLC0415

        member = self.mirrors[mirror].member(instance)
        config = load_config(os.environ.copy() | self.publisher_env(member))
        wall, started = time.time(), time.monotonic()
        result = notify_become_primary(mirror, iris_member_name(member), config=config)
        returned = time.monotonic()
        return Published(
            mirror,
            iris_member_name(member),
            instance,
            started,
            returned,
            result.ok,
            result.message_id,
            str(result),
            wall,
            result.event,
        )

    def publish_raw(self, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Publish bytes on the topic (a re-sent event, a forged one); returns the message id."""
        from mirrorvip_publisher import pubsub  # noqa: PLC0415

        client = pubsub.publisher_client()
        future = client.publish(self.topic, data, ordering_key="", **dict(attributes or {}))
        message_id: str = future.result(timeout=30)
        return message_id

    # ---- observing ------------------------------------------------------------------------------

    def outcomes(self) -> list[JsonDict]:
        if self.function is None:
            return []
        return self.function.outcomes()

    def wait_for_outcome(
        self,
        event_id: str,
        timeout: float = 60.0,
        *,
        final: bool = True,
    ) -> JsonDict:
        """The function's outcome line for a Pub/Sub message id, polled until `timeout`.

        Args:
            event_id: The message id (the CloudEvent id, shared by redeliveries).
            timeout: Seconds to wait.
            final: Only accept an outcome that was acknowledged (not `retry`), i.e. the last
                delivery; otherwise the first line for the event.
        """
        deadline = time.monotonic() + timeout
        while True:
            for record in self.outcomes():
                if record.get("event_id") == event_id and not (final and record.get("retry")):
                    return record
            if time.monotonic() >= deadline:
                seen = [(r.get("event_id"), r.get("outcome")) for r in self.outcomes()]
                tail = self.function.log_tail() if self.function else ""
                raise StackError(
                    f"no {'final ' if final else ''}outcome for event {event_id} in "
                    f"{timeout:.0f} s; seen {seen}\n{tail}"
                )
            time.sleep(0.05)  # polling interval for the log file

    def holder(self, mirror: str) -> Holder:
        """Who holds the mirror's VIP and static IP, read through the Compute API itself
        (google-cloud-compute against the emulator), not from the emulator's internals."""
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
        from google.cloud import compute_v1  # noqa: PLC0415

        layout = self.mirrors[mirror]
        kwargs: dict[str, Any] = {
            "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
            "client_options": {"api_endpoint": self.compute.url},
            "transport": "rest",
        }
        vip_on, public_on = [], []
        with compute_v1.InstancesClient(**kwargs) as instances:
            for member in layout.members:
                vm = instances.get(project=layout.project, zone=member.zone, instance=member.name)
                nic = vm.network_interfaces[0]
                if any(a.ip_cidr_range == layout.vip for a in nic.alias_ip_ranges):
                    vip_on.append(member.name)
                if layout.public and any(c.nat_i_p == layout.public[1] for c in nic.access_configs):
                    public_on.append(member.name)
        status: str | None = None
        users: tuple[str, ...] = ()
        if layout.public:
            with compute_v1.AddressesClient(**kwargs) as addresses:
                address = addresses.get(
                    project=layout.project, region=layout.region, address=layout.public[0]
                )
            status = address.status
            users = tuple(url.rsplit("/", 1)[-1] for url in address.users)
        return Holder(tuple(vip_on), tuple(public_on), status, users)

    def wait_for_holder(self, mirror: str, instance: str, timeout: float = 60.0) -> Holder:
        """Poll the Compute API until `instance` alone holds the mirror's VIP (and static IP)."""
        deadline = time.monotonic() + timeout
        while True:
            holder = self.holder(mirror)
            if holds_everything(holder, self.mirrors[mirror], instance):
                return holder
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{instance} does not hold {mirror}'s VIP after {timeout} s: {holder}"
                )
            time.sleep(0.1)  # polling interval

    def mutations_since(self, since: float, mirror: str | None = None) -> list[str]:
        """Mutation requests (method ids) received since `since` (monotonic), optionally only
        those on one mirror's members."""
        names = None if mirror is None else {m.name for m in self.mirrors[mirror].members}
        return [
            r.method_id
            for r in self.compute.mutations()
            if r.time >= since and (names is None or _instance_in_path(r.path) in names)
        ]

    def timeline(
        self, published: Published, outcome: Mapping[str, Any] | None
    ) -> list[TimelineEntry]:
        """What happened after a publish, in seconds since the call, from the emulator's record
        of requests and operations and the function's outcome line."""
        return build_timeline(self, published, outcome)


def holds_everything(holder: Holder, layout: MirrorLayout, instance: str) -> bool:
    """True when `instance` alone holds the VIP and, if the mirror has one, the static IP."""
    if holder.vip_on != (instance,):
        return False
    if layout.public is None:
        return True
    return holder.public_ip_on == (instance,) and holder.address_users == (instance,)


def _instance_in_path(path: str) -> str | None:
    parts = path.split("/")
    if "instances" in parts:
        index = parts.index("instances")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


def _instance_id(project: str, member: Member) -> str:
    from mirror_state import stable_id  # noqa: PLC0415

    return stable_id(project, member.zone, member.name)


# --------------------------------------------------------------------------------------------------
# Timelines


def rfc3339_to_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class OperationView:
    """A mutation's operation on one of a mirror's members, with times on the monotonic clock."""

    kind: str
    instance: str
    inserted: float
    ended: float | None
    error: str | None


def operations_since(stack: LocalStack, published: Published, mirror: str) -> list[OperationView]:
    """The mirror's operations inserted after the publish call, times converted to monotonic."""
    names = {m.name for m in stack.mirrors[mirror].members}
    offset = published.wall_started - published.started
    views = []
    for op in stack.compute.operations():
        inserted = rfc3339_to_epoch(op["insertTime"]) - offset
        instance = str(op.get("targetLink", "")).rsplit("/", 1)[-1]
        if inserted < published.started - 0.001 or instance not in names:
            continue
        ended = rfc3339_to_epoch(op["endTime"]) - offset if op.get("endTime") else None
        errors = (op.get("error") or {}).get("errors") or []
        error = errors[0].get("code") if errors else None
        views.append(OperationView(op["operationType"], instance, inserted, ended, error))
    return views


def milestones(stack: LocalStack, published: Published) -> dict[str, float]:
    """Key moments of one move, as monotonic times: `received` (the function's first read),
    `alias_removed`, `alias_added`, `public_released`, `public_attached` (operations applied)."""
    layout = stack.mirrors[published.mirror]
    names = {m.name for m in layout.members}
    found: dict[str, float] = {}
    reads = [
        r.time
        for r in stack.compute.requests()
        if r.time >= published.started
        and r.method_id == "compute.instances.get"
        and _instance_in_path(r.path) in names
    ]
    if reads:
        found["received"] = min(reads)
    for op in operations_since(stack, published, published.mirror):
        if op.ended is None or op.error:
            continue
        to_target = op.instance == published.instance
        key = {
            ("updateNetworkInterface", False): "alias_removed",
            ("updateNetworkInterface", True): "alias_added",
            ("deleteAccessConfig", False): "public_released",
            ("deleteAccessConfig", True): "ephemeral_dropped",
            ("addAccessConfig", True): "public_attached",
        }.get((op.kind, to_target))
        if key is not None:
            found[key] = max(found.get(key, 0.0), op.ended)
    return found


def build_timeline(
    stack: LocalStack, published: Published, outcome: Mapping[str, Any] | None
) -> list[TimelineEntry]:
    layout = stack.mirrors[published.mirror]
    old = [m.name for m in layout.members if m.name != published.instance]
    entries = [
        TimelineEntry(0.0, f"publisher called on {published.instance} (notify_become_primary)"),
        TimelineEntry(
            published.returned - published.started,
            f"event published: message {published.message_id}"
            if published.ok
            else f"publish FAILED: {published.summary}",
        ),
    ]
    names = {m.name for m in layout.members}
    for request in stack.compute.requests():
        if request.time < published.started or _instance_in_path(request.path) not in names:
            continue
        if request.method_id == "compute.instances.get":
            continue
        if request.http_method in {"PATCH", "POST"} and "operations" not in request.path:
            instance = _instance_in_path(request.path)
            what = request.method_id.rsplit(".", 1)[-1]
            if what == "updateNetworkInterface":
                body = request.body if isinstance(request.body, dict) else {}
                ranges = [a.get("ipCidrRange") for a in body.get("aliasIpRanges", [])]
                what = "add alias" if layout.vip in ranges else "remove alias"
            entries.append(
                TimelineEntry(request.time - published.started, f"  request: {what} on {instance}")
            )
    marks = milestones(stack, published)
    labels = {
        "received": "function received the event (first instances.get)",
        "alias_removed": f"alias {layout.vip} removed from {', '.join(old)} (operation DONE)",
        "alias_added": f"alias {layout.vip} added to {published.instance} (operation DONE)",
        "public_released": f"static IP released by {', '.join(old)} (operation DONE)",
        "ephemeral_dropped": f"ephemeral IP dropped from {published.instance} (operation DONE)",
        "public_attached": f"static IP attached to {published.instance} (operation DONE)",
    }
    for key, label in labels.items():
        if key in marks:
            entries.append(TimelineEntry(marks[key] - published.started, label))
    if outcome is not None:
        began = marks.get("received", published.returned)
        entries.append(
            TimelineEntry(
                began - published.started + int(outcome.get("duration_ms") or 0) / 1000,
                f"function logged its outcome: {outcome.get('outcome')}, "
                f"{outcome.get('duration_ms')} ms after receiving",
            )
        )
    return sorted(entries, key=lambda e: e.seconds)


def format_timeline(entries: Sequence[TimelineEntry]) -> str:
    return "\n".join(f"  +{entry.seconds:7.3f} s  {entry.what}" for entry in entries)


@contextlib.contextmanager
def running_stack(
    mirrors: Sequence[MirrorLayout], options: StackOptions | None = None
) -> Iterator[LocalStack]:
    """A started stack that is stopped on exit, whatever happens."""
    stack = LocalStack(mirrors, options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
