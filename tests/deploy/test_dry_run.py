"""What deploy.sh would do in a real project, read from its --dry-run output.

The dry run runs no gcloud command at all (no network here), so these tests pin the deployment's
security-relevant choices: who gets which role, how the function is deployed, and that teardown
removes everything deploy creates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from vipmover.safeguards_config import DEFAULT_TAKEOVER_MINUTES, DEFAULT_TAKEOVER_MOVES

from .script import (
    BUILD_SA,
    DEPLOY_DIR,
    FUNCTION_SA,
    IRIS_SA,
    PROJECT,
    TRIGGER_SA,
    Command,
    dry_run,
    parse_dry_run,
    run_deploy,
    write_config,
)

pytestmark = pytest.mark.unit

# The custom role, exactly: adding a permission must be a deliberate change to this test too.
EXPECTED_PERMISSIONS = {
    "compute.instances.get",
    "compute.instances.updateNetworkInterface",
    "compute.subnetworks.use",
    "compute.instances.deleteAccessConfig",
    "compute.instances.addAccessConfig",
    "compute.addresses.get",
    "compute.addresses.list",
    "compute.addresses.use",
    "compute.subnetworks.useExternalIp",
    "compute.zoneOperations.get",
    "compute.instances.setLabels",
    # route mode
    "compute.routes.list",
    "compute.routes.get",
    "compute.routes.create",
    "compute.routes.delete",
    "compute.networks.updatePolicy",
    "compute.instances.use",
    "compute.globalOperations.get",
    "compute.forwardingRules.get",
    "compute.forwardingRules.setTarget",
    "compute.targetInstances.use",
    "compute.regionOperations.get",
}


def only(commands: list[Command], *words: str) -> Command:
    matching = [c for c in commands if c.startswith(*words)]
    assert len(matching) == 1, f"expected one {' '.join(words)}, got {matching}"
    return matching[0]


@pytest.fixture
def commands(tmp_path: Path) -> list[Command]:
    return dry_run(tmp_path)


def test_dry_run_prints_only_gcloud_commands(commands: list[Command]) -> None:
    assert commands
    assert all(c.argv[0] == "gcloud" for c in commands)


def test_function_is_deployed_gen2_internal_only_with_retry(
    commands: list[Command], tmp_path: Path
) -> None:
    deploy = only(commands, "gcloud", "functions", "deploy")
    assert deploy.words[3] == "mirror-vip"
    assert deploy.flag("gen2") == ""
    assert deploy.flag("retry") == ""
    assert deploy.flag("runtime") == "python312"
    assert deploy.flag("source") == "function"
    assert deploy.flag("entry-point") == "on_mirror_event"
    assert deploy.flag("trigger-topic") == "mirror-vip-events"
    assert deploy.flag("region") == "us-central1"
    assert deploy.flag("project") == PROJECT
    assert deploy.flag("service-account") == FUNCTION_SA
    assert deploy.flag("trigger-service-account") == TRIGGER_SA
    assert deploy.flag("build-service-account") == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    assert deploy.flag("ingress-settings") == "internal-only"
    assert deploy.flag("max-instances") == "10"
    assert deploy.flag("concurrency") == "1"
    # operation_timeout_seconds 240 in mirrors.example.yaml, plus 60 s for reads and the log line.
    assert deploy.flag("timeout") == "300s"
    assert deploy.flag("env-vars-file") == str(tmp_path / "build" / "function-env.yaml")


TOPIC_AUDIENCE = f"//pubsub.googleapis.com/projects/{PROJECT}/topics/mirror-vip-events"


def test_env_vars_file_carries_the_validated_mirror_config(commands: list[Command]) -> None:
    env_file = Path(only(commands, "gcloud", "functions", "deploy").flag("env-vars-file") or "")
    env = yaml.safe_load(env_file.read_text())
    assert set(env) == {"MIRROR_CONFIG", "GOOGLE_CLOUD_PROJECT"}
    assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
    original = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text())
    # Verified identity is on by default on GCP, for the topic's audience (written, not taken
    # from the CloudEvent), and every mirror corroborates with IRIS; the rest passes through.
    identity = {"required": True, "audience": TOPIC_AUDIENCE}
    for entry in original["mirrors"].values():
        entry["corroborate"] = {"url": "http://{ip}:52773/csp/user/mirror_status.cxw"}
    assert json.loads(env["MIRROR_CONFIG"]) == original | {"identity": identity}


def test_identity_can_be_switched_off_explicitly(tmp_path: Path) -> None:
    mirrors = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text())
    mirrors["identity"] = {"required": False}
    config = tmp_path / "mirrors.yaml"
    config.write_text(yaml.safe_dump(mirrors))
    commands = dry_run(tmp_path, "function", MIRROR_CONFIG_FILE=str(config))
    env_file = Path(only(commands, "gcloud", "functions", "deploy").flag("env-vars-file") or "")
    env = yaml.safe_load(env_file.read_text())
    assert json.loads(env["MIRROR_CONFIG"])["identity"] == {
        "required": False,
        "audience": TOPIC_AUDIENCE,
    }


@pytest.mark.parametrize(
    "identity_yaml",
    ["identity:\n", "identity: {}\n", "identity:\n  audience: https://vip.example\n"],
    ids=["empty key", "empty mapping", "audience only"],
)
def test_identity_not_switched_off_stays_required(tmp_path: Path, identity_yaml: str) -> None:
    example = (DEPLOY_DIR / "mirrors.example.yaml").read_text()
    config = tmp_path / "mirrors.yaml"
    config.write_text(identity_yaml + example)
    commands = dry_run(tmp_path, "function", MIRROR_CONFIG_FILE=str(config))
    env_file = Path(only(commands, "gcloud", "functions", "deploy").flag("env-vars-file") or "")
    identity = json.loads(yaml.safe_load(env_file.read_text())["MIRROR_CONFIG"])["identity"]
    assert identity["required"] is True
    written = yaml.safe_load(identity_yaml)["identity"] or {}
    # A written audience passes through; otherwise deploy writes the topic's.
    assert identity.get("audience") == written.get("audience", TOPIC_AUDIENCE)


def mirror_config_file(tmp_path: Path, **changes: object) -> Path:
    """The example mirror config with top-level keys replaced, as JSON."""
    mirrors = yaml.safe_load((DEPLOY_DIR / "mirrors.example.yaml").read_text()) | changes
    config = tmp_path / "mirrors.json"
    config.write_text(json.dumps(mirrors))
    return config


def test_function_timeout_follows_the_operation_deadline(tmp_path: Path) -> None:
    config = mirror_config_file(tmp_path, operation_timeout_seconds=480)
    commands = dry_run(tmp_path, "function", MIRROR_CONFIG_FILE=str(config))
    # 480 + 60 s is exactly the 540 s limit of event-driven functions.
    assert only(commands, "gcloud", "functions", "deploy").flag("timeout") == "540s"


def assert_refused_before_deploying(tmp_path: Path, mirrors_file: Path, error: str) -> None:
    """deploy.sh's `function` step refuses the mirrors file, naming `error`, and deploys nothing."""
    result = run_deploy(
        "--dry-run", "function", config=write_config(tmp_path, MIRROR_CONFIG_FILE=str(mirrors_file))
    )
    assert result.returncode != 0
    assert error in result.stderr
    assert not any(
        c.startswith("gcloud", "functions", "deploy") for c in parse_dry_run(result.stdout)
    )


@pytest.mark.parametrize("operation_timeout", [480.5, 500, 540])
def test_an_operation_deadline_that_leaves_no_time_to_log_is_refused(
    tmp_path: Path, operation_timeout: float
) -> None:
    config = mirror_config_file(tmp_path, operation_timeout_seconds=operation_timeout)
    assert_refused_before_deploying(tmp_path, config, "operation_timeout_seconds: expected 1..480")


def many_mirrors(count: int) -> dict[str, object]:
    """`count` mirrors, each with its own VIP and two members."""
    return {
        f"MIRROR{n:02d}": {
            "private_vip": f"10.0.1.{n + 10}/32",
            "members": [
                {"instance": f"iris-{n}-a", "zone": "us-central1-a"},
                {"instance": f"iris-{n}-b", "zone": "us-central1-b"},
            ],
        }
        for n in range(count)
    }


@pytest.mark.parametrize(
    ("mirrors", "configured", "expected"),
    [(1, "10", "10"), (20, "10", "40"), (20, "50", "50"), (1, "3", "3")],
)
def test_max_instances_cover_every_mirror_failing_over_at_once(
    tmp_path: Path, mirrors: int, configured: str, expected: str
) -> None:
    config = mirror_config_file(tmp_path, mirrors=many_mirrors(mirrors))
    result = run_deploy(
        "--dry-run",
        "function",
        config=write_config(tmp_path, MIRROR_CONFIG_FILE=str(config), MAX_INSTANCES=configured),
    )
    assert result.returncode == 0, result.stderr
    deploy = only(parse_dry_run(result.stdout), "gcloud", "functions", "deploy")
    assert deploy.flag("max-instances") == expected
    raised = f"MAX_INSTANCES={configured} is too few for {mirrors} mirrors" in result.stderr
    assert raised is (expected != configured)


def test_max_instances_must_be_a_number(tmp_path: Path) -> None:
    result = run_deploy("--dry-run", "function", config=write_config(tmp_path, MAX_INSTANCES="ten"))
    assert result.returncode != 0
    assert "MAX_INSTANCES must be a positive integer, got 'ten'" in result.stderr


def test_invalid_mirror_config_stops_before_deploying(tmp_path: Path) -> None:
    config = tmp_path / "mirrors.yaml"
    config.write_text("mirrors:\n  M:\n    privte_vip: 10.0.0.250/32\n    members: []\n")
    assert_refused_before_deploying(tmp_path, config, "privte_vip")


def test_custom_roles_hold_exactly_the_movers_permissions_once(commands: list[Command]) -> None:
    role = yaml.safe_load((DEPLOY_DIR / "function-role.yaml").read_text())
    permissions = role["includedPermissions"]
    assert len(permissions) == len(set(permissions)), "duplicate permission"
    assert set(permissions) == EXPECTED_PERMISSIONS
    created = [
        json.loads(Path(c.flag("file") or "").read_text())
        for c in commands
        if c.startswith("gcloud", "iam", "roles", "create")
    ]
    granted = [p for each in created for p in each["includedPermissions"]]
    assert sorted(granted) == sorted(EXPECTED_PERMISSIONS)  # each in exactly one role
    assert {each["stage"] for each in created} == {"GA"}


def test_iris_vms_may_only_publish_to_the_one_topic(commands: list[Command]) -> None:
    grants = [c for c in commands if IRIS_SA in (c.flag("member") or "")]
    assert len(grants) == 1
    (grant,) = grants
    assert grant.words == (
        "gcloud",
        "pubsub",
        "topics",
        "add-iam-policy-binding",
        "mirror-vip-events",
    )
    assert grant.flag("role") == "roles/pubsub.publisher"
    assert grant.flag("member") == f"serviceAccount:{IRIS_SA}"


def test_trigger_service_account_may_receive_events_and_invoke_the_function(
    commands: list[Command],
) -> None:
    trigger_grants = [c for c in commands if c.flag("member") == f"serviceAccount:{TRIGGER_SA}"]
    assert {(c.words[1:3], c.flag("role")) for c in trigger_grants} == {
        (("projects", "add-iam-policy-binding"), "roles/eventarc.eventReceiver"),
        (("functions", "add-invoker-policy-binding"), None),  # roles/run.invoker on the service
    }


def test_dead_letter_topic_and_kept_dead_letters(commands: list[Command]) -> None:
    topic = only(commands, "gcloud", "pubsub", "topics", "create", "mirror-vip-events-dead-letter")
    assert topic.flag("message-retention-duration") == "31d"
    keep = only(commands, "gcloud", "pubsub", "subscriptions", "create")
    assert keep.flag("topic") == "mirror-vip-events-dead-letter"
    assert keep.flag("message-retention-duration") == "7d"
    assert keep.flag("expiration-period") == "never"


def test_trigger_subscription_gets_the_longest_ack_deadline_after_each_deploy(
    commands: list[Command],
) -> None:
    updates = [c for c in commands if c.startswith("gcloud", "pubsub", "subscriptions", "update")]
    [update] = [c for c in updates if c.flag("ack-deadline") is not None]
    assert update.words[4] == "DRY_RUN_TRIGGER_SUBSCRIPTION"
    assert update.flag("ack-deadline") == "600"
    deploy = commands.index(only(commands, "gcloud", "functions", "deploy"))
    assert commands.index(update) > deploy


def test_trigger_subscription_dead_letters_after_max_attempts(commands: list[Command]) -> None:
    [update] = [c for c in commands if c.flag("dead-letter-topic") is not None]
    assert update.startswith("gcloud", "pubsub", "subscriptions", "update")
    assert update.words[4] == "DRY_RUN_TRIGGER_SUBSCRIPTION"
    assert (
        update.flag("dead-letter-topic")
        == f"projects/{PROJECT}/topics/mirror-vip-events-dead-letter"
    )
    assert update.flag("max-delivery-attempts") == "10"
    agent = "serviceAccount:service-DRY_RUN_PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
    agent_grants = {
        (c.words[2], c.words[4], c.flag("role")) for c in commands if c.flag("member") == agent
    }
    assert agent_grants == {
        ("topics", "mirror-vip-events-dead-letter", "roles/pubsub.publisher"),
        ("subscriptions", "DRY_RUN_TRIGGER_SUBSCRIPTION", "roles/pubsub.subscriber"),
    }


def test_monitoring_resources_come_from_the_repository_files(commands: list[Command]) -> None:
    metrics = {
        c.words[4]: c.flag("config-from-file")
        for c in commands
        if c.startswith("gcloud", "logging", "metrics", "create")
    }
    assert metrics == {
        path.stem: f"deploy/gcp/metrics/{path.name}"
        for path in (DEPLOY_DIR / "metrics").glob("*.yaml")
    }
    dashboard = only(commands, "gcloud", "monitoring", "dashboards", "create")
    rendered = json.loads(Path(dashboard.flag("config-from-file") or "").read_text())
    assert "__" not in json.dumps(rendered), "placeholder left in the dashboard"
    policies = [
        c for c in commands if c.startswith("gcloud", "alpha", "monitoring", "policies", "create")
    ]
    assert len(policies) == len(list((DEPLOY_DIR / "alerts").glob("*.yaml")))
    channel = only(commands, "gcloud", "beta", "monitoring", "channels", "create")
    assert channel.flag("channel-labels") == "email_address=oncall@example.com"
    for policy in policies:
        body = yaml.safe_load(Path(policy.flag("policy-from-file") or "").read_text())
        assert body["notificationChannels"] == ["DRY_RUN_CHANNEL"]
        assert "__" not in json.dumps(body)


def test_a_given_notification_channel_is_used_as_is(tmp_path: Path) -> None:
    channel = f"projects/{PROJECT}/notificationChannels/123"
    commands = dry_run(tmp_path, "monitoring", NOTIFICATION_CHANNEL=channel, ALERT_EMAIL="")
    assert not [c for c in commands if c.startswith("gcloud", "beta", "monitoring", "channels")]
    for policy in (
        c for c in commands if c.startswith("gcloud", "alpha", "monitoring", "policies", "create")
    ):
        body = yaml.safe_load(Path(policy.flag("policy-from-file") or "").read_text())
        assert body["notificationChannels"] == [channel]


def created_names(commands: list[Command]) -> set[tuple[str, str]]:
    """(kind, name) of everything a deploy dry run creates."""
    kinds = {
        ("pubsub", "topics"): "topic",
        ("pubsub", "subscriptions"): "subscription",
        ("iam", "service-accounts"): "service-account",
        ("iam", "roles"): "role",
        ("logging", "metrics"): "metric",
    }
    created = set()
    for c in commands:
        key = c.words[1:3]
        if key in kinds and c.words[3] == "create":
            name = c.words[4]
            if key == ("iam", "service-accounts"):
                name = f"{name}@{PROJECT}.iam.gserviceaccount.com"
            created.add((kinds[key], name))
    return created


def test_teardown_removes_everything_deploy_creates(tmp_path: Path) -> None:
    deploy = dry_run(tmp_path)
    teardown = dry_run(tmp_path, "teardown")
    deleted = {
        (kind, c.words[4])
        for c in teardown
        for key, kind in {
            ("pubsub", "topics"): "topic",
            ("pubsub", "subscriptions"): "subscription",
            ("iam", "service-accounts"): "service-account",
            ("iam", "roles"): "role",
            ("logging", "metrics"): "metric",
        }.items()
        if c.words[1:3] == key and c.words[3] == "delete"
    }
    assert created_names(deploy) <= deleted
    assert only(teardown, "gcloud", "functions", "delete").words[3] == "mirror-vip"
    assert only(teardown, "gcloud", "monitoring", "dashboards", "delete")
    policy_deletes = [
        c for c in teardown if c.startswith("gcloud", "alpha", "monitoring", "policies", "delete")
    ]
    assert len(policy_deletes) == len(list((DEPLOY_DIR / "alerts").glob("*.yaml")))
    # Bindings go before the accounts they name.
    removes = [
        i
        for i, c in enumerate(teardown)
        if c.startswith("gcloud", "projects", "remove-iam-policy-binding")
    ]
    account_deletes = [
        i
        for i, c in enumerate(teardown)
        if c.startswith("gcloud", "iam", "service-accounts", "delete")
    ]
    assert len(removes) == 7  # 2 of the function, 3 of the build, the trigger's, the legacy role's
    assert max(removes) < min(account_deletes)
    assert not [c for c in teardown if c.words[3:4] == ("create",)]


def test_missing_required_setting_is_named(tmp_path: Path) -> None:
    result = run_deploy(
        "--dry-run", "iam", config=write_config(tmp_path, IRIS_VM_SERVICE_ACCOUNT="")
    )
    assert result.returncode != 0
    assert "IRIS_VM_SERVICE_ACCOUNT is required" in result.stderr
    assert result.stdout.strip() == ""


def test_environment_overrides_the_config_file(tmp_path: Path) -> None:
    result = run_deploy(
        "--dry-run",
        "function",
        config=write_config(tmp_path),
        env=dict(os.environ, MIRROR_VIP_REGION="europe-west1", MIRROR_VIP_MAX_INSTANCES="3"),
    )
    assert result.returncode == 0, result.stderr
    deploy = only(parse_dry_run(result.stdout), "gcloud", "functions", "deploy")
    assert deploy.flag("region") == "europe-west1"
    assert deploy.flag("max-instances") == "3"


def test_unknown_step_is_refused(tmp_path: Path) -> None:
    result = run_deploy("--dry-run", "everything", config=write_config(tmp_path))
    assert result.returncode != 0
    assert "unknown argument 'everything'" in result.stderr


def rendered_policies(commands: list[Command]) -> dict[str, dict[str, Any]]:
    """displayName -> the policy file a dry run would create."""
    bodies = [
        yaml.safe_load(Path(c.flag("policy-from-file") or "").read_text())
        for c in commands
        if c.startswith("gcloud", "alpha", "monitoring", "policies", "create")
    ]
    return {body["displayName"]: body for body in bodies}


def burst_condition(policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (condition,) = policies["mirror-vip: VIP moving too often"]["conditions"]
    threshold: dict[str, Any] = condition["conditionThreshold"]
    return threshold


def test_move_burst_defaults_to_the_functions_takeover_limit(commands: list[Command]) -> None:
    threshold = burst_condition(rendered_policies(commands))
    assert threshold["thresholdValue"] == DEFAULT_TAKEOVER_MOVES
    window = f"{DEFAULT_TAKEOVER_MINUTES * 60}s"
    assert threshold["aggregations"][0]["alignmentPeriod"] == window


def test_move_burst_and_notice_channel_are_configurable(tmp_path: Path) -> None:
    notice = f"projects/{PROJECT}/notificationChannels/chat"
    commands = dry_run(
        tmp_path,
        "monitoring",
        MOVE_BURST_MOVES="5",
        MOVE_BURST_MINUTES="30",
        NOTICE_CHANNEL=notice,
    )
    policies = rendered_policies(commands)
    threshold = burst_condition(policies)
    assert threshold["thresholdValue"] == 5
    assert threshold["aggregations"][0]["alignmentPeriod"] == "1800s"
    channels = {name: body["notificationChannels"] for name, body in policies.items()}
    assert channels.pop("mirror-vip: VIP moved") == [notice]  # a notification
    assert set(map(tuple, channels.values())) == {("DRY_RUN_CHANNEL",)}  # pages


@pytest.mark.parametrize(
    ("setting", "value"), [("MOVE_BURST_MOVES", "0"), ("MOVE_BURST_MINUTES", "1441")]
)
def test_move_burst_settings_are_checked(tmp_path: Path, setting: str, value: str) -> None:
    result = run_deploy(
        "--dry-run", "monitoring", config=write_config(tmp_path, **{setting: value})
    )
    assert result.returncode != 0
    assert f"{setting} must be" in result.stderr
