"""A throwaway CA for proxy shell tests: a root per trust domain and leaves for SPIFFE IDs.

ca = TestCA("11111111-...")
leaf = ca.leaf("web")   # a LeafSnapshot, as the agent's snapshot carries it
"""

from __future__ import annotations

import datetime as dt
import itertools

from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.proxycfg.model import LeafSnapshot

_serials = itertools.count(1000)


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, cluster_id: str, *, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.trust_domain = spiffe.trust_domain(cluster_id)
        self.key = certs.generate_key(certs.LEAF_KEY)
        self.root = certs.build_root(self.key, cluster_id=cluster_id, uid="1", serial=next(_serials), now=self.now,
                                     ttl=dt.timedelta(days=10))
        self.root_pem = certs.dump_cert(self.root)

    def uri(self, service: str, ns: str = "default") -> str:
        return spiffe.service_uri(self.trust_domain, ns, "dc1", service)

    def leaf(self, service: str, *, uri: str | None = None, ttl: dt.timedelta = dt.timedelta(hours=1)) -> LeafSnapshot:
        key = certs.generate_key(certs.LEAF_KEY)
        uri = uri or self.uri(service)
        csr = certs.build_csr(key, uri)
        cert = certs.sign_leaf(csr, self.root, self.key, serial=next(_serials), now=self.now, ttl=ttl)
        return LeafSnapshot(cert_pem=certs.dump_cert(cert), private_key_pem=certs.dump_private_key(key),
                            service_uri=uri, serial=certs.serial_hex(cert.serial_number),
                            valid_before=certs.not_after(cert).timestamp())
