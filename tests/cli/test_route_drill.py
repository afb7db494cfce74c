"""`mirror-vip drill` on a route-mode mirror, on the whole local stack: a real publish, the
function's `RouteMover`, and arrival judged by route mode's reader (the best route's next hop and
the forwarding rule's target), with the primary's zone down as on the day it matters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.mirrors import compute_state, route_layout
from local.stack import LocalStack, StackOptions
from support import mirrors

from .conftest import drill_args, run_json
from .test_route_mode import own_route

pytestmark = pytest.mark.e2e

LAYOUT = route_layout(0, project=mirrors.PROJECT)
PRIMARY, BACKUP = LAYOUT.members


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack([LAYOUT], StackOptions(op_latency=0.3, project=mirrors.PROJECT)) as running:
        yield running


def test_a_route_drill_with_the_primarys_zone_down_arrives(
    stack: LocalStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seeded = compute_state([LAYOUT])
    seeded["routes"] = [own_route(PRIMARY)]
    stack.compute.load_state(seeded)
    stack.compute.set_zone_down(PRIMARY.zone)
    config = tmp_path / "mirrors.json"
    config.write_text(json.dumps(stack.function_config()))
    monkeypatch.setenv("COMPUTE_API_ENDPOINT", stack.compute.url)
    monkeypatch.delenv("MIRROR_CONFIG", raising=False)
    monkeypatch.setenv("MIRROR_CONFIG_FILE", str(config))
    assert stack.function is not None

    code, doc = run_json(capsys, *drill_args(stack, BACKUP.name))

    [result] = doc["mirrors"]
    assert code == 0
    assert result["arrived"] is True
    seen = [e["what"] for e in result["timeline"]]
    assert seen[:2] == ["published", "first write seen"]
    assert set(seen[2:]) == {"VIP switched", "public IP switched"}
    assert stack.holder(LAYOUT.name).vip_on == (BACKUP.name,)
    record = stack.wait_for_outcome(result["message_id"], 10)
    assert (record["outcome"], record["mode"]) == ("moved", "route")
