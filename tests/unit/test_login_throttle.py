"""The login throttle: guessers are slowed per address and per account, the real user is never
locked out, and the state stays bounded. Time is simulated: `Clock` is the throttle's clock
and `sleep` advances it, so "attempts per hour" is counted, not timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from jobcollection.errors import ValidationError
from jobcollection.server.accounts import Accounts, LoginResult
from jobcollection.server.login_throttle import (
    ACCOUNT_BACKOFF,
    ADDRESS_BACKOFF,
    Backoff,
    LoginThrottle,
    account_key,
    host_of,
    source_key,
)
from jobcollection.server.logins import Logins
from jobcollection.server.meteor_error import MeteorError
from jobcollection.storage import open_storage

REFUSED = "Incorrect username or password"
LOGGED_OUT = "You've been logged out by the server. Please log in again."
UNRECOGNIZED = "Unrecognized options for login request"
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(db: str) -> Iterator[Accounts]:
    """Real accounts (bcrypt at the lowest cost) with one user, alice / s3cret."""
    storage = open_storage(db)
    try:
        accounts = Accounts(storage.users, bcrypt_rounds=4)
        accounts.add_user("alice", "s3cret", "alice@example.org")
        yield accounts
    finally:
        storage.close()


def by_name(name: str, password: str) -> dict[str, object]:
    return {"user": {"username": name}, "password": password}


async def attempt(logins: Logins, options: object, address: str) -> str:
    """One login; "ok", or the refusal's reason."""
    try:
        await logins.login(options, address=address)
    except MeteorError as error:
        return str(error.reason)
    return "ok"


# -- the delays -------------------------------------------------------------------------------


def test_backoff_is_free_then_doubles_up_to_the_longest() -> None:
    backoff = Backoff(free=3, first=0.5, longest=4.0, half_life=60.0)
    assert [backoff.delay(n) for n in range(9)] == [0, 0, 0, 0.5, 1, 2, 4, 4, 4]
    assert backoff.delay(10**9) == 4.0  # no overflow, however many
    assert backoff.decayed(8.0, 120.0) == 2.0
    assert ADDRESS_BACKOFF.delay(10) == 1.0
    assert ADDRESS_BACKOFF.delay(20) == 30.0
    for bad in (
        {"free": -1},
        {"first": 0.0},
        {"first": 5.0},  # longer than the longest
        {"half_life": 0.0},
    ):
        with pytest.raises(ValidationError, match="login backoff"):
            Backoff(**{"free": 3, "first": 0.5, "longest": 4.0, "half_life": 60.0, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="capacity"):
        LoginThrottle(capacity=0)


# -- one guesser ------------------------------------------------------------------------------


async def test_a_guesser_from_one_address_is_slowed_never_refused(
    accounts: Accounts, clock: Clock
) -> None:
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    start, answers = clock.now, []
    while clock.now - start < HOUR:  # waits for each answer, as a simple script does
        answers.append(await attempt(logins, by_name("alice", f"guess {len(answers)}"), "10.0.0.1"))
    assert set(answers) == {REFUSED}  # slowed, never "too many requests"
    # 10 free, then 1, 2, 4, 8, 16 s, then one guess per 30 s: about 130 in the hour (and
    # the 10 free ones do not come back while it keeps guessing).
    assert len(answers) <= 10 + 5 + HOUR / 30 + 1
    assert max(clock.slept) == 30.0


async def test_many_addresses_guessing_one_account_get_slower_answers(
    accounts: Accounts, clock: Clock
) -> None:
    per_account = Backoff(free=10, first=1.0, longest=30.0, half_life=1e12)  # no forgetting
    logins = Logins(
        accounts, LoginThrottle(per_account=per_account, clock=clock), sleep=clock.sleep
    )
    for n in range(20):  # each from a fresh address, so only the account's score grows
        clock.slept.clear()
        assert await attempt(logins, by_name("alice", f"guess {n}"), f"10.0.1.{n}") == REFUSED
        assert clock.slept == ([] if n < 10 else [min(30.0, 2.0 ** (n - 10))])


async def test_the_real_user_logs_in_at_once_from_elsewhere_while_under_attack(
    accounts: Accounts, clock: Clock
) -> None:
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    for n in range(40):
        await attempt(logins, by_name("alice", f"guess {n}"), f"10.0.{n % 3}.1")
    for form in (
        by_name("alice", "s3cret"),
        {"user": {"email": "alice@example.org"}, "password": "s3cret"},
    ):
        clock.slept.clear()
        assert await attempt(logins, form, "192.0.2.7") == "ok"
        assert clock.slept == []  # not even slowed
    # ... and even from a guessing address the right password gets in, after at most that
    # address's wait: slowed, not locked.
    clock.slept.clear()
    assert await attempt(logins, by_name("alice", "s3cret"), "10.0.0.1") == "ok"
    assert sum(clock.slept) <= 30.0


async def test_known_and_unknown_accounts_are_throttled_alike(
    accounts: Accounts, clock: Clock
) -> None:
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    seen: dict[str, list[list[float]]] = {}
    for name in ("alice", "mallory"):
        seen[name] = []
        for n in range(16):
            clock.slept.clear()
            assert await attempt(logins, by_name(name, "wrong"), f"10.{n}.0.1") == REFUSED
            seen[name].append(list(clock.slept))
    assert seen["alice"] == seen["mallory"]
    assert seen["alice"] == [[]] * 10 + [[1.0], [2.0], [4.0], [8.0], [16.0], [30.0]]


# -- concurrency, successes, errors -----------------------------------------------------------


def test_attempts_piling_up_from_one_address_are_spaced_then_refused(clock: Clock) -> None:
    throttle = LoginThrottle(clock=clock)
    waits = [throttle.admit("10.0.0.1", None).wait for _ in range(15)]
    # Each pending attempt counts as failed until it succeeds: the 11th waits 1 s after the
    # 10th began, the 12th 2 s after the 11th, and so on.
    assert waits == [0.0] * 10 + [1.0, 3.0, 7.0, 15.0, 31.0]
    for _ in range(3):  # the next would wait 61 s, over the 60 s allowed (and is not counted)
        with pytest.raises(MeteorError) as refused:
            throttle.admit("10.0.0.1", None)
        assert refused.value.code == 403
        assert refused.value.reason == (
            "Error, too many requests. Please slow down. "
            "You must wait 1 seconds before trying again."
        )
    other = throttle.admit("10.0.0.2", "username:alice")  # other addresses are not affected
    assert other.wait == 0.0


def test_the_refusal_says_how_long_to_wait(clock: Clock) -> None:
    throttle = LoginThrottle(
        per_address=Backoff(free=0, first=10.0, longest=10.0, half_life=HOUR),
        max_wait=15.0,
        clock=clock,
    )
    assert [throttle.admit("a", None).wait for _ in range(2)] == [0.0, 10.0]
    with pytest.raises(MeteorError, match="wait 5 seconds"):
        throttle.admit("a", None)  # would wait 20 s, 5 more than allowed
    clock.now += 5
    assert throttle.admit("a", None).wait == 15.0


async def test_successful_logins_are_never_slowed(accounts: Accounts, clock: Clock) -> None:
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    for _ in range(200):  # a script logging in again and again
        token = (await logins.login(by_name("alice", "s3cret"), address="10.0.0.1")).token
        assert await attempt(logins, {"resume": token}, "10.0.0.1") == "ok"
    assert clock.slept == []


async def test_bad_tokens_count_for_the_address_malformed_options_do_not(
    accounts: Accounts, clock: Clock
) -> None:
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    malformed: list[object] = [None, {}, {"user": "x", "password": "y"}, {"resume": 5}]
    sha512 = {"user": {"username": "alice"}, "password": {"digest": "x", "algorithm": "sha-512"}}
    for n in range(30):  # a broken client: no credential is checked, nothing is counted
        reason = await attempt(logins, [*malformed, sha512][n % 5], "10.0.0.1")
        assert reason in {"Match failed", UNRECOGNIZED, "Internal server error"}
    for n in range(10):
        assert await attempt(logins, {"resume": f"guess{n}"}, "10.0.0.1") == LOGGED_OUT
    assert clock.slept == []
    assert await attempt(logins, {"resume": "guess"}, "10.0.0.1") == LOGGED_OUT
    assert clock.slept == [1.0]  # the 11th token guess waited


async def test_a_server_side_failure_does_not_count(
    accounts: Accounts, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttle = LoginThrottle(clock=clock)
    logins = Logins(accounts, throttle, sleep=clock.sleep)

    def broken(options: object) -> LoginResult:
        raise OSError("disk gone")

    monkeypatch.setattr(accounts, "login", broken)
    for _ in range(30):
        with pytest.raises(OSError, match="disk gone"):
            await logins.login(by_name("alice", "s3cret"), address="10.0.0.1")
    assert clock.slept == []


async def test_a_caller_gone_before_the_check_is_not_counted(
    accounts: Accounts, clock: Clock
) -> None:
    throttle = LoginThrottle(
        per_account=Backoff(free=1, first=1.0, longest=8.0, half_life=HOUR), clock=clock
    )
    for _ in range(11):
        throttle.admit("10.0.0.1", None)  # pending: the next waits

    async def cancelled(seconds: float) -> None:
        raise asyncio.CancelledError

    logins = Logins(accounts, throttle, sleep=cancelled)
    with pytest.raises(asyncio.CancelledError):
        await logins.login(by_name("alice", "wrong"), address="10.0.0.1")
    assert throttle.admit("10.0.0.2", "username:alice").wait == 0.0
    logins = Logins(accounts, throttle, sleep=clock.sleep)
    # The cancelled attempt was withdrawn: alice's account has one failure before this one
    # (1 s), not two (2 s).
    assert await attempt(logins, by_name("alice", "wrong"), "10.0.0.3") == REFUSED
    assert clock.slept == [1.0]


async def test_login_runs_off_the_event_loop(accounts: Accounts, clock: Clock) -> None:
    threads: list[int] = []
    real = accounts.login

    def recording(options: object) -> LoginResult:
        threads.append(threading.get_ident())
        return real(options)

    accounts.login = recording  # type: ignore[method-assign]
    logins = Logins(accounts, LoginThrottle(clock=clock), sleep=clock.sleep)
    assert (await logins.login_wire(by_name("alice", "s3cret"), "10.0.0.1"))["type"] == "password"
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


# -- forgetting -------------------------------------------------------------------------------


def test_failures_are_forgotten_over_time(clock: Clock) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(14):
        throttle.admit("10.0.0.1", None)
    clock.now += 10 * ADDRESS_BACKOFF.half_life  # 14 / 1024 failures left
    assert throttle.admit("10.0.0.1", None).wait == 0.0


def test_the_state_is_bounded(clock: Clock) -> None:
    throttle = LoginThrottle(clock=clock, capacity=1000)
    for n in range(50_000):  # an attacker cycling through names and addresses
        throttle.admit(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", f"username:user{n}")
    assert throttle.sizes == (1000, 1000)
    # The most recent keys are the ones kept: a guesser still at it keeps its score.
    for _ in range(11):
        throttle.admit("192.0.2.1", "username:alice")
    for n in range(999):
        throttle.admit(f"10.9.{n // 256}.{n % 256}", f"username:other{n}")
    assert throttle.admit("192.0.2.1", None).wait > 0
    assert throttle.sizes == (1000, 1000)


def test_the_default_capacity_bounds_the_state(clock: Clock) -> None:
    throttle = LoginThrottle(clock=clock)
    for n in range(30_000):
        throttle.failed(throttle.admit(f"2001:db8:{n:x}::1", f"email:{n}@example.org"))
    assert throttle.sizes == (10_000, 10_000)


# -- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same machine's network
        ("[2001:db8::1]", "2001:db8::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("/run/jobs.sock", "/run/jobs.sock"),
        ("", ""),
    ],
)
def test_source_keys(host: str, key: str) -> None:
    assert source_key(host) == key


def test_host_of_a_peer_name() -> None:
    assert host_of("192.0.2.1:5000") == "192.0.2.1"
    assert host_of("2001:db8::1:5000") == "2001:db8::1"
    assert host_of("") == ""
    assert host_of("unix-socket") == "unix-socket"


def test_account_keys() -> None:
    assert account_key(by_name("Alice", "x")) == "username:alice"
    assert account_key({"user": {"email": "A@B.org"}, "password": {}}) == "email:a@b.org"
    assert account_key({"resume": "token"}) is None
    assert account_key({"user": {"username": 5}, "password": "x"}) is None
    assert account_key({"user": {}, "password": "x"}) is None
    assert account_key(None) is None
    assert ACCOUNT_BACKOFF.free == 10
