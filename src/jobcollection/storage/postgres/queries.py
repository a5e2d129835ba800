"""Every SQL statement of the PostgreSQL adapter (the schema is in `storage/sql/postgres_*.sql`).

Lists travel as arrays (`= ANY(%s::text[])`), never as chunked IN lists; statements built
from a document's field names are made by the functions at the end and cached.
"""

from __future__ import annotations

import functools
from typing import Final

from .. import _columns as cols

# -- schema and migrations -------------------------------------------------------------------

MIGRATION_LOCK: Final = 0x6A6F62636F6C  # pg_advisory_lock key: "jobcol"
VERSION_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
HAS_VERSION_TABLE: Final = "SELECT to_regclass('schema_version') IS NOT NULL"
VERSION: Final = "SELECT coalesce(max(version), 0) FROM schema_version"
SET_VERSION: Final = "INSERT INTO schema_version (version) VALUES (%s)"
LOCK: Final = "SELECT pg_advisory_lock(%s)"
UNLOCK: Final = "SELECT pg_advisory_unlock(%s)"
USERS_LOCK: Final = "SELECT pg_advisory_xact_lock(%s)"
USERS_LOCK_KEY: Final = 0x6A6F6275736572  # "jobuser": account writes check then insert

# -- the change feed -------------------------------------------------------------------------

CHANNEL: Final = "jobcollection_feed"
ORDINAL_BITS: Final = 24  # feed rows per transaction: fewer than 2**24
# A transaction's feed rows and its one notification, in one statement at commit.
_RECORD_TAIL: Final = (
    "written AS (INSERT INTO changes (seq, collection, job_id, op, type, status, fields) "
    f"SELECT (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) + o, c, j, op, t, s, f "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    "WITH ORDINALITY AS u(c, j, op, t, s, f, o) RETURNING 1) "
    f"SELECT pg_notify('{CHANNEL}', ''), pg_current_xact_id()::text::bigint"
)
RECORD: Final = "WITH " + _RECORD_TAIL
# The same without the notification (one follows, see notify.py).
_QUIET_TAIL: Final = _RECORD_TAIL.replace(f"pg_notify('{CHANNEL}', '')", "NULL")
RECORD_QUIET: Final = "WITH " + _QUIET_TAIL
NOTIFY: Final = f"NOTIFY {CHANNEL}"
# Every row below this is final: written by a transaction that has ended (see feed.py).
_HORIZON: Final = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ORDINAL_BITS})"
CHANGES_SINCE: Final = (
    "SELECT seq, collection, job_id, op, type, status, fields FROM changes "
    f"WHERE seq > %s AND seq < {_HORIZON} ORDER BY seq LIMIT %s"
)
# The watcher's one query per wake-up: the newest row (final or not) and the final rows past
# its cursor (none: one row of NULLs after the newest).
FOLLOW: Final = (
    "SELECT newest.seq, f.* FROM (SELECT max(seq) AS seq FROM changes) AS newest "
    "LEFT JOIN LATERAL (SELECT seq, collection, job_id, op, type, status, fields FROM changes "
    f"WHERE seq > %s AND seq < {_HORIZON} ORDER BY seq LIMIT %s) AS f ON true"
)
LAST_SEQ: Final = f"SELECT max(seq) FROM changes WHERE seq < {_HORIZON}"
HORIZON: Final = f"SELECT {_HORIZON}"
PRUNE: Final = (
    "DELETE FROM changes WHERE seq < (SELECT seq FROM changes ORDER BY seq DESC OFFSET %s LIMIT 1)"
)

COLLECTIONS: Final = "SELECT DISTINCT collection FROM jobs ORDER BY 1"

# -- jobs: reads -----------------------------------------------------------------------------

SELECT_LIST: Final = cols.SELECT_LIST
QUALIFIED: Final = ", ".join(f"j.{column}" for _, column, _ in cols.FIELDS)
READY_TYPES: Final = (
    "SELECT t FROM unnest(%s::text[]) AS t WHERE EXISTS ("
    "SELECT 1 FROM jobs WHERE collection = %s AND type = t AND status = 'ready')"
)
FIRST_LOGS: Final = "SELECT id, log FROM jobs WHERE id = ANY(%s::text[]) AND log IS NOT NULL"
LATER_LOGS: Final = "SELECT job_id, entries FROM job_log WHERE job_id = ANY(%s::text[]) ORDER BY n"
DEPENDENTS: Final = (
    f"SELECT {SELECT_LIST} FROM jobs WHERE collection = %s AND id IN ("
    "SELECT job_id FROM job_deps WHERE antecedent = ANY(%s::text[])) ORDER BY seq"
)
DUE: Final = "SELECT id FROM jobs WHERE collection = %s AND status = 'waiting' AND after <= %s"
EXPIRED: Final = (
    f"SELECT {SELECT_LIST} FROM jobs WHERE collection = %s AND status = 'running' "
    "AND expires_after < %s ORDER BY seq"
)
NEXT_WAKEUP: Final = (
    "SELECT (SELECT min(after) FROM jobs WHERE collection = %s AND status = 'waiting' "
    f"AND depends = '{cols.NO_DEPENDS}'), "
    "(SELECT min(expires_after) FROM jobs WHERE collection = %s AND status = 'running' "
    "AND expires_after IS NOT NULL)"
)

# -- jobs: writes ----------------------------------------------------------------------------

LOG_APPEND: Final = "INSERT INTO job_log (job_id, entries) SELECT unnest(%s::text[]), %s"
LOG_APPEND_EACH: Final = (
    "INSERT INTO job_log (job_id, entries) SELECT * FROM unnest(%s::text[], %s::text[])"
)
# A dependency stored marks its antecedent (`has_dependents`, see postgres_002.sql).
DEPS_ADD: Final = (
    "WITH added AS (INSERT INTO job_deps (antecedent, job_id) "
    "SELECT * FROM unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING RETURNING antecedent) "
    "UPDATE jobs SET has_dependents = true "
    "WHERE id IN (SELECT antecedent FROM added) AND NOT has_dependents"
)
DEPS_DROP: Final = "DELETE FROM job_deps WHERE job_id = ANY(%s::text[])"
LOGS_DROP: Final = "DELETE FROM job_log WHERE job_id = ANY(%s::text[])"
REMOVE: Final = (
    "DELETE FROM jobs WHERE collection = %s AND id = ANY(%s::text[]) "
    "AND status = ANY(%s::text[]) RETURNING id, type, seq"
)
# The progress of a completed run: its total (1 if unknown or 0), completed, 100 percent.
_TOTAL: Final = (
    "CASE WHEN coalesce(progress::json->>'total', '0')::numeric = 0 THEN '1' "
    "ELSE progress::json->>'total' END"
)
# Completion and its log entry in one statement (one round trip): parameters result, now,
# collection, ids, run id, the log entry. (Its dependents are a statement of their own: see tx.)
COMPLETE: Final = (
    "WITH done AS (UPDATE jobs SET status = 'completed', result = %s, updated = %s, "
    f"progress = '{{\"completed\":' || {_TOTAL} || ',\"total\":' || {_TOTAL} "
    "|| ',\"percent\":100}' "
    "WHERE collection = %s AND id = ANY(%s::text[]) AND status = 'running' AND run_id = %s "
    "RETURNING id, type, repeats, seq), "
    "logged AS (INSERT INTO job_log (job_id, entries) SELECT id, %s FROM done) "
    "SELECT id, type, repeats, seq FROM done"
)

# Claim order (docs/jobs.md, "Runs"): priority, retryUntil, after, then insertion order.
CLAIM_ORDER: Final = "priority, retry_until, after, seq"


@functools.cache
def job_insert(columns: tuple[str, ...]) -> str:
    """The INSERT of a job row with these columns (the others are NULL)."""
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({marks})"


@functools.cache
def job_insert_recorded(columns: tuple[str, ...], notify: bool) -> str:
    """One job row, its feed row and the notification in one statement: a transaction of its
    own (autocommit), one round trip. Parameters: the row's values, then the feed row's
    (collection, job id, op, type, status, fields: values, not the arrays of `RECORD`, whose
    dumping cost a lone save a tenth of its time)."""
    marks = ", ".join(["%s"] * len(columns))
    insert = f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({marks})"
    signal = f"pg_notify('{CHANNEL}', '')" if notify else "NULL"
    return (
        f"WITH inserted AS ({insert}), "
        "written AS (INSERT INTO changes (seq, collection, job_id, op, type, status, fields) "
        f"VALUES ((pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) + 1, "
        "%s, %s, %s, %s, %s, %s) RETURNING 1) "
        f"SELECT {signal}, pg_current_xact_id()::text::bigint"
    )


# Columns of `jobs` that are integers (the others an insert writes are text).
_INTEGERS: Final = frozenset(
    {
        "priority", "retry_until", "after", "updated", "created", "expires_after",
        "work_timeout", "retries", "retried", "repeat_retries", "retry_wait", "repeats",
        "repeated", "repeat_until",
    }
)  # fmt: skip


@functools.cache
def integer_positions(columns: tuple[str, ...]) -> tuple[int, ...]:
    """Where the integer columns are among `columns`."""
    return tuple(n for n, column in enumerate(columns) if column in _INTEGERS)


@functools.cache
def jobs_copy(columns: tuple[str, ...]) -> str:
    """COPY of many job rows (three times the rows per second of one INSERT per row)."""
    return f"COPY jobs ({', '.join(columns)}) FROM STDIN"


@functools.cache
def claim(fields: tuple[str, ...]) -> str:
    """Move the best ready jobs to running, in one statement.

    Per type (LATERAL), the best `limit` ready jobs straight off `jobs_ready`, locked with
    SKIP LOCKED so that concurrent claimers never wait for, nor take, each other's rows; of
    those, the best `limit` are updated. (With several types, rows of the other candidates
    stay locked until this short transaction commits; others skip them meanwhile.) The run's
    log entry is appended by the same statement.
    Parameters: the field values, worker, types, collection, limit, limit, the log entry."""
    sets = ", ".join(f"{cols.COLUMN_OF[key]} = %s" for key in fields)
    return (
        "WITH claimed AS ("
        f"UPDATE jobs SET {sets}, worker_id = %s, retries = retries - 1, retried = retried + 1 "
        "WHERE seq IN (SELECT best.seq FROM unnest(%s::text[]) AS wanted(type) "
        "CROSS JOIN LATERAL (SELECT seq, priority, retry_until, after FROM jobs "
        "WHERE collection = %s AND type = wanted.type AND status = 'ready' "
        f"ORDER BY {CLAIM_ORDER} LIMIT %s FOR UPDATE SKIP LOCKED) AS best "
        f"ORDER BY {CLAIM_ORDER} LIMIT %s) "
        f"RETURNING priority, retry_until, after, seq AS claim_seq, {SELECT_LIST}), "
        "logged AS (INSERT INTO job_log (job_id, entries) SELECT id, %s FROM claimed) "
        "SELECT * FROM claimed"
    )


@functools.cache
def update(fields: tuple[str, ...], statuses: bool, run_id: bool, due_by: bool, deps: bool) -> str:
    """A guarded UPDATE: the field values, collection, ids, then each guard's value."""
    sets = ", ".join(f"{cols.COLUMN_OF[key]} = %s" for key in fields)
    where = ["collection = %s", "id = ANY(%s::text[])"]
    if statuses:
        where.append("status = ANY(%s::text[])")
    if run_id:
        where.append("run_id = %s")
    if due_by:
        where.append("after <= %s")
    if deps:
        where.append(f"depends = '{cols.NO_DEPENDS}'")
    return f"UPDATE jobs SET {sets} WHERE {' AND '.join(where)} RETURNING id, type, status, seq"


@functools.cache
def find(ids: bool, statuses: bool, types: bool, limit: bool) -> str:
    where = ["collection = %s"]
    for column, given in (("id", ids), ("status", statuses), ("type", types)):
        if given:
            where.append(f"{column} = ANY(%s::text[])")
    sql = f"SELECT {SELECT_LIST} FROM jobs WHERE {' AND '.join(where)} ORDER BY seq"
    return sql + " LIMIT %s" if limit else sql


# A dependent's save reads its antecedents locked (see `PgTransaction.get_antecedents`).
LOCK_ANTECEDENTS: Final = (
    f"SELECT {SELECT_LIST}, seq FROM jobs WHERE collection = %s AND id = ANY(%s::text[]) "
    "ORDER BY id FOR NO KEY UPDATE"
)


# The caller claimed row n goes to: callers' limits as cumulative `bounds` (1-based).
_OWNER: Final = "(SELECT count(*) FROM unnest(%(bounds)s::bigint[]) AS b WHERE b < best.n) + 1"


# The parts of `complete_and_claim` a step leaves out (no runs, no claim), as empty relations
# the planner sees are empty: planned as a join against the runs, an empty completion once
# walked every running job of the collection.
_NO_RUNS: Final = (
    "done AS (SELECT NULL::text AS id, NULL::text AS type, NULL::bigint AS seq, "
    "NULL::int AS entry WHERE false), "
)
_NO_CLAIM: Final = (
    "claimed AS (SELECT NULL::bigint AS n, "
    + ", ".join(
        f"NULL::{'bigint' if column in _INTEGERS else 'text'} AS {column}"
        for _, column, _ in cols.FIELDS
    )
    + " WHERE false), "
)


@functools.cache
def complete_and_claim(
    fields: tuple[str, ...], feed: bool, notify: bool, runs: bool = True, claim: bool = True
) -> str:
    """A worker loop's step in one statement: complete runs, claim the next jobs for several
    callers, their log entries, and (`feed`) their feed rows and (`notify`) the notification:
    alone, one round trip and one commit.

    Completes only the jobs that need nothing more (no repeats left, no dependents: neither
    marked nor stored), each under its own run id and result, taking the rows in id order (the
    caller sorts them), as a dependent's save locks its antecedents; the others are left as
    they are (for `COMPLETE`). The claim is `claim`'s, for `sum(limits)` jobs; claimed row n
    goes to the caller whose share (cumulative `bounds`) holds n, with its run id and log entry.
    Without `runs` or `claim`, that part is left out (see `_NO_RUNS`). Parameters (named):
    see `PgTransaction.complete_and_claim`."""
    sets = "".join(f"{cols.COLUMN_OF[key]} = %(f_{key})s, " for key in fields)
    done = (
        "done AS (UPDATE jobs AS j SET status = 'completed', result = r.result, "
        f"updated = %(now)s, progress = '{{\"completed\":' || {_TOTAL} || ',\"total\":' || "
        f"{_TOTAL} || ',\"percent\":100}}' "
        "FROM unnest(%(ids)s::text[], %(runs)s::text[], %(results)s::text[], %(done_logs)s::int[]) "
        "AS r(id, run_id, result, entry) "
        "WHERE j.collection = %(collection)s AND j.id = r.id AND j.status = 'running' "
        "AND j.run_id = r.run_id AND j.repeats = 0 AND NOT j.has_dependents "
        "AND NOT EXISTS (SELECT 1 FROM job_deps AS d WHERE d.antecedent = j.id) "
        "RETURNING j.id, j.type, j.seq, r.entry), "
        "done_logged AS (INSERT INTO job_log (job_id, entries) "
        "SELECT id, (%(logs)s::text[])[entry] FROM done), "
    )
    claiming = (
        "best AS (SELECT seq, row_number() OVER (ORDER BY priority, retry_until, after, seq) "
        "AS n FROM (SELECT b.* FROM unnest(%(types)s::text[]) AS wanted(type) "
        "CROSS JOIN LATERAL (SELECT seq, priority, retry_until, after FROM jobs "
        "WHERE collection = %(collection)s AND type = wanted.type AND status = 'ready' "
        f"ORDER BY {CLAIM_ORDER} LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS b "
        f"ORDER BY {CLAIM_ORDER} LIMIT %(limit)s) AS c), "
        f"claimed AS (UPDATE jobs SET {sets}"
        f"run_id = (%(run_ids)s::text[])[{_OWNER}], worker_id = %(worker)s, "
        "retries = retries - 1, retried = retried + 1 FROM best WHERE jobs.seq = best.seq "
        f"RETURNING best.n, {QUALIFIED.replace('j.', 'jobs.')}), "
        "claim_logged AS (INSERT INTO job_log (job_id, entries) "
        f"SELECT id, (%(logs)s::text[])[(%(claim_logs)s::int[])[{_OWNER.replace('best.', '')}]] "
        "FROM claimed), "
    )
    written = ""
    if feed:
        written = (
            "written AS (INSERT INTO changes (seq, collection, job_id, op, type, status, fields) "
            f"SELECT (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) "
            "+ row_number() OVER (ORDER BY k, o), %(collection)s, id, 'update', type, s, f "
            "FROM (SELECT 0 AS k, seq AS o, id, type, 'completed' AS s, %(done_fields)s AS f "
            "FROM done UNION ALL SELECT 1, n, id, type, 'running', %(claim_fields)s "
            "FROM claimed) AS u RETURNING 1), "
        )
    signal = (
        f"CASE WHEN EXISTS (SELECT 1 FROM written) THEN pg_notify('{CHANNEL}', '') END"
        if feed and notify
        else "NULL"
    )
    head = (
        "head AS (SELECT (SELECT array_agg(id ORDER BY seq) FROM done) AS done_ids, "
        "(SELECT array_agg(type ORDER BY seq) FROM done) AS done_types, "
        f"pg_current_xact_id()::text::bigint AS xid, {signal} AS signal) "
    )
    return (
        f"WITH {done if runs else _NO_RUNS}{claiming if claim else _NO_CLAIM}{written}{head}"
        "SELECT head.done_ids, head.done_types, head.xid, head.signal, c.* "
        "FROM head LEFT JOIN claimed AS c ON true"
    )
