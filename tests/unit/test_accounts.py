"""Accounts (SPEC.md section 9): Meteor's `login` / `logout`, resume tokens and
user administration, over the real SQLite user store."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bcrypt
import pytest

from jobcollection.core import ejson
from jobcollection.core.ids import SECRET_ALPHABET
from jobcollection.core.permissions import Caller
from jobcollection.errors import ConflictError, ValidationError
from jobcollection.server.accounts import (
    MAX_TOKENS_PER_USER,
    TOKEN_LIFETIME_MS,
    TOKEN_SWEEP_INTERVAL_MS,
    Accounts,
    LoginResult,
    UserNotFound,
    hash_token,
    password_digest,
)
from jobcollection.server.meteor_error import MeteorError
from jobcollection.storage import open_storage
from jobcollection.storage.port import Storage, UserEmail, UserRecord
from jobcollection.storage.sqlite import SqliteStorage
from storage_support import dump_tables

T0 = 1_700_000_000_000
NINETY_DAYS = 7_776_000_000
LOGGED_OUT = "You've been logged out by the server. Please log in again."
EXPIRED = "Your session has expired. Please log in again."
REFUSED = "Incorrect username or password"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage(db: str) -> Iterator[Storage]:
    storage = open_storage(db)
    yield storage
    storage.close()


@pytest.fixture
def accounts(storage: Storage, clock: Clock) -> Accounts:
    return Accounts(storage.users, clock=clock, bcrypt_rounds=4)


@contextmanager
def raises(code: int | str, reason: str | None) -> Iterator[None]:
    """pytest.raises for a MeteorError with exactly this code and reason."""
    with pytest.raises(MeteorError) as info:
        yield
    assert (info.value.code, info.value.reason) == (code, reason), info.value.to_wire()


def login(accounts: Accounts, options: object) -> LoginResult:
    return accounts.login(options)


def by_name(name: str, password: object) -> dict[str, object]:
    return {"user": {"username": name}, "password": password}


def digest(password: str) -> dict[str, str]:
    return {"digest": hashlib.sha256(password.encode()).hexdigest(), "algorithm": "sha-256"}


def snapshot(storage: Storage) -> tuple[list[Any], list[Any], list[Any]]:
    """The rows of the accounts tables (users, user_emails, login_tokens), each list sorted."""
    rows = dump_tables(storage.url, ["users", "user_emails", "login_tokens"])
    return rows["users"], rows["user_emails"], rows["login_tokens"]


def raw_user(storage: Storage, user_id: str, username: str, *emails: str) -> None:
    """A user written straight into the SQLite tables (as an import from elsewhere might), so
    that names differing only in case can coexist (the port refuses them)."""
    assert isinstance(storage, SqliteStorage)
    conn = sqlite3.connect(storage.path, isolation_level=None)
    try:
        hashed = bcrypt.hashpw(password_digest("pw").encode(), bcrypt.gensalt(4)).decode()
        conn.execute(
            "INSERT INTO users (id, username, username_key, bcrypt, created) VALUES (?,?,?,?,?)",
            (user_id, username, username.lower(), hashed, T0),
        )
        for address in emails:
            conn.execute(
                "INSERT INTO user_emails (address, address_key, user_id) VALUES (?,?,?)",
                (address, address.lower(), user_id),
            )
    finally:
        conn.close()


# -- password logins --------------------------------------------------------------------------


def test_password_login_creates_a_hashed_token(accounts: Accounts, storage: Storage) -> None:
    user_id = accounts.add_user("bob", "s3cret", "bob@example.org")
    result = login(accounts, by_name("bob", "s3cret"))
    assert result.user_id == user_id
    assert result.username == "bob"
    assert result.type == "password"
    assert len(result.token) == 43
    assert set(result.token) <= set(SECRET_ALPHABET)
    assert result.token_expires_ms == T0 + NINETY_DAYS == T0 + TOKEN_LIFETIME_MS
    assert result.caller == Caller(user_id, "bob")
    assert result.to_wire() == {
        "id": user_id,
        "token": result.token,
        "tokenExpires": ejson.Date(T0 + NINETY_DAYS),
        "type": "password",
    }
    assert ejson.to_ejson(result.to_wire())["tokenExpires"] == {"$date": T0 + 7776000000}
    stored = base64.b64encode(hashlib.sha256(result.token.encode()).digest()).decode()
    assert hash_token(result.token) == stored
    assert snapshot(storage)[2] == [(stored, user_id, T0)]  # never the token itself


def test_stored_hash_is_bcrypt_of_the_sha256_hex(accounts: Accounts, storage: Storage) -> None:
    user_id = accounts.add_user("bob", "pässword")
    user = storage.users.user_by_id(user_id)
    assert user is not None
    assert user.bcrypt is not None
    hex_digest = hashlib.sha256("pässword".encode()).hexdigest()
    assert bcrypt.checkpw(hex_digest.encode(), user.bcrypt.encode())
    assert user.bcrypt.startswith("$2b$04$")
    assert Accounts(storage.users).hash_password("x").startswith("$2b$10$")  # default cost


def test_digest_and_plaintext_passwords(accounts: Accounts) -> None:
    accounts.add_user("bob", "s3cret")
    assert login(accounts, by_name("bob", digest("s3cret"))).type == "password"
    assert login(accounts, by_name("bob", "s3cret")).type == "password"
    first = login(accounts, by_name("bob", "s3cret"))
    second = login(accounts, by_name("bob", "s3cret"))
    assert first.token != second.token


def test_existing_2a_hashes_are_accepted(accounts: Accounts, storage: Storage) -> None:
    user_id = accounts.add_user("bob", "old")
    legacy = bcrypt.hashpw(password_digest("meteor").encode(), bcrypt.gensalt(4, prefix=b"2a"))
    assert legacy.startswith(b"$2a$")
    assert storage.users.set_password_hash(user_id, legacy.decode(), revoke_tokens=False)
    assert login(accounts, by_name("bob", digest("meteor"))).user_id == user_id


@pytest.mark.parametrize(
    "query",
    [{"id": "ID"}, {"username": "bob"}, {"email": "bob@example.org"}],
    ids=["id", "username", "email"],
)
def test_user_by_id_username_or_email(accounts: Accounts, query: dict[str, str]) -> None:
    user_id = accounts.add_user("bob", "pw", "bob@example.org")
    query = {key: (user_id if value == "ID" else value) for key, value in query.items()}
    assert login(accounts, {"user": query, "password": "pw"}).user_id == user_id


def test_id_lookup_is_exact(accounts: Accounts) -> None:
    user_id = accounts.add_user("bob", "pw")
    with raises(403, REFUSED):
        login(accounts, {"user": {"id": user_id.lower()}, "password": "pw"})


def test_case_insensitive_match_when_unique(accounts: Accounts) -> None:
    user_id = accounts.add_user("Alice", "pw", "Alice@Example.org")
    assert login(accounts, by_name("aLiCe", "pw")).user_id == user_id
    options = {"user": {"email": "alice@example.ORG"}, "password": "pw"}
    assert login(accounts, options).user_id == user_id


@pytest.mark.sqlite_only(reason="writes user rows the port refuses, with raw SQL")
def test_exact_match_wins_and_ambiguous_case_insensitive_is_not_found(
    accounts: Accounts, storage: Storage
) -> None:
    raw_user(storage, "u-lower", "bob", "bob@example.org")
    raw_user(storage, "u-upper", "BOB", "BOB@example.org")
    assert login(accounts, by_name("bob", "pw")).user_id == "u-lower"
    assert login(accounts, by_name("BOB", "pw")).user_id == "u-upper"
    with raises(403, REFUSED):
        login(accounts, by_name("Bob", "pw"))
    email = {"user": {"email": "BOB@example.org"}, "password": "pw"}
    assert login(accounts, email).user_id == "u-upper"
    with raises(403, REFUSED):
        login(accounts, {"user": {"email": "Bob@Example.org"}, "password": "pw"})


@pytest.mark.sqlite_only(reason="writes user rows the port refuses, with raw SQL")
def test_one_user_with_two_addresses_differing_in_case_is_still_unique(
    accounts: Accounts, storage: Storage
) -> None:
    raw_user(storage, "u1", "carol", "carol@example.org", "Carol@example.org")
    options = {"user": {"email": "CAROL@example.org"}, "password": "pw"}
    assert login(accounts, options).user_id == "u1"


@pytest.mark.parametrize("key", ["username", "email", "id"])
def test_a_nul_character_in_the_user_is_an_unknown_user(
    accounts: Accounts, storage: Storage, key: str
) -> None:
    """No account holds a NUL (PostgreSQL's text cannot): the same refusal as for a stranger,
    not a storage error, and nothing written."""
    accounts.add_user("bob", "pw")
    before = snapshot(storage)
    with raises(403, REFUSED):
        login(accounts, {"user": {key: "bob\x00"}, "password": "pw"})
    assert snapshot(storage) == before


def test_unknown_user(accounts: Accounts) -> None:
    accounts.add_user("bob", "pw")
    with raises(403, REFUSED):
        login(accounts, by_name("alice", "pw"))
    with raises(403, REFUSED):
        login(accounts, {"user": {"email": "nobody@example.org"}, "password": "pw"})


def test_user_without_password(accounts: Accounts, storage: Storage) -> None:
    user_id = accounts.add_user("bob", "pw")
    storage.users.set_password_hash(user_id, None, revoke_tokens=False)
    with raises(403, REFUSED):  # as if the password were wrong
        login(accounts, by_name("bob", "pw"))
    assert [u.has_password for u in accounts.list_users()] == [False]


def test_wrong_password(accounts: Accounts, storage: Storage) -> None:
    accounts.add_user("bob", "pw")
    with raises(403, REFUSED):
        login(accounts, by_name("bob", "PW"))
    with raises(403, REFUSED):
        login(accounts, by_name("bob", digest("nope")))
    with raises(403, REFUSED):  # longer than bcrypt takes: still just wrong
        login(accounts, by_name("bob", {"digest": "x" * 100, "algorithm": "sha-256"}))
    with raises(403, REFUSED):
        login(accounts, by_name("bob", {"digest": "", "algorithm": "sha-256"}))
    assert snapshot(storage)[2] == []


def test_unknown_users_and_wrong_passwords_look_the_same(
    accounts: Accounts, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer, and one bcrypt check each (against a hash of our cost for a user who does
    not exist or has no password), so neither the reply nor its timing lists usernames."""
    accounts.add_user("bob", "pw", "bob@example.org")
    nopass = accounts.add_user("carol", "pw")
    storage.users.set_password_hash(nopass, None, revoke_tokens=False)
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    attempts: list[dict[str, object]] = [
        by_name("bob", "wrong"),
        by_name("alice", "wrong"),
        by_name("carol", "pw"),
        {"user": {"email": "nobody@example.org"}, "password": "pw"},
        {"user": {"id": "nobody"}, "password": digest("pw")},
    ]
    answers = []
    for options in attempts:
        with pytest.raises(MeteorError) as refused:
            login(accounts, options)
        answers.append(refused.value.to_wire())
    assert answers == [MeteorError(403, REFUSED).to_wire()] * len(attempts)
    assert len(checked) == len(attempts)
    assert all(hashed.startswith(b"$2b$04$") for hashed in checked)  # our cost, for all
    assert snapshot(storage)[2] == []


def test_other_digest_algorithm_is_a_500_whether_or_not_the_user_exists(
    accounts: Accounts,
) -> None:
    accounts.add_user("bob", "pw")
    sha512 = {"digest": hashlib.sha512(b"pw").hexdigest(), "algorithm": "sha-512"}
    with raises(500, "Internal server error"):
        login(accounts, by_name("bob", sha512))
    with raises(500, "Internal server error"):  # not a way to tell who exists
        login(accounts, by_name("nobody", sha512))


# -- option shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [None, [], ["x"], "resume", 1, True, ejson.Date(0)])
def test_options_must_be_a_plain_object(accounts: Accounts, options: object) -> None:
    with raises(400, "Match failed"):
        login(accounts, options)


@pytest.mark.parametrize(
    "options",
    [
        {"user": {"username": "bob"}, "password": "pw", "extra": 1},
        {"user": {"username": "bob"}, "password": "pw", "resume": ""},
        {"password": "pw"},
        {"user": {"username": "bob", "email": "bob@example.org"}, "password": "pw"},
        {"user": {}, "password": "pw"},
        {"user": {"username": ""}, "password": "pw"},
        {"user": {"username": 5}, "password": "pw"},
        {"user": {"name": "bob"}, "password": "pw"},
        {"user": "bob", "password": "pw"},
        {"user": {"username": "bob"}, "password": 12345},
        {"user": {"username": "bob"}, "password": ["pw"]},
        {"user": {"username": "bob"}, "password": {"digest": "d"}},
        {"user": {"username": "bob"}, "password": {"digest": 1, "algorithm": "sha-256"}},
        {"user": {"username": "bob"}, "password": {"digest": "d", "algorithm": "sha-256", "x": 1}},
    ],
)
def test_malformed_password_options_are_400(accounts: Accounts, options: object) -> None:
    accounts.add_user("bob", "pw")
    with raises(400, "Match failed"):
        login(accounts, options)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"password": ""},
        {"resume": ""},
        {"resume": None, "password": 0},
        {"resume": False, "other": 1},
        {"user": {"username": "bob"}},
        {"srp": {"M": "x"}},
    ],
)
def test_nothing_applies_is_unrecognized(accounts: Accounts, options: object) -> None:
    with raises(400, "Unrecognized options for login request"):
        login(accounts, options)


# -- resume tokens ----------------------------------------------------------------------------


def test_resume_reuses_the_token_until_it_expires(accounts: Accounts, clock: Clock) -> None:
    user_id = accounts.add_user("bob", "pw")
    token = login(accounts, by_name("bob", "pw")).token
    clock.now = T0 + NINETY_DAYS - 1
    resumed = login(accounts, {"resume": token})
    assert resumed == LoginResult(user_id, "bob", token, T0 + NINETY_DAYS, "resume")
    assert accounts.resume(token) == Caller(user_id, "bob")
    clock.now = T0 + NINETY_DAYS
    with raises(403, EXPIRED):
        login(accounts, {"resume": token})
    assert accounts.resume(token) is None


@pytest.mark.sqlite_only(reason="another connection holds SQLite's write lock")
def test_a_resume_login_does_not_wait_behind_a_write_waiting_for_the_lock(
    accounts: Accounts, storage: Storage
) -> None:
    """Another process holds the write lock, and a job write of ours waits for it (holding
    the storage's write connection): a resume login only reads, and is served meanwhile."""
    assert isinstance(storage, SqliteStorage)
    user_id = accounts.add_user("bob", "pw")
    token = login(accounts, by_name("bob", "pw")).token
    other = sqlite3.connect(storage.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    entered = threading.Event()

    def write() -> None:
        entered.set()
        with storage.write("queue"):
            pass

    writer = threading.Thread(target=write)
    try:
        writer.start()
        entered.wait(5)
        time.sleep(0.05)  # the writer is in BEGIN IMMEDIATE, waiting for the lock
        resumed = login(accounts, {"resume": token})
        assert writer.is_alive(), "the write did not wait for the lock: the test proves nothing"
        assert resumed.user_id == user_id
        assert accounts.resume(token) == Caller(user_id, "bob")
    finally:
        other.execute("COMMIT")
        other.close()
        writer.join(10)
    assert not writer.is_alive()


def test_resume_with_unknown_token(accounts: Accounts) -> None:
    accounts.add_user("bob", "pw")
    with raises(403, LOGGED_OUT):
        login(accounts, {"resume": "x" * 43})
    assert accounts.resume("x" * 43) is None


@pytest.mark.parametrize("token", [5, True, {}, [], {"token": "t"}])
def test_resume_must_be_a_string(accounts: Accounts, token: object) -> None:
    with raises(400, "Match failed"):
        login(accounts, {"resume": token})


def test_resume_handler_runs_before_the_password_handler(accounts: Accounts) -> None:
    accounts.add_user("bob", "pw")
    token = login(accounts, by_name("bob", "pw")).token
    both = {"resume": token, "user": {"username": "bob"}, "password": "wrong"}
    assert login(accounts, both).type == "resume"
    with raises(403, LOGGED_OUT):
        login(accounts, {**both, "resume": "gone"})


def test_logout_deletes_only_that_token(accounts: Accounts, storage: Storage) -> None:
    accounts.add_user("bob", "pw")
    first = login(accounts, by_name("bob", "pw")).token
    second = login(accounts, by_name("bob", "pw")).token
    accounts.logout(first)
    with raises(403, LOGGED_OUT):
        login(accounts, {"resume": first})
    assert login(accounts, {"resume": second}).token == second
    accounts.logout(None)  # a connection that never logged in
    accounts.logout("never-issued")
    assert [row[0] for row in snapshot(storage)[2]] == [hash_token(second)]


def test_expire_tokens(accounts: Accounts, clock: Clock, storage: Storage) -> None:
    accounts.add_user("bob", "pw")
    old = login(accounts, by_name("bob", "pw")).token
    clock.now = T0 + 1000
    new = login(accounts, by_name("bob", "pw")).token
    clock.now = T0 + NINETY_DAYS + 500
    assert accounts.expire_tokens() == 1
    assert accounts.resume(old) is None
    assert accounts.resume(new) is not None
    assert len(snapshot(storage)[2]) == 1


def test_a_user_keeps_only_the_newest_tokens(
    accounts: Accounts, clock: Clock, storage: Storage
) -> None:
    """A loop of logins must not grow the table forever: each user keeps its newest 100."""
    bob = accounts.add_user("bob", "pw")
    alice = accounts.add_user("alice", "pw")
    alices = login(accounts, by_name("alice", "pw")).token
    tokens = []
    for _ in range(150):
        clock.now += 1
        tokens.append(login(accounts, by_name("bob", "pw")).token)
    rows = snapshot(storage)[2]
    assert len([row for row in rows if row[1] == bob]) == MAX_TOKENS_PER_USER == 100
    assert {row[0] for row in rows if row[1] == bob} == {hash_token(t) for t in tokens[-100:]}
    assert accounts.resume(tokens[49]) is None  # the oldest went
    assert accounts.resume(tokens[50]) is not None
    assert accounts.resume(alices) == Caller(alice, "alice")  # others keep theirs


def test_the_new_token_is_kept_even_among_tokens_of_the_same_millisecond(
    accounts: Accounts, storage: Storage
) -> None:
    accounts.add_user("bob", "pw")
    for _ in range(110):  # the clock stands still: every token has the same time
        token = login(accounts, by_name("bob", "pw")).token
        assert accounts.resume(token) is not None
    assert len(snapshot(storage)[2]) == 100


def test_expired_tokens_are_removed_while_the_server_runs(
    accounts: Accounts, clock: Clock, storage: Storage
) -> None:
    """Not only at start: logging in tidies too, at most every `TOKEN_SWEEP_INTERVAL_MS`."""
    bob = accounts.add_user("bob", "pw")
    accounts.add_user("alice", "pw")
    old = login(accounts, by_name("bob", "pw")).token
    clock.now = T0 + NINETY_DAYS + 1  # bob's token has expired; nobody restarted anything
    login(accounts, by_name("alice", "pw"))
    stored = lambda: {row[0] for row in snapshot(storage)[2]}  # noqa: E731
    assert hash_token(old) not in stored()
    assert storage.users.add_token(bob, "soon", clock.now + 1 - NINETY_DAYS)  # expires in 1 ms
    clock.now += 2
    login(accounts, by_name("alice", "pw"))
    assert "soon" in stored()  # refused already, swept at the next round
    clock.now += TOKEN_SWEEP_INTERVAL_MS
    login(accounts, by_name("alice", "pw"))
    assert "soon" not in stored()


# -- administration ---------------------------------------------------------------------------


def test_add_list_remove_and_passwd(accounts: Accounts, clock: Clock) -> None:
    bob = accounts.add_user("bob", "pw", "bob@example.org")
    clock.now += 1
    alice = accounts.add_user("alice", "pw")
    listed = accounts.list_users()
    assert [(u.id, u.username) for u in listed] == [(bob, "bob"), (alice, "alice")]
    assert listed[0].emails == (UserEmail("bob@example.org", False),)
    assert listed[0].created == T0
    assert all(u.has_password for u in listed)
    assert len(bob) == 17

    token = login(accounts, by_name("bob", "pw")).token
    changed = accounts.set_password("BOB", "new")
    assert (changed.id, changed.username) == (bob, "bob")
    assert accounts.resume(token) is None  # sessions logged out
    with raises(403, REFUSED):
        login(accounts, by_name("bob", "pw"))
    token = login(accounts, by_name("bob", "new")).token

    removed = accounts.remove_user("bob")
    assert removed.id == bob
    assert accounts.resume(token) is None
    with raises(403, REFUSED):
        login(accounts, {"user": {"email": "bob@example.org"}, "password": "new"})
    assert [u.username for u in accounts.list_users()] == ["alice"]
    assert accounts.add_user("bob", "again", "bob@example.org") != bob  # name and address free


@pytest.mark.parametrize(
    ("name", "password", "email", "message"),
    [
        ("", "pw", None, "username: must not be empty"),
        ("  bob", "pw", None, "blanks"),
        ("bo\nb", "pw", None, "control characters"),
        ("bob", "pw", None, "username 'bob' is already taken"),
        ("BOB", "pw", None, "username 'BOB' is already taken (as 'bob'"),
        ("carol", "", None, "password: must not be empty"),
        ("carol", "pw", "not-an-address", "email: not an e-mail address"),
        ("carol", "pw", "", "email: not an e-mail address"),
        ("carol", "pw", "BOB@example.org", "e-mail address 'BOB@example.org' is already taken"),
    ],
)
def test_bad_new_users_write_nothing(
    accounts: Accounts,
    storage: Storage,
    name: str,
    password: str,
    email: str | None,
    message: str,
) -> None:
    accounts.add_user("bob", "pw", "bob@example.org")
    login(accounts, by_name("bob", "pw"))
    before = snapshot(storage)
    with pytest.raises(ValidationError, match=re.escape(message)):
        accounts.add_user(name, password, email)
    assert snapshot(storage) == before


def test_bad_remove_and_passwd_write_nothing(accounts: Accounts, storage: Storage) -> None:
    accounts.add_user("bob", "pw", "bob@example.org")
    login(accounts, by_name("bob", "pw"))
    before = snapshot(storage)
    with pytest.raises(UserNotFound, match="no user named 'alice'"):
        accounts.remove_user("alice")
    with pytest.raises(UserNotFound, match="no user named 'alice'"):
        accounts.set_password("alice", "pw")
    with pytest.raises(ValidationError, match="password: must not be empty"):
        accounts.set_password("bob", "")
    with pytest.raises(ValidationError, match="username: must not be empty"):
        accounts.remove_user("")
    assert snapshot(storage) == before


def test_store_refuses_case_insensitive_duplicates(storage: Storage) -> None:
    users = storage.users
    users.insert_user(UserRecord("u1", "Dave", (UserEmail("d@example.org"),), None, T0))
    for clash in (
        UserRecord("u2", "dave"),
        UserRecord("u3", "erin", (UserEmail("D@EXAMPLE.ORG"),)),
    ):
        with pytest.raises(ConflictError, match="already taken"):
            users.insert_user(clash)
    assert [u.id for u in users.list_users()] == ["u1"]
    assert users.add_token("u1", "h", T0) is True
    assert users.add_token("missing", "h2", T0) is False
    assert users.remove_user("missing") is False
    assert users.set_password_hash("missing", None, revoke_tokens=True) is False
    assert users.delete_token("h") is True
    assert users.delete_token("h") is False
