"""Validation of the positional params of the 16 DDP methods (docs/jobs.md, "Operations").

`parse_params(method, params)` checks one call's params list and returns a frozen dataclass per
method, in the internal form: times are `int` ms, durations `int` ms, user data plain dicts.
Absent trailing params mean "not given"; a `None` that is present is a value and fails every
check that does not allow null. Options objects are closed; their keys may be absent but never
`None`. Every failure raises `JobValidationError(field, problem)` naming the path, e.g.
`options.maxJobs`, `ids[3]` or `doc.log[2].level`. Pure: stdlib, `errors` and `core` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias, TypeVar

from jobcollection.core.constants import (
    DEFAULT_SHUTDOWN_TIMEOUT_MS,
    JOB_LOG_LEVELS,
    Status,
)
from jobcollection.core.document import (
    check_bool,
    check_id,
    check_integer,
    check_number,
    check_plain_object,
    check_string,
    check_wait,
    one_of,
    show,
    to_duration_ms,
    to_ms,
    validate_job_doc,
)
from jobcollection.errors import JobValidationError, ValidationError

__all__ = [
    "MAX_WORK_TYPES",
    "CancelParams",
    "DoneParams",
    "FailParams",
    "GetJobParams",
    "GetWorkParams",
    "IdsParams",
    "LogParams",
    "MethodParams",
    "ProgressParams",
    "ReadyParams",
    "RerunParams",
    "RestartParams",
    "SaveParams",
    "ShutdownParams",
    "StartParams",
    "check_save_doc",
    "check_type_count",
    "parse_ids",
    "parse_params",
    "to_duration_ms",
    "to_ms",
    "validate_job_doc",
]

T = TypeVar("T")

# Job types one `getWork` may ask for. Workers serve a handful (the original's clients send the
# types of one queue); 256 leaves a wide margin, keeps a claim one SQL statement well under
# SQLite's 500-term compound SELECT, and bounds what one call may cost the server.
MAX_WORK_TYPES: Final = 256


@dataclass(frozen=True, slots=True)
class StartParams:
    """`startJobServer` / `startJobs`: options absent or `{}`."""


@dataclass(frozen=True, slots=True)
class ShutdownParams:
    """`shutdownJobServer` / `stopJobs`."""

    timeout: int = DEFAULT_SHUTDOWN_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class GetJobParams:
    """`getJob`; `single` is true when one bare id was given."""

    ids: list[str]
    single: bool
    get_log: bool = False
    get_failures: bool = False


@dataclass(frozen=True, slots=True)
class GetWorkParams:
    """`getWork`; `types` is the list of job types (a bare string is wrapped)."""

    types: list[str]
    max_jobs: int = 1
    work_timeout: int | None = None


@dataclass(frozen=True, slots=True)
class IdsParams:
    """`jobRemove`, `jobPause`, `jobResume`: options absent or `{}`."""

    ids: list[str]


@dataclass(frozen=True, slots=True)
class ReadyParams:
    """`jobReady`; `time` None means "now"."""

    ids: list[str]
    force: bool = False
    time: int | None = None


@dataclass(frozen=True, slots=True)
class CancelParams:
    """`jobCancel`."""

    ids: list[str]
    antecedents: bool = False
    dependents: bool = True


@dataclass(frozen=True, slots=True)
class RestartParams:
    """`jobRestart`; `retries` is capped at `FOREVER`."""

    ids: list[str]
    retries: int = 1
    until: int | None = None
    antecedents: bool = True
    dependents: bool = False


@dataclass(frozen=True, slots=True)
class SaveParams:
    """`jobSave`; `doc` is the normalized document (status waiting or paused)."""

    doc: dict[str, object]
    cancel_repeats: bool = False


@dataclass(frozen=True, slots=True)
class RerunParams:
    """`jobRerun`; `until` None means the job's `repeatUntil`; `repeats` capped at `FOREVER`."""

    id: str
    repeats: int = 0
    until: int | None = None
    wait: int | dict[str, object] = 0


@dataclass(frozen=True, slots=True)
class ProgressParams:
    """`jobProgress`: 0 <= completed <= total, total > 0."""

    id: str
    run_id: str
    completed: float | int
    total: float | int


@dataclass(frozen=True, slots=True)
class LogParams:
    """`jobLog`; `run_id` may be None and is not checked against the job."""

    id: str
    run_id: str | None
    message: str
    level: str = "info"
    data: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class DoneParams:
    """`jobDone`."""

    id: str
    run_id: str
    result: dict[str, object]
    repeat_id: bool = False
    delay_deps: int | None = None


@dataclass(frozen=True, slots=True)
class FailParams:
    """`jobFail`."""

    id: str
    run_id: str
    err: dict[str, object]
    fatal: bool = False


MethodParams: TypeAlias = (
    StartParams
    | ShutdownParams
    | GetJobParams
    | GetWorkParams
    | IdsParams
    | ReadyParams
    | CancelParams
    | RestartParams
    | SaveParams
    | RerunParams
    | ProgressParams
    | LogParams
    | DoneParams
    | FailParams
)

Params: TypeAlias = Sequence[object]


def parse_ids(value: object, field: str = "ids") -> tuple[list[str], bool]:
    """One id or a (possibly empty) list of ids.

    Returns:
        `([id], True)` for a single id, `(ids, False)` for a list.
    """
    if isinstance(value, str):
        return [check_id(value, field)], True
    if isinstance(value, list | tuple):
        return [check_id(item, f"{field}[{i}]") for i, item in enumerate(value)], False
    raise JobValidationError(field, f"must be an id or a list of ids, got {show(value)}")


def check_type_count(count: int, field: str = "type") -> None:
    """Refuse more than `MAX_WORK_TYPES` job types in one call."""
    if count > MAX_WORK_TYPES:
        raise JobValidationError(field, f"at most {MAX_WORK_TYPES} job types per call, got {count}")


def _parse_types(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        check_type_count(len(value))  # before looking at each: the list may be huge
        return [check_string(item, f"type[{i}]") for i, item in enumerate(value)]
    raise JobValidationError("type", f"must be a string or a list of strings, got {show(value)}")


def _arg(params: Params, index: int, name: str) -> object:
    if len(params) <= index:
        raise JobValidationError(name, "is required")
    return params[index]


def _options(params: Params, index: int, allowed: tuple[str, ...] = ()) -> dict[str, object]:
    """The closed options object at `index`; absent → `{}`, anything but a dict → error."""
    if len(params) <= index:
        return {}
    value = params[index]
    if not isinstance(value, dict):
        raise JobValidationError("options", f"must be a plain object, got {show(value)}")
    for key in value:
        if key not in allowed:
            known = f"allowed: {', '.join(allowed)}" if allowed else "no options are allowed"
            raise JobValidationError(f"options.{key}", f"is not a known option ({known})")
    return value


def _opt(options: dict[str, object], key: str, check: Callable[[object, str], T], default: T) -> T:
    return check(options[key], f"options.{key}") if key in options else default


def _int_from(minimum: int, *, clamp: bool = False) -> Callable[[object, str], int]:
    def check(value: object, field: str) -> int:
        return check_integer(value, field, minimum, clamp=clamp)

    return check


def _parse_start(params: Params) -> StartParams:
    _options(params, 0)
    return StartParams()


def _parse_shutdown(params: Params) -> ShutdownParams:
    options = _options(params, 0, ("timeout",))
    return ShutdownParams(_opt(options, "timeout", _int_from(1), DEFAULT_SHUTDOWN_TIMEOUT_MS))


def _parse_get_job(params: Params) -> GetJobParams:
    ids, single = parse_ids(_arg(params, 0, "ids"))
    options = _options(params, 1, ("getLog", "getFailures"))
    return GetJobParams(
        ids,
        single,
        get_log=_opt(options, "getLog", check_bool, False),
        get_failures=_opt(options, "getFailures", check_bool, False),
    )


def _parse_get_work(params: Params) -> GetWorkParams:
    types = _parse_types(_arg(params, 0, "type"))
    options = _options(params, 1, ("maxJobs", "workTimeout"))
    return GetWorkParams(
        types,
        max_jobs=_opt(options, "maxJobs", _int_from(1, clamp=True), 1),
        work_timeout=_opt(options, "workTimeout", _int_from(1), None),
    )


def _parse_ids_only(params: Params) -> IdsParams:
    ids, _ = parse_ids(_arg(params, 0, "ids"))
    _options(params, 1)
    return IdsParams(ids)


def _parse_ready(params: Params) -> ReadyParams:
    ids, _ = parse_ids(_arg(params, 0, "ids"))
    options = _options(params, 1, ("force", "time"))
    return ReadyParams(
        ids,
        force=_opt(options, "force", check_bool, False),
        time=_opt(options, "time", to_ms, None),
    )


def _parse_cancel(params: Params) -> CancelParams:
    ids, _ = parse_ids(_arg(params, 0, "ids"))
    options = _options(params, 1, ("antecedents", "dependents"))
    return CancelParams(
        ids,
        antecedents=_opt(options, "antecedents", check_bool, False),
        dependents=_opt(options, "dependents", check_bool, True),
    )


def _parse_restart(params: Params) -> RestartParams:
    ids, _ = parse_ids(_arg(params, 0, "ids"))
    options = _options(params, 1, ("retries", "until", "antecedents", "dependents"))
    return RestartParams(
        ids,
        retries=_opt(options, "retries", _int_from(0, clamp=True), 1),
        until=_opt(options, "until", to_ms, None),
        antecedents=_opt(options, "antecedents", check_bool, True),
        dependents=_opt(options, "dependents", check_bool, False),
    )


def in_batch(error: ValidationError, number: int) -> ValidationError:
    """A `jobSave` document's error, named for document `number` of a batch: `doc.retries`
    becomes `jobs[1].retries` (as an unstorable value in it is named)."""
    if not isinstance(error, JobValidationError):
        return ValidationError(f"jobs[{number}]: {error}")
    field = error.field
    if field == "doc" or field.startswith("doc."):
        return JobValidationError(f"jobs[{number}]{field[3:]}", error.problem)
    return JobValidationError(f"jobs[{number}].{field}", error.problem)


def check_save_doc(value: object) -> dict[str, object]:
    """The document of a `jobSave`: the closed pattern, status waiting or paused.

    Returns a normalized copy that may share nested lists and dicts with `value`: a save only
    reads them (to store them as text), it never changes them.
    """
    doc = validate_job_doc(value, share=True)
    if doc["status"] not in _SAVE_STATUSES:
        raise JobValidationError(
            "doc.status", f"must be 'waiting' or 'paused' to save, got {show(doc['status'])}"
        )
    return doc


_SAVE_STATUSES: Final = frozenset((Status.WAITING.value, Status.PAUSED.value))


def _parse_save(params: Params) -> SaveParams:
    doc = check_save_doc(_arg(params, 0, "doc"))
    options = _options(params, 1, ("cancelRepeats",))
    return SaveParams(doc, cancel_repeats=_opt(options, "cancelRepeats", check_bool, False))


def _parse_rerun(params: Params) -> RerunParams:
    job_id = check_id(_arg(params, 0, "id"), "id")
    if len(params) <= 1:
        return RerunParams(job_id)
    options = _options(params, 1, ("repeats", "until", "wait"))
    if "wait" not in options:
        raise JobValidationError("options.wait", "is required when options are given")
    return RerunParams(
        job_id,
        repeats=_opt(options, "repeats", _int_from(0, clamp=True), 0),
        until=_opt(options, "until", to_ms, None),
        wait=check_wait(options["wait"], "options.wait"),
    )


def _parse_progress(params: Params) -> ProgressParams:
    job_id = check_id(_arg(params, 0, "id"), "id")
    run_id = check_id(_arg(params, 1, "runId"), "runId")
    completed = check_number(_arg(params, 2, "completed"), "completed")
    total = check_number(_arg(params, 3, "total"), "total", positive=True)
    if completed > total:
        raise JobValidationError(
            "completed", f"must be <= total ({show(total)}), got {show(completed)}"
        )
    _options(params, 4)
    return ProgressParams(job_id, run_id, completed, total)


def _parse_log(params: Params) -> LogParams:
    job_id = check_id(_arg(params, 0, "id"), "id")
    raw_run_id = _arg(params, 1, "runId")
    run_id = None if raw_run_id is None else check_id(raw_run_id, "runId")
    message = check_string(_arg(params, 2, "message"), "message")
    options = _options(params, 3, ("level", "data"))
    return LogParams(
        job_id,
        run_id,
        message,
        level=_opt(options, "level", one_of(JOB_LOG_LEVELS), "info"),
        data=_opt(options, "data", check_plain_object, None),
    )


def _parse_done(params: Params) -> DoneParams:
    job_id = check_id(_arg(params, 0, "id"), "id")
    run_id = check_id(_arg(params, 1, "runId"), "runId")
    result = check_plain_object(_arg(params, 2, "result"), "result")
    options = _options(params, 3, ("repeatId", "delayDeps"))
    return DoneParams(
        job_id,
        run_id,
        result,
        repeat_id=_opt(options, "repeatId", check_bool, False),
        delay_deps=_opt(options, "delayDeps", to_duration_ms, None),
    )


def _parse_fail(params: Params) -> FailParams:
    job_id = check_id(_arg(params, 0, "id"), "id")
    run_id = check_id(_arg(params, 1, "runId"), "runId")
    err = check_plain_object(_arg(params, 2, "err"), "err")
    options = _options(params, 3, ("fatal",))
    return FailParams(job_id, run_id, err, fatal=_opt(options, "fatal", check_bool, False))


_PARSERS: Final[Mapping[str, Callable[[Params], MethodParams]]] = MappingProxyType(
    {
        "startJobServer": _parse_start,
        "startJobs": _parse_start,
        "shutdownJobServer": _parse_shutdown,
        "stopJobs": _parse_shutdown,
        "getJob": _parse_get_job,
        "getWork": _parse_get_work,
        "jobRemove": _parse_ids_only,
        "jobPause": _parse_ids_only,
        "jobResume": _parse_ids_only,
        "jobReady": _parse_ready,
        "jobCancel": _parse_cancel,
        "jobRestart": _parse_restart,
        "jobSave": _parse_save,
        "jobRerun": _parse_rerun,
        "jobProgress": _parse_progress,
        "jobLog": _parse_log,
        "jobDone": _parse_done,
        "jobFail": _parse_fail,
    }
)


def parse_params(method: str, params: list[object]) -> MethodParams:
    """Validate the positional params of a DDP method call (bare name, e.g. `"jobSave"`).

    Extra trailing params are ignored; missing trailing params are "absent".

    Raises:
        JobValidationError: `field` names the bad param or option (`"method"` for an unknown
            method, `"params"` if `params` is not a list).
    """
    parser = _PARSERS.get(method) if isinstance(method, str) else None
    if parser is None:
        raise JobValidationError("method", f"is not a job-collection method: {show(method)}")
    if not isinstance(params, list | tuple):
        raise JobValidationError("params", f"must be a list, got {show(params)}")
    return parser(params)
