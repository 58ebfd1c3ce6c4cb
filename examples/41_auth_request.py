"""Lesson 41: bearer-token authentication at the edge.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/41_auth_request.py
    curl -i http://127.0.0.1:6185/                                            # 401
    curl -i -H "Authorization: Bearer bad-token" http://127.0.0.1:6185/       # 403
    curl -i -H "Authorization: Bearer super-secret-token" http://127.0.0.1:6185/  # 200

401 means "no credentials, please authenticate" and carries a
``WWW-Authenticate: Bearer`` challenge; 403 means "credentials received and refused",
so repeating them will not help. Only authenticated requests reach the upstream.

:class:`~propylon.security.BearerAuth` compares digests of the tokens rather than the
raw strings, so the answer time does not leak how much of a guess was right.
"""

import logging

from propylon import HttpPeer, ProxyHttp, Server, http_proxy_service
from propylon.security import BearerAuth

log = logging.getLogger("auth_request")

BLUE = ("127.0.0.1", 18080)
SECRET_TOKEN = "super-secret-token"  # hard-coded for the lesson; a real gateway loads it
AUTH = BearerAuth([SECRET_TOKEN])


class AuthProxy(ProxyHttp):
    async def request_filter(self, session, ctx):
        result = AUTH.check(session.get_header("authorization"))
        if result.ok:
            log.info("Auth Success: Valid Token")
            return False
        if result.status == 401:
            log.warning("Auth Failed: Missing Authorization header")
        else:
            log.warning("Auth Failed: Invalid Token")
        headers = {"Content-Type": "text/plain", **dict(result.headers)}
        reason = "Unauthorized" if result.status == 401 else "Forbidden"
        await session.write_response(result.status, reason + "\n", headers)
        return True

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="auth-protected.cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, AuthProxy())
    proxy.add_tcp("127.0.0.1:6185")
    log.info("Auth Proxy running on 127.0.0.1:6185")
    log.info("Required Token: Bearer %s", SECRET_TOKEN)
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
