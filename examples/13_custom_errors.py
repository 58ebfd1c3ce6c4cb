"""Lesson 13: custom errors – answer failures with JSON instead of a bare status.

    python -m propylon.lab &
    PROPYLON_LOG=info python examples/13_custom_errors.py
    curl -i http://127.0.0.1:6153/          # 200 from blue
    curl -i http://127.0.0.1:6153/oops      # 400 {"status": "error", "code": 400, ...}

Any hook may raise ``Error``; ``fail_to_proxy`` is the one place that turns the
error into a response. A custom error type (``ErrorType.custom("Name")``) lets a
hook say *what* went wrong and the handler choose the status. The returned
``FailToProxy`` reports the status sent and whether the client connection may
serve another request (not after an error, to be safe).
"""

import logging

from propylon import (Error, ErrorType, FailToProxy, HttpPeer, ProxyHttp, ResponseHeader,
                      Server, http_proxy_service)

log = logging.getLogger("custom_errors")

BLUE = ("127.0.0.1", 18080)
SIMULATED = ErrorType.custom("SimulatedFailure")


class CustomErrorProxy(ProxyHttp):
    async def upstream_peer(self, session, ctx):
        return HttpPeer(BLUE, tls=False, sni="blue.propylon.test")

    async def request_filter(self, session, ctx):
        if session.req_header.path == "/oops":
            # Jumps straight to fail_to_proxy.
            raise Error.new(SIMULATED)
        return False

    async def fail_to_proxy(self, session, e, ctx):
        log.error("Entered fail_to_proxy with error: %s", e)
        code = 400 if e.etype == SIMULATED else 500

        body = f'{{"status": "error", "code": {code}, "message": "We caught a custom error!"}}'.encode()
        header = ResponseHeader.build(code)
        header.insert_header("Content-Type", "application/json")
        header.insert_header("Content-Length", str(len(body)))
        # Head first (the body follows), then the body, which ends the response.
        await session.write_response_header(header, end_of_stream=False)
        await session.write_response_body(body, end_of_stream=True)

        return FailToProxy(error_code=code, can_reuse_downstream=False)


def main() -> None:
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, CustomErrorProxy())
    proxy.add_tcp("127.0.0.1:6153")
    log.info("Custom Error Proxy running on 127.0.0.1:6153")
    log.info("Try: curl http://127.0.0.1:6153/oops")
    server.add_service(proxy)
    server.run_forever()


if __name__ == "__main__":
    main()
