"""The built-in plugins through a running gateway: 401/403/200 for each auth kind, limits, CORS."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BLUE = b"Response from BLUE"
SECRET = "hs-secret-of-32-bytes-or-more-1234"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    d = tmp_path_factory.mktemp("keys")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (d / "public.pem").write_bytes(pem)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (d / "jwks.json").write_text(json.dumps({"keys": [dict(jwk, kid="k1", alg="RS256", use="sig")]}))
    return key, other, d


AUTH = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters: {blue: {backends: [{address: "{blue}"}]}}
routes:
  - match: {path: {prefix: /basic}}
    plugins: {basic_auth: {users: {ann: pw1}}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /bearer}}
    plugins: {bearer_auth: {tokens: [tok-1]}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /key}}
    plugins: {api_key: {keys: {team-a: key-a}}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /hs}}
    plugins: {jwt: {algorithms: [HS256], secret: hs-secret-of-32-bytes-or-more-1234, issuer: propylon,
                    claims_to_headers: {sub: X-User}}}
    rewrite: {strip_prefix: /hs}
    proxy: {cluster: blue}
  - match: {path: {prefix: /rs}}
    plugins: {jwt: {algorithms: [RS256], public_key_file: "{keys}/public.pem"}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /jwks}}
    plugins: {jwt: {algorithms: [RS256], jwks_file: "{keys}/jwks.json"}}
    proxy: {cluster: blue}
"""


def test_basic_bearer_and_api_key(gateway_run, rsa_keys):
    gw = gateway_run(AUTH, keys=rsa_keys[2])
    status, headers, _ = gw.request(path="/basic")
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="Restricted"'
    assert gw.request(path="/basic", headers=basic("ann", "wrong"))[0] == 403
    assert gw.request(path="/basic", headers=basic("ann", "pw1"))[:3:2] == (200, BLUE)
    assert gw.request(path="/bearer")[0] == 401
    assert gw.request(path="/bearer", headers=bearer("tok-2"))[0] == 403
    assert gw.request(path="/bearer", headers=bearer("tok-1"))[0] == 200
    assert gw.request(path="/key")[0] == 401
    assert gw.request(path="/key", headers={"X-API-Key": "nope"})[0] == 403
    assert gw.request(path="/key", headers={"X-API-Key": "key-a"})[0] == 200


def test_jwt_hs256_rs256_and_jwks(gateway_run, rsa_keys):
    key, other, keys = rsa_keys
    gw = gateway_run(AUTH, keys=keys)
    exp = int(time.time()) + 300
    good = jwt.encode({"sub": "ann", "iss": "propylon", "exp": exp}, SECRET, algorithm="HS256")
    assert gw.request(path="/hs")[0] == 401
    assert gw.request(path="/hs", headers=bearer("not.a.jwt"))[0] == 403
    wrong_iss = jwt.encode({"sub": "ann", "iss": "else", "exp": exp}, SECRET, algorithm="HS256")
    assert gw.request(path="/hs", headers=bearer(wrong_iss))[0] == 403
    expired = jwt.encode({"iss": "propylon", "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    assert gw.request(path="/hs", headers=bearer(expired))[0] == 403
    status, _, body = gw.request(path="/hs/echo", headers=bearer(good))
    assert status == 200 and ["X-User", "ann"] in json.loads(body)["headers"]
    rs = jwt.encode({"sub": "ann", "exp": exp}, key, algorithm="RS256", headers={"kid": "k1"})
    forged = jwt.encode({"sub": "ann", "exp": exp}, other, algorithm="RS256", headers={"kid": "k1"})
    for path in ("/rs", "/jwks"):
        assert gw.request(path=path)[0] == 401
        assert gw.request(path=path, headers=bearer(forged))[0] == 403
        assert gw.request(path=path, headers=bearer(rs))[0] == 200
    # an HS256 token signed with the public key must not pass an RS256 route
    assert gw.request(path="/rs", headers=bearer(good))[0] == 403


LIMITS = """
listeners: [{name: web, address: "127.0.0.1:{port}"}]
clusters: {blue: {backends: [{address: "{blue}"}]}}
routes:
  - match: {path: {prefix: /limited}}
    plugins: {rate_limit: {requests: 5, window: 60, per: {header: X-Client}}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /cors}}
    plugins:
      cors: {allow_origins: ["https://app.test"], allow_headers: [Authorization], expose_headers: [X-Trace]}
      request_id: {}
    proxy: {cluster: blue}
  - match: {path: {prefix: /local-only}}
    plugins: {ip: {deny: [127.0.0.0/8]}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /upload}}
    plugins: {body_size: {max_bytes: 10}}
    proxy: {cluster: blue}
  - match: {path: {prefix: /py}}
    plugins: {python: [{plugin: "gw_test_plugin:Stamp", options: {value: one}}]}
    proxy: {cluster: blue}
"""

PLUGIN = '''
from propylon.gateway import Plugin


class Stamp(Plugin):
    async def request_filter(self, session, ctx):
        if session.get_header("x-block"):
            await session.write_response(418, b"blocked by plugin")
            return True
        return False

    async def response_filter(self, session, upstream_response, ctx):
        upstream_response.insert_header("X-Stamp", self.options["value"] + "-{version}")
'''


def test_rate_limit_answers_429_after_the_limit(gateway_run, tmp_path):
    (tmp_path / "gw_test_plugin.py").write_text(PLUGIN.replace("{version}", "v1"))
    gw = gateway_run(LIMITS)
    statuses = [gw.request(path="/limited", headers={"X-Client": "a"})[0] for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    status, headers, _ = gw.request(path="/limited", headers={"X-Client": "a"})
    assert status == 429 and headers["retry-after"] == "60"
    assert gw.request(path="/limited", headers={"X-Client": "b"})[0] == 200  # counted per client


def test_cors_preflight_and_response_headers(gateway_run, tmp_path):
    (tmp_path / "gw_test_plugin.py").write_text(PLUGIN.replace("{version}", "v1"))
    gw = gateway_run(LIMITS)
    status, headers, _ = gw.request("OPTIONS", "/cors/x", headers={
        "Origin": "https://app.test", "Access-Control-Request-Method": "PUT"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.test"
    assert "PUT" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "Authorization"
    assert "content-length" not in headers
    assert gw.request("OPTIONS", "/cors/x", headers={
        "Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"})[0] == 403
    status, headers, _ = gw.request(path="/cors/x", headers={"Origin": "https://app.test"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.test"
    assert headers["access-control-expose-headers"] == "X-Trace" and len(headers["x-request-id"]) == 32
    assert gw.request(path="/cors/x", headers={"X-Request-Id": "abc"})[1]["x-request-id"] == "abc"


def test_ip_deny_body_size_and_python_plugin(gateway_run, tmp_path):
    (tmp_path / "gw_test_plugin.py").write_text(PLUGIN.replace("{version}", "v1"))
    gw = gateway_run(LIMITS)
    assert gw.request(path="/local-only")[0] == 403
    assert gw.request("POST", "/upload", body=b"0123456789")[0] == 200
    assert gw.request("POST", "/upload", body=b"0123456789!")[0] == 413
    chunks = iter([b"01234", b"56789", b"!"])  # no Content-Length: counted as it streams
    assert gw.request("POST", "/upload", body=chunks, headers={"Transfer-Encoding": "chunked"})[0] == 413
    status, headers, _ = gw.request(path="/py")
    assert status == 200 and headers["x-stamp"] == "one-v1"
    assert gw.request(path="/py", headers={"X-Block": "1"})[:3:2] == (418, b"blocked by plugin")
    # edited plugin code goes live on reload, without a restart
    (tmp_path / "gw_test_plugin.py").write_text(PLUGIN.replace("{version}", "v2"))
    gw.reload(gw.conf_path.read_text(), wait_for="reload 1 of this process")
    assert gw.request(path="/py")[1]["x-stamp"] == "one-v2"


def test_a_remembered_jwt_still_expires(gateway_run, rsa_keys):
    gw = gateway_run(AUTH, keys=rsa_keys[2])
    token = jwt.encode({"sub": "ann", "iss": "propylon", "exp": int(time.time()) + 2}, SECRET, algorithm="HS256")
    assert gw.request(path="/hs", headers=bearer(token))[0] == 200
    assert gw.request(path="/hs", headers=bearer(token))[0] == 200  # from the verified-token memory
    time.sleep(3.1)
    assert gw.request(path="/hs", headers=bearer(token))[0] == 403
