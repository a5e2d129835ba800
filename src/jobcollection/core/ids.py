"""Meteor-style ids: 17 characters from an unambiguous alphabet, drawn by a CSPRNG."""

from __future__ import annotations

import os
import string

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"


def _tables(alphabet: str) -> tuple[bytes, bytes]:
    """A byte -> character table, and the bytes to reject: those past the last whole multiple
    of the alphabet size, so that no character is more likely than another."""
    size = len(alphabet)
    limit = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


_ID_TABLES = _tables(ALPHABET)
_SECRET_TABLES = _tables(SECRET_ALPHABET)


def _draw(tables: tuple[bytes, bytes], length: int) -> str:
    """`length` uniform characters from urandom (one read, almost always)."""
    drawn = b""
    while len(drawn) < length:
        drawn += os.urandom(length + 8).translate(*tables)
    return drawn[:length].decode("ascii")


def random_id() -> str:
    """A new 17-character id (Meteor `Random.id()`)."""
    return _draw(_ID_TABLES, 17)


def random_secret(length: int = 43) -> str:
    """A login token (Meteor `Random.secret()`)."""
    return _draw(_SECRET_TABLES, length)
