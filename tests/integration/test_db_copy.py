"""`jobcollection db copy --from URL --to URL [--force]`: every collection (jobs with their
logs), user and login token, checked by reading the copy back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobcollection import Job, JobCollection
from jobcollection.cli.main import main
from jobcollection.server.accounts import Accounts
from jobcollection.storage import open_storage, transfer
from jobcollection.storage.port import JobDoc, Storage
from storage_support import Databases, dump_tables


def _fill(path: str) -> dict[str, str]:
    """A database with jobs in every state, logs, a dependency, two collections, two users
    (one with an e-mail) and a login token; returns the resume token and a few job ids."""
    with JobCollection("queue", db=path) as jc:
        first = Job(jc, "mail", {"to": "a", "when": b"\x00\x01"}).retry(retries=2, wait=0)
        first.save()
        dependent = Job(jc, "report", {"n": 1}).depends([first])
        dependent.save()
        failing = Job(jc, "mail", {"to": "b"})
        failing.save()
        paused = Job(jc, "mail", {"to": "c"})
        paused.save()
        paused.pause()
        jc.start_job_server()
        (work,) = jc.get_work("mail")
        work.log("half way", level="warning")
        work.progress(1, 2)
        work.done({"sent": True})
        (work,) = jc.get_work("mail")
        work.fail({"reason": "bounced"}, fatal=True)
        Job(jc, "mail", {"to": "d"}).save()  # ready
        jc.get_work("mail")  # running
        Job(jc, "mail", {"to": "e"}).delay(60_000).save()  # waiting
        assert first.id is not None
        assert dependent.id is not None
    with JobCollection("other", db=path) as jc:
        Job(jc, "x", {"deep": {"list": [1, 2.5, None, "é"]}}).delay(60_000).save()
    storage = open_storage(path)
    try:
        accounts = Accounts(storage.users, bcrypt_rounds=4)
        accounts.add_user("ada", "s3cret-pw", "ada@example.org")
        accounts.add_user("bob", "other-pw")
        token = accounts.login({"user": {"username": "ada"}, "password": "s3cret-pw"}).token
    finally:
        storage.close()
    return {"token": token, "first": first.id, "dependent": dependent.id}


def _everything(path: str) -> tuple[dict[str, list[JobDoc]], list[Any], list[Any]]:
    storage = open_storage(path)
    try:
        jobs = {name: _docs(storage, name) for name in storage.collections()}
        return jobs, storage.users.list_users(), storage.users.tokens()
    finally:
        storage.close()


def _docs(storage: Storage, name: str) -> list[JobDoc]:
    with storage.read(name) as tx:
        docs = tx.find()
        logs = tx.log_of([doc["_id"] for doc in docs])
    for doc in docs:
        doc["log"] = logs.get(doc["_id"], [])
    return docs


def _snapshot(db: str) -> list[Any]:
    return sorted(dump_tables(db).items())


def test_a_copy_holds_every_job_log_user_and_token(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dbs("source"), dbs("target")
    made = _fill(source)
    assert main(["db", "copy", "--from", source, "--to", target]) == 0
    out = capsys.readouterr().out
    assert "queue: 6 jobs" in out
    assert "other: 1 job" in out
    assert "users: 2, login tokens: 1" in out
    assert "sha256 " in out
    jobs, users, tokens = _everything(target)
    assert (jobs, users, tokens) == _everything(source)
    statuses = sorted(doc["status"] for doc in jobs["queue"])
    assert statuses == ["completed", "failed", "paused", "ready", "running", "waiting"]
    # The copy works as a database of its own: the token logs in, the dependency resolves.
    storage = open_storage(target)
    try:
        resumed = Accounts(storage.users).login({"resume": made["token"]})
        assert resumed.username == "ada"
    finally:
        storage.close()
    with JobCollection("queue", db=target) as jc:
        dependent = jc.get_job(made["dependent"])
        assert dependent is not None
        assert dependent.doc["status"] == "ready"  # its antecedent was completed before
        assert dependent.doc["resolved"] == [made["first"]]


def test_a_non_empty_target_is_refused_and_left_alone(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source)
    with JobCollection("queue", db=target) as jc:
        Job(jc, "mine", {}).save()
    before = _snapshot(target)
    assert main(["db", "copy", "--from", source, "--to", target]) == 1
    error = capsys.readouterr().err
    assert "the target is not empty (1 job in 'queue')" in error
    assert "--force" in error
    assert _snapshot(target) == before
    # --force copies into it, keeping what was there
    assert main(["db", "copy", "--from", source, "--to", target, "--force"]) == 0
    jobs, _, _ = _everything(target)
    assert len(jobs["queue"]) == 7
    assert jobs["queue"][0]["type"] == "mine"


def test_ids_the_target_already_has_stop_the_copy_before_anything_is_written(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = dbs("source"), dbs("target")
    _fill(source)
    assert main(["db", "copy", "--from", source, "--to", target]) == 0
    capsys.readouterr()
    before = _snapshot(target)
    assert main(["db", "copy", "--from", source, "--to", target, "--force"]) == 1
    assert "the target already has jobs with these ids" in capsys.readouterr().err
    assert _snapshot(target) == before


@pytest.mark.sqlite_only(reason="SQLite files named by relative paths, one that does not exist")
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--from", "missing.db", "--to", "t.db"], 1, "--from missing.db: no such database file"),
        (["--from", "same.db", "--to", "same.db"], 2, "--to: the target is the source"),
        (["--to", "t.db"], 2, "--from"),
    ],
)
def test_bad_arguments_are_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["db", "copy", *argv]) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t.db").exists()


class _Altering:
    """A target storage whose inserts change the documents (a lossy adapter)."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def write(self, collection: str) -> Iterator[Any]:
        with self._inner.write(collection) as tx:
            real = tx.insert

            def insert(docs: list[JobDoc]) -> None:
                real([{**doc, "priority": doc["priority"] + 1} for doc in docs])

            tx.insert = insert  # type: ignore[method-assign]
            yield tx


def test_a_copy_that_differs_from_its_source_is_reported(dbs: Databases) -> None:
    source_path = dbs("source")
    _fill(source_path)
    source, target = open_storage(source_path), open_storage(dbs("target"))
    try:
        with pytest.raises(transfer.CopyMismatch, match="checksums differ"):
            transfer.copy_database(source, _Altering(target))  # type: ignore[arg-type]
    finally:
        source.close()
        target.close()
