"""Every config-entry kind trellis stores, by its ``Kind`` string.

A new kind is a dataclass in a model module, listed here, with its checks in
validate.py's table (and, when it reads other entries, a rule in graph.py).
"""

from __future__ import annotations

from trellis.config.entry.model import Mesh, ProxyDefaults, ServiceDefaults, ServiceIntentions
from trellis.config.entry.model_chain import ServiceResolver, ServiceRouter, ServiceSplitter
from trellis.config.entry.model_gateway import IngressGateway, TerminatingGateway

KINDS: dict[str, type] = {cls.KIND: cls for cls in (
    ServiceDefaults, ProxyDefaults, ServiceIntentions, Mesh,
    IngressGateway, TerminatingGateway,
    ServiceResolver, ServiceRouter, ServiceSplitter,
)}

# The kinds whose entries form a service's discovery chain (chain.py).
CHAIN_KINDS = (ServiceRouter.KIND, ServiceSplitter.KIND, ServiceResolver.KIND)
