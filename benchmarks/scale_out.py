"""Proof of scale-out: three `jobcollection serve` processes on ONE PostgreSQL database, with
workers on all of them, every job ends where it should and no run is executed twice, even
when a server is killed with SIGKILL in the middle of the run.

    python -m benchmarks.scale_out [--jobs N] [--kill-trials K] [--postgres URL] [--no-node]

What runs (all on 127.0.0.1, in a schema of its own, dropped at the end):

- three `serve` processes of collection `scale` on one database;
- a Python `jobcollection worker --server` connected to each, and the original's node
  meteor-job worker (benchmarks/node/scale_worker.js) on two of them;
- a Python subscriber to the `scale.jobs` publication on each server;
- N job documents saved in batches of 50 through the servers in turn, while the workers run
  (at most 1,500 saved ahead of them): plain jobs, jobs whose first run fails (retried),
  repeating jobs (3 runs each), dependent pairs, and delayed jobs then cancelled (alone, and
  with a dependent, cancelled with them).

Each kill trial kills one server (`kill -9`, in turn) once the workers have run a share of the
jobs, and the campaign starts it again on the same port a second later: its workers (Python
and node) and subscriber reconnect by themselves. A job whose run was lost with the server
fails after its `workTimeout` (3 s) or when its worker re-registers, and is retried.

Checks (exit 1 when one fails): every acknowledged save is in the database; every job ends in
its expected state (completed, or cancelled for the cancelled kinds; fail-once jobs show their
failure; repeating jobs ran three times; dependents resolved their antecedent); each
(job, run) was started by exactly one worker, once; each completed job was completed by a
run a worker started; each server's `jobStats` equal the database's counts; each subscriber's
last view of every job is its final status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobcollection import JobCollection, connect
from jobcollection.core.live import JobChange

from . import _scale_out_checks as checks
from ._scale_out_fleet import ROOT, Fleet, Server, fresh_schema
from ._scale_out_jobs import CANCELLED_KINDS, Submitted, Submitter

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
WORK_TIMEOUT_MS = 3000
CONCURRENCY = 4
BACKLOG = 1500
RESTART_AFTER_S = 1.0
SAVE_IN_FLIGHT_WAIT_S = 1.0
SETTLE_S = 30  # for the subscribers' views to reach the final statuses
RECONNECT_S = 20  # for the workers of a killed server to be back
CLIENT = {"backoff_initial": 0.05, "backoff_max": 0.5}
# the failures a run may end with, as their `value` says (anything else is shown as it is)
CAUSES = ("failOnce", "workTimeout", "Worker lost", "reply was lost", "shutdown")


class RunCounter:
    """Runs started so far, read incrementally from the workers' run files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._offsets: dict[Path, int] = {}
        self.per_file: Counter[str] = Counter()

    def count(self) -> int:
        with self._lock:
            for path in self.folder.glob("*.runs"):
                with path.open("rb") as file:
                    file.seek(self._offsets.get(path, 0))
                    chunk = file.read()
                end = chunk.rfind(b"\n") + 1  # whole lines only
                self._offsets[path] = self._offsets.get(path, 0) + end
                self.per_file[path.name] += chunk[:end].count(b"run ")
            return sum(self.per_file.values())


class Subscriber:
    """A DDP subscriber to the jobs publication of one server: each job's last seen status."""

    def __init__(self, server: Server) -> None:
        self.name = server.name
        self.jc = connect(server.url, ROOT, **CLIENT)
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}
        self.changes = 0
        self.stop = self.jc.backend.observe({}, self._on)

    def _on(self, change: JobChange) -> None:
        with self._lock:
            self.changes += 1
            if change.doc is None:
                self._seen.pop(change.id, None)
            else:
                self._seen[change.id] = change.doc["status"]

    def seen(self) -> dict[str, str]:
        with self._lock:
            return dict(self._seen)

    def close(self) -> None:
        self.stop()
        self.jc.close()


@dataclass
class Trial:
    server: str
    at_runs: int
    during_save: bool = False
    running_at_kill: int = 0
    down_s: float = 0.0
    runs_at_restart: dict[str, int] = field(default_factory=dict)


@dataclass
class Outcome:
    jobs: int = 0
    runs: int = 0
    elapsed_s: float = 0.0
    twice: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    submitted: Submitted = field(default_factory=Submitted)
    unknown_found: int = 0
    recovered: int = 0
    reconnected: dict[str, int] = field(default_factory=dict)
    reconnections: dict[str, int] = field(default_factory=dict)
    changes_seen: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def wait(self, condition: Any, what: str, every: float = 0.1) -> None:
        while not condition():
            if time.monotonic() > self.at:
                raise TimeoutError(f"campaign deadline passed waiting for {what}")
            time.sleep(every)


def _sql_count(db: str, query: str) -> int:
    import psycopg

    with psycopg.connect(db) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _kill_trial(server: Server, counter: RunCounter, db: str, saving: Callable[[], bool]) -> Trial:
    """Kill `server` with SIGKILL, preferably while a save is in flight on it (waiting for
    one at most a second), and serve it again on its port a second later."""
    until = time.monotonic() + SAVE_IN_FLIGHT_WAIT_S
    while not saving() and time.monotonic() < until:
        time.sleep(0.001)
    trial = Trial(server.name, counter.count(), during_save=saving())
    server.kill9()
    killed = time.monotonic()
    running = f"SELECT count(*) FROM jobs WHERE collection = '{ROOT}' AND status = 'running'"
    trial.running_at_kill = _sql_count(db, running)
    time.sleep(RESTART_AFTER_S)
    server.start()  # on the same port: its workers and subscriber find it again
    trial.down_s = time.monotonic() - killed
    counter.count()
    trial.runs_at_restart = dict(counter.per_file)
    return trial


def campaign(
    db: str, folder: Path, jobs: int, kill_trials: int, *, node: bool = True, timeout_s: float
) -> Outcome:
    """Run the campaign on database `db` (an empty one); its files go to `folder`."""
    deadline = Deadline(timeout_s)
    fleet = Fleet(db, folder)
    out = Outcome()
    subscribers: list[Subscriber] = []
    savers: list[JobCollection] = []
    try:
        fleet.start_servers()
        servers = fleet.servers
        for server in servers:
            fleet.python_worker(server, CONCURRENCY, WORK_TIMEOUT_MS)
        if node:
            for server in servers[:2]:
                fleet.node_worker(server, CONCURRENCY, WORK_TIMEOUT_MS)
        subscribers = [Subscriber(server) for server in servers]
        savers = [connect(server.url, ROOT, **CLIENT) for server in servers]
        counter = RunCounter(fleet.runs)
        submitter = Submitter(savers, jobs, BACKLOG, counter.count)
        out.submitted = submitter.out
        submitter.start()
        for k in range(kill_trials):
            share = jobs * (k + 1) // (kill_trials + 1)
            deadline.wait(lambda s=share: counter.count() >= s, f"{share} runs", 0.05)
            index = k % len(servers)
            on_it = lambda i=index: submitter.saving is savers[i]  # noqa: E731
            out.trials.append(_kill_trial(servers[index], counter, db, on_it))
        deadline.wait(submitter.out.done.is_set, "the saves")
        if submitter.out.error is not None:
            raise submitter.out.error
        now_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731
        try:
            deadline.wait(lambda: checks.unfinished(db, ROOT, now_ms()) == 0, "every job", 0.2)
        except TimeoutError as error:
            stuck = checks.describe_unfinished(db, ROOT, now_ms())
            raise TimeoutError(f"{error}: {stuck}") from None
        out.elapsed_s = time.monotonic() - submitter.out.started
        out.recovered = _cancel_unknown_delayed(db, savers[0], submitter)
        deadline.wait(lambda: checks.unfinished(db, ROOT, now_ms()) == 0, "the last cancels", 0.2)
        out.problems += _reconnected(fleet, out.trials)
        rows = checks.read_rows(db, ROOT)
        runs = checks.read_runs(fleet.runs)
        _measure(out, rows, runs, fleet, counter)
        served = {s.name: _stats(jc) for s, jc in zip(servers, savers, strict=True)}
        settle = Deadline(SETTLE_S)
        want = {row.id: row.status for row in rows}
        try:
            settle.wait(lambda: all(s.seen() == want for s in subscribers), "subscribers", 0.2)
        except TimeoutError:
            pass  # the check below says what they missed
        out.changes_seen = {s.name: s.changes for s in subscribers}
        out.problems += checks.final_states(rows, submitter.out)
        out.problems += checks.runs_once(rows, runs)
        out.problems += checks.status_counts(rows, served)
        out.problems += checks.subscribers_saw(rows, {s.name: s.seen() for s in subscribers})
        out.problems += [f"refused save: {r}" for r in submitter.out.refused]
        out.problems += [f"a worker exited: {w}" for w in fleet.dead_workers()]
        return out
    finally:
        for subscriber in subscribers:
            subscriber.close()
        for jc in savers:
            jc.close()
        fleet.close()


def _reconnected(fleet: Fleet, trials: list[Trial]) -> list[str]:
    """Each worker of a killed server reconnected by itself after each kill (given RECONNECT_S
    more: the work may have ended before a worker's backoff let it try again). More
    reconnections (a connection dropped otherwise) are shown in the report, not failed."""
    kills = Counter(trial.server for trial in trials)

    def want(name: str) -> int:
        return kills[name.split(" ")[0]]

    settle = Deadline(RECONNECT_S)
    try:
        settle.wait(lambda: all(n >= want(w) for w, n in fleet.reconnections().items()), "")
    except TimeoutError:
        pass  # said below
    return [
        f"worker {name} reconnected {times} times, its server was killed {want(name)} times"
        for name, times in fleet.reconnections().items()
        if times < want(name)
    ]


def _stats(jc: JobCollection) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for status, _type, n in jc.backend.stats():  # type: ignore[attr-defined]
        counts[status] += n
    return {status: n for status, n in counts.items() if n}


def _cancel_unknown_delayed(db: str, jc: JobCollection, submitter: Submitter) -> int:
    """Jobs to cancel whose save's outcome was unknown (so their ids were not known) but that
    were saved: found by their unit number and cancelled now, as their client would."""
    units = submitter.out.unknown_units
    if not units:
        return 0
    rows = checks.read_rows(db, ROOT)
    waiting = [
        r.id for r in rows if r.n in units and r.kind in CANCELLED_KINDS and r.status == "waiting"
    ]
    if waiting:
        submitter.cancel(jc, waiting)
    return len(waiting)


def _measure(
    out: Outcome,
    rows: list[checks.Row],
    runs: Counter[tuple[str, str]],
    fleet: Fleet,
    counter: RunCounter,
) -> None:
    out.jobs = len(rows)
    out.runs = sum(runs.values())
    out.twice = sum(1 for times in runs.values() if times > 1)
    out.statuses = dict(Counter(row.status for row in rows))
    causes: Counter[str] = Counter()
    for row in rows:
        for failure in json.loads(row.failures or "[]"):
            value = str(failure.get("value"))
            causes[next((c for c in CAUSES if c in value), value[:60])] += 1
    out.failures = dict(causes)
    out.reconnections = fleet.reconnections()
    out.unknown_found = sum(1 for row in rows if row.n in out.submitted.unknown_units)
    counter.count()
    for trial in out.trials:
        for name, before in trial.runs_at_restart.items():
            if fleet.served_by.get(name) == trial.server:
                out.reconnected[f"{trial.server}: {name}"] = counter.per_file[name] - before


def report(out: Outcome, jobs: int, kill_trials: int) -> str:
    rate = out.jobs / out.elapsed_s if out.elapsed_s else 0.0
    s = out.submitted
    lines = [
        f"scale-out: 3 servers on one PostgreSQL database; {jobs} documents asked,"
        f" {kill_trials} kill trial(s)",
        f"jobs in the database: {out.jobs} (repeat copies included) {out.statuses}",
        f"runs started: {out.runs}; runs executed twice: {out.twice}",
        f"time: {out.elapsed_s:.1f} s from the first save to every job ended: {rate:.0f} jobs/s,"
        f" {out.runs / out.elapsed_s if out.elapsed_s else 0:.0f} runs/s",
        f"saves acknowledged: {s.documents} documents; units whose save's outcome was unknown:"
        f" {len(s.unknown_units)} ({out.unknown_found} of their jobs were saved;"
        f" {out.recovered} delayed ones cancelled afterwards);"
        f" cancels sent again: {s.cancel_retries}",
        f"failures recorded: {out.failures}",
        f"changes seen by each server's subscriber: {out.changes_seen}",
    ]
    for trial in out.trials:
        lines.append(
            f"kill -9 {trial.server} after {trial.at_runs} runs"
            f"{' (a save in flight on it)' if trial.during_save else ''}:"
            f" {trial.running_at_kill} jobs running (on all servers) then; served again on its port"
            f" {trial.down_s:.1f} s later"
        )
    if out.reconnected:
        lines.append(f"runs after the restart, per worker file: {out.reconnected}")
    lines.append(f"reconnections, per worker: {out.reconnections}")
    lines += [f"PROBLEM: {p}" for p in out.problems] or ["every promise kept"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000, help="job documents (default 2000)")
    parser.add_argument("--kill-trials", type=int, default=0, metavar="K")
    parser.add_argument(
        "--postgres", default=os.environ.get("JOBCOLLECTION_TEST_POSTGRES") or DEFAULT_POSTGRES
    )
    parser.add_argument("--no-node", action="store_true", help="no node workers")
    parser.add_argument("--timeout", type=float, help="seconds (default 120 + jobs / 20)")
    parser.add_argument("--keep", type=Path, help="keep the logs and run files in this folder")
    args = parser.parse_args(argv)
    timeout = args.timeout or 120 + args.jobs / 20
    with fresh_schema(args.postgres) as db, tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        try:
            out = campaign(
                db, folder, args.jobs, args.kill_trials, node=not args.no_node, timeout_s=timeout
            )
        except TimeoutError as error:
            where = f"logs: {folder}" if args.keep else "--keep DIR keeps the logs"
            print(f"scale-out: FAILED: {error} ({where})", file=sys.stderr)
            return 1
    print(report(out, args.jobs, args.kill_trials))
    return 1 if out.problems else 0


if __name__ == "__main__":
    sys.exit(main())
