"""The whole local stack for the end-to-end tier: started once per package, reset per test.

The stack is the one `make demo` runs (`local/stack.py`), seeded with the test mirror
layout of `support.mirrors` plus two more mirrors in the same project, so that one deployment
serves several mirrors. Package scope: it runs while this tier runs. (It no longer sets
PUBSUB_EMULATOR_HOST: every client it builds names the emulator's endpoint.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.mirrors import compute_state, mirror_layout
from local.stack import LocalStack, StackOptions
from support import mirrors

OP_LATENCY_S = 0.5
"""Greater than 0 so that a crash can land between a mutation and its operation applying."""
EXTRA_MIRRORS = 2


LAYOUTS = [mirror_layout(i, project=mirrors.PROJECT) for i in range(1 + EXTRA_MIRRORS)]
"""Mirror 0 is `support.mirrors`' mirror exactly; the others are made alike."""


@pytest.fixture(scope="package")
def running_stack() -> Iterator[LocalStack]:
    """Compute, metadata and Pub/Sub emulators and the function process, for the whole tier.

    Push redelivery is tuned to be quick (0.2..1 s backoff) so that the crash test's retry
    arrives in about a second rather than the 10 s Eventarc starts with.
    """
    options = StackOptions(
        op_latency=OP_LATENCY_S,
        project=mirrors.PROJECT,
        ack_deadline_seconds=20,
        minimum_backoff_seconds=0.2,
        maximum_backoff_seconds=1.0,
    )
    with LocalStack(LAYOUTS, options) as stack:
        yield stack


@pytest.fixture
def stack(running_stack: LocalStack) -> LocalStack:
    """The running stack with every mirror back on its initial primary and the record cleared.

    Resources are reloaded, not failed back: each test starts from the seed whatever the last
    one did. Operations and requestIds are kept (message ids never repeat within a stack).
    """
    function = running_stack.function
    if function is not None and not function.running:
        running_stack.restart_function()
    running_stack.compute.set_op_latency(OP_LATENCY_S)
    running_stack.compute.load_state(compute_state(LAYOUTS))
    for layout in LAYOUTS:  # each member's IRIS agrees with the seed: the first is primary
        running_stack.iris.set_primary(layout.members[0].name)
    running_stack.compute.clear_requests()
    return running_stack
