"""``HttpPeer`` and ``PeerOptions``: addresses, defaults and which settings make two
connections interchangeable (Pingora's reuse hash)."""

from __future__ import annotations

import pytest

from propylon import ALPN, Backend, CertKey, HttpPeer, PeerOptions, TcpKeepalive
from propylon.upstreams.peer import DEFAULT_OPTIONS


@pytest.mark.parametrize("given, address", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    (("127.0.0.1", "8080"), ("127.0.0.1", 8080)),
    (["localhost", 80], ("localhost", 80)),
    ("[::1]:443", ("::1", 443)),
    ("unix:/run/app.sock", "/run/app.sock"),
    ("/run/app.sock", "/run/app.sock"),
    (Backend("127.0.0.1:18080"), ("127.0.0.1", 18080)),
])
def test_address_forms(given, address):
    peer = HttpPeer(given, False, "")
    assert peer.address == address
    assert peer.is_uds == isinstance(address, str)


@pytest.mark.parametrize("bad", ["localhost", "127.0.0.1:http", "host:"])
def test_an_address_without_a_port_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=repr(bad).strip("'")):
        HttpPeer(bad, False, "")


def test_unix_socket_peers_need_an_absolute_path():
    assert HttpPeer.new_uds("/tmp/x.sock").is_uds
    with pytest.raises(ValueError, match="absolute"):
        HttpPeer.new_uds("relative.sock")


def test_defaults_are_pingoras_but_timeouts_and_shared_until_changed():
    peer = HttpPeer(("127.0.0.1", 80), True, "api.test")
    o = peer.settings()
    assert o is DEFAULT_OPTIONS  # no private copy for a peer that changes nothing
    assert (o.verify_cert, o.verify_hostname, o.alternative_cn, o.ca_file) == (True, True, None, None)
    # Connect, read and write default to 60 s like nginx's (Pingora leaves them unset).
    assert (o.connection_timeout, o.read_timeout, o.write_timeout) == (60.0, 60.0, 60.0)
    assert (o.total_connection_timeout, o.idle_timeout) == (None, None)
    assert o.alpn is ALPN.H1 and o.max_h2_streams == 1
    peer.options.read_timeout = 2.0  # the first change makes the peer its own options
    assert peer.settings() is not DEFAULT_OPTIONS and DEFAULT_OPTIONS.read_timeout == 60.0


def test_str_names_address_scheme_and_sni():
    assert str(HttpPeer(("127.0.0.1", 443), True, "api.test")) == "addr: 127.0.0.1:443, scheme: HTTPS, sni: api.test"
    assert str(HttpPeer("/run/a.sock", False, "")) == "addr: /run/a.sock, scheme: HTTP"


@pytest.mark.parametrize("max_v, min_v, alpn, offered", [
    (1, 1, ALPN.H1, ["http/1.1"]), (2, 2, ALPN.H2, ["h2"]), (2, 1, ALPN.H2H1, ["h2", "http/1.1"])])
def test_alpn_from_versions(max_v, min_v, alpn, offered):
    assert ALPN.new(max_v, min_v) is alpn and alpn.protocols() == offered


BASE = dict(address=("127.0.0.1", 443), tls=True, sni="api.test")


def _peer(options: PeerOptions | None = None, **changes) -> HttpPeer:
    fields = {**BASE, **changes}
    peer = HttpPeer(fields["address"], fields["tls"], fields["sni"], options)
    peer.client_cert_key = changes.get("cert")
    peer.group_key = changes.get("group_key", 0)
    return peer


@pytest.mark.parametrize("change", [
    dict(address=("127.0.0.1", 444)), dict(tls=False), dict(sni="other.test"),
    dict(cert=CertKey("c.pem", "k.pem")), dict(group_key=7),
])
def test_reuse_key_follows_identity(change):
    assert _peer(**change).reuse_key() != _peer().reuse_key()


@pytest.mark.parametrize("option", [
    dict(verify_cert=False), dict(verify_hostname=False), dict(alternative_cn="alt.test"),
    dict(max_h2_streams=4),
])
def test_reuse_key_follows_the_tls_checks_and_stream_limit(option):
    assert _peer(PeerOptions(**option)).reuse_key() != _peer().reuse_key()


@pytest.mark.parametrize("option", [
    dict(connection_timeout=1.0), dict(read_timeout=3.0), dict(write_timeout=3.0), dict(idle_timeout=9.0),
    dict(alpn=ALPN.H2H1), dict(ca_file="/etc/ca.pem"), dict(tcp_keepalive=TcpKeepalive(5, 1, 3)),
    dict(bind_to="127.0.0.2"),
])
def test_reuse_key_ignores_timeouts_alpn_ca_and_socket_options(option):
    # As in Pingora: a pooled connection serves a peer that differs only in these.
    assert _peer(PeerOptions(**option)).reuse_key() == _peer().reuse_key()

