"""RFC 4475 torture messages, each handled as RFC 4475 §3 says (checked against the RFC's text).

Valid messages (§3.1.1) parse and the fields the RFC points at are asserted. Invalid ones (§3.1.2) raise
ParseError with the fitting status, or, where the RFC lets a robust element be liberal, are accepted
and the liberal reading is asserted. Transaction- and application-layer cases (§3.2-§3.4) parse (their
answer is the UAS's), except where the message's own framing or single-valued headers are broken.
The bytes are in tests/vectors/rfc4475 (see its LICENSE-NOTE.md); MANIFEST.csv lists every file.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from sip_stack import ParseError, Request, Response, StreamFramer, parse, stateless_reply
from sip_stack.uri import AbsoluteURI, SipURI

DIR = Path(__file__).parent / "vectors" / "rfc4475"
with (DIR / "MANIFEST.csv").open(newline="") as _manifest:
    MANIFEST = {row["file"]: row for row in csv.DictReader(_manifest) if row["file"].endswith(".dat")}


def raw(name: str) -> bytes:
    return (DIR / name).read_bytes()


def req(name: str) -> Request:
    msg = parse(raw(name))
    assert isinstance(msg, Request), name
    return msg


def resp(name: str) -> Response:
    msg = parse(raw(name))
    assert isinstance(msg, Response), name
    return msg


def sip_uri(value: object) -> SipURI:
    assert isinstance(value, SipURI), value
    return value


def error(name: str, data: bytes | None = None) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(raw(name) if data is None else data)
    return info.value


def test_manifest_covers_every_file() -> None:
    on_disk = {p.name for p in DIR.glob("*.dat")}
    assert on_disk == set(MANIFEST)
    assert len(on_disk) == 49


# ---------------------------------------------------------------------- §3.1.1 valid messages


def test_wsinv_short_tortuous_invite() -> None:
    m = req("wsinv.dat")
    assert m.method == "INVITE"
    assert m.uri_text == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    uri = sip_uri(m.uri)
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "vivekg",
        "chair-dnrc.example.com",
        None,
        (("unknownparam", None),),
    )
    assert m.to.display_name is None
    assert m.to.uri_text == "sip:vivekg@chair-dnrc.example.com"
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.uri_text == "sip:jdrosen@example.com"
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    vias = m.via
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert not vias[0].is_rfc3261_branch
    assert m.header("subject") == ""
    assert m.header("NewFangledHeader") == "newfangled value continued newfangled value"
    # an unknown header is one opaque value, never split (the RFC's "special attention")
    assert m.header_values("UnknownHeaderWithUnusualValue") == [";;,,;;,;"]
    assert m.content_type is not None and m.content_type.mime_type == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3")
    (route,) = m.route
    route_uri = sip_uri(route.uri)
    assert route_uri.host == "services.example.com"
    assert route_uri.params == (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None))
    (contact,) = m.contact
    assert contact.address is not None
    assert contact.address.display_name == 'Quoted string ""'
    assert contact.address.uri_text == "sip:jdrosen@example.com"
    assert contact.address.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == 0.33
    assert m.serialize() == raw("wsinv.dat")


def test_intmeth_wide_range_of_valid_characters() -> None:
    m = req("intmeth.dat")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method  # % is no escape in a method
    assert m.uri_text == (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = sip_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert (uri.host, uri.params, uri.headers) == ("example.com", (), ())
    assert m.top_via.transport == "TCP"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri_text == "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"
    assert m.to.tag is None
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.uri_text == "sip:mundane@example.com"
    assert m.from_.tag == "_token~1'+`*%!-."
    param_value = m.from_.param("fromParam''~+*_!.-%")
    assert (
        param_value is not None and param_value.encode("utf-8", "surrogateescape") == '"работающий"'.encode()
    )
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert (m.cseq.seq, m.cseq.method) == (139122385, method)
    assert m.max_forwards == 255
    ext = m.header("extensionHeader-!.%*+_`'~")
    assert ext is not None and ext.encode("utf-8", "surrogateescape") == "\ufeff大停電".encode()
    assert m.body == b""
    assert m.serialize() == raw("intmeth.dat")


def test_esc01_valid_percent_escapes() -> None:
    m = req("esc01.dat")
    uri = sip_uri(m.uri)
    assert m.uri_text == "sip:sips%3Auser%40example.com@example.net"
    assert (uri.user, uri.unescaped_user, uri.host) == (
        "sips%3Auser%40example.com",
        "sips:user@example.com",
        "example.net",
    )
    to_uri = sip_uri(m.to.uri)
    assert (to_uri.user, to_uri.unescaped_user) == ("%75se%72", "user")
    assert to_uri == sip_uri(parse_uri_text("sip:user@example.com"))  # RFC 3261 §19.1.4
    assert sip_uri(m.from_.uri).unescaped_user == "I have spaces"
    assert m.from_.tag == "938"
    assert (m.max_forwards, m.call_id, m.cseq.seq) == (87, "esc01.239409asdfakjkn23onasd0-3234", 234234)
    assert (m.top_via.transport, m.top_via.host, m.top_via.branch) == (
        "UDP",
        "host5.example.net",
        "z9hG4bKkdjuw",
    )
    (contact,) = m.contact
    assert contact.address is not None
    curi = sip_uri(contact.address.uri)
    assert curi.unescaped_user == "caller"
    assert curi.lr  # "%6C%72" is "lr"
    # unescaping is never recursive: value%41 is not valueA
    assert curi.params[1] == ("n%61me", "v%61lue%25%34%31")
    assert curi.param("name") is not None
    assert len(m.body) == 150


def parse_uri_text(text: str) -> object:
    from sip_stack.uri import parse_uri

    return parse_uri(text)


def test_escnull_escaped_nulls_in_uris() -> None:
    m = req("escnull.dat")
    assert (m.method, m.uri_text) == ("REGISTER", "sip:example.com")
    assert sip_uri(m.to.uri).unescaped_user == "null-\x00-null"
    assert sip_uri(m.from_.uri).unescaped_user == "null-\x00-null"
    assert m.from_.tag == "839923423"
    users = [sip_uri(c.address.uri).unescaped_user for c in m.contact if c.address]
    assert users == ["\x00", "\x00\x00"]  # two distinct contacts
    assert sip_uri(m.contact[0].address.uri) != sip_uri(m.contact[1].address.uri)  # type: ignore[union-attr]
    assert (m.cseq.seq, m.cseq.method, m.body) == (14398234, "REGISTER", b"")


def test_esc02_percent_that_is_not_an_escape() -> None:
    m = req("esc02.dat")
    assert m.method == "RE%47IST%45R"  # an unknown method, not REGISTER
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45" and m.from_.display_name == "%Z%45"
    assert m.from_.tag == "f232jadfj23"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [c.address.uri_text for c in m.contact if c.address] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert m.header_values("C%6Fntact") == ["<sip:alias2@host2.example.com>"]


def test_lwsdisp_no_lws_between_display_name_and_angle() -> None:
    m = req("lwsdisp.dat")
    assert (m.from_.display_name, m.from_.uri_text, m.from_.tag) == (
        "caller",
        "sip:caller@example.com",
        "323",
    )
    assert m.call_id == "lwsdisp.1234abcd@funky.example.com"


def test_longreq_long_values() -> None:
    m = req("longreq.dat")
    assert m.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    to_uri = sip_uri(m.to.uri)
    assert (to_uri.host, to_uri.port) == ("example.com", 6000)
    assert to_uri.param("unknownparam1") == "very" + "long" * 20 + "value"
    assert to_uri.param("longparam" + "name" * 25) == "shortvalue"
    assert to_uri.has_param("very" + "long" * 25 + "ParameterNameWithNoValue")
    assert m.from_.uri_text == "sip:" + "amazinglylongcallername" * 5 + "@example.net"
    assert m.from_.tag == "1" + "298" * 50 + "2424"
    assert m.from_.param("unknownheaderparam" + "name" * 20) == "unknowheaderparam" + "value" * 15
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert (m.cseq.seq, m.cseq.method) == (3882340, "INVITE")
    assert m.header("Unknown-" + "Long" * 20 + "-Name") == (
        "unknown-"
        + "long" * 20
        + "-value; unknown-"
        + "long" * 20
        + "-parameter-name = unknown-"
        + "long" * 20
        + "-parameter-value"
    )
    vias = m.via
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert all(v.transport == "TCP" and v.branch is None for v in vias[:33])
    assert vias[33].host == "host.example.com"
    assert vias[33].received == "192.0.2.5"
    assert vias[33].branch == "very" + "long" * 50 + "branchvalue"
    assert m.max_forwards == 70
    assert len(m.body) == 150
    assert m.serialize() == raw("longreq.dat")


def test_dblreq_extra_trailing_octets_in_a_datagram() -> None:
    data = raw("dblreq.dat")
    m = req("dblreq.dat")
    assert (m.method, m.uri_text, m.body) == ("REGISTER", "sip:example.com", b"")
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert m.top_via.branch == "z9hG4bKkdjuw23492"
    assert not m.has_header("content-type")
    # the serialized message is the REGISTER alone: the INVITE-looking octets are noise (§18.3)
    assert m.serialize() == data[: data.index(b"\r\n\r\n") + 4]
    assert b"INVITE" not in m.serialize()


def test_semiuri_semicolon_in_user_part() -> None:
    m = req("semiuri.dat")
    uri = sip_uri(m.uri)
    assert uri.user == "user;par=u%40example.net"
    assert uri.unescaped_user == "user;par=u@example.net"
    assert (uri.host, uri.params) == ("example.com", ())
    assert m.header_values("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed",
        "multipart/signed", "message/sip", "message/sipfrag",
    ]  # fmt: skip
    assert m.max_forwards == 3


def test_transports_varied_and_unknown() -> None:
    vias = req("transports.dat").via
    assert [v.transport for v in vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert [v.host for v in vias] == [f"t{n}.example.com" for n in range(1, 6)]
    assert req("transports.dat").call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_binary_body() -> None:
    m = req("mpart01.dat")
    assert m.method == "MESSAGE"
    assert len(m.body) == 553
    assert m.body.count(b"\x00") == 2
    assert (
        hashlib.sha256(m.body).hexdigest()
        == "fe819b3fdccb4dbb4dc3be33fed48e7196401676b993cb42201dc0e38f43d88c"
    )
    assert m.content_type is not None
    assert (m.content_type.mime_type, m.content_type.param("boundary")) == (
        "multipart/mixed",
        "7a9cbec02ceef655",
    )
    assert (m.top_via.port, m.top_via.rport) == (5070, True)
    assert sip_uri(m.route[0].uri).port == 5080
    assert m.serialize() == raw("mpart01.dat")


def test_unreason_utf8_reason_phrase() -> None:
    m = resp("unreason.dat")
    assert m.status == 200
    assert m.reason_phrase == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert m.to.tag == "2229"
    assert m.max_forwards is None
    assert m.serialize() == raw("unreason.dat")


def test_noreason_empty_reason_phrase() -> None:
    m = resp("noreason.dat")
    assert (m.status, m.reason_phrase) == (100, "")
    assert m.to.tag == "902jndnke3"
    assert m.serialize() == raw("noreason.dat")


# -------------------------------------------------------------------- §3.1.2 invalid messages

INVALID_REQUESTS = {
    # file: (status, words of the reason) — every one is answered with a stateless reply
    "badinv01.dat": (400, "empty parameter in Via"),
    "clerr.dat": (400, "Content-Length 9999 is larger than the 154-byte body"),
    "ncl.dat": (400, "Content-Length is not a number: '-999'"),
    "scalar02.dat": (400, "CSeq number is too large"),
    "quotbal.dat": (400, "unterminated quoted string in To"),
    "ltgtruri.dat": (400, "Request-URI is malformed"),
    "lwsruri.dat": (400, "request line must be"),
    "lwsstart.dat": (400, "request line must be"),
    "trws.dat": (400, "request line must be"),
    "baddn.dat": (400, "From: display name has non-token characters"),
    "badvers.dat": (505, "SIP version SIP/7.0 not supported"),
    "mismatch01.dat": (400, "CSeq method INVITE does not match OPTIONS"),
    "mismatch02.dat": (501, "CSeq method INVITE does not match NEWMETHOD"),
    # §3.3.8, §3.3.9: duplicated single-valued headers; the parser cannot pick one
    "multi01.dat": (400, "more than one"),
    "mcl01.dat": (400, "conflicting Content-Length values"),
    # §3.3.1: "ideally, respond with 400" — the Via is there, so a reply can be routed
    "insuf.dat": (400, "missing From header"),
}


@pytest.mark.parametrize("name", sorted(INVALID_REQUESTS))
def test_invalid_request_gets_a_stateless_reply(name: str) -> None:
    status, words = INVALID_REQUESTS[name]
    err = error(name)
    assert err.status == status
    assert words in err.reason
    assert err.is_request is True
    wire = stateless_reply(err)
    assert wire is not None
    # The reply copies the request's Via, From, To, Call-ID and CSeq byte-for-byte (RFC 3261
    # §8.2.6.2), malformed ones included, so it is checked line by line rather than re-parsed.
    lines = wire.split(b"\r\n")
    assert lines[0].startswith(f"SIP/2.0 {status} ".encode())
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    original = raw(name)
    info = err.reply_info
    assert info is not None and info.vias
    assert [ln[5:] for ln in lines if ln.startswith(b"Via: ")] == list(info.vias)
    for value in (*info.vias, info.from_, info.call_id, info.cseq):
        assert value is None or value.split(b"\r\n")[0] in original
    to_line = next((ln for ln in lines if ln.startswith(b"To: ")), None)
    assert (to_line is None) == (info.to is None)
    assert to_line is None or b";tag=" in to_line


def test_baddn_rejected_for_its_display_names_not_its_truncation() -> None:
    # baddn.dat has no blank line after its headers; with one added it must still be a 400.
    assert error("baddn.dat", raw("baddn.dat") + b"\r\n").reason == error("baddn.dat").reason


@pytest.mark.parametrize(
    "name,words",
    [("scalarlg.dat", "CSeq number is too large"), ("bigcode.dat", "status code is not 100-699")],
)
def test_invalid_responses_are_dropped(name: str, words: str) -> None:
    err = error(name)
    assert words in err.reason
    assert err.is_request is False
    assert not err.can_reply
    assert stateless_reply(err) is None


def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    # On TCP a Content-Length larger than what arrived means "more to come", not an error.
    framer = StreamFramer()
    assert framer.feed(raw("clerr.dat")) == []
    assert framer.buffered == len(raw("clerr.dat"))


def test_escruri_liberal_reading_keeps_the_escaped_header_visible() -> None:
    # §3.1.2.11 allows 400 or a liberal parse; we parse, and the UAS can see (and ignore) the header.
    m = req("escruri.dat")
    assert sip_uri(m.uri).headers == (("Route", "%3Csip:example.com%3E"),)


def test_baddate_is_accepted_and_date_kept_raw() -> None:
    # §3.1.2.12: an element that does not use Date should not reject the request.
    assert req("baddate.dat").header("date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_regbadct_liberal_reading() -> None:
    # §3.1.2.13: liberal elements may accept; unbracketed, the '?...' is read as part of the URI.
    (contact,) = req("regbadct.dat").contact
    assert contact.address is not None
    assert contact.address.uri_text == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert not contact.address.bracketed


def test_badaspec_liberal_reading_strips_spaces_inside_angles() -> None:
    m = req("badaspec.dat")
    assert (m.to.display_name, m.to.uri_text) == ("Watson, Thomas", "sip:t.watson@example.org")


# ----------------------------------------------------------------- §3.2-§3.4 (parse, answer later)


def test_badbranch_parses_and_is_not_an_rfc3261_branch() -> None:
    via = req("badbranch.dat").top_via
    assert via.branch == "z9hG4bK"
    assert not via.is_rfc3261_branch  # the transaction layer falls back to RFC 2543 matching


def test_unknown_and_atypical_request_uri_schemes_parse() -> None:
    unkscm = req("unkscm.dat").uri
    assert isinstance(unkscm, AbsoluteURI)
    assert unkscm.scheme.lower() == "nobodyknowsthisscheme"  # the UAS answers 416
    novelsc = req("novelsc.dat").uri
    assert isinstance(novelsc, AbsoluteURI)
    assert str(novelsc) == "soap.beep://192.0.2.103:3002"


def test_unksm2_unknown_schemes_in_headers() -> None:
    m = req("unksm2.dat")
    assert isinstance(m.to.uri, AbsoluteURI) and str(m.to.uri) == "isbn:2983792873"
    assert isinstance(m.from_.uri, AbsoluteURI) and m.from_.uri_text == "http://www.example.com"
    assert m.contact[0].address is not None and m.contact[0].address.uri_text == "name:John_Smith"


def test_bext01_require_and_proxy_require() -> None:
    m = req("bext01.dat")
    assert m.require and m.proxy_require  # the UAS answers 420 with Unsupported
    assert m.top_via.transport == "TLS"


def test_invut_unknown_content_type() -> None:
    m = req("invut.dat")
    assert m.content_type is not None and m.content_type.mime_type == "application/unknownformat"
    assert len(m.body) == 40


def test_regaut01_unknown_authorization_scheme() -> None:
    (auth,) = req("regaut01.dat").authorization
    assert auth.scheme == "NoOneKnowsThisScheme"


def test_bcast_response_with_two_vias_parses() -> None:
    # The UAC drops it (RFC 3261 §8.1.3.3: more than one Via); the parser's part is to read it.
    m = resp("bcast.dat")
    assert [v.host for v in m.via][1] == "255.255.255.255"


def test_zeromf_max_forwards_zero() -> None:
    assert req("zeromf.dat").max_forwards == 0


def test_cparam01_parameter_belongs_to_the_header() -> None:
    (contact,) = req("cparam01.dat").contact
    assert contact.address is not None
    assert ("unknownparam", None) in contact.address.params  # a header param with no value
    assert not sip_uri(contact.address.uri).has_param("unknownparam")


def test_cparam02_parameter_belongs_to_the_uri() -> None:
    (contact,) = req("cparam02.dat").contact
    assert contact.address is not None
    assert "unknownparam" not in {k for k, _ in contact.address.params}
    assert sip_uri(contact.address.uri).has_param("unknownparam")


def test_regescrt_escaped_header_in_contact_uri() -> None:
    (contact,) = req("regescrt.dat").contact
    assert contact.address is not None
    assert sip_uri(contact.address.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_sdp01_unacceptable_accept() -> None:
    m = req("sdp01.dat")
    assert m.header_values("accept") == ["text/nobodyKnowsThis"]  # the UAS answers 406


def test_inv2543_rfc2543_syntax() -> None:
    m = req("inv2543.dat")
    assert m.top_via.branch is None  # RFC 2543 transaction matching
    assert m.from_.tag is None
    assert m.max_forwards is None
    assert not m.has_header("content-length")
    assert len(m.body) == 105  # no Content-Length on a datagram: the body is the rest
