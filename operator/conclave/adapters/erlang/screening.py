"""A linear-time screen of External Term Format bytes, run before erlang-py decodes them.

erlang-py decodes correct input well, but two inputs cost it far more than their size: a
big integer of n bytes takes O(n²) (300 kB: 12 s, with the event loop blocked), and a
compressed term is inflated without a bound (a 48 kB packet became 50 MB). Neither ever
comes from a well-behaved node: the distribution never compresses, and no call conclave
makes returns integers of thousands of digits. So this walks the bytes once, without
recursion or allocation, and refuses both, plus every tag this client never negotiates
(atom cache references, old funs, local terms) and any count or length that the
remaining bytes cannot hold.

Must never: decode (erlang-py does), recurse, or accept bytes that erlang-py would read
past. It raises only ``TermError``.
"""

from __future__ import annotations

import struct

MAX_BIG_BYTES = 64
"""Integers up to 512 bits: far beyond any pid, counter or timestamp a node returns."""

SMALL_INTEGER, INTEGER, NEW_FLOAT, FLOAT = 97, 98, 70, 99
ATOM, ATOM_UTF8, SMALL_ATOM, SMALL_ATOM_UTF8 = 100, 118, 115, 119
SMALL_TUPLE, LARGE_TUPLE, NIL, STRING, LIST, MAP = 104, 105, 106, 107, 108, 116
BINARY, BIT_BINARY, SMALL_BIG, LARGE_BIG = 109, 77, 110, 111
PID, NEW_PID, PORT, NEW_PORT, V4_PORT = 103, 88, 102, 89, 120
REFERENCE, NEW_REFERENCE, NEWER_REFERENCE = 101, 114, 90
NEW_FUN, EXPORT = 112, 113

FIXED = {SMALL_INTEGER: 1, INTEGER: 4, NEW_FLOAT: 8, FLOAT: 31, NIL: 0}
"""Tags followed by a fixed number of bytes."""
AFTER_NODE = {PID: 9, NEW_PID: 12, PORT: 5, NEW_PORT: 8, V4_PORT: 12, REFERENCE: 5}
"""Tags followed by a node atom, then a fixed number of bytes."""


class TermError(ValueError):
    """Bytes that are not a well-formed term in the External Term Format."""


def screen(data: bytes, start: int) -> int:
    """Where the one term starting at ``data[start]`` (after its version byte) ends.

    Raises TermError for a malformed term, a compressed one, a big integer over
    MAX_BIG_BYTES, or a tag this client does not accept.
    """
    index, pending = start, 1
    while pending:
        pending -= 1
        tag = _u8(data, index)
        index += 1
        if tag in FIXED:
            index += FIXED[tag]
        elif tag in (ATOM, ATOM_UTF8, SMALL_ATOM, SMALL_ATOM_UTF8, STRING):
            index = _atom_or_string(data, index - 1)
        elif tag == SMALL_TUPLE:
            pending += _u8(data, index)
            index += 1
        elif tag in (LARGE_TUPLE, LIST, MAP):
            count = _u32(data, index)
            index += 4
            pending += count * 2 if tag == MAP else count + (tag == LIST)  # a list has a tail
        elif tag in (BINARY, BIT_BINARY):
            index += 4 + (tag == BIT_BINARY) + _u32(data, index)
        elif tag in (SMALL_BIG, LARGE_BIG):
            size = _u8(data, index) if tag == SMALL_BIG else _u32(data, index)
            if size > MAX_BIG_BYTES:
                raise TermError(f"an integer of {size} bytes (at most {MAX_BIG_BYTES})")
            index += (1 if tag == SMALL_BIG else 4) + 1 + size
        elif tag in AFTER_NODE:
            index = _atom_or_string(data, index) + AFTER_NODE[tag]
        elif tag in (NEW_REFERENCE, NEWER_REFERENCE):
            words = _u16(data, index)
            creation = 4 if tag == NEWER_REFERENCE else 1
            index = _atom_or_string(data, index + 2) + creation + 4 * words
        elif tag == NEW_FUN:
            size = _u32(data, index)
            if size < 4:
                raise TermError("a fun shorter than its own size field")
            index += size
        elif tag == EXPORT:
            pending += 3  # module, function, arity
        else:
            raise TermError(f"tag {tag} is not accepted (compressed, atom cache, old fun, or unknown)")
        if index > len(data) or pending > len(data) - index:
            raise TermError("a term runs past the end of the data")
    return index


def _atom_or_string(data: bytes, index: int) -> int:
    """The end of the atom (or string) whose tag is at ``data[index]``."""
    tag = _u8(data, index)
    if tag in (SMALL_ATOM, SMALL_ATOM_UTF8):
        return index + 2 + _u8(data, index + 1)
    if tag in (ATOM, ATOM_UTF8, STRING):
        return index + 3 + _u16(data, index + 1)
    raise TermError(f"tag {tag} where an atom belongs")


def _u8(data: bytes, index: int) -> int:
    if index >= len(data):
        raise TermError("a term runs past the end of the data")
    return data[index]


def _u16(data: bytes, index: int) -> int:
    if index + 2 > len(data):
        raise TermError("a term runs past the end of the data")
    value: int = struct.unpack_from(">H", data, index)[0]
    return value


def _u32(data: bytes, index: int) -> int:
    if index + 4 > len(data):
        raise TermError("a term runs past the end of the data")
    value: int = struct.unpack_from(">I", data, index)[0]
    return value
