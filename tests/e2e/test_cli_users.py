"""End-to-end tests of `jobcollection users add|list|remove|passwd`, run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobcollection import Job, JobCollection
from jobcollection.server.accounts import Accounts, LoginResult
from jobcollection.server.meteor_error import MeteorError
from jobcollection.storage import open_storage
from storage_support import Databases, dump_tables, is_sqlite


@dataclass
class Cli:
    cwd: Path
    db: str

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k != "JOBCOLLECTION_DB"}
        environ.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "jobcollection", "--db", str(self.db), *args],
            cwd=self.cwd,
            env=environ,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = self.run(*args, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout


@pytest.fixture
def cli(tmp_path: Path, db: str) -> Cli:
    return Cli(tmp_path, db)


def tables(db: str) -> dict[str, list[Any]]:
    return dump_tables(db, ("users", "user_emails", "login_tokens", "jobs"))


def login(accounts: Accounts, name: str, password: str) -> LoginResult:
    options = {"user": {"username": name}, "password": password}
    return accounts.login(options)


def test_add_list_passwd_remove(cli: Cli) -> None:
    bob = cli.ok("users", "add", "bob", "--password", "s3cret", "--email", "bob@example.org")
    bob_id = bob.strip()
    assert len(bob_id) == 17
    alice_id = cli.ok("users", "add", "alice", "--password-env", "PW", env={"PW": "env-pw"})
    alice_id = alice_id.strip()

    table = cli.ok("users", "list").splitlines()
    assert table[0].split() == ["ID", "USERNAME", "EMAILS", "PASSWORD", "CREATED"]
    assert table[1].split()[:4] == [bob_id, "bob", "bob@example.org", "yes"]
    assert table[2].split()[:4] == [alice_id, "alice", "-", "yes"]
    assert table[1].split()[4].endswith("Z")

    docs = [json.loads(line) for line in cli.ok("users", "list", "--json").splitlines()]
    assert [doc["_id"] for doc in docs] == [bob_id, alice_id]
    assert docs[0]["emails"] == [{"address": "bob@example.org", "verified": False}]
    assert docs[0]["hasPassword"] is True
    assert isinstance(docs[0]["createdAt"]["$date"], int)
    assert "bcrypt" not in json.dumps(docs)

    storage = open_storage(cli.db)
    try:
        accounts = Accounts(storage.users)
        assert login(accounts, "bob", "s3cret").user_id == bob_id
        assert login(accounts, "alice", "env-pw").user_id == alice_id
        token = login(accounts, "bob", "s3cret").token

        out = cli.ok("users", "passwd", "BOB", "--password", "n3w")  # found ignoring case
        assert out == f"changed the password of bob ({bob_id}) and logged out its sessions\n"
        assert accounts.resume(token) is None
        with pytest.raises(MeteorError, match="Incorrect username or password"):
            login(accounts, "bob", "s3cret")
        assert login(accounts, "bob", "n3w").user_id == bob_id

        assert cli.ok("users", "remove", "bob") == f"removed user bob ({bob_id})\n"
        with pytest.raises(MeteorError, match="Incorrect username or password"):
            login(accounts, "bob", "n3w")
    finally:
        storage.close()
    names = [
        json.loads(line)["username"] for line in cli.ok("users", "list", "--json").splitlines()
    ]
    assert names == ["alice"]


def test_global_options_after_the_subcommand(cli: Cli, dbs: Databases) -> None:
    other = dbs("other")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobcollection",
            "users",
            "add",
            "x",
            "--password",
            "p",
            "--db",
            other,
        ],
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [row[1] for row in tables(other)["users"]] == ["x"]
    if is_sqlite(cli.db):
        assert not Path(cli.db).exists()
    else:
        assert dump_tables(cli.db) == {}  # nothing created where --db would have pointed


@pytest.fixture
def populated(cli: Cli) -> Cli:
    """A database with one user and one job, written and closed in-process (fast)."""
    with JobCollection("queue", cli.db) as jc:
        Job(jc, "t", {}).save()
    storage = open_storage(cli.db)
    try:
        Accounts(storage.users, bcrypt_rounds=4).add_user("bob", "pw", "bob@example.org")
    finally:
        storage.close()
    return cli


BAD_ARGUMENTS = [
    (["users"], "SUBCOMMAND"),
    (["users", "frob"], "frob"),
    (["users", "add", "", "--password", "x"], "NAME: must not be empty"),
    (["users", "add", " carol", "--password", "x"], "NAME: must not start or end with blanks"),
    (["users", "add", "carol"], "--password"),
    (["users", "add", "carol", "--password", ""], "--password: must not be empty"),
    (["users", "add", "carol", "--password", "x", "--password-env", "PW"], "not allowed with"),
    (["users", "add", "carol", "--password-env", "UNSET_VAR"], "'UNSET_VAR' is not set"),
    (["users", "add", "carol", "--password-env", "EMPTY_VAR"], "'EMPTY_VAR' is empty"),
    (["users", "add", "carol", "--password", "x", "--email", "nope"], "--email: not an e-mail"),
    (["users", "add", "bob", "--password", "x"], "username 'bob' is already taken"),
    (["users", "add", "BOB", "--password", "x"], "username 'BOB' is already taken"),
    (
        ["users", "add", "carol", "--password", "x", "--email", "Bob@Example.org"],
        "e-mail address 'Bob@Example.org' is already taken",
    ),
    (["users", "passwd", "bob"], "--password"),
    (["users", "passwd", "bob", "--password", ""], "--password: must not be empty"),
    (["users", "remove"], "NAME"),
    (["users", "list", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize(
    ("argv", "named"), BAD_ARGUMENTS, ids=[" ".join(argv) for argv, _ in BAD_ARGUMENTS]
)
def test_bad_arguments_exit_2_and_write_nothing(
    populated: Cli, argv: list[str], named: str
) -> None:
    before = tables(populated.db)
    done = populated.run(*argv, env={"EMPTY_VAR": ""})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("jobcollection: error: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr
    assert done.stdout == ""
    assert tables(populated.db) == before


@pytest.mark.parametrize(
    "argv", [["users", "remove", "carol"], ["users", "passwd", "carol", "--password", "x"]]
)
def test_unknown_user_exits_1_and_writes_nothing(populated: Cli, argv: list[str]) -> None:
    before = tables(populated.db)
    done = populated.run(*argv)
    assert done.returncode == 1
    assert done.stderr == "jobcollection: error: no user named 'carol'\n"
    assert tables(populated.db) == before


@pytest.mark.sqlite_only(reason="which commands create a SQLite file")
def test_no_database_is_created_except_by_add(cli: Cli) -> None:
    for argv in (
        ["users", "list"],
        ["users", "list", "--json"],
        ["users", "remove", "bob"],
        ["users", "passwd", "bob", "--password", "x"],
    ):
        done = cli.run(*argv)
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == (
            f"jobcollection: error: --db {cli.db}: no such database file"
            " (submit, worker, serve and users add create one)\n"
        )
    done = cli.run("users", "add", "bob", "--password", "")
    assert done.returncode == 2
    assert not Path(cli.db).exists()
    cli.ok("users", "add", "bob", "--password", "x")
    assert Path(cli.db).exists()
