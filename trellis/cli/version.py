"""``trellis version``: this build's version and the Consul API it speaks (no request).

Pretty output::

    trellis v0.1.0
    Consul API compatibility: 1.22.0

``-format=json`` prints ``{"Name", "Version", "ConsulAPIVersion"}``.
"""

from __future__ import annotations

import trellis
from trellis.cli import output
from trellis.cli.flags import FlagSet
from trellis.cli.output import CommandError

FLAGS = FlagSet(usage="Usage: trellis version [options]", flags=(output.FORMAT_FLAG,))


def run(argv: list[str]) -> int:
    parsed = FLAGS.parse(argv)
    fmt = output.check_format(parsed.format)
    if parsed.args:
        raise CommandError(f"Too many arguments (expected 0, got {len(parsed.args)})")
    info = version_info()
    output.out(output.format_json(info) if fmt == output.JSON else format_version(info))
    return 0


def version_info() -> dict[str, str]:
    return {"Name": "trellis", "Version": trellis.__version__, "ConsulAPIVersion": trellis.CONSUL_API_VERSION}


def format_version(info: dict[str, str]) -> str:
    """The two pretty lines. Pure."""
    return f"trellis v{info['Version']}\nConsul API compatibility: {info['ConsulAPIVersion']}"
