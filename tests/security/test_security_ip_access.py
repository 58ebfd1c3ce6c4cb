"""IpAccessList: CIDR matching for both families, mapped addresses, precedence, errors."""

import ipaddress

import pytest

from propylon.security import IpAccessList


def test_empty_lists_allow_everything_parseable():
    acl = IpAccessList()
    assert acl.allows("127.0.0.1") and acl.allows("::1") and acl.allows("10.9.8.7")
    assert not acl.allows("not-an-ip")
    assert not acl.allows("")


def test_ipv4_cidr_allow_list():
    acl = IpAccessList(allow=["10.0.0.0/8", "192.168.1.7", "172.16.0.0/12"])
    assert acl.allows("10.255.0.1")
    assert acl.allows("192.168.1.7")
    assert not acl.allows("192.168.1.8")
    assert acl.allows("172.31.255.255")
    assert not acl.allows("172.32.0.0")
    assert not acl.allows("11.0.0.1")


def test_ipv6_cidr_and_single_address():
    acl = IpAccessList(allow=["fd00:1234::/32", "::1"])
    assert acl.allows("fd00:1234:ffff::9")
    assert not acl.allows("fd00:1235::1")
    assert acl.allows("::1")
    assert not acl.allows("::2")
    assert not acl.allows("10.0.0.1")  # IPv4 is not in an IPv6-only allow list


def test_deny_wins_over_allow():
    acl = IpAccessList(allow=["10.0.0.0/8"], deny=["10.6.6.0/24", "10.1.2.3"])
    assert acl.allows("10.6.7.1")
    assert not acl.allows("10.6.6.200")
    assert not acl.allows("10.1.2.3")
    assert acl.allows("10.1.2.4")


def test_deny_only_list_admits_the_rest():
    acl = IpAccessList(deny=["127.0.0.2", "fd00::/8"])
    assert acl.allows("127.0.0.1")
    assert not acl.allows("127.0.0.2")
    assert not acl.allows("fdff::1")
    assert acl.allows("::1")


def test_ipv4_mapped_addresses_are_checked_as_ipv4():
    acl = IpAccessList(allow=["10.0.0.0/8"], deny=["10.6.6.6"])
    assert acl.allows("::ffff:10.1.1.1")
    assert not acl.allows("::ffff:10.6.6.6")
    assert not acl.allows("::ffff:11.1.1.1")
    # A mapped entry means the IPv4 range it carries.
    mapped_entry = IpAccessList(allow=["::ffff:192.168.0.0/112"])
    assert mapped_entry.allows("192.168.3.4")
    assert mapped_entry.allows("::ffff:192.168.3.4")
    assert not mapped_entry.allows("192.169.0.1")


def test_host_bits_are_ignored_and_objects_accepted():
    acl = IpAccessList(allow=["10.1.2.3/8", ipaddress.ip_network("fd00::/16"), ipaddress.ip_address("127.0.0.5")])
    assert [str(n) for n in acl.allow] == ["10.0.0.0/8", "fd00::/16", "127.0.0.5/32"]
    assert acl.allows(ipaddress.ip_address("10.200.0.1"))
    assert acl.allows("127.0.0.5") and not acl.allows("127.0.0.6")


def test_overlapping_prefixes_of_many_lengths():
    allow = [f"10.{i}.0.0/16" for i in range(0, 256, 2)] + ["10.1.1.0/24", "10.3.3.3/32"]
    acl = IpAccessList(allow=allow, deny=["10.2.2.0/23"])
    assert acl.allows("10.4.9.9")
    assert not acl.allows("10.5.9.9")
    assert acl.allows("10.1.1.200") and not acl.allows("10.1.2.1")
    assert acl.allows("10.3.3.3") and not acl.allows("10.3.3.4")
    assert not acl.allows("10.2.3.1") and acl.allows("10.2.4.1")


def test_cached_answers_stay_correct():
    acl = IpAccessList(allow=["10.0.0.0/8"], cache_size=4)
    for _ in range(3):
        for i in range(20):
            assert acl.allows(f"10.0.0.{i}")
            assert not acl.allows(f"11.0.0.{i}")
    uncached = IpAccessList(allow=["10.0.0.0/8"], cache_size=0)
    assert uncached.allows("10.0.0.1") and not uncached.allows("12.0.0.1")


@pytest.mark.parametrize(
    "allow, deny, bad",
    [
        (["10.0.0.0/33"], [], "10.0.0.0/33"),
        (["10.0.0.0/8", "banana"], [], "banana"),
        ([], ["fd00::/129"], "fd00::/129"),
        ([], ["300.1.1.1"], "300.1.1.1"),
        ([42.5], [], "42.5"),
    ],
)
def test_bad_entry_is_named(allow, deny, bad):
    with pytest.raises(ValueError) as info:
        IpAccessList(allow=allow, deny=deny)
    message = str(info.value)
    assert bad in message
    assert ("allow" if allow and bad in map(str, allow) else "deny") in message
