"""The metrics, dashboard and alerts read only what the function really logs.

A log-based metric on a field that no longer exists is silently empty: the dashboard goes flat and
the alert never fires. These tests tie every `jsonPayload.X` in deploy/gcp/ to
`vipmover.outcome.LOG_FIELDS` and to a real outcome line, so renaming a log field breaks a test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from vipmover.outcome import COMPONENT, LOG_FIELDS, Outcome, OutcomeName, log_outcome

from .script import DEPLOY_DIR

pytestmark = pytest.mark.unit

JSON_PAYLOAD_FIELD = re.compile(r"jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)")
EQUALS_VALUE = re.compile(r'jsonPayload\.([A-Za-z_]+)\s*=\s*"([^"]*)"')
# LogEntry.severity: Cloud Logging lifts the line's own "severity" field out of jsonPayload.
ENTRY_SEVERITY = re.compile(r"(?<![\w.])severity\s*(>=|<=|=|>|<)\s*([A-Z]+)")
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT")
METRIC_LABEL = re.compile(r"metric\.label\.\"?([A-Za-z_]+)")
USER_METRIC = re.compile(r"logging\.googleapis\.com/user/([A-Za-z0-9_]+)")
METRIC_FILES = sorted((DEPLOY_DIR / "metrics").glob("*.yaml"))
ALERT_FILES = sorted((DEPLOY_DIR / "alerts").glob("*.yaml"))
DASHBOARD = DEPLOY_DIR / "dashboard.json"
MONITORING_FILES = [*METRIC_FILES, *ALERT_FILES, DASHBOARD]


def strings(node: Any) -> list[str]:
    """Every string value in a parsed document (filters, extractors, group-by fields)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def load(path: Path) -> Any:
    return (
        json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    )


def referenced_fields(path: Path) -> set[str]:
    return {m for s in strings(load(path)) for m in JSON_PAYLOAD_FIELD.findall(s)}


def metric_labels() -> dict[str, set[str]]:
    """Each log-based metric's labels, from its file."""
    return {path.stem: set(load(path).get("labelExtractors", {})) for path in METRIC_FILES}


def logged_line(capsys: pytest.CaptureFixture[str], outcome: OutcomeName) -> dict[str, Any]:
    """One real outcome line, as the function writes it to stdout (Cloud Logging's jsonPayload)."""
    capsys.readouterr()
    log_outcome(
        Outcome(
            event_id="1234567890",
            outcome=outcome,
            event_type="became_primary",
            mirror="IRISMIRROR",
            member="iris-b",
            from_instance="demo/us-central1-a/iris-a",
            to_instance="demo/us-central1-b/iris-b",
            vip="10.0.0.250/32",
            duration_ms=1234,
            error="operation timed out",
            error_reason="OperationTimeout",
            retry=True,
        )
    )
    # The first line of a process is the logging library's own diagnostic entry: skip it.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    ours: list[dict[str, Any]] = [line for line in lines if line.get("event_id") == "1234567890"]
    assert len(ours) == 1, lines
    return ours[0]


@pytest.fixture
def outcome_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """A real `failed` outcome line."""
    return logged_line(capsys, "failed")


def matches(log_filter: str, line: dict[str, Any]) -> bool:
    """Evaluate a filter of `AND`ed `jsonPayload.F="v"` and `severity>=LEVEL` terms on a line."""
    for term in log_filter.split(" AND "):
        if field := EQUALS_VALUE.fullmatch(term.strip()):
            if str(line.get(field.group(1))) != field.group(2):
                return False
        elif level := ENTRY_SEVERITY.fullmatch(term.strip()):
            assert level.group(1) == ">=", f"unsupported comparison in {term!r}"
            if SEVERITIES.index(line["severity"]) < SEVERITIES.index(level.group(2)):
                return False
        else:
            pytest.fail(f"unsupported filter term {term!r}")
    return True


def test_monitoring_files_exist_and_read_the_outcome_line() -> None:
    assert METRIC_FILES
    assert ALERT_FILES
    fields = set().union(*(referenced_fields(p) for p in MONITORING_FILES))
    assert {"component", "outcome", "mirror", "duration_ms", "error_reason"} <= fields


@pytest.mark.parametrize("path", MONITORING_FILES, ids=lambda p: p.name)
def test_only_logged_fields_are_referenced(path: Path) -> None:
    unknown = referenced_fields(path) - LOG_FIELDS
    assert not unknown, f"{path.name} reads jsonPayload fields the function never logs: {unknown}"


@pytest.mark.parametrize("path", MONITORING_FILES, ids=lambda p: p.name)
def test_referenced_fields_are_in_a_real_outcome_line(
    path: Path, outcome_line: dict[str, Any]
) -> None:
    missing = referenced_fields(path) - set(outcome_line)
    assert not missing, f"{path.name} reads {missing}, absent from {sorted(outcome_line)}"


@pytest.mark.parametrize("path", MONITORING_FILES, ids=lambda p: p.name)
def test_compared_values_are_values_the_function_writes(path: Path) -> None:
    allowed = {"component": {COMPONENT}, "outcome": set(get_args(OutcomeName))}
    for text in strings(load(path)):
        for field, value in EQUALS_VALUE.findall(text):
            assert field in allowed, f"{path.name}: compares {field}, whose values are not pinned"
            assert value in allowed[field], f"{path.name}: {field} is never {value!r}"


def test_every_filter_selects_the_functions_lines_by_component() -> None:
    filters = [load(p)["filter"] for p in METRIC_FILES]
    filters += [
        c["conditionMatchedLog"]["filter"]
        for p in ALERT_FILES
        for c in load(p)["conditions"]
        if "conditionMatchedLog" in c
    ]
    filters += [s for s in strings(load(DASHBOARD)) if "jsonPayload." in s]
    assert filters
    for text in filters:
        assert f'jsonPayload.component="{COMPONENT}"' in text, text


def test_the_component_filter_matches_a_real_line(outcome_line: dict[str, Any]) -> None:
    assert outcome_line["component"] == COMPONENT
    assert isinstance(outcome_line["duration_ms"], int)  # the distribution's value extractor


@pytest.mark.parametrize("path", [*ALERT_FILES, DASHBOARD], ids=lambda p: p.name)
def test_charts_and_alerts_use_existing_metrics_and_labels(path: Path) -> None:
    labels = metric_labels()
    for text in strings(load(path)):
        for metric in USER_METRIC.findall(text):
            assert metric in labels, f"{path.name} uses undefined log-based metric {metric}"
            unknown = set(METRIC_LABEL.findall(text)) - labels[metric]
            assert not unknown, f"{path.name}: {metric} has no label(s) {unknown}"


def test_metric_label_extractors_read_logged_fields() -> None:
    for path in METRIC_FILES:
        metric = load(path)
        declared = {label["key"] for label in metric["metricDescriptor"].get("labels", [])}
        assert declared == set(metric.get("labelExtractors", {})), path.name


def test_dead_letter_alert_watches_the_dead_letter_subscription() -> None:
    policy = load(DEPLOY_DIR / "alerts" / "dead-letters.yaml")
    (condition,) = policy["conditions"]
    text = condition["conditionThreshold"]["filter"]
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in text
    assert "__DEAD_LETTER_SUBSCRIPTION__" in text


def test_failed_move_alert_fires_on_outcome_failed() -> None:
    policy = load(DEPLOY_DIR / "alerts" / "failed-moves.yaml")
    (condition,) = policy["conditions"]
    assert 'jsonPayload.outcome="failed"' in condition["conditionMatchedLog"]["filter"]
    assert policy["notificationChannels"] == ["__NOTIFICATION_CHANNEL__"]


@pytest.mark.parametrize("path", MONITORING_FILES, ids=lambda p: p.name)
def test_severity_comparisons_use_levels_the_function_writes(
    path: Path, outcome_line: dict[str, Any]
) -> None:
    assert "severity" in LOG_FIELDS
    assert outcome_line["severity"] in SEVERITIES
    for text in strings(load(path)):
        for _, level in ENTRY_SEVERITY.findall(text):
            assert level in SEVERITIES, f"{path.name}: no log severity {level!r}"


def test_rejected_member_alert_pages_only_for_rejections_logged_at_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = load(DEPLOY_DIR / "alerts" / "rejected-members.yaml")
    (condition,) = policy["conditions"]
    log_filter = condition["conditionMatchedLog"]["filter"]
    assert set(log_filter.split(" AND ")) == {
        f'jsonPayload.component="{COMPONENT}"',
        'jsonPayload.outcome="rejected"',
        "severity>=ERROR",
    }
    assert policy["notificationChannels"] == ["__NOTIFICATION_CHANNEL__"]
    rejected = logged_line(capsys, "rejected")
    # A rejection from outside (unknown mirror or member) stays at WARNING: no page. The function
    # logs one that names a configured member at ERROR, which pages.
    assert not matches(log_filter, rejected | {"severity": "WARNING"})
    assert matches(log_filter, rejected | {"severity": "ERROR"})
    assert not matches(log_filter, logged_line(capsys, "failed"))


METRIC_LABEL_VALUE = re.compile(r'metric\.label\."?([A-Za-z_]+)"?\s*=\s*"([^"]*)"')


@pytest.mark.parametrize("path", [*ALERT_FILES, DASHBOARD], ids=lambda p: p.name)
def test_metric_label_outcomes_are_outcomes_the_function_writes(path: Path) -> None:
    for text in strings(load(path)):
        for label, value in METRIC_LABEL_VALUE.findall(text):
            if label == "outcome":
                assert value in get_args(OutcomeName), f"{path.name}: outcome is never {value!r}"


def test_every_move_notifies_without_paging(capsys: pytest.CaptureFixture[str]) -> None:
    policy = load(DEPLOY_DIR / "alerts" / "vip-moved.yaml")
    (condition,) = policy["conditions"]
    log_filter = condition["conditionMatchedLog"]["filter"]
    assert matches(log_filter, logged_line(capsys, "moved"))
    others: tuple[OutcomeName, ...] = ("already_in_place", "rejected", "failed")
    for other in others:
        assert not matches(log_filter, logged_line(capsys, other))
    # a notification: the lowest policy severity, the notice channel, labelled as not a page
    assert policy["severity"] == "WARNING"
    assert policy["userLabels"] == {"urgency": "notify"}
    assert policy["notificationChannels"] == ["__NOTICE_CHANNEL__"]


@pytest.mark.parametrize(
    "path", [p for p in ALERT_FILES if p.name != "vip-moved.yaml"], ids=lambda p: p.name
)
def test_every_other_alert_pages(path: Path) -> None:
    policy = load(path)
    assert policy["userLabels"] == {"urgency": "page"}
    assert policy["notificationChannels"] == ["__NOTIFICATION_CHANNEL__"]
    assert policy["severity"] in ("ERROR", "CRITICAL")


def test_move_burst_counts_one_mirrors_moves_over_the_window() -> None:
    policy = load(DEPLOY_DIR / "alerts" / "vip-move-burst.yaml")
    (condition,) = policy["conditions"]
    threshold = condition["conditionThreshold"]
    assert "logging.googleapis.com/user/mirror_vip_events" in threshold["filter"]
    assert dict(METRIC_LABEL_VALUE.findall(threshold["filter"])) == {"outcome": "moved"}
    (aggregation,) = threshold["aggregations"]
    assert aggregation["alignmentPeriod"] == "__MOVE_BURST_WINDOW__"
    assert aggregation["perSeriesAligner"] == "ALIGN_SUM"
    assert aggregation["crossSeriesReducer"] == "REDUCE_SUM"
    assert aggregation["groupByFields"] == ['metric.label."mirror"']  # per mirror, not in total
    assert "mirror" in metric_labels()["mirror_vip_events"]
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["thresholdValue"] == "__MOVE_BURST_MOVES__"


def test_a_move_that_raised_a_security_alert_pages(capsys: pytest.CaptureFixture[str]) -> None:
    policy = load(DEPLOY_DIR / "alerts" / "moved-with-alerts.yaml")
    (condition,) = policy["conditions"]
    log_filter = condition["conditionMatchedLog"]["filter"]
    capsys.readouterr()
    log_outcome(Outcome(event_id="7", outcome="moved", alerts=["future_mark:iris-a"]))
    [alerted] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]

    assert matches(log_filter, alerted)
    assert not matches(log_filter, logged_line(capsys, "moved"))  # a plain move only notifies
    assert not matches(log_filter, logged_line(capsys, "rejected") | {"severity": "ERROR"})
