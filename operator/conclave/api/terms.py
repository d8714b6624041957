"""Erlang terms written as text in a spec (`group: '{subscribers, <<"orders">>}'`): parsed
as literals only, never evaluated.

The grammar is Erlang's for literal data: atoms (`pubsub`, `'My Scope'`), integers
(`42`, `-1`, `16#ff`), floats, binaries of strings or bytes (`<<"orders">>`, `<<1,2>>`),
strings (`"abc"`, a list of character codes), characters (`$a`), tuples and proper
lists. Anything else — variables, calls, operators, funs, records, maps — is refused
with where and why. Terms come out as plain Python data, the atoms as ``Atom``; the adapter
that speaks Erlang distribution turns them into its own types.

Must never: evaluate, import, or look anything up.
"""

from __future__ import annotations

import dataclasses
import re

MAX_DEPTH = 32


@dataclasses.dataclass(frozen=True)
class Atom:
    name: str

    def __str__(self) -> str:
        return self.name if re.fullmatch(r"[a-z][A-Za-z0-9_@]*", self.name) else f"'{self.name}'"


Term = Atom | int | float | bytes | str | tuple["Term", ...] | list["Term"]
"""``str`` is an Erlang string (a list of character codes); ``bytes`` a binary."""

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<float>-?\d+\.\d+(?:[eE][-+]?\d+)?)
    | (?P<radix>-?\d{1,2}\#[0-9A-Za-z]+)
    | (?P<int>-?\d+)
    | (?P<atom>[a-z][A-Za-z0-9_@]*)
    | (?P<quoted>'(?:[^'\\]|\\.)*')
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<char>\$(?:\\.|[^\\]))
    | (?P<punct><<|>>|[{}\[\],])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", "e": "\x1b", "0": "\0", "\\": "\\", "'": "'", '"': '"'}
_RESERVED = frozenset({"after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor",
                       "case", "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or",
                       "orelse", "receive", "rem", "try", "when", "xor"})  # fmt: skip


class TermSyntaxError(ValueError):
    """Text that is not an Erlang literal; the message says where and what was expected."""


def parse(text: str) -> Term:
    """The literal term ``text`` spells. Raises TermSyntaxError."""
    tokens = _tokens(text)
    term, position = _term(tokens, 0, 0)
    if position != len(tokens):
        raise TermSyntaxError(f"unexpected {tokens[position][1]!r} after the term")
    return term


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise TermSyntaxError(f"not a literal at {text[position:].strip()[:20]!r} (position {position})")
        found.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    if not found:
        raise TermSyntaxError('empty: write a term such as pubsub or {subscribers, <<"orders">>}')
    return found


def _term(tokens: list[tuple[str, str]], at: int, depth: int) -> tuple[Term, int]:
    if depth > MAX_DEPTH:
        raise TermSyntaxError(f"nested deeper than {MAX_DEPTH}")
    if at >= len(tokens):
        raise TermSyntaxError("the term ends too early")
    kind, value = tokens[at]
    if kind == "int":
        return int(value), at + 1
    if kind == "radix":
        base, digits = value.lstrip("-").split("#")
        try:
            number = int(digits, int(base))
        except ValueError:
            raise TermSyntaxError(f"{value!r} is not an integer in base {base}") from None
        return -number if value.startswith("-") else number, at + 1
    if kind == "float":
        return float(value), at + 1
    if kind == "atom":
        if value in _RESERVED:
            raise TermSyntaxError(f"{value!r} is a reserved word; quote it as an atom: '{value}'")
        return Atom(value), at + 1
    if kind == "quoted":
        return Atom(_unescape(value[1:-1])), at + 1
    if kind == "string":
        return _unescape(value[1:-1]), at + 1
    if kind == "char":
        return ord(_unescape(value[1:])), at + 1
    if value == "{":
        items, end = _sequence(tokens, at + 1, "}", depth)
        return tuple(items), end
    if value == "[":
        items, end = _sequence(tokens, at + 1, "]", depth)
        return items, end
    if value == "<<":
        return _binary(tokens, at + 1)
    raise TermSyntaxError(f"unexpected {value!r}")


def _sequence(tokens: list[tuple[str, str]], at: int, close: str, depth: int) -> tuple[list[Term], int]:
    items: list[Term] = []
    if at < len(tokens) and tokens[at][1] == close:
        return items, at + 1
    while True:
        item, at = _term(tokens, at, depth + 1)
        items.append(item)
        if at >= len(tokens):
            raise TermSyntaxError(f"missing {close!r}")
        if tokens[at][1] == close:
            return items, at + 1
        if tokens[at][1] != ",":
            raise TermSyntaxError(f"expected ',' or {close!r}, not {tokens[at][1]!r}")
        at += 1


def _binary(tokens: list[tuple[str, str]], at: int) -> tuple[bytes, int]:
    """``<<"text">>``, ``<<1, 2, 3>>`` or a mix; segments are strings or bytes 0..255."""
    data = bytearray()
    if at < len(tokens) and tokens[at][1] == ">>":
        return bytes(data), at + 1
    while True:
        if at >= len(tokens):
            raise TermSyntaxError("missing '>>'")
        kind, value = tokens[at]
        if kind == "string":
            data += _unescape(value[1:-1]).encode()
        elif kind in ("int", "char") and 0 <= (byte := _code(kind, value)) < 256:
            data.append(byte)
        else:
            raise TermSyntaxError(f"a binary holds strings and bytes 0..255, not {value!r}")
        at += 1
        if at < len(tokens) and tokens[at][1] == ">>":
            return bytes(data), at + 1
        if at >= len(tokens) or tokens[at][1] != ",":
            raise TermSyntaxError("expected ',' or '>>' in a binary")
        at += 1


def _code(kind: str, value: str) -> int:
    return int(value) if kind == "int" else ord(_unescape(value[1:]))


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def show(term: Term) -> str:
    """Erlang's own text for ``term``, for messages (``{subscribers,<<"orders">>}``)."""
    if isinstance(term, Atom):
        return str(term)
    if isinstance(term, bytes):
        text = term.decode(errors="replace")
        if text.isprintable() and not set(text) & {'"', "\\", "\ufffd"}:
            return f'<<"{text}">>'
        return "<<" + ",".join(map(str, term)) + ">>"
    if isinstance(term, str):
        return '"' + term + '"'
    if isinstance(term, tuple):
        return "{" + ",".join(map(show, term)) + "}"
    if isinstance(term, list):
        return "[" + ",".join(map(show, term)) + "]"
    return repr(term)
