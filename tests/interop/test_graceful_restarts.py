"""Twenty graceful restarts of `jobcollection serve` (SIGTERM, then serving again on the same
port) while a Python remote worker and the original's node worker (meteor-job 1.5.2 over
ddp 0.12.1, which never resends a call) process 2,000 jobs: every job completes, none runs
twice, no call ends with its outcome unknown. (With no drain, the node worker's `jobDone`s
are lost at the restarts and its jobs stay `running`: this test then fails.)"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from interop_harness import ROOT, NodeProcess, Served, node_env, skip_without_node

from jobcollection import Job, JobCollection, connect

TOTAL = 2000
RESTARTS = 20
WORK_S = 0.02


def _wait(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class PythonWorker:
    """Records each (job id, run id) it is given, works a moment, succeeds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[tuple[str, str]] = []
        self.errors: list[object] = []

    def __call__(self, job: Job) -> dict[str, str]:
        with self.lock:
            self.runs.append((str(job.id), str(job.doc["runId"])))
        time.sleep(WORK_S)
        return {"by": "python"}

    def error(self, error: object) -> None:
        with self.lock:
            self.errors.append(error)


@pytest.mark.slow
def test_graceful_restarts_under_load_lose_no_outcome_and_run_no_job_twice(
    tmp_path: Path, db: str
) -> None:
    skip_without_node()
    served = Served(tmp_path, db, "admin=anyone", options=("--drain-timeout", "10"))
    python = PythonWorker()
    try:
        with JobCollection(ROOT, db=served.db) as local:
            ids = local.save_jobs([Job(local, "restart", {"n": n}) for n in range(TOTAL)])
        env = node_env(None, None, JC_TIMEOUT_MS="170000")
        # node jobs take longer than a restart's stop: the drain waits for them
        with NodeProcess("restart_worker.js", served, "restart", "150", env=env) as node:
            node.wait_for("connected")
            remote = connect(served.ws_url, ROOT, backoff_initial=0.05, backoff_max=0.25)
            try:
                remote.process_jobs(
                    "restart", python, concurrency=2, poll_interval=500, error_callback=python.error
                )

                def started() -> int:
                    return len(python.runs) + len(node.seen("run"))

                for k in range(1, RESTARTS + 1):
                    _wait(lambda k=k: started() >= k * TOTAL // (RESTARTS + 2), "work", 60)
                    served.restart()
                _wait(lambda: started() >= TOTAL, "every job to start", 60)
                with JobCollection(ROOT, db=served.db) as local:
                    _wait(lambda: _all_completed(local), "every job to complete", 30)
                    docs = [job.doc for job in local.get_jobs(ids, get_log=True)]
                reconnects = remote.backend.client.reconnects  # type: ignore[attr-defined]
            finally:
                remote.close()
            node.kill()
            lines = node.result()
    finally:
        served.stop()
    node_runs = [(e["id"], e["runId"]) for e in lines.all("run")]
    ran = Counter(job_id for job_id, _ in [*python.runs, *node_runs])
    assert served.starts == RESTARTS + 1
    assert reconnects == RESTARTS  # the Python worker came back after every restart
    closes = Counter(e["code"] for e in lines.all("socket_close"))
    # each restart closed the node worker's connection cleanly (its websocket library reads
    # the 1012, which it does not know, as 1002), and it came back every time
    assert closes[1002] == RESTARTS
    assert len(lines.all("connected")) == RESTARTS + 1
    assert [d["_id"] for d in docs if d["status"] != "completed"] == []  # every job completes
    assert {job_id for job_id, times in ran.items() if times > 1} == set()  # 0 run twice
    assert set(ran) == set(ids)
    assert node_runs, "the node worker ran no job"
    assert len(node_runs) < TOTAL, "the Python worker ran no job"
    outcome_unknown = [e for e in python.errors if "outcome" in str(e)]
    assert outcome_unknown == []  # 0 calls "outcome unknown", Python...
    assert lines.all("done_error") == []  # ...and node: every job.done() was answered
    assert len(lines.all("done")) == len(node_runs)
    run_of = dict([*python.runs, *node_runs])
    for doc in docs:  # completed once, by the one run that was handed out
        completed = [e for e in doc["log"] if e["message"] == "Job Completed"]
        assert [e["runId"] for e in completed] == [run_of[doc["_id"]]]


def _all_completed(local: JobCollection) -> bool:
    return all(j.doc["status"] == "completed" for j in local.find({"type": "restart"}))
