"""`python -m emulators.compute --port 8085 --state state.json [--op-latency 1]`.

Prints `compute emulator listening on URL` once bound and runs until SIGTERM or SIGINT. A state
file it cannot load is one line on stderr (exit status 2), not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emulators.compute.server import ComputeEmulator
from emulators.service import stop_on_signals


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.compute", description="Local Compute Engine API emulator."
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--state", type=Path, help="JSON state file (instances/subnetworks/...)")
    parser.add_argument(
        "--op-latency", type=float, default=0.0, help="seconds before an operation is DONE"
    )
    parser.add_argument(
        "--wait-max-seconds", type=float, default=120.0, help="zoneOperations.wait long-poll cap"
    )
    parser.add_argument(
        "--alias-conflict-mode",
        choices=["operation", "http"],
        default="operation",
        help="report an alias held elsewhere in the operation error or as HTTP 400",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT."""
    args = parse_args(argv)
    try:
        state = json.loads(args.state.read_text()) if args.state else None
        emulator = ComputeEmulator(
            state,
            host=args.host,
            port=args.port,
            op_latency=args.op_latency,
            wait_max_seconds=args.wait_max_seconds,
            alias_conflict_mode=args.alias_conflict_mode,
        )
    except (OSError, ValueError) as error:  # unreadable file, bad JSON, StateError
        print(f"{args.state}: {error}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    with emulator:
        print(f"compute emulator listening on {emulator.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
