"""/v1/connect/intentions* and /v1/agent/connect/authorize: intentions as Consul serves
them, all stored in service-intentions config entries and all decided by one engine
(connect/intentions) over the view's intention index.
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from trellis.acl import Access
from trellis.api import params
from trellis.api.app import AUTHZ, CTX, blocking_headers, json_response, read_json
from trellis.api.blocking import block, parse_query_options
from trellis.api.codec import format_time
from trellis.api.codec_intentions import encode_intention
from trellis.api.filtering import compile_filter, select
from trellis.api.reads import check_dc
from trellis.config.entry import intentions as store
from trellis.connect import spiffe
from trellis.catalog.model import ServiceKind
from trellis.connect.intentions import impact
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.names import format_name, parse_name
from trellis.errors import InvalidInput, NotFound
from trellis.filter.schemas import INTENTION
from trellis.store.view import Result

WATCH = (("intentions",),)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/v1/connect/intentions", list_intentions)
    r.add_post("/v1/connect/intentions", create_intention)
    r.add_get("/v1/connect/intentions/exact", get_exact)
    r.add_put("/v1/connect/intentions/exact", put_exact)
    r.add_delete("/v1/connect/intentions/exact", delete_exact)
    r.add_get("/v1/connect/intentions/match", match)
    r.add_get("/v1/connect/intentions/check", check)
    r.add_get("/v1/connect/intentions/{id}", get_by_id)
    r.add_put("/v1/connect/intentions/{id}", update_by_id)
    r.add_delete("/v1/connect/intentions/{id}", delete_by_id)
    r.add_post("/v1/agent/connect/authorize", authorize)
    r.add_put("/v1/agent/connect/authorize", authorize)  # py-consul sends PUT


def _index(request: web.Request):  # noqa: ANN202 - the view's IntentionIndex
    return request.app[CTX].view["config"].intention_index()


def _required(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise InvalidInput(name, message=f"required query parameter '{name}' not set")
    return value


def _names(request: web.Request) -> tuple[tuple[str, str], tuple[str, str]]:
    ns = params.namespace(request.query, request.headers)
    return parse_name(_required(request, "source"), ns), parse_name(_required(request, "destination"), ns)


def _now() -> str:
    return format_time(time.time())


async def _write(request: web.Request, plan_fn) -> None:  # noqa: ANN001
    await request.app[CTX].writer.apply(plan_fn)


async def _body(request: web.Request) -> store.IntentionBody:
    data = await read_json(request)
    return store.decode_body(data if data is not None else {})


# -- reads ---------------------------------------------------------------------------------
async def list_intentions(request: web.Request) -> web.Response:
    check_dc(request)
    opts = parse_query_options(request.query)
    flt = compile_filter(opts.filter, INTENTION)
    view = request.app[CTX].view
    res = await block(view, opts, lambda: view.result(_index(request).all(), WATCH))
    authz = request[AUTHZ]
    docs = [encode_intention(i) for i in res.value if authz.allowed("intentions", i.destination_name, Access.READ)]
    return json_response(request, select(flt, docs), **blocking_headers(res.index))


async def get_exact(request: web.Request) -> web.Response:
    check_dc(request)
    source, destination = _names(request)
    request[AUTHZ].require("intentions", destination[1], Access.READ)
    view = request.app[CTX].view

    def run() -> Result:
        found = next((i for i in _index(request).candidates(*destination)
                      if i.source == source and i.destination == destination), None)
        return view.result(found, WATCH)

    res = await block(view, parse_query_options(request.query), run)
    if res.value is None:
        raise NotFound("Intention not found")
    return json_response(request, encode_intention(res.value), **blocking_headers(res.index))


async def get_by_id(request: web.Request) -> web.Response:
    check_dc(request)
    ixn_id = _uuid(request.match_info["id"])
    found = next((i for i in _index(request).all() if i.legacy_id == ixn_id), None)
    if found is None:
        raise NotFound("Intention not found")
    request[AUTHZ].require("intentions", found.destination_name, Access.READ)
    view = request.app[CTX].view
    return json_response(request, encode_intention(found), **blocking_headers(view.index_of(WATCH)))


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidInput("id", text, message=f"Invalid intention ID {text!r}: not a UUID") from None


async def match(request: web.Request) -> web.Response:
    check_dc(request)
    by = _required(request, "by")
    if by not in ("source", "destination"):
        raise InvalidInput("by", by, message="'by' parameter must be one of 'source' or 'destination'")
    wanted = request.query.getall("name", [])
    if not wanted:
        raise InvalidInput("name", message="required query parameter 'name' not set")
    ns = params.namespace(request.query, request.headers)
    targets = [(text, parse_name(text, ns)) for text in wanted]
    for _, (_, name) in targets:
        request[AUTHZ].require("intentions", name, Access.READ)
    view = request.app[CTX].view

    def run() -> Result:
        index = _index(request)
        return view.result({text: index.match(by, *target) for text, target in targets}, WATCH)

    res = await block(view, parse_query_options(request.query), run)
    body = {text: [encode_intention(i) for i in found] or None for text, found in res.value.items()}
    return json_response(request, body, **blocking_headers(res.index))


async def check(request: web.Request) -> web.Response:
    check_dc(request)
    source, destination = _names(request)
    source_type = request.query.get("source-type", "consul")
    if source_type != "consul":
        raise InvalidInput("source-type", source_type, message=f'unsupported SourceType: "{source_type}"')
    request[AUTHZ].require("service", destination[1], Access.READ)
    ctx = request.app[CTX]
    decision = _index(request).decide(source, destination, default=ctx.intention_default)
    return json_response(request, {"Allowed": decision.allowed})


# -- writes ----------------------------------------------------------------------------------
def _dry_run(request: web.Request, plan_fn) -> web.Response:  # noqa: ANN001
    """``?dry-run`` (trellis): the pairs of registered services whose decision would
    change, computed from the plan the write would commit; nothing is written."""
    ctx = request.app[CTX]
    view = ctx.view
    plan = plan_fn(view)
    before = _index(request)
    after_intentions = store.intentions_after(view, plan)
    after = IntentionIndex(after_intentions)
    changed = impact.changed_intentions(before.all(), after_intentions)
    services = sorted({(s.namespace, s.name) for s in view["services"].rows.values() if s.kind is ServiceKind.TYPICAL})
    changes = impact.impact(before, after, changed, services, default=ctx.intention_default)
    return json_response(request, {"DryRun": True, "Changes": [
        {"Source": format_name(*c.source), "Destination": format_name(*c.destination),
         "Before": "allow" if c.before else "deny", "After": "allow" if c.after else "deny", "Reason": c.reason}
        for c in changes]})


async def create_intention(request: web.Request) -> web.Response:
    check_dc(request)
    body = await _body(request)
    request[AUTHZ].require("intentions", body.destination_name, Access.WRITE)
    new_id, now = str(uuid.uuid4()), _now()
    ns = params.namespace(request.query, request.headers)
    plan_fn = lambda v: store.plan_legacy_create(v, body, new_id=new_id, now=now, namespace=ns)  # noqa: E731
    if params.flag(request.query, "dry-run"):
        return _dry_run(request, plan_fn)
    await _write(request, plan_fn)
    return json_response(request, {"ID": new_id})


async def update_by_id(request: web.Request) -> web.Response:
    check_dc(request)
    ixn_id = _uuid(request.match_info["id"])
    body = await _body(request)
    request[AUTHZ].require("intentions", body.destination_name, Access.WRITE)
    now, ns = _now(), params.namespace(request.query, request.headers)
    await _write(request, lambda v: store.plan_legacy_update(v, ixn_id, body, now=now, namespace=ns))
    return json_response(request, {"ID": ixn_id})


async def delete_by_id(request: web.Request) -> web.Response:
    check_dc(request)
    ixn_id = _uuid(request.match_info["id"])
    found = store.find_legacy(request.app[CTX].view, ixn_id)
    if found is not None:
        request[AUTHZ].require("intentions", found[0].name, Access.WRITE)
    await _write(request, lambda v: store.plan_legacy_delete(v, ixn_id))
    return json_response(request, True)


async def put_exact(request: web.Request) -> web.Response:
    check_dc(request)
    source, destination = _names(request)
    request[AUTHZ].require("intentions", destination[1], Access.WRITE)
    body = await _body(request)
    plan_fn = lambda v: store.plan_exact_put(v, source, destination, body)  # noqa: E731
    if params.flag(request.query, "dry-run"):
        return _dry_run(request, plan_fn)
    await _write(request, plan_fn)
    return json_response(request, True)


async def delete_exact(request: web.Request) -> web.Response:
    check_dc(request)
    source, destination = _names(request)
    request[AUTHZ].require("intentions", destination[1], Access.WRITE)
    await _write(request, lambda v: store.plan_exact_delete(v, source, destination))
    return json_response(request, True)


# -- authorize ---------------------------------------------------------------------------------
async def authorize(request: web.Request) -> web.Response:
    check_dc(request)
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("body", message="Request decode failed: expected a JSON object with Target and ClientCertURI")
    fields = {k.lower(): v for k, v in data.items()}
    target = fields.get("target")
    if not target or not isinstance(target, str):
        raise InvalidInput("Target", message="Target service must be specified")
    uri = fields.get("clientcerturi") or ""
    try:
        sid = spiffe.parse_id(uri) if isinstance(uri, str) and uri else None
    except InvalidInput:
        sid = None
    if sid is None:
        raise InvalidInput("ClientCertURI", uri, message="ClientCertURI not a valid Connect identifier")
    if not isinstance(sid, spiffe.ServiceID):
        raise InvalidInput("ClientCertURI", uri, message="ClientCertURI not a valid Service identifier")
    ns = fields.get("namespace") or params.namespace(request.query, request.headers)
    request[AUTHZ].require("service", target, Access.WRITE)
    ctx = request.app[CTX]
    decision = _index(request).decide((sid.namespace, sid.service), (ns, target), default=ctx.intention_default)
    return json_response(request, {"Authorized": decision.allowed, "Reason": decision.reason})

