"""Accounts: Meteor's `login` / `logout` (docs/protocol.md, "Logging in") and user administration.

Blocking, synchronous logic over a `UserStore` (bcrypt takes tens of milliseconds: call
`Accounts.login` off the event loop). Passwords are kept as Meteor keeps them: bcrypt of the
lower-case hex SHA-256 of the UTF-8 password; tokens as base64(sha256(token)).

A failed password login gets one answer whether the user exists or not (after a bcrypt check
either way). Slowing down guessers is the server's job (`login_throttle.py`, `logins.py`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from ..core import ejson
from ..core.ids import random_id, random_secret
from ..core.permissions import Caller
from ..errors import ConflictError, JobCollectionError, ValidationError
from ..storage.port import UserEmail, UserRecord, UserStore
from .meteor_error import MeteorError

TOKEN_LIFETIME_MS: Final = 90 * 24 * 60 * 60 * 1000  # Meteor's default: 90 days
# Meteor keeps every token; a loop of logins must not grow the table forever, so a user keeps
# its newest 100 (each device or script that logs in holds one).
MAX_TOKENS_PER_USER: Final = 100
# Expired tokens are deleted at start and then, at most this often, by a login (the only thing
# that adds tokens), like Meteor's 10-minute sweep.
TOKEN_SWEEP_INTERVAL_MS: Final = 10 * 60 * 1000
BCRYPT_ROUNDS: Final = 10
_BCRYPT_MAX_BYTES: Final = 72

LOGGED_OUT: Final = "You've been logged out by the server. Please log in again."
SESSION_EXPIRED: Final = "Your session has expired. Please log in again."
UNRECOGNIZED: Final = "Unrecognized options for login request"
# One answer for an unknown user, a user without a password and a wrong password, so that
# nobody can find out which names exist.
LOGIN_REFUSED: Final = "Incorrect username or password"

_USER_KEYS: Final = ("id", "username", "email")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

LoginType = Literal["resume", "password"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class UserNotFound(JobCollectionError, LookupError):
    """No user has that name."""


class AccountValidationError(ValidationError):
    """A username, e-mail address or password is not acceptable; nothing was written."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# -- input checks (also used by the CLI before it opens the database) -------------------------


def check_username(name: object) -> str:
    """A username: a non-empty string without control characters or surrounding blanks."""
    if not isinstance(name, str) or not name:
        raise AccountValidationError("username", "must not be empty")
    if name != name.strip():
        raise AccountValidationError("username", f"must not start or end with blanks: {name!r}")
    if _CONTROL.search(name):
        raise AccountValidationError("username", f"must not contain control characters: {name!r}")
    return name


def check_email(address: object) -> str:
    """An e-mail address (`someone@example.org`)."""
    if not isinstance(address, str) or not _EMAIL.fullmatch(address):
        raise AccountValidationError(
            "email", f"not an e-mail address (like someone@example.org): {address!r}"
        )
    return address


def check_password(password: object) -> str:
    """A password: any non-empty string."""
    if not isinstance(password, str) or not password:
        raise AccountValidationError("password", "must not be empty")
    return password


# -- hashing ----------------------------------------------------------------------------------


def password_digest(password: str) -> str:
    """What Meteor clients send instead of a password: lower-case hex SHA-256 of UTF-8."""
    return hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()


def hash_token(token: str) -> str:
    """How a login token is stored: base64(sha256(token)) (Meteor `_hashLoginToken`)."""
    return base64.b64encode(
        hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    ).decode()


def _password_digest_of(password: object) -> str:
    """The SHA-256 hex digest a login's `password` (checked: a string or {digest, algorithm})
    stands for."""
    if isinstance(password, str):
        return password_digest(password)
    assert isinstance(password, dict)
    if password["algorithm"] == "sha-256":
        return str(password["digest"])
    raise MeteorError(500, "Internal server error")  # the original threw a plain Error (a 500)


def _bcrypt_matches(digest: str, stored: str) -> bool:
    secret = digest.encode("utf-8", "surrogatepass")
    if len(secret) > _BCRYPT_MAX_BYTES or b"\0" in secret:
        return False  # never what was hashed (a 64-character hex digest)
    import bcrypt  # loaded on first use: CLI commands and workers never hash

    return bcrypt.checkpw(secret, stored.encode("ascii"))


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful login: the connection now acts as `user_id`."""

    user_id: str
    username: str
    token: str
    token_expires_ms: int
    type: LoginType

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.username)

    def to_wire(self) -> dict[str, object]:
        """The `login` method's result (EJSON values: `tokenExpires` is a date)."""
        return {
            "id": self.user_id,
            "token": self.token,
            "tokenExpires": ejson.Date(self.token_expires_ms),
            "type": self.type,
        }


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as `list_users` shows it (never the hash)."""

    id: str
    username: str
    emails: tuple[UserEmail, ...]
    has_password: bool
    created: int


def _info(user: UserRecord, *, has_password: bool | None = None) -> UserInfo:
    if has_password is None:
        has_password = user.bcrypt is not None
    return UserInfo(user.id, user.username, user.emails, has_password, user.created)


# -- accounts ---------------------------------------------------------------------------------


def _truthy(value: object) -> bool:
    """JavaScript truthiness of a decoded JSON value (objects and arrays are always true)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def _match_failed(details: str) -> MeteorError:
    return MeteorError(400, "Match failed", details)


class Accounts:
    """Login, logout and user administration over one `UserStore`."""

    def __init__(
        self,
        store: UserStore,
        *,
        clock: Callable[[], int] = _now_ms,
        bcrypt_rounds: int = BCRYPT_ROUNDS,
    ) -> None:
        if not 4 <= bcrypt_rounds <= 31:
            raise ValidationError(f"bcrypt_rounds: must be 4..31, got {bcrypt_rounds}")
        self.store = store
        self._clock = clock
        self._rounds = bcrypt_rounds
        self._dummy: str | None = None
        self._next_sweep = -1  # the first login sweeps (unless `expire_tokens` ran)

    # -- login / logout / resume -------------------------------------------------------------

    def login(self, options: object) -> LoginResult:
        """Meteor's `login` method (blocking). Raises `MeteorError` when refused."""
        now = self._clock()
        result = self._login(options, now)
        if now >= self._next_sweep:
            self.expire_tokens()
        return result

    def _login(self, options: object, now: int) -> LoginResult:
        if not isinstance(options, dict):
            raise _match_failed("login options must be an object")
        if _truthy(options.get("resume")):
            return self._login_with_token(options["resume"], now)
        if _truthy(options.get("password")):
            return self._login_with_password(options, now)
        raise MeteorError(400, UNRECOGNIZED)

    def _login_with_token(self, token: object, now: int) -> LoginResult:
        if not isinstance(token, str):
            raise _match_failed("resume: expected a string")
        found = self.store.find_token(hash_token(token))
        if found is None:
            raise MeteorError(403, LOGGED_OUT)
        user, when = found
        if now >= when + TOKEN_LIFETIME_MS:
            raise MeteorError(403, SESSION_EXPIRED)
        return LoginResult(user.id, user.username, token, when + TOKEN_LIFETIME_MS, "resume")

    def _login_with_password(self, options: dict[object, object], now: int) -> LoginResult:
        if set(options) != {"user", "password"}:
            keys = ", ".join(sorted(map(str, options)))
            raise _match_failed(f"login options must be exactly user and password, got {keys}")
        query, password = options["user"], options["password"]
        if (
            not isinstance(query, dict)
            or len(query) != 1
            or not set(query) <= set(_USER_KEYS)
            or not all(isinstance(v, str) and v for v in query.values())
        ):
            raise _match_failed("user must have exactly one of id, username, email (a string)")
        if not isinstance(password, str) and not (
            isinstance(password, dict)
            and set(password) == {"digest", "algorithm"}
            and all(isinstance(v, str) for v in password.values())
        ):
            raise _match_failed("password must be a string or {digest, algorithm}")
        # The digest first: what the answer says must not depend on whether the user exists.
        digest = _password_digest_of(password)
        # Unknown users and users without a password cost a bcrypt too (against a dummy hash,
        # made by whichever login comes first), and get the same answer as a wrong password:
        # neither the reply nor its timing tells who exists.
        dummy = self._dummy_hash()
        ((key, value),) = query.items()
        user = self._find(str(key), str(value))
        stored = None if user is None else user.bcrypt
        matches = _bcrypt_matches(digest, stored or dummy)
        if user is None or stored is None or not matches:
            raise MeteorError(403, LOGIN_REFUSED)
        token = random_secret()
        if not self.store.add_token(user.id, hash_token(token), now, keep=MAX_TOKENS_PER_USER):
            raise MeteorError(403, LOGIN_REFUSED)  # removed while we checked
        return LoginResult(user.id, user.username, token, now + TOKEN_LIFETIME_MS, "password")

    def _dummy_hash(self) -> str:
        """A bcrypt hash at our cost that no password matches (made once, on first use)."""
        if self._dummy is None:
            self._dummy = self.hash_password(random_secret())
        return self._dummy

    def _find(self, key: str, value: str) -> UserRecord | None:
        if "\x00" in value:  # no account holds one (PostgreSQL's text cannot)
            return None
        if key == "id":
            return self.store.user_by_id(value)
        if key == "username":
            return self.store.user_by_username(value)
        return self.store.user_by_email(value)

    def logout(self, token: str | None) -> None:
        """Forget the token a connection logged in with (None: it had none)."""
        if token:
            self.store.delete_token(hash_token(token))

    def resume(self, token: str) -> Caller | None:
        """Who a valid, unexpired token belongs to (e.g. an HTTP bearer token)."""
        found = self.store.find_token(hash_token(token))
        if found is None:
            return None
        user, when = found
        if self._clock() >= when + TOKEN_LIFETIME_MS:
            return None
        return Caller(user.id, user.username)

    def expire_tokens(self) -> int:
        """Delete the tokens that have expired; how many went."""
        now = self._clock()
        self._next_sweep = now + TOKEN_SWEEP_INTERVAL_MS
        return self.store.delete_tokens_issued_before(now - TOKEN_LIFETIME_MS)

    # -- administration ----------------------------------------------------------------------

    def hash_password(self, password: str) -> str:
        """The bcrypt Meteor keeps for `password`."""
        digest = password_digest(password).encode("ascii")
        import bcrypt

        return bcrypt.hashpw(digest, bcrypt.gensalt(self._rounds)).decode("ascii")

    def add_user(self, name: str, password: str, email: str | None = None) -> str:
        """Create a user; returns its id. Names and addresses must be new, ignoring case."""
        name = check_username(name)
        password = check_password(password)
        emails = () if email is None else (UserEmail(check_email(email)),)
        user = UserRecord(random_id(), name, emails, self.hash_password(password), self._clock())
        try:
            self.store.insert_user(user)
        except ConflictError as error:
            raise ValidationError(str(error)) from None
        return user.id

    def list_users(self) -> list[UserInfo]:
        """Every user, oldest first."""
        return [_info(user) for user in self.store.list_users()]

    def _named(self, name: str) -> UserRecord:
        if not name:
            raise AccountValidationError("username", "must not be empty")
        user = self.store.user_by_username(name)
        if user is None:
            raise UserNotFound(f"no user named {name!r}")
        return user

    def remove_user(self, name: str) -> UserInfo:
        """Delete a user (found as `login` finds it) with its tokens; returns who it was."""
        user = self._named(name)
        if not self.store.remove_user(user.id):
            raise UserNotFound(f"no user named {name!r}")
        return _info(user)

    def set_password(self, name: str, password: str) -> UserInfo:
        """Give a user a new password and log out all its sessions (as Meteor's
        `Accounts.setPassword` does); returns who it is."""
        password = check_password(password)
        user = self._named(name)
        if not self.store.set_password_hash(
            user.id, self.hash_password(password), revoke_tokens=True
        ):
            raise UserNotFound(f"no user named {name!r}")
        return _info(user, has_password=True)
