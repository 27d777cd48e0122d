"""Tokens and the authorizer every edge consults (see authorizer.py)."""

from trellis.acl.authorizer import ALLOW_ALL, Access, Authorizer, Resolver, extract_token

__all__ = ["ALLOW_ALL", "Access", "Authorizer", "Resolver", "extract_token"]
