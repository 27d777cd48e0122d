"""The proxy's client of its agent: the blocking snapshot query and the heartbeat (shell).

Rules:
1. Every request runs under a timeout: the blocking wait plus a margin (the agent
   adds up to wait/16 of jitter, as Consul does) for the snapshot, ``REQUEST_TIMEOUT``
   for the heartbeat.
2. aiohttp and JSON errors are mapped here, once (STYLE §4): an unreachable or failing
   agent is ``Unavailable`` (retry later), 404 is ``NotFound`` (no such proxy), 403 is
   ``PermissionDenied`` (the token).
3. The token goes in ``X-Consul-Token``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp

from trellis.errors import NotFound, PermissionDenied, TrellisError, Unavailable
from trellis.proxycfg.build import from_json
from trellis.proxycfg.model import ConnectProxySnapshot

SNAPSHOT_PATH = "/v1/agent/connect/proxy-snapshot/"
REQUEST_TIMEOUT = 10.0


def base_url(agent: str) -> str:
    """``127.0.0.1:8500`` or ``http://127.0.0.1:8500/`` -> ``http://127.0.0.1:8500``. Pure."""
    agent = agent.strip().rstrip("/")
    return agent if "://" in agent else f"http://{agent}"


class AgentClient:
    def __init__(self, agent_url: str, *, token: str = "") -> None:
        self.url = base_url(agent_url)
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"X-Consul-Token": self.token} if self.token else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def snapshot(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> ConnectProxySnapshot:
        """The newest snapshot past ``index``, or the current one once ``wait`` seconds pass."""
        params = {"index": str(index), "wait": f"{int(wait * 1000)}ms"} if index else {}
        data = await self._request("GET", SNAPSHOT_PATH + proxy_id, params=params,
                                   timeout=wait + wait / 16 + REQUEST_TIMEOUT)
        try:
            return from_json(data)
        except (TypeError, ValueError, KeyError, AttributeError, TrellisError) as exc:
            raise Unavailable(f"the agent sent a snapshot this proxy cannot read: {exc}") from None

    async def heartbeat(self, proxy_id: str, *, applied_version: str, connections: int,
                        extra: dict[str, Any] | None = None) -> bool:
        """Report what is applied; True when the agent asks the proxy to stop."""
        body: dict[str, Any] = {"AppliedVersion": applied_version, "Connections": connections,
                                "PID": os.getpid(), "DataPlane": "builtin"}
        if extra:
            body["Extra"] = extra
        data = await self._request("PUT", f"{SNAPSHOT_PATH}{proxy_id}/status", json=body, timeout=REQUEST_TIMEOUT)
        return bool(isinstance(data, dict) and data.get("Stop"))

    async def _request(self, method: str, path: str, *, timeout: float, **kw: Any) -> Any:
        try:
            async with asyncio.timeout(timeout):
                async with self._client().request(method, self.url + path, **kw) as resp:
                    text = await resp.text()
                    if resp.status == 200:
                        return await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"agent at {self.url} unreachable: {_describe(exc)}") from None
        message = text.strip() or resp.reason or ""
        if resp.status == 404:
            raise NotFound(message)
        if resp.status == 403:
            raise PermissionDenied(message)
        raise Unavailable(f"agent answered {resp.status}: {message}")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
