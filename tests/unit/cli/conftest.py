"""CLI unit-test fixtures: a fake agent behind ``trellis.cli.http.send`` and a runner.

The fake answers canned JSON per (method, path) and records every request, so a
test checks both what a command sent and what it printed, with no sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest

from trellis.cli import http
from trellis.cli.main import main


@dataclass
class FakeAgent:
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[http.Request] = field(default_factory=list)
    configs: list[http.HttpConfig] = field(default_factory=list)

    def on(self, method: str, path: str, body: Any = None, status: int = 200) -> None:
        self.routes[(method, path)] = (status, body)

    def __call__(self, config: http.HttpConfig, req: http.Request) -> http.Response:
        self.configs.append(config)
        self.requests.append(req)
        path = unquote(req.target.partition("?")[0])
        status, body = self.routes.get(
            (req.method, path), (404, "Invalid URL path: not a recognized HTTP API endpoint")
        )
        if isinstance(body, str):
            raw = body.encode()
        else:
            raw = b"" if body is None else json.dumps(body).encode()
        return http.Response(status, {"content-type": "application/json"}, raw)

    @property
    def last(self) -> http.Request:
        return self.requests[-1]

    def paths(self) -> list[str]:
        return [f"{r.method} {unquote(r.target.partition('?')[0])}" for r in self.requests]

    def query(self, index: int = -1) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].target.partition("?")[2], keep_blank_values=True)

    def body(self, index: int = -1) -> Any:
        raw = self.requests[index].body
        return None if raw is None else json.loads(raw)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONSUL_*/TRELLIS_* variable from the developer's shell leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("CONSUL_", "TRELLIS_")):
            monkeypatch.delenv(name)


@pytest.fixture()
def agent(monkeypatch: pytest.MonkeyPatch) -> FakeAgent:
    fake = FakeAgent()
    monkeypatch.setattr(http, "send", fake)
    return fake


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli("members", "-detailed")`` → Result(code, stdout, stderr)."""

    def run(*argv: str) -> Result:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
