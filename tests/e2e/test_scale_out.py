"""Scale-out, the short version of benchmarks/scale_out.py: three `jobcollection serve`
processes on one PostgreSQL database, a Python worker on each and the original's node worker
on two, a subscriber on each, 1,000 job documents of every kind (fail-once, repeating,
dependent pairs, cancelled alone and with a dependent), and one server killed with SIGKILL in
the middle and served again on its port: every acknowledged job is in the database and ends
where it should, no run is executed twice, each server's counts are the database's, each
subscriber saw every job's final status, and the workers of the killed server came back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from benchmarks.scale_out import campaign, report

from node_clients import NODE_DIR, node_problem, require_node
from pg_support import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.node, pytest.mark.slow]
JOBS = 1000


@pytest.fixture
def node() -> bool:
    """Whether the node workers run: without node (or the npm clients) the campaign runs with
    Python workers only, except under CI, where this fails."""
    if os.environ.get("CI"):
        require_node()
    return node_problem() is None


@pytest.mark.timeout(300)  # the campaign's own deadline (100 s) comes first
def test_three_servers_on_one_database_keep_every_promise_through_a_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node: bool
) -> None:
    monkeypatch.setenv("JOBCOLLECTION_NODE_MODULES", str(NODE_DIR / "node_modules"))
    with fresh_database() as db:
        out = campaign(db, tmp_path, JOBS, 1, node=node, timeout_s=100)
    shown = report(out, JOBS, 1)
    assert out.problems == [], shown
    assert out.twice == 0, shown
    # every kind ended as it should (the checks above), and there were some of each end
    assert out.statuses["completed"] > JOBS * 0.8, shown
    assert out.statuses["cancelled"] > JOBS * 0.1, shown
    assert set(out.statuses) == {"completed", "cancelled"}, shown
    assert out.failures.get("failOnce", 0) > JOBS * 0.1, shown  # each retried, then completed
    (trial,) = out.trials
    assert trial.down_s > 0
    # the killed server's Python and node workers found it again by themselves
    killed = {name: n for name, n in out.reconnections.items() if name.startswith(trial.server)}
    assert len(killed) == (2 if node else 1), shown
    assert all(times >= 1 for times in killed.values()), shown
