"""A service account key file on a GCE VM is warned about, once per process."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mirrorvip_publisher import PublishResult, notify_become_primary
from mirrorvip_publisher.key_file import forget_warning

from .conftest import Channel
from .objectscript import child, descendants, parse_file, text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IRIS_CALLERS = (REPO / "publisher" / "ZMIRROR.mac", REPO / "publisher" / "MirrorVipHeartbeat.cls")


@pytest.fixture(autouse=True)
def fresh_process() -> None:
    """Each test is a new IRIS job: nothing warned yet."""
    forget_warning()


@pytest.mark.usefixtures("metadata_server")
def test_a_key_file_on_a_vm_is_warned_about_once(
    channel: Channel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "sa-key.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))

    first = notify_become_primary("MIRRORA", "IRIS-A")
    second = notify_become_primary("MIRRORA", "IRIS-A")

    assert first.ok, str(first)
    assert first.warning.startswith(f"GOOGLE_APPLICATION_CREDENTIALS={key} names a service")
    assert "roles/pubsub.publisher" in first.warning
    assert second.ok, str(second)
    assert second.warning == ""  # a heartbeat task in the same process does not repeat it
    assert len(channel.published_so_far("MIRRORA")) == 2  # a warning, not a refusal


@pytest.mark.usefixtures("channel", "metadata_server")
def test_the_vm_own_credentials_give_no_warning() -> None:
    result = notify_become_primary("MIRRORA", "IRIS-A")

    assert result.ok, str(result)
    assert result.warning == ""


@pytest.mark.usefixtures("channel", "metadata_server")
def test_a_warning_survives_a_failed_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given once per process: the attempt that noticed it may fail, the result still carries it.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    monkeypatch.setenv("MIRRORVIP_PUBSUB_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("MIRRORVIP_BUDGET_SECONDS", "0.5")
    monkeypatch.setenv("MIRRORVIP_TOTAL_SECONDS", "1.5")

    result = notify_become_primary("MIRRORA", "IRIS-A")

    assert not result.ok
    assert result.attempts >= 2
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.warning


@pytest.mark.unit
@pytest.mark.parametrize("path", IRIS_CALLERS, ids=lambda p: p.name)
def test_iris_logs_the_results_warning_as_a_warning(path: Path) -> None:
    root = parse_file(path)
    fields = {field.name for field in dataclasses.fields(PublishResult)}
    [read] = [
        text(child(chain, "oref_chain_segment")).strip('."')
        for chain in descendants(root, "oref_chain_expr")
        if text(child(chain, "lvn")) == "result"
    ]
    assert read == "warning"
    assert read in fields
    logged = [
        text(call)
        for call in descendants(root, "class_method_call")
        if "WriteToConsoleLog" in text(call) and "warning: " in text(call)
    ]
    assert len(logged) == 1
    assert logged[0].replace(" ", "").endswith(",,1)")  # severity 1: a warning
