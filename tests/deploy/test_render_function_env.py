"""render_function_env.py: the function timeout deploy.sh computes always leaves time to log.

The function gives all its Compute operations `operation_timeout_seconds`, then needs a margin to
read, write its outcome line and return; Cloud Functions kills an event-driven function at 540 s.
Whatever operation deadline the function's own parser accepts, the rendered `--timeout` must
cover deadline + margin and stay within 540 s, or the config is refused: never a silent cap.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vipmover.config import parse_config
from vipmover.errors import ConfigError

from .script import DEPLOY_DIR, PROJECT, load_deploy_script

pytestmark = pytest.mark.unit


RENDER = load_deploy_script("render_function_env")


def example(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text())
    return document | changes


def parser_accepts(document: dict[str, Any]) -> bool:
    try:
        parse_config(document, default_project=lambda: PROJECT)
    except ConfigError:
        return False
    return True


@given(st.floats(min_value=0, max_value=600, allow_nan=False) | st.integers(0, 600))
def test_accepted_deadlines_leave_the_margin_within_540_s(operation_timeout: float) -> None:
    document = example(operation_timeout_seconds=operation_timeout)
    if not parser_accepts(example(operation_timeout_seconds=operation_timeout)):
        with pytest.raises(ConfigError):
            RENDER.render_document(document, PROJECT)
        return
    if operation_timeout > 480:
        with pytest.raises(ConfigError, match=r"operation_timeout_seconds: .* at most 480"):
            RENDER.render_document(document, PROJECT)
        return
    rendered = RENDER.render_document(document, PROJECT)
    assert operation_timeout + 60 <= rendered.timeout_s <= 540
    assert rendered.timeout_s == math.ceil(operation_timeout) + 60


@pytest.mark.parametrize(("operation_timeout", "timeout"), [(1, 61), (240, 300), (480, 540)])
def test_the_timeout_is_the_deadline_plus_60_s(operation_timeout: int, timeout: int) -> None:
    rendered = RENDER.render_document(example(operation_timeout_seconds=operation_timeout), PROJECT)
    assert rendered.timeout_s == timeout


def test_the_mirror_count_is_reported() -> None:
    mirrors = example()["mirrors"]
    second = {"MIRRORB": mirrors["IRISMIRROR"] | {"private_vip": "10.0.0.251/32"}}
    second["MIRRORB"].pop("public_ip")
    rendered = RENDER.render_document(example(mirrors=mirrors | second), PROJECT)
    assert rendered.mirrors == 2


def test_deployed_config_verifies_identity_for_the_topic_and_corroborates() -> None:
    """Deployed, identity is required with an explicit audience (not the CloudEvent's source,
    which a direct invoker controls), and every mirror asks its members' IRIS."""
    document = example()
    document["mirrors"]["OPTOUT"] = document["mirrors"]["IRISMIRROR"] | {
        "private_vip": "10.0.0.249/32",
        "corroborate": None,
        "public_ip": None,
    }
    topic = f"projects/{PROJECT}/topics/mirror-vip-events"

    rendered = RENDER.render_document(document, PROJECT, topic)

    env = yaml.safe_load(rendered.env_text)
    config = parse_config(json.loads(env["MIRROR_CONFIG"]), default_project=lambda: PROJECT)
    assert config.identity.required is True
    assert config.identity.audience == f"//pubsub.googleapis.com/{topic}"
    corroborate = config.mirrors["IRISMIRROR"].corroborate
    assert corroborate is not None
    assert corroborate.url == "http://{ip}:52773/csp/user/mirror_status.cxw"
    assert config.mirrors["OPTOUT"].corroborate is None
