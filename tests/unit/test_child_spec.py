"""`ChildSpec`: how a worker's pool process reaches its parent's collection."""

from __future__ import annotations

import pickle

from jobcollection import Job, JobCollection
from jobcollection.api.backend import ChildSpec
from jobcollection.api.local_backend import open_child
from jobcollection.client.remote import open_child as open_remote_child


def test_a_local_collection_is_reached_through_its_database(db: str) -> None:
    with JobCollection("jobs", db) as jc:
        spec = jc.backend.child_spec()
        assert spec == ChildSpec(jc.db_url, "jobs", open_child)
        assert spec.token is None
        jc.start_job_server()
        Job(jc, "t", {}).save()
        [job] = jc.get_work("t")
        child = pickle.loads(pickle.dumps(spec)).open()  # what a pool process does
        try:
            assert [doc["_id"] for doc in child.find()] == [job.id]
            # its job server is started: a progress report from the pool is accepted
            assert child.call("jobProgress", [job.id, job.run_id, 1, 2]) is True
        finally:
            child.close()


def test_a_remote_spec_pickles_and_its_token_does_not_change_its_identity() -> None:
    spec = ChildSpec("ws://127.0.0.1:3000", "queue", open_remote_child, token="secret-token")
    assert pickle.loads(pickle.dumps(spec)).token == "secret-token"
    renewed = ChildSpec("ws://127.0.0.1:3000", "queue", open_remote_child, token="another")
    assert spec == renewed  # so a pool process keeps its one connection
    assert hash(spec) == hash(renewed)
    assert "secret-token" not in repr(spec)
    assert spec != ChildSpec("ws://127.0.0.1:3000", "queue", open_child)
