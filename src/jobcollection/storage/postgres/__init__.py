"""The PostgreSQL storage adapter (`pip install 'jobcollection[postgres]'`)."""

from __future__ import annotations

from .storage import DIALECT, SCHEMA_VERSION, PgStorage, schema_version, translate

__all__ = ["DIALECT", "SCHEMA_VERSION", "PgStorage", "schema_version", "translate"]
