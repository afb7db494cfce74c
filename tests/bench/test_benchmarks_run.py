"""Every benchmark still runs to its table: `python -m benchmarks --smoke`, each at its smallest.

Benchmarks drive the whole stack many times in a row, so a change can break them alone (the
takeover limit refusing the fourth failover did, and only `make bench` showed it). Their numbers
at this size mean nothing and are not checked; that each one ran and wrote its table is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS, main

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_every_benchmark_runs_and_writes_its_results(tmp_path: Path) -> None:
    main(["--smoke", "--out", str(tmp_path)])  # 1 = a target missed: fine at this size

    for name in BENCHMARKS:
        table = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
        assert "|---" in table, f"{name}: no table in {table[:200]!r}"
        assert json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8")), name
