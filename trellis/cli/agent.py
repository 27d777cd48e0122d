"""``trellis agent``: read config files and flags, run the agent until a signal.

Precedence, as Consul's: ``-dev`` defaults < config files (in order) < flags.
SIGHUP re-reads the same files and re-registers the services and checks they define.

Errors (STYLE §4): anything that stops the agent from starting — a bad flag value, a
config file that does not parse or decode, a port in use — is one line on stderr,
``Error starting agent: <reason>`` (``Error running agent: ...`` once it was up), and
exit 1. ``run`` maps them by type: ``TrellisError`` and ``OSError``, also when the
agent's TaskGroup wraps them in an ``ExceptionGroup``. A KeyboardInterrupt that escapes
becomes main's quiet exit 130; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import ipaddress
import json
import logging
import socket
import sys
from collections.abc import Sequence

from trellis.cli.flags import Flag, FlagSet, Kind, go_quote
from trellis.cli.output import CommandError
from trellis.config import agent_config
from trellis.config.agent_config import AgentConfig
from trellis.errors import InvalidInput, TrellisError

FLAGS = FlagSet(
    usage="Usage: trellis agent [options]",
    description="Starts the trellis agent: catalog, health checks, HTTP API and DNS.",
    flags=(
        Flag("dev", Kind.BOOL, help="Development mode: a server with an in-memory-like temp store, gRPC on 8502."),
        Flag("server", Kind.BOOL, help="Run in server mode (the store is durable: synchronous=FULL)."),
        Flag("data-dir", help="Directory for state (required unless -dev)."),
        Flag("config-file", Kind.LIST, help="A JSON or HCL config file; repeatable, later files win."),
        Flag("config-dir", Kind.LIST, help="A directory of *.json and *.hcl config files; repeatable."),
        Flag("config-format", help="Force json or hcl for every config file."),
        Flag("hcl", Kind.LIST, help="An inline HCL config fragment; repeatable."),
        Flag("node", help="Node name (default: the host name)."),
        Flag("node-id", help="Node ID, a UUID (default: random, kept in the data dir)."),
        Flag("node-meta", Kind.LIST, help="key:value node metadata; repeatable."),
        Flag("datacenter", help="Datacenter name (default dc1)."),
        Flag("client", help="Address(es) for HTTP and DNS, space separated (default 127.0.0.1)."),
        Flag("bind", help="Cluster bind address; also the node address."),
        Flag("advertise", help="Address advertised for this node."),
        Flag("http-port", Kind.INT, default=-2, help="HTTP API port (default 8500)."),
        Flag("dns-port", Kind.INT, default=-2, help="DNS port, UDP and TCP (default 8600; -1 disables)."),
        Flag("grpc-port", Kind.INT, default=-2, help="gRPC/xDS port (default 8502 with -dev, else off)."),
        Flag("domain", help="DNS domain (default consul.)."),
        Flag("log-level", help="trace, debug, info, warn or error (default info)."),
        Flag("log-json", Kind.BOOL, help="Log JSON lines."),
        Flag("enable-script-checks", Kind.BOOL, help="Allow script checks from any source."),
        Flag("enable-local-script-checks", Kind.BOOL, help="Allow script checks from config files only."),
        Flag("ui", Kind.BOOL, help="Accepted for compatibility; the UI is not served yet (a warning says so)."),
    ),
)


def dev_defaults() -> dict:
    return {"server": True, "bootstrap": True, "client_addr": "127.0.0.1 ::1", "bind_addr": "127.0.0.1",
            "ports": {"grpc": 8502}}


def flag_overrides(p) -> dict:
    """The config keys the given flags set (only flags that appeared). Pure."""
    out: dict = {}
    simple = {"server": "server", "data-dir": "data_dir", "node": "node_name", "node-id": "node_id",
              "datacenter": "datacenter", "client": "client_addr", "bind": "bind_addr",
              "advertise": "advertise_addr", "domain": "domain", "log-level": "log_level",
              "log-json": "log_json", "enable-script-checks": "enable_script_checks",
              "enable-local-script-checks": "enable_local_script_checks", "ui": "ui"}
    for flag, key in simple.items():
        if p.is_set(flag):
            out[key] = p[flag]
    ports = {k: p[f"{k}-port"] for k in ("http", "dns", "grpc") if p.is_set(f"{k}-port")}
    if ports:
        out["ports"] = ports
    if p.node_meta:
        meta = {}
        for item in p.node_meta:
            key, sep, value = item.partition(":")
            if not sep or not key:
                raise InvalidInput("-node-meta", item, message=f"Invalid -node-meta {item!r}: expected key:value")
            meta[key] = value
        out["node_meta"] = meta
    return out


def build_config(p) -> AgentConfig:
    """dev defaults < files < inline HCL < flags; validated as a whole. Reads files."""
    before = [agent_config.decode_agent_config(dev_defaults(), "-dev")] if p.dev else []
    after = [agent_config.parse_agent_config(text, filename=f"-hcl[{i}]", fmt="hcl") for i, text in enumerate(p.hcl)]
    after.append(agent_config.decode_agent_config(flag_overrides(p), "command-line flags"))
    cfg = agent_config.load_config_files(
        p.config_file, p.config_dir, fmt=p.config_format or None, before=before, after=after
    )
    if not cfg.node_name:
        cfg = dataclasses.replace(cfg, node_name=socket.gethostname())
    if not cfg.data_dir and not p.dev:
        raise InvalidInput("data_dir", message="data_dir must be set unless -dev is given (use -data-dir)")
    return cfg


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"@timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "@level": record.levelname.lower(),
               "@module": record.name, "@message": record.getMessage()}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc)


CONFIG_FORMATS = ("json", "hcl")

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "err": logging.ERROR, "error": logging.ERROR,
           "off": logging.CRITICAL + 10}  # Consul accepts "off": log nothing


def setup_logging(level: str, as_json: bool) -> None:
    if level.lower() not in _LEVELS:
        raise InvalidInput("log_level", level, message=f"Invalid log level {level!r}: use trace, debug, info, warn, error or off")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level.lower()])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def check_flags(p) -> None:
    """Reject flag values that would otherwise fail late (or not at all). Pure.

    Raises InvalidInput naming the flag and the value.
    """
    if p.is_set("log-level") and p.log_level.lower() not in _LEVELS:
        raise InvalidInput("-log-level", p.log_level, message=(
            f"Invalid -log-level {go_quote(p.log_level)}: use trace, debug, info, warn, error or off"))
    if p.is_set("config-format") and p.config_format not in CONFIG_FORMATS:
        raise InvalidInput("-config-format", p.config_format, message=(
            f"Invalid -config-format {go_quote(p.config_format)}: use json or hcl"))


def check_config(cfg: AgentConfig) -> None:
    """Checks of the resolved config the agent would only trip over while starting. Pure.

    Raises InvalidInput naming the key and the value.
    """
    import dns.exception
    import dns.name

    for key, value in (("client_addr", cfg.client_addr), ("addresses.http", cfg.addresses.http),
                       ("addresses.dns", cfg.addresses.dns)):
        for host in value.split():  # the listeners bind each address as given
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise InvalidInput(key, host, message=(
                    f"Invalid {key} {go_quote(host)}: not an IP address")) from None
    try:
        dns.name.from_text(cfg.domain)
    except dns.exception.DNSException as exc:
        reason = (str(exc).rstrip(".") or type(exc).__name__)
        raise InvalidInput("domain", cfg.domain, message=(
            f"Invalid domain {go_quote(cfg.domain)}: {reason[:1].lower()}{reason[1:]}")) from None


def error_reason(exc: BaseException) -> str | None:
    """The one-line reason for an agent start/run failure, or None when ``exc`` holds
    nothing the CLI maps (a bug, or only cancellation). Groups are flattened. Pure."""
    reasons: list[str] = []
    for leaf in _leaves(exc):
        if isinstance(leaf, TrellisError):
            text = str(leaf)
        elif isinstance(leaf, OSError):
            text = _os_error_text(leaf)
        else:
            continue
        if text not in reasons:
            reasons.append(text)
    return "; ".join(reasons) if reasons else None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _os_error_text(exc: OSError) -> str:
    if not exc.strerror:
        return str(exc) or type(exc).__name__
    reason = exc.strerror
    if reason[:1].isupper() and reason[1:2].islower():  # "Address already in use" -> Go's lower case
        reason = reason[:1].lower() + reason[1:]
    return f"{exc.filename}: {reason}" if exc.filename else reason


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """The agent keeps a large, long-lived heap (the catalog view, a snapshot and an xDS
    stream per proxy), and a change that reaches 1,000 proxies allocates a burst of short-lived
    objects. With CPython's default thresholds (700, 10, 10) those bursts set off young and
    full collections that walk the whole heap: in bench_envoy.py part 4 they were ~25% of the
    agent's CPU per change, with single full collections of ~190 ms. Fewer, larger young
    collections keep cyclic garbage bounded (50,000 objects) and make full ones rare."""
    gc.set_threshold(*GC_THRESHOLDS)


def _only_interrupted(exc: BaseException) -> bool:
    """A Ctrl-C, possibly with the cancellations it caused, and nothing else."""
    leaves = _leaves(exc)
    interrupted = any(isinstance(x, KeyboardInterrupt) for x in leaves)
    return interrupted and all(isinstance(x, (KeyboardInterrupt, asyncio.CancelledError)) for x in leaves)


def run(argv: Sequence[str]) -> int:
    p = FLAGS.parse(list(argv))
    try:
        check_flags(p)
        cfg = build_config(p)
        check_config(cfg)
        setup_logging(cfg.log_level, cfg.log_json)
    except (TrellisError, OSError) as exc:
        raise CommandError(f"Error starting agent: {error_reason(exc)}") from None
    from trellis.agent.agent import Agent

    def reload() -> AgentConfig:
        return build_config(p)

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run

    agents: list[Agent] = []
    tune_gc()

    async def main() -> None:
        agents.append(Agent(cfg, dev=bool(p.dev), reload_config=reload))
        await agents[0].run()

    try:
        runner(main())
    except BaseException as exc:  # mapped by type below; anything unmapped re-raised as is
        reason = error_reason(exc)
        if reason is not None:
            doing = "running" if agents and agents[0].started.is_set() else "starting"
            raise CommandError(f"Error {doing} agent: {reason}") from None
        if isinstance(exc, BaseExceptionGroup) and _only_interrupted(exc):
            raise KeyboardInterrupt from None  # main: exit 130, no traceback
        raise
    return 0
