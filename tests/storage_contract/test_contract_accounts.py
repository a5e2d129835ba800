"""Users and login tokens (`UserStore`), and the worker registry."""

from __future__ import annotations

import pytest
from contract_helpers import CLAIMED, RUNNING, OpenStorage, job

from jobcollection.core.workers import WorkerRecord
from jobcollection.errors import ConflictError
from jobcollection.storage.port import Storage, UserEmail, UserRecord

ADA = UserRecord("u1", "Ada", (UserEmail("ada@x.org", True), UserEmail("a2@x.org")), "$2b$h", 5)


def test_users_are_stored_and_found_like_meteor_finds_them(storage: Storage) -> None:
    users = storage.users
    users.insert_user(ADA)
    users.insert_user(UserRecord("u2", "bob", (), None, 7))
    assert users.user_by_id("u1") == ADA
    assert users.user_by_id("U1") is None
    assert users.user_by_username("Ada") == ADA
    assert users.user_by_username("ADA") == ADA  # the only case-insensitive match
    assert users.user_by_email("A2@X.ORG") == ADA
    assert users.user_by_email("nobody@x.org") is None
    assert [u.id for u in users.list_users()] == ["u1", "u2"]
    with pytest.raises(ConflictError, match="username 'ada'"):
        users.insert_user(UserRecord("u3", "ada"))
    with pytest.raises(ConflictError, match="e-mail address"):
        users.insert_user(UserRecord("u4", "carol", (UserEmail("ADA@x.org"),)))
    assert [u.id for u in users.list_users()] == ["u1", "u2"]  # nothing written
    assert users.set_password_hash("u2", "$2b$new", revoke_tokens=False)
    assert not users.set_password_hash("zz", "$2b$new", revoke_tokens=False)
    assert users.user_by_id("u2") == UserRecord("u2", "bob", (), "$2b$new", 7)
    assert users.remove_user("u1")
    assert not users.remove_user("u1")
    assert users.user_by_email("ada@x.org") is None


def test_tokens(storage: Storage, open_storage_again: OpenStorage) -> None:
    users = storage.users
    users.insert_user(ADA)
    assert not users.add_token("nobody", "h0", 1)
    for n in range(1, 5):
        assert users.add_token("u1", f"h{n}", n * 10)
    assert users.find_token("h2") == (ADA, 20)
    assert users.find_token("h0") is None
    assert users.add_token("u1", "h5", 50, keep=2)  # keeps h5 and the newest other, h4
    assert [users.find_token(f"h{n}") is not None for n in range(1, 6)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert open_storage_again().users.find_token("h5") == (ADA, 50)
    assert users.tokens() == [("u1", "h4", 40), ("u1", "h5", 50)]
    assert users.delete_token("h5")
    assert not users.delete_token("h5")
    users.add_token("u1", "h6", 60)
    assert users.delete_tokens_issued_before(55) == 1
    assert users.set_password_hash("u1", None, revoke_tokens=True)
    assert users.find_token("h6") is None


def worker(wid: str, started: int, **more: object) -> WorkerRecord:
    fields: dict[str, object] = {
        "kind": "local",
        "status": "active",
        "types": ("t", "u"),
        "last_seen": started,
        "lost_after": 100,
        "host": "h",
        "pid": 12,
        "concurrency": 4,
    }
    fields.update(more)
    return WorkerRecord(id=wid, started=started, **fields)  # type: ignore[arg-type]


def test_the_worker_registry(storage: Storage) -> None:
    with storage.write("q") as tx:
        assert tx.workers() == []
        assert tx.next_worker_deadline() is None
        tx.put_worker(worker("w2", 20))
        tx.put_worker(worker("w1", 10, kind="remote", address="1.2.3.4", user_id="u", username="n"))
        tx.put_worker(worker("w2", 20, concurrency=8))  # replaces
        tx.insert([job("a"), job("b"), job("c")])
        tx.claim(["t"], 2, RUNNING, CLAIMED, "w1")
        tx.claim(["t"], 1, RUNNING, CLAIMED, "ghost")
    with storage.write("q") as tx:
        listed = tx.workers()
        assert [w.id for w in listed] == ["w1", "w2"]
        assert listed[0] == worker(
            "w1", 10, kind="remote", address="1.2.3.4", user_id="u", username="n"
        )
        assert [w.running for w in listed] == [2, 0]
        assert listed[1].concurrency == 8
        assert tx.next_worker_deadline() == 110
        assert [w.id for w in tx.lapsed_workers(115)] == ["w1"]
        assert tx.beat_workers(["w1", "zz"], 200) == ["w1"]
        assert tx.next_worker_deadline() == 120
        assert [j for w, d in tx.running_of(["w1", "w2"]) for j in (w, d["_id"])] == [
            "w1", "a", "w1", "b",
        ]  # fmt: skip
        assert [d["_id"] for d in tx.orphans()] == ["c"]
        assert not tx.adopt("a", "w2")  # w1 is active
        assert tx.set_worker_status("w1", "disconnected")
        assert not tx.set_worker_status("zz", "lost")
        assert tx.adopt("a", "w2")
        assert tx.adopt("c", "w2")  # no record: adoptable
        assert tx.move_running("w1", "w2") == 1
        assert [w.running for w in tx.workers()] == [0, 3]
        assert tx.remove_worker("w1")
        assert not tx.remove_worker("w1")
    with storage.read("other") as tx:
        assert tx.workers() == []
