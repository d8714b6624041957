"""Erlang terms as erlang-py gives them: the only module that imports ``erlang`` (erlang-py).

How terms look in Python (erlang-py 2.0's mapping, passed through unchanged):

- atoms: ``erlang.OtpErlangAtom`` with ``.value`` a ``str`` (``bytes`` for a Latin-1 atom);
  ``true``/``false`` are ``bool`` and ``undefined`` is ``None``, both ways;
- integers ``int``, floats ``float``, tuples ``tuple``, maps ``dict``;
- proper lists ``list``; a list of small integers may arrive as ``bytes`` (a charlist such
  as ``"abc"``), and a Python ``str`` or ``bytes`` is sent as a charlist;
- binaries ``erlang.OtpErlangBinary`` (``.value`` bytes); pids, references, ports and funs
  their ``OtpErlang*`` classes, compared by their encoding.

To send an atom, pass ``atom("name")``. Decoding never raises anything but ``TermError``,
whatever the bytes: each term is first screened in linear time (``screening``: no
compressed terms, no huge integers, every length within the data), then decoded by
erlang-py, whose own errors, ``IndexError``/``struct.error`` on truncated input, bad UTF-8,
and recursion on deep nesting all become ``TermError``.

Must never: do I/O, or decode anything without catching every failure.
"""

from __future__ import annotations

import struct
from typing import Any

import erlang  # type: ignore[import-untyped]

from conclave.adapters.erlang import screening

Atom: Any = erlang.OtpErlangAtom
Pid: Any = erlang.OtpErlangPid
Reference: Any = erlang.OtpErlangReference
Binary: Any = erlang.OtpErlangBinary

VERSION_TAG = 131


TermError = screening.TermError


def atom(name: str) -> Any:
    """The atom ``name``, as erlang-py encodes it (UTF-8)."""
    return erlang.OtpErlangAtom(name)


def atom_text(term: Any) -> str | None:
    """The name of an atom term (``true``/``false``/``undefined`` included); None if not an atom."""
    if isinstance(term, bool):
        return "true" if term else "false"
    if term is None:
        return "undefined"
    if isinstance(term, erlang.OtpErlangAtom):
        value = term.value
        if isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode("latin-1")
    return None


def encode(term: Any) -> bytes:
    """``term`` in the External Term Format, with the version byte.

    Raises TypeError for a Python value erlang-py cannot encode.
    """
    try:
        encoded: bytes = erlang.term_to_binary(term)
    except (erlang.OutputException, struct.error, TypeError, ValueError) as error:
        raise TypeError(f"cannot encode {type(term).__name__} as an Erlang term: {error}") from None
    return encoded


def decode_terms(data: bytes, at_most: int) -> list[Any]:
    """Decode the terms written back to back in ``data`` (each with its version byte): at
    least one and at most ``at_most``, filling ``data`` exactly.

    A distribution packet holds a control tuple and, for a send, the message after it;
    erlang-py's public ``binary_to_term`` decodes one whole buffer only, so this calls its
    positional decoder (``_binary_to_term``, unchanged across its 2.x releases) on each term
    the screen passed. Raises TermError for anything else.
    """
    terms: list[Any] = []
    index = 0
    try:
        while index < len(data) or not terms:
            if len(terms) == at_most:
                raise TermError(f"{len(data) - index} bytes left after the last term")
            if index >= len(data) or data[index] != VERSION_TAG:
                raise TermError("a term does not start with the version byte 131")
            end = screening.screen(data, index + 1)
            index, term = erlang._binary_to_term(index + 1, data)
            if index != end:
                raise TermError("a term's encoding is inconsistent")
            terms.append(term)
    except TermError:
        raise
    except Exception as error:
        # erlang-py's ParseException, IndexError and struct.error on truncated input,
        # UnicodeDecodeError, RecursionError on deep nesting, zlib.error: a member's bytes
        # may provoke any of them, and each means the same thing here.
        raise TermError(f"malformed term ({type(error).__name__}: {error})"[:200]) from None
    if index != len(data):
        raise TermError("a term runs past the end of the data")
    return terms


def decode(data: bytes) -> Any:
    """Decode one term (with its version byte) that fills ``data``; raises TermError."""
    return decode_terms(data, 1)[0]
