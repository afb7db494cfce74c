"""`python -m benchmarks [NAME ...]`: run benchmarks, print their tables, write results/.

Names: mover (one failover at 1 s op latency against the floor), publisher (the ZMIRROR
callback's time), failover (end to end through the local stack, 20 mirrors), cold_start (the
function's start beside a bare functions-framework and the release before, and a failover that
lands on a cold function), route (route mode beside alias mode at 2 s operations, and with the
old primary's zone down).
With no name, all of them run in that order.
"""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "mover": "benchmarks.mover_bench",
    "publisher": "benchmarks.publisher_bench",
    "failover": "benchmarks.failover_bench",
    "cold_start": "benchmarks.cold_start_bench",
    "route": "benchmarks.route_bench",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], metavar="NAME")
    args, rest = parser.parse_known_args(argv)
    status = 0
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        print(f"== {name} ==", flush=True)
        status |= int(module.main(rest))
    return status


if __name__ == "__main__":
    sys.exit(main())
