"""^ZMIRROR (publisher/ZMIRROR.mac) has IRIS's entry points and calls what the module exports.

No IRIS here, so these read the routine's text: entry-point names, IRIS's default answers, and
that the Python it imports and calls really exists with the signature it is called with.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import mirrorvip_publisher

pytestmark = pytest.mark.unit

ROUTINE = (Path(__file__).resolve().parents[2] / "publisher" / "ZMIRROR.mac").read_text()


def procedure(name: str) -> str:
    """The body of `name(...) public { ... }`."""
    match = re.search(rf"^{name}\(([^)]*)\) public \{{\n(.*?)^\}}", ROUTINE, re.M | re.S)
    assert match, f"no public procedure {name} in ZMIRROR.mac"
    return match.group(2)


def test_routine_header_names_zmirror() -> None:
    assert ROUTINE.splitlines()[0] == "ROUTINE ZMIRROR"


@pytest.mark.parametrize("entry", ["CanNodeStartToBecomePrimary", "CheckBecomePrimaryOK"])
def test_veto_entry_points_keep_the_default_yes(entry: str) -> None:
    assert procedure(entry).split() == ["quit", "1"]


def test_notify_become_primary_failed_just_quits() -> None:
    assert procedure("NotifyBecomePrimaryFailed").split() == ["quit"]


def test_notify_become_primary_jobs_the_publish_with_a_timeout_and_catches_errors() -> None:
    body = procedure("NotifyBecomePrimary")
    assert "$SYSTEM.Mirror.MirrorName()" in body
    assert re.search(r"job Publish\^ZMIRROR\(mirror,member\):\([^)]*\):\d+", body)
    assert "try {" in body
    assert "catch" in body
    assert "WriteToConsoleLog" in body


def test_publish_calls_a_function_the_module_really_exports() -> None:
    body = procedure("Publish")
    module = re.search(r'%SYS\.Python\)\.Import\("([^"]+)"\)', body)
    call = re.search(r'mod\."?(\w+)"?\((\w+),(\w+)\)', body)
    assert module
    assert call
    assert module.group(1) == mirrorvip_publisher.__name__
    function = getattr(mirrorvip_publisher, call.group(1))
    signature = inspect.signature(function)
    signature.bind("MIRRORA", "IRIS-A")  # two positional arguments, as ObjectScript passes them
    assert "catch" in body
    assert "WriteToConsoleLog" in body


HEARTBEAT_TASK = Path(__file__).resolve().parents[2] / "publisher" / "MirrorVipHeartbeat.cls"


def test_heartbeat_task_is_a_task_definition_that_calls_the_exported_heartbeat() -> None:
    text = HEARTBEAT_TASK.read_text(encoding="utf-8")
    assert re.search(r"^Class \S+ Extends %SYS\.Task\.Definition$", text, re.MULTILINE)
    assert "Method OnTask() As %Status" in text
    called = re.findall(r'mod\."(\w+)"\(mirror, member\)', text)
    assert called == ["heartbeat"]
    assert "heartbeat" in mirrorvip_publisher.__all__
    assert callable(mirrorvip_publisher.heartbeat)


def test_heartbeat_task_skips_a_backup_and_never_fails_the_task() -> None:
    text = HEARTBEAT_TASK.read_text(encoding="utf-8")
    on_task = text[text.index("Method OnTask()") :]
    assert "if '$SYSTEM.Mirror.IsPrimary() quit" in on_task
    assert "catch ex" in on_task
    assert on_task.split("catch ex")[1].count("quit $$$OK") == 1
