"""Other job queues measured beside ours on the same machine: huey on SQLite
(``huey_sqlite``), huey and Celery on Redis (``redis_peers``). Their consumers report through
``probe``. Requirements: ``benchmarks/requirements.txt``."""
