"""The PostgreSQL storage adapter (`pip install 'jobcollection[postgres]'`)."""

from __future__ import annotations

from .storage import SCHEMA_VERSION, PgStorage, translate

__all__ = ["SCHEMA_VERSION", "PgStorage", "translate"]
