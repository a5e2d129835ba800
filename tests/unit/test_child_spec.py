"""`ChildSpec`: how a worker's pool process reaches its parent's collection."""

from __future__ import annotations

import pickle
from pathlib import Path

from jobcollection import JobCollection
from jobcollection.api._runners import ChildSpec, child_spec


def test_a_local_collection_is_reached_through_its_database(tmp_path: Path) -> None:
    with JobCollection("jobs", tmp_path / "jobs.db") as jc:
        spec = child_spec(jc)
        assert spec == ChildSpec(jc.db_url, "jobs")
        assert not spec.remote
        assert spec.token is None


def test_a_remote_spec_pickles_and_its_token_does_not_change_its_identity() -> None:
    spec = ChildSpec("ws://127.0.0.1:3000", "queue", remote=True, token="secret-token")
    assert pickle.loads(pickle.dumps(spec)).token == "secret-token"
    renewed = ChildSpec("ws://127.0.0.1:3000", "queue", remote=True, token="another")
    assert spec == renewed  # so a pool process keeps its one connection
    assert hash(spec) == hash(renewed)
    assert "secret-token" not in repr(spec)
    assert spec != ChildSpec("ws://127.0.0.1:3000", "queue")


def test_a_manager_with_its_own_child_spec_is_asked() -> None:
    wanted = ChildSpec("ws://host:1", "q", remote=True, token="t")

    class Manager:
        def child_spec(self) -> ChildSpec:
            return wanted

    class Source:
        manager = Manager()
        db_url, root = "unused", "unused"

    assert child_spec(Source()) is wanted
