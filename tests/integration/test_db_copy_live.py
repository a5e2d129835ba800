"""`jobcollection db copy --live`: a copy of a queue still in use follows the source's changes
until the writers stop, then both sides hold the same jobs, users and tokens."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from jobcollection import Job, JobCollection
from jobcollection.cli.main import main
from jobcollection.server.accounts import Accounts
from jobcollection.storage import live_copy, open_storage, transfer
from jobcollection.storage.port import JobDoc
from storage_support import Databases, dump_tables

MAX_STEPS = 2000  # the writer's bound, whatever happens
STEPS_AFTER_FOLLOWING = 40  # what the writer still does once the copy follows the feed


def _everything(url: str) -> tuple[dict[str, dict[str, JobDoc]], list[Any], list[Any]]:
    """Every job (by collection, by id, with its log), user and token."""
    storage = open_storage(url)
    try:
        jobs = {}
        for name in storage.collections():
            with storage.read(name) as tx:
                docs = tx.find()
                logs = tx.log_of([doc["_id"] for doc in docs])
            jobs[name] = {doc["_id"]: {**doc, "log": logs.get(doc["_id"], [])} for doc in docs}
        users = sorted(storage.users.list_users(), key=lambda user: user.id)
        return jobs, users, sorted(storage.users.tokens())
    finally:
        storage.close()


def _fill(url: str, jobs: int) -> None:
    with JobCollection("queue", db=url) as jc:
        jc.save_jobs([Job(jc, "mail", {"n": n}) for n in range(jobs)])
        Job(jc, "later", {}).delay(3_600_000).save()
    with JobCollection("other", db=url) as jc:
        Job(jc, "x", {}).save()


class Writer(threading.Thread):
    """Uses the source the way servers and workers would: saves, claims, completes, fails,
    cancels, removes, logs, and a login, one small step at a time, until told to stop."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.following = threading.Event()  # the copy follows the feed now
        self.steps = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # reported by the test
            self.error = error

    def _run(self) -> None:
        storage = open_storage(self.url)
        accounts = Accounts(storage.users, bcrypt_rounds=4)
        after_following = 0
        try:
            with JobCollection("queue", db=self.url) as jc:
                jc.start_job_server()
                while self.steps < MAX_STEPS and after_following < STEPS_AFTER_FOLLOWING:
                    self._step(jc, accounts)
                    self.steps += 1
                    if self.following.is_set():
                        after_following += 1
                    time.sleep(0.002)
        finally:
            storage.close()

    def _step(self, jc: JobCollection, accounts: Accounts) -> None:
        n = self.steps
        Job(jc, "mail", {"new": n}).save()
        work = jc.get_work("mail")
        for job in work:
            job.log(f"step {n}")
            if n % 3 == 0:
                job.fail({"step": n})
            else:
                job.done({"step": n})
        if n % 5 == 0:
            [ready] = jc.find({"status": "ready"}, limit=1) or [None]
            if ready is not None:
                jc.cancel_jobs([ready.id])
        if n % 7 == 0:
            [finished] = jc.find({"status": "completed"}, limit=1) or [None]
            if finished is not None:
                jc.remove_jobs([finished.id])
        if n == 10:
            accounts.add_user("late", "pw-late")
        if n % 25 == 0 and n:
            accounts.login({"user": {"username": "late"}, "password": "pw-late"})


def test_a_live_copy_follows_the_writers_until_they_stop(dbs: Databases) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source, 200)
    writer = Writer(source)
    writer.start()
    deadline = time.monotonic() + 30
    while writer.steps < 20:  # the queue is in use before the copy starts
        assert writer.is_alive(), writer.error
        assert time.monotonic() < deadline
        time.sleep(0.01)
    from_storage, to_storage = open_storage(source), open_storage(target)
    try:

        def following(changes: int, quiet: float) -> None:
            writer.following.set()

        report = live_copy.copy_live(from_storage, to_storage, quiet_s=0.5, following=following)
    finally:
        from_storage.close()
        to_storage.close()
    writer.join(30)
    assert writer.error is None
    assert not writer.is_alive()
    assert report.changes > 0  # the writer went on while the copy ran
    assert _everything(target) == _everything(source)
    assert report.jobs == {name: len(docs) for name, docs in _everything(source)[0].items()}


def test_the_comparison_finds_a_difference(dbs: Databases) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source, 5)
    from_storage, to_storage = open_storage(source), open_storage(target)
    try:
        transfer.copy_database(from_storage, to_storage)
        assert live_copy.compare(from_storage, to_storage)[0] == {"other": 1, "queue": 6}
        with JobCollection("queue", db=target) as jc:
            [job] = jc.find({"type": "later"})
            jc.pause_jobs([job.id])
        with pytest.raises(transfer.CopyMismatch, match=r"'queue'.*different documents"):
            live_copy.compare(from_storage, to_storage)
    finally:
        from_storage.close()
        to_storage.close()


def test_the_command_copies_a_quiet_source_and_says_so(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source, 3)
    argv = ["db", "copy", "--live", "--quiet-for", "0.2", "--from", source, "--to", target]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "queue: 4 jobs" in out
    assert "changes followed after the snapshot: 0" in out
    assert "both sides hold the same documents" in out
    assert _everything(target) == _everything(source)


def test_a_live_copy_into_a_non_empty_target_is_refused(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source, 3)
    with JobCollection("queue", db=target) as jc:
        Job(jc, "mine", {}).save()
    before = sorted(dump_tables(target).items())
    argv = ["db", "copy", "--live", "--force", "--from", source, "--to", target]
    assert main(argv) == 1
    assert "a live copy needs an empty target; it holds 1 job in 'queue'" in (
        capsys.readouterr().err
    )
    assert sorted(dump_tables(target).items()) == before


@pytest.mark.parametrize("seconds", ["0", "-1", "soon", "7200"])
def test_a_bad_quiet_time_is_a_usage_error(
    dbs: Databases, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source, 1)
    argv = ["db", "copy", "--live", "--quiet-for", seconds, "--from", source, "--to", target]
    assert main(argv) == 2
    assert "--quiet-for" in capsys.readouterr().err
    assert _everything(target) == ({}, [], [])
