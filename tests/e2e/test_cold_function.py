"""A failover that lands on a cold function: started by the push itself, as Cloud Run does.

The stack's push endpoint is an `OnDemandFunction` front: nothing listens behind it until the
first push starts the function. The move must still complete and be logged; the benchmark
(`make bench`) times it against a warm one.
"""

from __future__ import annotations

import pytest

from local.stack import LocalStack, StackOptions
from support import mirrors

from .conftest import LAYOUTS

pytestmark = pytest.mark.e2e


def test_the_first_push_starts_the_function_and_the_vip_moves() -> None:
    options = StackOptions(op_latency=0.2, project=mirrors.PROJECT, cold_function=True)
    with LocalStack(LAYOUTS[:1], options) as stack:
        assert stack.function is not None
        assert not stack.function.running  # nothing has started it yet

        published = stack.publish(mirrors.MIRROR, mirrors.backup().name)
        assert published.ok, published.summary
        assert published.message_id is not None
        outcome = stack.wait_for_outcome(published.message_id, 60)

        assert outcome["outcome"] == "moved"
        assert stack.function.pid is not None  # started by the push
        stack.wait_for_holder(mirrors.MIRROR, mirrors.backup().name, 30)
