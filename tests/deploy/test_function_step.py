"""deploy.sh's function step sets the trigger subscription's ack deadline, for real.

Cloud Functions and Eventarc have no emulator, so a `gcloud` shim first on PATH answers the
`functions` and `eventarc` commands (the deployment itself, and the trigger's subscription name)
and hands every other command to the real gcloud, whose `pubsub` commands talk to Google's Pub/Sub
emulator. What is checked is the subscription the emulator really holds afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .script import PROJECT, gcloud_json, mutations, run_deploy, write_config

pytestmark = pytest.mark.integration

EVENTARC_DEFAULT_ACK_DEADLINE = "10"

SHIM = """#!/usr/bin/env bash
# Stands in for Cloud Functions and Eventarc; everything else goes to the real gcloud.
case "$1 $2" in
  "functions deploy" | "functions add-invoker-policy-binding") exit 0 ;;
  "functions describe") echo "projects/{project}/locations/us-central1/triggers/t"; exit 0 ;;
  "eventarc triggers") echo "{subscription}"; exit 0 ;;
esac
exec {gcloud} "$@"
"""


@pytest.fixture
def trigger_subscription(gcloud_env: dict[str, str]) -> str:
    """A push-less stand-in for the subscription Eventarc creates, with Eventarc's 10 s deadline."""
    topic = f"vip-{uuid.uuid4().hex[:8]}"
    subscription = f"projects/{PROJECT}/subscriptions/eventarc-{topic}"
    ack = f"--ack-deadline={EVENTARC_DEFAULT_ACK_DEADLINE}"
    for command in (
        ["topics", "create", topic],
        ["subscriptions", "create", subscription, f"--topic={topic}", ack],
    ):
        subprocess.run(
            ["gcloud", "pubsub", *command, f"--project={PROJECT}"],
            capture_output=True,
            timeout=60,
            check=True,
            env=gcloud_env,
        )
    return subscription


@pytest.fixture
def shimmed_env(
    gcloud_env: dict[str, str], trigger_subscription: str, tmp_path: Path
) -> dict[str, str]:
    """gcloud_env with the shim first on PATH."""
    real = shutil.which("gcloud")
    assert real is not None
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "gcloud"
    shim.write_text(SHIM.format(project=PROJECT, subscription=trigger_subscription, gcloud=real))
    shim.chmod(0o755)
    return gcloud_env | {"PATH": f"{shim_dir}{os.pathsep}{gcloud_env['PATH']}"}


def ack_deadline(env: dict[str, str], subscription: str) -> str:
    described = gcloud_json(env, "pubsub", "subscriptions", "describe", subscription)
    return str(described["ackDeadlineSeconds"])


def test_function_step_sets_a_600_s_ack_deadline_once(
    shimmed_env: dict[str, str], trigger_subscription: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    assert ack_deadline(shimmed_env, trigger_subscription) == EVENTARC_DEFAULT_ACK_DEADLINE

    first = run_deploy("function", config=config, env=shimmed_env)
    assert first.returncode == 0, first.stderr
    assert ack_deadline(shimmed_env, trigger_subscription) == "600"

    again = run_deploy("function", config=config, env=shimmed_env)
    assert again.returncode == 0, again.stderr
    assert [m for m in mutations(again.stderr) if " pubsub " in m] == [], "already 600: no update"
    assert ack_deadline(shimmed_env, trigger_subscription) == "600"
