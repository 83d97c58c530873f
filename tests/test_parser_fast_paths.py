"""The parser's fast paths and the general code behind them must agree.

``parse`` takes shortcuts for the everyday spellings (known header names and no folding, plain
``;name=value`` parameters, ``"31942 INVITE"``, an IPv4 Via host, a From/To with only a tag) and
hands anything else to the general code. These cases sit on the boundary between the two: each
must give what the general code gives, the same value or the same 400.
"""

from __future__ import annotations

import pytest

from sip_stack import ParseError, Request, parse
from sip_stack.headers import parse_params
from sip_stack.values import CSeq, NameAddr, Via
from tests.sip_messages import options


def parse_request(data: bytes) -> Request:
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


# ------------------------------------------------------------------------------- header section


def test_fold_after_known_headers_only() -> None:
    data = options(extra=b"Subject: first\r\n second\r\n")
    req = parse_request(data)
    assert req.header("subject") == "first second"
    assert req.serialize() == data


def test_fold_after_an_unknown_header() -> None:
    data = options(extra=b"X-Trace: a\r\nSubject: b\r\n\tc\r\n")
    req = parse_request(data)
    assert req.header("x-trace") == "a"
    assert req.header("subject") == "b c"
    assert req.serialize() == data


def test_fold_that_supplies_the_colon() -> None:
    # "Subject" alone is not a header line, but folded with the next line it is: the section must
    # be judged as folded before that line is refused.
    data = options(extra=b"Subject\r\n : joined\r\n")
    req = parse_request(data)
    assert req.header("subject") == "joined"
    assert req.serialize() == data


def test_continuation_as_first_header_line() -> None:
    data = b"OPTIONS sip:a@example.com SIP/2.0\r\n folded\r\nVia: SIP/2.0/UDP h.example.com\r\n\r\n"
    with pytest.raises(ParseError, match="continuation line before any header"):
        parse(data)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"Foo\r\n", "header line without a colon: 'Foo'"),
        (b"Foo Bar: x\r\n", "header name is not a token: 'Foo Bar'"),
        (b": x\r\n", "header line without a colon: ': x'"),
    ],
)
def test_bad_header_lines_without_folding(extra: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(options(extra=extra))
    assert info.value.reason == reason


def test_many_unknown_headers_and_spaced_names() -> None:
    extra = b"".join(b"X-H%d: %d\r\n" % (n, n) for n in range(40)) + b"Subject : spaced\r\n"
    req = parse_request(options(extra=extra))
    assert req.header("x-h39") == "39"
    assert req.header("subject") == "spaced"


# ----------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("branch=z9hG4bKx;rport", (("branch", "z9hG4bKx"), ("rport", None))),
        ("a=b=c;d", (("a", "b=c"), ("d", None))),
        ("received=192.0.2.1;x=a@b/c", (("received", "192.0.2.1"), ("x", "a@b/c"))),
        ("a = b ; c", (("a", "b"), ("c", None))),  # LWS: the general path
        ('a="x;y";b', (("a", '"x;y"'), ("b", None))),  # quoting: the general path
    ],
)
def test_params(text: str, params: tuple[tuple[str, str | None], ...]) -> None:
    assert parse_params(text, "Via") == params


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty parameter in Via"),
        ("a;;b", "empty parameter in Via"),
        ("=x", "empty parameter in Via"),
        ("a=", "parameter a in Via has '=' but no value"),
        ("a@b=c", "bad parameter name in Via: 'a@b'"),
        ("a;é", "bad parameter name in Via: 'é'"),
    ],
)
def test_bad_params(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_params(text, "Via")
    assert info.value.reason == reason


def test_via_hosts() -> None:
    via = Via.parse("SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bKx")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bKx")
    assert Via.parse("SIP/2.0/TCP 192.0.2.10x.example.com").host == "192.0.2.10x.example.com"
    assert Via.parse("SIP/2.0/TLS [2001:db8::1]:5061").host == "[2001:db8::1]"
    for host, reason in (
        ("256.1.1.1", "Via sent-by host is not a valid IPv4 address: '256.1.1.1'"),
        ("1.2.3.4.5", "Via sent-by host is not a valid IPv4 address: '1.2.3.4.5'"),
    ):
        with pytest.raises(ParseError) as info:
            Via.parse(f"SIP/2.0/UDP {host}")
        assert info.value.reason == reason
    with pytest.raises(ParseError, match="port out of range"):
        Via.parse("SIP/2.0/UDP 192.0.2.1:65536")


@pytest.mark.parametrize(
    ("text", "display", "params"),
    [
        ('"A \\"B\\"" <sip:a@example.com>;tag=1', 'A "B"', (("tag", "1"),)),
        ("<sip:a@example.com>;tag=1;x", None, (("tag", "1"), ("x", None))),
        ("<sip:a@example.com>;x;tag=1", None, (("x", None), ("tag", "1"))),
        ("<sip:a@example.com>;TAG=1", None, (("TAG", "1"),)),
        ('<sip:a@example.com>;tag="1"', None, (("tag", '"1"'),)),
    ],
)
def test_name_addr(text: str, display: str | None, params: tuple[tuple[str, str | None], ...]) -> None:
    value = NameAddr.parse(text, "From")
    assert (value.uri_text, value.display_name, value.params) == ("sip:a@example.com", display, params)


def test_name_addr_empty_tag() -> None:
    with pytest.raises(ParseError) as info:
        NameAddr.parse("<sip:a@example.com>;tag=", "To")
    assert info.value.reason == "parameter tag in To has '=' but no value"


@pytest.mark.parametrize(
    ("text", "seq", "method"),
    [("2147483647 INVITE", 2**31 - 1, "INVITE"), ("0000000001 ACK", 1, "ACK"), ("7\tBYE", 7, "BYE")],
)
def test_cseq(text: str, seq: int, method: str) -> None:
    assert CSeq.parse(text) == CSeq(seq, method)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2147483648 INVITE", "CSeq number is too large: '2147483648'"),
        ("12345678901 INVITE", "CSeq number is too large: '12345678901'"),
        ("1 IN@VITE", "CSeq method is not a token: 'IN@VITE'"),
        ("\u0661 INVITE", "CSeq number is not a number: '\u0661'"),
    ],
)
def test_bad_cseq(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        CSeq.parse(text)
    assert info.value.reason == reason


# ------------------------------------------------------------------------------ request line


def test_unknown_method_is_checked_and_kept() -> None:
    data = options().replace(b"OPTIONS", b"FOO")
    assert parse_request(data).method == "FOO"
    with pytest.raises(ParseError, match="not a SIP start line"):
        parse(options().replace(b"OPTIONS sip", b"OPT@ONS sip", 1))


@pytest.mark.parametrize("uri", [b"<sip:a@example.com>", b"sip:a@ex\tample.com"])
def test_request_uri_with_brackets_or_tab(uri: bytes) -> None:
    data = options().replace(b"sip:127.0.0.1:5060", uri, 1)
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.reason == "Request-URI is malformed (RFC 3261 §7.1 forbids <> and LWS)"
