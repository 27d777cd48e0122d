"""/v1/config: config entries (write with check-and-set, read and list blocking, delete).

Reads park on the entry's watch key (or its kind's list); writes go through
config/entry/write.py's plans, so an entry is validated whole, against the others
too, before anything is written.

ACLs (Consul's ``CanRead``/``CanWrite``): intentions by destination; proxy-defaults
and mesh need ``mesh:write`` to write; gateways are read with ``service:read`` on
their name and written with ``mesh:write``; a router, splitter or resolver is written
with ``service:write`` on its name plus ``service:read`` on every service it leads to;
the rest by service name.
"""

from __future__ import annotations

from aiohttp import web

from trellis.acl import Access, Authorizer
from trellis.api import params
from trellis.api.app import AUTHZ, CTX, blocking_headers, json_response, read_json
from trellis.api.blocking import block, parse_query_options
from trellis.api.codec_config import encode_entry
from trellis.api.reads import check_dc
from trellis.config.entry.decode import check_kind, decode_entry
from trellis.config.entry.keys import EntryRef
from trellis.api.filtering import compile_filter, select
from trellis.config.entry.graph import related
from trellis.config.entry.kinds import CHAIN_KINDS
from trellis.config.entry.model import MESH_NAME, Mesh, ProxyDefaults, ServiceDefaults, ServiceIntentions
from trellis.config.entry.model_gateway import IngressGateway, TerminatingGateway
from trellis.config.entry.write import CasFailed, plan_delete, plan_put, ref_of
from trellis.errors import InvalidInput, NotFound, PermissionDenied
from trellis.filter.schemas import SERVICE_DEFAULTS
from trellis.store.view import Result


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_put("/v1/config", put_entry)
    r.add_get("/v1/config/{kind}", list_entries)
    r.add_get("/v1/config/{kind}/{name:.+}", get_entry)
    r.add_delete("/v1/config/{kind}/{name:.+}", delete_entry)
    r.add_delete("/v1/config/{kind}", _delete_without_name)


def _authorize(authz: Authorizer, kind: str, name: str, access: Access) -> None:
    """Consul's rules (module docstring), for everything but a chain entry's targets."""
    if kind == ServiceIntentions.KIND:
        authz.require("intentions", name, access)
    elif kind in (ProxyDefaults.KIND, Mesh.KIND):
        if access is Access.WRITE:
            authz.require("mesh", "", access)
    elif kind in (IngressGateway.KIND, TerminatingGateway.KIND) and access is Access.WRITE:
        authz.require("mesh", "", access)
    else:
        authz.require("service", name, access)


def _authorize_targets(authz: Authorizer, entry: object) -> None:
    """A chain entry's writer must be able to read the services it sends traffic to."""
    if getattr(entry, "KIND", "") in CHAIN_KINDS:
        for _, svc in sorted(related(entry)):
            if svc != entry.name:  # type: ignore[attr-defined]
                authz.require("service", svc, Access.READ)


def _cas(request: web.Request) -> int | None:
    raw = request.query.get("cas")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput("cas", raw, message=f"Invalid cas value {raw!r}: expected an integer") from None
    if value < 0:
        raise InvalidInput("cas", raw, message=f"Invalid cas value {raw!r}: expected an integer >= 0")
    return value


def _ref(request: web.Request) -> EntryRef:
    kind = request.match_info["kind"]
    check_kind(kind)
    name = request.match_info.get("name", "")
    if kind == ProxyDefaults.KIND and name != "global":
        raise InvalidInput("name", name, message=f'invalid name ("{name}"), only "global" is supported')
    if kind == Mesh.KIND and name != MESH_NAME:
        raise InvalidInput("name", name, message=f'invalid name ("{name}"), only "{MESH_NAME}" is supported')
    return EntryRef(kind, params.namespace(request.query, request.headers), name)


async def put_entry(request: web.Request) -> web.Response:
    check_dc(request)
    body = await read_json(request)
    if body is None:
        raise InvalidInput("body", message="Request decoding failed: the body is empty; expected a config entry")
    entry = decode_entry(body, namespace=params.namespace(request.query, request.headers))
    ref = ref_of(entry)
    _authorize(request[AUTHZ], ref.kind, ref.name, Access.WRITE)
    _authorize_targets(request[AUTHZ], entry)
    cas = _cas(request)
    dc = request.app[CTX].datacenter
    try:
        await request.app[CTX].writer.apply(lambda v: plan_put(v, entry, cas=cas, datacenter=dc))
    except CasFailed:
        return json_response(request, False)
    return json_response(request, True)


async def get_entry(request: web.Request) -> web.Response:
    check_dc(request)
    ref = _ref(request)
    _authorize(request[AUTHZ], ref.kind, ref.name, Access.READ)
    view = request.app[CTX].view

    def run() -> Result:
        row = view["config"].get(ref.kind, ref.namespace, ref.name)
        return view.result(row, [("config-entry", ref.kind, ref.namespace, ref.name)], floor=("config-kind", ref.kind))

    res = await block(view, parse_query_options(request.query), run)
    if res.value is None:
        raise NotFound(f'Config entry not found for "{ref.kind}" / "{ref.name}"')
    return json_response(request, encode_entry(res.value), **blocking_headers(res.index))


async def list_entries(request: web.Request) -> web.Response:
    check_dc(request)
    kind = request.match_info["kind"]
    check_kind(kind)
    opts = parse_query_options(request.query)
    flt = None
    if opts.filter:
        if kind != ServiceDefaults.KIND:  # as Consul: only service-defaults lists filter
            raise InvalidInput("filter", opts.filter, message=f"filtering not supported for config entry kind={kind}")
        flt = compile_filter(opts.filter, SERVICE_DEFAULTS)
    ns = params.namespace(request.query, request.headers, wildcard=True)
    authz = request[AUTHZ]
    view = request.app[CTX].view

    def run() -> Result:
        rows = view["config"].of_kind(kind, ns)
        return view.result(rows, [("config-kind", kind)])

    res = await block(view, opts, run)
    docs = [encode_entry(r) for r in res.value if _visible(authz, kind, r)]
    return json_response(request, select(flt, docs), **blocking_headers(res.index))


def _visible(authz: Authorizer, kind: str, row: object) -> bool:
    try:
        _authorize(authz, kind, ref_of(row.entry).name, Access.READ)  # type: ignore[attr-defined]
    except PermissionDenied:  # hidden, as Consul filters lists by ACL
        return False
    return True


async def delete_entry(request: web.Request) -> web.Response:
    check_dc(request)
    ref = _ref(request)
    _authorize(request[AUTHZ], ref.kind, ref.name, Access.WRITE)
    cas = _cas(request)
    dc = request.app[CTX].datacenter
    try:
        await request.app[CTX].writer.apply(lambda v: plan_delete(v, ref, cas=cas, datacenter=dc))
    except CasFailed:
        return json_response(request, False)
    return json_response(request, True if cas is not None else {})


async def _delete_without_name(request: web.Request) -> web.Response:
    check_kind(request.match_info["kind"])
    raise NotFound("Must provide both a kind and name to delete")
