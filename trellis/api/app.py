"""The aiohttp application: routing, the error middleware, the ACL seam, JSON out.

    request ─▶ edge middleware: token → authorizer ─▶ handler
                     ▲                                   │
                     └── TrellisError → status + Consul plain-text body

Rules:
1. Errors are mapped here, by type, to a status and a plain-text body.
2. Every handler gets ``request[AUTHZ]`` and asks it before reading state.
3. Responses carry ``X-Consul-Default-ACL-Policy``; blocking reads add the
   ``X-Consul-Index`` family through ``json_result``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from trellis.acl import Authorizer, Resolver, extract_token
from trellis.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    TrellisError,
    Unavailable,
)
from trellis.store.view import Result

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 4 * 1024 * 1024  # bytes; larger request bodies get a 400

CTX: web.AppKey[Any] = web.AppKey("trellis.ctx", object)
PRETTY: web.AppKey[bool] = web.AppKey("trellis.pretty", bool)
RESOLVER: web.AppKey[Resolver] = web.AppKey("trellis.resolver", Resolver)
AUTHZ: web.RequestKey[Authorizer] = web.RequestKey("trellis.authz", Authorizer)
TOKEN: web.RequestKey[str] = web.RequestKey("trellis.token", str)

_STATUS: list[tuple[type[TrellisError], int]] = [
    (InvalidInput, 400),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyRequests, 429),
    (Unavailable, 503),
]


def status_for(exc: TrellisError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def text(body: str, status: int = 200, **headers: str) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain", charset="utf-8", headers=headers)


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: ACL seam in, errors mapped by type out, Consul's headers on all."""
    resolver = request.app[RESOLVER]
    try:
        _admit(request, resolver)
        resp = await handler(request)
    except (TrellisError, web.HTTPException) as exc:
        resp = error_response(request, exc)
    resp.headers["X-Consul-Default-ACL-Policy"] = resolver.default_policy
    if "cached" in request.query and resp.status < 400:
        # Every answer comes from the live view: a cache miss of age 0, as Consul reports one.
        resp.headers["X-Cache"] = "MISS"
        resp.headers["Age"] = "0"
    return resp


def _admit(request: web.Request, resolver: Resolver) -> None:
    if "cached" in request.query and "consistent" in request.query:
        raise InvalidInput("cached", message="Cannot specify ?cached with ?consistent, conflicting semantics.")
    partition = request.query.get("partition") or request.headers.get("X-Consul-Partition")
    if partition and partition != "default":
        raise InvalidInput("partition", partition,
                           message='Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature')
    token = extract_token(request.query, request.headers)
    request[TOKEN] = token or ""
    request[AUTHZ] = resolver.resolve(token)


def error_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """A TrellisError or aiohttp's routing errors as Consul's plain-text answers."""
    if isinstance(exc, TrellisError):
        status = status_for(exc)
        if status >= 500:
            log.warning("request %s %s failed: %s", request.method, request.path, exc)
        if isinstance(exc, TooManyRequests):
            return text(str(exc), status, **{"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
        return text(str(exc), status)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = ",".join(["OPTIONS", *sorted(m for m in exc.allowed_methods if m != "OPTIONS")])
        if request.method == "OPTIONS":
            return web.Response(status=200, headers={"Allow": allow})
        return text(f"method {request.method} not allowed", 405, Allow=allow)
    if isinstance(exc, web.HTTPNotFound):
        if "/v1/" in request.path:
            return text("Invalid URL path: not a recognized HTTP API endpoint", 404)
        return text(
            "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'", 404
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return text(f"Request decode failed: http: request body too large (limit {MAX_BODY} bytes)", 400)
    assert isinstance(exc, web.HTTPException)
    return exc


def dumps(value: Any, pretty: bool) -> str:
    if pretty:
        return json.dumps(value, indent=4) + "\n"
    return json.dumps(value, separators=(",", ":"))


def json_response(request: web.Request, value: Any, status: int = 200, **headers: str) -> web.Response:
    pretty = request.app[PRETTY] or "pretty" in request.query
    return web.Response(
        text=dumps(value, pretty), status=status, content_type="application/json", headers=headers
    )


def blocking_headers(index: int) -> dict[str, str]:
    return {
        "X-Consul-Index": str(max(index, 1)),
        "X-Consul-KnownLeader": "true",
        "X-Consul-LastContact": "0",
        "X-Consul-Effective-Consistency": "leader",
        "X-Consul-Query-Backend": "blocking-query",
    }


def json_result(request: web.Request, result: Result[Any], value: Any) -> web.Response:
    """A blocking read's answer: ``value`` (already encoded) with the index headers."""
    return json_response(request, value, **blocking_headers(result.index))


BODIES: web.AppKey[dict] = web.AppKey("trellis.bodies", dict)
_BODY_CACHE_MAX = 1024
_NOT_PART_OF_ANSWER = frozenset({"index", "wait"})


def shared_result(request: web.Request, result: Result[Any], build: Callable[[], Any]) -> web.Response:
    """Like ``json_result``, but requests asking the same question (path, parameters
    other than index/wait, token) at the same index share one encoded body: when a
    write wakes a thousand blocking queries on one service, the answer is built
    once instead of a thousand times."""
    pretty = request.app[PRETTY] or "pretty" in request.query
    key = (
        request.path,
        tuple(sorted((k, v) for k, v in request.query.items() if k not in _NOT_PART_OF_ANSWER)),
        request.get(TOKEN, ""),
        result.index,
        pretty,
    )
    bodies = request.app[BODIES]
    body = bodies.get(key)
    if body is None:
        if len(bodies) >= _BODY_CACHE_MAX:
            bodies.clear()
        body = bodies[key] = dumps(build(), pretty)
    return web.Response(text=body, content_type="application/json", headers=blocking_headers(result.index))


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (None when empty); decode errors name line and column."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            "body",
            message=f"Request decode failed: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput("body", message="Request decode failed: body is not UTF-8") from None


def make_app(ctx: Any, route_modules: Iterable[Any], *, pretty: bool, resolver: Resolver) -> web.Application:
    app = web.Application(middlewares=[edge_middleware], client_max_size=MAX_BODY)
    app[CTX] = ctx
    app[PRETTY] = pretty
    app[RESOLVER] = resolver
    app[BODIES] = {}
    for module in route_modules:
        module.add_routes(app.router)
    app.router.add_get("/", _root)
    return app


async def _root(request: web.Request) -> web.Response:
    return text("Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.")
