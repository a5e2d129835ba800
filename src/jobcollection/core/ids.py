"""Meteor-style ids: 17 characters from an unambiguous alphabet, drawn by a CSPRNG."""

from __future__ import annotations

import random
import string

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"
_rng = random.SystemRandom()


def random_id() -> str:
    """A new 17-character id (Meteor `Random.id()`)."""
    return "".join(_rng.choices(ALPHABET, k=17))


def random_secret(length: int = 43) -> str:
    """A login token (Meteor `Random.secret()`)."""
    return "".join(_rng.choices(SECRET_ALPHABET, k=length))
