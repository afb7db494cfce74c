"""Read ObjectScript with InterSystems' own grammar (tree-sitter-objectscript), for tests.

No IRIS runs here, so the parse tree stands in for the compiler: a file with an ERROR or MISSING
node would not compile, and the tree names what the code calls. The package ships one grammar per
file kind: `objectscript_routine` for routines (`.mac`, `.int`, `.inc`) and `objectscript_udl` for
class definitions (`.cls`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tree_sitter_objectscript_routine
import tree_sitter_objectscript_udl
from tree_sitter import Language, Node, Parser

ROUTINE = Language(tree_sitter_objectscript_routine.language_objectscript_routine())
CLASS = Language(tree_sitter_objectscript_udl.language_objectscript_udl())
# A QUIT inside one of these leaves the block or loop, not the procedure or method.
QUIT_SCOPES = frozenset(
    {"command_trycatch", "catch_block", "command_for", "command_while", "command_dowhile"}
)
BODIES = frozenset({"procedure", "method_definition"})


def parse(source: str, language: Language) -> Node:
    """The root node of `source` parsed with `language`."""
    return Parser(language).parse(source.encode("utf-8")).root_node


def parse_file(path: Path) -> Node:
    """A routine or a class definition, by its file name's suffix."""
    language = CLASS if path.suffix == ".cls" else ROUTINE
    return parse(path.read_text(encoding="utf-8"), language)


def text(node: Node | None) -> str:
    """The source text of a node ("" for None)."""
    return node.text.decode("utf-8") if node is not None and node.text is not None else ""


def descendants(node: Node, *types: str) -> Iterator[Node]:
    """Every node below `node` (depth first, in source order) of one of `types`."""
    for child in node.children:
        if child.type in types:
            yield child
        yield from descendants(child, *types)


def child(node: Node, node_type: str) -> Node | None:
    """The first direct child of a type."""
    return next((c for c in node.children if c.type == node_type), None)


def syntax_problems(root: Node) -> list[str]:
    """Where the grammar gave up (ERROR) or had to invent a token (MISSING), as `line N: text`."""
    return [
        f"line {n.start_point[0] + 1}: {'MISSING' if n.is_missing else 'ERROR'} {text(n)[:60]!r}"
        for n in _walk(root)
        if n.is_error or n.is_missing
    ]


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for c in node.children:
        yield from _walk(c)


@dataclass(frozen=True)
class Label:
    """A procedure of a routine (`Name(args) public { ... }`) or a method of a class."""

    name: str
    public: bool
    parameters: tuple[str, ...]
    node: Node

    def statements(self) -> list[Node]:
        """The body's top-level statements."""
        return [c for c in self.node.children if c.type == "statement"]

    def exits(self) -> list[Node]:
        """The QUIT and RETURN commands that leave this label (not only a block or loop in it)."""
        found = []
        for command in descendants(self.node, "command_quit", "command_return"):
            scope = command.parent
            while scope is not None and scope.type not in QUIT_SCOPES | BODIES:
                scope = scope.parent
            if command.type == "command_return" or scope == self.node:
                found.append(command)
        return found

    def returns_a_value(self) -> bool:
        """Every way out carries a value, and the body does not fall off its end."""
        statements = self.statements()
        if not statements:
            return False
        last = statements[-1].children[0]
        exits = self.exits()
        return last in exits and all(returned_value(e) is not None for e in exits)


def returned_value(command: Node) -> Node | None:
    """The argument of QUIT/RETURN (not its post-conditional), None when it has none."""
    return child(command, "expression")


def procedures(root: Node) -> dict[str, Label]:
    """A routine's procedures by name."""
    found = {}
    for proc in descendants(root, "procedure"):
        name = text(child(proc, "tag"))
        parameters = tuple(
            text(p) for p in descendants(child(proc, "parameter_list") or proc, "tag_parameter")
        )
        public = child(proc, "keyword_public") is not None
        found[name] = Label(name, public, parameters, proc)
    return found


def methods(root: Node) -> dict[str, tuple[Label, str]]:
    """A class's methods by name, with their declared return type."""
    found = {}
    for method in descendants(root, "method_definition"):
        name = text(child(method, "method_name"))
        return_type = child(method, "return_type")
        typename = text(child(return_type, "typename")) if return_type else ""
        found[name] = (Label(name, True, (), method), typename)
    return found


@dataclass(frozen=True)
class PythonCall:
    """`set mod=##class(%SYS.Python).Import("module")` then `mod."function"(args)`."""

    module: str
    function: str
    arguments: int


def python_calls(root: Node) -> list[PythonCall]:
    """The Python functions the code calls through the modules it imports."""
    modules: dict[str, str] = {}
    for setting in descendants(root, "set_argument"):
        value = child(setting, "expression")
        call = child(value, "class_method_call") if value else None
        if call is None:
            continue
        class_name = text(next(descendants(call, "class_name"), None))
        method = text(child(call, "method_name"))
        if (class_name, method) != ("%SYS.Python", "Import"):
            continue
        [literal] = list(descendants(child(call, "method_args") or call, "string_literal"))
        modules[text(child(setting, "set_target"))] = text(literal).strip('"')
    calls = []
    for chain in descendants(root, "oref_chain_expr"):
        target = text(child(chain, "lvn"))
        if target not in modules:
            continue
        for called in descendants(chain, "oref_method"):
            name = text(child(called, "method_name")).strip('"')
            arguments = list(descendants(child(called, "method_args") or called, "method_arg"))
            calls.append(PythonCall(modules[target], name, len(arguments)))
    return calls
