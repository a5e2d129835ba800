"""The `UserStore` port in PostgreSQL: users, their addresses and login tokens.

Every call is one transaction on a pooled connection. Account writes that check before they
insert (a name or address taken, ignoring case) take a transaction-level advisory lock, so two
processes cannot both find a name free; reads take no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from ...errors import ConflictError
from ..port import UserEmail, UserRecord
from . import queries as q

_USER_COLUMNS = "id, username, bcrypt, created"
_TRIM_TOKENS = (
    "DELETE FROM login_tokens WHERE user_id = %s AND hashed_token IN ("
    "SELECT hashed_token FROM login_tokens WHERE user_id = %s AND hashed_token <> %s "
    "ORDER BY when_ms DESC, hashed_token DESC OFFSET %s)"
)
Cursor = psycopg.Cursor[Any]
Transaction = Callable[[bool], AbstractContextManager[Cursor]]


def fold(text: str) -> str:
    """The case-insensitive key of a username or an address (as the SQLite adapter folds)."""
    return text.lower()


class PgUserStore:
    """Implements `storage.port.UserStore` on a `PgStorage`'s pool; `transaction(write)` gives
    a cursor inside one transaction, committed on success, errors translated."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def _tx(self, *, write: bool) -> AbstractContextManager[Cursor]:
        return self._transaction(write)

    # -- users -------------------------------------------------------------------------------

    def insert_user(self, user: UserRecord) -> None:
        with self._tx(write=True) as cur:
            cur.execute(q.USERS_LOCK, (q.USERS_LOCK_KEY,))
            row = cur.execute(
                "SELECT username FROM users WHERE username_key = %s LIMIT 1",
                (fold(user.username),),
            ).fetchone()
            if row is not None:
                raise ConflictError(_taken("username", user.username, row[0]))
            for email in user.emails:
                row = cur.execute(
                    "SELECT address FROM user_emails WHERE address_key = %s LIMIT 1",
                    (fold(email.address),),
                ).fetchone()
                if row is not None:
                    raise ConflictError(_taken("e-mail address", email.address, row[0]))
            cur.execute(
                "INSERT INTO users (id, username, username_key, bcrypt, created) "
                "VALUES (%s, %s, %s, %s, %s)",
                (user.id, user.username, fold(user.username), user.bcrypt, user.created),
            )
            if user.emails:
                cur.executemany(
                    "INSERT INTO user_emails (address, address_key, user_id, verified) "
                    "VALUES (%s, %s, %s, %s)",
                    [(e.address, fold(e.address), user.id, e.verified) for e in user.emails],
                )

    def user_by_id(self, user_id: str) -> UserRecord | None:
        with self._tx(write=False) as cur:
            return _user(cur, user_id)

    def user_by_username(self, username: str) -> UserRecord | None:
        with self._tx(write=False) as cur:
            user_id = _exact_else_unique(
                cur,
                "SELECT id FROM users WHERE username = %s",
                "SELECT id FROM users WHERE username_key = %s LIMIT 2",
                username,
            )
            return None if user_id is None else _user(cur, user_id)

    def user_by_email(self, address: str) -> UserRecord | None:
        with self._tx(write=False) as cur:
            user_id = _exact_else_unique(
                cur,
                "SELECT user_id FROM user_emails WHERE address = %s",
                "SELECT DISTINCT user_id FROM user_emails WHERE address_key = %s LIMIT 2",
                address,
            )
            return None if user_id is None else _user(cur, user_id)

    def list_users(self) -> list[UserRecord]:
        with self._tx(write=False) as cur:
            emails: dict[str, list[UserEmail]] = {}
            rows = cur.execute(
                "SELECT user_id, address, verified FROM user_emails ORDER BY n"
            ).fetchall()
            for user_id, address, verified in rows:
                emails.setdefault(user_id, []).append(UserEmail(address, bool(verified)))
            users = cur.execute(
                f"SELECT {_USER_COLUMNS} FROM users ORDER BY created, username"
            ).fetchall()
            return [_record(row, emails.get(row[0], [])) for row in users]

    def remove_user(self, user_id: str) -> bool:
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM login_tokens WHERE user_id = %s", (user_id,))
            cur.execute("DELETE FROM user_emails WHERE user_id = %s", (user_id,))
            cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
            return cur.rowcount > 0

    def set_password_hash(self, user_id: str, bcrypt: str | None, *, revoke_tokens: bool) -> bool:
        with self._tx(write=True) as cur:
            cur.execute("UPDATE users SET bcrypt = %s WHERE id = %s", (bcrypt, user_id))
            done = cur.rowcount > 0
            if done and revoke_tokens:
                cur.execute("DELETE FROM login_tokens WHERE user_id = %s", (user_id,))
            return done

    # -- login tokens ------------------------------------------------------------------------

    def add_token(
        self, user_id: str, hashed_token: str, when: int, *, keep: int | None = None
    ) -> bool:
        with self._tx(write=True) as cur:
            cur.execute(
                "INSERT INTO login_tokens (hashed_token, user_id, when_ms) "
                "SELECT %s, id, %s FROM users WHERE id = %s",
                (hashed_token, when, user_id),
            )
            done = cur.rowcount > 0
            if done and keep is not None:
                cur.execute(_TRIM_TOKENS, (user_id, user_id, hashed_token, max(keep - 1, 0)))
            return done

    def find_token(self, hashed_token: str) -> tuple[UserRecord, int] | None:
        with self._tx(write=False) as cur:
            row = cur.execute(
                "SELECT user_id, when_ms FROM login_tokens WHERE hashed_token = %s",
                (hashed_token,),
            ).fetchone()
            if row is None:
                return None
            user = _user(cur, row[0])
            return None if user is None else (user, int(row[1]))

    def tokens(self) -> list[tuple[str, str, int]]:
        with self._tx(write=False) as cur:
            rows = cur.execute(
                "SELECT user_id, hashed_token, when_ms FROM login_tokens "
                "ORDER BY when_ms, hashed_token"
            ).fetchall()
            return [(user_id, hashed, int(when)) for user_id, hashed, when in rows]

    def delete_token(self, hashed_token: str) -> bool:
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM login_tokens WHERE hashed_token = %s", (hashed_token,))
            return cur.rowcount > 0

    def delete_tokens_issued_before(self, when: int) -> int:
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM login_tokens WHERE when_ms < %s", (when,))
            return cur.rowcount


def _taken(what: str, wanted: str, existing: str) -> str:
    if wanted == existing:
        return f"{what} {wanted!r} is already taken"
    return f"{what} {wanted!r} is already taken (as {existing!r}; case is ignored)"


def _exact_else_unique(cur: Cursor, exact: str, folded: str, value: str) -> str | None:
    row = cur.execute(exact, (value,)).fetchone()
    if row is not None:
        return str(row[0])
    rows = cur.execute(folded, (fold(value),)).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def _user(cur: Cursor, user_id: str) -> UserRecord | None:
    row = cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        return None
    emails = [
        UserEmail(address, bool(verified))
        for address, verified in cur.execute(
            "SELECT address, verified FROM user_emails WHERE user_id = %s ORDER BY n", (user_id,)
        ).fetchall()
    ]
    return _record(row, emails)


def _record(row: tuple[Any, ...], emails: list[UserEmail]) -> UserRecord:
    user_id, username, bcrypt, created = row
    return UserRecord(user_id, username, tuple(emails), bcrypt, int(created))
