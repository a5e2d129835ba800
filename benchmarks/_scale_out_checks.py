"""The promises benchmarks/scale_out.py checks at the end of a campaign, each a list of
problems (empty: kept), read from the database itself, the workers' run files and what the
subscribers saw."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._scale_out_jobs import CANCELLED_KINDS, REPEATS, Submitted

SHOWN = 5  # examples per problem


@dataclass(frozen=True)
class Row:
    id: str
    status: str
    run_id: str | None
    n: int
    kind: str
    repeated: int
    depends: list[str]
    resolved: list[str]
    failures: str


def read_rows(db: str, root: str) -> list[Row]:
    import psycopg

    query = (
        "SELECT id, status, run_id, data, repeated, depends, resolved, failures"
        " FROM jobs WHERE collection = %s"
    )
    with psycopg.connect(db) as conn:
        found = conn.execute(query, (root,)).fetchall()
    rows = []
    for job_id, status, run_id, data, repeated, depends, resolved, failures in found:
        data = json.loads(data)
        rows.append(
            Row(job_id, status, run_id, int(data["n"]), str(data["kind"]), int(repeated),
                json.loads(depends), json.loads(resolved), failures or "")
        )  # fmt: skip
    return rows


def unfinished(db: str, root: str, now_ms: int) -> int:
    """Jobs not yet where they should end (the delayed jobs to cancel are not counted)."""
    import psycopg

    query = (
        "SELECT count(*) FROM jobs WHERE collection = %s AND (status IN ('ready', 'running')"
        " OR (status = 'waiting' AND after < %s))"
    )
    with psycopg.connect(db) as conn:
        row = conn.execute(query, (root, now_ms + 600_000)).fetchone()
    assert row is not None
    return int(row[0])


def describe_unfinished(db: str, root: str, now_ms: int) -> str:
    """The jobs `unfinished` counts, a few of them shown."""
    rows = [
        f"{r.id} ({r.kind}, unit {r.n}) {r.status} depends={r.depends}"
        for r in read_rows(db, root)
        if r.status in ("ready", "running")
        or (r.status == "waiting" and r.kind not in CANCELLED_KINDS)
    ]
    return f"{len(rows)} jobs have not ended: {_examples(rows)}"


def read_runs(folder: Path) -> Counter[tuple[str, str]]:
    """(job id, run id) -> how many times a worker started it."""
    runs: Counter[tuple[str, str]] = Counter()
    for path in folder.glob("*.runs"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "run":
                runs[(parts[1], parts[2])] += 1
    return runs


def _examples(items: list[Any]) -> str:
    return ", ".join(map(str, items[:SHOWN])) + (" ..." if len(items) > SHOWN else "")


def final_states(rows: list[Row], submitted: Submitted) -> list[str]:
    problems = []
    ids = {row.id for row in rows}
    lost = sorted(submitted.acknowledged - ids)
    if lost:
        problems.append(f"{len(lost)} acknowledged jobs are not in the database: {_examples(lost)}")
    # every job is one the submitter saved (or one of a save whose outcome it never learnt),
    # or a repeat: none was saved twice
    strays = [
        row.id
        for row in rows
        if row.repeated == 0
        and row.id not in submitted.acknowledged
        and row.n not in submitted.unknown_units
    ]
    if strays:
        problems.append(f"{len(strays)} jobs in the database nobody saved: {_examples(strays)}")
    wrong = [
        f"{row.id} ({row.kind}) {row.status}"
        for row in rows
        if row.status != ("cancelled" if row.kind in CANCELLED_KINDS else "completed")
    ]
    if wrong:
        problems.append(f"{len(wrong)} jobs not in their expected final state: {_examples(wrong)}")
    # (a fail-once job whose first run was lost with a killed server fails for that instead)
    never_failed = [r.id for r in rows if r.kind == "fail_once" and not r.failures]
    if never_failed:
        problems.append(
            f"{len(never_failed)} fail-once jobs show no failure: {_examples(never_failed)}"
        )
    by_unit: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_unit[row.n].append(row)
    repeats = [
        n for n, unit in by_unit.items() if unit[0].kind == "repeat"
        and sorted(r.repeated for r in unit) != list(range(REPEATS + 1))
    ]  # fmt: skip
    if repeats:
        problems.append(
            f"{len(repeats)} repeating jobs did not run 1+{REPEATS} times: {_examples(repeats)}"
        )
    for n, unit in by_unit.items():
        kinds = {row.kind: row for row in unit}
        dependent, antecedent = kinds.get("pair_dependent"), kinds.get("pair_antecedent")
        if dependent is not None and (
            antecedent is None or dependent.depends or dependent.resolved != [antecedent.id]
        ):
            problems.append(f"unit {n}: the dependent did not wait for its antecedent")
    return problems


def runs_once(rows: list[Row], runs: Counter[tuple[str, str]]) -> list[str]:
    problems = []
    twice = [f"{job}/{run} x{times}" for (job, run), times in runs.items() if times > 1]
    if twice:
        problems.append(f"{len(twice)} runs executed more than once: {_examples(twice)}")
    # a run ends once: two failures of one run (two servers' workTimeout sweeps, a rescue
    # and a sweep) would be two entries with its runId
    failed_twice = [
        f"{r.id}/{run}"
        for r in rows
        for run, times in Counter(f.get("runId") for f in json.loads(r.failures or "[]")).items()
        if times > 1
    ]
    if failed_twice:
        problems.append(f"{len(failed_twice)} runs failed twice: {_examples(failed_twice)}")
    unrun = [r.id for r in rows if r.status == "completed" and (r.id, r.run_id) not in runs]
    if unrun:
        problems.append(
            f"{len(unrun)} completed jobs by a run no worker started: {_examples(unrun)}"
        )
    return problems


def status_counts(rows: list[Row], served: dict[str, dict[str, int]]) -> list[str]:
    """Each server's jobStats add up to the database's counts."""
    counts = dict(Counter(row.status for row in rows))
    return [
        f"{name}'s jobStats {stats} != the database's {counts}"
        for name, stats in served.items()
        if stats != counts
    ]


def subscribers_saw(rows: list[Row], seen: dict[str, dict[str, str]]) -> list[str]:
    """Each subscriber's last view of each job is the job's final status."""
    want = {row.id: row.status for row in rows}
    problems = []
    for name, view in seen.items():
        missed = [f"{i}: saw {view.get(i)} not {s}" for i, s in want.items() if view.get(i) != s]
        extra = sorted(set(view) - set(want))
        if missed or extra:
            problems.append(
                f"{name}'s subscriber: {len(missed)} final statuses missed ({_examples(missed)}),"
                f" {len(extra)} jobs not in the database"
            )
    return problems
