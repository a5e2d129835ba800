"""Fixtures for the engine conformance tests: a JobManager on a fresh database (`db`) with
a ManualClock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import Engine, make_template

from storage_support import is_sqlite


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("template") / "template.db")


@pytest.fixture
def stopped_eng(db: str, template_db: Path) -> Iterator[Engine]:
    """A fresh collection: the job server starts stopped (SPEC 3.2)."""
    eng = Engine(db, template=template_db if is_sqlite(db) else None)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def eng(stopped_eng: Engine) -> Engine:
    """A collection whose job server is started."""
    assert stopped_eng.call("startJobServer", {}) is True
    return stopped_eng
