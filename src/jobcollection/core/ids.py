"""Meteor-style ids: 17 characters from an unambiguous alphabet, drawn by a CSPRNG."""

from __future__ import annotations

import os
import string

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"


def _draw(alphabet: str, length: int) -> str:
    """Uniform characters from one urandom read: bytes past the last whole multiple of the
    alphabet size are rejected, so no character is more likely than another."""
    size = len(alphabet)
    limit = 256 - 256 % size
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(alphabet[b % size] for b in os.urandom(length + 8) if b < limit)
    return "".join(chars[:length])


def random_id() -> str:
    """A new 17-character id (Meteor `Random.id()`)."""
    return _draw(ALPHABET, 17)


def random_secret(length: int = 43) -> str:
    """A login token (Meteor `Random.secret()`)."""
    return _draw(SECRET_ALPHABET, length)
