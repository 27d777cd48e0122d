"""``trellis agent`` start errors: one ``Error starting agent: ...`` line, exit 1, no traceback.

The agent itself is replaced by a fake whose ``run`` raises what the real one raises
(a TrellisError or OSError, often inside the TaskGroup's ExceptionGroup); logging
setup is stubbed so the tests leave pytest's handlers alone.
"""

from __future__ import annotations

import asyncio
import errno
import json

import pytest

from trellis.cli import agent as cli_agent
from trellis.config.agent_config import InvalidConfig
from trellis.errors import InvalidInput, Unavailable


class FakeAgent:
    """Stands in for trellis.agent.agent.Agent; ``raises`` is what ``run`` raises."""

    raises: BaseException | None = None
    start_first = False

    def __init__(self, cfg, *, dev, reload_config) -> None:
        self.cfg = cfg
        self.started = asyncio.Event()

    async def run(self) -> None:
        if self.start_first:
            self.started.set()
        if self.raises is not None:
            raise self.raises


@pytest.fixture()
def fake_agent(monkeypatch):
    # By name: test_cli_main may have dropped trellis.cli.agent from sys.modules, and
    # main imports whichever module object is current.
    monkeypatch.setattr("trellis.cli.agent.setup_logging", lambda level, as_json: None)
    monkeypatch.setattr("trellis.agent.agent.Agent", FakeAgent)
    monkeypatch.setattr(FakeAgent, "raises", None)
    monkeypatch.setattr(FakeAgent, "start_first", False)
    return FakeAgent


def one_error_line(r, reason: str) -> None:
    assert r.code == 1 and r.out == ""
    assert r.err == f"Error starting agent: {reason}\n"
    assert "Traceback" not in r.err


# --------------------------------------------------------------------------- before the agent starts

@pytest.mark.parametrize(("argv", "reason"), [
    (["-log-level", "loud"], 'Invalid -log-level "loud": use trace, debug, info, warn, error or off'),
    (["-config-format", "yaml"], 'Invalid -config-format "yaml": use json or hcl'),
    (["-domain", "a..b"], 'Invalid domain "a..b.": a DNS label is empty'),
    (["-client", "notanip"], 'Invalid client_addr "notanip": not an IP address'),
    (["-client", "127.0.0.1 nope"], 'Invalid client_addr "nope": not an IP address'),
    (["-hcl", 'addresses { dns = "dns.local" }'], 'Invalid addresses.dns "dns.local": not an IP address'),
    (["-http-port", "70000"],
     "command-line flags: ports.http: invalid port 70000: must be -1 (disabled) or 0-65535"),
], ids=["log-level", "config-format", "domain", "client", "client-second", "addresses-dns", "port-range"])
def test_bad_values_fail_before_the_agent_starts(fake_agent, cli, argv, reason, monkeypatch):
    started = []
    monkeypatch.setattr(FakeAgent, "run", lambda self: started.append(1))
    r = cli("agent", "-dev", *argv)
    one_error_line(r, reason)
    assert started == []


@pytest.mark.parametrize("level", ["trace", "DEBUG", "info", "warn", "warning", "err", "error"])
def test_every_documented_log_level_is_accepted(fake_agent, cli, level):
    assert cli("agent", "-dev", "-log-level", level).code == 0


@pytest.mark.parametrize("fmt", ["json", "hcl"])
def test_config_format_json_and_hcl_are_accepted(fake_agent, cli, tmp_path, fmt):
    f = tmp_path / "conf"
    f.write_text('{"datacenter": "dc2"}' if fmt == "json" else 'datacenter = "dc2"')
    assert cli("agent", "-dev", "-config-format", fmt, "-config-file", str(f)).code == 0


def test_server_without_data_dir(fake_agent, cli):
    one_error_line(cli("agent", "-server"), "data_dir must be set unless -dev is given (use -data-dir)")


def test_bad_json_file_names_file_line_and_column(fake_agent, cli, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{\n  "datacenter": "dc1",\n}\n')
    r = cli("agent", "-dev", "-config-file", str(f))
    assert r.code == 1 and r.err.startswith(f"Error starting agent: Error parsing {f}: line 3, column 1: ")
    assert r.err.count("\n") == 1


def test_bad_hcl_file_names_file_and_line(fake_agent, cli, tmp_path):
    f = tmp_path / "bad.hcl"
    f.write_text('datacenter = "dc1"\nports {\n  http =\n}\n')
    r = cli("agent", "-dev", "-config-file", str(f))
    assert r.code == 1 and r.err.startswith(f"Error starting agent: Error parsing {f}: line 4, column 1: ")


def test_unknown_config_key_is_named(fake_agent, cli, tmp_path):
    f = tmp_path / "unknown.json"
    f.write_text(json.dumps({"datacenter": "dc1", "no_such_key": 1}))
    one_error_line(cli("agent", "-dev", "-config-file", str(f)), f'{f}: invalid config key "no_such_key"')


def test_missing_config_file(fake_agent, cli, tmp_path):
    r = cli("agent", "-dev", "-config-file", str(tmp_path / "nope.json"))
    assert r.code == 1 and r.err.startswith("Error starting agent: ") and "nope.json" in r.err
    assert "No such file or directory" in r.err


# --------------------------------------------------------------------------- raised by the running agent

BIND = Unavailable("HTTP listener on 127.0.0.1:8500: error while attempting to bind on address "
                   "('127.0.0.1', 8500): address already in use")


@pytest.mark.parametrize(("raised", "reason"), [
    (BIND, BIND.message),
    (ExceptionGroup("unhandled errors in a TaskGroup", [BIND]), BIND.message),
    (BaseExceptionGroup("outer", [ExceptionGroup("inner", [BIND]), asyncio.CancelledError()]), BIND.message),
    (ExceptionGroup("g", [OSError(errno.EADDRINUSE, "Address already in use")]), "address already in use"),
    (PermissionError(errno.EACCES, "Permission denied", "/var/lib/trellis"), "/var/lib/trellis: permission denied"),
    (InvalidInput("node_id", "x", message="node_id 'x' is not a UUID"), "node_id 'x' is not a UUID"),
    (ExceptionGroup("g", [Unavailable("a"), Unavailable("b"), Unavailable("a")]), "a; b"),
], ids=["plain", "task-group", "nested-group", "os-error", "os-error-file", "invalid-input", "several"])
def test_agent_failures_are_one_line(fake_agent, cli, raised, reason):
    fake_agent.raises = raised
    one_error_line(cli("agent", "-dev"), reason)


def test_failure_after_start_says_running(fake_agent, cli):
    fake_agent.raises = ExceptionGroup("g", [Unavailable("store closed")])
    fake_agent.start_first = True
    r = cli("agent", "-dev")
    assert (r.code, r.err) == (1, "Error running agent: store closed\n")


def test_keyboard_interrupt_is_quiet(fake_agent, cli):
    fake_agent.raises = KeyboardInterrupt()
    r = cli("agent", "-dev")
    assert (r.code, r.out, r.err) == (130, "", "")


def test_keyboard_interrupt_inside_a_group_is_quiet(fake_agent, cli):
    fake_agent.raises = BaseExceptionGroup("g", [KeyboardInterrupt(), asyncio.CancelledError()])
    r = cli("agent", "-dev")
    assert (r.code, r.out, r.err) == (130, "", "")


def test_a_clean_stop_exits_zero(fake_agent, cli):
    r = cli("agent", "-dev")
    assert (r.code, r.out, r.err) == (0, "", "")


def test_an_unexpected_exception_is_a_bug_and_propagates(fake_agent, cli):
    fake_agent.raises = ExceptionGroup("g", [ZeroDivisionError("boom")])
    with pytest.raises(ExceptionGroup):
        cli("agent", "-dev")


# --------------------------------------------------------------------------- pure helpers

def test_error_reason_ignores_what_it_does_not_map():
    assert cli_agent.error_reason(ValueError("x")) is None
    assert cli_agent.error_reason(BaseExceptionGroup("g", [asyncio.CancelledError()])) is None
    config_error = InvalidConfig("a.json", "invalid config key \"x\"")
    assert cli_agent.error_reason(ExceptionGroup("g", [config_error, ValueError()])) == config_error.message


def test_check_config_accepts_the_defaults():
    from trellis.config.agent_config import AgentConfig

    cli_agent.check_config(AgentConfig())
