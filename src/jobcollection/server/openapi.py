"""The OpenAPI 3.1 document of the HTTP API: the job methods written as JSON Schema data.

Each job method of each served collection is one operation, `POST <prefix>/<root>/<method>`,
whose request body is the array of the DDP method's positional params (`prefixItems`, one
schema per param; trailing params may be left out and extra ones are ignored, as over DDP).
Options objects are closed, like the server's checks. Values are EJSON: times are
`{"$date": ms}` (integer ms are accepted as well). Imports only `core` constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ..core.constants import (
    DDP_METHODS,
    FOREVER,
    FOREVER_DATE,
    JOB_LOG_LEVELS,
    JOB_RETRY_BACKOFF_METHODS,
    JOB_STATUSES,
)

Schema = dict[str, Any]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
ERROR_STATUSES: Final = {
    "400": "Invalid request: body, params or options (Meteor error 400 `Match failed`)",
    "401": "Bearer token malformed, unknown or expired, or missing for a call that needs a user",
    "403": "Not permitted (Meteor error 403 `Method not authorized`, or a refused login)",
    "404": "No such collection, method or route",
    "413": "Request body larger than the server's limit",
    "500": "Internal server error",
}
ALL_ERRORS: Final = tuple(ERROR_STATUSES)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _int(minimum: int, maximum: int = FOREVER) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _options(description: str, **keys: Schema) -> Schema:
    """A closed options object (unknown keys and `null` values are refused)."""
    return {
        "type": "object",
        "description": description,
        "properties": keys,
        "additionalProperties": False,
    }


_BOOL: Final[Schema] = {"type": "boolean"}
_STRING: Final[Schema] = {"type": "string"}
_OBJECT: Final[Schema] = {"type": "object", "description": "A plain object (user data)"}
_NO_OPTIONS: Final = _options("No options are accepted: `{}` or left out")

# Job document as sent to `jobSave` (docs/jobs.md): closed, `name -> (schema, required)`.
_NEW_JOB_FIELDS: Final[dict[str, tuple[Schema, bool]]] = {
    "_id": (_nullable(ref("Id")), False),
    "runId": (_nullable(ref("Id")), True),
    "type": ({"type": "string", "minLength": 1}, True),
    "status": ({"enum": ["waiting", "paused"]}, True),
    "data": (_OBJECT, True),
    "result": (_OBJECT, False),
    "failures": ({"type": "array", "items": _OBJECT}, False),
    "priority": (_int(INT32_MIN, INT32_MAX), True),
    "depends": ({"type": "array", "items": ref("Id")}, True),
    "resolved": ({"type": "array", "items": ref("Id")}, True),
    "after": (ref("Time"), True),
    "updated": (ref("Time"), True),
    "workTimeout": (_int(1), False),
    "expiresAfter": (ref("Time"), False),
    "log": ({"type": "array", "items": ref("LogEntry")}, False),
    "progress": (ref("Progress"), True),
    "retries": ({"type": "integer", "minimum": 0}, True),
    "retried": (_int(0), True),
    "repeatRetries": ({"type": "integer", "minimum": 0}, False),
    "retryUntil": (ref("Time"), True),
    "retryWait": (_int(0), True),
    "retryBackoff": ({"enum": list(JOB_RETRY_BACKOFF_METHODS)}, True),
    "repeats": ({"type": "integer", "minimum": 0}, True),
    "repeated": (_int(0), True),
    "repeatUntil": (ref("Time"), True),
    "repeatWait": (ref("Wait"), True),
    "created": (ref("Time"), True),
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Id": {"type": "string", "minLength": 1, "description": "A job or run id"},
    "Ids": {
        "description": "One id, or a (possibly empty) list of ids",
        "anyOf": [ref("Id"), {"type": "array", "items": ref("Id")}],
    },
    "Date": {
        "type": "object",
        "description": "EJSON date: milliseconds since the Unix epoch",
        "properties": {"$date": _int(-FOREVER_DATE, FOREVER_DATE)},
        "required": ["$date"],
        "additionalProperties": False,
    },
    "Time": {
        "description": "A time: an EJSON date, or integer milliseconds since the epoch",
        "anyOf": [ref("Date"), _int(-FOREVER_DATE, FOREVER_DATE)],
    },
    "Schedule": {
        "type": "object",
        "description": "A later.js schedule (UTC): {schedules: [...], exceptions?: [...]}",
        "properties": {
            "schedules": {"type": "array", "items": ref("Constraints")},
            "exceptions": {"type": "array", "items": ref("Constraints")},
        },
        "required": ["schedules"],
        "additionalProperties": False,
    },
    "Constraints": {
        "type": "object",
        "description": 'later.js constraints, e.g. `{"h": [3], "m": [0]}`',
        "patternProperties": {
            "^(s|t|fd|m|h|D|d|dw|dc|dy|wm|wy|M|Y)(_[ab])?$": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 1,
            }
        },
        "additionalProperties": False,
    },
    "Wait": {
        "description": "Milliseconds (integer >= 0) or a later.js schedule",
        "anyOf": [_int(0), ref("Schedule")],
    },
    "Progress": {
        "type": "object",
        "properties": {
            name: {"type": "number", "minimum": 0} for name in ("completed", "total", "percent")
        },
        "required": ["completed", "total", "percent"],
        "additionalProperties": False,
    },
    "LogEntry": {
        "type": "object",
        "properties": {
            "time": ref("Time"),
            "runId": _nullable(ref("Id")),
            "level": {"enum": list(JOB_LOG_LEVELS)},
            "message": _STRING,
            "data": _OBJECT,
        },
        "required": ["time", "runId", "level", "message"],
        "additionalProperties": False,
    },
    "NewJob": {
        "type": "object",
        "description": "A job document to save (no fields beyond those listed)",
        "properties": {name: schema for name, (schema, _) in _NEW_JOB_FIELDS.items()},
        "required": [name for name, (_, required) in _NEW_JOB_FIELDS.items() if required],
        "additionalProperties": False,
    },
    "Job": {
        "type": "object",
        "description": "A stored job document as returned by getJob / getWork",
        "properties": {
            **{name: schema for name, (schema, _) in _NEW_JOB_FIELDS.items()},
            "_id": ref("Id"),
            "status": {"enum": list(JOB_STATUSES)},
            "after": ref("Date"),
            "updated": ref("Date"),
            "created": ref("Date"),
            "expiresAfter": ref("Date"),
            "retryUntil": ref("Date"),
            "repeatUntil": ref("Date"),
            "retries": _int(0),
            "repeats": _int(0),
            "repeatRetries": _int(0),
            "log": {"type": "array", "items": ref("StoredLogEntry")},
        },
        "required": ["_id", "type", "status", "data"],
    },
    "StoredLogEntry": {
        "type": "object",
        "properties": {
            "time": ref("Date"),
            "runId": _nullable(ref("Id")),
            "level": {"enum": list(JOB_LOG_LEVELS)},
            "message": _STRING,
            "data": _OBJECT,
        },
        "required": ["time", "runId", "level", "message"],
    },
    "MeteorError": {
        "type": "object",
        "description": "A serialized Meteor.Error",
        "properties": {
            "isClientSafe": {"const": True},
            "error": {"type": ["integer", "string"]},
            "reason": _STRING,
            "details": _STRING,
            "message": _STRING,
            "errorType": {"const": "Meteor.Error"},
        },
        "required": ["isClientSafe", "error", "message", "errorType"],
        "additionalProperties": False,
    },
    "ErrorReply": {
        "type": "object",
        "properties": {"error": ref("MeteorError")},
        "required": ["error"],
        "additionalProperties": False,
    },
    "LoginOptions": {
        "description": "The options of Meteor's `login` method: a resume token or a password",
        "anyOf": [
            {
                "type": "object",
                "properties": {"resume": _STRING},
                "required": ["resume"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"user": ref("UserSelector"), "password": ref("Password")},
                "required": ["user", "password"],
                "additionalProperties": False,
            },
        ],
    },
    "UserSelector": {
        "type": "object",
        "description": "Exactly one of id, username, email",
        "properties": {
            name: {"type": "string", "minLength": 1} for name in ("id", "username", "email")
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
    },
    "Password": {
        "description": "Plain text, or its SHA-256 hex digest",
        "anyOf": [
            _STRING,
            {
                "type": "object",
                "properties": {"digest": _STRING, "algorithm": {"const": "sha-256"}},
                "required": ["digest", "algorithm"],
                "additionalProperties": False,
            },
        ],
    },
    "LoginResult": {
        "type": "object",
        "properties": {
            "id": _STRING,
            "token": _STRING,
            "tokenExpires": ref("Date"),
            "type": _STRING,
        },
        "required": ["id", "token", "tokenExpires"],
    },
}

_IDS: Final = ("ids", ref("Ids"))
_ID: Final = ("id", ref("Id"))
_RUN_ID: Final = ("runId", ref("Id"))
_SHUTDOWN = _options("Shutdown options", timeout=_int(1))
_START = ("options", _NO_OPTIONS)

# Method -> (positional params as (name, schema), how many are required, result schema).
METHODS: Final[dict[str, tuple[tuple[tuple[str, Schema], ...], int, Schema]]] = {
    "startJobs": ((_START,), 0, {"const": True}),
    "stopJobs": ((("options", _SHUTDOWN),), 0, {"const": True}),
    "startJobServer": ((_START,), 0, {"const": True}),
    "shutdownJobServer": ((("options", _SHUTDOWN),), 0, {"const": True}),
    "jobRemove": ((_IDS, ("options", _NO_OPTIONS)), 1, _BOOL),
    "jobPause": ((_IDS, ("options", _NO_OPTIONS)), 1, _BOOL),
    "jobResume": ((_IDS, ("options", _NO_OPTIONS)), 1, _BOOL),
    "jobReady": (
        (_IDS, ("options", _options("Ready options", force=_BOOL, time=ref("Time")))),
        1,
        _BOOL,
    ),
    "jobCancel": (
        (_IDS, ("options", _options("Cancel options", antecedents=_BOOL, dependents=_BOOL))),
        1,
        _BOOL,
    ),
    "jobRestart": (
        (
            _IDS,
            (
                "options",
                _options(
                    "Restart options",
                    retries={"type": "integer", "minimum": 0},
                    until=ref("Time"),
                    antecedents=_BOOL,
                    dependents=_BOOL,
                ),
            ),
        ),
        1,
        _BOOL,
    ),
    "jobSave": (
        (("doc", ref("NewJob")), ("options", _options("Save options", cancelRepeats=_BOOL))),
        1,
        _nullable(ref("Id")),
    ),
    "jobRerun": (
        (
            _ID,
            (
                "options",
                {
                    **_options(
                        "Rerun options (`wait` is required when options are given)",
                        repeats={"type": "integer", "minimum": 0},
                        until=ref("Time"),
                        wait=ref("Wait"),
                    ),
                    "required": ["wait"],
                },
            ),
        ),
        1,
        {"anyOf": [ref("Id"), {"type": "null"}, {"const": False}]},
    ),
    "getWork": (
        (
            ("type", {"anyOf": [_STRING, {"type": "array", "items": _STRING}]}),
            (
                "options",
                _options(
                    "Claim options", maxJobs={"type": "integer", "minimum": 1}, workTimeout=_int(1)
                ),
            ),
        ),
        1,
        {"type": "array", "items": ref("Job")},
    ),
    "getJob": (
        (_IDS, ("options", _options("Fetch options", getLog=_BOOL, getFailures=_BOOL))),
        1,
        {"anyOf": [ref("Job"), {"type": "array", "items": ref("Job")}, {"type": "null"}]},
    ),
    "jobLog": (
        (
            _ID,
            ("runId", _nullable(ref("Id"))),
            ("message", _STRING),
            (
                "options",
                _options("Log options", level={"enum": list(JOB_LOG_LEVELS)}, data=_OBJECT),
            ),
        ),
        3,
        _BOOL,
    ),
    "jobProgress": (
        (
            _ID,
            _RUN_ID,
            ("completed", {"type": "number", "minimum": 0}),
            ("total", {"type": "number", "exclusiveMinimum": 0, "description": ">= completed"}),
            ("options", _NO_OPTIONS),
        ),
        4,
        _nullable(_BOOL),
    ),
    "jobDone": (
        (
            _ID,
            _RUN_ID,
            ("result", _OBJECT),
            ("options", _options("Done options", repeatId=_BOOL, delayDeps=_int(0))),
        ),
        3,
        {"anyOf": [_BOOL, ref("Id")]},
    ),
    "jobFail": (
        (_ID, _RUN_ID, ("err", _OBJECT), ("options", _options("Fail options", fatal=_BOOL))),
        3,
        _BOOL,
    ),
}
assert set(METHODS) == set(DDP_METHODS)


def _json_body(schema: Schema, *, required: bool, description: str) -> Schema:
    return {
        "required": required,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _responses(result: Schema, *, only: Sequence[str] = ALL_ERRORS) -> Schema:
    ok = {
        "type": "object",
        "properties": {"result": result},
        "required": ["result"],
        "additionalProperties": False,
    }
    responses: Schema = {
        "200": {"description": "The method's result", "content": _json(ok)},
    }
    for status in only:
        error = {"description": ERROR_STATUSES[status], "content": _json(ref("ErrorReply"))}
        responses[status] = error
    return responses


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _method_operation(root: str, method: str) -> Schema:
    params, required, result = METHODS[method]
    body = {
        "type": "array",
        "description": "Positional params: "
        + ", ".join(name for name, _ in params)
        + " (trailing ones may be left out; extra ones are ignored)",
        "prefixItems": [{**schema, "title": name} for name, schema in params],
        "minItems": required,
    }
    operation: Schema = {
        "operationId": f"{root}_{method}",
        "summary": f"DDP method `{root}_{method}`",
        "tags": [root],
        "requestBody": _json_body(
            body, required=required > 0, description="EJSON array of params; empty body = []"
        ),
        "responses": _responses(result),
        "security": [{}, {"bearerAuth": []}],
    }
    if method in ("startJobs", "stopJobs"):
        operation["deprecated"] = True
    return operation


def build_openapi(
    roots: Sequence[str], *, prefix: str = "/api", login: bool = True, logout: bool = True
) -> Schema:
    """The OpenAPI document for the collections `roots` (and login/logout if served)."""
    paths: Schema = {}
    for root in roots:
        for method in DDP_METHODS:
            paths[f"{prefix}/{root}/{method}"] = {"post": _method_operation(root, method)}
    if login:
        paths[f"{prefix}/login"] = {
            "post": {
                "operationId": "login",
                "summary": "Log in (Meteor `login`); the result's token is a bearer token",
                "requestBody": _json_body(
                    ref("LoginOptions"), required=True, description="Login options"
                ),
                "responses": _responses(
                    ref("LoginResult"), only=("400", "403", "404", "413", "500")
                ),
                "security": [],
            }
        }
    if logout:
        paths[f"{prefix}/logout"] = {
            "post": {
                "operationId": "logout",
                "summary": "Revoke the bearer token",
                "responses": _responses({"type": "null"}, only=("401", "404", "500")),
                "security": [{"bearerAuth": []}],
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobcollection HTTP API",
            "version": "1",
            "description": "The DDP methods of Meteor job-collection over HTTP: "
            "POST the method's positional params as an EJSON array.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
