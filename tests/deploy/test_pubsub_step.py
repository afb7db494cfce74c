"""deploy.sh's Pub/Sub step, run for real with gcloud against Google's Pub/Sub emulator."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from .script import PROJECT, gcloud_json, mutations, run_deploy, write_config

pytestmark = pytest.mark.integration

SEVEN_DAYS = "604800s"
THIRTY_ONE_DAYS = "2678400s"


@pytest.fixture
def names() -> dict[str, str]:
    """Names unique to the test: the emulator is shared by the session."""
    topic = f"vip-{uuid.uuid4().hex[:8]}"
    return {
        "TOPIC": topic,
        "DEAD_LETTER_TOPIC": f"{topic}-dlq",
        "DEAD_LETTER_SUBSCRIPTION": f"{topic}-dlq-keep",
    }


def test_pubsub_step_creates_topics_and_a_subscription_that_keeps_dead_letters(
    gcloud_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path, **names)

    first = run_deploy("pubsub", config=config, env=gcloud_env)
    assert first.returncode == 0, first.stderr

    topics = {t["name"] for t in gcloud_json(gcloud_env, "pubsub", "topics", "list")}
    assert {
        f"projects/{PROJECT}/topics/{names['TOPIC']}",
        f"projects/{PROJECT}/topics/{names['DEAD_LETTER_TOPIC']}",
    } <= topics
    dlq = gcloud_json(gcloud_env, "pubsub", "topics", "describe", names["DEAD_LETTER_TOPIC"])
    assert dlq["messageRetentionDuration"] == THIRTY_ONE_DAYS
    keep = gcloud_json(
        gcloud_env, "pubsub", "subscriptions", "describe", names["DEAD_LETTER_SUBSCRIPTION"]
    )
    assert keep["topic"] == f"projects/{PROJECT}/topics/{names['DEAD_LETTER_TOPIC']}"
    assert keep["messageRetentionDuration"] == SEVEN_DAYS
    assert not keep.get("expirationPolicy", {}).get("ttl"), "dead letters must never expire"
    assert "pushConfig" not in keep or not keep["pushConfig"].get("pushEndpoint")


def test_pubsub_step_is_idempotent_and_repairs_drift(
    gcloud_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path, **names)
    assert run_deploy("pubsub", config=config, env=gcloud_env).returncode == 0

    again = run_deploy("pubsub", config=config, env=gcloud_env)
    assert again.returncode == 0, again.stderr
    assert mutations(again.stderr) == [], "a re-run must change nothing that is already right"

    subprocess.run(
        ["gcloud", "pubsub", "subscriptions", "update", names["DEAD_LETTER_SUBSCRIPTION"],
         f"--project={PROJECT}", "--message-retention-duration=1d"],
        capture_output=True, timeout=60, check=True, env=gcloud_env,
    )  # fmt: skip
    repaired = run_deploy("pubsub", config=config, env=gcloud_env)
    assert repaired.returncode == 0, repaired.stderr
    assert len(mutations(repaired.stderr)) == 1
    keep = gcloud_json(
        gcloud_env, "pubsub", "subscriptions", "describe", names["DEAD_LETTER_SUBSCRIPTION"]
    )
    assert keep["messageRetentionDuration"] == SEVEN_DAYS
