"""The TLS contexts of the public listener and of every upstream cluster (pure).

Rules (reference/envoy-xds.md §2.2, §2.6, §2.9; DESIGN: SDS secret names):
1. Certificates never sit inline in a listener or a cluster: the leaf is the SDS secret
   ``leaf/<ns>/<service>`` and the trust bundle the secret ``roots``, both fetched over
   the ADS stream, so a rotation replaces secrets and drains nothing.
2. Inbound: the client certificate is required and must chain to a mesh root; no SAN
   is matched there (authorization is the RBAC filter's job). ALPN is offered for HTTP
   services only (h2 first for http2/grpc).
3. Outbound: SNI is the upstream's SNI name and the server's certificate must carry the
   upstream's SPIFFE ID as a URI SAN, exactly. The matcher and the SDS trust bundle are
   combined with ``combined_validation_context`` (SAN matching stays ours, the bundle
   comes from SDS).
4. TLS 1.2 is the minimum both ways (Consul's default ``mesh.tls``).
5. A terminating gateway's TLS to an external service (``external_context``), from the
   linked service's entry fields: ``CAFile`` verifies the server against that file (and
   ``CertFile``/``KeyFile`` are presented as the client certificate); ``SNI`` alone
   verifies it against the system roots (``SYSTEM_ROOTS``); with ``SNI`` the name is sent
   and the server's certificate must carry it as a DNS, URI, email or IP SAN (Consul's
   matchers, any one passes). Neither: no TLS, plain TCP. NOTE: Consul speaks plaintext
   when only ``SNI`` is set; trellis originates TLS then, as the seed asks.
6. An ingress listener with TLS enabled (``ingress_context``) presents the gateway's leaf
   (whose DNS SANs are the listener's hosts) to clients outside the mesh: no client
   certificate, the entry's TLS versions (unset minimum: 1.2, rule 4; ``TLS_AUTO``:
   Envoy's default) and cipher suites (Consul's IANA names, in Envoy's), ALPN as rule 2.
7. An ingress certificate from the operator's SDS server (``operator_sds``) is the one
   exception to rule 1's ADS: Envoy asks for the secret by its resource name over gRPC
   from the bootstrap's static cluster the entry names, waiting 5 s per call, as Consul
   configures it.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from trellis.proxycfg.model import IngressTLS
from trellis.xds import types
from trellis.xds.translate import core

TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
# Rule 5: the system trust bundle Envoy reads for ``SNI`` without ``CAFile``: a fixed path
# (Debian and Ubuntu's ca-certificates, which Python's ssl.get_default_verify_paths() also
# names there), read by Envoy on the gateway's host, not by the agent.
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"
TLS_PARAMS = common_pb2.TlsParameters(tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2)


_VERSIONS = {"TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO, "TLSv1_0": common_pb2.TlsParameters.TLSv1_0,
             "TLSv1_1": common_pb2.TlsParameters.TLSv1_1, "TLSv1_2": common_pb2.TlsParameters.TLSv1_2,
             "TLSv1_3": common_pb2.TlsParameters.TLSv1_3}
# Rule 6: config-entry (IANA) cipher suite names as Envoy (BoringSSL) knows them.
ENVOY_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}


def sds(name: str) -> secret_pb2.SdsSecretConfig:
    """Rule 1: a reference to the SDS secret ``name``, fetched over ADS."""
    return secret_pb2.SdsSecretConfig(name=name, sds_config=core.ads_source())


def alpn_for(protocol: str) -> list[str]:
    """Rule 2 (Consul's ``alpn_protocols``): none for tcp."""
    if protocol in ("http2", "grpc"):
        return ["h2", "http/1.1"]
    if protocol == "http":
        return ["http/1.1"]
    return []


def downstream_context(leaf_secret: str, protocol: str) -> tls_pb2.DownstreamTlsContext:
    """Rules 1, 2, 4: the public listener's TLS."""
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=TLS_PARAMS,
            tls_certificate_sds_secret_configs=[sds(leaf_secret)],
            validation_context_sds_secret_config=sds(types.ROOTS_SECRET),
            alpn_protocols=alpn_for(protocol),
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
    )


def operator_sds(cluster: str, resource: str) -> secret_pb2.SdsSecretConfig:
    """Rule 7: secret ``resource`` fetched over gRPC from the static cluster ``cluster``."""
    source = config_source_pb2.ApiConfigSource(
        api_type=config_source_pb2.ApiConfigSource.GRPC, transport_api_version=config_source_pb2.V3,
        grpc_services=[grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster),
            timeout=duration_pb2.Duration(seconds=5))])
    return secret_pb2.SdsSecretConfig(name=resource, sds_config=config_source_pb2.ConfigSource(
        api_config_source=source, resource_api_version=config_source_pb2.V3))


def ingress_context(certificate: secret_pb2.SdsSecretConfig, protocol: str,
                    given: IngressTLS) -> tls_pb2.DownstreamTlsContext:
    """Rules 1, 2, 6, 7: an ingress listener's TLS towards its clients, presenting
    ``certificate`` (the gateway's leaf over ADS, or the operator's SDS secret)."""
    params = common_pb2.TlsParameters(
        tls_minimum_protocol_version=_VERSIONS.get(given.min_version, common_pb2.TlsParameters.TLSv1_2),
        tls_maximum_protocol_version=_VERSIONS.get(given.max_version, common_pb2.TlsParameters.TLS_AUTO),
        cipher_suites=[ENVOY_CIPHERS.get(c, c) for c in given.cipher_suites],
    )
    return tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=params, tls_certificate_sds_secret_configs=[certificate],
            alpn_protocols=alpn_for(protocol),
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=False),
    )


def upstream_context(leaf_secret: str, sni: str, spiffe_id: str) -> tls_pb2.UpstreamTlsContext:
    """Rules 1, 3, 4: an upstream cluster's TLS."""
    san = common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=string_pb2.StringMatcher(exact=spiffe_id),
    )
    combined = tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=common_pb2.CertificateValidationContext(match_typed_subject_alt_names=[san]),
        validation_context_sds_secret_config=sds(types.ROOTS_SECRET),
    )
    return tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=TLS_PARAMS,
            tls_certificate_sds_secret_configs=[sds(leaf_secret)],
            combined_validation_context=combined,
        ),
        sni=sni,
    )


def external_context(ca_file: str, cert_file: str, key_file: str, sni: str) -> tls_pb2.UpstreamTlsContext | None:
    """Rule 5: a terminating gateway's TLS to an external service, or None for plain TCP."""
    if not ca_file and not sni:
        return None
    validation = common_pb2.CertificateValidationContext(
        trusted_ca=base_pb2.DataSource(filename=ca_file or SYSTEM_ROOTS))
    if sni:
        validation.match_typed_subject_alt_names.extend(
            common_pb2.SubjectAltNameMatcher(san_type=t, matcher=string_pb2.StringMatcher(exact=sni))
            for t in (common_pb2.SubjectAltNameMatcher.DNS, common_pb2.SubjectAltNameMatcher.URI,
                      common_pb2.SubjectAltNameMatcher.EMAIL, common_pb2.SubjectAltNameMatcher.IP_ADDRESS))
    common = tls_pb2.CommonTlsContext(tls_params=TLS_PARAMS, validation_context=validation)
    if ca_file and cert_file and key_file:
        common.tls_certificates.append(common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(filename=cert_file),
            private_key=base_pb2.DataSource(filename=key_file)))
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=sni)


def transport_socket(context: tls_pb2.DownstreamTlsContext | tls_pb2.UpstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TRANSPORT_SOCKET, typed_config=core.pack(context))
