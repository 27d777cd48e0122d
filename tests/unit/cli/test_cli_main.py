"""main.py dispatch (mitchellh/cli behaviour) and ``trellis version``."""

from __future__ import annotations

import json

import pytest

import trellis
from trellis.cli import main as cli_main
from trellis.cli.output import CommandError


@pytest.mark.parametrize(("argv", "path", "rest"), [
    (["members", "-detailed"], "members", ["-detailed"]),
    (["catalog", "nodes", "-service", "web"], "catalog nodes", ["-service", "web"]),
    (["catalog"], "catalog", []),
    (["catalog", "bogus"], "catalog", ["bogus"]),
    (["services", "register", "a.hcl"], "services register", ["a.hcl"]),
    (["nope", "members"], None, ["nope", "members"]),
], ids=["single-word", "two-words", "family", "family-unknown-sub", "positional", "unknown"])
def test_resolve_longest_command_path(argv, path, rest):
    assert cli_main.resolve(argv) == (path, rest)


def test_every_command_target_names_a_module_function():
    for path, command in cli_main.COMMANDS.items():
        module, _, func = command.target.partition(":")
        assert module.startswith("trellis.cli.") and func, path


@pytest.mark.parametrize(("argv", "code"), [([], 127), (["bogus"], 127), (["-h"], 0), (["--help"], 0)],
                         ids=["nothing", "unknown", "dash-h", "dash-dash-help"])
def test_top_level_help_lists_commands_on_stderr(cli, argv, code):
    r = cli(*argv)
    assert (r.code, r.out) == (code, "")
    assert r.err.startswith("Usage: trellis [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n")
    for name in ("agent", "catalog", "members", "services", "version"):
        assert f"\n    {name} " in r.err


@pytest.mark.parametrize(("argv", "code"), [(["catalog"], 1), (["catalog", "bogus"], 1), (["catalog", "-h"], 0)])
def test_family_without_subcommand_prints_its_subcommands(cli, argv, code):
    r = cli(*argv)
    assert r.code == code
    assert r.err.startswith("Usage: trellis catalog <subcommand> [options] [args]")
    assert "Subcommands:\n    datacenters    Lists all known datacenters\n    nodes          " in r.err


@pytest.mark.parametrize("argv", [
    ["members", "-h"], ["members", "--help"], ["catalog", "nodes", "-detailed", "-help"],
    ["services", "register", "web.hcl", "-h"],
], ids=["dash-h", "dash-dash-help", "after-flags", "after-positional"])
def test_help_anywhere_before_double_dash_prints_command_usage(agent, cli, argv):
    r = cli(*argv)
    assert (r.code, r.out) == (0, "")
    assert r.err.startswith("Usage: trellis " + " ".join(a for a in argv[:2] if not a.startswith("-")))
    assert agent.requests == []


def test_help_after_double_dash_is_an_argument(ok_services, cli):
    r = cli("services", "deregister", "-id", "web", "--", "-h")
    assert r.err == "Service deregistration requires arguments or -id, not both.\n"


@pytest.fixture()
def ok_services(agent):
    agent.on("PUT", "/v1/agent/service/deregister/web", None)
    return agent


def test_unknown_flag_prints_go_message_and_usage_exit_1(agent, cli):
    r = cli("members", "-bogus")
    assert r.code == 1
    assert r.err.startswith("flag provided but not defined: -bogus\nUsage: trellis members [options]\n")
    assert agent.requests == []


def test_missing_command_module_is_reported(monkeypatch, cli):
    monkeypatch.setitem(cli_main.COMMANDS, "agent", cli_main.Command("trellis.cli.no_such_module:run", "x"))
    r = cli("agent", "-dev")
    assert r.code == 1
    assert r.err == "Error running agent: this build has no 'agent' command yet (trellis.cli.no_such_module is missing)\n"


def test_command_error_exit_code_is_kept(monkeypatch, cli):
    import types

    def run(argv):
        raise CommandError("Error doing it: because", code=3)

    module = types.ModuleType("trellis.cli.fake_cmd")
    module.run = run
    monkeypatch.setitem(__import__("sys").modules, "trellis.cli.fake_cmd", module)
    monkeypatch.setitem(cli_main.COMMANDS, "fake", cli_main.Command("trellis.cli.fake_cmd:run", "x"))
    r = cli("fake")
    assert (r.code, r.err) == (3, "Error doing it: because\n")


def test_main_reads_sys_argv_by_default(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["trellis", "version"])
    assert cli_main.main() == 0
    assert capsys.readouterr().out.startswith("trellis v")


# --------------------------------------------------------------------------- version


@pytest.mark.parametrize("argv", [["version"], ["-v"], ["-version"], ["--version"]])
def test_version_pretty(cli, argv):
    r = cli(*argv)
    assert (r.code, r.err) == (0, "")
    assert r.out == f"trellis v{trellis.__version__}\nConsul API compatibility: {trellis.CONSUL_API_VERSION}\n"


def test_version_json(cli):
    r = cli("version", "-format", "json")
    assert json.loads(r.out) == {"Name": "trellis", "Version": trellis.__version__,
                                 "ConsulAPIVersion": trellis.CONSUL_API_VERSION}


@pytest.mark.parametrize(("argv", "err"), [
    (["version", "-format=xml"], "Unknown format: xml\n"),
    (["version", "extra"], "Too many arguments (expected 0, got 1)\n"),
])
def test_version_errors(cli, argv, err):
    r = cli(*argv)
    assert (r.code, r.err) == (1, err)


def test_version_never_loads_the_agent(cli):
    import sys

    sys.modules.pop("trellis.cli.agent", None)
    cli("version")
    assert "trellis.cli.agent" not in sys.modules
