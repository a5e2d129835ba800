"""Guessing someone's password must not lock them out: over DDP and over `/api/login`, wrong
passwords sent from one address leave the real user, at another address, free to log in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ddp_harness import CallFailed, DdpClient, serving

from jobcollection import JobCollection
from jobcollection.server.app import Server
from jobcollection.server.login_throttle import Backoff, LoginThrottle

ATTACKER = "127.0.0.2"
REAL_USER = "127.0.0.3"
# A second address of the attacker's (a guesser is rarely limited to one).
ATTACKERS = ("127.0.0.2", "127.0.0.4")


def by_name(name: str, password: str) -> dict[str, Any]:
    return {"user": {"username": name}, "password": password}


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    jc = JobCollection("queue", db=db)
    jc.allow(admin=["alice"])
    server = Server(jc)
    assert server.accounts is not None
    server.accounts.add_user("alice", "s3cret")
    yield server
    jc.close()


def http_client(base: str, source: str) -> httpx.Client:
    return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=source))


def test_ten_wrong_passwords_over_ddp_do_not_lock_alice_out(server: Server) -> None:
    with serving(server) as base:
        for n in range(10):  # each from a new connection, as the lockout was found
            with DdpClient(base, source=ATTACKER) as attacker:
                with pytest.raises(CallFailed) as refused:
                    attacker.call("login", by_name("alice", f"guess {n}"))
                assert refused.value.code == 403
        with DdpClient(base, source=REAL_USER) as alice:
            result = alice.call("login", by_name("alice", "s3cret"))
            assert result["type"] == "password"
            assert alice.call("queue_getJob", "nothing") is None  # logged in for real


def test_ten_wrong_passwords_over_http_do_not_lock_alice_out(server: Server) -> None:
    with serving(server) as base:
        for n in range(10):
            with http_client(base, ATTACKERS[n % 2]) as attacker:
                refused = attacker.post("/api/login", json=by_name("alice", f"guess {n}"))
                assert refused.status_code == 403
        with http_client(base, REAL_USER) as alice:
            response = alice.post("/api/login", json=by_name("alice", "s3cret"))
            assert response.status_code == 200, response.text
            token = response.json()["result"]["token"]
            probe = alice.post(
                "/api/queue/getJob", json=["nothing"], headers={"authorization": f"Bearer {token}"}
            )
            assert probe.json() == {"result": None}


def test_guesses_over_one_transport_do_not_lock_alice_out_of_the_other(server: Server) -> None:
    with serving(server) as base:
        for n in range(10):
            with http_client(base, ATTACKERS[n % 2]) as attacker:
                assert attacker.post("/api/login", json=by_name("alice", f"{n}")).status_code == 403
        with DdpClient(base, source=REAL_USER) as alice:
            assert alice.call("login", by_name("alice", "s3cret"))["type"] == "password"


# -- guessers are slowed, over both transports --------------------------------------------------

QUARTER = Backoff(free=2, first=0.25, longest=0.25, half_life=3600.0)


@pytest.fixture
def slowing_server(db: str) -> Iterator[Server]:
    """A server whose throttle waits 0.25 s between an address's attempts after 2 failures
    (scaled down from seconds, so the test can count them)."""
    jc = JobCollection("queue", db=db)
    server = Server(jc, login_throttle=LoginThrottle(per_address=QUARTER))
    assert server.accounts is not None
    server.accounts.add_user("alice", "s3cret")
    yield server
    jc.close()


def test_a_guesser_over_ddp_is_slowed(slowing_server: Server) -> None:
    with serving(slowing_server) as base, DdpClient(base, source=ATTACKER) as attacker:
        started = time.monotonic()
        for n in range(6):
            with pytest.raises(CallFailed) as refused:
                attacker.call("login", by_name("alice", f"guess {n}"))
            assert refused.value.reason == "Incorrect username or password"
        # The 3rd to 6th attempts each waited 0.25 s after the one before began.
        assert time.monotonic() - started >= 4 * 0.25
        with DdpClient(base, source=REAL_USER) as alice:
            started = time.monotonic()
            assert alice.call("login", by_name("alice", "s3cret"))["type"] == "password"
            assert time.monotonic() - started < 5  # not held up by the guesser


def test_a_guesser_over_http_is_slowed(slowing_server: Server) -> None:
    with serving(slowing_server) as base, http_client(base, ATTACKER) as attacker:
        started = time.monotonic()
        for n in range(6):
            response = attacker.post("/api/login", json=by_name("alice", f"guess {n}"))
            assert response.status_code == 403
        assert time.monotonic() - started >= 4 * 0.25
        with http_client(base, REAL_USER) as alice:
            assert alice.post("/api/login", json=by_name("alice", "s3cret")).status_code == 200
