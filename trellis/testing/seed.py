"""The seed guide's gateway files, as the tests that write them through the CLI use them."""

from __future__ import annotations

import textwrap

# The seed guide's "Egress Gateway with External Services" file, as written there.
TERMINATING_GATEWAY_HCL = textwrap.dedent('''\
    # egress-gateway-config.hcl
    Kind = "terminating-gateway"
    Name = "egress-gateway"
    Services = [
      {
        Name = "external-api"
        SNI = "api.external.com"
      }
    ]
''')

# The seed guide registers "ingress-gateway" and then writes ingress-gateway-config.hcl
# without showing it; this is the smallest such file a Consul user would write.
INGRESS_GATEWAY_HCL = textwrap.dedent('''\
    Kind = "ingress-gateway"
    Name = "ingress-gateway"
    Listeners = [
      {
        Port = 8080
        Protocol = "http"
        Services = [
          { Name = "web" },
        ]
      }
    ]
''')
