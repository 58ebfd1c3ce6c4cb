"""Lesson 42: HTTP Basic authentication with a login challenge.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/42_basic_auth.py
    curl -i http://127.0.0.1:6186/                      # 401, WWW-Authenticate: Basic realm="PropylonProxy"
    curl -i -u admin:wrong http://127.0.0.1:6186/       # 403
    curl -i -u admin:password http://127.0.0.1:6186/    # 200

Basic authentication is challenge-response: a request without credentials gets a
401 whose ``WWW-Authenticate: Basic realm="..."`` header makes a browser show its
login prompt; the browser then repeats the request with
``Authorization: Basic base64(user:password)``. Wrong credentials get 403.

:class:`~propylon.security.BasicAuth` decodes the header and compares password
digests in constant time; an unknown user costs as much as a wrong password.
"""

import logging

from propylon import HttpPeer, ProxyHttp, ResponseHeader, Server, http_proxy_service
from propylon.security import BasicAuth

log = logging.getLogger("basic_auth")

BLUE = ("127.0.0.1", 18080)
AUTH = BasicAuth({"admin": "password"}, realm="PropylonProxy")


class BasicAuthProxy(ProxyHttp):
    async def request_filter(self, session, ctx):
        result = AUTH.check(session.get_header("authorization"))
        if result.ok:
            log.info("Auth Success: %s verified", result.user)
            return False
        if result.challenge is not None:
            log.warning("Auth Failed: Missing Header. Sending Challenge")
            # Built by hand, as in the lesson: respond_error cannot add the challenge.
            resp = ResponseHeader.build(401)
            resp.insert_header("WWW-Authenticate", result.challenge)
            resp.insert_header("Content-Length", "0")
            await session.write_response_header(resp, end_of_stream=True)
            return True
        log.warning("Auth Failed: Wrong Credentials")
        await session.respond_error(403)
        return True

    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="basic-auth.cluster")


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, BasicAuthProxy())
    proxy.add_tcp("127.0.0.1:6186")
    log.info("Basic Auth Proxy running on 127.0.0.1:6186")
    log.info("Credentials: admin / password")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
