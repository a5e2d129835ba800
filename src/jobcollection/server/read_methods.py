"""Three read methods beyond the original's 16, for our own client: large collections read a
page at a time instead of subscribing to all of them.

- ``<root>_jobFind(selector, options)``: one page of the jobs the selector matches (the
  selector of ``<root>.jobs``), read in one short transaction. Options: ``limit`` (1 to
  `MAX_PAGE`, default `DEFAULT_PAGE`), ``newestFirst`` (default false: insertion order),
  ``after`` (the ``next`` of the previous page, or null). Returns ``{docs, next}``: the
  documents as ``<root>.jobs`` publishes them, without ``log``, and ``next`` (null on the last
  page). A page may hold fewer documents than ``limit`` and still not be the last.
- ``<root>_jobCount(selector, options)``: how many jobs match; option ``atMost`` stops counting
  there (the answer is then that number or more).
- ``<root>_jobStats()``: ``[[status, type, count], ...]``.

They are allowed where subscribing to ``<root>.jobs`` is (the admin and manager groups; rule
functions see the method name and the params), so they show nothing the publication does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..core.permissions import Caller
from ..core.selector import parse_selector
from ..core.wire import doc_to_wire
from ..engine.manager import JobManager
from ..errors import ValidationError
from .meteor_error import Refused, not_authorized, not_logged_in
from .publications import PUBLISH_GROUPS

DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000

ReadMethod = Callable[[JobManager, list[object], Caller], object]


def _permit(manager: JobManager, caller: Caller, method: str, params: list[object]) -> None:
    if manager.permissions.permits_under(PUBLISH_GROUPS, caller, method, params):
        return
    if caller.user_id is None:
        details = not_logged_in(f"{manager.root}_{method}", PUBLISH_GROUPS)
        raise Refused("Method not authorized", details, anonymous=True)
    raise not_authorized()


def _selector(method: str, params: list[object]) -> dict[str, Any]:
    selector = params[0] if params else None
    if selector is None:
        return {}
    if not isinstance(selector, dict):
        raise ValidationError(f"{method}: the selector must be an object or null")
    parse_selector(selector)  # raises, naming the bad part
    return selector


def _options(method: str, params: list[object], allowed: set[str]) -> dict[str, Any]:
    if len(params) > 2:
        raise ValidationError(f"{method} takes [selector, options], got {len(params)} params")
    options = params[1] if len(params) > 1 else None
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValidationError(f"{method}: options must be an object or null")
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise ValidationError(f"{method}: unknown option {unknown[0]!r} (known: {known})")
    return options


def _whole(method: str, name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{method}: {name} must be an integer from {low} to {high}")
    return value


def find(manager: JobManager, params: list[object], caller: Caller) -> object:
    _permit(manager, caller, "jobFind", params)
    selector = _selector("jobFind", params)
    options = _options("jobFind", params, {"limit", "newestFirst", "after"})
    limit = _whole("jobFind", "limit", options.get("limit", DEFAULT_PAGE), 1, MAX_PAGE)
    newest_first = options.get("newestFirst", False)
    if not isinstance(newest_first, bool):
        raise ValidationError("jobFind: newestFirst must be true or false")
    after = options.get("after")
    if after is not None:
        after = _whole("jobFind", "after", after, 0, 2**63 - 1)
    docs, following = manager.find_page(
        selector, after=after, limit=limit, newest_first=newest_first
    )
    return {"docs": [doc_to_wire(_published(manager, doc)) for doc in docs], "next": following}


def _published(manager: JobManager, doc: dict[str, Any]) -> dict[str, Any]:
    doc.pop("_private", None)
    if manager.scrub is not None:
        doc = manager.scrub(doc)
        doc.pop("_private", None)  # a scrub hook may have put it back
    return doc


def count(manager: JobManager, params: list[object], caller: Caller) -> object:
    _permit(manager, caller, "jobCount", params)
    selector = _selector("jobCount", params)
    options = _options("jobCount", params, {"atMost"})
    at_most = options.get("atMost")
    if at_most is not None:
        at_most = _whole("jobCount", "atMost", at_most, 1, 2**63 - 1)
    return manager.count(selector, at_most)


def stats(manager: JobManager, params: list[object], caller: Caller) -> object:
    _permit(manager, caller, "jobStats", params)
    if params:
        raise ValidationError(f"jobStats takes no params, got {len(params)}")
    return [[status, job_type, n] for status, job_type, n in manager.stats()]


READ_METHODS: dict[str, ReadMethod] = {"jobFind": find, "jobCount": count, "jobStats": stats}
