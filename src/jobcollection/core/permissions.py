"""Allow/deny rules for remote callers — pure decision logic.

A rule is granted to a caller when it is:

- ``"anyone"``: every connection, logged in or not;
- ``"users"``: any logged-in user;
- a collection of user ids or user names: a logged-in user whose id or name is in it;
- a callable ``rule(user_id, method, params) -> truthy``.

For a call of method M the governing names are M itself and its groups (``METHOD_GROUPS``).
Any truthy deny rule under those names refuses the call; otherwise any truthy allow rule grants
it; with no matching rule the call is refused. Calls made by server-side code are never checked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ..errors import ValidationError
from .constants import METHOD_GROUPS

RuleFunction = Callable[[str | None, str, list[object]], object]
Rule = Literal["anyone", "users"] | Collection[str] | RuleFunction
RULE_NAMES: Final = frozenset({"admin", "manager", "creator", "worker", *METHOD_GROUPS})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a remote call: ``user_id``/``username`` are None when not logged in."""

    user_id: str | None = None
    username: str | None = None


ANONYMOUS: Final = Caller()


def _check_rule(name: str, rule: object) -> Rule:
    if name not in RULE_NAMES:
        known = "admin, manager, creator, worker or a method name"
        raise ValidationError(f"permission rule {name!r}: unknown group or method ({known})")
    if rule in ("anyone", "users") or callable(rule):
        return rule
    if isinstance(rule, str):
        return frozenset(part.strip() for part in rule.split(",") if part.strip())
    if isinstance(rule, Collection) and all(isinstance(item, str) for item in rule):
        return frozenset(rule)
    raise ValidationError(
        f"permission rule {name!r}: expected 'anyone', 'users', a list of user names or ids, "
        f"or a function (user_id, method, params), got {type(rule).__name__}"
    )


def _grants(rule: Rule, caller: Caller, method: str, params: list[object]) -> bool:
    if rule == "anyone":
        return True
    if rule == "users":
        return caller.user_id is not None
    if callable(rule):
        return bool(rule(caller.user_id, method, params))
    if caller.user_id is None:
        return False
    return caller.user_id in rule or (caller.username is not None and caller.username in rule)


@dataclass
class Permissions:
    """The accumulated allow and deny rules of one collection."""

    allows: dict[str, list[Rule]] = field(default_factory=dict)
    denies: dict[str, list[Rule]] = field(default_factory=dict)

    def allow(self, rules: Mapping[str, object]) -> None:
        """Add allow rules (validated all first: a bad one adds nothing)."""
        self._add(self.allows, rules)

    def deny(self, rules: Mapping[str, object]) -> None:
        """Add deny rules (validated all first: a bad one adds nothing)."""
        self._add(self.denies, rules)

    @staticmethod
    def _add(table: dict[str, list[Rule]], rules: Mapping[str, object]) -> None:
        checked = [(name, _check_rule(name, rule)) for name, rule in rules.items()]
        for name, rule in checked:
            table.setdefault(name, []).append(rule)

    def permits(self, caller: Caller, method: str, params: list[object]) -> bool:
        """Whether a remote ``caller`` may call ``method`` (bare name) with ``params``."""
        return self.permits_under(METHOD_GROUPS.get(method, (method,)), caller, method, params)

    def permits_under(
        self, names: Collection[str], caller: Caller, method: str, params: list[object]
    ) -> bool:
        """The decision procedure over explicit rule ``names`` (e.g. the groups that may
        subscribe to a publication); ``method`` and ``params`` are what rule functions see."""
        for name in names:
            for rule in self.denies.get(name, ()):
                if _grants(rule, caller, method, params):
                    return False
        return any(
            _grants(rule, caller, method, params)
            for name in names
            for rule in self.allows.get(name, ())
        )
