"""The ACL seam: token in, authorizer out, one question per resource.

Until the ACL issue lands the resolver hands every token the allow-all
authorizer; what matters now is that every HTTP handler, DNS query and xDS
stream asks it before touching state, so enforcing ACLs later changes the
resolver, not the callers.

Pure: ``extract_token`` and the authorizers have no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from trellis.errors import PermissionDenied

ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"


class Access(enum.StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Authorizer:
    """Answers ``allowed(resource, name, access)``; ``require`` raises Consul's 403 text."""

    accessor_id: str = ANONYMOUS_ACCESSOR
    allow_all: bool = True

    def allowed(self, resource: str, name: str, access: Access) -> bool:
        return self.allow_all

    def require(self, resource: str, name: str, access: Access) -> None:
        if self.allowed(resource, name, access):
            return
        perm = f"{resource}:{access.value}"
        target = f' on "{name}"' if name else ""
        if self.accessor_id == ANONYMOUS_ACCESSOR:
            raise PermissionDenied(
                f"Permission denied: anonymous token lacks permission '{perm}'{target}. The anonymous "
                "token is used implicitly when a request does not specify a token."
            )
        raise PermissionDenied(
            f"Permission denied: token with AccessorID '{self.accessor_id}' lacks permission '{perm}'{target}"
        )


ALLOW_ALL = Authorizer()


class Resolver:
    """Token secret -> Authorizer. ACLs disabled: everyone gets allow-all."""

    default_policy = "allow"

    def resolve(self, token: str | None) -> Authorizer:
        return ALLOW_ALL


def extract_token(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """Consul's precedence: ``?token`` > ``X-Consul-Token`` > ``Authorization: Bearer``."""
    if query.get("token"):
        return query["token"]
    if headers.get("X-Consul-Token"):
        return headers["X-Consul-Token"]
    auth = headers.get("Authorization", "")
    scheme, _, rest = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.split():
        return rest.split()[0]
    return None
