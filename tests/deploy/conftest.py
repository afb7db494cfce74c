"""Fixtures of the deployment tests: one Pub/Sub emulator per session, and a scratch gcloud."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.pubsub import PubSubEmulator

from .script import PROJECT


def require_tool(name: str, hint: str) -> str:
    """The tool's path; a missing tool is a failure, not a skip (CI installs it: .ci/run)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: {hint}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def deploy_pubsub_emulator() -> Iterator[PubSubEmulator]:
    """Google's Pub/Sub emulator, shared by the session (each test uses its own names)."""
    require_tool("gcloud", "install the gcloud CLI with google-cloud-cli-pubsub-emulator")
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcloud_env(deploy_pubsub_emulator: PubSubEmulator, tmp_path: Path) -> dict[str, str]:
    """Environment in which gcloud's pubsub commands talk to the emulator, anonymously."""
    config_dir = tmp_path / "gcloud-config"
    config_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "MIRROR_VIP_"))}
    env |= {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{deploy_pubsub_emulator.host}/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_PROJECT": PROJECT,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    return env
