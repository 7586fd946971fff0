"""JWT bearer tokens: who is calling, for which tenant, with which role.

Tokens are HS256-signed with ``VIGIL_JWT_SECRET``. Claims: ``sub`` (the actor
recorded on events), ``tenant``, ``role`` (viewer, operator, admin), ``exp``.
Verified tokens are cached until they expire: signature checks are the most
expensive part of a small command.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from commands.spec import Role
from domain.base import ensure_tenant_id
from domain.errors import InvalidValue

ALGORITHM = "HS256"


class AuthError(Exception):
    """401: no credentials, or credentials that do not verify."""


class Forbidden(Exception):
    """403: valid credentials without the role the operation needs."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    tenant: str
    role: Role

    def require(self, role: Role) -> None:
        if self.role < role:
            raise Forbidden(f"role {self.role.name} may not do this; {role.name} required")


def issue_token(
    secret: str, *, subject: str, tenant: str, role: str, ttl_seconds: int = 3600
) -> str:
    """Sign a token; used by ``vigil token`` and by tests."""
    if role not in Role.__members__:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(Role.__members__)}")
    ensure_tenant_id(tenant)
    now = int(time.time())
    claims = {"sub": subject, "tenant": tenant, "role": role, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class Authenticator:
    def __init__(self, secret: str, *, cache_size: int = 10_000) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing Authorization header; send 'Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization header must be 'Bearer <token>'")
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None and cached[1] > now:
            return cached[0]
        principal, expires = self._verify(token)
        self._cache[token] = (principal, expires)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "tenant", "role"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthError("token expired") from err
        except jwt.InvalidTokenError as err:
            raise AuthError(f"invalid token: {err}") from err
        role = Role.__members__.get(str(claims["role"]))
        if role is None:
            raise AuthError(f"invalid token: unknown role {claims['role']!r}")
        try:
            ensure_tenant_id(str(claims["tenant"]))
        except InvalidValue as err:
            raise AuthError(f"invalid token: tenant {err.reason}") from err
        principal = Principal(subject=str(claims["sub"]), tenant=str(claims["tenant"]), role=role)
        return principal, float(claims["exp"])
