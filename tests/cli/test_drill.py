"""`mirror-vip drill` (and doctor's topic check) on the whole local stack: a real publish,
through the Pub/Sub emulator's push to the function, observed only through the Compute API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.mirrors import compute_state, mirror_layout
from local.stack import LocalStack, StackOptions
from support import mirrors

from .conftest import drill_args, run_json

pytestmark = pytest.mark.e2e

LAYOUT = mirror_layout(0, project=mirrors.PROJECT)


@pytest.fixture(scope="module")
def running_stack() -> Iterator[LocalStack]:
    with LocalStack([LAYOUT], StackOptions(op_latency=0.3, project=mirrors.PROJECT)) as stack:
        yield stack


@pytest.fixture
def stack(running_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    running_stack.compute.load_state(compute_state([LAYOUT]))
    monkeypatch.setenv("COMPUTE_API_ENDPOINT", running_stack.compute.url)
    monkeypatch.delenv("MIRROR_CONFIG", raising=False)
    monkeypatch.setenv("MIRROR_CONFIG_FILE", str(tmp_path / "mirrors.json"))
    (tmp_path / "mirrors.json").write_text(json.dumps(running_stack.function_config()))
    return running_stack


def test_a_drill_moves_the_vip_and_prints_its_timeline(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The function corroborates with IRIS: a drill moves the VIP only to the member IRIS made
    # primary (against a healthy primary it is refused, holder_still_primary).
    stack.iris.set_primary("isc-backup-001")
    code, doc = run_json(capsys, *drill_args(stack, "isc-backup-001"))

    [result] = doc["mirrors"]
    assert code == 0
    assert result["arrived"] is True
    assert result["identity_token"] is True
    assert [e["what"] for e in result["timeline"]] == [
        "published",
        "first write seen",
        "VIP switched",
        "public IP switched",
    ]
    assert stack.holder(LAYOUT.name).vip_on == ("isc-backup-001",)
    record = stack.wait_for_outcome(result["message_id"], 10)
    assert record["outcome"] == "moved"


def test_a_drill_that_does_not_arrive_fails_with_the_outcome_line(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.compute.edit_instance(
        mirrors.PROJECT, "us-west1-b", "isc-backup-001", lambda vm: vm.update(status="TERMINATED")
    )

    code, doc = run_json(capsys, *drill_args(stack, "isc-backup-001", timeout="4"))

    [result] = doc["mirrors"]
    assert code == 1
    assert result["arrived"] is False
    assert result["outcome"]["outcome"] == "rejected"
    assert result["outcome"]["error_reason"] == "target_not_running"


def test_a_drill_without_an_identity_token_is_refused_before_publishing(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_json(capsys, "drill", "--to", "isc-backup-001", "--topic", stack.topic)

    assert code == 2
    assert "identity tokens" in doc["mirrors"][0]["error"]


def test_doctor_on_the_healthy_stack_reports_no_problem(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_json(
        capsys, "doctor", "--topic", stack.topic, "--pubsub-endpoint", stack.pubsub.host
    )

    checks = doc["mirrors"][0]["checks"]
    assert code == 0
    assert [c["name"] for c in checks if c["level"] != "ok"] == ["vip_reserved"]
    assert {"name": "topic", "level": "ok", "detail": f"{stack.topic} exists", "fix": ""} in checks


def test_doctor_reports_a_missing_topic(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"projects/{mirrors.PROJECT}/topics/no-such-topic"

    code, doc = run_json(capsys, "doctor", "--topic", topic, "--pubsub-endpoint", stack.pubsub.host)

    checks = doc["mirrors"][0]["checks"]
    assert code == 1
    assert [c["detail"] for c in checks if c["name"] == "topic"] == [f"{topic} does not exist"]
