"""Tests of sip_stack.uri: RFC 3261 §19.1 SIP URIs, RFC 3966 tel URIs, RFC 4475/5118 vectors."""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip_stack import uri as uri_module
from sip_stack.errors import LocalProtocolError, ParseError
from sip_stack.uri import (
    MAX_URI_LENGTH,
    AbsoluteURI,
    SipURI,
    TelURI,
    is_e164,
    parse_uri,
)

VECTORS = Path(__file__).parent / "vectors"


def sip(text: str) -> SipURI:
    parsed = parse_uri(text)
    assert isinstance(parsed, SipURI), text
    return parsed


def tel(text: str) -> TelURI:
    parsed = parse_uri(text)
    assert isinstance(parsed, TelURI), text
    return parsed


def reason_of(text: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status == 400
    return info.value.reason


# -- reading URIs out of the torture messages (binary files: some hold NUL, BEL, DEL) -------------


def _message(path: Path) -> tuple[str, dict[str, list[str]]]:
    """The Request-URI token and the unfolded header values (by lower-cased name) of a message."""
    data = path.read_bytes()
    head = data.split(b"\r\n\r\n", 1)[0]
    head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    request_uri = lines[0].split(" ")[1]
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return request_uri, headers


def _header_uri(value: str) -> str:
    """The URI of a name-addr (between < >) or of an addr-spec (up to the header parameters)."""
    if "<" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.partition(";")[0]


def rfc4475(name: str) -> tuple[str, dict[str, list[str]]]:
    return _message(VECTORS / "rfc4475" / f"{name}.dat")


def rfc5118(name: str) -> tuple[str, dict[str, list[str]]]:
    return _message(VECTORS / "rfc5118" / name)


# -- fields ---------------------------------------------------------------------------------------


def test_fields_of_a_full_sip_uri() -> None:
    u = sip("sips:alice:secret@Atlanta.example.com:5061;transport=TLS;lr;maddr=192.0.2.1?subject=x&a=")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips",
        "alice",
        "secret",
        "Atlanta.example.com",
        5061,
    )
    assert u.params == (("transport", "TLS"), ("lr", None), ("maddr", "192.0.2.1"))
    assert u.headers == (("subject", "x"), ("a", ""))
    assert u.transport == "tls"
    assert u.lr is True
    assert u.maddr == "192.0.2.1"
    assert u.host_type == "name"
    assert u.host_port == "Atlanta.example.com:5061"


def test_a_uri_without_user_port_params_or_headers() -> None:
    u = sip("sip:example.com")
    assert (u.user, u.password, u.port, u.params, u.headers) == (None, None, None, (), ())
    assert u.transport is None and u.user_param is None and u.maddr is None
    assert u.ttl is None and u.method is None and u.lr is False
    assert u.unescaped_user is None
    assert u.host_port == "example.com"


def test_scheme_has_no_case_but_the_text_is_kept() -> None:
    u = sip("SiPs:bob@example.com")
    assert u.scheme == "sips"
    assert str(u) == "SiPs:bob@example.com"


def test_an_empty_password_is_not_an_absent_one() -> None:
    u = sip("sip:alice:@example.com")
    assert u.password == ""
    assert u != sip("sip:alice@example.com")


@pytest.mark.parametrize(
    ("text", "transport"),
    [
        ("sip:a@example.com;transport=UDP", "udp"),  # SIPp's spelling
        ("sip:a@example.com;TRANSPORT=Tcp", "tcp"),
        ("sip:a@example.com;%74ransport=%54LS", "tls"),
        ("sip:a@example.com;transport=sctp", "sctp"),
    ],
)
def test_transport_has_no_case(text: str, transport: str) -> None:
    assert sip(text).transport == transport


def test_transport_udp_in_upper_case_equals_lower_case() -> None:
    # Matching the R-URI of a re-INVITE against the Contact we gave out must not fail on case.
    a = sip("sip:leg1@10.0.0.1:5060;transport=UDP")
    b = sip("sip:leg1@10.0.0.1:5060;transport=udp")
    assert a == b
    assert hash(a) == hash(b)
    assert {a: "call"}[b] == "call"


def test_named_parameters() -> None:
    u = sip("sip:+15550100@gw.example.com;user=Phone;ttl=16;method=REGISTER;maddr=239.255.255.1")
    assert u.user_param == "phone"
    assert u.ttl == 16
    assert u.method == "REGISTER"
    assert u.maddr == "239.255.255.1"
    assert u.param("USER") == "Phone"
    assert u.has_param("Method")
    assert not u.has_param("lr")


@pytest.mark.parametrize("value", ["256", "x", "1000", "-1"])
def test_a_ttl_that_is_not_0_to_255_reads_as_none(value: str) -> None:
    u = sip(f"sip:a@example.com;ttl={value}")
    assert u.ttl is None
    assert u.param("ttl") == value


def test_param_lookup_reads_escaped_names_and_returns_values_as_received() -> None:
    u = sip("sip:a@example.com;%6C%72;n%61me=v%61lue")
    assert u.lr
    assert u.param("name") == "v%61lue"
    assert u.has_param("NAME")


def test_the_first_of_two_parameters_with_one_name_counts() -> None:
    u = sip("sip:a@example.com;transport=tcp;transport=udp")
    assert u.transport == "tcp"
    assert u == sip("sip:a@example.com;transport=tcp")
    assert u != sip("sip:a@example.com;transport=udp")


@pytest.mark.parametrize(
    ("text", "host_type"),
    [
        ("sip:192.0.2.1", "ipv4"),
        ("sip:a@192.0.2.1:5060", "ipv4"),
        ("sip:[2001:db8::1]", "ipv6"),
        ("sip:[::ffff:192.0.2.2]:5070", "ipv6"),
        ("sip:example.com", "name"),
        ("sip:example.com.", "name"),
        ("sip:a-b.c1.example", "name"),
        ("sip:localhost", "name"),
        ("sip:x", "name"),
    ],
)
def test_host_types(text: str, host_type: str) -> None:
    assert sip(text).host_type == host_type


def test_unescaped_user() -> None:
    assert sip("sip:I%20have%20spaces@example.net").unescaped_user == "I have spaces"
    assert sip("sip:%E2%82%AC@example.net").unescaped_user == "€"
    # Not UTF-8: the octet survives as a lone surrogate rather than being dropped.
    assert sip("sip:%FF@example.net").unescaped_user == "\udcff"


# -- serialization --------------------------------------------------------------------------------


ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "SIP:ALICE@AtLanTa.CoM;Transport=udp",
    "sip:%61lice@atlanta.com;transport=TCP",
    "sips:bob:pa%24%24@[2001:db8::10]:05061;lr;maddr=[2001:db8::1]?to=sip:bob%40biloxi.com&x=",
    "sip:user;par=u%40example.net@example.com",
    "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10:5070]",
    "sip:0.0.0.0:0",
    "sip:255.255.255.255:65535",
    "sip:example.com.",
    "tel:+1-201-555-0123",
    "TEL:863-1234;phone-context=+1-914-555",
    "tel:7042;phone-context=example.com;ext=22;isub=%31x",
    "http://www.example.com/a?b=c#frag",
    "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "mailto:watson@example.com",
    "im:fred@example.com",
    "soap.beep://192.0.2.103:3002",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_a_parsed_uri_serializes_back_to_its_text(text: str) -> None:
    parsed = parse_uri(text)
    assert str(parsed) == text
    assert parsed == parse_uri(text)
    assert hash(parsed) == hash(parse_uri(text))


def test_a_built_uri_serializes_from_its_fields() -> None:
    u = SipURI(
        "sip",
        "alice",
        "pw",
        "[2001:db8::1]",
        5070,
        (("transport", "tcp"), ("lr", None)),
        (("Subject", "hi%20there"),),
    )
    assert str(u) == "sip:alice:pw@[2001:db8::1]:5070;transport=tcp;lr?Subject=hi%20there"
    assert u.host_type == "ipv6"
    assert sip(str(u)) == u


def test_a_parsed_uri_with_a_leading_zero_port_rebuilds_to_the_plain_number() -> None:
    u = sip("sip:a@example.com:05060")
    assert u.port == 5060
    assert str(u.replace(port=5060)) == "sip:a@example.com:5060"


def test_with_params_replaces_in_place_and_appends() -> None:
    u = sip("sip:a@example.com;Transport=UDP;lr;x=1")
    v = u.with_params(transport="tcp", maddr="192.0.2.9")
    assert str(v) == "sip:a@example.com;transport=tcp;lr;x=1;maddr=192.0.2.9"
    assert str(u) == "sip:a@example.com;Transport=UDP;lr;x=1"  # the original is untouched
    assert str(u.with_param("x-custom", None)) == "sip:a@example.com;Transport=UDP;lr;x=1;x-custom"
    assert str(u.with_params(lr=None)) == "sip:a@example.com;Transport=UDP;lr;x=1"
    assert str(sip("sip:a@h.example;x=1;X=2").with_param("x", "3")) == "sip:a@h.example;x=3"


def test_without_params_and_replace() -> None:
    u = sip("sip:bob@example.com;method=INVITE;transport=tcp?subject=x")
    r = u.without_params("METHOD").replace(headers=())
    assert str(r) == "sip:bob@example.com;transport=tcp"
    assert (
        str(u.replace(scheme="sips", user=None)) == "sips:example.com;method=INVITE;transport=tcp?subject=x"
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"scheme": "tel"}, "SIP URI scheme must be 'sip' or 'sips': 'tel'"),
        ({"scheme": "SIP"}, "SIP URI scheme must be 'sip' or 'sips': 'SIP'"),
        ({"user": ""}, "SIP URI user part is empty"),
        ({"user": "a@b"}, "SIP URI user part has an invalid character: '@'"),
        ({"user": "a:b"}, "SIP URI user part has an invalid character: ':'"),
        ({"user": None, "password": "x"}, "SIP URI has a password but no user"),
        ({"host": ""}, "SIP URI host is empty"),
        (
            {"host": "2001:db8::1"},
            "SIP URI host is an IPv6 address without brackets: '2001:db8::1'",
        ),
        ({"host": "example.com:5060"}, "SIP URI host is not a valid host name: 'example.com:5060'"),
        ({"port": 65536}, "SIP URI port is out of range: 65536"),
        ({"port": -1}, "SIP URI port is out of range: -1"),
        ({"params": (("", None),)}, "SIP URI parameter has no name"),
        ({"params": (("a", ""),)}, "SIP URI parameter 'a' has an empty value"),
        ({"params": (("a;b", None),)}, "SIP URI parameter name has an invalid character: ';'"),
        ({"params": (("a", "b=c"),)}, "SIP URI parameter 'a' has an invalid character: '='"),
        ({"headers": (("", "x"),)}, "SIP URI header has no name"),
        ({"headers": (("a", "b&c"),)}, "SIP URI header 'a' has an invalid character: '&'"),
    ],
)
def test_building_an_invalid_sip_uri_is_our_bug(changes: dict[str, object], reason: str) -> None:
    base = SipURI("sip", "alice", None, "example.com")
    with pytest.raises(LocalProtocolError) as info:
        base.replace(**changes)
    assert str(info.value) == reason


def test_hand_built_params_may_be_a_list() -> None:
    u = SipURI("sip", None, None, "example.com", None, [("lr", None)])  # type: ignore[arg-type]
    assert u.params == (("lr", None),)
    assert hash(u) == hash(sip("sip:example.com;lr"))


def test_uris_are_frozen() -> None:
    u = sip("sip:a@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.host = "evil.example.com"  # type: ignore[misc]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "URI is empty"),
        ("alice", "URI has no scheme: 'alice'"),
        (":alice", "URI scheme is empty"),
        ("<sip:user@example.com>", "URI scheme is not valid: '<sip'"),
        ("1sip:x", "URI scheme is not valid: '1sip'"),
        ("sip:", "SIP URI host is empty"),
        ("sip:alice@", "SIP URI host is empty"),
        ("sip:alice@:5060", "SIP URI host is empty"),
        ("sip:;lr", "SIP URI host is empty"),
        ("sip:@example.com", "SIP URI user part is empty"),
        ("sip::pw@example.com", "SIP URI user part is empty"),
        ("sip:a b@example.com", "SIP URI user part has an invalid character: ' '"),
        ("sip:\u00e9@example.com", "SIP URI user part has an invalid character: '\\xe9'"),
        ("sip:a%2@example.com", "SIP URI user part has a '%' not followed by two hex digits"),
        ("sip:a%zz@example.com", "SIP URI user part has a '%' not followed by two hex digits"),
        ("sip:a%@example.com", "SIP URI user part has a '%' not followed by two hex digits"),
        ("sip:a:p w@example.com", "SIP URI password has an invalid character: ' '"),
        ("sip:a:p;w@example.com", "SIP URI password has an invalid character: ';'"),
        ("sip:a@example.com:5o60", "SIP URI port is not a number: '5o60'"),
        ("sip:a@example.com:", "SIP URI port is empty"),
        ("sip:a@example.com:65536", "SIP URI port is out of range: '65536'"),
        ("sip:a@example.com:+5060", "SIP URI port is not a number: '+5060'"),
        ("sip:a@example.com:50_60", "SIP URI port is not a number: '50_60'"),
        ("sip:a@example.com:\u0665\u0660", "SIP URI port is not a number: '\\u0665\\u0660'"),
        (
            "sip:a@example.com:1" + "0" * 5000,
            "SIP URI port is out of range: '1" + "0" * 63 + "'...",
        ),
        ("sip:a@ex ample.com", "SIP URI host is not a valid host name: 'ex ample.com'"),
        ("sip:a@ex_ample.com", "SIP URI host is not a valid host name: 'ex_ample.com'"),
        ("sip:a@-example.com", "SIP URI host is not a valid host name: '-example.com'"),
        ("sip:a@example-.com", "SIP URI host is not a valid host name: 'example-.com'"),
        ("sip:a@example..com", "SIP URI host is not a valid host name: 'example..com'"),
        ("sip:a@example.1com", "SIP URI host is not a valid host name: 'example.1com'"),
        ("sip:a@.", "SIP URI host is not a valid host name: '.'"),
        ("sip:a@ex%61mple.com", "SIP URI host is not a valid host name: 'ex%61mple.com'"),
        ("sip:a@192.0.2.256", "SIP URI host is not a valid IPv4 address: '192.0.2.256'"),
        ("sip:a@192.0.2", "SIP URI host is not a valid IPv4 address: '192.0.2'"),
        ("sip:a@192.0.2.1.", "SIP URI host is not a valid IPv4 address: '192.0.2.1.'"),
        ("sip:a@1234.0.2.1", "SIP URI host is not a valid IPv4 address: '1234.0.2.1'"),
        ("sip:a@2001:db8::10", "SIP URI host is an IPv6 address without brackets: '2001:db8::10'"),
        ("sip:[2001:db8::10", "SIP URI IPv6 reference has no closing ']'"),
        ("sip:[2001:db8::10]x", "SIP URI has text after the IPv6 reference: 'x'"),
        ("sip:[2001:db8::10]:", "SIP URI port is empty"),
        ("sip:[]", "SIP URI host is not a valid IPv6 reference: '[]'"),
        ("sip:[example.com]", "SIP URI host is not a valid IPv6 reference: '[example.com]'"),
        ("sip:[fe80::1%25eth0]", "SIP URI host is not a valid IPv6 reference: '[fe80::1%25eth0]'"),
        (
            "sip:[1:2:3:4:5:6:7:8:9]",
            "SIP URI host is not a valid IPv6 reference: '[1:2:3:4:5:6:7:8:9]'",
        ),
        ("sip:a@example.com;", "SIP URI has an empty parameter"),
        ("sip:a@example.com;;lr", "SIP URI has an empty parameter"),
        ("sip:a@example.com;=x", "SIP URI parameter has no name"),
        ("sip:a@example.com;transport=", "SIP URI parameter 'transport' has an empty value"),
        ("sip:a@example.com;a=b=c", "SIP URI parameter 'a' has more than one '='"),
        ("sip:a@example.com; lr", "SIP URI parameter list has an invalid character: ' '"),
        ('sip:a@example.com;x="q"', "SIP URI parameter list has an invalid character: '\"'"),
        ("sip:a@example.com;x=%g0", "SIP URI parameter list has a '%' not followed by two hex digits"),
        ("sip:a@example.com?", "SIP URI has an empty header"),
        ("sip:a@example.com?a=1&&b=2", "SIP URI has an empty header"),
        ("sip:a@example.com?=1", "SIP URI header has no name"),
        ("sip:a@example.com?subject", "SIP URI header 'subject' has no '='"),
        ("sip:a@example.com?a=b=c", "SIP URI header 'a' has more than one '='"),
        ("sip:a@example.com?a=<x>", "SIP URI header list has an invalid character: '<'"),
        (
            "sip:a@example.com\r\nVia",
            "SIP URI host is not a valid host name: 'example.com\\r\\nVia'",
        ),
        ("sip:a@example.com\r\nVia: x", "SIP URI port is not a number: ' x'"),
        ("http:", "URI has nothing after the scheme: 'http:'"),
        ("http://exa mple.com", "URI has an invalid character: ' '"),
        ("urn:%zz", "URI has a '%' not followed by two hex digits"),
    ],
)
def test_malformed_uris_raise_a_400_naming_the_fault(text: str, reason: str) -> None:
    assert reason_of(text) == reason


def test_a_reason_phrase_never_carries_a_line_break() -> None:
    reason = reason_of("sip:a@h.example:1\r\n2")
    assert "\r" not in reason and "\n" not in reason


def test_a_uri_longer_than_the_limit_is_refused_before_parsing() -> None:
    assert MAX_URI_LENGTH == 8192
    ok = "sip:" + "a" * (MAX_URI_LENGTH - len("sip:@example.com")) + "@example.com"
    assert len(ok) == MAX_URI_LENGTH
    assert str(parse_uri(ok)) == ok
    assert reason_of(ok + "x") == "URI is longer than 8192 characters"


def test_hostile_64k_uris_parse_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lift the length limit to show the parser itself, not just the limit, copes with big input.
    monkeypatch.setattr(uri_module, "MAX_URI_LENGTH", 1 << 20)
    long_user = "sip:" + "a" * 65536 + "@example.com"
    assert sip(long_user).user == "a" * 65536
    many_params = "sip:a@example.com" + "".join(f";p{i}" for i in range(10_000))
    u = sip(many_params)
    assert len(u.params) == 10_000
    assert u == u and hash(u) == hash(sip(many_params))
    assert not u.lr and u.param("p9999") is None and u.has_param("p9999")
    escapes = "sip:" + "%41" * 20_000 + "@example.com"
    assert sip(escapes).unescaped_user == "A" * 20_000
    assert sip(escapes) == sip("sip:" + "A" * 20_000 + "@example.com")
    labels = "sip:" + "a." * 30_000 + "com"
    assert sip(labels).host_type == "name"
    # Near misses: the fault is at the very end, so every check has to scan all of the input.
    assert "invalid character" in reason_of("sip:" + "a" * 65536 + " @example.com")
    assert reason_of("sip:a@example.com" + ";p" * 10_000 + ";") == "SIP URI has an empty parameter"
    assert "not a valid host name" in reason_of("sip:" + "a-" * 30_000 + ".com-")
    assert "not followed by two hex digits" in reason_of("sip:" + "%4" * 30_000 + "@h.example")
    assert "without brackets" in reason_of("sip:" + ":" * 65536)
    assert "no scheme" in reason_of("s" * 65536)
    assert reason_of("tel:+" + "1" * 65536 + ";ext=") == "tel URI parameter 'ext' has an empty value"


# -- RFC 3261 §19.1.4 comparison ------------------------------------------------------------------

EQUIVALENT_SETS = [
    ["sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"],
    [
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;newparam=5",
        "sip:carol@chicago.com;security=on",
    ],
    [
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ],
    [
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ],
]

NOT_EQUIVALENT_PAIRS = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize("uris", EQUIVALENT_SETS)
def test_rfc3261_19_1_4_equivalent_sets(uris: list[str]) -> None:
    parsed = [sip(text) for text in uris]
    for a in parsed:
        for b in parsed:
            assert a == b, (str(a), str(b))
            assert hash(a) == hash(b)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT_PAIRS)
def test_rfc3261_19_1_4_not_equivalent_pairs(a: str, b: str) -> None:
    assert sip(a) != sip(b)
    assert sip(b) != sip(a)


def test_rfc3261_19_1_4_equality_is_not_transitive() -> None:
    plain = sip("sip:carol@chicago.com")
    on = sip("sip:carol@chicago.com;security=on")
    off = sip("sip:carol@chicago.com;security=off")
    assert plain == on and plain == off
    assert on != off
    assert hash(plain) == hash(on) == hash(off)


def test_sip_and_sips_are_never_equivalent() -> None:
    assert sip("sip:bob@example.com") != sip("sips:bob@example.com")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # "A URI omitting the user component will not match a URI that includes one", ditto the
        # password.
        ("sip:example.com", "sip:alice@example.com"),
        ("sip:alice@example.com", "sip:alice:secret@example.com"),
        # Userinfo is case-sensitive, password included.
        ("sip:alice:secret@example.com", "sip:alice:SECRET@example.com"),
        # user, ttl, method in only one URI never match "even if it contains the default value".
        ("sip:alice@example.com", "sip:alice@example.com;user=ip"),
        ("sip:alice@example.com", "sip:alice@example.com;ttl=1"),
        ("sip:alice@example.com", "sip:alice@example.com;method=INVITE"),
        ("sip:alice@example.com", "sip:alice@example.com;maddr=192.0.2.1"),
        ("sip:alice@example.com", "sip:alice@example.com;%6Daddr=192.0.2.1"),
        ("sip:alice@example.com;user=phone", "sip:alice@example.com;user=ip"),
        ("sip:alice@example.com;ttl=1", "sip:alice@example.com;ttl=2"),
        # A flag and a valued parameter of one name differ when both carry it.
        ("sip:alice@example.com;lr", "sip:alice@example.com;lr=on"),
        ("sip:alice@example.com;user", "sip:alice@example.com"),
        # Escapes of reserved characters are not those characters.
        ("sip:a%3Bb@example.com", "sip:a;b@example.com"),
        ("sip:a%3Ab@example.com", "sip:a:b@example.com"),
        ("sip:a%2541@example.com", "sip:a%41@example.com"),
        # Headers: every one must be in both; values keep their case; same-name order counts.
        ("sip:a@example.com?Call-ID=abc", "sip:a@example.com?Call-ID=ABC"),
        ("sip:a@example.com?Route=x", "sip:a@example.com?Route=x&Route=x"),
        ("sip:a@example.com?Route=x&Route=y", "sip:a@example.com?Route=y&Route=x"),
        ("sip:a@example.com?a=", "sip:a@example.com"),
        # Octets above 0x7F stay distinct under case folding (chr(0xC3).lower() == chr(0xE3)).
        ("sip:a@example.com;x=%C3", "sip:a@example.com;x=%E3"),
        ("sip:a@example.com", "sip:a@example.com."),
        ("sip:a@192.0.2.1", "sip:a@[::ffff:192.0.2.1]"),
    ],
)
def test_more_non_equivalent_uris(a: str, b: str) -> None:
    assert sip(a) != sip(b)
    assert sip(b) != sip(a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:alice:%73ecret@example.com", "sip:alice:secret@example.com"),
        ("sip:a%2Fb@example.com", "sip:a%2fb@example.com"),
        ("sip:a@example.com;%74ransport=tcp", "sip:a@example.com;transport=TCP"),
        ("sip:a@example.com;maddr=Host.Example", "sip:a@example.com;maddr=host.example"),
        ("sip:a@example.com;method=register", "sip:a@example.com;method=REGISTER"),
        ("sip:a@example.com;lr", "sip:a@example.com;LR"),
        ("sip:a@example.com?Subject=lunch", "sip:a@example.com?subject=lunch"),
        ("sip:a@example.com?%73ubject=lunch", "sip:a@example.com?subject=lunch"),
        ("sip:a@example.com?subject=a%2fb", "sip:a@example.com?subject=a%2Fb"),
        ("sip:a@example.com?a=1&b=2&a=3", "sip:a@example.com?b=2&a=1&a=3"),
        ("sip:a@example.com:05060", "sip:a@example.com:5060"),
        ("sip:a@192.000.002.001", "sip:a@192.0.2.1"),
        # RFC 5954 §4.2's own examples: address literals compare by value.
        ("sip:bob@[::ffff:192.0.2.128]", "sip:bob@[::ffff:c000:280]"),
        ("sip:bob@[2001:db8::9:1]", "sip:bob@[2001:db8::9:01]"),
        ("sip:bob@[0:0:0:0:0:FFFF:129.144.52.38]", "sip:bob@[::FFFF:129.144.52.38]"),
    ],
)
def test_more_equivalent_uris(a: str, b: str) -> None:
    assert sip(a) == sip(b)
    assert hash(sip(a)) == hash(sip(b))


def test_a_uri_never_equals_another_kind_of_value() -> None:
    assert sip("sip:a@example.com") != "sip:a@example.com"
    assert sip("sip:+15550100@example.com") != tel("tel:+15550100")
    assert parse_uri("im:a@example.com") != sip("sip:a@example.com")


# -- RFC 4475 torture messages --------------------------------------------------------------------


def test_rfc4475_esc01_escapes_in_user_and_parameters() -> None:
    request_uri, headers = rfc4475("esc01")
    assert request_uri == "sip:sips%3Auser%40example.com@example.net"
    r = sip(request_uri)
    # §3.1.1.3: the user part is "sips:user@example.com"; this is not a SIPS URI.
    assert (r.scheme, r.user, r.host) == ("sip", "sips%3Auser%40example.com", "example.net")
    assert r.unescaped_user == "sips:user@example.com"
    assert str(r) == request_uri

    to = sip(_header_uri(headers["to"][0]))
    assert str(to) == "sip:%75se%72@example.com"
    assert to == sip("sip:user@example.com")
    assert to.unescaped_user == "user"

    sender = sip(_header_uri(headers["from"][0]))
    assert sender.unescaped_user == "I have spaces"

    contact = sip(_header_uri(headers["contact"][0]))
    assert str(contact) == "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    assert contact.unescaped_user == "caller"
    assert contact.lr
    assert contact.param("name") == "v%61lue%25%34%31"
    assert contact == sip("sip:caller@host5.example.net;lr;name=value%2541")


def test_rfc4475_escnull_escaped_nul_in_user() -> None:
    _, headers = rfc4475("escnull")
    to = sip(_header_uri(headers["to"][0]))
    sender = sip(_header_uri(headers["from"][0]))
    assert to.user == "null-%00-null"
    assert to.unescaped_user == "null-\x00-null"
    assert to == sender
    one, two = (sip(_header_uri(value)) for value in headers["contact"])
    assert (one.unescaped_user, two.unescaped_user) == ("\x00", "\x00\x00")
    assert one != two
    assert str(two) == "sip:%00%00@host5.example.com"


def test_rfc4475_esc02_percent_outside_uris_does_not_touch_them() -> None:
    request_uri, headers = rfc4475("esc02")
    assert sip(request_uri).host == "registrar.example.com"
    hosts = [sip(_header_uri(value)).host for value in headers["contact"] + headers["c%6fntact"]]
    assert sorted(hosts) == ["host1.example.com", "host2.example.com", "host3.example.com"]


def test_rfc4475_semiuri_semicolons_in_the_user_part() -> None:
    request_uri, _ = rfc4475("semiuri")
    u = sip(request_uri)
    assert u.user == "user;par=u%40example.net"
    assert u.unescaped_user == "user;par=u@example.net"
    assert u.host == "example.com"
    assert u.params == ()
    assert str(u) == request_uri


def test_rfc4475_intmeth_every_legal_userinfo_character() -> None:
    request_uri, headers = rfc4475("intmeth")
    u = sip(request_uri)
    assert u.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert u.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert u.host == "example.com"
    assert str(u) == request_uri
    to = sip(_header_uri(headers["to"][0]))
    assert to.user == u.user and to.password is None


def test_rfc4475_transports_uris() -> None:
    request_uri, headers = rfc4475("transports")
    assert sip(request_uri) == sip(_header_uri(headers["to"][0]))
    assert sip(_header_uri(headers["from"][0])).user == "caller"


def test_rfc4475_novelsc_known_but_atypical_scheme_parses() -> None:
    request_uri, _ = rfc4475("novelsc")
    u = parse_uri(request_uri)
    assert isinstance(u, AbsoluteURI)
    assert (u.scheme, u.raw) == ("soap.beep", "soap.beep://192.0.2.103:3002")


def test_rfc4475_unkscm_unknown_request_uri_scheme_parses() -> None:
    # §3.3.2 wants a 416, which is the application's answer: the parser must hand the URI over.
    request_uri, _ = rfc4475("unkscm")
    u = parse_uri(request_uri)
    assert isinstance(u, AbsoluteURI)
    assert u.scheme == "nobodyknowsthisscheme"
    assert str(u) == "nobodyKnowsThisScheme:totallyopaquecontent"


def test_rfc4475_unksm2_unknown_schemes_in_header_fields() -> None:
    _, headers = rfc4475("unksm2")
    uris = [parse_uri(_header_uri(headers[name][0])) for name in ("to", "from", "contact")]
    assert all(isinstance(u, AbsoluteURI) for u in uris)
    assert [str(u) for u in uris] == [
        "isbn:2983792873",
        "http://www.example.com",
        "name:John_Smith",
    ]
    assert [u.scheme for u in uris if isinstance(u, AbsoluteURI)] == ["isbn", "http", "name"]


def test_rfc4475_longreq_long_values() -> None:
    request_uri, headers = rfc4475("longreq")
    assert sip(request_uri).user == "user"
    to = sip(_header_uri(headers["to"][0]))
    assert to.port == 6000
    assert to.has_param("unknownparam1")
    assert len(to.params) == 3
    assert to.param("unknownparam1") == "very" + "long" * 20 + "value"
    sender = sip(_header_uri(headers["f"][0]))
    assert sender.user == "amazinglylongcallername" * 5
    contact = sip(_header_uri(headers["contact"][0]))
    assert contact.host == "host5.example.net"
    for text in (request_uri, _header_uri(headers["to"][0]), _header_uri(headers["contact"][0])):
        assert str(parse_uri(text)) == text


def test_rfc4475_cparam01_and_cparam02_url_parameter_placement() -> None:
    _, headers = rfc4475("cparam02")
    contact = sip(_header_uri(headers["contact"][0]))
    assert contact.params == (("unknownparam", None),)
    assert contact.user == "+19725552222"
    # cparam01 has no <>: there the parameter belongs to the header field, not the URI.
    _, headers = rfc4475("cparam01")
    assert sip(_header_uri(headers["contact"][0])).params == ()


def test_rfc4475_regescrt_escaped_header_in_a_contact_uri() -> None:
    _, headers = rfc4475("regescrt")
    contact = sip(_header_uri(headers["m"][0]))
    assert contact.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(contact) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_rfc4475_escruri_headers_parse_as_a_uri() -> None:
    # §3.1.2.11: headers are not allowed in a Request-URI (RFC 3261 §19.1.1 Table 1). That is the
    # request-line parser's check; as a URI the text is valid and its header is readable.
    request_uri, _ = rfc4475("escruri")
    u = sip(request_uri)
    assert u.headers == (("Route", "%3Csip:example.com%3E"),)
    assert str(u.replace(headers=())) == "sip:user@example.com"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ltgtruri", "URI scheme is not valid: '<sip'"),  # §3.1.2.7: <> around the Request-URI
        ("lwsruri", "SIP URI has an empty parameter"),  # §3.1.2.8: "sip:user@example.com; lr"
    ],
)
def test_rfc4475_invalid_request_uris(name: str, reason: str) -> None:
    request_uri, _ = rfc4475(name)
    assert reason_of(request_uri) == reason


def test_rfc4475_inv2543_user_phone_and_maddr() -> None:
    _, headers = rfc4475("inv2543")
    sender = sip(_header_uri(headers["from"][0]))
    assert sender.user_param == "phone"
    route = sip(_header_uri(headers["record-route"][0]))
    assert route.maddr == "ss1.example.com"


# -- RFC 5118 IPv6 torture messages ---------------------------------------------------------------


def test_rfc5118_4_1_ipv6_good() -> None:
    request_uri, headers = rfc5118("ipv6-good")
    u = sip(request_uri)
    assert (u.host, u.port, u.host_type) == ("[2001:db8::10]", None, "ipv6")
    contact = sip(_header_uri(headers["contact"][0]))
    assert (contact.user, contact.host) == ("caller", "[2001:db8::1]")


def test_rfc5118_4_2_ipv6_without_brackets_is_refused() -> None:
    request_uri, _ = rfc5118("ipv6-bad")
    assert request_uri == "sip:2001:db8::10"
    assert reason_of(request_uri) == ("SIP URI host is an IPv6 address without brackets: '2001:db8::10'")


def test_rfc5118_4_3_port_ambiguous_is_an_address_without_port() -> None:
    request_uri, _ = rfc5118("port-ambiguous")
    u = sip(request_uri)
    assert (u.host, u.port) == ("[2001:db8::10:5070]", None)
    assert u.host_port == "[2001:db8::10:5070]"


def test_rfc5118_4_4_port_unambiguous() -> None:
    request_uri, _ = rfc5118("port-unambiguous")
    u = sip(request_uri)
    assert (u.host, u.port) == ("[2001:db8::10]", 5070)
    assert u.host_port == "[2001:db8::10]:5070"
    assert u != sip("sip:[2001:db8::10:5070]")


@pytest.mark.parametrize(
    "name",
    [
        "via-received-param-with-delim",
        "via-received-param-no-delim",
        "ipv6-in-sdp",
        "mult-ip-in-header",
        "mult-ip-in-sdp",
        "ipv4-mapped-ipv6",
        "ipv6-correct-abnf-2-colons",
    ],
)
def test_rfc5118_valid_messages_uris_parse(name: str) -> None:
    request_uri, headers = rfc5118(name)
    texts = [request_uri] + [
        _header_uri(value)
        for field_name in ("to", "from", "contact")
        for value in headers.get(field_name, [])
    ]
    for text in texts:
        assert str(sip(text)) == text


def test_rfc5118_4_9_ipv4_mapped_ipv6() -> None:
    _, headers = rfc5118("ipv4-mapped-ipv6")
    contact = sip(_header_uri(headers["contact"][0]))
    assert (contact.host, contact.host_type) == ("[::ffff:192.0.2.2]", "ipv6")
    assert contact == sip("sip:ted@[::ffff:c000:202]")


def test_rfc5118_4_10_both_abnf_forms_are_tolerated_and_name_one_address() -> None:
    # "Following the Robustness Principle [RFC1122], an implementation must tolerate both of the
    # above constructs." The three-colon text is kept, so the URI is forwarded as received.
    buggy_uri, buggy_headers = rfc5118("ipv6-bug-abnf-3-colons")
    correct_uri, _ = rfc5118("ipv6-correct-abnf-2-colons")
    buggy = sip(buggy_uri)
    assert (buggy.host, buggy.host_type) == ("[2001:db8:::192.0.2.1]", "ipv6")
    assert str(buggy) == buggy_uri
    assert buggy == sip(correct_uri)
    assert hash(buggy) == hash(sip(correct_uri))
    assert buggy == sip("sip:user@[2001:db8::c000:201]")
    assert sip(_header_uri(buggy_headers["to"][0])).host == "[2001:db8:::192.0.2.1]"


@pytest.mark.parametrize(
    "host",
    [
        "[2001:db8:::10]",  # no embedded IPv4 address after the ":::"
        "[1::2:::192.0.2.1]",  # would make two "::"
        "[::::192.0.2.1]",
        "[2001:db8:::192.0.2.1:1]",  # the IPv4 address does not end the reference
        "[2001:db8:::192.0.2]",
        "[2001:db8::::192.0.2.1]",
    ],
)
def test_the_rfc5118_4_10_tolerance_is_that_one_form_only(host: str) -> None:
    assert reason_of(f"sip:{host}") == f"SIP URI host is not a valid IPv6 reference: '{host}'"


# -- tel URIs (RFC 3966) --------------------------------------------------------------------------


def test_rfc3966_examples() -> None:
    # §6's three examples.
    g = tel("tel:+1-201-555-0123")
    assert (g.number, g.is_global, g.params, g.digits) == (
        "+1-201-555-0123",
        True,
        (),
        "+12015550123",
    )
    assert is_e164(g.digits)
    local = tel("tel:7042;phone-context=example.com")
    assert (local.number, local.is_global, local.phone_context) == ("7042", False, "example.com")
    prefix = tel("tel:863-1234;phone-context=+1-914-555")
    assert (prefix.digits, prefix.phone_context) == ("8631234", "+1-914-555")


def test_tel_parameters() -> None:
    t = tel("tel:+1-212-555-0101;ext=1234;isub=%41bc;npdi;rn=+1-212-555-0000")
    assert t.ext == "1234"
    assert t.isub == "%41bc"
    assert t.has_param("NPDI") and t.param("npdi") is None
    assert t.param("RN") == "+1-212-555-0000"
    assert t.phone_context is None
    assert str(t) == "tel:+1-212-555-0101;ext=1234;isub=%41bc;npdi;rn=+1-212-555-0000"


def test_tel_local_numbers_may_hold_hex_star_and_hash() -> None:
    t = tel("tel:*67#A1;phone-context=example.com")
    assert t.digits == "*67#A1"
    assert not t.is_global


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
        ("tel:+1-201-555-0123", "tel:+1(201)5550123"),
        ("tel:+1-201-555-0123", "TEL:+12015550123"),
        ("tel:7042;phone-context=example.com", "tel:70-42;PHONE-CONTEXT=Example.COM"),
        ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555"),
        ("tel:+1234;ext=5;isub=6", "tel:+1234;isub=6;ext=5"),
        ("tel:+1234;ext=5-6", "tel:+1234;ext=56"),
        ("tel:+1234;foo=Bar", "tel:+1234;FOO=bar"),
        ("tel:+1234;foo=%62ar", "tel:+1234;foo=bar"),
        ("tel:abc;phone-context=example.com", "tel:ABC;phone-context=example.com"),
    ],
)
def test_rfc3966_4_equivalent(a: str, b: str) -> None:
    assert tel(a) == tel(b)
    assert hash(tel(a)) == hash(tel(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+1234", "tel:+1235"),
        # "Both must be either a 'local-number' or a 'global-number'".
        ("tel:1234;phone-context=+1", "tel:+11234"),
        ("tel:1234;phone-context=example.com", "tel:1234;phone-context=example.net"),
        # "If one URI has a parameter name not found in the other, the two URIs are not equal."
        ("tel:+1234", "tel:+1234;ext=5"),
        ("tel:+1234;npdi", "tel:+1234"),
        ("tel:+1234;ext=5", "tel:+1234;ext=6"),
    ],
)
def test_rfc3966_4_not_equivalent(a: str, b: str) -> None:
    assert tel(a) != tel(b)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tel:", "tel URI number is empty"),
        ("tel:+", "tel URI global number has no digits: '+'"),
        ("tel:+--", "tel URI global number has no digits: '+--'"),
        ("tel:+1 212", "tel URI global number has an invalid character: ' '"),
        ("tel:+1A", "tel URI global number has an invalid character: 'A'"),
        (
            "tel:12g4;phone-context=example.com",
            "tel URI local number has an invalid character: 'g'",
        ),
        ("tel:--;phone-context=example.com", "tel URI local number has no digits: '--'"),
        ("tel:7042", "tel URI local number has no phone-context"),
        ("tel:7042;phone-context", "tel URI parameter 'phone-context' has no value"),
        ("tel:7042;phone-context=", "tel URI parameter 'phone-context' has an empty value"),
        ("tel:7042;phone-context=+", "tel URI phone-context is not a global number: '+'"),
        (
            "tel:7042;phone-context=exa_mple.com",
            "tel URI phone-context is not a domain name: 'exa_mple.com'",
        ),
        ("tel:+1;ext=1;EXT=2", "tel URI parameter 'EXT' appears more than once"),
        ("tel:+1;ext=x1", "tel URI extension is not a number: 'x1'"),
        ("tel:+1;ext", "tel URI parameter 'ext' has no value"),
        ("tel:+1;isub=a b", "tel URI isub has an invalid character: ' '"),
        ("tel:+1;;ext=1", "tel URI has an empty parameter"),
        ("tel:+1;", "tel URI has an empty parameter"),
        ("tel:+1;a_b=1", "tel URI parameter name is not valid: 'a_b'"),
        ("tel:+1;=1", "tel URI parameter name is not valid: ''"),
        ("tel:+1;x=a=b", "tel URI parameter 'x' has an invalid character: '='"),
        ("tel:+1;x=%zz", "tel URI parameter 'x' has a '%' not followed by two hex digits"),
    ],
)
def test_malformed_tel_uris(text: str, reason: str) -> None:
    assert reason_of(text) == reason


def test_building_tel_uris() -> None:
    t = TelURI("+1-555-0100", True, (("ext", "7"),))
    assert str(t) == "tel:+1-555-0100;ext=7"
    assert t == tel("tel:+15550100;ext=7")
    assert str(t.replace(params=())) == "tel:+1-555-0100"
    with pytest.raises(LocalProtocolError, match="is_global does not match"):
        TelURI("+15550100", False)
    with pytest.raises(LocalProtocolError, match="has no phone-context"):
        TelURI("5550100", False)


# -- other schemes --------------------------------------------------------------------------------


def test_absolute_uris_keep_their_text_and_compare_scheme_without_case() -> None:
    u = parse_uri("HTTP://www.example.com/Path")
    assert isinstance(u, AbsoluteURI)
    assert u.scheme == "http"
    assert str(u) == "HTTP://www.example.com/Path"
    assert u == parse_uri("http://www.example.com/Path")
    assert hash(u) == hash(parse_uri("http://www.example.com/Path"))
    assert u != parse_uri("http://www.example.com/path")


def test_building_absolute_uris() -> None:
    assert str(AbsoluteURI("im", "im:fred@example.com")) == "im:fred@example.com"
    with pytest.raises(LocalProtocolError, match="does not match the text"):
        AbsoluteURI("mailto", "im:fred@example.com")
    with pytest.raises(LocalProtocolError, match="is a SipURI or a TelURI"):
        AbsoluteURI("sip", "sip:fred@example.com")
    with pytest.raises(LocalProtocolError, match="invalid character"):
        AbsoluteURI("im", "im:fred example")


# -- is_e164 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+15550100", True),
        ("+1", True),
        ("+123456789012345", True),
        ("+1234567890123456", False),  # 16 digits: E.164 allows at most 15
        ("+", False),
        ("", False),
        ("15550100", False),
        ("+1-555-0100", False),
        ("+1 5550100", False),
        ("++15550100", False),
        ("+\u0661\u0662\u0663", False),  # Arabic-Indic digits are digits to str.isdigit()
        ("+\u00b2", False),
    ],
)
def test_is_e164(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


# -- properties -----------------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-_.!~*'()"
_escape = st.integers(0, 255).flatmap(lambda octet: st.sampled_from([f"%{octet:02X}", f"%{octet:02x}"]))


def _chars(extra: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_UNRESERVED + extra), _escape)


def _joined(chars: st.SearchStrategy[str], min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.lists(chars, min_size=min_size, max_size=max_size).map("".join)


_label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)
_toplabel = st.from_regex(r"[A-Za-z]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?", fullmatch=True)
_hostname = st.builds(
    lambda labels, top, dot: ".".join([*labels, top]) + ("." if dot else ""),
    st.lists(_label, max_size=3),
    _toplabel,
    st.booleans(),
)
_host = st.one_of(
    _hostname,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).flatmap(lambda a: st.sampled_from([f"[{a}]", f"[{a.exploded.upper()}]"])),
)
_params = st.lists(
    st.tuples(_joined(_chars("[]/:&+$"), 1, 6), st.none() | _joined(_chars("[]/:&+$"), 1, 6)),
    max_size=4,
)
_headers = st.lists(
    st.tuples(_joined(_chars("[]/?:+$"), 1, 6), _joined(_chars("[]/?:+$"), 0, 6)),
    max_size=3,
)


@st.composite
def sip_uri_texts(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """Valid SIP URI text, written out by hand (not by the module under test), and its fields."""
    scheme = draw(st.sampled_from(["sip", "sips", "SIP", "Sips"]))
    user = draw(st.none() | _joined(_chars("&=+$,;?/"), 1, 10))
    password = None if user is None else draw(st.none() | _joined(_chars("&=+$,"), 0, 6))
    host = draw(_host)
    port = draw(st.none() | st.integers(0, 65535))
    params = tuple(draw(_params))
    headers = tuple(draw(_headers))
    text = scheme + ":"
    if user is not None:
        text += user + ("" if password is None else ":" + password) + "@"
    text += host + ("" if port is None else f":{port}")
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    if headers:
        text += "?" + "&".join(f"{n}={v}" for n, v in headers)
    fields: dict[str, object] = {
        "scheme": scheme.lower(),
        "user": user,
        "password": password,
        "host": host,
        "port": port,
        "params": params,
        "headers": headers,
    }
    return text, fields


def scheme_of(fields: dict[str, object]) -> str:
    scheme = fields["scheme"]
    assert isinstance(scheme, str)
    return scheme


@given(sip_uri_texts())
def test_property_valid_sip_uris_parse_to_their_fields_and_round_trip(
    case: tuple[str, dict[str, object]],
) -> None:
    text, fields = case
    u = sip(text)
    assert {name: getattr(u, name) for name in fields} == fields
    assert str(u) == text
    again = sip(text)
    assert u == u and u == again and hash(u) == hash(again)
    # The same fields built by hand give the same URI and, scheme case aside, the same text.
    built = SipURI(**fields)  # type: ignore[arg-type]
    assert built == u and hash(built) == hash(u)
    assert str(built) == scheme_of(fields) + text[text.index(":") :]


@given(sip_uri_texts(), st.data())
def test_property_escaping_an_unreserved_user_character_keeps_the_uri_equal(
    case: tuple[str, dict[str, object]], data: st.DataObject
) -> None:
    text, fields = case
    user = fields["user"]
    if not isinstance(user, str):
        return
    # Positions of characters that are not part of an escape already.
    plain: list[int] = []
    i = 0
    while i < len(user):
        if user[i] == "%":
            i += 3
            continue
        if user[i] in _UNRESERVED:
            plain.append(i)
        i += 1
    if not plain:
        return
    i = data.draw(st.sampled_from(plain))
    escaped = user[:i] + f"%{ord(user[i]):02X}" + user[i + 1 :]
    u = sip(text)
    other = u.replace(user=escaped)
    assert other == u and hash(other) == hash(u)


_SIPISH = "sipteSIPTL:@;=?&%[]0123456789abcdefABCDEF.-+#()/ \x00\r\n\u00e9<>\"'_~!*$,"


@settings(max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet=_SIPISH, max_size=40)))
def test_property_arbitrary_text_raises_only_parse_error(text: str) -> None:
    _only_parse_error(text)


@settings(max_examples=300)
@given(
    st.sampled_from(["sip:", "sips:", "SIP:", "tel:", "tel:+", "x-y.z:", "sip:a@", "sip:[", ""]),
    st.text(alphabet=_SIPISH, max_size=40),
)
def test_property_sip_prefixed_garbage_raises_only_parse_error(prefix: str, rest: str) -> None:
    _only_parse_error(prefix + rest)


def _only_parse_error(text: str) -> None:
    try:
        parsed = parse_uri(text)
    except ParseError as exc:
        assert exc.status == 400
        assert exc.reason.isascii() and "\r" not in exc.reason and "\n" not in exc.reason
        return
    # Whatever parses round-trips and equals itself.
    assert str(parsed) == text
    assert parsed == parsed and parsed == parse_uri(text)
    assert hash(parsed) == hash(parse_uri(text))


def test_unescaped_hash_in_user_part_is_tolerated() -> None:
    # Carriers send feature codes unescaped; it compares equal to the escaped spelling (§19.1.4).
    uri = parse_uri("sip:*98#@example.com")
    assert isinstance(uri, SipURI)
    assert (uri.user, uri.unescaped_user, str(uri)) == ("*98#", "*98#", "sip:*98#@example.com")
    assert uri == parse_uri("sip:*98%23@example.com")


@settings(max_examples=500)
@given(st.from_regex(uri_module.PLAIN_SIP_URI, fullmatch=True))
def test_everything_the_plain_sip_uri_pattern_vouches_for_parses(text: str) -> None:
    # The message parser skips the eager Request-URI parse when this pattern matches.
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "sip:a@[2001:db8::1]",
        "sip:a%20b@h",
        "sip:a:pw@h",
        "sip:a@h?x=y",
        "sip:a@1.2.3.4:65536",
        "sip:a@h.1com",
    ],
)
def test_plain_sip_uri_pattern_leaves_the_rest_to_the_full_parser(text: str) -> None:
    assert uri_module.PLAIN_SIP_URI.fullmatch(text) is None
