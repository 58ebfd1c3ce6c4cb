"""Checking ``Authorization`` headers at the edge (lessons 41 and 42).

Parsers that never raise on client input, a constant-time comparison, and two
checkers that turn a header value into an :class:`AuthResult`:

========================  ===========  ==========================================
header                    outcome      answer
========================  ===========  ==========================================
absent, empty, or another MISSING      401 with ``WWW-Authenticate`` (a challenge)
scheme than expected
the expected scheme, but  WRONG        403: credentials were given and refused
unparseable or not valid
valid                     OK           let the request through
========================  ===========  ==========================================

The result carries the status and the challenge header value, so the HTTP layer can
answer without knowing the scheme::

    result = BASIC.check(session.req_header.headers.get("authorization"))
    if not result.ok:
        await reject(result.status, result.headers)

Secrets are never compared byte by byte with the candidate: tokens and passwords are
reduced to SHA-256 digests at construction. A password digest is compared with
``hmac.compare_digest``, against a random decoy when the user is unknown, so unknown
users cost the same as known ones; a bearer token's digest is looked up in a set,
whose timing can only reveal something about digests, not tokens.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import secrets
from base64 import b64decode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Optional, Union

__all__ = [
    "AuthOutcome",
    "AuthResult",
    "BasicAuth",
    "BearerAuth",
    "constant_time_equals",
    "parse_basic",
    "parse_bearer",
]

HeaderValue = Union[str, bytes, None]


def _as_text(value: HeaderValue) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            return None
    return value


def _split_scheme(value: HeaderValue, scheme: str) -> Optional[str]:
    """The credentials after ``scheme`` (case-insensitive), or None if another scheme."""
    text = _as_text(value)
    if text is None:
        return None
    parts = text.split(None, 1)
    if not parts or parts[0].lower() != scheme:
        return None
    return parts[1].strip() if len(parts) == 2 else ""


def parse_bearer(value: HeaderValue) -> Optional[str]:
    """The token of a ``Bearer <token>`` header value, or None.

    The scheme is case-insensitive; surrounding spaces are ignored. None for a missing
    value, another scheme, an empty token or a token containing spaces.
    """
    token = _split_scheme(value, "bearer")
    if not token or " " in token or "\t" in token:
        return None
    return token


def parse_basic(value: HeaderValue) -> Optional[tuple[str, str]]:
    """``(user, password)`` from a ``Basic <base64(user:password)>`` value, or None.

    Malformed base64, text that is not UTF-8, or a missing ``:`` give None; client
    input never raises. The password may contain ``:``.
    """
    encoded = _split_scheme(value, "basic")
    if not encoded:
        return None
    try:
        decoded = b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def constant_time_equals(a: Union[str, bytes], b: Union[str, bytes]) -> bool:
    """Compare two secrets without leaking where they differ (``hmac.compare_digest``).

    ``str`` arguments are UTF-8 encoded first. Lengths may still leak; compare digests
    of equal length (as the checkers here do) when that matters.
    """
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def _digest(secret: Union[str, bytes]) -> bytes:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).digest()


class AuthOutcome(enum.Enum):
    """What an authorization check concluded."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The answer of :meth:`BearerAuth.check` / :meth:`BasicAuth.check`.

    Attributes:
        outcome: OK, MISSING or WRONG.
        status: the HTTP status to answer with: 200 for OK, 401 for MISSING, 403 for
            WRONG.
        challenge: the ``WWW-Authenticate`` value to send with a 401, else None.
        user: the authenticated user name (Basic) when OK, else None.
    """

    outcome: AuthOutcome
    status: int
    challenge: Optional[str] = None
    user: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the request may pass."""
        return self.outcome is AuthOutcome.OK

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers to add to the rejection (the challenge, if any)."""
        return [("WWW-Authenticate", self.challenge)] if self.challenge else []


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class BearerAuth:
    """Admit requests carrying one of the given bearer tokens.

    Args:
        tokens: accepted tokens (at least one).
        realm: optional realm for the ``WWW-Authenticate: Bearer`` challenge.
    """

    def __init__(self, tokens: Iterable[Union[str, bytes]], *, realm: Optional[str] = None) -> None:
        self._digests = frozenset(_digest(t) for t in tokens)
        if not self._digests:
            raise ValueError("BearerAuth needs at least one token")
        self.challenge = "Bearer" if realm is None else f"Bearer realm={_quote(realm)}"
        self._missing = AuthResult(AuthOutcome.MISSING, 401, self.challenge)
        self._wrong = AuthResult(AuthOutcome.WRONG, 403)
        self._ok = AuthResult(AuthOutcome.OK, 200)

    def check(self, authorization: HeaderValue) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is absent)."""
        if _split_scheme(authorization, "bearer") is None:
            return self._missing
        token = parse_bearer(authorization)
        if token is None:
            return self._wrong
        # Looking up the SHA-256 digest: the time taken depends only on the digest,
        # which tells an attacker nothing useful about the tokens, and stays O(1)
        # however many tokens there are.
        return self._ok if _digest(token) in self._digests else self._wrong


class BasicAuth:
    """Admit requests with a user name and password from ``users``.

    Args:
        users: ``{user: password}``.
        realm: shown by browsers in the login prompt. Default ``"Restricted"``.
    """

    def __init__(self, users: Mapping[str, str], *, realm: str = "Restricted") -> None:
        self._users = {user: _digest(password) for user, password in users.items()}
        self.realm = realm
        self.challenge = f"Basic realm={_quote(realm)}"
        # Compared against for unknown users, so they cost the same as known ones.
        self._decoy = _digest(secrets.token_bytes(32))
        self._missing = AuthResult(AuthOutcome.MISSING, 401, self.challenge)
        self._wrong = AuthResult(AuthOutcome.WRONG, 403)

    def check(self, authorization: HeaderValue) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is absent)."""
        if _split_scheme(authorization, "basic") is None:
            return self._missing
        credentials = parse_basic(authorization)
        if credentials is None:
            return self._wrong
        user, password = credentials
        expected = self._users.get(user)
        matches = hmac.compare_digest(_digest(password), expected if expected is not None else self._decoy)
        if matches and expected is not None:
            return AuthResult(AuthOutcome.OK, 200, user=user)
        return self._wrong
