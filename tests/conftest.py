"""Settings shared by the whole suite.

Hypothesis: the default profile ("repeatable") draws the same examples on every machine and
every run, and keeps no example database, so a local run and CI agree, and an example that
failed once (in a `.hypothesis/` folder) cannot make later runs differ from a fresh clone.
To look for new failures, draw fresh examples: ``HYPOTHESIS_PROFILE=explore python -m pytest
--hypothesis-seed=N`` (a failure prints the `@reproduce_failure` blob to replay it).

Node tests: tests marked ``node`` may run the original's npm clients. When such tests are
selected, the session first installs the clients if node and npm are present and the packages
are missing or stale (`node_clients.install_if_needed`; one line of output when it does
something). Without node those tests skip, and the summary reports them as one line; under
``CI`` they fail.

Databases: a test that needs one takes `db` (or `dbs`, `module_dbs`), parametrized by the kind
of storage (`storage_support.KINDS`); tests about SQLite itself are marked ``sqlite_only``.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import settings

from node_clients import MISSING_PREFIX, install_if_needed
from pg_support import UNREACHABLE_PREFIX
from storage_support import db, db_kind, dbs, kind_params, module_dbs

__all__ = ["db", "db_kind", "dbs", "module_dbs"]  # fixtures for the whole suite

settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

_FOLDED_AT = str(Path(__file__).with_name("node_clients.py"))
_PG_FOLDED_AT = str(Path(__file__).with_name("pg_support.py"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a database runs once per kind of storage (SQLite-only tests once)."""
    if "db_kind" in metafunc.fixturenames:
        metafunc.parametrize("db_kind", kind_params(metafunc.definition), scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("node") is not None for item in items):
        return
    news = install_if_needed()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if news is not None and reporter is not None:
        reporter.write_line(f"node tests: {news}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Skips for want of node or of PostgreSQL are reported from one place each, so that the
    summary folds them into one line (it folds skips with the same place and reason) instead
    of one per test."""
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        if MISSING_PREFIX in str(longrepr[2]):
            report.longrepr = (_FOLDED_AT, None, longrepr[2])
        elif UNREACHABLE_PREFIX in str(longrepr[2]):
            report.longrepr = (_PG_FOLDED_AT, None, longrepr[2])
    return report
