"""Every method x every kind of caller: exactly the cells SPEC 5 allows succeed.

Calls go through the dispatcher, the one place both transports (DDP, HTTP) check rules.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ddp_harness import SPEC_METHODS

from jobcollection import JobCollection
from jobcollection.core.constants import METHOD_GROUPS
from jobcollection.core.permissions import ANONYMOUS, Caller, Permissions
from jobcollection.errors import ValidationError
from jobcollection.server.dispatch import Dispatcher
from jobcollection.server.meteor_error import MeteorError
from storage_support import Databases

METHODS = list(SPEC_METHODS)
GROUP_MEMBER = {"admin": "ada", "manager": "max", "creator": "cora", "worker": "walt"}


def _params(method: str, job_id: str) -> list[object]:
    """Valid params, so a permitted call never fails for another reason than permissions."""
    doc = {
        "type": "t",
        "data": {},
        "status": "waiting",
        "runId": None,
        "priority": 0,
        "retries": 1,
        "retryWait": 0,
        "retryBackoff": "constant",
        "retryUntil": 8640000000000000,
        "retried": 0,
        "repeats": 0,
        "repeatWait": 0,
        "repeatRetries": 1,
        "repeatUntil": 8640000000000000,
        "repeated": 0,
        "after": 0,
        "updated": 0,
        "created": 0,
        "depends": [],
        "resolved": [],
        "progress": {"completed": 0, "total": 1, "percent": 0},
    }
    return {
        "startJobServer": [{}],
        "shutdownJobServer": [{"timeout": 60000}],
        "getJob": [job_id],
        "getWork": ["t"],
        "jobRemove": [[job_id]],
        "jobPause": [[job_id]],
        "jobResume": [[job_id]],
        "jobReady": [[job_id]],
        "jobCancel": [[job_id]],
        "jobRestart": [[job_id]],
        "jobSave": [doc],
        "jobRerun": [job_id],
        "jobProgress": [job_id, "run", 1, 2],
        "jobLog": [job_id, None, "hello"],
        "jobDone": [job_id, "run", {}],
        "jobFail": [job_id, "run", {}],
    }[method]


def _expected(method: str, who: str) -> bool:
    if who == "anonymous":
        return False
    if who == "ada-denied-worker":  # an admin with a deny rule on the worker group
        return "worker" not in METHOD_GROUPS[method]
    if who.startswith("only-"):  # a method-level rule for exactly one method
        return who == f"only-{method}"
    group = next(g for g, member in GROUP_MEMBER.items() if member == who)
    return group in METHOD_GROUPS[method]


CALLERS = ["anonymous", *GROUP_MEMBER.values(), "ada-denied-worker", "only-jobLog", "only-getWork"]


@pytest.fixture(scope="module")
def dispatcher(module_dbs: Databases) -> Iterator[tuple[Dispatcher, str]]:
    with JobCollection("queue", db=module_dbs("perm")) as jc:
        jc.start_job_server()
        job_id = jc.call("jobSave", [_params("jobSave", "")[0]])
        jc.allow(**{group: [member] for group, member in GROUP_MEMBER.items()})
        jc.allow(admin=["ada-denied-worker"])
        jc.deny(worker=["ada-denied-worker"])
        jc.allow(jobLog=["only-jobLog"], getWork="only-getWork")
        yield Dispatcher([jc.manager]), job_id


def _refusal(
    dispatch: Dispatcher, name: str, params: list[object], caller: Caller
) -> MeteorError | None:
    try:
        dispatch.call(name, params, caller)
    except MeteorError as error:
        return error
    return None


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_allowed_cells_succeed(
    dispatcher: tuple[Dispatcher, str], method: str, who: str
) -> None:
    dispatch, job_id = dispatcher
    caller = ANONYMOUS if who == "anonymous" else Caller(f"id-{who}", who)
    refusal = _refusal(dispatch, f"queue_{method}", _params(method, job_id), caller)
    allowed = refusal is None
    if refusal is not None:  # a permitted call must not fail for any other reason
        assert (refusal.code, refusal.reason) == (403, "Method not authorized")
    if method == "shutdownJobServer" and allowed:
        dispatch.call("queue_startJobServer", [{}], Caller("x", "ada"))
    assert allowed is _expected(method, who)


def test_rules_match_user_ids_as_well_as_names() -> None:
    permissions = Permissions()
    permissions.allow({"worker": ["u123"]})
    assert permissions.permits(Caller("u123", "bob"), "getWork", [])
    assert not permissions.permits(Caller("u999", "bob"), "getWork", [])


def test_anyone_users_and_functions() -> None:
    seen: list[tuple[object, ...]] = []

    def only_type_email(user_id: str | None, method: str, params: list[object]) -> bool:
        seen.append((user_id, method, params))
        return params[:1] == ["email"]

    permissions = Permissions()
    permissions.allow({"getJob": "anyone", "jobLog": "users", "getWork": only_type_email})
    assert permissions.permits(ANONYMOUS, "getJob", ["x"])
    assert not permissions.permits(ANONYMOUS, "jobLog", [])
    assert permissions.permits(Caller("u1", "bob"), "jobLog", [])
    assert permissions.permits(ANONYMOUS, "getWork", ["email"])
    assert not permissions.permits(Caller("u1"), "getWork", ["sms"])
    assert seen == [(None, "getWork", ["email"]), ("u1", "getWork", ["sms"])]


def test_deny_beats_allow_and_no_rules_deny_everything() -> None:
    permissions = Permissions()
    assert not permissions.permits(Caller("u1", "bob"), "getJob", [])
    permissions.allow({"admin": "anyone"})
    permissions.deny({"getJob": ["bob"]})
    assert not permissions.permits(Caller("u1", "bob"), "getJob", [])
    assert permissions.permits(Caller("u2", "eve"), "getJob", [])


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ({"admins": "anyone"}, "unknown group"),
        ({"admin": 42}, "expected 'anyone'"),
        ({"worker": ["ok", 3]}, "expected 'anyone'"),
    ],
)
def test_bad_rules_are_refused_and_add_nothing(rules: dict[str, object], problem: str) -> None:
    permissions = Permissions()
    with pytest.raises(ValidationError, match=problem):
        permissions.allow({"admin": ["ada"], **rules})
    assert permissions.allows == {}
