"""Command line for runbooks and drills.

    python -m mirrorvip_publisher publish   --mirror M --member X [--dry-run]
    python -m mirrorvip_publisher heartbeat --mirror M --member X [--assume-primary] [--dry-run]

Common options override the config file / environment: --config, --topic, --budget, --total,
--pubsub-endpoint, --no-identity-token. Exit status: 0 published (or dry run built), 1 failed,
3 heartbeat refused because this member is not shown to be primary, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import event as events
from .config import ENV_VARS, load_config
from .core import PublishResult, announce, iris_is_primary
from .errors import ConfigError, NotPrimaryError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_PRIMARY = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mirrorvip_publisher",
        description="Announce on Pub/Sub that this IRIS mirror member is primary (mirror-vip).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="send a became_primary event (failover drill)")
    beat = commands.add_parser(
        "heartbeat", help="re-announce 'I am primary', only if this member is primary"
    )
    for sub in (publish, beat):
        sub.add_argument("--mirror", required=True, help="IRIS mirror name")
        sub.add_argument("--member", required=True, help="this member's mirror member name")
        sub.add_argument("--dry-run", action="store_true", help="print the event, publish nothing")
        sub.add_argument("--show-token", action="store_true", help="do not redact the token")
        sub.add_argument("--config", type=Path, help="config file (default: MIRRORVIP_CONFIG)")
        sub.add_argument("--topic", help="projects/P/topics/T")
        sub.add_argument("--budget", help="time budget of one attempt, in seconds")
        sub.add_argument("--total", help="seconds to keep retrying failed attempts")
        sub.add_argument("--pubsub-endpoint", help="host:port of a Pub/Sub emulator")
        sub.add_argument("--no-identity-token", action="store_true", help="send no identity token")
    beat.add_argument(
        "--assume-primary",
        action="store_true",
        help="skip the IRIS primary check (drills and tests outside IRIS)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ)
    for option, key in (
        ("topic", "topic"),
        ("budget", "budget_seconds"),
        ("total", "total_seconds"),
        ("pubsub_endpoint", "pubsub_endpoint"),
    ):
        if getattr(args, option) is not None:
            env[ENV_VARS[key]] = getattr(args, option)
    if args.no_identity_token:
        env[ENV_VARS["identity_token"]] = "off"
    try:
        config = load_config(env, args.config)
    except ConfigError as exc:
        print(f"failed: config: {exc}", file=sys.stderr)
        return EXIT_FAILED
    event_type = events.BECAME_PRIMARY
    if args.command == "heartbeat":
        event_type = events.HEARTBEAT
        if not args.assume_primary:
            try:
                primary = iris_is_primary()
            except NotPrimaryError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return EXIT_NOT_PRIMARY
            if not primary:
                print(
                    f"refused: this member is not the primary of mirror {args.mirror!r}; "
                    "no heartbeat sent",
                    file=sys.stderr,
                )
                return EXIT_NOT_PRIMARY
    result = announce(event_type, args.mirror, args.member, config=config, dry_run=args.dry_run)
    if args.dry_run and result.event is not None:
        print(json.dumps(_printable(result, show_token=args.show_token), indent=2, sort_keys=True))
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    print(str(result), file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _printable(result: PublishResult, *, show_token: bool) -> dict[str, object]:
    """The event, with the token shortened: a bearer credential for an hour."""
    event = dict(result.event or {})
    token = event.get("identity_token")
    if isinstance(token, str) and not show_token:
        event["identity_token"] = f"{token[:16]}...(redacted, {len(token)} chars)"
    return event
