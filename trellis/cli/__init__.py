"""The ``trellis`` command line: thin clients of the HTTP API, one module per family.

``main.main`` dispatches; ``flags`` parses Go-style flags; ``http`` talks to the
agent; ``output`` prints tables and JSON. See docs/cli.md.

NOTE: nothing is re-exported here: ``trellis.cli.main`` must stay the module (the
console script is ``trellis.cli.main:main``), not be shadowed by the function.
"""
