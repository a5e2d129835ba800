"""Schema migrations, shared by the SQL adapters: numbered SQL files per dialect.

Each dialect's migrations are the files `sql/<dialect>_001.sql`, `_002`... in this package,
applied in order; a database records the number of the last one it has (SQLite in `PRAGMA
user_version`, PostgreSQL in a `schema_version` table: that part is the adapter's). A file's
first comment line says what it does (`-- jobcollection schema version N (Dialect): ...`).
This module knows the files and the rules: which are pending for a database at version N, and
that a database newer than the code is refused (`SchemaTooNew`), never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ..errors import SchemaTooNew

_NAME = re.compile(r"^(?P<dialect>[a-z]+)_(?P<number>\d{3})\.sql$")
_HEADER = re.compile(r"^--\s*jobcollection schema version \d+ \([^)]*\)[.:]?\s*")


@dataclass(frozen=True)
class Migration:
    """One numbered migration of one dialect."""

    dialect: str
    number: int
    script: str

    @property
    def summary(self) -> str:
        """What it does: the first sentence of its leading comment, after the version line."""
        comment: list[str] = []
        for line in self.script.splitlines():
            if not line.startswith("--"):
                break
            comment.append(line[2:].strip())
        text = _HEADER.sub("", "-- " + " ".join(comment)).strip()
        if not text:
            return "the first schema" if self.number == 1 else ""
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]

    def statements(self) -> list[str]:
        """The script's statements, one by one (statements end with `;` at a line's end)."""
        return [part.strip() for part in self.script.split(";\n") if part.strip()]


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration of ``dialect``, in order; numbered 1..N without a gap."""
    from importlib import resources  # only when a database is created or migrated

    folder = resources.files("jobcollection.storage") / "sql"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match and match["dialect"] == dialect:
            number = int(match["number"])
            found[number] = Migration(dialect, number, entry.read_text("utf-8"))
    numbers = sorted(found)
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..N: {numbers}")
    return tuple(found[n] for n in numbers)


def latest(dialect: str) -> int:
    """The schema version this code writes for ``dialect``."""
    return len(migrations(dialect))


def pending(dialect: str, version: int, where: str) -> list[Migration]:
    """The migrations a database at ``version`` still needs (``where`` names it in errors).
    Raises `SchemaTooNew` when the database is newer than this code."""
    newest = latest(dialect)
    if version > newest:
        raise SchemaTooNew(
            f"database {where} has schema version {version}; this jobcollection "
            f"understands up to {newest}: upgrade jobcollection"
        )
    return list(migrations(dialect)[version:])
