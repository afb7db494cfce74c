"""^ZMIRROR (publisher/ZMIRROR.mac) and the heartbeat task class, read with InterSystems' grammar.

No IRIS here, so these check the parse tree of tree-sitter-objectscript: the files are valid
ObjectScript, the entry points IRIS calls exist, are public and return a value, and the Python
each file imports and calls really exists with the number of arguments it is called with.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from tree_sitter import Node

import mirrorvip_publisher

from .objectscript import (
    ROUTINE,
    PythonCall,
    child,
    descendants,
    methods,
    parse,
    parse_file,
    procedures,
    python_calls,
    returned_value,
    syntax_problems,
    text,
)

pytestmark = pytest.mark.unit

PUBLISHER = Path(__file__).resolve().parents[2] / "publisher"
ZMIRROR = PUBLISHER / "ZMIRROR.mac"
HEARTBEAT_TASK = PUBLISHER / "MirrorVipHeartbeat.cls"
# What IRIS calls as $$Label^ZMIRROR() (gcp-facts.md, "InterSystems IRIS").
IRIS_ENTRY_POINTS = (
    "CanNodeStartToBecomePrimary",
    "CheckBecomePrimaryOK",
    "NotifyBecomePrimary",
    "NotifyBecomePrimaryFailed",
)


@pytest.fixture(scope="module")
def routine() -> Node:
    return parse_file(ZMIRROR)


@pytest.fixture(scope="module")
def task() -> Node:
    return parse_file(HEARTBEAT_TASK)


@pytest.mark.parametrize("path", [ZMIRROR, HEARTBEAT_TASK], ids=lambda p: p.name)
def test_the_grammar_parses_the_file_without_error_or_missing_nodes(path: Path) -> None:
    assert syntax_problems(parse_file(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "ROUTINE X\nA() public {\n quit 1\n",  # no closing brace
        "ROUTINE X\nA() public {\n set x=(1\n quit 1\n}\n",  # unclosed parenthesis
    ],
)
def test_the_syntax_check_sees_broken_objectscript(source: str) -> None:
    assert syntax_problems(parse(source, ROUTINE))


def test_routine_is_named_zmirror(routine: Node) -> None:
    header = child(routine, "routine_definition")
    assert text(child(header, "routine_name") if header else None) == "ZMIRROR"


@pytest.mark.parametrize("entry", IRIS_ENTRY_POINTS)
def test_iris_entry_points_are_public_and_return_a_value(routine: Node, entry: str) -> None:
    label = procedures(routine)[entry]

    assert label.public
    assert label.parameters == ()
    assert label.returns_a_value(), f"{entry} can end without a value: <COMMAND> when $$-called"


@pytest.mark.parametrize(
    ("body", "returns"),
    [
        (" quit 1", True),
        (" quit", False),
        (" set x=1", False),  # falls off the end
        (" if x quit\n quit 1", False),  # a plain quit under IF leaves the procedure
        (" try {\n  quit\n } catch e {\n  quit\n }\n quit 1", True),  # these leave the blocks
        (" return 2", True),
    ],
)
def test_returns_a_value_follows_where_quit_leads(body: str, returns: bool) -> None:
    label = procedures(parse(f"ROUTINE X\nA() public {{\n{body}\n}}\n", ROUTINE))["A"]
    assert label.returns_a_value() is returns


@pytest.mark.parametrize("entry", ["CanNodeStartToBecomePrimary", "CheckBecomePrimaryOK"])
def test_veto_entry_points_keep_the_default_yes(routine: Node, entry: str) -> None:
    [statement] = procedures(routine)[entry].statements()
    assert text(statement).split() == ["quit", "1"]


def test_notify_become_primary_jobs_a_public_procedure_with_a_timeout_inside_try(
    routine: Node,
) -> None:
    labels = procedures(routine)
    [job] = list(descendants(labels["NotifyBecomePrimary"].node, "command_job"))
    [argument] = list(descendants(job, "job_argument"))
    [call] = list(descendants(argument, "routine_tag_call"))
    target = text(next(descendants(call, "method_name")))
    assert text(next(descendants(call, "routine_name"))) == "ZMIRROR"
    assert labels[target].public
    assert len(list(descendants(call, "method_arg"))) == len(labels[target].parameters)
    assert child(argument, "timeout") is not None, "JOB without a timeout can wait forever"
    assert guarded_by_a_logging_catch(job)


def guarded_by_a_logging_catch(node: Node) -> bool:
    """Inside a TRY whose CATCH writes to messages.log."""
    scope = node.parent
    while scope is not None and scope.type != "command_trycatch":
        scope = scope.parent
    catch = child(scope, "catch_block") if scope else None
    return catch is not None and "WriteToConsoleLog" in {
        text(m) for m in descendants(catch, "method_name")
    }


@pytest.mark.parametrize(
    ("path", "function"),
    [(ZMIRROR, "notify_become_primary"), (HEARTBEAT_TASK, "heartbeat")],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_python_calls_name_functions_the_package_exports(path: Path, function: str) -> None:
    calls = python_calls(parse_file(path))

    assert calls == [PythonCall(mirrorvip_publisher.__name__, function, 2)]
    for call in calls:
        assert call.function in mirrorvip_publisher.__all__
        exported = getattr(mirrorvip_publisher, call.function)
        inspect.signature(exported).bind(*["MIRRORA"] * call.arguments)  # positional, as IRIS


def test_heartbeat_task_is_a_task_definition_whose_on_task_returns_a_status(task: Node) -> None:
    [definition] = list(descendants(task, "class_definition"))
    extends = child(definition, "class_extends")
    assert text(child(extends, "class_name") if extends else None) == "%SYS.Task.Definition"
    on_task, return_type = methods(task)["OnTask"]
    assert return_type == "%Status"
    assert on_task.returns_a_value()
    assert text(on_task.statements()[-1]) == "quit $$$OK"


def test_heartbeat_task_skips_a_backup_and_never_fails_the_task(task: Node) -> None:
    on_task, _ = methods(task)["OnTask"]
    [primary_check] = [
        node
        for node in descendants(on_task.node, "command_if")
        if "IsPrimary" in {text(m) for m in descendants(node, "method_name")}
    ]
    condition = child(primary_check, "expression")
    assert text(condition).startswith("'"), "must skip when NOT primary"
    [quit_command] = list(descendants(primary_check, "command_quit"))
    assert returned_value(quit_command) is None  # leaves the TRY block, then `quit $$$OK`
    assert guarded_by_a_logging_catch(primary_check)
    # The only way out of OnTask is the final `quit $$$OK`, after the TRY/CATCH.
    assert [text(e) for e in on_task.exits()] == ["quit $$$OK"]
