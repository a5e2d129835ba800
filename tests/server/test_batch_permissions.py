"""The batch methods (`jobSaveMany`, `jobDoneAndGetWork`) check permissions first, like every
other method: an empty batch or unreadable params are no way around the rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ddp_harness import CallFailed, DdpClient, serving

from jobcollection import JobCollection
from jobcollection.core.permissions import ANONYMOUS, Caller
from jobcollection.server.app import Server
from jobcollection.server.dispatch import Dispatcher
from jobcollection.server.meteor_error import MeteorError

WALT = Caller("u-walt", "walt")  # worker group
CORA = Caller("u-cora", "cora")  # creator group
GETTER = Caller("u-gus", "gus")  # may getWork, nothing else


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    collection = JobCollection("q", db)
    collection.start_job_server()
    collection.allow(worker=["walt"], creator=["cora"], getWork=["gus"])
    yield collection
    collection.close()


def call(jc: JobCollection, caller: Caller, method: str, *params: Any) -> Any:
    return Dispatcher([jc.manager]).call(f"q_{method}", list(params), caller)


def refused(jc: JobCollection, caller: Caller, method: str, *params: Any) -> tuple[object, str]:
    with pytest.raises(MeteorError) as error:
        call(jc, caller, method, *params)
    return error.value.code, str(error.value.reason)


NOT_AUTHORIZED = (403, "Method not authorized")


@pytest.mark.parametrize(
    "params",
    [
        ([],),
        ([], None),
        ("junk",),
        (None, None),
        ([["not", "a"]], None),
        ([], "junk"),
        (),
    ],
)
def test_anonymous_gets_403_for_any_jobDoneAndGetWork(
    jc: JobCollection, params: tuple[Any, ...]
) -> None:
    assert refused(jc, ANONYMOUS, "jobDoneAndGetWork", *params) == NOT_AUTHORIZED
    assert refused(jc, CORA, "jobDoneAndGetWork", *params) == NOT_AUTHORIZED  # not a worker


@pytest.mark.parametrize("params", [([],), ("junk",), (None,), ({"type": "t"},), ()])
def test_anonymous_gets_403_for_any_jobSaveMany(jc: JobCollection, params: tuple[Any, ...]) -> None:
    assert refused(jc, ANONYMOUS, "jobSaveMany", *params) == NOT_AUTHORIZED
    assert refused(jc, WALT, "jobSaveMany", *params) == NOT_AUTHORIZED  # not a creator


def test_allowed_callers_get_empty_answers_and_validation_errors(jc: JobCollection) -> None:
    assert call(jc, CORA, "jobSaveMany", []) == []
    assert call(jc, WALT, "jobDoneAndGetWork", [], None) == [[], []]
    assert call(jc, WALT, "jobDoneAndGetWork", [], ["t"]) == [[], []]
    for caller, method, params, named in (
        (CORA, "jobSaveMany", ["junk"], "jobSaveMany: expected [docs]"),
        (WALT, "jobDoneAndGetWork", [[["x"]], None], "runs[0]: expected [id, runId, result]"),
        (WALT, "jobDoneAndGetWork", ["junk"], "expected [runs, getWorkParams | null]"),
    ):
        with pytest.raises(MeteorError) as error:
            call(jc, caller, method, *params)
        assert (error.value.code, error.value.reason) == (400, "Match failed")
        assert named in str(error.value.details)


def test_an_empty_batch_with_a_claim_needs_only_getWork(jc: JobCollection) -> None:
    """Completing nothing and claiming is a claim: the getWork rule decides."""
    assert call(jc, GETTER, "jobDoneAndGetWork", [], ["t"]) == [[], []]
    assert refused(jc, GETTER, "jobDoneAndGetWork", [], None) == NOT_AUTHORIZED


def test_rule_functions_see_an_empty_batch_as_a_call_without_params(jc: JobCollection) -> None:
    seen: list[tuple[str | None, str, list[object]]] = []

    def rule(user_id: str | None, method: str, params: list[object]) -> bool:
        seen.append((user_id, method, params))
        return False

    jc.allow(jobSave=rule, jobDone=rule)
    assert refused(jc, ANONYMOUS, "jobSaveMany", []) == NOT_AUTHORIZED
    assert refused(jc, ANONYMOUS, "jobDoneAndGetWork", [], None) == NOT_AUTHORIZED
    assert refused(jc, ANONYMOUS, "jobDoneAndGetWork", "junk", None) == NOT_AUTHORIZED
    assert seen == [(None, "jobSave", []), (None, "jobDone", []), (None, "jobDone", [])]


def test_over_ddp_an_anonymous_empty_batch_is_refused(jc: JobCollection) -> None:
    with serving(Server(jc, accounts=False)) as base, DdpClient(base) as client:
        for method, params in (("jobSaveMany", [[]]), ("jobDoneAndGetWork", [[], None])):
            with pytest.raises(CallFailed) as error:
                client.call(f"q_{method}", *params)
            assert (error.value.code, error.value.reason) == NOT_AUTHORIZED
