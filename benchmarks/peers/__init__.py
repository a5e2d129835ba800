"""Other job queues measured beside ours on the same machine: huey on SQLite
(``huey_sqlite``), huey and Celery on Redis (``redis_peers``), pgqueuer, procrastinate and
chancy on PostgreSQL (``pg_peers``, run by ``pg_harness``). Their consumers report through
``probe``. Requirements: ``benchmarks/requirements.txt``."""
