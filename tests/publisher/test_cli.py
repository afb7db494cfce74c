"""The command line (runbooks, drills) and the installable package, in fresh processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Channel

REPO = Path(__file__).resolve().parents[2]
PUBLISHER = REPO / "publisher"


def run(
    *args: str, pythonpath: Path = PUBLISHER, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.mark.unit
def test_importing_the_module_loads_no_client_library() -> None:
    # Compare before/after: site .pth files pre-load the empty `google` namespace packages.
    probe = (
        "import sys; before = set(sys.modules); import mirrorvip_publisher; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('grpc', 'google'))))"
    )

    done = run("-c", probe)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.integration
@pytest.mark.usefixtures("metadata_server")
def test_dry_run_prints_the_event_and_publishes_nothing(channel: Channel) -> None:
    done = run(
        "-m",
        "mirrorvip_publisher",
        "publish",
        "--mirror",
        "MIRRORA",
        "--member",
        "IRIS-A",
        "--dry-run",
    )

    assert done.returncode == 0, done.stderr
    event_text, _, summary = done.stdout.rpartition("}")
    event = json.loads(event_text + "}")
    assert event["type"] == "became_primary"
    assert "redacted" in event["identity_token"]
    assert summary.strip().startswith("dry run: not published")
    assert channel.published_so_far("MIRRORA") == []


@pytest.mark.integration
@pytest.mark.usefixtures("metadata_server")
def test_publish_drill_sends_became_primary(channel: Channel) -> None:
    done = run("-m", "mirrorvip_publisher", "publish", "--mirror", "MIRRORA", "--member", "IRIS-B")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published ")
    [message] = channel.pull()
    assert message.json()["member"] == "IRIS-B"


@pytest.mark.integration
@pytest.mark.usefixtures("metadata_server")
def test_heartbeat_outside_iris_is_refused_unless_assumed_primary(channel: Channel) -> None:
    refused = run(
        "-m", "mirrorvip_publisher", "heartbeat", "--mirror", "MIRRORA", "--member", "IRIS-A"
    )
    assumed = run(
        "-m",
        "mirrorvip_publisher",
        "heartbeat",
        "--mirror",
        "MIRRORA",
        "--member",
        "IRIS-A",
        "--assume-primary",
    )

    assert refused.returncode == 3
    assert "refused: not running inside IRIS" in refused.stderr
    assert assumed.returncode == 0, assumed.stderr
    [message] = channel.pull()
    assert message.json()["type"] == "heartbeat"


@pytest.mark.unit
def test_bad_configuration_exits_1_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRRORVIP_CONFIG", raising=False)
    monkeypatch.setenv("MIRRORVIP_TOPIC", "projects/mirrorvip-test/topics/vip")

    done = run(
        "-m",
        "mirrorvip_publisher",
        "publish",
        "--mirror",
        "M",
        "--member",
        "X",
        "--budget",
        "forever",
    )

    assert done.returncode == 1
    assert "MIRRORVIP_BUDGET_SECONDS: 'forever' is not a number of seconds" in done.stderr


@pytest.mark.unit
def test_pip_install_target_gives_an_importable_package(tmp_path: Path) -> None:
    # Offline build (no index, no isolation): setuptools and wheel come from requirements-dev.
    source = tmp_path / "src"
    shutil.copytree(
        PUBLISHER, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    target = tmp_path / "mgr" / "python"

    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )

    assert pip.returncode == 0, pip.stderr
    assert (target / "mirrorvip_publisher" / "mirrorvip_publisher.ini.example").is_file()
    done = run(
        "-c",
        "import mirrorvip_publisher as m; print(m.notify_become_primary.__name__, m.__file__)",
        pythonpath=target,
    )
    assert done.returncode == 0, done.stderr
    name, location = done.stdout.split()
    assert name == "notify_become_primary"
    assert Path(location).is_relative_to(target)
