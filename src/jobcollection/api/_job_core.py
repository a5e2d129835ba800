"""The job document and its builder, plus every Job operation as a flow (see `_drive`).

Mirrors meteor-job's `Job`: a new job has the same document the node client builds,
builder methods change it locally, operations send the same method calls with the same params.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from ..core.constants import (
    DEFAULT_REPEAT_WAIT_MS,
    DEFAULT_RETRY_WAIT_MS,
    FOREVER,
    FOREVER_DATE,
    JOB_LOG_LEVELS,
    JOB_PRIORITIES,
    JOB_RETRY_BACKOFF_METHODS,
)
from ..core.cron import parse_cron
from ..core.document import check_type
from ..core.params import to_duration_ms, to_ms
from ..core.schedule import validate_schedule
from ..errors import InvalidTransition, JobValidationError, ValidationError, transient
from ._collection_flows import ready_options, restart_options
from ._drive import Flow


class CollectionLike(Protocol):
    @property
    def root(self) -> str: ...

    def now_ms(self) -> int: ...


def as_object(value: object, default: object) -> dict[str, Any]:
    """Results and errors travel as plain objects; anything else is wrapped as `{value: x}`."""
    if value is None:
        value = default
    if isinstance(value, dict):
        return value
    if isinstance(value, BaseException):
        message = str(value)
        if not isinstance(value, Exception) or not message:
            # `SystemExit`, `KeyboardInterrupt: stop`: what it was must show without a message
            summary = f"{type(value).__name__}: {message}" if message else type(value).__name__
        else:
            summary = message
        return {
            "value": summary,
            "message": message,
            "type": type(value).__name__,
            "traceback": "".join(traceback.format_exception(value)),
        }
    return {"value": value}


def _count(value: object, field: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or value != int(value)
    ):
        raise JobValidationError(field, f"must be an integer >= 0, got {value!r}")
    return min(int(value), FOREVER)


def new_document(job_type: str, data: object, now: int) -> dict[str, Any]:
    """The document `new Job(root, type, data)` builds."""
    check_type(job_type, "type")
    if not isinstance(data, dict):
        raise JobValidationError("data", f"must be a dict, got {type(data).__name__}")
    return {
        "runId": None, "status": "waiting", "type": job_type, "data": data,
        "updated": now, "created": now, "priority": 0, "retries": 1, "repeatRetries": 1,
        "retryWait": DEFAULT_RETRY_WAIT_MS, "retried": 0, "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE, "repeats": 0, "repeatWait": DEFAULT_REPEAT_WAIT_MS,
        "repeated": 0, "repeatUntil": FOREVER_DATE, "after": 0,
        "progress": {"completed": 0, "total": 1, "percent": 0},
        "depends": [], "resolved": [],
        "log": [{"time": now, "runId": None, "level": "info", "message": "Constructed"}],
    }  # fmt: skip


class JobCore:
    """State and logic of a Job; `Job`/`AsyncJob` add the driving of the flows."""

    def __init__(
        self, jc: CollectionLike, type_or_doc: str | dict[str, Any], data: object = None
    ) -> None:
        self._jc = jc
        self.finished = False  # a worker called done() or fail() on this run
        # A done() or fail() that failed because the database was unavailable for a while:
        # the call to make again (the queue does, see `_runners.resend`).
        self.unsent: Callable[[], Any] | None = None
        self.strict = False  # a queue's callback_strict: finishing twice raises
        if isinstance(type_or_doc, dict):
            self.doc: dict[str, Any] = type_or_doc
        else:
            self.doc = new_document(type_or_doc, {} if data is None else data, jc.now_ms())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type} {self.id} {self.status}>"

    # -- document access ------------------------------------------------------------------

    @property
    def collection(self) -> CollectionLike:
        return self._jc

    @property
    def id(self) -> str | None:
        return self.doc.get("_id")

    @property
    def type(self) -> str:
        return str(self.doc["type"])

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.doc["data"]
        return data

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    @property
    def run_id(self) -> str | None:
        return self.doc.get("runId")

    # -- builders (local only, chainable) --------------------------------------------------

    def priority(self, level: str | int) -> Self:
        if isinstance(level, str) and level in JOB_PRIORITIES:
            self.doc["priority"] = JOB_PRIORITIES[level]
        elif isinstance(level, int) and not isinstance(level, bool) and -(2**31) <= level < 2**31:
            self.doc["priority"] = level
        else:
            names = ", ".join(JOB_PRIORITIES)
            raise JobValidationError(
                "priority", f"must be one of {names} or a 32-bit integer, got {level!r}"
            )
        return self

    def retry(
        self,
        retries: int | None = None,
        *,
        until: datetime | int | None = None,
        wait: timedelta | int | None = None,
        backoff: str | None = None,
    ) -> Self:
        """Allow `retries` more runs after a failure (none given with options: forever)."""
        options_given = any(v is not None for v in (until, wait, backoff))
        if retries is None:
            count = FOREVER if options_given else 0
        else:
            count = _count(retries, "retries")
        self.doc["retries"] = min(count + 1, FOREVER)
        self.doc["repeatRetries"] = self.doc["retries"]
        if until is not None:
            self.doc["retryUntil"] = to_ms(until, "until")
        if wait is not None:
            self.doc["retryWait"] = to_duration_ms(wait, "wait")
        if backoff is not None:
            if backoff not in JOB_RETRY_BACKOFF_METHODS:
                raise JobValidationError(
                    "backoff", f"must be constant or exponential, got {backoff!r}"
                )
            self.doc["retryBackoff"] = backoff
        return self

    def repeat(
        self,
        repeats: int | None = None,
        *,
        until: datetime | int | None = None,
        wait: timedelta | int | None = None,
        schedule: dict[str, Any] | None = None,
        cron: str | None = None,
    ) -> Self:
        """Run again after completing: `repeats` times (none given with options: forever)."""
        plans = [v for v in (wait, schedule, cron) if v is not None]
        if len(plans) > 1:
            raise ValidationError("repeat: give only one of wait, schedule and cron")
        if repeats is None:
            count = FOREVER if (plans or until is not None) else 0
        else:
            count = _count(repeats, "repeats")
        self.doc["repeats"] = count
        if until is not None:
            self.doc["repeatUntil"] = to_ms(until, "until")
        if wait is not None:
            self.doc["repeatWait"] = to_duration_ms(wait, "wait")
        elif schedule is not None:
            self.doc["repeatWait"] = validate_schedule(schedule, "schedule")
        elif cron is not None:
            self.doc["repeatWait"] = parse_cron(cron)
        return self

    def delay(self, wait: timedelta | int = 0) -> Self:
        return self.after(self._jc.now_ms() + to_duration_ms(wait, "delay"))

    def after(self, time: datetime | int = 0) -> Self:
        self.doc["after"] = to_ms(time, "after")
        return self

    def depends(self, jobs: Sequence[JobCore] | JobCore | None = None) -> Self:
        """Run only after these saved jobs complete (None clears)."""
        if jobs is None:
            self.doc["depends"] = []
        else:
            listed = [jobs] if isinstance(jobs, JobCore) else list(jobs)
            for job in listed:
                if not isinstance(job, JobCore) or job.id is None:
                    raise ValidationError("depends: each antecedent must be a saved Job")
            self.doc["depends"] = [*self.doc["depends"], *(j.id for j in listed)]
        self.doc["resolved"] = []
        return self

    # -- flows -------------------------------------------------------------------------------

    def _need_id(self) -> str:
        if self.id is None:
            raise ValidationError(f"{self.type} job is not saved yet")
        return str(self.id)

    def _not_sent(self, error: Exception, call: Callable[[], Any]) -> None:
        """A done() or fail() raised: the run is not finished; `call` makes it again."""
        self.finished = False
        if transient(error):
            self.unsent = call

    def _finish(self) -> None:
        if self.finished and self.strict:
            raise InvalidTransition(f"job {self.id} was already finished by this worker")
        self.finished = True

    def run_key(self) -> tuple[str, str]:
        """(id, runId) of the current run, marking the job finished (for batch completion)."""
        key = self._need_run()
        self._finish()
        return key

    def _need_run(self) -> tuple[str, str]:
        if self.run_id is None or self.status != "running":
            raise ValidationError(f"job {self.id} is not running (status {self.status})")
        return self._need_id(), str(self.run_id)

    def save_flow(self, cancel_repeats: bool = False) -> Flow[str | None]:
        options = {"cancelRepeats": True} if cancel_repeats else {}
        # The engine validates into a fresh copy, so the live document can go as it is.
        new_id = yield ("jobSave", [self.doc, options])
        if new_id:
            self.doc["_id"] = new_id
        return new_id  # type: ignore[no-any-return]

    def refresh_flow(self, get_log: bool = False, get_failures: bool = False) -> Flow[bool]:
        options = {"getLog": get_log, "getFailures": get_failures}
        doc = yield ("getJob", [self._need_id(), options])
        if not doc:
            return False
        self.doc = doc
        return True

    def log_flow(
        self, message: str, level: str = "info", data: dict[str, Any] | None = None
    ) -> Flow[bool]:
        if level not in JOB_LOG_LEVELS:
            raise JobValidationError(
                "level", f"must be one of {', '.join(JOB_LOG_LEVELS)}, got {level!r}"
            )
        options: dict[str, Any] = {"level": level}
        if data is not None:
            options["data"] = data
        if self.id is None:  # unsaved: kept locally, sent with save()
            entry = {"time": self._jc.now_ms(), "runId": None, "message": message, **options}
            self.doc.setdefault("log", []).append(entry)
            return True
        return bool((yield ("jobLog", [self.id, self.run_id, message, options])))

    def progress_flow(self, completed: float, total: float = 100) -> Flow[bool]:
        job_id, run_id = self._need_run()
        ok = yield ("jobProgress", [job_id, run_id, completed, total, {}])
        if ok:
            percent = 100 * completed / total
            self.doc["progress"] = {"completed": completed, "total": total, "percent": percent}
        return bool(ok)

    def done_flow(
        self, result: object = None, repeat_id: bool = False, delay_deps: int | None = None
    ) -> Flow[bool | str]:
        job_id, run_id = self._need_run()
        self._finish()
        options: dict[str, Any] = {"repeatId": True} if repeat_id else {}
        if delay_deps is not None:
            options["delayDeps"] = delay_deps
        outcome = yield ("jobDone", [job_id, run_id, as_object(result, {}), options])
        if outcome:
            self.doc["status"] = "completed"
        return outcome  # type: ignore[no-any-return]

    def fail_flow(self, error: object = None, fatal: bool = False) -> Flow[bool]:
        job_id, run_id = self._need_run()
        self._finish()
        err = as_object(error, "No error information provided")
        ok = yield ("jobFail", [job_id, run_id, err, {"fatal": fatal}])
        return bool(ok)

    def call_flow(self, method: str, options: dict[str, Any]) -> Flow[bool]:
        return bool((yield (method, [self._need_id(), options])))

    def ready_flow(self, time: datetime | int | None = None, force: bool = False) -> Flow[bool]:
        return (yield from self.call_flow("jobReady", ready_options(time, force)))

    def cancel_flow(self, antecedents: bool = True, dependents: bool = True) -> Flow[bool]:
        options = {"antecedents": antecedents, "dependents": dependents}
        return (yield from self.call_flow("jobCancel", options))

    def restart_flow(
        self,
        retries: int = 1,
        until: datetime | int | None = None,
        antecedents: bool = True,
        dependents: bool = True,
    ) -> Flow[bool]:
        options = restart_options(_count(retries, "retries"), until, antecedents, dependents)
        return (yield from self.call_flow("jobRestart", options))

    def pause_flow(self) -> Flow[bool]:
        if self.id is None:
            self.doc["status"] = "paused"
            return True
        return bool((yield ("jobPause", [self.id, {}])))

    def resume_flow(self) -> Flow[bool]:
        if self.id is None:
            self.doc["status"] = "waiting"
            return True
        return bool((yield ("jobResume", [self.id, {}])))

    def rerun_flow(
        self,
        repeats: int = 0,
        until: datetime | int | None = None,
        wait: timedelta | int | dict[str, Any] | None = None,
    ) -> Flow[str | bool | None]:
        options: dict[str, Any] = {"repeats": repeats}
        options["wait"] = (
            self.doc["repeatWait"]
            if wait is None
            else (wait if isinstance(wait, dict) else to_duration_ms(wait, "wait"))
        )
        if until is not None:
            options["until"] = to_ms(until, "until")
        return (yield ("jobRerun", [self._need_id(), options]))  # type: ignore[no-any-return]
