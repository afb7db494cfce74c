"""A cold failover: how long the function takes to start, and a failover that lands on it.

* function start, process start to ready to serve (the port accepts connections), in fresh
  processes, interleaved so that the machine's noise falls on every variant alike:
  - a bare functions-framework serving a hello-world CloudEvent function (the floor we cannot
    go below; target: the function within 2.5 x of it and within 1.0 s);
  - the function of the release before the cold-start work (`BASELINE_REF`, google-cloud-compute
    and google-cloud-logging), taken from git into a scratch folder;
  - the function now.
* e2e cold failover: the local stack with the function started by the push itself
  (`StackOptions(cold_function=True)`, as Cloud Run starts an instance), at 2 s operations:
  publish -> alias on the new primary, against the floor of two operations; target floor + 1 s.

`python -m benchmarks cold_start`; writes results/cold_start.md and results/cold_start.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.failover_bench import NO_TAKEOVER_LIMIT, one_move
from benchmarks.results import bench_parser, write_results
from emulators import JsonDict
from emulators.process import free_port
from local.function_process import FUNCTION_SOURCE, FunctionProcess
from local.mirrors import mirror_config, mirror_layout
from local.stack import LocalStack, StackOptions

REPO = Path(__file__).resolve().parents[1]
BASELINE_REF = "6340871"
"""The last commit whose function imported google-cloud-compute and google-cloud-logging."""
HELLO = """
import functions_framework


@functions_framework.cloud_event
def hello(cloud_event):
    return None
"""
TARGET_START_S = 1.0
TARGET_RATIO = 2.5
OP_LATENCY_S = 2.0
TARGET_SLACK_S = 1.0


def start_seconds(function: FunctionProcess) -> float:
    """One cold start: process start to the port accepting."""
    try:
        function.start(timeout=120)
        return function.ready_at - function.started_at
    finally:
        function.stop()


def variants(workdir: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (source file, target) of each function whose start is timed."""
    hello = workdir / "hello" / "main.py"
    hello.parent.mkdir()
    hello.write_text(HELLO, encoding="utf-8")
    before = workdir / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BASELINE_REF, "function"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    return {
        "bare functions-framework (hello world)": (hello, "hello"),
        f"before ({BASELINE_REF}: google-cloud-compute, -logging)": (
            before / "function" / "main.py",
            "on_mirror_event",
        ),
        "now (REST through google-auth)": (FUNCTION_SOURCE, "on_mirror_event"),
    }


def function_starts(runs: int) -> JsonDict:
    """Median start of each variant over `runs` interleaved rounds."""
    layout = mirror_layout(0)
    env = {
        "MIRROR_CONFIG": json.dumps(mirror_config([layout])),
        "COMPUTE_API_ENDPOINT": "http://127.0.0.1:9",  # starting contacts no API
        "GOOGLE_CLOUD_PROJECT": layout.project,
    }
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        workdir = Path(scratch)
        chosen = variants(workdir)
        seconds: dict[str, list[float]] = {name: [] for name in chosen}
        for index in range(runs):
            for name, (source, target) in chosen.items():
                log = workdir / f"{len(seconds[name])}-{index}.log"
                function = FunctionProcess(free_port(), env, log, source=source, target=target)
                seconds[name].append(start_seconds(function))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    bare, now = medians[next(iter(chosen))], medians[list(chosen)[-1]]
    return {
        "runs": runs,
        "median_s": medians,
        "all_s": seconds,
        "ratio_to_bare": {name: value / bare for name, value in medians.items()},
        "target_met": now <= TARGET_START_S and now / bare <= TARGET_RATIO,
    }


def cold_failovers(runs: int) -> JsonDict:
    """`runs` failovers, each landing on a function that the push itself has to start."""
    layout = mirror_layout(0)
    primary, backup = (m.name for m in layout.members)
    options = StackOptions(
        op_latency=OP_LATENCY_S,
        project=layout.project,
        cold_function=True,
        takeover_limit=NO_TAKEOVER_LIMIT,
    )
    results: list[JsonDict] = []
    with LocalStack([layout], options) as stack:
        assert stack.function is not None
        for index in range(runs):
            stack.function.stop()  # the next push finds no instance
            result = one_move(stack, layout.name, backup if index % 2 == 0 else primary)
            result["function_start_s"] = stack.function.ready_at - stack.function.started_at
            results.append(result)
    floor = 2 * OP_LATENCY_S
    alias = statistics.median([r["alias_added_s"] for r in results])
    return {
        "op_latency_s": OP_LATENCY_S,
        "runs": runs,
        "floor_s": floor,
        "median_alias_added_s": alias,
        "median_received_s": statistics.median([r["received_s"] for r in results]),
        "median_function_start_s": statistics.median([r["function_start_s"] for r in results]),
        "target_s": floor + TARGET_SLACK_S,
        "target_met": alias <= floor + TARGET_SLACK_S,
        "details": results,
    }


def render(starts: JsonDict, cold: JsonDict) -> str:
    lines = [
        "# Cold start",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; medians of "
        f"{starts['runs']} interleaved fresh processes each (process start to port accepting).",
        "",
        "| function | start | / bare framework |",
        "|---|---:|---:|",
    ]
    for name, seconds in starts["median_s"].items():
        lines.append(f"| {name} | {seconds:.3f} s | {starts['ratio_to_bare'][name]:.2f} x |")
    lines += [
        "",
        f"Target: now <= {TARGET_START_S} s and <= {TARGET_RATIO} x the bare framework: "
        f"{'met' if starts['target_met'] else 'NOT met'}.",
        "",
        "## A failover that lands on a cold function",
        "",
        f"The push starts the function (as Cloud Run does); {cold['runs']} runs at "
        f"{cold['op_latency_s']:g} s operations, medians.",
        "",
        "| publish -> received | function start | publish -> alias added | floor | target |",
        "|---:|---:|---:|---:|---:|",
        f"| {cold['median_received_s']:.3f} s | {cold['median_function_start_s']:.3f} s | "
        f"{cold['median_alias_added_s']:.3f} s | {cold['floor_s']:.1f} s | "
        f"{cold['target_s']:.1f} s ({'met' if cold['target_met'] else 'NOT met'}) |",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser("cold_start")
    parser.add_argument("--start-runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=3)
    args, _ = parser.parse_known_args(argv)
    print(f"function start, {args.start_runs} rounds ...", flush=True)
    starts = function_starts(args.start_runs)
    print(f"cold failovers, {args.cold_runs} runs ...", flush=True)
    cold = cold_failovers(args.cold_runs)
    text = render(starts, cold)
    write_results(args.out, "cold_start", text, {"function_start": starts, "cold_failover": cold})
    return 0 if starts["target_met"] and cold["target_met"] else 1
