"""Upstream TLS verification by the connector, against the lab's HTTPS origin over loopback.

The lab's origin presents one certificate for ``advanced.propylon.test`` and
``*.api.propylon.test``, signed by the lab's CA.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from propylon import ErrorType, HttpPeer, PeerOptions
from propylon.connectors.http import HttpConnector
from propylon.connectors.tls import name_to_verify
from propylon.errors import Error


def _connect(lab, sni: str, **options) -> str:
    """Connect to the lab's HTTPS origin with ``sni``; the negotiated TLS version."""
    opts = PeerOptions(ca_file=os.path.join(str(lab.certs.dir), "ca.crt"), **options)

    async def main() -> str:
        connector = HttpConnector()
        conn = await connector.connect(HttpPeer(lab.address("advanced-https"), True, sni, opts))
        try:
            return conn.digest.tls.version
        finally:
            conn.close()

    return asyncio.run(main())


@pytest.mark.parametrize("sni", ["my_svc.api.propylon.test", "my-svc.api.propylon.test",
                                 "a_b_c.api.propylon.test", "advanced.propylon.test"])
def test_wildcard_certificate_covers_an_underscore_in_the_leftmost_label(lab, sni):
    assert _connect(lab, sni).startswith("TLSv1.")


@pytest.mark.parametrize("sni", [
    "a.b.api.propylon.test",     # a wildcard covers one label only
    "x.other.test",              # a name the certificate does not carry
    "my_svc.other.test",         # the hyphenated name is not on the certificate either
    "a_b.c.api.propylon.test",   # only the leftmost label changes; still two labels deep
    "api_x.propylon.test",       # -> api-x.propylon.test: not on the certificate
])
def test_names_the_certificate_does_not_cover_are_refused(lab, sni):
    with pytest.raises(Error) as e:
        _connect(lab, sni)
    assert e.value.etype == ErrorType.INVALID_CERT


def test_alternative_cn_still_applies_to_an_underscore_name(lab):
    # The hyphenated SNI is not on the certificate, the alternative name is.
    assert _connect(lab, "my_svc.other.test", alternative_cn="advanced.propylon.test")


def test_without_hostname_verification_any_name_passes(lab):
    assert _connect(lab, "x.other.test", verify_hostname=False)


@pytest.mark.parametrize("sni, name", [
    ("my_svc.api.example", "my-svc.api.example"),
    ("a_b_c.api.example", "a-b-c.api.example"),
    ("plain.api.example", "plain.api.example"),
    ("my_svc.example", "my_svc.example"),        # two labels: a wildcard could not cover it anyway
    ("svc.my_team.example", "svc.my_team.example"),  # only the leftmost label is considered
    ("", ""),
])
def test_name_to_verify(sni, name):
    assert name_to_verify(sni) == name
