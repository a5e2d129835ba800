"""Constants of the original job-collection."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

FOREVER: Final = 9007199254740992  # 2**53, one more than JS Number.MAX_SAFE_INTEGER
INT32_MIN: Final = -(2**31)  # a priority's range (MongoDB's int)
INT32_MAX: Final = 2**31 - 1
FOREVER_DATE: Final = 8640000000000000  # ms: +275760-09-13T00:00:00.000Z, largest JS Date


class Status(StrEnum):
    WAITING = "waiting"
    PAUSED = "paused"
    READY = "ready"
    RUNNING = "running"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


JOB_STATUSES: Final = tuple(s.value for s in Status)
JOB_PRIORITIES: Final = {"low": 10, "normal": 0, "medium": -5, "high": -10, "critical": -15}
JOB_LOG_LEVELS: Final = ("info", "success", "warning", "danger")
JOB_RETRY_BACKOFF_METHODS: Final = ("constant", "exponential")
JOB_STATUS_CANCELLABLE: Final = ("running", "ready", "waiting", "paused")
JOB_STATUS_PAUSABLE: Final = ("ready", "waiting")
JOB_STATUS_REMOVABLE: Final = ("cancelled", "completed", "failed")
JOB_STATUS_RESTARTABLE: Final = ("cancelled", "failed")

DDP_METHODS: Final = (
    "startJobs",
    "stopJobs",
    "startJobServer",
    "shutdownJobServer",
    "jobRemove",
    "jobPause",
    "jobResume",
    "jobReady",
    "jobCancel",
    "jobRestart",
    "jobSave",
    "jobRerun",
    "getWork",
    "getJob",
    "jobLog",
    "jobProgress",
    "jobDone",
    "jobFail",
)
DDP_PERMISSION_LEVELS: Final = ("admin", "manager", "creator", "worker")

# Method -> the rule names that govern it (docs/jobs.md, "Permissions").
METHOD_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    **{m: (m, "admin") for m in ("startJobs", "stopJobs", "startJobServer", "shutdownJobServer")},
    **{
        m: (m, "admin", "manager")
        for m in ("jobRemove", "jobPause", "jobResume", "jobReady", "jobCancel", "jobRestart")
    },
    **{m: (m, "admin", "creator") for m in ("jobSave", "jobRerun")},
    **{
        m: (m, "admin", "worker")
        for m in ("getWork", "getJob", "jobLog", "jobProgress", "jobDone", "jobFail")
    },
}

DEFAULT_PROMOTE_INTERVAL_MS: Final = 15000
DEFAULT_SHUTDOWN_TIMEOUT_MS: Final = 60000
DEFAULT_RETRY_WAIT_MS: Final = 300000
DEFAULT_REPEAT_WAIT_MS: Final = 300000
DEFAULT_POLL_INTERVAL_MS: Final = 5000
SCHEDULE_GUARD_MS: Final = 500
# Workers' heartbeat lapse (`lost_after`): heartbeats go out every third of it, so a floor
# keeps them cheap.
DEFAULT_LOST_AFTER_MS: Final = 30_000
MIN_LOST_AFTER_MS: Final = 1_000
MAX_LOST_AFTER_MS: Final = 24 * 3600 * 1000
GET_JOB_CHUNK: Final = 32
BULK_CHUNK: Final = 256
