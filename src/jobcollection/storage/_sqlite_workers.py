"""The worker registry in SQL (schema 5): the `workers` table and `jobs.worker_id`.

Running jobs are found through the status index (`jobs_status`, every status but ready), so
no query here costs more than a walk over the collection's running jobs, however many jobs
wait or are done; none of it touches the claim path.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _columns as cols

if TYPE_CHECKING:
    from ..core.workers import WorkerRecord

_WORKER_COLUMNS = (
    "id, kind, status, types, started, last_seen, lost_after, host, pid, concurrency, "
    "address, user_id, username"
)
_RUNNING_OF = (
    f"SELECT worker_id, {cols.SELECT_LIST} FROM jobs WHERE collection = ? "
    "AND status = 'running' AND status != 'ready' AND worker_id IN ({marks}) ORDER BY seq"
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _record(row: Sequence[Any], running: int = 0) -> WorkerRecord:
    # Imported here: a program that only reads jobs (the CLI's `ls`) need not load the
    # worker records' validation.
    from ..core.workers import WorkerRecord

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


class SqliteWorkers:
    """The registry part of `SqliteTransaction` (the `Transaction` port's worker methods)."""

    _conn: sqlite3.Connection
    collection: str

    def put_worker(self, record: WorkerRecord) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO workers (collection, {_WORKER_COLUMNS}, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        rows = self._conn.execute(
            "UPDATE workers SET last_seen = ?, expires = ? + lost_after, status = 'active' "
            f"WHERE collection = ? AND id IN ({_marks(len(ids))}) RETURNING id",
            [now, now, self.collection, *ids],
        )
        return [row[0] for row in rows]

    def set_worker_status(self, worker_id: str, status: str) -> bool:
        cursor = self._conn.execute(
            "UPDATE workers SET status = ? WHERE collection = ? AND id = ?",
            (status, self.collection, worker_id),
        )
        return cursor.rowcount > 0

    def remove_worker(self, worker_id: str) -> bool:
        cursor = self._conn.execute(
            "DELETE FROM workers WHERE collection = ? AND id = ?", (self.collection, worker_id)
        )
        return cursor.rowcount > 0

    def workers(self) -> list[WorkerRecord]:
        running = dict(
            self._conn.execute(
                "SELECT worker_id, count(*) FROM jobs WHERE collection = ? AND status = 'running' "
                "AND status != 'ready' AND worker_id IS NOT NULL GROUP BY worker_id",
                (self.collection,),
            ).fetchall()
        )
        rows = self._conn.execute(
            f"SELECT {_WORKER_COLUMNS} FROM workers WHERE collection = ? ORDER BY started, id",
            (self.collection,),
        )
        return [_record(row, running.get(row[0], 0)) for row in rows]

    def lapsed_workers(self, now: int) -> list[WorkerRecord]:
        rows = self._conn.execute(
            f"SELECT {_WORKER_COLUMNS} FROM workers WHERE collection = ? AND expires < ? "
            "ORDER BY expires",
            (self.collection, now),
        )
        return [_record(row) for row in rows]

    def next_worker_deadline(self) -> int | None:
        row = self._conn.execute(
            "SELECT min(expires) FROM workers WHERE collection = ? AND status != 'lost'",
            (self.collection,),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def running_of(self, worker_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        if not worker_ids:
            return []
        rows = self._conn.execute(
            _RUNNING_OF.format(marks=_marks(len(worker_ids))),
            [self.collection, *worker_ids],
        )
        return [(row[0], cols.row_to_doc(row[1:])) for row in rows]

    def orphans(self) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            f"SELECT {cols.SELECT_LIST} FROM jobs WHERE collection = ? AND status = 'running' "
            "AND status != 'ready' AND worker_id IS NOT NULL AND NOT EXISTS ("
            "SELECT 1 FROM workers WHERE workers.collection = jobs.collection "
            "AND workers.id = jobs.worker_id) ORDER BY seq",
            (self.collection,),
        )
        return [cols.row_to_doc(row) for row in rows]

    def adopt(self, job_id: str, worker_id: str) -> bool:
        cursor = self._conn.execute(
            "UPDATE jobs SET worker_id = ? WHERE collection = ? AND id = ? AND status = 'running' "
            "AND worker_id IS NOT NULL AND worker_id != ? AND NOT EXISTS ("
            "SELECT 1 FROM workers WHERE workers.collection = jobs.collection "
            "AND workers.id = jobs.worker_id AND workers.status = 'active')",
            (worker_id, self.collection, job_id, worker_id),
        )
        return cursor.rowcount > 0

    def move_running(self, from_id: str, to_id: str) -> int:
        cursor = self._conn.execute(
            "UPDATE jobs SET worker_id = ? WHERE collection = ? AND status = 'running' "
            "AND status != 'ready' AND worker_id = ?",
            (to_id, self.collection, from_id),
        )
        return cursor.rowcount
