"""`mirror-vip`: the operator's command. Arguments, the mirrors loop, output and exit codes.

Both modes (alias, route), each through the function's own code. Exit codes: 0 healthy or done,
1 degraded or refused, 2 usage or config error, 3 Compute API unreachable or denied. `--json`
prints one document:
`{"command", "exit_code", "mirrors": [...]}` or `{"command", "exit_code", "error"}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import MirrorConfig
from ..errors import ConfigError
from . import commands
from .commands import MirrorResult
from .doctor import DEFAULT_ROLE_FILE, DoctorOptions, doctor
from .drill import DrillOptions, drill, terminal_progress
from .session import EXIT_USAGE, Session, UsageError, open_session


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="the function's mirrors file (else MIRROR_CONFIG[_FILE])")
    common.add_argument("--mirror", help="one mirror (default: all)")
    common.add_argument("--json", action="store_true", help="one JSON document on stdout")
    common.add_argument(
        "--as",
        dest="impersonate",
        metavar="SERVICE_ACCOUNT",
        help="act as this service account (impersonation)",
    )
    top = argparse.ArgumentParser(
        prog="mirror-vip",
        description="Where is the VIP, would a failover work, move it, drill it.",
    )
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("status", parents=[common], help="who holds the VIP and the public IP")
    p = sub.add_parser("plan", parents=[common], help="the writes a failover would make")
    p.add_argument("--to", required=True, metavar="MEMBER")
    m = sub.add_parser("move", parents=[common], help="move the VIP by hand (break glass)")
    m.add_argument("--to", required=True, metavar="MEMBER")
    m.add_argument("--yes", action="store_true", help="do not ask")
    d = sub.add_parser("drill", parents=[common], help="publish an event, time the VIP's move")
    d.add_argument("--to", required=True, metavar="MEMBER")
    d.add_argument("--topic", help="projects/P/topics/T (else MIRROR_VIP_TOPIC)")
    d.add_argument("--pubsub-endpoint", help="host:port of a Pub/Sub emulator")
    d.add_argument("--metadata-host", help="publish as the member, with its identity token")
    d.add_argument("--timeout", type=float, default=120.0)
    d.add_argument("--function-log", type=Path, help="the function's log, for its outcome line")
    c = sub.add_parser("doctor", parents=[common], help="check everything a failover needs")
    c.add_argument("--topic", help="projects/P/topics/T (else MIRROR_VIP_TOPIC)")
    c.add_argument("--pubsub-endpoint", help="host:port of a Pub/Sub emulator")
    c.add_argument("--role-file", type=Path, default=DEFAULT_ROLE_FILE)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        session = open_session(args.config, args.mirror, args.impersonate)
        run = _runner(args)
    except (UsageError, ConfigError) as err:
        return _emit(args, EXIT_USAGE, {"error": str(err)}, [f"mirror-vip: {err}"])
    with ThreadPoolExecutor(max_workers=min(8, len(session.mirrors))) as pool:
        results = list(pool.map(lambda mirror: run(session, mirror), session.mirrors))
    code = max(r.exit_code for r in results)
    lines = [line for r in results for line in r.lines]
    return _emit(args, code, {"mirrors": [r.document for r in results]}, lines)


def _runner(args: argparse.Namespace) -> Callable[[Session, MirrorConfig], MirrorResult]:
    """The subcommand as a function of one mirror."""
    topic = getattr(args, "topic", None) or os.environ.get("MIRROR_VIP_TOPIC")
    if args.command == "status":
        return commands.status
    if args.command == "plan":
        return lambda s, m: commands.plan(s, m, args.to)
    if args.command == "move":
        confirm = (lambda _lines: True) if args.yes else _ask
        return lambda s, m: commands.move(s, m, args.to, confirm)
    if args.command == "drill":
        if not topic:
            raise UsageError("drill needs --topic or MIRROR_VIP_TOPIC")
        progress = terminal_progress if sys.stderr.isatty() and not args.json else None
        options = DrillOptions(
            topic,
            args.timeout,
            args.metadata_host,
            args.function_log,
            progress,
            args.pubsub_endpoint or "",
        )
        return lambda s, m: drill(s, m, args.to, options)
    checks = DoctorOptions(topic, args.role_file, pubsub_endpoint=args.pubsub_endpoint or "")
    return lambda s, m: doctor(s, m, checks)


def _ask(lines: list[str]) -> bool:
    """Show the plan and ask on the terminal; anything but y/yes (or no terminal) declines."""
    print("\n".join(lines), file=sys.stderr)
    print("Move the VIP now? [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def _emit(args: argparse.Namespace, code: int, body: dict[str, object], lines: list[str]) -> int:
    if args.json:
        print(json.dumps({"command": args.command, "exit_code": code, **body}, indent=2))
    else:
        print("\n".join(lines))
    return code
