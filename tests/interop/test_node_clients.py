"""The real node.js clients of the original (npm meteor-job 1.5.2, ddp 0.12.1, ddp-login 1.0.10,
later 1.2.0) against `jobcollection serve` (SPEC.md sections 6, 8, 9 and the checklist of 10).

Each test starts the server as a subprocess on a fresh database with user `ada`, runs one
script of ``node/`` and checks what it printed and what the database holds (through the Python
API on the same file, i.e. from another process). Without node or the npm packages (installed
by ``tests/interop/install.sh``) the tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from interop_harness import (
    EMAIL,
    PASSWORD,
    ROOT,
    USER,
    NodeProcess,
    Served,
    cli,
    node_env,
    run_node,
    skip_without_node,
)

from jobcollection import FOREVER, FOREVER_DATE, Date, Job, JobCollection, next_occurrence
from storage_support import Databases

pytestmark = pytest.mark.node

EVERY_5_MINS = {"schedules": [{"m": list(range(0, 60, 5))}], "exceptions": []}
WEEKDAYS_AT_9 = {"schedules": [{"s": [0], "m": [0], "h": [9], "d": [2, 3, 4, 5, 6]}]}
FIVE_MIN = 300_000
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
NINETY_DAYS = 90 * 24 * 3600 * 1000
REFUSED = "Incorrect username or password"  # one answer for every failed password login


@pytest.fixture
def served(tmp_path: Path, db: str) -> Iterator[Served]:
    skip_without_node()
    server = Served(tmp_path, db)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def login_server(
    tmp_path_factory: pytest.TempPathFactory, module_dbs: Databases
) -> Iterator[Served]:
    """One server for the login tests (they only log in and out)."""
    skip_without_node()
    server = Served(tmp_path_factory.mktemp("login"), module_dbs("login"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jc(served: Served) -> Iterator[JobCollection]:
    """The served collection, opened by this (other) process on the same database file."""
    with JobCollection(ROOT, db=served.db) as collection:
        yield collection


def _ms(value: Any) -> int:
    assert isinstance(value, dict), value
    assert set(value) == {"$date"}, value
    ms = value["$date"]
    assert isinstance(ms, int)
    return ms


def _log(jc: JobCollection, job_id: str) -> list[dict[str, Any]]:
    job = jc.get_job(job_id, get_log=True)
    assert job is not None
    log: list[dict[str, Any]] = job.doc["log"]
    return log


def _login_token(served: Served) -> dict[str, Any]:
    run = run_node("login.js", served, "ddplogin").ok()
    result: dict[str, Any] = run.one("ddplogin")["result"]
    return result


# -- a. the README's worker ----------------------------------------------------------------------


def test_readme_worker_completes_jobs_saved_by_python_and_the_cli(
    served: Served, jc: JobCollection
) -> None:
    token = _login_token(served)["token"]
    email = {
        "address": "bozo@clowns.com",
        "subject": "Critical rainbow hair shortage",
        "message": "LOL; JK, KThxBye.",
    }
    first = Job(jc, "sendEmail", {"email": email}).priority("normal").save()
    assert isinstance(first, str)
    # The README's DDPlogin(ddp, cb) with no options: METEOR_TOKEN, no prompt (stdin is closed).
    env = node_env(None, None, METEOR_TOKEN=token, JC_EXPECT="2")
    second_email = {"address": "ada@example.com", "subject": "Hi", "message": "from the CLI"}
    with NodeProcess("worker.js", served, env=env) as worker:
        login = worker.wait_for("login")
        assert login == {"event": "login", "id": served.user_id, "type": "resume"}
        data = json.dumps({"email": second_email})
        second = cli(served.db, "--collection", ROOT, "submit", "sendEmail", "--data", data)
        run = worker.finish()
    run.ok()
    assert "Account:" not in run.stderr  # ddp-login never prompted

    jobs = {event["id"]: event for event in run.all("job")}
    assert set(jobs) == {first, second}
    assert jobs[first]["data"] == {"email": email}
    assert jobs[second]["data"] == {"email": second_email}
    assert [e["result"] for e in run.all("logged")] == [True, True]
    assert [e["result"] for e in run.all("done")] == [True, True]
    assert run.one("shutdown")["handled"] == 2

    for job_id, sent in ((first, email), (second, second_email)):
        job = jc.get_job(job_id, get_log=True)
        assert job is not None
        doc = job.doc
        assert doc["status"] == "completed"
        assert doc["result"] == {"sent": sent["address"]}
        assert doc["progress"] == {"completed": 1, "total": 1, "percent": 100}
        assert doc["retried"] == 1
        run_id = jobs[job_id]["runId"]
        messages = [(e["message"], e["level"], e["runId"]) for e in doc["log"]]
        assert messages[-3:] == [
            ("Job Running", "info", run_id),
            (f"Sent email to {sent['address']}", "success", run_id),
            ("Job Completed", "success", run_id),
        ]
        assert doc["log"][-2]["data"] == {"to": sent["address"]}
        assert doc["runId"] == run_id  # a completed job keeps the runId of its run

    # ...and node reads it back so too.
    steps = run_node("control.js", served, f"doc:{first}", f"doc:{second}").ok()
    assert [s["result"] for s in steps.all("step")] == [
        {"status": "completed", "runId": jobs[first]["runId"]},
        {"status": "completed", "runId": jobs[second]["runId"]},
    ]


# -- b. save from node, read back -----------------------------------------------------------------


def test_node_saved_job_reads_back_with_its_settings(served: Served, jc: JobCollection) -> None:
    run = run_node("save_job.js", served, "interopSave").ok()
    built = run.one("built")["doc"]
    saved = run.one("saved")
    job_id = saved["id"]
    assert isinstance(job_id, str)
    assert len(job_id) == 17
    assert saved["docId"] == job_id

    # What meteor-job sent: retry({retries: 2, wait: 1000}) stores 3 runs; delay(500).
    assert built["retries"] == 3
    assert built["retryWait"] == 1000
    after = _ms(built["after"])
    assert 500 <= after - _ms(built["created"]) < 1000

    fetched = run.one("fetched")
    assert fetched["dataDateIsDate"] is True  # EJSON date in data came back as a JS Date
    node_doc = fetched["doc"]
    assert node_doc["_id"] == job_id
    assert "failures" not in node_doc
    assert node_doc["status"] in ("waiting", "ready")  # ready once `after` has passed
    assert _ms(node_doc["after"]) == after
    assert node_doc["retryUntil"] == {"$date": FOREVER_DATE}
    assert node_doc["repeatUntil"] == {"$date": FOREVER_DATE}
    messages = [e["message"] for e in node_doc["log"]]
    assert messages[:2] == ["Constructed", "Job Submitted"]
    if node_doc["status"] == "waiting":
        assert node_doc["updated"] == built["updated"]  # insert keeps the client's `updated`
        assert messages == ["Constructed", "Job Submitted"]
    refreshed = run.one("refreshed")
    assert refreshed["ok"] is True
    assert refreshed["doc"]["_id"] == job_id
    assert "log" not in refreshed["doc"]  # refresh() asks getLog: false
    assert run.one("missing")["result"] == "undefined"

    job = jc.get_job(job_id, get_log=True)
    assert job is not None
    doc = job.doc
    assert doc["type"] == "interopSave"
    assert doc["data"] == {"to": "bozo@clowns.com", "when": Date(1582977600000), "n": 3.5}
    for key, value in {
        "retries": 3,
        "repeatRetries": 3,
        "retried": 0,
        "retryWait": 1000,
        "retryBackoff": "constant",
        "retryUntil": FOREVER_DATE,
        "repeats": 0,
        "repeatWait": 300000,
        "repeatUntil": FOREVER_DATE,
        "priority": 0,
        "depends": [],
        "resolved": [],
        "runId": None,
    }.items():
        assert doc[key] == value, key
    assert doc["created"] == _ms(node_doc["created"])
    # Ours readies a job at its `after` time (SPEC 3.1 Decision), not at the next sweep.
    _wait_until(lambda: _status(jc, job_id) == "ready", 10)
    assert "Promoted to ready" in [e["message"] for e in _log(jc, job_id)]

    # EJSON (SPEC 8): what node sent comes back equal, and is stored as Python values.
    ejson = run.one("ejson")
    assert ejson["equal"] is True, ejson
    assert ejson["got"] == ejson["sent"]
    stored = jc.get_job(ejson["id"])
    assert stored is not None
    data = stored.doc["data"]
    assert data["bin"] == b"\x01\xff\x00>"
    assert data["inf"] == math.inf
    assert data["ninf"] == -math.inf
    assert math.isnan(data["nan"])
    assert data["lit"] == {"$date": 5}
    assert data["lit2"] == {"$type": "x", "$value": 1}
    assert data["nested"] == [{"d": Date(1)}]
    assert data["text"] == "\u00e9\u2603\u0000"
    assert data["big"] == 2**53 - 1


def _status(jc: JobCollection, job_id: str) -> str | None:
    job = jc.get_job(job_id)
    return None if job is None else job.status


def _wait_until(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        time.sleep(0.05)


# -- c. later.js schedules ------------------------------------------------------------------------


def _next_multiple(ms: int, step: int) -> int:
    return (ms // step + 1) * step


def _next_weekday_9am(ms: int) -> int:
    """The first Monday-Friday 09:00:00 UTC strictly after `ms` (independent of our engine)."""
    start = datetime.fromtimestamp(ms / 1000, UTC)
    day = start.replace(hour=9, minute=0, second=0, microsecond=0)
    while day <= start or day.weekday() >= 5:
        day += timedelta(days=1)
    return int(day.timestamp() * 1000)


def test_later_schedules_saved_from_node(served: Served, jc: JobCollection) -> None:
    run = run_node("schedule.js", served, "report").ok()
    parsed = run.one("parsed")
    assert parsed["text"] == {**EVERY_5_MINS, "error": -1}  # later.js 1.2.0 (SPEC 7 table)
    every5, cron = run.all("saved")

    # every 5 mins: meteor-job drops `error`; `after` (epoch) -> first occurrence after now.
    assert every5["sent"]["repeatWait"] == EVERY_5_MINS
    assert every5["sent"]["after"] == {"$date": 0}
    stored = jc.get_job(every5["id"])
    assert stored is not None
    doc = stored.doc
    assert doc["repeatWait"] == EVERY_5_MINS
    assert doc["repeats"] == FOREVER
    assert every5["stored"]["status"] == "waiting"  # as saved (the script then runs it once)
    server_now = doc["created"]  # the server's clock at insert = the clamped `after`
    assert every5["before"] <= server_now <= every5["after"] + 1
    saved_after = _ms(every5["stored"]["after"])  # (jobReady later set `after` to its time)
    assert saved_after == _next_multiple(server_now, FIVE_MIN)
    assert saved_after == next_occurrence(EVERY_5_MINS, server_now)

    # cron '0 9 * * 1-5' (5 fields: s=[0] added), repeats 2.
    assert cron["sent"]["repeatWait"] == {**WEEKDAYS_AT_9, "exceptions": []}
    stored = jc.get_job(cron["id"])
    assert stored is not None
    doc = stored.doc
    assert doc["repeatWait"] == {**WEEKDAYS_AT_9, "exceptions": []}
    assert doc["repeats"] == 2
    assert doc["status"] == "waiting"
    assert doc["after"] == _next_weekday_9am(doc["created"])

    # Run the every-5-mins job once from node: done({repeatId: true}) returns the repeat's id
    # and the repeat is due at the first occurrence later than done-time + 500 ms.
    repeated = run.one("repeated")
    assert repeated["readied"] is True
    assert repeated["claimed"]["status"] == "running"
    repeat_id = repeated["repeatId"]
    assert isinstance(repeat_id, str)
    assert repeat_id != every5["id"]
    repeat = jc.get_job(repeat_id, get_log=True)
    assert repeat is not None
    rdoc = repeat.doc
    assert rdoc["repeatWait"] == EVERY_5_MINS
    assert rdoc["repeats"] == FOREVER - 1
    assert rdoc["repeated"] == 1
    assert rdoc["status"] == "waiting"
    assert rdoc["after"] % FIVE_MIN == 0
    done_at = rdoc["created"]  # the server's clock at the repeat's insert (inside jobDone)
    assert repeated["doneAt"] <= done_at
    assert rdoc["after"] in (
        _next_multiple(repeated["doneAt"] + 500, FIVE_MIN),
        _next_multiple(done_at + 500, FIVE_MIN),
    )
    assert rdoc["log"][0]["message"] == "Rerunning job"
    original = jc.get_job(every5["id"])
    assert original is not None
    assert original.status == "completed"
    assert original.doc["result"] == {"ok": True}


# -- d. cancel / restart / remove by id -----------------------------------------------------------


def test_cancel_restart_remove_by_id_from_node(served: Served, jc: JobCollection) -> None:
    antecedent = Job(jc, "ctl", {"n": 1})
    a = antecedent.save()
    b = Job(jc, "ctl", {"n": 2}).depends(antecedent).save()
    c = Job(jc, "bulk", {}).save()
    d = Job(jc, "bulk", {}).save()
    assert all(isinstance(x, str) for x in (a, b, c, d))
    steps = [
        f"get:{a}",
        f"get:{b}",
        f"cancel:{b}",  # job.cancel() sends antecedents: true -> a is cancelled too
        f"get:{a}",
        f"get:{b}",
        f"restart:{a}",  # job.restart() sends dependents: true -> b is restarted too
        f"get:{a}",
        f"get:{b}",
        f"remove:{b}",  # waiting: not removable
        f"cancel:{a}",  # dependents (server default true) -> b cancelled
        f"get:{b}",
        f"remove:{a}",
        f"get:{a}",
        f"cancelJobs:{c},{d}",
        f"restartJobs:{c},{d}",
        f"removeJobs:{c},{d}",  # ready: not removable
        f"pause:{c}",
        f"resume:{c}",
        f"cancelJobs:{c},{d}",
        f"removeJobs:{c},{d}",
        f"get:{c}",
        "get:noSuchJob",
    ]
    run = run_node("control.js", served, *steps).ok()
    outcome = [(e["op"], e.get("result", e.get("error"))) for e in run.all("step")]
    assert outcome == [
        ("get", "ready"),
        ("get", "waiting"),
        ("cancel", True),
        ("get", "cancelled"),
        ("get", "cancelled"),
        ("restart", True),
        ("get", "ready"),
        ("get", "waiting"),
        ("remove", False),
        ("cancel", True),
        ("get", "cancelled"),
        ("remove", True),
        ("get", None),
        ("cancelJobs", True),
        ("restartJobs", True),
        ("removeJobs", False),
        ("pause", True),
        ("resume", True),
        ("cancelJobs", True),
        ("removeJobs", True),
        ("get", None),
        ("get", None),
    ]
    assert jc.get_job(a) is None
    assert jc.get_job(c) is None
    assert jc.get_job(d) is None
    assert _status(jc, b) == "cancelled"
    messages = [e["message"] for e in _log(jc, b)]
    assert messages.count("Job Cancelled") == 2
    assert "Job Restarted" in messages


# -- e. subscription ------------------------------------------------------------------------------


def test_subscription_sees_added_changed_removed(served: Served, jc: JobCollection) -> None:
    before = Job(jc, "earlier", {"n": 0}).save()
    jc.start_job_server()  # this process claims too (the server's own queue is untouched)
    with NodeProcess("subscribe.js", served, "2", env=node_env()) as watcher:
        ready = watcher.wait_for("ready")
        assert before in ready["docs"]
        assert ready["docs"][before]["status"] == "ready"
        job_id = Job(jc, "watch", {"n": 1}).retry(1, wait=0).save()
        assert isinstance(job_id, str)
        added = _wait_event(watcher, "added", job_id)
        claimed = jc.get_work("watch", work_timeout=60_000)
        assert [job.id for job in claimed] == [job_id]
        running = _wait_change(watcher, job_id, status="running")
        assert claimed[0].fail({"reason": "try again"})
        _wait_until(lambda: _status(jc, job_id) == "ready", 10)
        again = jc.get_work("watch")  # no workTimeout this time: it is cleared
        assert [job.id for job in again] == [job_id]
        # fail, ready and the new claim may reach node as one change (status stays "running")
        running_again = _wait_change(watcher, job_id, runId=again[0].run_id)
        assert again[0].done({"ok": 1})
        completed = _wait_change(watcher, job_id, status="completed")
        run_node("control.js", served, f"cancel:{before}", f"remove:{before}").ok()  # over DDP
        assert jc.remove_jobs([job_id])  # from this process
        run = watcher.finish()
    run.ok()

    assert added["doc"]["type"] == "watch"
    assert added["doc"]["status"] in ("waiting", "ready")  # insert and ready may be merged
    assert "_private" not in added["doc"]
    assert running["fields"]["runId"] == claimed[0].run_id
    assert running["fields"]["workTimeout"] == 60_000
    assert "expiresAfter" in running["fields"]
    assert set(running_again["cleared"]) == {"workTimeout", "expiresAfter"}
    assert running_again["fields"]["runId"] == again[0].run_id
    assert completed["fields"]["result"] == {"ok": 1}
    assert sorted(event["id"] for event in run.all("removed")) == sorted([before, job_id])
    # Every change of an observed document is for a document node ddp already had.
    seen = {event["id"] for event in run.all("added")}
    assert {event["id"] for event in run.all("changed")} <= seen


def _wait_event(watcher: NodeProcess, name: str, job_id: str) -> dict[str, Any]:
    while True:
        event = watcher.wait_for(name)
        if event["id"] == job_id:
            return event


def _wait_change(watcher: NodeProcess, job_id: str, **fields: object) -> dict[str, Any]:
    while True:
        event = watcher.wait_for("changed")
        changed = event["fields"]
        if event["id"] == job_id and all(changed.get(k) == v for k, v in fields.items()):
            return event


# -- g. a JobQueue woken by ddp.observe -----------------------------------------------------------


def test_queue_without_polling_is_triggered_by_the_subscription(
    served: Served, jc: JobCollection
) -> None:
    with NodeProcess("queue_trigger.js", served, "nudge", "5", env=node_env()) as watcher:
        watcher.wait_for("ready")
        # From this other process, due a moment later: they become ready well after the queue's
        # first getWork (sent as it starts) came back empty, so only a trigger can start them
        # (saved ready at once, that first call could sometimes take them itself).
        ids = [Job(jc, "nudge", {"i": i}).delay(300).save() for i in range(5)]
        run = watcher.finish()
    run.ok()
    end = run.one("end")
    assert sorted(end["done"]) == sorted(ids)
    assert end["triggers"] >= 1
    batches = [event["ids"] for event in run.all("batch")]
    assert all(1 <= len(batch) <= 2 for batch in batches)  # payload 2
    assert sorted(i for batch in batches for i in batch) == sorted(ids)
    for job_id in ids:
        job = jc.get_job(job_id)
        assert job is not None
        assert job.status == "completed"
        assert job.doc["result"] == {"by": "node"}


# -- f. login ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "password", "reason"),
    [
        (USER, "wrong password", REFUSED),
        (EMAIL, "wrong password", REFUSED),  # a 403: ddp-login tries no username fallback
        ("nobody", PASSWORD, REFUSED),
        ("nobody@example.com", PASSWORD, REFUSED),  # the same answer: names stay private
    ],
)
def test_login_failures(login_server: Served, account: str, password: str, reason: str) -> None:
    env = node_env(account, password)
    run = run_node("login.js", login_server, "ddplogin", "probe", "subscribe", env=env).ok()
    login = run.one("ddplogin")
    assert login["ok"] is False
    assert login["error"] == {
        "error": 403,
        "reason": reason,
        "details": None,
        "message": f"{reason} [403]",
        "errorType": "Meteor.Error",
    }
    probe = run.one("probe")  # still anonymous
    assert probe["ok"] is False
    assert probe["error"]["error"] == 403
    assert probe["error"]["reason"] == "Method not authorized"
    subscribe = run.one("subscribe")  # nosub with a Meteor.Error
    assert subscribe["ok"] is False
    assert subscribe["error"]["error"] == 403
    assert subscribe["error"]["errorType"] == "Meteor.Error"


@pytest.mark.parametrize("account", [USER, EMAIL, "ADA"])
def test_password_login(login_server: Served, account: str) -> None:
    env = node_env(account)
    run = run_node("login.js", login_server, "probe", "ddplogin", "probe", "subscribe", env=env)
    run.ok()
    assert run.one("subscribe") == {"event": "subscribe", "ok": True, "result": "ready"}
    first, second = run.all("probe")
    assert first["error"]["reason"] == "Method not authorized"
    assert second == {"event": "probe", "ok": True, "result": None}
    result = run.one("ddplogin")["result"]
    assert result["id"] == login_server.user_id
    assert result["type"] == "password"
    assert TOKEN.fullmatch(result["token"])
    expires = _ms(result["tokenExpires"])
    now = int(datetime.now(UTC).timestamp() * 1000)
    assert now + NINETY_DAYS - 120_000 < expires <= now + NINETY_DAYS + 1000


def test_resume_token_login_needs_no_prompt(login_server: Served) -> None:
    token = _login_token(login_server)["token"]
    env = node_env(None, None, METEOR_TOKEN=token, JC_TIMEOUT_MS="15000")
    run = run_node("login.js", login_server, "ddplogin", "probe", "logout", "probe", env=env)
    assert "Account:" not in run.stderr, "ddp-login prompted:\n" + run.describe()
    run.ok()
    login = run.one("ddplogin")
    assert login["ok"] is True, run.describe()
    assert login["result"]["id"] == login_server.user_id
    assert login["result"]["type"] == "resume"
    assert login["result"]["token"] == token
    first, second = run.all("probe")
    assert first["ok"] is True
    assert second["error"]["reason"] == "Method not authorized"  # after logout
    # The logged-out token is gone; a bad METEOR_TOKEN makes ddp-login fall back to the password.
    after = run_node("login.js", login_server, f"resume:{token}").ok()
    resume = after.one("resume")
    assert resume["ok"] is False
    assert resume["error"]["error"] == 403
    assert resume["error"]["reason"] == "You've been logged out by the server. Please log in again."
    fallback = run_node(
        "login.js", login_server, "ddplogin", "probe", env=node_env(METEOR_TOKEN=token)
    ).ok()
    assert fallback.one("ddplogin")["result"]["type"] == "password"
    assert fallback.one("probe")["ok"] is True


# -- heartbeat -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_idle_node_connection_survives_on_pongs(login_server: Served) -> None:
    """Server pings after 15 s of silence and closes 15 s after an unanswered one (SPEC 8)."""
    run = run_node("heartbeat.js", login_server, "33000", env=node_env(None, None)).ok()
    pings = [event["at"] for event in run.all("ping")]
    pongs = [event["at"] for event in run.all("pong")]
    assert len(pings) == 2, run.describe()  # at ~15 s and ~30 s: the first pong kept it open
    assert len(pongs) == 2
    assert 14_000 <= pings[0] <= 17_000
    call = run.one("call")
    assert call["error"]["reason"] == "Method not authorized"  # answered: still connected


# -- the server process itself --------------------------------------------------------------------


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path, db: str) -> None:
    server = Served(tmp_path, db)
    server.stop()  # SIGTERM, as the harness (and systemd, docker, CI runners) stop it
    assert server.process.returncode == 0, server.output()
    assert "jobcollection: stopped" in server.output()


def test_thousands_of_saves_pipelined_on_one_connection_are_all_answered(
    served: Served, jc: JobCollection
) -> None:
    """meteor-job saves 5,000 jobs without waiting for any answer: the server reads them as
    fast as it can run them (backpressure), and refuses none."""
    count = 5000
    run = run_node("save_many.js", served, str(count), "pipelined").ok()
    saved = run.one("saved")
    assert saved["failed"] == 0, saved["errors"]
    assert saved["count"] == count
    ids = {job_id for line in run.all("ids") for job_id in line["ids"]}
    assert len(ids) == count
    stored = {job.doc["_id"] for job in jc.find({"type": "pipelined"})}
    assert stored == ids
