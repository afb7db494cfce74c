"""`python -m benchmarks [NAME ...]`: run benchmarks, print their tables, write results/.

Names: mover (one failover at 1 s op latency against the floor), publisher (the ZMIRROR
callback's time), failover (end to end through the local stack, 20 mirrors), cold_start (the
function's start beside a bare functions-framework and the release before, and a failover that
lands on a cold function), route (route mode beside alias mode at 2 s operations, and with the
old primary's zone down).
With no name, all of them run in that order. `--smoke` runs each once, at the smallest size
(a test does, so that a change that breaks a benchmark shows in `make test`); its numbers mean
nothing. `--out DIR` writes the results there instead of results/.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SMOKE_ARGS = {
    "mover": ["--runs", "1", "--latency", "0.05"],
    "publisher": ["--runs", "1", "--down-budget", "1"],
    "failover": ["--runs", "1", "--scale-mirrors", "2", "--scale-runs", "1"],
    "cold_start": ["--start-runs", "1", "--cold-runs", "1"],
    "route": ["--runs", "1"],
}
"""Each benchmark's smallest run: `--smoke`."""

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
    parser.add_argument("--smoke", action="store_true", help="each once, at the smallest size")
    parser.add_argument("--out", help="where to write the results (default: results/)")
    args, rest = parser.parse_known_args(argv)
    if args.out:
        rest = [*rest, "--out", args.out]
    status = 0
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        print(f"== {name} ==", flush=True)
        status |= int(module.main([*(SMOKE_ARGS[name] if args.smoke else []), *rest]))
    return status


if __name__ == "__main__":
    sys.exit(main())
