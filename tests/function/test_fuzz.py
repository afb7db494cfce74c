"""Bad input, generated: the parsers may only ever say "rejected" (or "bad config"), never crash.

A crash in `parse_event` or `unwrap_message` would turn a junk message into an unhandled
exception: HTTP 500, and Pub/Sub would redeliver the junk until the dead-letter topic. A crash in
`parse_config` would fail the start-up without naming the field. So whatever the input, the only
exception allowed is `EventRejected` / `ConfigError`, with a message that says what was wrong.
Examples that once crashed a parser are kept below as regular tests.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emulators.compute.server import ComputeEmulator
from support import mirrors
from support.events import MESSAGE_PUBLISHED, SUBSCRIPTION, TOPIC, cloud_event
from support.function_app import FunctionUnderTest
from vipmover.config import parse_config
from vipmover.errors import ConfigError, EventRejected
from vipmover.event import MirrorEvent, parse_event, unwrap_message

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "function" / "event_schema.json").read_text(encoding="utf-8"))
GOLDEN: dict[str, Any] = json.loads(
    (ROOT / "tests" / "data" / "became_primary_event.json").read_text(encoding="utf-8")
)
CONFIG_FIELD_ROOTS = ("config", "mirrors", "operation_timeout_seconds", "identity")
FAST = settings(max_examples=200, deadline=None)

# --------------------------------------------------------------------------------------------------
# Strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Strings that look like what the fields hold, so mutations get past the first checks.
near_miss_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "isc-backup-001\n",
            "ISC-BACKUP-001",
            "us-west1",
            "us-west1-b ",
            "10.0.0.250/33",
            "2026-02-30T12:00:00.000Z",
            "2026-11-25T24:00:00.000Z",
            "2026-11-25T12:00:00.000+01:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.999-01:00",
            "\u0662\u0660\u0662\u0666-11-25T12:00:00.000Z",
            "1" * 30,
            "x" * 200,
            "\ud800",
        ]
    ),
)
replacements = st.one_of(json_values, near_miss_text)


def retype(value: Any) -> list[Any]:
    """The same value in other JSON types: '1' for 1, 1 for '1', [v], {'v': v}..."""
    return [str(value), [value], {"value": value}, True, 0, 1.5, None, json.dumps(value)]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """base with one to three fields (at any depth) dropped, replaced or retyped."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["drop", "replace", "retype"]))
        if action == "drop" and isinstance(parent, dict):
            del parent[key]
        elif action == "retype":
            parent[key] = draw(st.sampled_from(retype(parent[key])))
        else:
            parent[key] = draw(replacements)
    return doc


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts and lists."""
    items: list[tuple[Any, Any]] = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    paths = []
    for key, value in items:
        paths.append((*prefix, key))
        paths.extend(_paths(value, (*prefix, key)))
    return paths


def _pattern(field: str, *, within: str | None = None) -> st.SearchStrategy[str]:
    """Strings the schema's own pattern for field allows."""
    properties = SCHEMA["properties"][within]["properties"] if within else SCHEMA["properties"]
    return st.from_regex(properties[field]["pattern"])


# Events built from the schema's own rules: the parser must take them (calendar permitting).
schema_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(SCHEMA["properties"]["type"]["enum"]),
        "version": st.sampled_from([1, 1.0]),
        "mirror": st.text(min_size=1, max_size=64),
        "member": st.text(min_size=1, max_size=128),
        "instance": st.fixed_dictionaries(
            {key: _pattern(key, within="instance") for key in ("project", "zone", "name", "id")},
            optional={"hostname": json_values},
        ),
        "occurred_at": _pattern("occurred_at"),
    },
    optional={"identity_token": st.text(min_size=1, max_size=40), "added_later": json_values},
)
event_docs = st.one_of(mutated(GOLDEN), json_values, schema_events)
event_payloads = st.one_of(
    st.binary(max_size=200), event_docs.map(lambda doc: json.dumps(doc).encode())
)


def envelope(data: bytes = b"{}") -> dict[str, Any]:
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": "123",
            "publishTime": "2026-11-25T12:00:02.345678901Z",
            "attributes": {"type": "became_primary"},
        },
        "subscription": SUBSCRIPTION,
    }


envelopes = st.one_of(json_values, mutated(envelope()))

# --------------------------------------------------------------------------------------------------
# The parsers raise only their own error


def parse_or_reject(payload: bytes) -> MirrorEvent | None:
    """parse_event's result, or None when it rejected with a reason and a message."""
    rejection: EventRejected | None = None
    try:
        return parse_event(payload)
    except EventRejected as err:
        rejection = err
    assert rejection.reason
    assert str(rejection)
    return None


@pytest.mark.unit
@FAST
@given(payload=event_payloads)
def test_parse_event_only_rejects(payload: bytes) -> None:
    parse_or_reject(payload)


@pytest.mark.unit
@FAST
@given(data=envelopes)
def test_unwrap_message_only_rejects(data: Any) -> None:
    rejection: EventRejected | None = None
    try:
        message = unwrap_message(data)
    except EventRejected as err:
        rejection = err
    if rejection is not None:
        assert rejection.reason
        assert str(rejection)
    else:
        assert isinstance(message.data, bytes)
        assert message.publish_time is None or message.publish_time.tzinfo is not None


def check_config(raw: Any) -> None:
    problem = ""
    try:
        parse_config(raw, default_project=lambda: None)
    except ConfigError as err:
        problem = str(err)
    else:
        return
    assert problem.startswith(CONFIG_FIELD_ROOTS), problem


VALID_CONFIG = mirrors.config() | {
    "operation_timeout_seconds": 240,
    "identity": {"required": True, "audience": "aud", "max_clock_skew_seconds": 60},
}


@pytest.mark.unit
@FAST
@given(raw=st.one_of(mutated(VALID_CONFIG), json_values))
def test_parse_config_only_says_which_field(raw: Any) -> None:
    check_config(raw)


# YAML configs decode to more than JSON can say: non-string keys, dates, and so on.
yaml_keys = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none())


@pytest.mark.unit
@settings(max_examples=100, deadline=None)
@given(
    extra=st.dictionaries(yaml_keys, scalars, min_size=1, max_size=3),
    where=st.sampled_from(["root", "mirrors", "mirror", "member", "identity", "public_ip"]),
)
def test_parse_config_with_yaml_keys_only_says_which_field(
    extra: dict[Any, Any], where: str
) -> None:
    raw = copy.deepcopy(VALID_CONFIG)
    mirror = raw["mirrors"][mirrors.MIRROR]
    target = {
        "root": raw,
        "mirrors": raw["mirrors"],
        "mirror": mirror,
        "member": mirror["members"][0],
        "identity": raw["identity"],
        "public_ip": mirror["public_ip"],
    }[where]
    target.update(extra)
    check_config(raw)


# --------------------------------------------------------------------------------------------------
# What the parser accepts, the schema accepts (and back, but for what only a calendar knows)

VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@pytest.mark.unit
@FAST
@given(doc=event_docs)
def test_parser_and_schema_agree(doc: Any) -> None:
    payload = json.dumps(doc).encode()
    accepted = parse_or_reject(payload) is not None
    schema_valid = VALIDATOR.is_valid(doc)
    if accepted:
        assert schema_valid, list(VALIDATOR.iter_errors(doc))
    elif schema_valid and not _has_trailing_newline(doc):
        # Only a date the pattern allows but no calendar has (2026-02-30, 24:00, leap seconds).
        with pytest.raises(EventRejected, match="occurred_at' is not a time"):
            parse_event(payload)


def _has_trailing_newline(value: Any) -> bool:
    """python-jsonschema matches `pattern` with Python's `re`, where `$` also matches before a
    final newline; JSON Schema means ECMA-262, where it does not, and the parser refuses it."""
    if isinstance(value, dict):
        return any(_has_trailing_newline(v) for v in value.values())
    return isinstance(value, str) and value.endswith("\n")


# --------------------------------------------------------------------------------------------------
# Once crashed: kept as regular tests


@pytest.mark.unit
@pytest.mark.parametrize(
    "payload",
    [b"1" * 5000, b'{"type": "became_primary", "version": ' + b"9" * 4301 + b"}"],
    ids=["huge integer", "huge integer in a field"],
)
def test_integer_beyond_pythons_digit_limit_is_not_json(payload: bytes) -> None:
    """json.loads raises a plain ValueError (not JSONDecodeError) past 4300 digits."""
    with pytest.raises(EventRejected) as caught:
        parse_event(payload)
    assert caught.value.reason == "not_json"


@pytest.mark.unit
@pytest.mark.parametrize("publish_time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_publish_time_beyond_the_calendar_is_ignored(publish_time: str) -> None:
    """Converting to UTC overflowed datetime (OverflowError, not ValueError)."""
    data = envelope()
    data["message"]["publishTime"] = publish_time
    assert unwrap_message(data).publish_time is None


@pytest.mark.unit
def test_deeply_nested_json_is_not_json() -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(b"[" * 50_000)
    assert caught.value.reason == "not_json"


# --------------------------------------------------------------------------------------------------
# Through the real function


def _configured_member(payload: bytes) -> bool:
    """Would the default config act on this payload? (Then it is not junk.)"""
    try:
        event = parse_event(payload)
    except EventRejected:
        return False
    instance = event.instance
    return event.mirror == mirrors.MIRROR and instance.project == mirrors.PROJECT


junk_deliveries = st.one_of(
    event_payloads.filter(lambda p: not _configured_member(p)).map(cloud_event),
    envelopes.map(
        lambda data: CloudEvent(
            {
                "id": str(uuid.uuid4().int)[:16],
                "type": MESSAGE_PUBLISHED,
                "source": f"//pubsub.googleapis.com/{TOPIC}",
                "specversion": "1.0",
            },
            data,
        )
    ),
)


@pytest.mark.integration
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=junk_deliveries)
def test_junk_through_the_function_is_acknowledged_and_changes_nothing(
    compute: ComputeEmulator, function: FunctionUnderTest, event: CloudEvent
) -> None:
    assume(not isinstance(event.data, dict) or _unwrapped_is_junk(event.data))

    delivery = function.deliver(event)

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "rejected"
    assert delivery.outcome["error_reason"]
    assert delivery.outcome["retry"] is False
    assert compute.mutations() == []


def _unwrapped_is_junk(data: dict[str, Any]) -> bool:
    try:
        message = unwrap_message(data)
    except EventRejected:
        return True
    return not _configured_member(message.data)
