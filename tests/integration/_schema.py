"""Turning a database back into an older schema version, for the migration tests."""

from __future__ import annotations

import sqlite3


def drop_worker_registry(conn: sqlite3.Connection) -> None:
    """Undo schema version 5 (the worker registry): what a version 4 database lacks."""
    conn.execute("DROP TABLE workers")
    conn.execute("ALTER TABLE jobs DROP COLUMN worker_id")
