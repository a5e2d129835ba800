"""SPEC 1 (defaults of a new job, scrub hook) and 6.1: the engine handles the exact params the
node client (meteor-job 1.5.2) sends, with the client's own option defaults."""

from __future__ import annotations

from engine_harness import T0, Doc, Engine, is_meteor_id

from jobcollection.api._job_core import new_document
from jobcollection.core.constants import FOREVER, FOREVER_DATE


def test_default_document_of_new_job(eng: Engine) -> None:
    """`new Job(root, type, data)` saved as is: 17-char id, times clamped, ready at once."""
    doc = new_document("email", {"to": "a"}, T0 - 60_000)  # client clock a minute behind
    job_id = eng.call("jobSave", doc)
    assert is_meteor_id(job_id)
    stored = eng.get(job_id)
    assert {k: v for k, v in stored.items() if k != "log"} == {
        "_id": job_id, "runId": None, "type": "email", "data": {"to": "a"},
        "status": "ready", "updated": T0, "created": T0, "priority": 0, "retries": 1,
        "repeatRetries": 1, "retryWait": 300_000, "retried": 0, "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE, "repeats": 0, "repeatWait": 300_000, "repeated": 0,
        "repeatUntil": FOREVER_DATE, "after": T0,
        "progress": {"completed": 0, "total": 1, "percent": 0}, "depends": [], "resolved": [],
    }  # fmt: skip
    assert stored["log"][0] == {
        "time": T0 - 60_000,
        "runId": None,
        "level": "info",
        "message": "Constructed",
    }


def test_default_job_runs_once(eng: Engine) -> None:
    job_id = eng.save()
    run_id = eng.claim(job_id)
    assert eng.call("jobFail", job_id, run_id, {"value": "No error information provided"})
    assert eng.status(job_id) == "failed"


def test_client_get_work_call(eng: Engine) -> None:
    job_id = eng.save("a")
    docs = eng.call("getWork", ["a"], {"maxJobs": 1})
    assert [d["_id"] for d in docs] == [job_id]


def test_client_get_job_calls(eng: Engine) -> None:
    a, b = eng.save("a"), eng.save("b")
    assert eng.call("getJob", a, {"getLog": False, "getFailures": False})["_id"] == a
    found = eng.call("getJob", [a, b], {"getLog": False})
    assert [d["_id"] for d in found] == [a, b]


def test_client_bulk_calls(eng: Engine) -> None:
    ids = [eng.save(f"t{i}") for i in range(3)]
    assert eng.call("jobPause", ids, {}) is True
    assert eng.call("jobResume", ids, {}) is True
    assert eng.call("jobReady", [], {"force": False}) is False  # already readied by resume
    assert eng.call("jobCancel", ids, {"antecedents": True}) is True
    assert eng.call("jobRemove", ids, {}) is True
    assert eng.job_count() == 0


def test_client_cancel_also_cancels_antecedents(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    assert eng.call("jobCancel", b, {"antecedents": True}) is True
    assert (eng.status(a), eng.status(b)) == ("cancelled", "cancelled")


def test_client_restart_also_restarts_dependents(eng: Engine) -> None:
    a = eng.save("a")
    b = eng.save("b", depends=[a])
    eng.call("jobCancel", a)
    assert eng.status(b) == "cancelled"
    assert eng.call("jobRestart", a, {"retries": 1, "dependents": True}) is True
    assert (eng.status(a), eng.status(b)) == ("ready", "waiting")


def test_client_server_calls(stopped_eng: Engine) -> None:
    assert stopped_eng.call("startJobServer", {}) is True
    assert stopped_eng.call("shutdownJobServer", {"timeout": 60_000}) is True
    assert stopped_eng.call("jobProgress", "someJobId2345678", "someRunId2345678", 0, 1, {}) is None


def test_client_worker_calls(eng: Engine) -> None:
    job_id, run_id = eng.running()
    assert eng.call("jobLog", job_id, run_id, "msg", {"level": "info"}) is True
    assert eng.call("jobLog", job_id, None, "msg", {"level": "info", "data": {"a": 1}}) is True
    assert eng.call("jobProgress", job_id, run_id, 50, 100, {}) is True
    assert eng.call("jobDone", job_id, run_id, {"value": 42}, {}) is True
    assert eng.get(job_id)["result"] == {"value": 42}


def test_client_fail_with_default_error(eng: Engine) -> None:
    job_id, run_id = eng.running(retries=2)
    err = {"value": "No error information provided"}
    assert eng.call("jobFail", job_id, run_id, err, {"fatal": False}) is True
    assert eng.log(job_id)[-1]["message"] == "Job Failed with Error: No error information provided."


def test_client_ready_and_rerun_calls(eng: Engine) -> None:
    waiting = eng.save(after=T0 + 10)
    assert eng.call("jobReady", waiting, {"force": False}) is False
    done, _ = eng.completed("d")
    new_id = eng.call("jobRerun", done, {"repeats": 0, "wait": 300_000})
    doc = eng.get(new_id)
    assert (doc["status"], doc["after"]) == ("waiting", eng.now + 300_000)


def test_client_save_with_cancel_repeats(eng: Engine) -> None:
    first = eng.call("jobSave", eng.doc("rep", repeats=FOREVER), {})
    second = eng.call("jobSave", eng.doc("rep", repeats=FOREVER), {"cancelRepeats": True})
    assert (eng.status(first), eng.status(second)) == ("cancelled", "ready")


def test_scrub_hook_applies_to_get_job_and_get_work(db: str) -> None:
    def scrub(doc: Doc) -> Doc:
        return {**doc, "data": {"scrubbed": True}}

    eng = Engine(db, scrub=scrub)
    try:
        eng.call("startJobServer")
        job_id = eng.save()
        assert eng.call("getJob", job_id)["data"] == {"scrubbed": True}
        assert eng.call("getJob", [job_id])[0]["data"] == {"scrubbed": True}
        assert eng.call("getJob", "missingJobId23456") is None
        [doc] = eng.call("getWork", "t")
        assert doc["data"] == {"scrubbed": True}
        assert eng.stored(job_id)["data"] == {"n": 1}  # stored data untouched
    finally:
        eng.close()
