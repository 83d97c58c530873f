"""RFC 5118 IPv6 torture messages, handled as RFC 5118 §4 says.

The bytes are in tests/vectors/rfc5118 (see its LICENSE-NOTE.md). Three files declare a Content-Length
smaller than the body that follows (their CRLF normalisation grew the body): on a datagram the body is
the first Content-Length octets and the rest is discarded (RFC 3261 §18.3), which is asserted; the SDP
checks use a copy with the length corrected.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sip_stack import ParseError, Request, parse, stateless_reply
from sip_stack.sdp import parse_sdp
from sip_stack.uri import SipURI

DIR = Path(__file__).parent / "vectors" / "rfc5118"


def raw(name: str) -> bytes:
    return (DIR / name).read_bytes()


def req(name: str, data: bytes | None = None) -> Request:
    msg = parse(raw(name) if data is None else data)
    assert isinstance(msg, Request)
    return msg


def sip_uri(value: object) -> SipURI:
    assert isinstance(value, SipURI)
    return value


def with_true_length(name: str) -> bytes:
    data = raw(name)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"content-length")]
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def test_ipv6_good() -> None:
    m = req("ipv6-good")
    uri = sip_uri(m.uri)
    assert (uri.host, uri.port, uri.user, uri.host_type) == ("[2001:db8::10]", None, None, "ipv6")
    assert (m.top_via.host, m.top_via.port, m.top_via.branch) == ("[2001:db8::9:1]", None, "z9hG4bKas3-111")
    (contact,) = m.contact
    assert contact.address is not None and contact.address.display_name == "Caller"
    assert sip_uri(contact.address.uri).host == "[2001:db8::1]"
    assert (m.cseq.seq, m.cseq.method) == (98176, "REGISTER")


def test_ipv6_bad_unbracketed_request_uri_is_a_400() -> None:
    with pytest.raises(ParseError) as info:
        parse(raw("ipv6-bad"))
    assert info.value.status == 400
    assert "IPv6 address without brackets" in info.value.reason
    assert stateless_reply(info.value) is not None


def test_port_ambiguous_is_an_address_without_port() -> None:
    uri = sip_uri(req("port-ambiguous").uri)
    assert uri.port is None
    assert ipaddress.IPv6Address(uri.host[1:-1]) == ipaddress.IPv6Address("2001:db8::10:5070")


def test_port_unambiguous() -> None:
    uri = sip_uri(req("port-unambiguous").uri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


@pytest.mark.parametrize("name", ["via-received-param-with-delim", "via-received-param-no-delim"])
def test_received_with_and_without_brackets(name: str) -> None:
    via = req(name).top_via
    assert via.host == "[2001:db8::9:1]"
    received = via.received
    assert received is not None
    assert ipaddress.IPv6Address(received.strip("[]")) == ipaddress.IPv6Address("2001:db8::9:255")


def test_mult_ip_in_header() -> None:
    vias = req("mult-ip-in-header").via
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert vias[2].received == "192.0.2.200"


@pytest.mark.parametrize(
    "name,declared,present",
    [("ipv6-in-sdp", 241, 251), ("mult-ip-in-sdp", 181, 189), ("ipv4-mapped-ipv6", 236, 245)],
)
def test_body_is_cut_at_content_length_on_a_datagram(name: str, declared: int, present: int) -> None:
    data = raw(name)
    assert len(data) - data.index(b"\r\n\r\n") - 4 == present
    m = req(name)
    assert len(m.body) == declared
    assert m.body == data[data.index(b"\r\n\r\n") + 4 :][:declared]


def test_ipv6_in_sdp() -> None:
    m = req("ipv6-in-sdp", with_true_length("ipv6-in-sdp"))
    assert sip_uri(m.uri).host == "[2001:db8::10]"
    sdp = parse_sdp(m.body)
    assert sdp.connection is not None
    assert (sdp.connection.addrtype, sdp.connection.address) == ("IP6", "2001:db8::20")
    assert sdp.origin.address == "2001:db8::20"
    assert [media.port for media in sdp.media] == [6000, 6024]


def test_mult_ip_in_sdp() -> None:
    sdp = parse_sdp(req("mult-ip-in-sdp", with_true_length("mult-ip-in-sdp")).body)
    assert sdp.connection is None
    addresses = [(c.addrtype, c.address) for md in sdp.media for c in md.connections]
    assert addresses == [("IP4", "192.0.2.1"), ("IP6", "2001:db8::1")]


def test_ipv4_mapped_ipv6() -> None:
    m = req("ipv4-mapped-ipv6", with_true_length("ipv4-mapped-ipv6"))
    assert [v.host for v in m.via] == ["[::ffff:192.0.2.10]", "[::ffff:192.0.2.2]"]
    assert m.top_via.port == 19823
    (contact,) = m.contact
    assert contact.address is not None and sip_uri(contact.address.uri).host == "[::ffff:192.0.2.2]"
    sdp = parse_sdp(m.body)
    assert sdp.connection is not None and sdp.connection.addrtype == "IP6"


def test_ipv6_correct_abnf_two_colons() -> None:
    uri = sip_uri(req("ipv6-correct-abnf-2-colons").uri)
    assert ipaddress.IPv6Address(uri.host[1:-1]) == ipaddress.IPv6Address("2001:db8::192.0.2.1")


def test_ipv6_bug_abnf_three_colons_is_tolerated() -> None:
    # RFC 5118 §4.10: "an implementation must tolerate both of the above constructs"; the extra colon
    # before an embedded IPv4 address is read as "::".
    m = req("ipv6-bug-abnf-3-colons")
    uri = sip_uri(m.uri)
    assert uri.host == "[2001:db8:::192.0.2.1]"  # kept as received, so it is forwarded unchanged
    assert uri == sip_uri(req("ipv6-correct-abnf-2-colons").uri)
    assert sip_uri(m.to.uri).host == "[2001:db8:::192.0.2.1]"
