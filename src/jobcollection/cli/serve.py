"""`jobcollection serve`: serve collections over DDP and HTTP, with rules from flags or TOML.

A config file says what the flags say, and can give each collection its own rules::

    db = "jobs.db"          # flags win over the file
    host = "127.0.0.1"
    port = 3000             # else $JOBCOLLECTION_PORT, else 3000
    promote = 1000
    max_connections = 1000  # open connections at most
    handshake_timeout = 10  # seconds for a whole request / the DDP handshake
    drain_timeout = 10      # on SIGTERM: seconds to wait for remote workers' running jobs
    [allow]                 # for every served collection
    admin = ["alice"]
    [deny]
    jobRemove = "anyone"
    [collections.emails.allow]
    worker = "users"

WHO is ``anyone``, ``users`` or user names (a list, or one comma-separated string).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.permissions import RULE_NAMES
from . import logs
from .errors import CommandFailed, UsageError
from .workers import LOST_AFTER_HELP, lost_after_ms

DEFAULT_PORT = 3000
PORT_VAR = "JOBCOLLECTION_PORT"
Rules = dict[str, list[object]]


@dataclass
class ServePlan:
    """Everything `serve` needs, merged from the config file and the flags."""

    db: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    promote: int | None = None
    lost_after: int | None = None
    max_connections: int | None = None
    handshake_timeout: float | None = None
    drain_timeout: float | None = None
    collections: dict[str, tuple[Rules, Rules]] = field(default_factory=dict)  # allow, deny

    def limits(self) -> dict[str, Any]:
        """The `Limits` fields set here (the others keep their defaults)."""
        chosen: dict[str, Any] = {"max_connections": self.max_connections}
        chosen["handshake_timeout"] = self.handshake_timeout
        return {name: value for name, value in chosen.items() if value is not None}


def add_parser(sub: Any, *, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    p = sub.add_parser(
        "serve",
        parents=list(parents),
        help="serve collections to remote clients (DDP websocket and HTTP API)",
        description="Serve job collections over DDP (/websocket) and HTTP (/api). Remote calls "
        "are denied unless allowed. GROUP is admin, manager, creator, worker or a method name; "
        "WHO is anyone, users (any logged-in user) or comma-separated user names.",
    )
    p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help="database")
    p.add_argument(
        "--collection",
        metavar="NAME",
        dest="serve_collections",
        nargs="+",
        action="extend",
        default=[],
        help="collection(s) to serve (default: queue)",
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"default: the config file's, else ${PORT_VAR}, else {DEFAULT_PORT}; 0: any free one",
    )
    p.add_argument("--allow", metavar="GROUP=WHO", action="append", type=_rule, default=[])
    p.add_argument("--deny", metavar="GROUP=WHO", action="append", type=_rule, default=[])
    p.add_argument("--promote", metavar="MS", type=_positive, help="safety-net sweep interval")
    p.add_argument(
        "--lost-after",
        metavar="MS",
        type=lost_after_ms,
        help="for remote workers: " + LOST_AFTER_HELP,
    )
    p.add_argument(
        "--max-connections",
        metavar="N",
        type=_positive,
        help="open connections at most (default 1000); at the limit, idle ones make room",
    )
    p.add_argument(
        "--handshake-timeout",
        metavar="S",
        type=_seconds,
        help="seconds a client has to send a whole request or the DDP handshake (default 10)",
    )
    p.add_argument(
        "--drain-timeout",
        metavar="S",
        type=_seconds,
        help="on SIGINT/SIGTERM, seconds to wait for the jobs remote workers are running "
        "before closing their connections (default 10; a second signal stops waiting)",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with the same settings and rules")
    logs.add_option(p)
    p.set_defaults(handler=cmd_serve)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def _who(value: object, where: str) -> object:
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
        if not names:
            raise UsageError(f"{where}: WHO is empty (anyone, users or user names)")
        return value.strip() if value.strip() in ("anyone", "users") else names
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise UsageError(f"{where}: WHO must be anyone, users or a list of user names, got {value!r}")


def _group(name: str, where: str) -> str:
    if name not in RULE_NAMES:
        raise UsageError(
            f"{where}: unknown group {name!r} (admin, manager, creator, worker or a method name)"
        )
    return name


def _rule(text: str) -> tuple[str, object]:
    name, sep, who = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected GROUP=WHO, got {text!r}")
    try:
        return _group(name.strip(), text), _who(who, text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(error.message) from error


def _rules_table(table: object, where: str) -> Rules:
    if not isinstance(table, Mapping):
        raise UsageError(f"{where}: expected a table of GROUP = WHO")
    rules: Rules = {}
    for name, who in table.items():
        rules.setdefault(_group(name, f"{where}.{name}"), []).append(_who(who, f"{where}.{name}"))
    return rules


def _merge(into: Rules, more: Rules) -> None:
    for name, values in more.items():
        into.setdefault(name, []).extend(values)


_TOP_KEYS = {
    *("db", "host", "port", "promote", "lost_after", "allow", "deny", "collections"),
    *("max_connections", "handshake_timeout", "drain_timeout"),
}


def load_config(path: str) -> dict[str, Any]:
    import tomllib  # the serve command only: the other commands start without it

    try:
        with open(path, "rb") as file:
            config = tomllib.load(file)
    except OSError as error:
        raise UsageError(f"--config {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--config {path}: not valid TOML: {error}") from error
    unknown = sorted(set(config) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"--config {path}: unknown setting(s) {', '.join(unknown)}")
    return config


def plan_from(args: argparse.Namespace) -> ServePlan:
    """Merge the config file and the flags (flags win; rules add up)."""
    config = load_config(args.config) if args.config else {}
    plan = ServePlan()
    plan.db = getattr(args, "db", None) or _typed(config, "db", str)
    plan.host = args.host or _typed(config, "host", str) or plan.host
    port = args.port if args.port is not None else _typed(config, "port", int)
    plan.port = port if port is not None else _env_port()
    plan.promote = args.promote or _typed(config, "promote", int)
    plan.lost_after = args.lost_after or _typed(config, "lost_after", int)
    if plan.lost_after is not None:
        try:
            lost_after_ms(str(plan.lost_after))
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"config: lost_after {error}") from None
    plan.max_connections = args.max_connections or _positive_setting(config, "max_connections", int)
    plan.handshake_timeout = args.handshake_timeout or _positive_setting(
        config, "handshake_timeout", (int, float)
    )
    plan.drain_timeout = args.drain_timeout or _positive_setting(
        config, "drain_timeout", (int, float)
    )
    shared_allow = _rules_table(config.get("allow", {}), "allow")
    shared_deny = _rules_table(config.get("deny", {}), "deny")
    for name, who in args.allow:
        shared_allow.setdefault(name, []).append(who)
    for name, who in args.deny:
        shared_deny.setdefault(name, []).append(who)
    per_collection = config.get("collections", {})
    if not isinstance(per_collection, Mapping):
        raise UsageError("config: collections must be a table of collection names")
    names = list(dict.fromkeys([*args.serve_collections, *per_collection]))
    for name in names or [args.collection]:
        own = per_collection.get(name, {})
        if not isinstance(own, Mapping) or set(own) - {"allow", "deny"}:
            raise UsageError(f"config: collections.{name} may only have allow and deny tables")
        allow, deny = _rules_table(own.get("allow", {}), f"collections.{name}.allow"), {}
        deny = _rules_table(own.get("deny", {}), f"collections.{name}.deny")
        _merge(allow, shared_allow)
        _merge(deny, shared_deny)
        plan.collections[name] = (allow, deny)
    return plan


def _env_port() -> int:
    """$JOBCOLLECTION_PORT, else the default port."""
    text = os.environ.get(PORT_VAR, "").strip()
    if not text:
        return DEFAULT_PORT
    try:
        return _port(text)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"${PORT_VAR}: {error}") from None


def _typed(config: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = config.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "number"
        raise UsageError(f"config: {key} must be a {name}, got {value!r}")
    return value


def _positive_setting(config: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = _typed(config, key, kind)
    if value is not None and not value > 0:
        raise UsageError(f"config: {key} must be positive, got {value!r}")
    return value


def check_listen(host: str, port: int) -> None:
    """Fail with one line if the server could not listen on ``host:port`` (bound and released
    here, before the collections are opened; uvicorn would exit with a traceback)."""
    import socket  # the serve command only: the other commands start without it

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        problem = f"--host {host}: not an address of this machine ({error.strerror})"
        raise CommandFailed(problem) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as error:
                raise CommandFailed(_cannot_listen(host, port, where, error)) from None


def _cannot_listen(host: str, port: int, where: str, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"--port {port}: {where} is already in use (another server is listening there;"
            " choose another port with --port)"
        )
    if error.errno == errno.EACCES:
        return f"--port {port}: not permitted to listen on {where} (ports below 1024 need root)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this machine"
    return f"cannot listen on {where}: {error.strerror or error}"


def cmd_serve(args: argparse.Namespace) -> int:
    from ..api.collection import JobCollection
    from ..server.app import Server
    from ..server.limits import Limits

    plan = plan_from(args)
    check_listen(plan.host, plan.port)
    collections = []
    for name, (allow, deny) in plan.collections.items():
        jc = JobCollection(name, db=plan.db)
        for rule_name, whos in allow.items():
            for who in whos:
                jc.allow(**{rule_name: who})
        for rule_name, whos in deny.items():
            for who in whos:
                jc.deny(**{rule_name: who})
        if plan.promote:
            jc.promote(plan.promote)
        collections.append(jc)
    server = Server(*collections, limits=Limits(**plan.limits()), lost_after=plan.lost_after)
    names = ", ".join(plan.collections)

    def ready(url: str) -> None:
        ws = url.replace("http://", "ws://", 1)
        print(f"jobcollection: serving {names} at {ws}/websocket and {url}/api", flush=True)

    drain: dict[str, Any] = {}
    if plan.drain_timeout is not None:
        drain["drain_timeout"] = plan.drain_timeout
    logs.setup(args.log_level)
    try:
        server.run(plan.host, plan.port, ready=ready, log_level=args.log_level, **drain)
    finally:
        for jc in collections:
            jc.close()
    print("jobcollection: stopped", file=sys.stderr, flush=True)
    return 0
