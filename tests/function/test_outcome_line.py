"""The outcome line is what Cloud Logging expects: the same fields google-cloud-logging writes.

The function writes its line with its own small handler (importing google-cloud-logging cost
0.8 s of every cold start); this checks it against `StructuredLogHandler` itself, so that the
`jsonPayload` fields, `severity` and `message` stay the ones the metrics and alerts read.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
from google.cloud.logging.handlers import StructuredLogHandler

from local.function_process import outcome_lines
from vipmover.outcome import JsonLineHandler, Outcome, OutcomeName

pytestmark = pytest.mark.unit

PROVENANCE = {  # set per request by Cloud Run / the library, not by us
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "httpRequest",
}


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("mirror_vip_parity")
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        yield log
    finally:
        log.handlers.clear()


def ours(logger: logging.Logger, outcome: Outcome) -> dict[str, Any]:
    logger.handlers[:] = [JsonLineHandler()]
    out = io.StringIO()
    with redirect_stdout(out):
        logger.log(outcome.severity(), outcome.message(), extra={"json_fields": outcome.fields()})
    line: dict[str, Any] = json.loads(out.getvalue())
    return line


def reference(logger: logging.Logger, outcome: Outcome) -> dict[str, Any]:
    out = io.StringIO()
    logger.handlers[:] = [StructuredLogHandler(stream=out)]  # type: ignore[no-untyped-call]
    logger.log(outcome.severity(), outcome.message(), extra={"json_fields": outcome.fields()})
    line: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    return line


@pytest.mark.parametrize("outcome", ["moved", "rejected", "failed"])
def test_the_line_has_the_fields_structured_log_handler_writes(
    logger: logging.Logger, outcome: OutcomeName
) -> None:
    record = Outcome(event_id="1", outcome=outcome, mirror="M", error="x", actions=["a:b"])
    mine, theirs = ours(logger, record), reference(logger, record)

    assert set(mine) == set(theirs) - PROVENANCE
    for key in set(theirs) - PROVENANCE - {"logging.googleapis.com/sourceLocation"}:
        assert mine[key] == theirs[key], key
    assert mine["severity"] == {"moved": "INFO", "rejected": "WARNING", "failed": "ERROR"}[outcome]


def test_the_local_stack_reads_the_lines_the_function_writes(logger: logging.Logger) -> None:
    """local/ keeps its own copy of `component` (it runs the function as a process): one fact."""
    line = ours(logger, Outcome(event_id="1", outcome="moved", mirror="M"))

    [read] = outcome_lines(f"some other output\n{json.dumps(line)}\n")

    assert read == line


def test_a_first_placement_names_no_previous_holder() -> None:
    placed = Outcome(event_id="1", outcome="moved", mirror="M", vip="10.0.0.1/32", to_instance="b")
    moved = Outcome(**{**vars(placed), "from_instance": "a"})

    assert placed.message() == "M: VIP 10.0.0.1/32 moved (no holder before) to b"
    assert moved.message() == "M: VIP 10.0.0.1/32 moved from a to b"
