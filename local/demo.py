"""`make demo`: a real failover and failback of an IRIS mirror's VIP, on this machine.

Starts the local stack (`LocalStack`: Compute, metadata and Pub/Sub emulators, the function
under functions-framework fed by a push subscription), then does what IRIS would: the backup's
^ZMIRROR calls the publisher, and later the old primary's does (failback). For each move it
prints a timeline measured from the publish call, the function's structured log line, and where
the VIP and the static IP are now, read back through the Compute API. Every process it started is
stopped on exit, error, Ctrl-C or SIGTERM.

    python -m local.demo [--op-latency 1.0] [--mirrors 1] [--keep-running] [--no-failback]
                         [--mode alias|route] [--zone-outage]

`--mode=route` moves the VIP with a route and the public IP with a forwarding rule (the first
announcement places the route), and ends with a zone-outage drill: the primary's zone goes down,
then the backup takes over. `--zone-outage` runs the same drill in alias mode, where it fails
(the alias cannot leave a zone that is down) and the demo says so.

docs/local-stack.md explains what runs where and what the output means.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from emulators.process import StartupError
from local.function_process import FUNCTION_DIR
from local.mirrors import MirrorLayout, iris_member_name, mirror_layout, route_layout
from local.stack import LocalStack, StackError, StackOptions, holds_everything
from local.timeline import format_timeline

NOISY_FIELDS = ("logging.googleapis.com/", "httpRequest")
"""Fields Cloud Logging fills in itself; left out of the printed lines to keep them readable."""


class Terminated(Exception):
    """SIGTERM, turned into an exception so that `finally` stops the stack."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo",
        description="A real failover and failback of mirror-vip on local emulators.",
    )
    parser.add_argument(
        "--op-latency",
        type=float,
        default=1.0,
        help="seconds each Compute operation takes to apply (GCE: several); default 1.0",
    )
    parser.add_argument(
        "--mirrors", type=int, default=1, help="mirrors served by the one function; default 1"
    )
    parser.add_argument("--no-failback", action="store_true", help="fail over only")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the demo keep the stack up and print how to publish events by hand",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for a move")
    parser.add_argument(
        "--mode", choices=("alias", "route"), default="alias", help="how the VIP follows"
    )
    parser.add_argument(
        "--zone-outage",
        action="store_true",
        help="end with the zone-outage drill (always on with --mode=route)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.mirrors <= 100:
        parser.error("--mirrors must be 1..100")
    if args.op_latency < 0:
        parser.error("--op-latency must be >= 0")
    return args


def printable(record: dict[str, Any]) -> str:
    """One outcome line without the fields Cloud Logging adds for itself."""
    kept = {k: v for k, v in record.items() if not k.startswith(NOISY_FIELDS)}
    return json.dumps(kept, separators=(", ", ": "))


def describe_holder(stack: LocalStack, mirror: MirrorLayout) -> str:
    holder = stack.holder(mirror.name)
    vip = ", ".join(holder.vip_on) or "nobody"
    text = f"VIP {mirror.vip} on {vip}"
    if mirror.public:
        public = ", ".join(holder.public_ip_on) or "nobody"
        users = ", ".join(holder.address_users) or "-"
        text += (
            f"; static IP {mirror.public[1]} on {public} "
            f"(address {mirror.public[0]}: {holder.address_status}, users {users})"
        )
    return text


def move(stack: LocalStack, mirror: MirrorLayout, to: str, title: str, timeout: float) -> bool:
    """Publish as `to`'s ^ZMIRROR would, wait for the function, print what happened."""
    print(f"\n== {title}: {to} becomes primary of {mirror.name} ==")
    published = stack.publish(mirror.name, to)
    print(f"publisher: {published.summary}")
    if not published.ok or published.message_id is None:
        return False
    outcome = stack.wait_for_outcome(published.message_id, timeout)
    retries = [
        r for r in stack.outcomes() if r.get("event_id") == published.message_id and r.get("retry")
    ]
    stack.wait_for_holder(mirror.name, to, timeout)
    print("\ntimeline (seconds since the publish call):")
    print(format_timeline(stack.timeline(published, outcome)))
    print("\nfunction log (component mirror-vip):")
    for record in [*retries, outcome]:
        print(f"  {printable(record)}")
    print("\nnow, read through the Compute API:")
    print(f"  {describe_holder(stack, mirror)}")
    return holds_everything(stack.holder(mirror.name), mirror, to)


def print_manual_instructions(stack: LocalStack) -> None:
    """How to drive the running stack by hand: the publisher CLI with one member's env."""
    print("\n== The stack keeps running (Ctrl-C stops everything) ==")
    print(f"Compute API:   {stack.compute.url}/compute/v1/projects/{stack.project}/...")
    print(f"function log:  {stack.function.log_path if stack.function else '-'}")
    print(f"push endpoint: {stack.push_endpoint}\n")
    for mirror in stack.mirrors.values():
        for member in mirror.members:
            print(f"# publish as {member.name} (mirror {mirror.name}):")
            print(f"export MIRRORVIP_PUBSUB_ENDPOINT={stack.pubsub.host}")
            print(f"export MIRRORVIP_TOPIC={stack.topic}")
            print(f"export GCE_METADATA_HOST={stack.metadata.host_for(member.name)}")
            print(
                f"{sys.executable} -m mirrorvip_publisher publish "
                f"--mirror {mirror.name} --member {iris_member_name(member)}\n"
            )
        zone, name = mirror.members[0].zone, mirror.members[0].name
        print(
            f"# look at a VM: curl -s {stack.compute.url}/compute/v1/projects/{stack.project}"
            f"/zones/{zone}/instances/{name}\n"
        )
    member = next(iter(stack.mirrors.values())).members[-1]
    print('# the operator\'s command (README, "Operate"):')
    for name, value in operator_env(stack).items():
        print(f"export {name}={value}")
    print("mirror-vip status")
    print(f"mirror-vip doctor --topic {stack.topic} --pubsub-endpoint {stack.pubsub.host}")
    print(
        f"mirror-vip drill --to {member.name} --topic {stack.topic} "
        f"--pubsub-endpoint {stack.pubsub.host} "
        f"--metadata-host {stack.metadata.host_for(member.name)}\n"
    )
    print("New outcome lines are printed below as the function writes them.")


def follow(stack: LocalStack) -> None:
    """Print outcome lines as they appear, until interrupted."""
    seen = len(stack.outcomes())
    while True:
        records = stack.outcomes()
        for record in records[seen:]:
            print(f"  {printable(record)}", flush=True)
        seen = len(records)
        if stack.function is not None and not stack.function.running:
            raise StackError(f"the function exited:\n{stack.function.log_tail()}")
        time.sleep(0.5)  # polling interval for the log file


def print_stack(stack: LocalStack, layouts: Sequence[MirrorLayout], started: float) -> None:
    """Where each part of the started stack listens."""
    function = stack.function
    assert function is not None
    print(f"stack up in {time.monotonic() - started:.1f} s")
    print(f"  Compute API     {stack.compute.url}")
    for layout in layouts[:3]:
        for member in layout.members:
            print(f"  metadata        {member.name}: {stack.metadata.host_for(member.name)}")
    if len(layouts) > 3:
        print(f"  metadata        ... and {2 * (len(layouts) - 3)} more")
    print(f"  Pub/Sub         {stack.pubsub.host}  topic {stack.topic}")
    print(f"  push            {stack.subscription} -> {stack.push_endpoint}")
    print(
        f"  function        pid {function.pid}, port {function.port}, "
        f"ready {function.ready_at - function.started_at:.2f} s after start"
    )


def fail_over_and_back(
    stack: LocalStack, layouts: Sequence[MirrorLayout], args: argparse.Namespace
) -> bool:
    """Start the stack, move the first mirror's VIP to the backup and back; True when it did."""
    mirror = layouts[0]
    primary, backup = (m.name for m in mirror.members)
    started = time.monotonic()
    stack.start()
    print_stack(stack, layouts, started)
    print(f"\nbefore, read through the Compute API:\n  {describe_holder(stack, mirror)}")
    ok = True
    if mirror.mode == "route":
        ok = move(stack, mirror, primary, "Initial placement (no route yet)", args.timeout)
    ok = ok and move(stack, mirror, backup, "Failover", args.timeout)
    if ok and not args.no_failback:
        ok = move(stack, mirror, primary, "Failback", args.timeout)
    if ok and (args.zone_outage or mirror.mode == "route"):
        ok = zone_outage_drill(stack, mirror, args.timeout)
    print(f"\nresult: {'OK' if ok else 'FAILED'}")
    print_operator_status(stack, mirror)
    return ok


def operator_env(stack: LocalStack) -> dict[str, str]:
    """What `mirror-vip` needs to see the stack: its config file and the Compute emulator."""
    config = stack.workdir / "mirrors.json"
    config.write_text(json.dumps(stack.function_config()))
    return {"MIRROR_CONFIG_FILE": str(config), "COMPUTE_API_ENDPOINT": stack.compute.url}


def print_operator_status(stack: LocalStack, mirror: MirrorLayout) -> None:
    """`mirror-vip status` for the demo mirror, as the operator would run it."""
    print(f"\n$ mirror-vip status --mirror {mirror.name}", flush=True)
    env = {**os.environ, **operator_env(stack), "PYTHONPATH": str(FUNCTION_DIR)}
    command = [sys.executable, "-m", "vipmover", "status", "--mirror", mirror.name]
    subprocess.run(command, env=env, check=False, timeout=60)


def zone_outage_drill(stack: LocalStack, mirror: MirrorLayout, timeout: float) -> bool:
    """The current primary's zone goes down (every zonal call there fails), then the backup
    announces itself. Route mode must complete; alias mode must fail clearly (and retry)."""
    primary, backup = mirror.members[0], mirror.members[1]
    stack.compute.set_zone_down(primary.zone)
    print(f"\n== Zone-outage drill: zone {primary.zone} (holding {primary.name}) is DOWN ==")
    if mirror.mode == "route":
        return move(stack, mirror, backup.name, "Failover with the old zone down", timeout)
    published = stack.publish(mirror.name, backup.name)
    print(f"publisher: {published.summary}")
    if published.message_id is None:
        return False
    outcome = stack.wait_for_outcome(published.message_id, timeout, final=False)
    print(f"\nfunction log (first delivery):\n  {printable(outcome)}")
    failed_clearly = outcome.get("outcome") == "failed" and bool(outcome.get("retry"))
    verdict = "failed clearly, as alias mode must" if failed_clearly else "UNEXPECTED"
    print(f"\nalias mode: {verdict}: the VIP is an alias on {primary.name}, whose zone does not")
    print("answer; Pub/Sub keeps redelivering. Route mode (--mode=route) completes this drill.")
    return failed_clearly


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    build = route_layout if args.mode == "route" else mirror_layout
    layouts = [build(i) for i in range(args.mirrors)]
    stack = LocalStack(layouts, StackOptions(op_latency=args.op_latency))
    print(
        f"Starting the local stack: Compute emulator (operations take {args.op_latency:g} s), "
        f"{sum(len(m.members) for m in layouts)} metadata servers, Pub/Sub emulator (JVM), "
        "and the function under functions-framework ..."
    )
    ok = True
    try:
        ok = fail_over_and_back(stack, layouts, args)
        if args.keep_running:
            print_manual_instructions(stack)
            follow(stack)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        ok = ok and args.keep_running
    except Terminated:
        print("\nterminated", file=sys.stderr)
        ok = ok and args.keep_running
    except (StackError, StartupError) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        ok = False
    finally:
        print("stopping the stack ...", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
