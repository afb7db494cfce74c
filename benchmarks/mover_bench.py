"""One failover through the real function at 1 s emulated operation latency, against the floor.

The floor is two sequential mutation operations (remove the VIP from the old primary, then add
it to the new one): no correct mover can be faster. The public IP moves concurrently and should
be done within the same time. Each run posts a real CloudEvent through functions-framework's test
client into `on_mirror_event`, which talks to the Compute emulator over HTTP; runs alternate
failover and failback so every run moves the VIP and the static IP.

As deployed, the function corroborates each move with the members' IRIS (health simulator,
`emulators.iris_health`, which the run flips with the primary); the same runs without
corroboration give its cost on the critical path (target: at most 0.3 s).

Writes results/mover.md and results/mover.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks.results import bench_parser, write_results
from emulators.compute import ComputeEmulator
from emulators.iris_health import IrisHealthSimulator
from local.events import became_primary, cloud_event
from local.function_process import FUNCTION_SOURCE, outcome_lines
from local.mirrors import compute_state, mirror_config, mirror_layout

LAYOUT = mirror_layout(0)
TOPIC = f"projects/{LAYOUT.project}/topics/mirror-vip"
SUBSCRIPTION = f"projects/{LAYOUT.project}/subscriptions/eventarc-mirror-vip"
TARGET_RATIO = 1.15
TARGET_CORROBORATION_S = 0.3


def _function_client(compute_url: str, corroborate_url: str | None) -> Any:
    import functions_framework  # noqa: PLC0415

    config = mirror_config([LAYOUT])
    # Unsigned events (the mover is measured, not identity); runs alternate, so no rate limit.
    config["identity"] = {"required": False}
    entry = config["mirrors"][LAYOUT.name]
    entry["takeover_limit"] = {"moves": 0}
    if corroborate_url:
        entry["corroborate"] = {"url": corroborate_url, "timeout_seconds": 2}
    os.environ["MIRROR_CONFIG"] = json.dumps(config)
    os.environ["COMPUTE_API_ENDPOINT"] = compute_url
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="on_mirror_event", source=str(FUNCTION_SOURCE), signature_type="cloudevent"
    )
    return app.test_client()


def run(latency: float, runs: int) -> dict[str, Any]:
    """Measure `runs` moves at `latency`, with and without corroboration."""
    with_probes = _run(latency, runs, corroborate=True)
    without = _run(latency, runs, corroborate=False)
    added = round(with_probes["wall_s"] - without["wall_s"], 3)
    return with_probes | {"wall_uncorroborated_s": without["wall_s"], "corroboration_s": added}


def _run(latency: float, runs: int, *, corroborate: bool) -> dict[str, Any]:
    """Measure `runs` moves at `latency`; returns medians and per-move API calls."""
    from cloudevents.conversion import to_structured  # noqa: PLC0415

    primary, backup = LAYOUT.members
    members = [primary, dataclasses.replace(backup, nat_ip="192.0.2.7")]
    state = compute_state([dataclasses.replace(LAYOUT, members=tuple(members))])
    iris = IrisHealthSimulator([m.name for m in members])
    with ComputeEmulator(state, op_latency=latency) as compute, iris:
        client = _function_client(compute.url, iris.url_template if corroborate else None)
        walls, public_done, private_done = [], [], []
        calls: list[Counter[str]] = []
        for index in range(runs):
            target = members[(index + 1) % 2]
            iris.set_primary(target.name)
            event = became_primary(target, mirror=LAYOUT.name, project=LAYOUT.project)
            headers, body = to_structured(
                cloud_event(event, topic=TOPIC, subscription=SUBSCRIPTION)
            )
            compute.clear_requests()
            out = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stdout(out):
                response = client.post("/", headers=headers, data=body)
            walls.append(time.perf_counter() - started)
            (outcome,) = outcome_lines(out.getvalue())
            if response.status_code != 200 or outcome["outcome"] != "moved":
                raise RuntimeError(f"run {index} did not move the VIP: {outcome}")
            private_done.append(outcome["steps_ms"]["private_ms"] / 1000)
            public_done.append(outcome["steps_ms"]["public_ms"] / 1000)
            calls.append(compute.call_counts())
    floor = 2 * latency
    wall = statistics.median(walls)
    return {
        "latency_s": latency,
        "runs": runs,
        "floor_s": floor,
        "wall_s": round(wall, 3),
        "ratio": round(wall / floor, 3),
        "private_s": round(statistics.median(private_done), 3),
        "public_s": round(statistics.median(public_done), 3),
        "wall_min_s": round(min(walls), 3),
        "wall_max_s": round(max(walls), 3),
        "api_calls": dict(sorted(calls[-1].items())),
    }


def render(result: dict[str, Any], measured_at: str) -> str:
    lines = [
        "# Mover benchmark: one failover at 1 s emulated operation latency",
        "",
        f"Measured {measured_at} on {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"median of {result['runs']} moves (alternating failover and failback; in the first, the "
        "new primary holds an ephemeral IP that must make room for the static one).",
        "",
        "| measure | seconds | x floor |",
        "|---|---:|---:|",
        f"| floor: two sequential mutation operations | {result['floor_s']:.3f} | 1.00 |",
        f"| wall time of `on_mirror_event` (median) | {result['wall_s']:.3f} "
        f"| {result['ratio']:.2f} |",
        f"| private VIP chain done | {result['private_s']:.3f} "
        f"| {result['private_s'] / result['floor_s']:.2f} |",
        f"| public IP chain done (concurrent) | {result['public_s']:.3f} "
        f"| {result['public_s'] / result['floor_s']:.2f} |",
        f"| wall time, min / max | {result['wall_min_s']:.3f} / {result['wall_max_s']:.3f} | |",
        f"| wall time without corroboration (median) | {result['wall_uncorroborated_s']:.3f} | |",
        "",
        f"Corroboration (IRIS probes of every member, alongside the reads) added "
        f"{result['corroboration_s']:.3f} s (target: at most {TARGET_CORROBORATION_S} s): "
        f"**{'met' if result['corroboration_s'] <= TARGET_CORROBORATION_S else 'MISSED'}**.",
        "",
        f"Target: at most {TARGET_RATIO} x the floor, public IP within the same time: "
        f"**{'met' if result['ratio'] <= TARGET_RATIO else 'MISSED'}**.",
        "",
        "API calls of one move, by method:",
        "",
        "| method | calls |",
        "|---|---:|",
        *(f"| `{method}` | {count} |" for method, count in result["api_calls"].items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("mover")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--latency", type=float, default=1.0)
    args, _ = parser.parse_known_args(argv)
    result = run(args.latency, args.runs)
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = render(result, measured_at)
    write_results(args.out, "mover", table, result | {"measured_at": measured_at})
    return 0 if result["ratio"] <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
