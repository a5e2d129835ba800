"""One PostgreSQL transaction on one collection: the `Transaction` port in SQL."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import psycopg

from ...core.usual_job import UsualJob
from .. import _columns as cols
from .._feed_rows import PendingRow, inserted_rows
from ..port import (
    NO_GUARD,
    Guard,
    JobDoc,
    LogEntry,
    Page,
    RunEnd,
    SharedClaim,
    Tally,
    TallyCursor,
)
from . import feed, reads
from . import queries as q
from .workers import PgWorkers

_COPY_FROM = 8  # rows from which an insert goes by COPY


class Opener(Protocol):
    """Where a lazily opened write transaction gets its connection (see `PgStorage.write`)."""

    def begin(self) -> psycopg.Cursor[Any]:
        """A cursor on a pooled connection in a new transaction (BEGIN sent)."""
        ...

    def alone(self, sql: str, args: Sequence[Any]) -> tuple[Any, ...]:
        """Run one statement as a transaction of its own (autocommit); its first row."""
        ...

    def alone_once(self, sql: str, args: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement as a transaction of its own, never twice (its rows)."""
        ...

    def notification_due(self) -> bool:
        """Whether a commit now should notify the other processes (`notify.Notifier.claim`)."""
        ...


class PgTransaction(PgWorkers):
    """Implements `storage.port.Transaction`; collects the change-feed rows it causes (written
    at commit, see `feed.py`).

    A write transaction opens lazily (`opener`): BEGIN goes out with the first statement, and
    a transaction that only inserts one job sends nothing until `commit`, which then inserts
    it with its feed row and notification in one statement (one round trip, as a lone
    autocommit INSERT: the usual `save`)."""

    def __init__(
        self, cur: psycopg.Cursor[Any] | None, collection: str, opener: Opener | None = None
    ) -> None:
        self._open_cur = cur
        self._opener = opener
        self._deferred: tuple[tuple[str, ...], tuple[Any, ...]] | None = None  # a job row
        self.collection = collection
        self.changes: list[PendingRow] = []
        # A statement that was a transaction of its own (`complete_and_claim`): the last feed
        # row it wrote, and whether it left its notification owed.
        self.committed_seq = 0
        self.owes_notification = False

    @property
    def _cur(self) -> psycopg.Cursor[Any]:
        """The cursor, in the transaction (begun now if it was not, the deferred row sent)."""
        cur = self._open_cur
        if cur is None:
            assert self._opener is not None
            cur = self._open_cur = self._opener.begin()
            if self._deferred is not None:
                columns, row = self._deferred
                self._deferred = None
                cur.execute(q.job_insert(columns), row)
        return cur

    def commit(self, notify: bool = True) -> int:
        """Record the feed rows (with the notification unless not `notify`) and commit; the
        last feed row's sequence number (0: none)."""
        cur = self._open_cur
        if cur is None:  # nothing sent yet
            if self._deferred is None:
                return self.committed_seq  # nothing (more) written: nothing to commit
            assert self._opener is not None
            columns, row = self._deferred
            (change,) = self.changes  # a lone insert's (see `_insert_rows`)
            found = self._opener.alone(q.job_insert_recorded(columns, notify), [*row, *change])
            return max(feed.last_seq_of(found, self.changes), self.committed_seq)
        seq = feed.record(cur, self.changes, notify) if self.changes else 0
        cur.execute("COMMIT")
        return max(seq, self.committed_seq)

    def _rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._cur.execute(sql, args).fetchall()

    # -- reads -------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[JobDoc]:
        return self.find(ids=ids)

    def get_antecedents(self, ids: Sequence[str]) -> list[JobDoc]:
        # FOR SHARE: another process' update or delete of an antecedent (its completion,
        # cancel, removal) waits for this transaction, then finds the dependent it stored;
        # one committed first is read here (READ COMMITTED reads the latest row it locks).
        # The rows are locked in id order, the order a batch completion's UPDATE takes them
        # in (off the id index), so the two never wait for each other in a cycle.
        rows = self._rows(q.LOCK_ANTECEDENTS, [self.collection, list(ids)])
        return [cols.row_to_doc(row[:-1]) for row in sorted(rows, key=lambda row: row[-1])]

    def ready_types(self, types: Collection[str]) -> set[str]:
        return {row[0] for row in self._rows(q.READY_TYPES, [list(types), self.collection])}

    def find(
        self,
        *,
        ids: Sequence[str] | None = None,
        statuses: Collection[str] | None = None,
        types: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[JobDoc]:
        args: list[Any] = [self.collection]
        for values in (ids, statuses, types):
            if values is not None:
                args.append(list(values))
        if limit is not None:
            args.append(limit)
        sql = q.find(ids is not None, statuses is not None, types is not None, limit is not None)
        return [cols.row_to_doc(row) for row in self._rows(sql, args)]

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
            self._cur,
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
            self._cur,
            self.collection,
            ids=ids,
            statuses=statuses,
            types=types,
            after=after,
            at_most=at_most,
        )

    def log_of(self, ids: Sequence[str]) -> dict[str, list[LogEntry]]:
        logs: dict[str, list[LogEntry]] = {job_id: [] for job_id in ids}
        if not logs:
            return logs
        wanted = list(logs)
        # First what came with the insert (in the job row), then every later append.
        for job_id, entries in self._rows(q.FIRST_LOGS, [wanted]):
            logs[job_id].extend(cols.log_entries(entries))
        for job_id, entries in self._rows(q.LATER_LOGS, [wanted]):
            logs[job_id].extend(cols.log_entries(entries))
        return logs

    def dependents(self, ids: Collection[str]) -> list[JobDoc]:
        # (Always a statement of its own, after the completion: a dependent saved by another
        # process holds its antecedent FOR SHARE, so the completion's UPDATE waits for that
        # save to commit; only a statement started after the wait sees its job_deps row.)
        rows = self._rows(q.DEPENDENTS, [self.collection, list(ids)])
        return [cols.row_to_doc(row) for row in rows]

    def due(self, now: int, ids: Sequence[str] | None, force: bool) -> list[str]:
        sql, args = q.DUE, [self.collection, now]
        if not force:
            sql += f" AND depends = '{cols.NO_DEPENDS}'"
        if ids is not None:
            sql += " AND id = ANY(%s::text[])"
            args.append(list(ids))
        return [row[0] for row in self._rows(sql + " ORDER BY seq", args)]

    def expired(self, now: int) -> list[JobDoc]:
        return [cols.row_to_doc(row) for row in self._rows(q.EXPIRED, [self.collection, now])]

    def next_wakeup(self) -> int | None:
        due, expiry = self._rows(q.NEXT_WAKEUP, [self.collection, self.collection])[0]
        # A run expires once now > expiresAfter, so its wake-up is one ms later.
        times = [t for t in (due, None if expiry is None else expiry + 1) if t is not None]
        return int(min(times)) if times else None

    # -- writes ------------------------------------------------------------------------------

    def insert(self, docs: Sequence[JobDoc]) -> None:
        for columns, rows in cols.insert_rows(self.collection, docs):
            self._insert_rows(columns, rows)
        deps = [(a, d["_id"]) for d in docs for a in d["depends"]]
        if deps:
            self._cur.execute(q.DEPS_ADD, [[a for a, _ in deps], [j for _, j in deps]])
        self._inserted([(d["type"], d["status"], d["_id"]) for d in docs])

    def insert_ready(
        self,
        jobs: Sequence[UsualJob],
        ids: Sequence[str],
        now: int,
        entries: Sequence[LogEntry],
    ) -> None:
        rows = cols.ready_rows(self.collection, jobs, ids, now, entries)
        if not rows:
            return
        self._insert_rows(cols.USUAL_COLUMNS, rows)
        self._inserted([(row[2], "ready", row[1]) for row in rows])

    def _insert_rows(self, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Many rows by COPY; a few, or a batch with a non-integer value in an integer
        column (COPY would refuse it where an INSERT converts it), by INSERT."""
        if len(rows) >= _COPY_FROM:
            positions = q.integer_positions(columns)
            if all(row[n] is None or type(row[n]) is int for row in rows for n in positions):
                with self._cur.copy(q.jobs_copy(columns)) as copy:
                    for row in rows:
                        copy.write_row(row)
                return
        if len(rows) == 1:
            if self._open_cur is None and self._deferred is None and not self.changes:
                self._deferred = (columns, rows[0])  # sent with the commit, or the next one
                return
            self._cur.execute(q.job_insert(columns), rows[0])
        else:
            self._cur.executemany(q.job_insert(columns), rows)

    def _inserted(self, jobs: Sequence[tuple[str, str, str]]) -> None:
        self.changes += inserted_rows(self.collection, jobs)

    def update(
        self,
        ids: Sequence[str],
        fields: Mapping[str, Any],
        guard: Guard = NO_GUARD,
        log: Sequence[LogEntry] = (),
    ) -> list[str]:
        if not ids:
            return []
        args: list[Any] = [cols.encode(key, value) for key, value in fields.items()]
        args += [self.collection, list(ids)]
        if guard.statuses is not None:
            args.append(list(guard.statuses))
        if guard.run_id is not None:
            args.append(guard.run_id)
        if guard.due_by is not None:
            args.append(guard.due_by)
        sql = q.update(
            tuple(fields),
            guard.statuses is not None,
            guard.run_id is not None,
            guard.due_by is not None,
            guard.no_depends,
        )
        rows = _in_insertion_order(self._rows(sql, args))
        done = [row[0] for row in rows]
        if "depends" in fields and done:
            self._replace_deps(done, fields["depends"])
        if log and done:
            self._cur.execute(q.LOG_APPEND, [done, cols.log_text(log)])
        changed = ",".join(fields)
        self.changes.extend((self.collection, i, "update", t, s, changed) for i, t, s, _ in rows)
        return done

    def _replace_deps(self, job_ids: list[str], depends: list[str]) -> None:
        self._cur.execute(q.DEPS_DROP, [job_ids])
        pairs = [(a, i) for i in job_ids for a in depends]
        if pairs:
            self._cur.execute(q.DEPS_ADD, [[a for a, _ in pairs], [i for _, i in pairs]])

    def complete(
        self, job_ids: Sequence[str], run_id: str, result: Any, now: int, log: LogEntry
    ) -> list[tuple[str, int]]:
        args = [cols.encode("result", result), now, self.collection, list(job_ids), run_id]
        args.append(cols.log_text([log]))
        rows = _in_insertion_order(self._rows(q.COMPLETE, args))
        if not rows:
            return []
        self.changes.extend(
            (self.collection, job_id, "update", t, "completed", _DONE_FIELDS)
            for job_id, t, _, _ in rows
        )
        return [(job_id, int(repeats)) for job_id, _, repeats, _ in rows]

    def claim(
        self,
        types: Sequence[str],
        limit: int,
        fields: Mapping[str, Any],
        log: LogEntry,
        worker: str | None = None,
    ) -> list[JobDoc]:
        unique = list(dict.fromkeys(types))  # a type listed twice must not count twice
        if not unique or limit <= 0:
            return []
        args: list[Any] = [cols.encode(key, value) for key, value in fields.items()]
        args += [worker, unique, self.collection, limit, limit, cols.log_text([log])]
        rows = sorted(self._rows(q.claim(tuple(fields)), args), key=lambda row: row[:4])
        docs = [cols.row_to_doc(row[4:]) for row in rows]
        if not docs:
            return []
        changed = ",".join((*fields, "retries", "retried"))
        self.changes.extend(
            (self.collection, d["_id"], "update", d["type"], d["status"], changed) for d in docs
        )
        return docs

    completes_and_claims_at_once = True

    def complete_and_claim(
        self, runs: Sequence[RunEnd], now: int, claim: SharedClaim | None
    ) -> tuple[list[str], list[list[JobDoc]]]:
        # One statement (`q.complete_and_claim`). First in a transaction, it is a transaction
        # of its own, with its feed rows: one round trip and one commit, where `complete`,
        # `dependents`, `claim` and the commit cost five. (Not retried on a connection lost
        # under it: it may have committed; the engine gives such claims back, see _claims.)
        runs = sorted(runs, key=lambda run: run.job_id)  # rows locked in id order
        texts: dict[str, int] = {}  # log entry text -> its position (1-based) in `logs`
        done_logs = [_position(texts, cols.log_text([run.log])) for run in runs]
        args: dict[str, Any] = {
            "now": now,
            "collection": self.collection,
            "ids": [run.job_id for run in runs],
            "runs": [run.run_id for run in runs],
            "results": [cols.encode("result", run.result) for run in runs],
            "done_logs": done_logs,
            "done_fields": _DONE_FIELDS,
        }
        fields: tuple[str, ...] = ()
        limits = claim.limits if claim is not None and claim.limits else [0]
        bounds = list(itertools.accumulate(max(limit, 0) for limit in limits))
        if claim is None or not claim.types or bounds[-1] == 0:
            args.update(types=[], limit=0, run_ids=[], bounds=[], claim_logs=[], worker=None)
            args["claim_fields"] = ""
        else:
            fields = tuple(key for key in claim.fields if key != "runId")
            args.update({f"f_{key}": cols.encode(key, claim.fields[key]) for key in fields})
            args.update(
                types=list(dict.fromkeys(claim.types)),
                limit=bounds[-1],
                run_ids=list(claim.run_ids),
                bounds=bounds,
                claim_logs=[_position(texts, cols.log_text([log])) for log in claim.logs],
                worker=claim.worker,
                claim_fields=",".join((*claim.fields, "retries", "retried")),
            )
        args["logs"] = list(texts)
        alone = self._open_cur is None and self._deferred is None and not self.changes
        if alone:
            assert self._opener is not None
            notify = self._opener.notification_due()
            sql = q.complete_and_claim(fields, True, notify, bool(runs), bool(args["limit"]))
            rows = self._opener.alone_once(sql, args)
        else:  # inside a transaction: its feed rows are written at commit
            notify = False
            sql = q.complete_and_claim(fields, False, False, bool(runs), bool(args["limit"]))
            rows = self._cur.execute(sql, args).fetchall()
        head, claimed = rows[0], sorted((r for r in rows if r[4] is not None), key=_claim_order)
        done_ids: list[str] = list(head[0] or ())
        callers: list[list[JobDoc]] = [[] for _ in claim.limits] if claim is not None else []
        bounds = args["bounds"]
        for row in claimed:  # row n goes to the first caller whose bound is n or more
            callers[bisect.bisect_left(bounds, row[4])].append(cols.row_to_doc(row[5:]))
        if alone:
            written = len(done_ids) + len(claimed)
            if written:
                self.committed_seq = (int(head[2]) << q.ORDINAL_BITS) + written
                self.owes_notification = not notify
        else:
            done = zip(done_ids, head[1] or (), strict=True)
            self.changes += [
                (self.collection, i, "update", t, "completed", _DONE_FIELDS) for i, t in done
            ]
            self.changes += [
                (self.collection, r[5], "update", r[6], r[7], args["claim_fields"]) for r in claimed
            ]
        return done_ids, callers

    def remove(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        if not ids:
            return []
        removed = _in_insertion_order(
            self._rows(q.REMOVE, [self.collection, list(ids), list(statuses)])
        )
        gone = [row[0] for row in removed]
        if gone:
            self._cur.execute(q.LOGS_DROP, [gone])
            self._cur.execute(q.DEPS_DROP, [gone])
        self.changes.extend((self.collection, i, "remove", t, None, "") for i, t, _ in removed)
        return gone


_DONE_FIELDS = "status,result,updated,progress"


def _position(positions: dict[str, int], text: str) -> int:
    """The 1-based position of `text` among the distinct texts seen so far (added if new)."""
    return positions.setdefault(text, len(positions) + 1)


def _claim_order(row: tuple[Any, ...]) -> int:
    return int(row[4])


def _in_insertion_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """RETURNING rows (their last column `seq`) in insertion order, whatever order the
    executor wrote them in: what a caller gets, and the order of the feed rows, is stable."""
    return sorted(rows, key=lambda row: row[-1])
