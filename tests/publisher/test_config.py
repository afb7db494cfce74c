"""Configuration: file plus environment into one validated object; errors name the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirrorvip_publisher.config import DEFAULT_METADATA_HOST, PublisherConfig, load_config
from mirrorvip_publisher.errors import ConfigError

pytestmark = pytest.mark.unit

TOPIC = "projects/mirrorvip-test/topics/mirror-vip"
EXAMPLE = (
    Path(__file__).resolve().parents[2]
    / "publisher"
    / "mirrorvip_publisher"
    / "mirrorvip_publisher.ini.example"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mirrorvip_publisher.ini"
    path.write_text(text)
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, f"[mirrorvip]\ntopic = {TOPIC}\n")

    config = load_config({}, path)

    assert config == PublisherConfig(
        topic=TOPIC,
        budget_seconds=5.0,
        total_seconds=60.0,
        identity_token=True,
        audience=f"//pubsub.googleapis.com/{TOPIC}",
        metadata_host=DEFAULT_METADATA_HOST,
    )


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"[mirrorvip]\ntopic = {TOPIC}\nbudget_seconds = 3\ntotal_seconds = 30\n"
        "identity_token = on\n",
    )
    env = {
        "MIRRORVIP_CONFIG": str(path),
        "MIRRORVIP_BUDGET_SECONDS": "1.5",
        "MIRRORVIP_TOTAL_SECONDS": "120",
        "MIRRORVIP_IDENTITY_TOKEN": "off",
        "MIRRORVIP_AUDIENCE": "https://vip.example",
        "GCE_METADATA_HOST": "127.0.0.1:8900",
    }

    config = load_config(env)

    assert (config.budget_seconds, config.total_seconds, config.identity_token) == (1.5, 120, False)
    assert config.audience == "https://vip.example"
    assert config.metadata_host == "127.0.0.1:8900"


def test_the_pubsub_endpoint_comes_from_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    path = write(tmp_path, f"[mirrorvip]\ntopic = {TOPIC}\npubsub_endpoint = 127.0.0.1:8085\n")

    assert load_config({}, path).pubsub_endpoint == "127.0.0.1:8085"
    env = {"MIRRORVIP_PUBSUB_ENDPOINT": "[::1]:9000"}
    assert load_config(env, path).pubsub_endpoint == "[::1]:9000"
    # The library's own switch is not a setting of ours.
    assert load_config({"PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}, path).pubsub_endpoint == (
        "127.0.0.1:8085"
    )


def test_the_shipped_example_is_valid() -> None:
    assert load_config({}, EXAMPLE).topic == "projects/my-project/topics/mirror-vip"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "topic (set MIRRORVIP_TOPIC or a config file): required"),
        ({"MIRRORVIP_TOPIC": "mirror-vip"}, "MIRRORVIP_TOPIC: 'mirror-vip' is not projects/"),
        ({"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_BUDGET_SECONDS": "soon"}, "is not a number"),
        ({"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_BUDGET_SECONDS": "600"}, "outside 0.5..60"),
        ({"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_TOTAL_SECONDS": "601"}, "outside 0.5..600"),
        ({"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_TOTAL_SECONDS": "a minute"}, "is not a number"),
        ({"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_IDENTITY_TOKEN": "maybe"}, "is not on/off"),
        ({"MIRRORVIP_TOPIC": TOPIC, "GCE_METADATA_HOST": "http://x/"}, "GCE_METADATA_HOST"),
        (
            {"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_PUBSUB_ENDPOINT": "http://127.0.0.1:8085"},
            "MIRRORVIP_PUBSUB_ENDPOINT: 'http://127.0.0.1:8085' is not host:port",
        ),
        (
            {"MIRRORVIP_TOPIC": TOPIC, "MIRRORVIP_PUBSUB_ENDPOINT": "127.0.0.1"},
            "is not host:port",
        ),
        ({"MIRRORVIP_CONFIG": "/nonexistent/mirrorvip.ini"}, "cannot read"),
    ],
)
def test_bad_environment_names_the_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mirrorvip]\ntopik = x\n", "unknown key(s) topik"),
        ("[other]\ntopic = x\n", "no [mirrorvip] section"),
        ("topic = x\n", "not valid INI"),
        ("[mirrorvip]\ntopic = projects/x/topics/y\n", "[mirrorvip] topic: 'projects/x/topics/y'"),
        (f"[mirrorvip]\ntopic = {TOPIC}\nbudget_seconds = 0.1\n", "budget_seconds: 0.1 seconds"),
        (f"[mirrorvip]\ntopic = {TOPIC}\npubsub_endpoint = emu\n", "pubsub_endpoint: 'emu'"),
    ],
)
def test_bad_file_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config({}, path)

    assert str(path) in str(caught.value)
    assert message in str(caught.value)
