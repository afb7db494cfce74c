"""The whole mirror-vip pipeline on one machine: what the demo, the e2e tests and the benchmark run.

`LocalStack` starts, on free ports and without cloud credentials:

* the Compute Engine emulator (in this process), holding the mirrors' VMs, VIPs and static IPs;
* a GCE metadata emulator (in this process) with one port per VM, so a publish "runs on" a VM;
* an IRIS health simulator (in this process): each member's `mirror_status.cxw`, which the
  function asks before taking the VIP from a holder (`iris`; `publish` makes its member primary);
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

The parts live beside it: `mirrors` (the mirrors' layouts, emulator state, MIRROR_CONFIG),
`function_process` (the function under functions-framework), `push_relay` (parallel delivery)
and `timeline` (milestones and timelines read from the emulators' records). docs/local-stack.md
describes the whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self

from emulators import JsonDict
from emulators.compute import ComputeEmulator
from emulators.compute.state import stable_id
from emulators.iris_health import IrisHealthSimulator
from emulators.metadata import VM, MetadataEmulator
from emulators.process import free_port
from emulators.pubsub import PubSubEmulator, emulator_publisher, emulator_subscriber
from emulators.service import Service
from local.cold_start import OnDemandFunction
from local.function_process import FunctionProcess
from local.mirrors import (
    DEFAULT_PROJECT,
    Member,
    MirrorLayout,
    compute_state,
    iris_member_name,
    mirror_config,
)
from local.push_relay import PushRelay
from local.route_view import route_holder
from local.timeline import Published, TimelineEntry, build_timeline, instance_in_path

DEFAULT_TOPIC = "mirror-vip"
PUBLISH_BUDGET_SECONDS = 10.0
"""The publisher's budget; the default 5 s is tight for a JVM emulator on a loaded 2-core box."""


class StackError(RuntimeError):
    """Something the stack awaited did not happen in time, or it was used before `start`."""


# --------------------------------------------------------------------------------------------------
# Observations


@dataclass(frozen=True)
class Holder:
    """Who holds a mirror's VIP and static IP, as read through the Compute API."""

    vip_on: tuple[str, ...]
    public_ip_on: tuple[str, ...]
    address_status: str | None
    address_users: tuple[str, ...]


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
    cold_function: bool = False
    """Start the function on the first push (and again after it was stopped), as Cloud Run
    starts an instance: every failover then pays the function's cold start."""
    corroborate: bool = True
    """The function asks the members' IRIS (the health simulator) before taking the VIP."""
    takeover_limit: JsonDict | None = None
    """Each mirror's `takeover_limit` (None: the function's default, 3 moves in 10 min)."""


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
                id=stable_id(m.project, member.zone, member.name),
                ip=member.network_ip,
            )
            for m in mirrors
            for member in m.members
        ]
        self.metadata = MetadataEmulator(vms)
        self.iris = IrisHealthSimulator(*([m.name for m in layout.members] for layout in mirrors))
        for layout in mirrors:
            self.iris.set_primary(layout.members[0].name)  # the first member holds the VIP
        self.pubsub = PubSubEmulator()
        self.function: FunctionProcess | None = None
        self.function_port = 0
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._relay: PushRelay | None = None
        self._front: OnDemandFunction | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every part; on any failure stop what was started and re-raise."""
        try:
            self._workdir = tempfile.TemporaryDirectory(prefix="mirror-vip-stack-")
            self.compute.start()
            self.metadata.start()
            self.iris.start()
            self.pubsub.start()
            self.function_port = free_port()
            self.function = FunctionProcess(
                free_port() if self.options.cold_function else self.function_port,
                self.function_env(),
                self.workdir / "function.log",
            )
            if self.options.cold_function:
                self._front = OnDemandFunction(self.function_port, self.function).start()
            else:
                self.function.start()
            self._create_topic_and_push_subscription()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the function, the emulators, close clients. Idempotent."""
        errors: list[BaseException] = []
        steps: list[Callable[[], None]] = []
        if self._relay is not None:
            steps.append(self._relay.stop)
        if self._front is not None:
            steps.append(self._front.stop)
        if self.function is not None:
            steps.append(self.function.stop)
        steps += [self.pubsub.stop, self._forget_publisher_clients, self.metadata.stop]
        steps.append(self.iris.stop)
        steps.append(self.compute.stop)
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
            "audience": f"//pubsub.googleapis.com/{self.topic}",
        }
        for entry in config["mirrors"].values():
            if self.options.corroborate:
                entry["corroborate"] = {"url": self.iris.url_template, "timeout_seconds": 2}
            if self.options.takeover_limit is not None:
                entry["takeover_limit"] = self.options.takeover_limit
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

        options = self.options
        publisher = emulator_publisher(self.pubsub.host)
        subscriber = emulator_subscriber(self.pubsub.host)
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
                self.subscription, self.push_endpoint, options.relay_threads, self.pubsub.host
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
            "MIRRORVIP_PUBSUB_ENDPOINT": self.pubsub.host,
        }

    def publish(self, mirror: str, instance: str) -> Published:
        """`notify_become_primary` as ^ZMIRROR calls it on `instance` (a member of `mirror`).

        The config is read from an environment naming this member's metadata server, so
        several members can publish concurrently from this one process. ^ZMIRROR runs when
        IRIS made the member primary: the health simulator says so from now on.
        """
        from mirrorvip_publisher import load_config, notify_become_primary  # noqa: PLC0415

        member = self.mirrors[mirror].member(instance)
        self.iris.set_primary(instance)
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

        client = pubsub.publisher_client(self.pubsub.host)
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
        if layout.mode == "route":
            return route_holder(self.compute.url, layout)
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
            if r.time >= since and (names is None or instance_in_path(r.path) in names)
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
