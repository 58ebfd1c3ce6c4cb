"""The "advanced" upstream: caching headers over HTTP, TLS with SNI, mutual TLS and h2c.

advanced-http (127.0.0.1:18090) answers by path; every answer carries
``X-Lab-Fetch`` (how many times this exact target reached the upstream, also in the
body as ``#N``) and ``X-Lab-Served-At`` (Unix time), so a test can tell a cache hit
(same number) from a fresh fetch. Append a unique query (``/short?t=abc``) to get a
counter of your own.

* ``/`` - ``public, max-age=10``; ``Response from Advanced Upstream (HTTP) #N``
* ``/short`` - ``max-age=5``; ``Content for max-age=5 #N``
* ``/long`` - ``max-age=60``; ``Content for max-age=60 #N``
* ``/no_store`` - ``no-store``; ``Content for no-store #N``
* ``/no_cache`` - ``no-cache``; ``Content for no-cache #N``
* ``/private`` - ``private, max-age=60``
* ``/file`` - ``public, max-age=300``; ``Cached Content (TTL 300s) #N``
* ``/resource`` - ``public, max-age=60``, answered after ``ms`` (default 2000) ms;
  ``Expensive Content Generated #N`` (cache locking)
* ``/swr`` - ``public, max-age=5, stale-while-revalidate=10`` (``max_age`` and ``swr``
  change the numbers), after ``ms`` (default 2000) ms; ``Content Version N``
* ``/sie`` - first fetch ``max-age=1, stale-if-error=60``; every later fetch of the
  same target answers 500 (stale-if-error)
* ``/revalidate`` - ``max-age=1`` (``max_age``) with ``ETag`` and ``Last-Modified``;
  304 when ``If-None-Match`` or ``If-Modified-Since`` match
* ``/vary`` - ``max-age=60``, ``Vary: Accept-Language``; ``Variant for <lang> #N``
* ``/expires`` - no Cache-Control, ``Expires`` 60 s ahead
* ``/cache`` - Cache-Control from ``cc`` (default ``max-age=60``), delay ``ms``,
  status ``status``; ``Content for <cc> #N``

The common lab paths (``/echo``, ``/slow``, ``/status/N``, ``/__lab/hits`` ...) work too.

advanced-https (127.0.0.1:18443) and advanced-mtls (127.0.0.1:18444) use the lab
upstream certificate and offer ALPN h2 + http/1.1; they report the SNI, ALPN and Host
they saw in ``X-Lab-SNI``/``X-Lab-ALPN``/``X-Lab-Host`` (and in ``/echo``). mTLS
answers 400 ``No required SSL certificate was sent`` (as nginx does) to a client with
no certificate; a certificate not signed by the lab CA fails the handshake.
advanced-h2c (127.0.0.1:18082) speaks HTTP/2 with prior knowledge.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Callable

from ._base import HttpMember, MemberConfig
from ._messages import LabRequest, LabResponse
from ._routes import Routes, text_response

__all__ = ["AdvancedHttpMember", "AdvancedHttpsMember", "AdvancedMtlsMember", "AdvancedH2cMember"]

_MTLS_REFUSAL = (
    "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n"
    "<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    "<center>No required SSL certificate was sent</center>\r\n"
    "<hr><center>propylon-lab</center>\r\n</body>\r\n</html>\r\n"
)


class AdvancedHttpMember(HttpMember):
    """Caching-header upstream on 127.0.0.1:18090 (paths in the module docstring)."""

    name = "advanced-http"
    default_port = 18090

    def __init__(self, config: MemberConfig) -> None:
        self.started_at = int(time.time())
        self.routes = Routes(self.name, self._fixed("public, max-age=10",
                                                    "Response from Advanced Upstream (HTTP)"),
                             base_headers=[("X-Lab-Member", self.name)])
        fixed = self._fixed
        self.routes.extra.update({
            "/short": fixed("max-age=5", "Content for max-age=5"),
            "/long": fixed("max-age=60", "Content for max-age=60"),
            "/no_store": fixed("no-store", "Content for no-store"),
            "/no_cache": fixed("no-cache", "Content for no-cache"),
            "/private": fixed("private, max-age=60", "Content for private, max-age=60"),
            "/file": fixed("public, max-age=300", "Cached Content (TTL 300s)"),
            "/resource": self._resource,
            "/swr": self._swr,
            "/sie": self._sie,
            "/revalidate": self._revalidate,
            "/vary": self._vary,
            "/expires": self._expires,
            "/cache": self._cache,
        })
        super().__init__(config, self.routes)

    def _answer(self, req: LabRequest, cc: str | None, text: str, status: int = 200,
                extra: list[tuple[str, str]] | None = None) -> LabResponse:
        resp = text_response(text, status)
        if cc is not None:
            resp.headers.append(("Cache-Control", cc))
        resp.headers.append(("X-Lab-Fetch", str(self.fetch(req))))
        resp.headers.append(("X-Lab-Served-At", f"{time.time():.6f}"))
        resp.headers += extra or []
        return resp

    def fetch(self, req: LabRequest) -> int:
        """How many times ``req``'s exact target has reached this member."""
        return self.routes.hits.get(req.target)

    def _fixed(self, cc: str, text: str) -> Callable[[LabRequest], LabResponse]:
        def handler(req: LabRequest) -> LabResponse:
            return self._answer(req, cc, f"{text} #{self.fetch(req)}")
        return handler

    async def _resource(self, req: LabRequest) -> LabResponse:
        await asyncio.sleep(req.int_param("ms", 2000) / 1000)
        return self._answer(req, "public, max-age=60", f"Expensive Content Generated #{self.fetch(req)}")

    async def _swr(self, req: LabRequest) -> LabResponse:
        await asyncio.sleep(req.int_param("ms", 2000) / 1000)
        cc = (f"public, max-age={req.int_param('max_age', 5)}, "
              f"stale-while-revalidate={req.int_param('swr', 10)}")
        return self._answer(req, cc, f"Content Version {self.fetch(req)}")

    def _sie(self, req: LabRequest) -> LabResponse:
        n = self.fetch(req)
        if n > 1:
            return self._answer(req, None, f"Upstream failure #{n}", status=500)
        return self._answer(req, "max-age=1, stale-if-error=60", f"Content for stale-if-error #{n}")

    def _revalidate(self, req: LabRequest) -> LabResponse:
        etag = '"lab-v1"'
        last_mod = email.utils.formatdate(self.started_at, usegmt=True)
        cc = f"max-age={req.int_param('max_age', 1)}"
        validators = [("ETag", etag), ("Last-Modified", last_mod)]
        inm = req.header("if-none-match")
        ims = req.header("if-modified-since")
        not_modified = False
        if inm is not None:
            not_modified = etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        elif ims is not None:
            parsed = email.utils.parsedate_to_datetime(ims) if ims else None
            not_modified = parsed is not None and parsed.timestamp() >= self.started_at
        if not_modified:
            resp = self._answer(req, cc, "", status=304, extra=validators)
            resp.body = b""
            return resp
        return self._answer(req, cc, f"Revalidated content #{self.fetch(req)}", extra=validators)

    def _vary(self, req: LabRequest) -> LabResponse:
        lang = req.header("accept-language") or "none"
        return self._answer(req, "max-age=60", f"Variant for {lang} #{self.fetch(req)}",
                            extra=[("Vary", "Accept-Language")])

    def _expires(self, req: LabRequest) -> LabResponse:
        expires = email.utils.formatdate(time.time() + 60, usegmt=True)
        return self._answer(req, None, f"Content with Expires #{self.fetch(req)}",
                            extra=[("Expires", expires)])

    async def _cache(self, req: LabRequest) -> LabResponse:
        ms = req.int_param("ms", 0)
        if ms > 0:
            await asyncio.sleep(ms / 1000)
        cc = req.param("cc", "max-age=60") or None
        return self._answer(req, cc, f"Content for {cc} #{self.fetch(req)}",
                            status=req.int_param("status", 200))


def _tls_default(title: str) -> Callable[[LabRequest], LabResponse]:
    def handler(req: LabRequest) -> LabResponse:
        proto = "HTTP/2" if req.protocol == "HTTP/2" else "HTTP/1.1"
        resp = text_response(f"Response from Advanced Upstream ({title} + {proto})")
        tls = req.tls
        resp.headers += [("X-Lab-SNI", (tls.sni if tls else None) or ""),
                         ("X-Lab-ALPN", (tls.alpn if tls else None) or ""),
                         ("X-Lab-Host", req.host or "")]
        return resp
    return handler


class AdvancedHttpsMember(HttpMember):
    """TLS upstream on 127.0.0.1:18443 (ALPN h2 + http/1.1, SNI reported back)."""

    name = "advanced-https"
    default_port = 18443
    mode = "https"

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config, Routes(self.name, _tls_default("HTTPS"),
                                        base_headers=[("X-Lab-Member", self.name)]))


class AdvancedMtlsMember(HttpMember):
    """Mutual-TLS upstream on 127.0.0.1:18444: wants a client certificate from the lab CA."""

    name = "advanced-mtls"
    default_port = 18444
    mode = "https"
    client_certs = True

    def __init__(self, config: MemberConfig) -> None:
        routes = Routes(self.name, self._authenticated, base_headers=[("X-Lab-Member", self.name)])
        self._routes = routes

        async def guarded(req: LabRequest) -> LabResponse:
            if req.tls is None or not req.tls.client_cert_subject:
                resp = LabResponse(400, [("Content-Type", "text/html")], _MTLS_REFUSAL.encode())
                resp.headers.append(("X-Lab-Member", self.name))
                return resp
            return await routes(req)

        super().__init__(config, guarded)

    @staticmethod
    def _authenticated(req: LabRequest) -> LabResponse:
        resp = text_response("Response from mTLS Protected Upstream. Hello, Authenticated Client!")
        subject = req.tls.client_cert_subject if req.tls else ""
        resp.headers.append(("X-Lab-Client-Cert", subject or ""))
        return resp


class AdvancedH2cMember(HttpMember):
    """HTTP/2 cleartext (prior knowledge) upstream on 127.0.0.1:18082."""

    name = "advanced-h2c"
    default_port = 18082
    mode = "h2c"

    def __init__(self, config: MemberConfig) -> None:
        def default(_req: LabRequest) -> LabResponse:
            return text_response("Response from Advanced Upstream (H2C - Cleartext HTTP/2)")

        super().__init__(config, Routes(self.name, default,
                                        base_headers=[("X-Lab-Member", self.name)]))
