"""The Python worker function of benchmarks/scale_out.py, run by `jobcollection worker
--server URL scale_out_worker:work` (from this folder).

Each run appends "run JOB_ID RUN_ID" to `$SCALE_OUT_RUNS/py-PID.runs` as it starts (one
`write` on a file opened for appending, so lines of concurrent runs never mix): the campaign
counts the runs of each (job, run) across every worker. A job whose data says `failOnce`
fails its first run.
"""

from __future__ import annotations

import os
import time
from typing import Any

WORK_S = 0.002
_runs = os.open(
    os.path.join(os.environ["SCALE_OUT_RUNS"], f"py-{os.getpid()}.runs"),
    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    0o644,
)


def work(job: Any) -> dict[str, str]:
    os.write(_runs, f"run {job.id} {job.doc['runId']}\n".encode())
    if job.data.get("failOnce") and job.doc["retried"] == 1:
        raise RuntimeError("failOnce: the first run fails")
    time.sleep(WORK_S)
    return {"by": "python"}
