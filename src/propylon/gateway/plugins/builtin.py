"""The built-in plugins, each a :class:`Plugin` built from its config model.

They reuse the framework's building blocks: ``propylon.security`` for Basic and
Bearer auth, IP lists and body sizes, ``propylon.limits`` for rate and in-flight
limits, PyJWT for JSON Web Tokens. Answers follow ``propylon.security``'s rule:
no credentials → 401 with a challenge, refused credentials → 403.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

import jwt

from ...limits import Inflight, Rate
from ...security import BasicAuth, BearerAuth, BodySizeLimit, IpAccessList
from ...security.auth import parse_bearer
from ..config import models as m
from .base import Plugin
from .respond import reject

__all__ = ["ApiKeyAuth", "BasicAuthPlugin", "BearerAuthPlugin", "BodySize", "Cors", "InflightLimit",
           "IpFilter", "JwtAuth", "RateLimit", "RequestId", "limit_key"]


class RequestId(Plugin):
    """Give every request an id, sent upstream and back to the client."""

    def __init__(self, conf: m.RequestIdPlugin) -> None:
        super().__init__()
        self.header = conf.header
        self.trust = conf.trust_incoming

    async def request_filter(self, session, ctx) -> bool:
        incoming = session.get_header(self.header) if self.trust else None
        rid = ctx.vars["request_id"] = incoming or uuid.uuid4().hex
        if session.observation is not None:  # the access log's request_id
            session.observation.request_id = rid
        return False

    async def upstream_request_filter(self, session, upstream_request, ctx) -> None:
        upstream_request.insert_header(self.header, ctx.vars["request_id"])

    async def response_filter(self, session, upstream_response, ctx) -> None:
        upstream_response.insert_header(self.header, ctx.vars["request_id"])


class IpFilter(Plugin):
    """403 for client addresses that the allow/deny lists refuse."""

    def __init__(self, conf: m.IpPlugin) -> None:
        super().__init__()
        self.acl = IpAccessList(conf.allow, conf.deny)

    async def request_filter(self, session, ctx) -> bool:
        if self.acl.allows(session.client_ip or ""):
            return False
        await reject(session, 403)
        return True


class Cors(Plugin):
    """Answer preflights (OPTIONS with Access-Control-Request-Method) and add the
    CORS headers to responses for allowed origins."""

    def __init__(self, conf: m.CorsPlugin) -> None:
        super().__init__()
        self.any = "*" in conf.allow_origins
        self.origins = frozenset(conf.allow_origins)
        self.credentials = conf.allow_credentials
        self.preflight_headers = [("Access-Control-Allow-Methods", ", ".join(conf.allow_methods)),
                                  ("Access-Control-Max-Age", str(conf.max_age))]
        if conf.allow_headers:
            self.preflight_headers.append(("Access-Control-Allow-Headers", ", ".join(conf.allow_headers)))
        self.expose = ", ".join(conf.expose_headers)

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.any and not self.credentials else origin

    def _common(self, origin: str) -> list[tuple[str, str]]:
        out = [("Access-Control-Allow-Origin", self._allow_origin(origin)), ("Vary", "Origin")]
        if self.credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        return out

    async def request_filter(self, session, ctx) -> bool:
        origin = session.get_header("origin")
        if origin is None:
            return False
        allowed = self.any or origin in self.origins
        if session.req_header.method == "OPTIONS" and session.get_header("access-control-request-method"):
            if not allowed:
                await reject(session, 403)
            else:
                await reject(session, 204, self._common(origin) + self.preflight_headers)
            return True
        if allowed:
            ctx.vars["cors_origin"] = origin
        return False

    async def response_filter(self, session, upstream_response, ctx) -> None:
        origin = ctx.vars.get("cors_origin")
        if origin is None:
            return
        for name, value in self._common(origin):
            upstream_response.insert_header(name, value)
        if self.expose:
            upstream_response.insert_header("Access-Control-Expose-Headers", self.expose)


class _Checker(Plugin):
    """Auth through a ``propylon.security`` checker of the Authorization header."""

    checker: Any

    async def request_filter(self, session, ctx) -> bool:
        result = self.checker.check(session.get_header_bytes("authorization"))
        if result.ok:
            if result.user is not None:
                ctx.vars["user"] = result.user
            return False
        await reject(session, result.status, result.headers)
        return True


class BasicAuthPlugin(_Checker):
    def __init__(self, conf: m.BasicAuthPlugin) -> None:
        super().__init__()
        self.checker = BasicAuth(conf.users, realm=conf.realm)


class BearerAuthPlugin(_Checker):
    def __init__(self, conf: m.BearerAuthPlugin) -> None:
        super().__init__()
        self.checker = BearerAuth(conf.tokens, realm=conf.realm)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class ApiKeyAuth(Plugin):
    """A key in a header (or query parameter): 401 without one, 403 for an unknown one.
    The key's name goes to ``ctx.vars["api_key"]`` (rate limits may count per key)."""

    def __init__(self, conf: m.ApiKeyPlugin) -> None:
        super().__init__()
        self.header = conf.header
        self.query = conf.query
        # Looked up by SHA-256 digest, so lookups take the same time whatever the key.
        self.names = {_digest(key): name for name, key in conf.keys.items()}

    async def request_filter(self, session, ctx) -> bool:
        key = session.get_header(self.header)
        if key is None and self.query is not None:
            key = dict(parse_qsl(session.req_header.query or "")).get(self.query)
        if not key:
            await reject(session, 401)
            return True
        name = self.names.get(_digest(key))
        if name is None:
            await reject(session, 403)
            return True
        ctx.vars["api_key"] = name
        return False


#: How many verified tokens a JWT plugin remembers (per worker process).
JWT_CACHE_SIZE = 4096


class JwtAuth(Plugin):
    """``Authorization: Bearer <jwt>`` verified with a secret, a PEM key or a JWKS file.

    The claims go to ``ctx.vars["jwt"]``; ``claims_to_headers`` copies some upstream.
    Verifying a signature costs far more than proxying a small request, so a token
    that passed is remembered (the same bytes always verify the same way) and only
    its time limits, ``exp`` and ``nbf``, are checked again on the next use.
    """

    def __init__(self, conf: m.JwtPlugin) -> None:
        super().__init__()
        self.algorithms = list(conf.algorithms)
        self.issuer = conf.issuer
        self.audience = conf.audience
        self.leeway = conf.leeway
        self.claims_to_headers = dict(conf.claims_to_headers)
        self.key: Any = conf.secret
        self.jwks: Optional[jwt.PyJWKSet] = None
        self.challenge = [("WWW-Authenticate", "Bearer")]
        self._verified: dict[str, tuple[dict, float, float]] = {}
        if conf.public_key_file is not None:
            with open(conf.public_key_file, encoding="utf-8") as f:
                self.key = f.read()
        elif conf.jwks_file is not None:
            with open(conf.jwks_file, encoding="utf-8") as f:
                self.jwks = jwt.PyJWKSet.from_dict(json.load(f))

    def _key_for(self, token: str) -> Any:
        if self.jwks is None:
            return self.key
        kid = jwt.get_unverified_header(token).get("kid")
        for k in self.jwks.keys:
            if kid is None or k.key_id == kid:
                return k.key
        raise jwt.InvalidKeyError(f"no key with kid {kid!r}")

    async def request_filter(self, session, ctx) -> bool:
        token = parse_bearer(session.get_header_bytes("authorization"))
        if token is None:
            await reject(session, 401, self.challenge)
            return True
        claims = self._claims(token)
        if claims is None:
            await reject(session, 403)
            return True
        ctx.vars["jwt"] = claims
        return False

    def _claims(self, token: str) -> Optional[dict]:
        """The token's claims if it is valid now, else None."""
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            claims, not_after, not_before = known
            if not_before <= now <= not_after:
                return claims
            del self._verified[token]
        try:
            claims = jwt.decode(token, self._key_for(token), algorithms=self.algorithms,
                                audience=self.audience, issuer=self.issuer, leeway=self.leeway,
                                options={"verify_aud": self.audience is not None})
        except (jwt.PyJWTError, ValueError):
            return None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        not_after = float(exp) + self.leeway if isinstance(exp, (int, float)) else math.inf
        not_before = float(nbf) - self.leeway if isinstance(nbf, (int, float)) else -math.inf
        if len(self._verified) >= JWT_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (claims, not_after, not_before)
        return claims

    async def upstream_request_filter(self, session, upstream_request, ctx) -> None:
        claims = ctx.vars.get("jwt") or {}
        for claim, header in self.claims_to_headers.items():
            value = claims.get(claim)
            if value is None:
                continue
            text = str(value)
            # A claim is data from the token: never let it break the head's framing.
            if "\r" in text or "\n" in text or "\0" in text:
                continue
            upstream_request.insert_header(header, text)


def limit_key(per: m.LimitKey, route_name: str) -> Callable[[Any, Any], Any]:
    """The function giving a request's key for a rate or in-flight limit."""
    if per.ip_address:
        return lambda session, ctx: session.client_ip or ""
    if per.header is not None:
        name = per.header
        return lambda session, ctx: session.get_header(name) or ""
    if per.api_key:
        return lambda session, ctx: ctx.vars.get("api_key", "")
    return lambda session, ctx: route_name


class RateLimit(Plugin):
    """429 (with ``Retry-After``) once a key made ``requests`` in the current window.

    Counts are per worker process (``propylon.limits.Rate``), and start afresh when
    a reload changes the route's plugins.
    """

    def __init__(self, conf: m.RateLimitPlugin, route_name: str) -> None:
        super().__init__()
        self.limit = conf.requests
        self.rate = Rate(conf.window)
        self.key = limit_key(conf.per, route_name)
        self.retry_after = [("Retry-After", str(math.ceil(conf.window)))]

    async def request_filter(self, session, ctx) -> bool:
        if self.rate.observe(self.key(session, ctx), 1) <= self.limit:
            return False
        await reject(session, 429, self.retry_after)
        return True


class InflightLimit(Plugin):
    """429 while a key already has ``max`` requests in progress (per worker process)."""

    def __init__(self, conf: m.InflightPlugin, route_name: str) -> None:
        super().__init__()
        self.max = conf.max
        self.inflight = Inflight()
        self.key = limit_key(conf.per, route_name)

    async def request_filter(self, session, ctx) -> bool:
        guard = self.inflight.try_incr(self.key(session, ctx), self.max)
        if guard is None:
            await reject(session, 429)
            return True
        ctx.guards.append(guard)
        return False


class BodySize(Plugin):
    """413 for a declared Content-Length over the limit; a streamed body is counted as
    it goes upstream (the gateway's body filter reads ``ctx.body_limit``)."""

    def __init__(self, conf: m.BodySizePlugin) -> None:
        super().__init__()
        self.max_bytes = conf.max_bytes

    async def request_filter(self, session, ctx) -> bool:
        limit = BodySizeLimit(self.max_bytes)
        if not limit.check_content_length(session.get_header("content-length")):
            await reject(session, 413)
            return True
        ctx.body_limit = limit
        return False
