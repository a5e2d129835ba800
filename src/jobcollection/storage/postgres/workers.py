"""The worker registry in PostgreSQL: the `workers` table and `jobs.worker_id`.

Statements whose outcome matters return rows (RETURNING) rather than a row count, so that
they work unchanged in psycopg's pipeline mode.
Running jobs are found through `jobs_claimant` (collection, worker_id) WHERE status =
'running', so none of this costs more than a walk over the collection's running jobs.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from .. import _columns as cols

if TYPE_CHECKING:
    from ...core.workers import WorkerRecord

_COLUMNS = (
    "id, kind, status, types, started, last_seen, lost_after, host, pid, concurrency, "
    "address, user_id, username"
)
_PUT = (
    f"INSERT INTO workers (collection, {_COLUMNS}, expires) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (collection, id) DO UPDATE SET "
    + ", ".join(
        f"{name} = excluded.{name}"
        for name in (*_COLUMNS.replace(" ", "").split(",")[1:], "expires")
    )
)
_BEAT = (
    "UPDATE workers SET last_seen = %s, expires = %s + lost_after, status = 'active' "
    "WHERE collection = %s AND id = ANY(%s::text[]) RETURNING id"
)
_RUNNING_COUNTS = (
    "SELECT worker_id, count(*) FROM jobs WHERE collection = %s AND status = 'running' "
    "AND worker_id IS NOT NULL GROUP BY worker_id"
)
_ALL = f"SELECT {_COLUMNS} FROM workers WHERE collection = %s ORDER BY started, id"
_LAPSED = f"SELECT {_COLUMNS} FROM workers WHERE collection = %s AND expires < %s ORDER BY expires"
_DEADLINE = "SELECT min(expires) FROM workers WHERE collection = %s AND status <> 'lost'"
_RUNNING_OF = (
    f"SELECT worker_id, {cols.SELECT_LIST} FROM jobs WHERE collection = %s "
    "AND status = 'running' AND worker_id = ANY(%s::text[]) ORDER BY seq"
)
_NO_RECORD = (
    "NOT EXISTS (SELECT 1 FROM workers AS w WHERE w.collection = jobs.collection "
    "AND w.id = jobs.worker_id"
)
_ORPHANS = (
    f"SELECT {cols.SELECT_LIST} FROM jobs WHERE collection = %s AND status = 'running' "
    f"AND worker_id IS NOT NULL AND {_NO_RECORD}) ORDER BY seq"
)
_ADOPT = (
    "UPDATE jobs SET worker_id = %s WHERE collection = %s AND id = %s AND status = 'running' "
    f"AND worker_id IS NOT NULL AND worker_id <> %s AND {_NO_RECORD} AND w.status = 'active') "
    "RETURNING 1"
)
_MOVE = (
    "UPDATE jobs SET worker_id = %s WHERE collection = %s AND status = 'running' "
    "AND worker_id = %s RETURNING 1"
)


def _record(row: Sequence[Any], running: int = 0) -> WorkerRecord:
    from ...core.workers import WorkerRecord  # only a program that manages workers needs it

    wid, kind, status, types, started, last_seen, lost_after, *rest = row
    host, pid, concurrency, address, user_id, username = rest
    return WorkerRecord(
        id=wid,
        kind=kind,
        status=status,
        types=tuple(json.loads(types)),
        started=started,
        last_seen=last_seen,
        lost_after=lost_after,
        host=host,
        pid=pid,
        concurrency=concurrency,
        address=address,
        user_id=user_id,
        username=username,
        running=running,
    )


class PgWorkers:
    """The registry part of `PgTransaction` (the `Transaction` port's worker methods)."""

    collection: str

    @property
    @abstractmethod
    def _cur(self) -> psycopg.Cursor[Any]:
        """The transaction's cursor (PgTransaction's)."""

    def put_worker(self, record: WorkerRecord) -> None:
        self._cur.execute(
            _PUT,
            (
                self.collection,
                record.id,
                record.kind,
                record.status,
                json.dumps(list(record.types)),
                record.started,
                record.last_seen,
                record.lost_after,
                record.host,
                record.pid,
                record.concurrency,
                record.address,
                record.user_id,
                record.username,
                record.expires,
            ),
        )

    def beat_workers(self, ids: Sequence[str], now: int) -> list[str]:
        if not ids:
            return []
        rows = self._cur.execute(_BEAT, [now, now, self.collection, list(ids)]).fetchall()
        return [row[0] for row in rows]

    def set_worker_status(self, worker_id: str, status: str) -> bool:
        sql = "UPDATE workers SET status = %s WHERE collection = %s AND id = %s RETURNING 1"
        return bool(self._cur.execute(sql, (status, self.collection, worker_id)).fetchall())

    def remove_worker(self, worker_id: str) -> bool:
        sql = "DELETE FROM workers WHERE collection = %s AND id = %s RETURNING 1"
        return bool(self._cur.execute(sql, (self.collection, worker_id)).fetchall())

    def workers(self) -> list[WorkerRecord]:
        counts = self._cur.execute(_RUNNING_COUNTS, (self.collection,)).fetchall()
        running = {worker_id: int(n) for worker_id, n in counts}
        rows = self._cur.execute(_ALL, (self.collection,)).fetchall()
        return [_record(row, running.get(row[0], 0)) for row in rows]

    def lapsed_workers(self, now: int) -> list[WorkerRecord]:
        rows = self._cur.execute(_LAPSED, (self.collection, now)).fetchall()
        return [_record(row) for row in rows]

    def next_worker_deadline(self) -> int | None:
        row = self._cur.execute(_DEADLINE, (self.collection,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def running_of(self, worker_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        if not worker_ids:
            return []
        rows = self._cur.execute(_RUNNING_OF, [self.collection, list(worker_ids)]).fetchall()
        return [(row[0], cols.row_to_doc(row[1:])) for row in rows]

    def orphans(self) -> list[dict[str, Any]]:
        rows = self._cur.execute(_ORPHANS, (self.collection,)).fetchall()
        return [cols.row_to_doc(row) for row in rows]

    def adopt(self, job_id: str, worker_id: str) -> bool:
        args = (worker_id, self.collection, job_id, worker_id)
        return bool(self._cur.execute(_ADOPT, args).fetchall())

    def move_running(self, from_id: str, to_id: str) -> int:
        return len(self._cur.execute(_MOVE, (to_id, self.collection, from_id)).fetchall())
