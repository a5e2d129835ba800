"""The `UserStore` port in SQL: users, their addresses and login tokens (schema version 3).

The store shares the connection and the lock of its `SqliteStorage`; every call is one
transaction (writers take `BEGIN IMMEDIATE`, like the job writers), and driver errors leave as
jobcollection storage errors.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ConflictError, StorageError
from .port import UserEmail, UserRecord

_USER_COLUMNS = "id, username, bcrypt, created"
# A user's tokens past the newest `?` (by issue time), not counting the one just added.
_TRIM_TOKENS = (
    "DELETE FROM login_tokens WHERE user_id = ? AND hashed_token IN ("
    "SELECT hashed_token FROM login_tokens WHERE user_id = ? AND hashed_token != ? "
    "ORDER BY when_ms DESC, hashed_token DESC LIMIT -1 OFFSET ?)"
)
_UserRow = tuple[str, str, str | None, int]


def fold(text: str) -> str:
    """The case-insensitive key of a username or an address."""
    return text.lower()


class SqliteUserStore:
    """Implements `storage.port.UserStore` on the connections of a `SqliteStorage`: writes
    on its write connection, reads (a resume token's lookup...) on its read connection, so a
    login does not wait behind another process's write lock unless it writes."""

    def __init__(
        self,
        writes: tuple[sqlite3.Connection, threading.RLock],
        reads: tuple[sqlite3.Connection, threading.RLock],
        translate: Callable[[sqlite3.Error], StorageError],
    ) -> None:
        self._writes = writes
        self._reads = reads
        self._translate = translate

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn, lock = self._writes if write else self._reads
        with lock:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise self._translate(error) from error

    # -- users -------------------------------------------------------------------------------

    def insert_user(self, user: UserRecord) -> None:
        with self._transaction(write=True) as conn:
            row = conn.execute(
                "SELECT username FROM users WHERE username_key = ? LIMIT 1",
                (fold(user.username),),
            ).fetchone()
            if row is not None:
                raise ConflictError(_taken("username", user.username, row[0]))
            for email in user.emails:
                row = conn.execute(
                    "SELECT address FROM user_emails WHERE address_key = ? LIMIT 1",
                    (fold(email.address),),
                ).fetchone()
                if row is not None:
                    raise ConflictError(_taken("e-mail address", email.address, row[0]))
            conn.execute(
                "INSERT INTO users (id, username, username_key, bcrypt, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (user.id, user.username, fold(user.username), user.bcrypt, user.created),
            )
            conn.executemany(
                "INSERT INTO user_emails (address, address_key, user_id, verified) "
                "VALUES (?, ?, ?, ?)",
                [(e.address, fold(e.address), user.id, int(e.verified)) for e in user.emails],
            )

    def user_by_id(self, user_id: str) -> UserRecord | None:
        with self._transaction(write=False) as conn:
            return _user(conn, user_id)

    def user_by_username(self, username: str) -> UserRecord | None:
        with self._transaction(write=False) as conn:
            user_id = _exact_else_unique(
                conn,
                "SELECT id FROM users WHERE username = ?",
                "SELECT id FROM users WHERE username_key = ? LIMIT 2",
                username,
            )
            return None if user_id is None else _user(conn, user_id)

    def user_by_email(self, address: str) -> UserRecord | None:
        with self._transaction(write=False) as conn:
            user_id = _exact_else_unique(
                conn,
                "SELECT user_id FROM user_emails WHERE address = ?",
                "SELECT DISTINCT user_id FROM user_emails WHERE address_key = ? LIMIT 2",
                address,
            )
            return None if user_id is None else _user(conn, user_id)

    def list_users(self) -> list[UserRecord]:
        with self._transaction(write=False) as conn:
            emails: dict[str, list[UserEmail]] = {}
            rows = conn.execute(
                "SELECT user_id, address, verified FROM user_emails ORDER BY rowid"
            ).fetchall()
            for user_id, address, verified in rows:
                emails.setdefault(user_id, []).append(UserEmail(address, bool(verified)))
            users = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users ORDER BY created, username"
            ).fetchall()
            return [_record(row, emails.get(row[0], [])) for row in users]

    def remove_user(self, user_id: str) -> bool:
        with self._transaction(write=True) as conn:
            conn.execute("DELETE FROM login_tokens WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM user_emails WHERE user_id = ?", (user_id,))
            return conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount > 0

    def set_password_hash(self, user_id: str, bcrypt: str | None, *, revoke_tokens: bool) -> bool:
        with self._transaction(write=True) as conn:
            done = conn.execute("UPDATE users SET bcrypt = ? WHERE id = ?", (bcrypt, user_id))
            if done.rowcount and revoke_tokens:
                conn.execute("DELETE FROM login_tokens WHERE user_id = ?", (user_id,))
            return done.rowcount > 0

    # -- login tokens ------------------------------------------------------------------------

    def tokens(self) -> list[tuple[str, str, int]]:
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT user_id, hashed_token, when_ms FROM login_tokens "
                "ORDER BY when_ms, hashed_token"
            )
            return [(user_id, hashed, when) for user_id, hashed, when in rows]

    def add_token(
        self, user_id: str, hashed_token: str, when: int, *, keep: int | None = None
    ) -> bool:
        with self._transaction(write=True) as conn:
            done = conn.execute(
                "INSERT INTO login_tokens (hashed_token, user_id, when_ms) "
                "SELECT ?, id, ? FROM users WHERE id = ?",
                (hashed_token, when, user_id),
            )
            if done.rowcount and keep is not None:
                conn.execute(_TRIM_TOKENS, (user_id, user_id, hashed_token, max(keep - 1, 0)))
            return done.rowcount > 0

    def find_token(self, hashed_token: str) -> tuple[UserRecord, int] | None:
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT user_id, when_ms FROM login_tokens WHERE hashed_token = ?",
                (hashed_token,),
            ).fetchone()
            if row is None:
                return None
            user = _user(conn, row[0])
            return None if user is None else (user, int(row[1]))

    def delete_token(self, hashed_token: str) -> bool:
        with self._transaction(write=True) as conn:
            done = conn.execute("DELETE FROM login_tokens WHERE hashed_token = ?", (hashed_token,))
            return done.rowcount > 0

    def delete_tokens_issued_before(self, when: int) -> int:
        with self._transaction(write=True) as conn:
            return conn.execute("DELETE FROM login_tokens WHERE when_ms < ?", (when,)).rowcount


def _taken(what: str, wanted: str, existing: str) -> str:
    if wanted == existing:
        return f"{what} {wanted!r} is already taken"
    return f"{what} {wanted!r} is already taken (as {existing!r}; case is ignored)"


def _exact_else_unique(conn: sqlite3.Connection, exact: str, folded: str, value: str) -> str | None:
    """The id the exact query finds, else the one the case-insensitive query finds if it
    finds only one."""
    row = conn.execute(exact, (value,)).fetchone()
    if row is not None:
        return str(row[0])
    rows = conn.execute(folded, (fold(value),)).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def _user(conn: sqlite3.Connection, user_id: str) -> UserRecord | None:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    emails = [
        UserEmail(address, bool(verified))
        for address, verified in conn.execute(
            "SELECT address, verified FROM user_emails WHERE user_id = ? ORDER BY rowid",
            (user_id,),
        )
    ]
    return _record(row, emails)


def _record(row: _UserRow, emails: list[UserEmail]) -> UserRecord:
    user_id, username, bcrypt, created = row
    return UserRecord(user_id, username, tuple(emails), bcrypt, int(created))
