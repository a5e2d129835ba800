"""One SQLite transaction on one collection: the `Transaction` port in SQL."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..core.usual_job import UsualJob
from . import _columns as cols
from . import _sqlite_reads as reads
from ._feed_rows import PendingRow, inserted_rows
from ._sqlite_reads import by_status_index, marks
from ._sqlite_workers import SqliteWorkers
from .port import (
    NO_GUARD,
    Guard,
    JobDoc,
    LogEntry,
    Page,
    RunEnd,
    SharedClaim,
    Tally,
    TallyCursor,
    iter_chunks,
)

_CHUNK = 500  # ids per statement, well under SQLite's parameter limit
_LOG_INSERT = "INSERT INTO job_log (job_id, entries) VALUES (?, ?)"


@functools.cache
def _job_insert(columns: tuple[str, ...]) -> str:
    """The INSERT of a job row with these columns (the others are NULL)."""
    return f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# Claim order (docs/jobs.md, "Runs"): priority, retryUntil, after, then insertion order.
_CLAIM_ORDER = "priority, retry_until, after, seq"
_BEST_READY = (
    "SELECT * FROM (SELECT priority, retry_until, after, seq FROM jobs INDEXED BY jobs_ready "
    f"WHERE collection = ? AND type = ? AND status = 'ready' ORDER BY {_CLAIM_ORDER} LIMIT ?)"
)


def _best_ready_union(types: int) -> str:
    return " UNION ALL ".join([_BEST_READY] * types)


# Up to this many types a claim is one statement with a part per type (cheapest when few). With
# more, one fixed statement first finds each type's best ready job (an index probe per type,
# skipping types with none) and keeps the types whose best job is among the `limit` best of
# those: only they can hold one of the `limit` jobs to claim (each other type has `limit`
# better jobs elsewhere). The claim statement then has a part per contender only.
_FEW_TYPES = 8
_CONTENDERS = (
    "SELECT j.type FROM json_each(?) AS wanted JOIN jobs AS j ON j.seq = ("
    "SELECT seq FROM jobs INDEXED BY jobs_ready WHERE collection = ? AND type = wanted.value "
    f"AND status = 'ready' ORDER BY {_CLAIM_ORDER} LIMIT 1) "
    f"ORDER BY j.priority, j.retry_until, j.after, j.seq LIMIT ?"
)


_TOTAL = "coalesce(nullif(json_extract(progress, '$.total'), 0), 1)"
_QUALIFIED = ", ".join(f"jobs.{column}" for _, column, _ in cols.FIELDS)


class SqliteTransaction(SqliteWorkers):
    """Implements `storage.port.Transaction`; collects the change feed rows it causes."""

    def __init__(self, conn: sqlite3.Connection, collection: str) -> None:
        self._conn = conn
        self.collection = collection
        # Feed rows to write; op "inserts" is a row standing for several inserted jobs.
        self.changes: list[PendingRow] = []

    # -- reads -------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[JobDoc]:
        return self.find(ids=ids)

    def get_antecedents(self, ids: Sequence[str]) -> list[JobDoc]:
        return self.find(ids=ids)  # SQLite's write transactions never overlap

    def ready_types(self, types: Collection[str]) -> set[str]:
        sql = "SELECT 1 FROM jobs WHERE collection = ? AND status = 'ready' AND type = ? LIMIT 1"
        execute = self._conn.execute
        return {t for t in types if execute(sql, (self.collection, t)).fetchone() is not None}

    def find(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[JobDoc]:
        if ids is not None and len(ids) > _CHUNK:
            found = [
                doc
                for chunk in iter_chunks(ids, _CHUNK)
                for doc in self.find(ids=chunk, statuses=statuses, types=types)
            ]
            return found[:limit] if limit is not None else found
        where: list[str] = ["collection = ?"]
        args: list[Any] = [self.collection]
        for column, values in (("id", ids), ("type", types)):
            if values is not None:
                values = list(values)
                where.append(f"{column} IN ({marks(len(values))})")
                args.extend(values)
        parts = [(where, args)] if statuses is None else by_status_index(where, args, statuses)
        if not parts:
            return []
        select = f"SELECT {cols.SELECT_LIST}, seq FROM jobs WHERE "
        sql = " UNION ALL ".join(select + " AND ".join(w) for w, _ in parts) + " ORDER BY seq"
        params = [arg for _, a in parts for arg in a]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [cols.row_to_doc(row[:-1]) for row in self._conn.execute(sql, params)]

    def page(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        after: int | None = None,
        limit: int,
        newest_first: bool = False,
    ) -> Page:
        return reads.page(
            self._conn,
            self.collection,
            ids=ids,
            statuses=statuses,
            types=types,
            after=after,
            limit=limit,
            newest_first=newest_first,
        )

    def tally(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        after: TallyCursor | None = None,
        at_most: int | None = None,
    ) -> Tally:
        return reads.tally(
            self._conn,
            self.collection,
            ids=ids,
            statuses=statuses,
            types=types,
            after=after,
            at_most=at_most,
        )

    def log_of(self, ids: Sequence[str]) -> dict[str, list[LogEntry]]:
        logs: dict[str, list[LogEntry]] = {job_id: [] for job_id in ids}
        for chunk in iter_chunks(ids, _CHUNK):
            # First what came with the insert (in the job row), then every later append.
            first = (
                f"SELECT id, log FROM jobs WHERE id IN ({marks(len(chunk))}) AND log IS NOT NULL"
            )
            for job_id, entries in self._conn.execute(first, list(chunk)):
                logs[job_id].extend(cols.log_entries(entries))
            sql = (
                "SELECT job_id, entries FROM job_log "
                f"WHERE job_id IN ({marks(len(chunk))}) ORDER BY n"
            )
            for job_id, entries in self._conn.execute(sql, list(chunk)):
                logs[job_id].extend(cols.log_entries(entries))
        return logs

    def dependents(self, ids: Collection[str]) -> list[JobDoc]:
        found: list[JobDoc] = []
        for chunk in iter_chunks(list(ids), _CHUNK):
            # CROSS JOIN pins the loop order: walk job_deps by antecedent, then jobs by id.
            # (Left to itself the planner may scan the whole collection instead.)
            sql = (
                f"SELECT DISTINCT {_QUALIFIED} FROM job_deps CROSS JOIN jobs "
                "ON jobs.id = job_deps.job_id "
                f"WHERE job_deps.antecedent IN ({marks(len(chunk))}) AND jobs.collection = ? "
                "ORDER BY jobs.seq"
            )
            rows = self._conn.execute(sql, [*chunk, self.collection])
            found.extend(cols.row_to_doc(r) for r in rows)
        return found

    def due(self, now: int, ids: Sequence[str] | None, force: bool) -> list[str]:
        sql = "SELECT id FROM jobs WHERE collection = ? AND status = 'waiting' AND after <= ?"
        args: list[Any] = [self.collection, now]
        if not force:
            sql += f" AND depends = '{cols.NO_DEPENDS}'"
        if ids is None:
            return [row[0] for row in self._conn.execute(sql + " ORDER BY seq", args)]
        due: list[str] = []
        for chunk in iter_chunks(ids, _CHUNK):
            query = f"{sql} AND id IN ({marks(len(chunk))}) ORDER BY seq"
            due.extend(row[0] for row in self._conn.execute(query, [*args, *chunk]))
        return due

    def expired(self, now: int) -> list[JobDoc]:
        sql = (
            f"SELECT {cols.SELECT_LIST} FROM jobs WHERE collection = ? AND status = 'running' "
            "AND expires_after < ? ORDER BY seq"
        )
        return [cols.row_to_doc(row) for row in self._conn.execute(sql, (self.collection, now))]

    def next_wakeup(self) -> int | None:
        due = self._conn.execute(
            "SELECT min(after) FROM jobs WHERE collection = ? AND status = 'waiting' "
            f"AND depends = '{cols.NO_DEPENDS}'",
            (self.collection,),
        ).fetchone()[0]
        expiry = self._conn.execute(
            "SELECT min(expires_after) FROM jobs WHERE collection = ? AND status = 'running' "
            "AND expires_after IS NOT NULL",
            (self.collection,),
        ).fetchone()[0]
        # A run expires once now > expiresAfter, so its wake-up is one ms later.
        times = [t for t in (due, None if expiry is None else expiry + 1) if t is not None]
        return min(times) if times else None

    # -- writes ------------------------------------------------------------------------------

    def insert(self, docs: Sequence[JobDoc]) -> None:
        for columns, rows in cols.insert_rows(self.collection, docs):
            if len(rows) == 1:
                self._conn.execute(_job_insert(columns), rows[0])
            else:
                self._conn.executemany(_job_insert(columns), rows)
        deps = [(a, d["_id"]) for d in docs for a in d["depends"]]
        if deps:
            self._conn.executemany(
                "INSERT OR IGNORE INTO job_deps (antecedent, job_id) VALUES (?, ?)", deps
            )
        self._inserted([(d["type"], d["status"], d["_id"]) for d in docs])

    def insert_ready(
        self,
        jobs: Sequence[UsualJob],
        ids: Sequence[str],
        now: int,
        entries: Sequence[LogEntry],
    ) -> None:
        rows = cols.ready_rows(self.collection, jobs, ids, now, entries)
        self._conn.executemany(_job_insert(cols.USUAL_COLUMNS), rows)
        self._inserted([(row[2], "ready", row[1]) for row in rows])

    def _inserted(self, jobs: Sequence[tuple[str, str, str]]) -> None:
        self.changes += inserted_rows(self.collection, jobs)

    def update(
        self,
        ids: Sequence[str],
        fields: Mapping[str, Any],
        guard: Guard = NO_GUARD,
        log: Sequence[LogEntry] = (),
    ) -> list[str]:
        if len(ids) > _CHUNK:
            return [
                job_id
                for chunk in iter_chunks(ids, _CHUNK)
                for job_id in self.update(chunk, fields, guard, log)
            ]
        sets = ", ".join(f"{cols.COLUMN_OF[key]} = ?" for key in fields)
        args: list[Any] = [cols.encode(key, value) for key, value in fields.items()]
        where = [f"collection = ? AND id IN ({marks(len(ids))})"]
        args += [self.collection, *ids]
        if guard.statuses is not None:
            where.append(f"status IN ({marks(len(guard.statuses))})")
            args.extend(guard.statuses)
        if guard.run_id is not None:
            where.append("run_id = ?")
            args.append(guard.run_id)
        if guard.due_by is not None:
            where.append("after <= ?")
            args.append(guard.due_by)
        if guard.no_depends:
            where.append(f"depends = '{cols.NO_DEPENDS}'")
        sql = f"UPDATE jobs SET {sets} WHERE {' AND '.join(where)} RETURNING id, type, status"
        written = self._conn.execute(sql, args).fetchall()
        done = [row[0] for row in written]
        if "depends" in fields and done:
            self._replace_deps(done, fields["depends"])
        if log and done:
            self._conn.executemany(_LOG_INSERT, [cols.log_row(i, log) for i in done])
        changed = ",".join(fields)
        self.changes.extend((self.collection, i, "update", t, s, changed) for i, t, s in written)
        return done

    def complete(
        self, job_ids: Sequence[str], run_id: str, result: Any, now: int, log: LogEntry
    ) -> list[tuple[str, int]]:
        # One statement for the whole batch: compare-and-set on the run, progress filled up
        # to its total. The job keeps the runId of the run that completed it, as the original
        # does. Returns (id, repeats) of each job completed.
        sql = (
            "UPDATE jobs SET status = 'completed', result = ?, updated = ?, "
            f"progress = json_object('completed', {_TOTAL}, 'total', {_TOTAL}, 'percent', 100) "
            f"WHERE collection = ? AND id IN ({marks(len(job_ids))}) AND status = 'running' "
            "AND run_id = ? RETURNING id, type, repeats"
        )
        args = [cols.encode("result", result), now, self.collection, *job_ids, run_id]
        rows = self._conn.execute(sql, args).fetchall()
        if not rows:
            return []
        entry = cols.log_row("", [log])[1]
        self._conn.executemany(_LOG_INSERT, [(job_id, entry) for job_id, _, _ in rows])
        fields = "status,result,updated,progress"
        self.changes.extend(
            (self.collection, job_id, "update", t, "completed", fields) for job_id, t, _ in rows
        )
        return [(job_id, repeats) for job_id, _, repeats in rows]

    completes_and_claims_at_once = False  # statements cost microseconds: no round trips

    def complete_and_claim(
        self, runs: Sequence[RunEnd], now: int, claim: SharedClaim | None
    ) -> None:
        return None

    def _replace_deps(self, job_ids: list[str], depends: list[str]) -> None:
        self._conn.executemany("DELETE FROM job_deps WHERE job_id = ?", [(i,) for i in job_ids])
        self._conn.executemany(
            "INSERT OR IGNORE INTO job_deps (antecedent, job_id) VALUES (?, ?)",
            [(a, i) for i in job_ids for a in depends],
        )

    def claim(
        self,
        types: Sequence[str],
        limit: int,
        fields: Mapping[str, Any],
        log: LogEntry,
        worker: str | None = None,
    ) -> list[JobDoc]:
        # One statement: per type, the best `limit` ready jobs straight off the partial index
        # (no sort, no scan); the best `limit` of those are moved to running.
        unique = list(dict.fromkeys(types))  # a type listed twice must not count twice
        if len(unique) > _FEW_TYPES:
            found = self._conn.execute(_CONTENDERS, (json.dumps(unique), self.collection, limit))
            unique = [row[0] for row in found]
        if not unique:
            return []
        sets = ", ".join(f"{cols.COLUMN_OF[key]} = ?" for key in fields)
        sql = (
            f"UPDATE jobs SET {sets}, worker_id = ?, retries = retries - 1, retried = retried + 1 "
            f"WHERE seq IN (SELECT seq FROM ({_best_ready_union(len(unique))}) "
            f"ORDER BY {_CLAIM_ORDER} LIMIT ?) "
            f"RETURNING priority, retry_until, after, seq, {cols.SELECT_LIST}"
        )
        args: list[Any] = [cols.encode(key, value) for key, value in fields.items()]
        args.append(worker)
        for job_type in unique:
            args += [self.collection, job_type, limit]
        rows = sorted(self._conn.execute(sql, [*args, limit]), key=lambda row: row[:4])
        docs = [cols.row_to_doc(row[4:]) for row in rows]
        if not docs:
            return []
        entry = cols.log_row("", [log])[1]  # the same entry for every job of the claim
        self._conn.executemany(_LOG_INSERT, [(d["_id"], entry) for d in docs])
        changed = ",".join((*fields, "retries", "retried"))
        self.changes.extend(
            (self.collection, d["_id"], "update", d["type"], d["status"], changed) for d in docs
        )
        return docs

    def remove(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        removed: list[tuple[str, str]] = []
        for chunk in iter_chunks(ids, _CHUNK):
            sql = (
                f"DELETE FROM jobs WHERE collection = ? AND id IN ({marks(len(chunk))}) "
                f"AND status IN ({marks(len(statuses))}) RETURNING id, type"
            )
            removed += self._conn.execute(sql, [self.collection, *chunk, *statuses]).fetchall()
        gone = [(job_id,) for job_id, _ in removed]
        self._conn.executemany("DELETE FROM job_log WHERE job_id = ?", gone)
        self._conn.executemany("DELETE FROM job_deps WHERE job_id = ?", gone)
        self.changes.extend((self.collection, i, "remove", t, None, "") for i, t in removed)
        return [job_id for job_id, _ in removed]
