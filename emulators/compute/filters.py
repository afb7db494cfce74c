"""The `filter` grammar of Compute list calls, compiled to a predicate on a resource's JSON.

Supported: `FIELD = VALUE`, `!=`, `eq`/`ne` (RE2 full match, here Python `re`), `:`, `<`/`>`,
parentheses, AND/OR/NOT and dotted fields (`labels.role`). Anything else is a 400 like the API's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emulators import JsonDict
from emulators.compute.errors import invalid

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|(!=|>=|<=|=|>|<|:)|([^\s()"!=<>:]+))')


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(expression)
        position = match.end()
        open_paren, close_paren, quoted, operator, word = match.groups()
        if open_paren:
            tokens.append(("(", "("))
        elif close_paren:
            tokens.append((")", ")"))
        elif quoted is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", quoted)))
        elif operator:
            tokens.append(("op", operator))
        elif word in {"eq", "ne"}:
            tokens.append(("op", word))
        elif word in {"AND", "OR", "NOT"}:
            tokens.append((word, word))
        else:
            tokens.append(("value", word or ""))
    return tokens


Predicate = Callable[[JsonDict], bool]


def _field_values(resource: Any, path: list[str]) -> list[str]:
    if not path:
        if isinstance(resource, list):
            return [v for item in resource for v in _field_values(item, [])]
        if isinstance(resource, bool):
            return ["true" if resource else "false"]
        return [] if resource is None or isinstance(resource, dict) else [str(resource)]
    if isinstance(resource, list):
        return [v for item in resource for v in _field_values(item, path)]
    if isinstance(resource, dict) and path[0] in resource:
        return _field_values(resource[path[0]], path[1:])
    return []


def _comparison(field: str, operator: str, value: str) -> Predicate:
    path = field.split(".")
    if operator in {"eq", "ne"}:
        pattern = re.compile(value)

        def regex(resource: JsonDict) -> bool:
            found = any(pattern.fullmatch(v) for v in _field_values(resource, path))
            return found if operator == "eq" else not found

        return regex
    if operator in {"=", "!="}:

        def exact(resource: JsonDict) -> bool:
            found = value in _field_values(resource, path) or (
                value == "*" and bool(_field_values(resource, path))
            )
            return found if operator == "=" else not found

        return exact
    if operator == ":":
        return lambda resource: any(
            value == "*" or value in v for v in _field_values(resource, path)
        )

    def ordered(resource: JsonDict) -> bool:
        return any(_compare(v, operator, value) for v in _field_values(resource, path))

    return ordered


def _compare(left: str, operator: str, right: str) -> bool:
    """Numeric when both sides are numbers, else lexicographic."""
    try:
        a: tuple[float, str] = (float(left), "")
        b: tuple[float, str] = (float(right), "")
    except ValueError:
        a, b = (0.0, left), (0.0, right)
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[operator]


def parse_filter(expression: str) -> Predicate:
    """Compile a Compute list `filter` (`name = "x"`, `name eq re`, `(a = 1) (b != 2)`, AND/OR).

    Raises:
        ApiError: 400 invalid, like the API, for an expression it cannot parse.
    """
    if not expression.strip():
        return lambda _resource: True
    try:
        tokens = _tokens(expression)
        predicate, rest = _or_expression(tokens)
        if rest:
            raise ValueError(expression)
    except (ValueError, IndexError, re.error):
        raise invalid("filter", expression, "Invalid list filter expression.") from None
    return predicate


def _either(first: Predicate, second: Predicate) -> Predicate:
    return lambda resource: first(resource) or second(resource)


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda resource: first(resource) and second(resource)


def _or_expression(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    left, tokens = _and_expression(tokens)
    while tokens and tokens[0][0] == "OR":
        right, tokens = _and_expression(tokens[1:])
        left = _either(left, right)
    return left, tokens


def _and_expression(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    left, tokens = _unary(tokens)
    while tokens and tokens[0][0] not in {"OR", ")"}:
        if tokens[0][0] == "AND":
            tokens = tokens[1:]
        right, tokens = _unary(tokens)
        left = _both(left, right)
    return left, tokens


def _unary(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    kind, text = tokens[0]
    if kind == "NOT":
        inner, rest = _unary(tokens[1:])
        return (lambda r: not inner(r)), rest
    if kind == "(":
        inner, rest = _or_expression(tokens[1:])
        if not rest or rest[0][0] != ")":
            raise ValueError("unbalanced parentheses")
        return inner, rest[1:]
    if kind != "value" or tokens[1][0] != "op" or tokens[2][0] != "value":
        raise ValueError("expected FIELD OPERATOR VALUE")
    return _comparison(text, tokens[1][1], tokens[2][1]), tokens[3:]
