"""Asterisk's text rules that a FastAGI peer relies on: argument splitting and ``${...}`` substitution.

``parse_args`` follows res_agi.c ``parse_args`` (whitespace splits, ``"`` groups, ``\\`` escapes the
next character, an empty ``""`` is still an argument). ``substitute`` follows
``pbx_substitute_variables_helper_full``: the text inside ``${...}`` is substituted first, then read
as a function call when it ends with ``)`` (arguments = everything between the first ``(`` and the
last ``)``) or as a variable (``NAME`` or ``NAME:offset[:length]``). Unset → empty string.
"""
from __future__ import annotations

import base64
import re
from typing import Callable, Optional, Union

#: a function of the dialplan: (channel, raw argument text) -> value, or None when it fails
DialplanFunction = Callable[["VariableScope", str], Optional[str]]


class VariableScope:
    """What substitution needs of a channel: its variables and its dialplan functions."""

    def variable(self, name: str) -> Optional[str]:
        raise NotImplementedError

    def function(self, name: str) -> Optional[DialplanFunction]:
        raise NotImplementedError


_TOKEN = re.compile(r'\\(.)|(")|([ \t]+)|([^"\\ \t]+)|\\\Z', re.S)


def parse_args(line: str) -> list[str]:
    """Split an AGI command line into arguments exactly as res_agi does."""
    if '"' not in line and "\\" not in line:
        return line.split()
    args: list[str] = []
    word: Optional[list[str]] = None  # None between words
    quoted = False
    for escaped, quote, blank, text in _TOKEN.findall(line):
        if quote:
            quoted = not quoted
            if word is None:
                word = []  # an opening quote starts a word, even an empty one
        elif blank and not quoted:
            if word is not None:
                args.append("".join(word))
            word = None
        elif escaped or blank or text:  # (a lone trailing backslash adds nothing)
            word = word if word is not None else []
            word.append(escaped or blank or text)
    if word is not None:
        args.append("".join(word))
    return args


#: a compiled expression: literal text and ``${...}`` nodes
Parts = tuple[Union[str, "_Node"], ...]
_BRACE = re.compile(r"\$\{|[{}]")
_compiled: dict[str, Parts] = {}


def substitute(text: str, scope: VariableScope) -> str:
    """Replace every ``${...}`` in ``text`` (inner ones first), as ``GET FULL VARIABLE`` does."""
    if "${" not in text:
        return text
    parts = _compiled.get(text)
    if parts is None:
        if len(_compiled) > 256:
            _compiled.clear()
        parts = _compiled[text] = _compile(text)
    return _evaluate(parts, scope)


def _evaluate(parts: Parts, scope: VariableScope) -> str:
    return "".join([part if part.__class__ is str else part.value(scope) for part in parts])  # type: ignore[union-attr]


class _Node:
    """One ``${...}``. When its name is fixed by literal text (``${NAME}``, ``${FUNC(...<...>...)}``)
    it is bound once; otherwise the substituted text is read as a name on each evaluation."""

    __slots__ = ("parts", "variable", "function", "arguments")

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.variable: Optional[str] = None
        self.function: Optional[str] = None
        self.arguments: Parts = ()
        first = parts[0] if parts else ""
        last = parts[-1] if parts else ""
        if not isinstance(first, str) or not isinstance(last, str):
            return
        if last.endswith(")") and "(" in first and (len(parts) > 1 or first.index("(") < len(first) - 1):
            name, _, head = first.partition("(")
            self.function = name.strip()
            middle = parts[1:-1] if len(parts) > 1 else ()
            tail = (last[:-1],) if len(parts) > 1 else ()
            self.arguments = ((head[:-1],) if len(parts) == 1 else (head,)) + middle + tail
        elif len(parts) == 1 and ":" not in first and "(" not in first:
            self.variable = first

    def value(self, scope: VariableScope) -> str:
        if self.variable is not None:
            return scope.variable(self.variable) or ""
        if self.function is not None:
            func = scope.function(self.function)
            return (func(scope, _evaluate(self.arguments, scope)) or "") if func else ""
        return _expand(_evaluate(self.parts, scope), scope)


def _compile(text: str) -> Parts:
    """Split ``text`` once into literals and ``${...}`` nodes; braces nest as Asterisk counts them."""
    stack: list[list[Union[str, _Node]]] = [[]]
    depth: list[int] = []  # per open node: plain ``{`` seen inside it and not closed yet
    last = 0
    for match in _BRACE.finditer(text):
        token, at = match.group(), match.start()
        if token == "${":
            stack[-1].append(text[last:at])
            stack.append([])
            depth.append(0)
        elif not depth:
            continue  # a brace outside any ${...} is plain text
        elif token == "{":
            depth[-1] += 1
            continue
        elif depth[-1]:
            depth[-1] -= 1
            continue
        else:
            stack[-1].append(text[last:at])
            node = _Node(tuple(p for p in stack.pop() if p != ""))
            depth.pop()
            stack[-1].append(node)
        last = match.end()
    stack[-1].append(text[last:])
    while len(stack) > 1:  # unterminated ${: Asterisk leaves the rest as it is
        inner = stack.pop()
        depth.pop()
        stack[-1].append("${" + "".join(_flatten(p) for p in inner))
    return tuple(p for p in stack[0] if p != "")


def _flatten(part: Union[str, _Node]) -> str:
    return part if isinstance(part, str) else "${" + "".join(_flatten(p) for p in part.parts) + "}"


def _expand(name: str, scope: VariableScope) -> str:
    if name.endswith(")") and "(" in name:
        fname, _, rest = name.partition("(")
        func = scope.function(fname.strip())
        value = func(scope, rest[:-1]) if func else None
        return value or ""
    offset: Optional[int] = None
    length: Optional[int] = None
    if ":" in name:
        name, _, spec = name.partition(":")
        parts = spec.split(":")
        offset = _int(parts[0])
        length = _int(parts[1]) if len(parts) > 1 else None
    value = scope.variable(name) or ""
    if offset is not None:
        value = value[offset:]
        if length is not None:
            value = value[:length]
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def split_function_args(text: str) -> list[str]:
    """``AST_STANDARD_APP_ARGS``: comma-separated, surrounding whitespace stripped."""
    return [part.strip() for part in text.split(",")]


def _base64_encode(scope: VariableScope, text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _base64_decode(scope: VariableScope, text: str) -> str:
    try:
        return base64.b64decode(text.encode("ascii"), validate=False).decode("utf-8", "replace")
    except (ValueError, UnicodeEncodeError):
        return ""


def _len(scope: VariableScope, text: str) -> str:
    return str(len(text))


COMMON_FUNCTIONS: dict[str, DialplanFunction] = {
    "BASE64_ENCODE": _base64_encode,
    "BASE64_DECODE": _base64_decode,
    "LEN": _len,
}
