"""Route mode against alias mode, end to end on the local stack, at 2 s per operation.

For each mode: publish -> the VIP reaches the new primary (alias mode: the alias applied on it;
route mode: the route to it applied, i.e. the best route points at it) and -> the public IP
follows (alias: static IP attached; route: forwarding rule retargeted), medians of runs
alternating failover and failback. Then route mode again with the old primary's zone down before
each failover (alias mode cannot move at all then: docs/fault-matrix.md). Target: route mode <=
one operation + 0.5 s, with or without the zone.

`python -m benchmarks route`; writes results/route.md and results/route.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence

from benchmarks.results import bench_parser, write_results
from emulators import JsonDict
from local.mirrors import MirrorLayout, mirror_layout, route_layout
from local.stack import LocalStack, StackError, StackOptions
from local.timeline import milestones

LATENCY_S = 2.0
SLACK_S = 0.5
MOVE_TIMEOUT_S = 120.0
MARKS = {
    "alias": ("alias_added", "public_attached"),
    "route": ("route_inserted", "rule_retargeted"),
}


def one_move(stack: LocalStack, layout: MirrorLayout, to: str) -> JsonDict:
    """Publish as `to`; seconds from the publish call to the VIP and the public IP moving."""
    published = stack.publish(layout.name, to)
    if published.message_id is None:
        raise StackError(f"publish failed: {published.summary}")
    outcome = stack.wait_for_outcome(published.message_id, MOVE_TIMEOUT_S)
    stack.wait_for_holder(layout.name, to, MOVE_TIMEOUT_S)
    marks = milestones(stack, published)
    vip_mark, public_mark = MARKS[layout.mode]
    if vip_mark not in marks or public_mark not in marks:
        raise StackError(f"no {vip_mark}/{public_mark} in the emulator's record: {marks}")
    return {
        "to": to,
        "outcome": outcome["outcome"],
        "vip_s": marks[vip_mark] - published.started,
        "public_s": marks[public_mark] - published.started,
    }


def _place(stack: LocalStack, layout: MirrorLayout, to: str) -> None:
    """Publish as `to` and wait until it holds everything (no timing).

    Starts in a new second: identity tokens are issued in whole seconds, and a member's token
    no newer than its last accepted one is refused as a replay (`replay`); at 0 s operations
    the warm-up's failback would otherwise come within the second of the first announcement.
    """
    time.sleep(1 - time.time() % 1)
    published = stack.publish(layout.name, to)
    if published.message_id is None:
        raise StackError(f"publish failed: {published.summary}")
    stack.wait_for_outcome(published.message_id, MOVE_TIMEOUT_S)
    stack.wait_for_holder(layout.name, to, MOVE_TIMEOUT_S)


def runs_of(stack: LocalStack, layout: MirrorLayout, runs: int, *, zone_down: bool) -> JsonDict:
    """`runs` failovers; with `zone_down`, the current holder's zone is down during each."""
    primary, backup = layout.members
    results = []
    holder, other = primary, backup
    for _ in range(runs):
        if zone_down:
            stack.compute.set_zone_down(holder.zone)
        results.append(one_move(stack, layout, other.name))
        if zone_down:
            stack.compute.set_zone_down(holder.zone, down=False)
        holder, other = other, holder
    vip = statistics.median(r["vip_s"] for r in results)
    return {
        "mode": layout.mode,
        "zone_down": zone_down,
        "runs": runs,
        "op_latency_s": LATENCY_S,
        "median_vip_s": vip,
        "median_public_s": statistics.median(r["public_s"] for r in results),
        "operations_on_critical_path": vip / LATENCY_S,
        "details": results,
    }


def measure(layout: MirrorLayout, runs: int, project: str) -> list[JsonDict]:
    options = StackOptions(op_latency=0.0, project=project, takeover_limit={"moves": 0})
    with LocalStack([layout], options) as stack:
        primary, backup = layout.members
        for member in (primary, backup, primary):  # warm-up; route mode: places the route
            _place(stack, layout, member.name)
        stack.compute.set_op_latency(LATENCY_S)
        rows = [runs_of(stack, layout, runs, zone_down=False)]
        if layout.mode == "route":
            _place(stack, layout, primary.name)
            rows.append(runs_of(stack, layout, runs, zone_down=True))
        return rows


def render(report: JsonDict) -> str:
    lines = [
        f"# Route mode vs alias mode ({report['date']})",
        "",
        f"Local stack, {LATENCY_S:g} s per Compute operation; seconds from the publish call.",
        f"Route-mode target: VIP <= one operation + {SLACK_S:g} s = {LATENCY_S + SLACK_S:g} s.",
        "",
        "| mode | old primary's zone | runs | VIP on new primary (median) | public IP (median) "
        "| operations on the critical path |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['mode']} | {'down' if row['zone_down'] else 'up'} | {row['runs']} "
            f"| {row['median_vip_s']:.2f} s | {row['median_public_s']:.2f} s "
            f"| {row['operations_on_critical_path']:.2f} |"
        )
    lines += [
        "| alias | down | - | never (AddressInUse, retried until the zone returns) | never | - |",
        "",
        f"Route-mode target met: {report['target_met']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser("route", __doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(list(argv) if argv is not None else None)
    project = "mirrorvip-bench"
    rows: list[JsonDict] = []
    for layout in (mirror_layout(0, project=project), route_layout(0, project=project)):
        print(f"{layout.mode} mode, {args.runs} runs at {LATENCY_S:g} s ...", flush=True)
        rows += measure(layout, args.runs, project)
    route_rows = [r for r in rows if r["mode"] == "route"]
    met = all(r["median_vip_s"] <= LATENCY_S + SLACK_S for r in route_rows)
    report: JsonDict = {"date": time.strftime("%Y-%m-%d"), "rows": rows, "target_met": met}
    write_results(args.out, "route", render(report), report)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
