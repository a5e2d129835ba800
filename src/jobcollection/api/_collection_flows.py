"""Collection-level operations as flows (see `_drive`), chunked like meteor-job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ..core.constants import BULK_CHUNK, GET_JOB_CHUNK
from ..core.params import check_type_count, to_duration_ms, to_ms
from ..errors import JobValidationError, ValidationError
from ._drive import Flow

Doc = dict[str, Any]


def id_list(ids: str | Sequence[str] | None) -> list[str]:
    if ids is None:
        return []
    if isinstance(ids, str):
        return [ids]
    if not all(isinstance(i, str) for i in ids):
        raise ValidationError(f"ids must be strings, got {ids!r}")
    return list(ids)


def type_list(types: str | Sequence[str]) -> list[str]:
    listed = [types] if isinstance(types, str) else types
    if (
        not isinstance(listed, list | tuple)
        or not listed
        or not all(isinstance(t, str) and t for t in listed)
    ):
        problem = f"must be a non-empty string or a non-empty list of them, got {types!r}"
        raise JobValidationError("types", problem)
    check_type_count(len(listed), "types")
    return list(listed)


def get_job(job_id: str, get_log: bool = False, get_failures: bool = False) -> Flow[Doc | None]:
    if not isinstance(job_id, str):
        raise ValidationError(f"job id must be a string, got {job_id!r}")
    options = {"getLog": get_log, "getFailures": get_failures}
    return (yield ("getJob", [job_id, options]))  # type: ignore[no-any-return]


def get_jobs(
    ids: Sequence[str], get_log: bool = False, get_failures: bool = False
) -> Flow[list[Doc]]:
    listed = id_list(ids)
    options = {"getLog": get_log, "getFailures": get_failures}
    found: list[Doc] = []
    for start in range(0, len(listed), GET_JOB_CHUNK):
        docs = yield ("getJob", [listed[start : start + GET_JOB_CHUNK], options])
        found.extend(docs or [])
    return found


def get_work_params(
    types: str | Sequence[str], max_jobs: int = 1, work_timeout: int | None = None
) -> list[Any]:
    options: dict[str, Any] = {"maxJobs": max_jobs}
    if work_timeout is not None:
        options["workTimeout"] = work_timeout
    return [type_list(types), options]


def bulk(method: str, ids: str | Sequence[str] | None, options: dict[str, Any]) -> Flow[bool]:
    """One call per 256 ids; true if any chunk changed something."""
    listed = id_list(ids)
    if not listed:
        return bool((yield (method, [[], options]))) if method == "jobReady" else False
    changed = False
    for start in range(0, len(listed), BULK_CHUNK):
        changed = bool((yield (method, [listed[start : start + BULK_CHUNK], options]))) or changed
    return changed


def ready_options(time: Any = None, force: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"force": force}
    if time is not None:
        options["time"] = to_ms(time, "time")
    return options


def restart_options(
    retries: int = 1, until: Any = None, antecedents: bool = True, dependents: bool = True
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "retries": retries,
        "antecedents": antecedents,
        "dependents": dependents,
    }
    if until is not None:
        options["until"] = to_ms(until, "until")
    return options


def shutdown(timeout: Any) -> Flow[Any]:
    """`shutdownJobServer` with a grace period in ms or as a timedelta."""
    if isinstance(timeout, timedelta):
        timeout = to_duration_ms(timeout, "timeout")
    return (yield ("shutdownJobServer", [{"timeout": timeout}]))


def simple(method: str, options: dict[str, Any]) -> Flow[Any]:
    return (yield (method, [options]))
