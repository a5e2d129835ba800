"""Remote workers under faults: the server restarts, the connection is cut, a worker dies.

Whatever happens, every job must end `completed`, exactly once ("Job Completed" once in its
log), and a job may only be run again after its earlier run was failed by the work timeout
("Failed for exceeding worker set workTimeout"): a lost `jobDone` or a lost `getWork` reply is
recovered by the timeout, never by running a job twice behind the server's back. Nothing may
stay `running` (or `ready`: the queues here do not poll, they rely on the server's push).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ddp_harness import serving
from serve_harness import ServerProcess, free_port, subprocess_env

from jobcollection import Job, JobCollection, connect
from jobcollection.server import Server

TIMEOUT_FAILURE = "Job Failed with Error: Failed for exceeding worker set workTimeout."
LOST_FAILURE = "Job Failed with Error: Worker lost."  # a claim whose reply was lost
WORK_TIMEOUT_MS = 1500
FAST_RECONNECT: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.25}


# -- helpers ---------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def at_least(count: Callable[[], int], wanted: int) -> Callable[[], bool]:
    return lambda: count() >= wanted


class Proxy:
    """A TCP proxy (threads and sockets) between a worker and the server. `cut()` breaks every
    open connection, both sides at once, like a network failure; the proxy keeps listening so
    the worker can reconnect through it. `mute()` first makes the open connections swallow
    what one side sends, so that calls are caught in flight by the cut that follows."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def swallowed(self, side: str) -> int:
        """Bytes from ``side`` dropped so far by the open connections."""
        with self._lock:
            return sum(link.swallowed[side] for link in self._links)

    def __enter__(self) -> Proxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._acceptor.join(timeout=5)
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def mute(self, side: str) -> None:
        """From now on the open connections drop what ``side`` ("client" or "server") sends
        (connections opened later are not affected)."""
        with self._lock:
            for link in self._links:
                link.muted.add(side)

    def cut(self) -> int:
        """Break every open connection now; returns how many were cut."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            _shut(link.client)
            _shut(link.upstream)
        return len(links)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
                self.connections += 1
            thread = threading.Thread(target=self._relay, args=(link,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, link: _Link) -> None:
        back = threading.Thread(target=link.pump, args=("server",), daemon=True)
        back.start()
        link.pump("client")
        back.join(timeout=5)
        with self._lock:
            if link in self._links:
                self._links.remove(link)
        link.client.close()
        link.upstream.close()


class _Link:
    """One proxied connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.muted: set[str] = set()
        self.swallowed = {"client": 0, "server": 0}

    def pump(self, side: str) -> None:
        source, sink = (
            (self.client, self.upstream) if side == "client" else (self.upstream, self.client)
        )
        try:
            while data := source.recv(65536):
                if side in self.muted:
                    self.swallowed[side] += len(data)
                else:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Recorder:
    """A batch worker that records every (job id, runId) it is given, then sleeps."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.lock = threading.Lock()
        self.runs: list[tuple[str, str]] = []
        self.errors: list[object] = []

    def __call__(self, jobs: list[Job]) -> dict[str, bool]:
        with self.lock:
            self.runs += [(str(job.id), str(job.doc["runId"])) for job in jobs]
        time.sleep(self.pause)
        return {"ok": True}

    def error(self, error: object) -> None:
        with self.lock:
            self.errors.append(error)

    def count(self) -> int:
        with self.lock:
            return len(self.runs)

    def check_errors(self) -> None:
        """The queue reported nothing but calls lost with a connection."""
        unexpected = [e for e in self.errors if "connection" not in str(e).lower()]
        assert not unexpected, unexpected


def reconnects(jc: JobCollection) -> int:
    count: int = jc.backend.client.reconnects  # type: ignore[attr-defined]
    return count


def close_within(jc: JobCollection, seconds: float = 20) -> None:
    """Close a collection, failing the test (not hanging it) if that takes too long."""
    closer = threading.Thread(target=jc.close, name="close-worker", daemon=True)
    closer.start()
    closer.join(seconds)
    assert not closer.is_alive(), f"closing the remote collection took over {seconds} s"


def save_jobs(jc: JobCollection, job_type: str, count: int) -> list[str]:
    jobs = [Job(jc, job_type, {"n": n}).retry(5, wait=0) for n in range(count)]
    ids = jc.save_jobs(jobs)
    assert all(ids)
    return [i for i in ids if i]


def statuses(jc: JobCollection, job_type: str) -> Counter[str]:
    return Counter(job.doc["status"] for job in jc.find({"type": job_type}))


def check_each_job_completed_once(
    docs: list[dict[str, Any]], runs: list[tuple[str, str]]
) -> dict[str, int]:
    """Every job completed, by exactly one "Job Completed" entry, from a run the worker
    executed; every other run of the job (executed or only claimed) was failed by the work
    timeout, or as lost if the worker never ran it (a claim whose reply was lost: the worker
    lists the jobs it holds when it reconnects); no run executed twice. Returns
    {"reruns": n, "lost claims": n} for the report."""
    executed: dict[str, Counter[str]] = defaultdict(Counter)
    for job_id, run_id in runs:
        executed[job_id][run_id] += 1
    reruns = lost_claims = 0
    problems: list[str] = []
    for doc in docs:
        job_id, log = doc["_id"], doc["log"]
        ran = executed.get(job_id, Counter())
        completed = [e for e in log if e["message"] == "Job Completed"]
        claimed = [e["runId"] for e in log if e["message"] == "Job Running"]
        timed_out = {e["runId"] for e in log if e["message"] == TIMEOUT_FAILURE}
        lost = {e["runId"] for e in log if e["message"] == LOST_FAILURE}
        if lost & set(ran):
            problems.append(f"{job_id}: runs {lost & set(ran)} executed, yet failed as lost")
        timed_out |= lost
        failed = [e for e in log if e["message"].startswith("Job Failed")]
        if doc["status"] != "completed" or len(completed) != 1:
            problems.append(f"{job_id}: {doc['status']}, {len(completed)} completions")
            continue
        winner = completed[0]["runId"]
        if winner not in ran:
            problems.append(f"{job_id}: completed by run {winner}, which the worker never ran")
        if any(n > 1 for n in ran.values()):
            problems.append(f"{job_id}: a run was executed twice: {dict(ran)}")
        if set(ran) - set(claimed):
            problems.append(f"{job_id}: executed runs {set(ran) - set(claimed)} never claimed")
        if len(failed) != len(timed_out):
            problems.append(f"{job_id}: failures other than the work timeout: {failed}")
        for run_id in claimed:
            if run_id != winner and run_id not in timed_out:
                problems.append(f"{job_id}: run {run_id} neither completed nor timed out")
        reruns += len(ran) - 1
        lost_claims += len(set(claimed) - set(ran))
    assert not problems, "\n".join(problems[:20])
    assert {doc["_id"] for doc in docs} >= set(executed)
    return {"reruns": reruns, "lost claims": lost_claims}


# -- 1. the server restarts while a worker runs -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "crash"])
def test_server_restart_mid_run_loses_and_repeats_nothing(
    tmp_path: Path, db: str, how: str
) -> None:
    total = 300
    server = ServerProcess(db, free_port(), tmp_path)
    server.start()
    recorder = Recorder(pause=0.08)
    worker: JobCollection | None = None
    try:
        admin = connect(server.url, **FAST_RECONNECT)
        try:
            ids = save_jobs(admin, "restart", total)
        finally:
            admin.close()
        worker = connect(server.url, **FAST_RECONNECT)
        worker.process_jobs(
            "restart",
            recorder,
            concurrency=4,
            payload=5,
            work_timeout=WORK_TIMEOUT_MS,
            poll_interval=0,
            error_callback=recorder.error,
        )
        wait_for(lambda: recorder.count() >= total // 4, "a quarter of the jobs to run")
        if how == "crash":
            server.crash()
        else:
            server.stop()
        assert recorder.count() < total, "the run ended before the restart"
        time.sleep(0.3)  # the worker notices and retries while nothing listens
        server.start()
        check = connect(server.url)
        try:
            wait_for(
                lambda: statuses(check, "restart") == {"completed": total},
                "every job to complete after the restart",
                timeout=30,
            )
            docs = [job.doc for job in check.get_jobs(ids, get_log=True)]
        finally:
            check.close()
        worker_reconnects = reconnects(worker)
    finally:
        if worker is not None:
            close_within(worker)
        server.stop()
    assert len(docs) == total
    assert worker_reconnects >= 1
    recorder.check_errors()
    check_each_job_completed_once(docs, recorder.runs)
    if how == "crash":  # the calls frozen in flight died with the server; their outcomes,
        # sent again after the reconnect, are applied once (a run completes only once)
        resent = [e for e in recorder.errors if "outcome is unknown" in str(e)]
        assert resent, recorder.errors
        assert all(str(e).endswith("sent again") for e in resent), resent


# -- 2. the connection is cut while jobs run --------------------------------------------------


@pytest.fixture
def local(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as jc:
        jc.allow(admin="anyone")
        yield jc


@pytest.fixture
def url(local: JobCollection) -> Iterator[str]:
    with serving(Server(local)) as base:
        yield base


def _docs(local: JobCollection, ids: list[str]) -> list[dict[str, Any]]:
    return [job.doc for job in local.get_jobs(ids, get_log=True)]


@pytest.mark.slow
def test_cut_connections_mid_job_end_completed(local: JobCollection, url: str) -> None:
    total = 200
    ids = save_jobs(local, "cut", total)
    recorder = Recorder(pause=0.15)
    port = int(url.rsplit(":", 1)[1])
    # a plain cut; a cut after 0.3 s of swallowed replies (the calls were applied, the worker
    # is not told); a cut after 0.3 s of swallowed requests (the calls never arrived)
    faults = [None, "server", "client"]
    with Proxy(port) as proxy:
        worker = connect(proxy.url, **FAST_RECONNECT)
        try:
            worker.process_jobs(
                "cut",
                recorder,
                concurrency=4,
                payload=5,
                work_timeout=WORK_TIMEOUT_MS,
                poll_interval=0,
                error_callback=recorder.error,
            )
            for number, muted in enumerate(faults, 1):
                wait_for(at_least(recorder.count, number * total // 5), f"{number} fifths run")
                assert local.find({"type": "cut", "status": "running"}), "nothing running to cut"
                if muted:
                    proxy.mute(muted)
                    time.sleep(0.3)
                assert proxy.cut() == 1
                wait_for(at_least(lambda: proxy.connections, number + 1), "a reconnect", 10)
            wait_for(
                lambda: statuses(local, "cut") == {"completed": total},
                "every job to complete",
                timeout=20,
            )
        finally:
            close_within(worker)
    assert proxy.connections == len(faults) + 1
    recorder.check_errors()
    seen = check_each_job_completed_once(_docs(local, ids), recorder.runs)
    unknown = [e for e in recorder.errors if "outcome is unknown" in str(e)]
    assert unknown, recorder.errors  # calls were caught in flight (their outcomes sent again)
    assert seen["lost claims"] > 0  # swallowed getWork replies: failed as lost on reconnect


def test_idle_queue_looks_again_after_a_reconnect(local: JobCollection, url: str) -> None:
    """An idle push-triggered queue (no polling) is rung for two ready jobs; its getWork is
    swallowed, then the connection is cut. The bell rang before the cut and still rings after
    it, so no new `added` comes: the queue must look again by itself after the reconnect."""
    recorder = Recorder(pause=0.0)
    port = int(url.rsplit(":", 1)[1])
    with Proxy(port) as proxy:
        worker = connect(proxy.url, **FAST_RECONNECT)
        try:
            worker.process_jobs(
                "idle",
                lambda job: recorder([job]),
                work_timeout=1000,
                poll_interval=0,
                error_callback=recorder.error,
            )
            time.sleep(0.2)  # the first (empty) getWork is answered: the queue is idle
            proxy.mute("client")
            save_jobs(local, "idle", 2)
            wait_for(lambda: proxy.swallowed("client") > 0, "the rung queue's getWork", 5)
            assert proxy.cut() == 1
            wait_for(
                lambda: statuses(local, "idle") == {"completed": 2},
                "the jobs to complete after the reconnect",
                timeout=5,
            )
        finally:
            close_within(worker)
    assert any("getWork" in str(e) for e in recorder.errors), recorder.errors
    assert len(recorder.runs) == 2


# -- 3. a worker process is killed mid-job ----------------------------------------------------

_TASKS = """
import time
from pathlib import Path

def work(job):
    Path(f"marks/{job.id}.{job.doc['runId']}").write_text("started")
    time.sleep(60)  # killed long before
"""

_SCRIPT = """
import sys, time
from jobcollection import connect
from tasks import work

jc = connect(sys.argv[1])
jc.process_jobs("long", work, work_timeout=int(sys.argv[2]), poll_interval=0)
print("serving", flush=True)
time.sleep(120)
"""


def start_worker_process(
    how: str, url: str, cwd: Path, work_timeout: int
) -> subprocess.Popen[bytes]:
    """A worker in its own process: the `jobcollection worker --server` CLI or a plain
    script (connect + process_jobs); its worker function marks each run it starts."""
    (cwd / "marks").mkdir()
    (cwd / "tasks.py").write_text(textwrap.dedent(_TASKS))
    (cwd / "script.py").write_text(textwrap.dedent(_SCRIPT))
    if how == "cli":
        command = [sys.executable, "-m", "jobcollection", "worker", "--server", url]
        command += ["--type", "long", "--work-timeout", str(work_timeout)]
        command += ["--poll-interval", "0", "tasks:work"]
    else:
        command = [sys.executable, "script.py", url, str(work_timeout)]
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env["PYTHONPATH"]])
    with (cwd / "worker.out").open("wb") as stdout, (cwd / "worker.err").open("wb") as stderr:
        return subprocess.Popen(
            command, cwd=cwd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env
        )


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "script"])
def test_sigkilled_worker_job_is_retried_after_work_timeout(
    local: JobCollection, url: str, tmp_path: Path, how: str
) -> None:
    work_timeout = 1000
    [job_id] = save_jobs(local, "long", 1)
    process = start_worker_process(how, url, tmp_path, work_timeout)
    marks = tmp_path / "marks"
    try:
        wait_for(lambda: any(marks.iterdir()) or process.poll() is not None, "the job to start")
        assert process.poll() is None, (tmp_path / "worker.err").read_text()
        [mark] = marks.iterdir()
        assert mark.name.startswith(job_id + ".")
        first_run = mark.name.split(".", 1)[1]
        time.sleep(work_timeout / 1000 * 1.5)  # kept alive all along: still running
        doc = local.get_job(job_id, get_log=True)
        assert doc is not None
        assert (doc.doc["status"], doc.doc["runId"]) == ("running", first_run)
        killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def timed_out() -> bool:
        job = local.get_job(job_id, get_log=True)
        return job is not None and any(e["message"] == TIMEOUT_FAILURE for e in job.doc["log"])

    wait_for(timed_out, "the killed run to time out", timeout=10)
    assert time.monotonic() - killed_at < work_timeout / 1000 + 3
    failed = local.get_job(job_id, get_log=True)
    assert failed is not None
    assert failed.doc["status"] in ("waiting", "ready")  # to be retried (wait=0)
    assert failed.doc["runId"] is None
    [failure] = [e for e in failed.doc["log"] if e["message"] == TIMEOUT_FAILURE]
    assert failure["runId"] == first_run

    recorder = Recorder(pause=0.0)
    second = connect(url)
    try:
        second.process_jobs("long", lambda job: recorder([job]), work_timeout=work_timeout)
        wait_for(lambda: statuses(local, "long") == {"completed": 1}, "the retry to complete")
    finally:
        close_within(second)
    [(_, second_run)] = recorder.runs
    assert second_run != first_run
    check_each_job_completed_once(_docs(local, [job_id]), [(job_id, first_run), *recorder.runs])


# -- closing a worker while the server is away ------------------------------------------------


@pytest.mark.slow
def test_closing_a_worker_while_the_server_is_down_is_bounded(tmp_path: Path, db: str) -> None:
    server = ServerProcess(db, free_port(), tmp_path)
    server.start()
    worker: JobCollection | None = None
    closer: threading.Thread | None = None
    hung = False
    try:
        admin = connect(server.url)
        try:
            save_jobs(admin, "held", 1)
        finally:
            admin.close()
        worker = connect(server.url, **FAST_RECONNECT)
        # concurrency 0, prefetch 1: the job is claimed and held in the local queue (with a
        # running job the same happens, and its worker code is left running by the close)
        worker.process_jobs("held", lambda job: None, concurrency=0, prefetch=1)
        check = connect(server.url)
        try:
            wait_for(lambda: statuses(check, "held") == {"running": 1}, "the job to be claimed")
        finally:
            check.close()
        server.stop()
        closer = threading.Thread(target=worker.close, name="close-worker", daemon=True)
        closer.start()
        closer.join(3)
        hung = closer.is_alive()
    finally:
        if hung:  # bring the server back, so that the shutdown's call goes through
            server.start()
            assert closer is not None
            closer.join(20)
        elif worker is not None and closer is None:
            close_within(worker)
        server.stop()
    assert not hung, "close() still waiting 3 s after it was called"
