"""The ``trellis`` command: find the command in ``COMMANDS`` and run it (I/O edge).

Rules (Consul's ``mitchellh/cli`` behaviour):
1. A command path is one or more words (``members``, ``catalog nodes``); the
   longest path that prefixes the arguments wins. Command modules are imported
   only when their command runs, so ``trellis version`` never loads the agent.
2. Each command is a ``run(argv) -> int``-shaped function given the arguments
   after its path. It prints its results on stdout and its errors on stderr.
3. Exceptions that escape a command are mapped here, by type: ``UsageError`` →
   message + usage on stderr, exit 1; ``HelpRequested`` → usage on stderr, exit 0;
   ``CommandError`` → its message, its exit code; any other ``TrellisError`` (a
   command that did not word its own) → ``Error running <command>: <message>``, exit 1.
4. ``trellis`` alone or an unknown command → the command list on stderr, exit 127;
   a family without a subcommand (``trellis catalog``) → its subcommands, exit 1;
   ``-h``/``-help``/``--help`` anywhere before ``--`` → that command's help, exit 0;
   ``-v``/``-version``/``--version`` as the first argument → ``trellis version``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trellis.cli import output
from trellis.cli.flags import HelpRequested, UsageError
from trellis.cli.output import CommandError
from trellis.errors import TrellisError

HELP_ARGS = frozenset({"-h", "-help", "--help"})
VERSION_ARGS = frozenset({"-v", "-version", "--version"})
EXIT_UNKNOWN_COMMAND = 127


@dataclass(frozen=True, slots=True)
class Command:
    target: str  # "package.module:function"
    synopsis: str


COMMANDS: dict[str, Command] = {
    "agent": Command("trellis.cli.agent:run", "Runs a trellis agent"),
    "catalog datacenters": Command("trellis.cli.catalog:list_datacenters", "Lists all known datacenters"),
    "catalog nodes": Command("trellis.cli.catalog:list_nodes", "Lists all nodes in the given datacenter"),
    "catalog services": Command(
        "trellis.cli.catalog:list_services", "Lists all registered services in a datacenter"
    ),
    "config delete": Command("trellis.cli.config_entry:delete", "Delete a centralized config entry"),
    "config list": Command("trellis.cli.config_entry:list_entries", "List centralized config entries of a given kind"),
    "config read": Command("trellis.cli.config_entry:read", "Read a centralized config entry"),
    "config write": Command("trellis.cli.config_entry:write", "Create or update a centralized config entry"),
    "connect envoy": Command("trellis.cli.connect_envoy:run", "Runs or configures Envoy as a Connect proxy"),
    "connect proxy": Command("trellis.cli.connect_proxy:run", "Runs a Connect proxy"),
    "connect trace": Command(
        "trellis.cli.connect_trace:run", "Shows the path a request from one service to another would take"
    ),
    "connect ca get-config": Command(
        "trellis.cli.connect_ca:get_config", "Display the current Connect Certificate Authority (CA) configuration"
    ),
    "connect ca leaf": Command("trellis.cli.connect_ca:get_leaf", "Fetch a service's leaf certificate from the agent"),
    "connect ca roots": Command("trellis.cli.connect_ca:list_roots", "List the Connect CA's trusted root certificates"),
    "connect ca rotate": Command("trellis.cli.connect_ca:rotate", "Replace the active CA root with a new one"),
    "connect ca set-config": Command(
        "trellis.cli.connect_ca:set_config", "Modify the current Connect CA configuration"
    ),
    "intention apply": Command(
        "trellis.cli.intention:apply", "Make the intentions of a rules file's services what the file says"
    ),
    "intention check": Command(
        "trellis.cli.intention:check", "Check whether a connection between two services is allowed."
    ),
    "intention create": Command("trellis.cli.intention:create", "Create intentions for service connections."),
    "intention delete": Command("trellis.cli.intention:delete", "Delete an intention."),
    "intention get": Command("trellis.cli.intention:get", "Show information about an intention."),
    "intention list": Command("trellis.cli.intention:list_intentions", "List intentions"),
    "intention match": Command(
        "trellis.cli.intention:match", "Show intentions that match a source or destination."
    ),
    "members": Command("trellis.cli.members:run", "Lists the members of a trellis cluster"),
    "services deregister": Command("trellis.cli.services:deregister", "Deregister services with the local agent"),
    "services register": Command("trellis.cli.services:register", "Register services with the local agent"),
    "version": Command("trellis.cli.version:run", "Prints the trellis version"),
}

# Families: a word that only groups subcommands, with Consul's help text for it.
FAMILIES: dict[str, tuple[str, str]] = {
    "catalog": (
        "Interact with the catalog",
        "Usage: trellis catalog <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with the catalog. The catalog\n"
        "  should not be confused with the agent, although the APIs and responses may be\n"
        "  similar.\n\n"
        "  List all datacenters:\n\n      $ trellis catalog datacenters\n\n"
        "  List all nodes:\n\n      $ trellis catalog nodes\n\n"
        "  List all services:\n\n      $ trellis catalog services\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
    "config": (
        "Interact with centralized config entries",
        "Usage: trellis config <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with centralized config\n"
        "  entries. Here are some simple examples, and more detailed examples are\n"
        "  available in the subcommands or the documentation.\n\n"
        "  Write a config:\n\n      $ trellis config write web.serviceconf.hcl\n\n"
        "  Read a config:\n\n      $ trellis config read -kind service-defaults -name web\n\n"
        "  List all configs for a type:\n\n      $ trellis config list -kind service-defaults\n\n"
        "  Delete a config:\n\n      $ trellis config delete -kind service-defaults -name web\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
    "connect": (
        "Interact with Connect, the service mesh",
        "Usage: trellis connect <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with Connect, the service mesh:\n"
        "  its Certificate Authority (CA) and the certificates it issues.\n\n"
        "  Display the CA configuration:\n\n      $ trellis connect ca get-config\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
    "connect ca": (
        "Interact with the Connect Certificate Authority (CA)",
        "Usage: trellis connect ca <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with the Connect\n"
        "  Certificate Authority (CA).\n\n"
        "  Here are some simple examples, and more detailed examples are available\n"
        "  in the subcommands or the documentation.\n\n"
        "  Get the configuration:\n\n      $ trellis connect ca get-config\n\n"
        "  Update the configuration:\n\n      $ trellis connect ca set-config -config-file ca.json\n\n"
        "  Rotate the root and list the roots:\n\n"
        "      $ trellis connect ca rotate\n      $ trellis connect ca roots\n\n"
        "  Fetch a service's certificate and key into a directory:\n\n"
        "      $ trellis connect ca leaf -service web -out-dir ./certs\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
    "intention": (
        "Interact with Connect service intentions",
        "Usage: trellis intention <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with intentions. Intentions\n"
        "  are permissions describing which services are allowed to communicate via\n"
        "  Connect. Here are some simple examples, and more detailed examples are\n"
        "  available in the subcommands or the documentation.\n\n"
        "  Create an intention to allow \"web\" to talk to \"db\":\n\n"
        "      $ trellis intention create web db\n\n"
        "  Test whether a \"web\" is allowed to connect to \"db\":\n\n"
        "      $ trellis intention check web db\n\n"
        "  Find all intentions for communicating to the \"db\" service:\n\n"
        "      $ trellis intention match db\n\n"
        "  Make a rules file's services' intentions what the file says:\n\n"
        "      $ trellis intention apply rules.hcl\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
    "services": (
        "Interact with services",
        "Usage: trellis services <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with services. The subcommands\n"
        "  default to working with services registered with the local agent.\n\n"
        "  Register a service from a file or with flags:\n\n"
        "      $ trellis services register web.hcl\n"
        "      $ trellis services register -name=web -port=8080\n\n"
        "  Deregister a service:\n\n      $ trellis services deregister -id=web\n\n"
        "  For more examples, ask for subcommand help or view the documentation.",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named by ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in VERSION_ARGS:
        args = ["version"]
    if not args:
        return output.fail(format_help(), EXIT_UNKNOWN_COMMAND)
    if args[0] in HELP_ARGS:
        return output.fail(format_help(), 0)
    path, rest = resolve(args)
    if path is None:
        return output.fail(format_help(), EXIT_UNKNOWN_COMMAND)
    if path in FAMILIES:
        return output.fail(format_family_help(path), 0 if rest[:1] and rest[0] in HELP_ARGS else 1)
    if _asks_for_help(rest):
        rest = ["-h"]
    try:
        return _run(path, rest)
    except BrokenPipeError:
        # `trellis catalog services | head`: stop quietly, as Go programs do on EPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def resolve(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """The longest command path (or family) that prefixes ``args``, and the rest. Pure."""
    for n in range(min(len(args), 3), 0, -1):
        path = " ".join(args[:n])
        if path in COMMANDS or path in FAMILIES:
            return path, list(args[n:])
    return None, list(args)


def _asks_for_help(args: Sequence[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg in HELP_ARGS:
            return True
    return False


def _run(path: str, args: list[str]) -> int:
    func = _load(path)
    if func is None:
        return output.fail(
            f"Error running {path}: this build has no {path!r} command yet "
            f"({COMMANDS[path].target.partition(':')[0]} is missing)"
        )
    try:
        return func(args)
    except HelpRequested as exc:
        return output.fail(exc.usage.rstrip("\n"), 0)
    except UsageError as exc:
        output.err(str(exc))
        return output.fail(exc.usage.rstrip("\n"), 1)
    except CommandError as exc:
        return output.fail(str(exc), exc.code)
    except TrellisError as exc:
        return output.fail(f"Error running {path}: {exc}")


def _load(path: str) -> Callable[[list[str]], int] | None:
    """The command's function, imported now; None when its module does not exist."""
    module_name, _, attr = COMMANDS[path].target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, attr)


def format_help() -> str:
    """The top-level usage: every top-level command and family with its synopsis. Pure."""
    entries = {p: c.synopsis for p, c in COMMANDS.items() if " " not in p}
    entries.update({name: synopsis for name, (synopsis, _) in FAMILIES.items() if " " not in name})
    width = max(len(name) for name in entries)
    lines = [f"    {name.ljust(width)}    {entries[name]}" for name in sorted(entries)]
    return "Usage: trellis [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n" + "\n".join(lines)


def format_family_help(family: str) -> str:
    """A family's help and its direct subcommands (and subfamilies, ``connect`` → ``ca``),
    as mitchellh/cli prints them. Pure."""
    children = {p: c.synopsis for p, c in COMMANDS.items()}
    children.update({name: synopsis for name, (synopsis, _) in FAMILIES.items()})
    prefix = family + " "
    subs = {p[len(prefix):]: s for p, s in children.items() if p.startswith(prefix) and " " not in p[len(prefix):]}
    width = max(len(name) for name in subs)
    lines = [f"    {name.ljust(width)}    {subs[name]}" for name in sorted(subs)]
    return FAMILIES[family][1] + "\n\nSubcommands:\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
