"""The SIP message layer: parse, typed headers, serialize, response builder, stateless replies."""

from __future__ import annotations

import pytest

import sip_stack
from sip_stack import (
    LocalProtocolError,
    ParseError,
    Request,
    Response,
    make_response,
    parse,
    stateless_reply,
)
from sip_stack.headers import COMPACT_FORMS, header_key, split_list
from sip_stack.uri import SipURI
from tests.sip_messages import BYE, CARRIER_INVITE, OK_200, SDP, options


def parse_request(data: bytes) -> Request:
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def parse_response(data: bytes) -> Response:
    msg = parse(data)
    assert isinstance(msg, Response)
    return msg


def test_carrier_invite_fields() -> None:
    req = parse_request(CARRIER_INVITE)
    assert req.method == "INVITE"
    assert req.uri_text == "sip:+15550100@198.51.100.10:5060;transport=udp"
    uri = req.uri
    assert isinstance(uri, SipURI)
    assert (uri.user, uri.host, uri.port, uri.transport) == (
        "+15550100",
        "198.51.100.10",
        5060,
        "udp",
    )
    vias = req.via
    assert len(vias) == 2
    top = req.top_via
    assert (top.transport, top.host, top.port) == ("UDP", "203.0.113.5", 5060)
    assert top.branch == "z9hG4bK-524287-1---7a8d2c1f9e3b"
    assert top.rport is True
    assert top.is_rfc3261_branch
    assert vias[1].received == "192.0.2.7"
    assert vias[1].rport is None
    assert req.from_.display_name == "+14155550123"
    assert req.from_.tag == "as5c1d2e3f"
    assert req.from_.uri_text == "sip:+14155550123@203.0.113.9;user=phone"
    assert req.to.tag is None
    assert req.call_id == "3c2f4e1a7b9d@203.0.113.9"
    assert (req.cseq.seq, req.cseq.method) == (102, "INVITE")
    assert req.max_forwards == 69
    assert [str(r) for r in req.record_route] == ["<sip:203.0.113.5;lr;ftag=as5c1d2e3f>"]
    contact = req.contact[0]
    assert not contact.is_star
    assert contact.address is not None
    assert contact.address.uri_text == "sip:+14155550123@203.0.113.5:5060;transport=udp"
    assert req.allow == (
        "INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REFER", "NOTIFY", "INFO", "UPDATE", "PRACK",
    )  # fmt: skip
    assert req.supported == ("replaces", "timer", "100rel")
    se = req.session_expires
    assert se is not None
    assert (se.delta, se.refresher) == (1800, "uac")
    assert req.min_se == 90
    content_type = req.content_type
    assert content_type is not None
    assert content_type.mime_type == "application/sdp"
    assert req.body == SDP
    assert req.content_length == len(SDP)
    # an unknown header is kept as received, opaque
    assert req.header("x-carrier-trace") == "0a1b2c;;weird , value"


def test_unchanged_messages_serialize_to_the_same_bytes() -> None:
    for data in (CARRIER_INVITE, OK_200, BYE, options()):
        assert parse(data).serialize() == data


def test_response_fields() -> None:
    resp = parse_response(OK_200)
    assert (resp.status, resp.reason_phrase) == (200, "OK")
    assert resp.top_via.rport == 5060
    assert resp.top_via.received == "198.51.100.10"
    assert resp.to.tag == "gw-77"
    assert [rr.uri_text for rr in resp.record_route] == [
        "sip:p1.example.net;lr",
        "sip:p2.example.net;lr",
    ]


def test_reason_and_header_lookup_by_any_spelling() -> None:
    req = parse_request(BYE)
    (reason,) = req.reason
    assert (reason.protocol, reason.cause, reason.text) == ("Q.850", 16, "Normal call clearing")
    assert req.header("CALL-ID") == req.header("i") == "b2b-leg-2@198.51.100.10"
    assert req.has_header("reason") and not req.has_header("contact")


@pytest.mark.parametrize("compact,full", sorted(COMPACT_FORMS.items()))
def test_compact_forms_map_to_full_names(compact: str, full: str) -> None:
    assert header_key(compact) == full
    assert header_key(compact.upper()) == full


def test_compact_form_message() -> None:
    data = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n"
        b"f: <sip:alice@example.com>;tag=a\r\n"
        b"t: sip:bob@example.com\r\n"
        b"i: compact-1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"m: <sip:alice@192.0.2.1>;expires=60;q=0.7\r\n"
        b"k: 100rel\r\n"
        b"x: 300;refresher=uas\r\n"
        b"c: application/sdp\r\n"
        b"l: 0\r\n\r\n"
    )
    req = parse_request(data)
    assert req.call_id == "compact-1"
    assert req.contact[0].expires == 60
    assert req.contact[0].q == 0.7
    assert req.supported == ("100rel",)
    se = req.session_expires
    assert se is not None and se.refresher == "uas"
    assert req.content_type is not None and req.content_type.subtype == "sdp"
    assert req.serialize() == data


def test_list_split_ignores_commas_in_quotes_and_angle_brackets() -> None:
    assert split_list('"Doe, John" <sip:j@x;a=1,b>, <sip:k@y>') == [
        '"Doe, John" <sip:j@x;a=1,b>',
        "<sip:k@y>",
    ]
    assert split_list('a, "b\\", c", d') == ["a", '"b\\", c"', "d"]
    data = options(extra=b'Contact: "Doe, John" <sip:j@192.0.2.1>;q=0.5, <sip:k@192.0.2.2>\r\nContact: *\r\n')
    contacts = parse_request(data).contact
    assert [c.is_star for c in contacts] == [False, False, True]
    assert contacts[0].address is not None and contacts[0].address.display_name == "Doe, John"
    assert contacts[0].q == 0.5


def test_multiple_via_values_in_one_field_and_several_fields() -> None:
    data = options().replace(
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1\r\n",
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1, SIP/2.0/TCP [2001:db8::1]:5061"
        b";branch=z9hG4bKx;maddr=224.2.0.1;ttl=16\r\n"
        b"Via: SIP/2.0/TLS proxy.example.com;branch=z9hG4bKy\r\n",
    )
    vias = parse_request(data).via
    assert [v.transport for v in vias] == ["UDP", "TCP", "TLS"]
    assert (vias[1].host, vias[1].port, vias[1].maddr, vias[1].ttl) == (
        "[2001:db8::1]",
        5061,
        "224.2.0.1",
        16,
    )
    assert vias[2].port is None


def test_auth_headers() -> None:
    data = options(
        extra=b'WWW-Authenticate: Digest realm="enx", nonce="abc,def", algorithm=SHA-256, '
        b'qop="auth,auth-int", stale=FALSE\r\n'
        b'Proxy-Authenticate: Digest realm="carrier", nonce="n2"\r\n'
        b'Authorization: Digest username="bob", realm="enx", nonce="abc,def", uri="sip:x", '
        b'response="0123", nc=00000001, cnonce="c", qop=auth\r\n'
        b"Proxy-Authorization: NoOneKnowsThisScheme opaque-data=here\r\n"
    )
    req = parse_request(data)
    (challenge,) = req.www_authenticate
    assert challenge.scheme == "Digest"
    assert challenge.param("nonce") == "abc,def"
    assert challenge.param("QOP") == "auth,auth-int"
    assert challenge.param("algorithm") == "SHA-256"
    assert req.proxy_authenticate[0].param("realm") == "carrier"
    (creds,) = req.authorization
    assert (creds.param("username"), creds.param("nc"), creds.param("qop")) == (
        "bob",
        "00000001",
        "auth",
    )
    assert str(creds).startswith('Digest username="bob", realm="enx", nonce="abc,def"')
    unknown = req.proxy_authorization[0]
    assert unknown.scheme == "NoOneKnowsThisScheme"
    assert unknown.param("opaque-data") == "here"


def test_prack_retry_after_expires_and_token_lists() -> None:
    data = options(
        extra=b"RSeq: 988789\r\nRAck: 776656 1 INVITE\r\nRetry-After: 120 (in a meeting);duration=3600\r\n"
        b"Expires: 300\r\nRequire: 100rel, timer\r\nUnsupported: foo\r\nProxy-Require: bar\r\n"
    )
    req = parse_request(data)
    assert req.rseq == 988789
    rack = req.rack
    assert rack is not None and (rack.rseq, rack.cseq, rack.method) == (776656, 1, "INVITE")
    ra = req.retry_after
    assert ra is not None and (ra.delta, ra.comment, ra.duration) == (120, "in a meeting", 3600)
    assert req.expires == 300
    assert req.require == ("100rel", "timer")
    assert req.unsupported == ("foo",)
    assert req.proxy_require == ("bar",)
    bare = parse_request(options())
    assert (bare.rseq, bare.rack, bare.retry_after, bare.expires, bare.session_expires) == (
        None, None, None, None, None,
    )  # fmt: skip
    assert bare.require == () and bare.route == [] and bare.content_type is None


@pytest.mark.parametrize(
    "extra,accessor,message",
    [
        (b"Expires: soon\r\n", "expires", "Expires is not a number: 'soon'"),
        (
            b"Session-Expires: 90;refresher=me\r\n",
            "session_expires",
            "refresher must be uac or uas",
        ),
        (b"RAck: 1 INVITE\r\n", "rack", "RAck must be 'rseq cseq method'"),
        (b"Contact: <sip:a@b>;q=2\r\n", "contact", "Contact q is not a qvalue"),
        (b"Require: a b\r\n", "require", "Require value is not a token"),
        (b"Route: <sip:a@b>,,<sip:c@d>\r\n", "route", "empty value in Route"),
        (b"Content-Type: sdp\r\n", "content_type", "Content-Type is not type/subtype"),
    ],
)
def test_lazily_parsed_headers_raise_parse_error_on_access(extra: bytes, accessor: str, message: str) -> None:
    req = parse_request(options(extra=extra))
    with pytest.raises(ParseError) as info:
        getattr(req, accessor)
    assert message in info.value.reason
    assert info.value.status == 400


@pytest.mark.parametrize(
    "data,status,message",
    [
        (options().replace(b"Call-ID: opt-1\r\n", b""), 400, "missing Call-ID header"),
        (options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400, "CSeq method INVITE does not match OPTIONS"),
        (options().replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"), 400, "CSeq number is not a number"),
        (options().replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400, "Max-Forwards is above 255"),
        (options(extra=b"To: <sip:other@x>\r\n"), 400, "more than one To header"),
        (options().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "SIP version SIP/3.0 not supported"),
        (options().replace(b"OPTIONS sip:", b"OPTIONS  sip:", 1), 400, "request line must be"),
        (options().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5070", b"Via: SIP/2.0/UDP 127.0.0.1:99999"), 400, "port out of range"),
        (options().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5070;", b"Via: SIP/2.0/UDP ;"), 400, "Via has no sent-by host"),
        (options().replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP/X"), 400, "Via sent-protocol is malformed"),
        (options(extra=b"Bad Header: x\r\n"), 400, "header name is not a token: 'Bad Header'"),
        (options(extra=b"NoColonHere\r\n"), 400, "header line without a colon: 'NoColonHere'"),
        (options().replace(b"Content-Length: 0", b"Content-Length: 5"), 400, "Content-Length 5 is larger than the 0-byte body"),
        (options().replace(b"Content-Length: 0", b"Content-Length: 99999999"), 413, "Content-Length above"),
        (b"SIP/2.0 20 OK\r\n\r\n", 400, "status code is not 100-699: '20'"),
        (b"\r\n\r\n", 400, "empty start line"),
    ],
)  # fmt: skip
def test_bad_messages_raise_parse_error_with_status(data: bytes, status: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(data)
    if data.startswith(b"SIP/2.0 20 OK"):
        assert info.value.is_request is False
    assert info.value.status == status
    assert message in info.value.reason


def test_extra_whitespace_in_via_is_accepted() -> None:
    # SWS is allowed around the slashes and before the sent-by (RFC 3261 §20.42, RFC 4475 wsinv).
    data = options().replace(b"Via: SIP/2.0/UDP ", b"Via: SIP / 2.0 / UDP   ")
    assert parse_request(data).top_via.host == "127.0.0.1"


def test_bare_lf_message_is_accepted() -> None:
    data = options().replace(b"\r\n", b"\n")
    req = parse_request(data)
    assert req.call_id == "opt-1"
    assert req.cseq.method == "OPTIONS"


def test_folded_header_value() -> None:
    data = options(extra=b"Subject: first part\r\n\t  second part\r\n")
    req = parse_request(data)
    assert req.header("subject") == "first part second part"
    assert req.serialize() == data


def test_make_response_copies_what_rfc3261_8_2_6_says() -> None:
    req = parse_request(CARRIER_INVITE)
    trying = make_response(req, 100)
    assert trying.to.tag is None
    assert trying.serialize().startswith(b"SIP/2.0 100 Trying\r\n")
    ok = make_response(
        req,
        200,
        to_tag="uas-1",
        headers=[("Contact", "<sip:enx@198.51.100.10:5060>")],
        body=SDP,
        copy_record_route=True,
    )
    wire = ok.serialize()
    back = parse_response(wire)
    assert [v.branch for v in back.via] == [v.branch for v in req.via]
    for name in (
        b"Via: SIP/2.0/UDP 203.0.113.5",
        b"From: ",
        b"Call-ID: ",
        b"CSeq: ",
        b"Record-Route",
    ):
        line = next(ln for ln in CARRIER_INVITE.split(b"\r\n") if ln.startswith(name))
        assert line in wire.split(b"\r\n"), name
    assert back.to.tag == "uas-1"
    assert back.to.uri_text == req.to.uri_text
    assert back.body == SDP
    assert back.header("content-length") == str(len(SDP))
    assert "record-route" not in {k.lower() for k, _ in make_response(req, 486, to_tag="x").headers}
    with pytest.raises(LocalProtocolError):
        make_response(req, 200)  # no To tag given for a request without one
    with pytest.raises(LocalProtocolError):
        make_response(req, 700, to_tag="x")


def test_make_response_to_100_copies_timestamp() -> None:
    req = parse_request(options(extra=b"Timestamp: 54.2 0.3\r\n"))
    assert make_response(req, 100).header("timestamp") == "54.2 0.3"
    assert make_response(req, 200, to_tag="t").header("timestamp") is None


def test_stateless_reply_to_a_bad_request() -> None:
    bad = options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    with pytest.raises(ParseError) as info:
        parse(bad)
    err = info.value
    assert err.is_request and err.can_reply
    wire = stateless_reply(err, server="enx-voice")
    assert wire is not None
    resp = parse_response(wire)
    assert resp.status == 400
    assert "CSeq method INVITE does not match OPTIONS" in resp.reason_phrase
    assert resp.top_via.branch == "z9hG4bKopt1"
    assert resp.call_id == "opt-1"
    assert resp.to.tag is not None
    # the same bad request retransmitted gets the same reply, tag included
    with pytest.raises(ParseError) as again:
        parse(bad)
    assert stateless_reply(again.value, server="enx-voice") == wire


def test_no_stateless_reply_for_responses_or_requests_without_via() -> None:
    with pytest.raises(ParseError) as info:
        parse(OK_200.replace(b"CSeq: 1 INVITE", b"CSeq: 1"))
    assert info.value.is_request is False
    assert stateless_reply(info.value) is None
    with pytest.raises(ParseError) as info2:
        parse(options().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1\r\n", b""))
    assert info2.value.reason == "missing Via header"
    assert stateless_reply(info2.value) is None


def test_builders_and_mutators() -> None:
    req = Request.build(
        "OPTIONS",
        "sip:gw@127.0.0.1:5090",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnew"),
            ("From", "<sip:enx@127.0.0.1>;tag=1"),
            ("To", "<sip:gw@127.0.0.1:5090>"),
            ("Call-ID", "built-1"),
            ("CSeq", "7 OPTIONS"),
            ("Max-Forwards", "70"),
        ],
    )
    wire = req.serialize()
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    back = parse_request(wire)
    assert back.cseq.seq == 7
    back.add_header("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop", first=True)
    assert back.top_via.branch == "z9hG4bKtop"
    assert len(back.via) == 2
    assert back.remove_first_value("Via") == "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop"
    assert back.top_via.branch == "z9hG4bKnew"
    back.set_body(b"hello", "text/plain")
    again = parse_request(back.serialize())
    assert again.body == b"hello"
    assert again.header("Content-Length") == "5"
    assert again.remove_header("max-forwards") == 1
    assert again.max_forwards is None
    with pytest.raises(LocalProtocolError):
        Request.build("BAD METHOD", "sip:x", [])
    with pytest.raises(LocalProtocolError):
        again.add_header("X-Injected", "a\r\nVia: evil")
    resp = Response.build(503, [("Retry-After", "30")])
    assert resp.serialize().startswith(b"SIP/2.0 503 Service Unavailable\r\n")


def test_public_api_is_exported() -> None:
    for name in sip_stack.__all__:
        assert getattr(sip_stack, name) is not None


def test_serialize_follows_start_line_and_header_changes() -> None:
    req = parse_request(CARRIER_INVITE)
    req.uri_text = "sip:+15550100@127.0.0.1:5090"
    req.method = "INVITE"
    wire = req.serialize()
    assert wire.startswith(b"INVITE sip:+15550100@127.0.0.1:5090 SIP/2.0\r\n")
    assert wire[wire.index(b"\r\n") :] == CARRIER_INVITE[CARRIER_INVITE.index(b"\r\n") :]
    req.set_header("Max-Forwards", "68")
    again = parse_request(req.serialize())
    assert again.max_forwards == 68
    assert again.uri_text == "sip:+15550100@127.0.0.1:5090"
    assert again.body == SDP
    resp = parse_response(OK_200)
    resp.status, resp.reason_phrase = 202, "Accepted"
    assert resp.serialize().startswith(b"SIP/2.0 202 Accepted\r\n")


def test_a_malformed_ack_is_never_answered() -> None:
    data = options().replace(b"OPTIONS", b"ACK").replace(b"Max-Forwards: 70", b"Max-Forwards: abc")
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.is_request and not info.value.can_reply  # RFC 3261 §17.2.1
    assert stateless_reply(info.value) is None


def test_builders_refuse_header_injection() -> None:
    req = parse_request(options())
    with pytest.raises(LocalProtocolError):
        make_response(req, 403, "Forbidden\r\nX-Injected: 1", to_tag="t")
    with pytest.raises(LocalProtocolError):
        Response.build(200, [("Call-ID", "x")], reason="OK\r\n\r\nBODY")
    with pytest.raises(LocalProtocolError):
        make_response(req, 200, to_tag="a;b=c, <sip:evil>")


def test_stateless_reply_adds_a_tag_when_tag_only_looks_present() -> None:
    for to in (b"<sip:bob@example.com;tag=x>", b'"a;tag=b" <sip:bob@example.com>'):
        bad = (
            options()
            .replace(b"To: <sip:127.0.0.1:5060>", b"To: " + to)
            .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
        )
        with pytest.raises(ParseError) as info:
            parse(bad)
        wire = stateless_reply(info.value)
        assert wire is not None
        reply = parse_response(wire)
        assert reply.to.tag is not None and reply.to.tag not in ("x", "b")


@pytest.mark.parametrize(
    "header,accessor",
    [
        (b"To: <sip:127.0.0.1>;tag=a;b=c, <sip:evil>\r\n", "to"),
        (b"Contact: <sip:a@b>;x=a b\r\n", "contact"),
        (b"CSeq: 1\xc2\xa0OPTIONS\r\n", "cseq"),
        (b"Contact: <sip:a@b>;q=0.\xd9\xa3\r\n", "contact"),
    ],
)
def test_values_outside_the_grammar_are_rejected(header: bytes, accessor: str) -> None:
    name = header.split(b":")[0]
    base = b"\r\n".join(ln for ln in options().split(b"\r\n") if not ln.startswith(name + b":"))
    data = base.replace(b"Content-Length: 0", header.rstrip(b"\r\n") + b"\r\nContent-Length: 0")
    with pytest.raises(ParseError):
        getattr(parse(data), accessor)


def test_retry_after_comment_ends_at_its_parenthesis() -> None:
    ra = parse_request(options(extra=b"Retry-After: 120 (busy) ;duration=60\r\n")).retry_after
    assert ra is not None and (ra.comment, ra.duration) == ("busy", 60)


def test_setting_the_body_keeps_content_length_true() -> None:
    req = parse_request(options())
    req.body = b"hello"
    again = parse_request(req.serialize())
    assert again.body == b"hello" and again.header("content-length") == "5"


def test_lf_only_headers_with_a_blank_line_inside_a_crlf_body() -> None:
    body = b"line1\r\n\r\nline3\r\n"
    head = options().split(b"\r\n\r\n")[0].replace(b"Content-Length: 0", b"Content-Length: %d" % len(body))
    msg = parse_request(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert msg.body == body
