"""Digest authentication (sip_stack.auth): RFC vectors, client/server round trips, replay and stale rules."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip_stack import Auth, LocalProtocolError, ParseError, Request, Response
from sip_stack.auth import (
    CredentialsHeader,
    DigestAlgorithm,
    DigestClient,
    DigestServer,
    Outcome,
    Verification,
    already_answered,
    digest_response,
)

# --------------------------------------------------------------------------------- RFC vectors

# RFC 2617 §3.5 (GET /dir/index.html). Note "Circle Of Life" with a capital O.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"

# RFC 7616 §3.9.1 (GET /dir/index.html). Here "Circle of Life", lower-case o.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_example_response() -> None:
    assert (
        digest_response(
            DigestAlgorithm.MD5,
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == RFC2617_RESPONSE
    )


def test_rfc2617_example_through_the_client() -> None:
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    header = client.authorize(Auth.parse(RFC2617_CHALLENGE), proxy=False, method="GET", uri="/dir/index.html")
    assert header.name == "Authorization"
    assert header.realm == "testrealm@host.com"
    sent = Auth.parse(header.value)
    assert sent.param("response") == RFC2617_RESPONSE
    assert sent.param("nc") == "00000001"
    assert sent.param("qop") == "auth"  # auth preferred when auth-int is offered too
    assert sent.param("opaque") == "5ccc069c403ebaf9f0171e9517f40e41"
    # The challenge named no algorithm, so neither do the credentials (RFC 2617 servers may not know it).
    assert sent.param("algorithm") is None


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_examples(algorithm: str) -> None:
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    challenge = Auth.parse(rfc7616_challenge(algorithm))
    header = client.authorize(challenge, proxy=False, method="GET", uri="/dir/index.html")
    assert header.value == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        f'nonce="{RFC7616_NONCE}", uri="/dir/index.html", '
        f'response="{RFC7616_RESPONSES[algorithm]}", algorithm={algorithm}, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, nc=00000001, opaque="{RFC7616_OPAQUE}"'
    )
    # RFC 7616 §3.4: exactly these are quoted-strings; algorithm, qop and nc are tokens.
    assert Auth.parse(header.value).quoted == {
        "username", "realm", "nonce", "uri", "response", "cnonce", "opaque",
    }  # fmt: skip


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_response_function(algorithm: str) -> None:
    alg = DigestAlgorithm.from_token(algorithm)
    assert alg is not None
    got = digest_response(
        alg,
        username="Mufasa",
        realm="http-auth@example.org",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nonce=RFC7616_NONCE,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert got == RFC7616_RESPONSES[algorithm]


def test_algorithm_names_are_case_insensitive_and_default_to_md5() -> None:
    assert DigestAlgorithm.from_token(None) is DigestAlgorithm.MD5
    assert DigestAlgorithm.from_token("md5-SESS") is DigestAlgorithm.MD5_SESS
    assert DigestAlgorithm.from_token("sha-256") is DigestAlgorithm.SHA_256
    assert DigestAlgorithm.from_token("SHA-512-256") is None


def test_response_function_refuses_impossible_inputs() -> None:
    with pytest.raises(LocalProtocolError):
        digest_response(
            DigestAlgorithm.MD5_SESS, username="u", realm="r", password="p", method="M", uri="u", nonce="n"
        )
    with pytest.raises(LocalProtocolError):
        digest_response(
            DigestAlgorithm.MD5, username="u", realm="r", password="p", method="M", uri="u", nonce="n",
            qop="auth", cnonce="c",
        )  # fmt: skip


# ----------------------------------------------------------------------------------- helpers

REALM = "enx.example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
USERS = {"trunk1": "s3cret!", "alice": "wonderland"}
URI = "sip:+15550100@gw.example.net"


def lookup(username: str, realm: str) -> str | None:
    return USERS.get(username) if realm == REALM else None


def counter_bytes() -> Callable[[int], bytes]:
    """A deterministic random source: each call returns the next counter value."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def counter_cnonce() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"cn{next(counter):06d}"


def make_server(**kwargs: object) -> DigestServer:
    return DigestServer(REALM, SECRET, random_bytes=counter_bytes(), **kwargs)  # type: ignore[arg-type]


def make_client(username: str = "trunk1", password: str = "s3cret!", **kwargs: object) -> DigestClient:
    return DigestClient(username, password, cnonce_factory=counter_cnonce(), **kwargs)  # type: ignore[arg-type]


def invite(*extra: tuple[str, str], uri: str = URI, cseq: int = 1, body: bytes = b"") -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-auth-1"),
        ("Max-Forwards", "70"),
        ("From", "<sip:b2bua@198.51.100.10>;tag=f1"),
        ("To", f"<{uri}>"),
        ("Call-ID", "auth-test-1@198.51.100.10"),
        ("CSeq", f"{cseq} INVITE"),
        *extra,
    ]
    return Request.build("INVITE", uri, headers, body)


def challenge_response(*challenges: tuple[str, str], status: int = 401) -> Response:
    headers = [
        ("Via", "SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-auth-1"),
        ("From", "<sip:b2bua@198.51.100.10>;tag=f1"),
        ("To", f"<{URI}>;tag=t1"),
        ("Call-ID", "auth-test-1@198.51.100.10"),
        ("CSeq", "1 INVITE"),
        *challenges,
    ]
    return Response.build(status, headers)


def with_credentials(request: Request, headers: list[CredentialsHeader], cseq: int = 2) -> Request:
    """The retry of ``request``: next CSeq, old credentials dropped, new ones added."""
    extra = [(h.name, h.value) for h in headers]
    return invite(*extra, uri=request.uri_text, cseq=cseq, body=request.body)


def verify(
    server: DigestServer, header: CredentialsHeader, now: float, method: str = "INVITE"
) -> Verification:
    return server.verify(Auth.parse(header.value), method, lookup, now)


# --------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_client_server_round_trip(algorithm: str) -> None:
    server = make_server()
    client = make_client()
    first = invite()
    response = challenge_response(("WWW-Authenticate", server.challenge(1000.0, algorithm=algorithm)))
    headers = client.answer(response, first)
    assert [h.name for h in headers] == ["Authorization"]
    retry = with_credentials(first, headers)
    credentials = server.find_credentials(retry.authorization)
    assert credentials is not None
    result = server.verify(credentials, retry.method, lookup, 1000.5, request_uri=retry.uri_text)
    assert result == Verification(Outcome.OK, "", "trunk1")
    assert result.ok
    assert Auth.parse(headers[0].value).param("algorithm") == algorithm


def test_challenge_format() -> None:
    server = make_server()
    value = server.challenge(10.0, algorithm="SHA-256")
    auth = Auth.parse(value)
    assert auth.scheme == "Digest"
    assert auth.param("realm") == REALM
    assert auth.param("algorithm") == "SHA-256"
    assert auth.param("qop") == "auth"
    assert auth.param("stale") is None
    assert {"realm", "nonce", "qop"} <= auth.quoted and "algorithm" not in auth.quoted
    stale = Auth.parse(server.challenge(10.0, stale=True))
    assert stale.param("stale") == "true" and "stale" not in stale.quoted
    assert stale.param("nonce") != auth.param("nonce")


def test_nonces_differ_within_one_millisecond() -> None:
    server = make_server()
    nonces = {Auth.parse(server.challenge(5.0)).param("nonce") for _ in range(10)}
    assert len(nonces) == 10


def test_wrong_password_is_rejected() -> None:
    server = make_server()
    client = make_client(password="not-it")
    response = challenge_response(("WWW-Authenticate", server.challenge(0.0)))
    [header] = client.answer(response, invite())
    result = verify(server, header, 1.0)
    assert result.outcome is Outcome.REJECTED
    assert result.username == "trunk1"
    assert "wrong" in result.reason


def test_unknown_user_is_rejected_after_a_full_computation() -> None:
    server = make_server()
    asked: list[tuple[str, str]] = []

    def recording_lookup(username: str, realm: str) -> str | None:
        asked.append((username, realm))
        return None

    client = make_client(username="mallory")
    [header] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    result = server.verify(Auth.parse(header.value), "INVITE", recording_lookup, 1.0)
    assert result == Verification(Outcome.REJECTED, "unknown username", "mallory")
    assert asked == [("mallory", REALM)]


def test_replayed_nonce_count_is_rejected() -> None:
    server = make_server()
    client = make_client()
    [header] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    assert verify(server, header, 1.0).ok
    again = verify(server, header, 2.0)
    assert again.outcome is Outcome.REPLAYED
    assert again.reason == "nonce count 00000001 already used"


def test_increasing_nonce_count_on_the_same_nonce_is_accepted() -> None:
    server = make_server()
    client = make_client()
    [first] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    [second] = client.credentials_for("BYE", URI)
    [third] = client.credentials_for("INFO", URI)
    sent = [Auth.parse(h.value) for h in (first, second, third)]
    assert [a.param("nc") for a in sent] == ["00000001", "00000002", "00000003"]
    assert len({a.param("nonce") for a in sent}) == 1
    assert len({a.param("cnonce") for a in sent}) == 3
    assert verify(server, first, 1.0).ok
    assert verify(server, second, 2.0, "BYE").ok
    # A count that goes back is a replay even if never seen: nc must increase per nonce.
    assert verify(server, third, 3.0, "INFO").ok
    assert verify(server, second, 4.0, "BYE").outcome is Outcome.REPLAYED


def test_lower_nonce_count_after_a_higher_one_is_a_replay() -> None:
    server = make_server()
    client = make_client()
    [first] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    [second] = client.credentials_for("INVITE", URI)
    assert verify(server, second, 1.0).ok
    assert verify(server, first, 1.1).outcome is Outcome.REPLAYED


def test_expired_nonce_is_stale_and_the_client_retries() -> None:
    server = make_server(nonce_lifetime=30.0)
    client = make_client()
    first = invite()
    headers = client.answer(challenge_response(("WWW-Authenticate", server.challenge(100.0))), first)
    retry = with_credentials(first, headers)
    result = server.verify(retry.authorization[0], "INVITE", lookup, 130.0)
    assert result == Verification(Outcome.STALE, "nonce expired", "trunk1")
    # Stale with a new nonce is not "already answered": the password was right.
    stale_response = challenge_response(("WWW-Authenticate", server.challenge(130.0, stale=True)))
    assert not already_answered(stale_response, retry)
    headers = client.answer(stale_response, retry)
    assert Auth.parse(headers[0].value).param("nc") == "00000001"
    assert server.verify(Auth.parse(headers[0].value), "INVITE", lookup, 131.0).ok


def test_expired_nonce_with_wrong_password_is_rejected_not_stale() -> None:
    # RFC 7616 §3.3: stale=true tells the client its password was right; never say it to a guesser.
    server = make_server(nonce_lifetime=30.0)
    client = make_client(password="guess")
    [header] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    assert verify(server, header, 31.0).outcome is Outcome.REJECTED


def test_nonce_from_the_future_is_stale() -> None:
    server = make_server()
    client = make_client()
    [header] = client.answer(challenge_response(("WWW-Authenticate", server.challenge(1000.0))), invite())
    assert verify(server, header, 900.0).outcome is Outcome.STALE


def test_tampered_nonce_is_rejected() -> None:
    server = make_server()
    nonce = Auth.parse(server.challenge(0.0)).param("nonce")
    assert nonce is not None
    # Move the issue time forward by changing one character of the timestamp part.
    tampered = ("B" if nonce[8] != "B" else "C").join((nonce[:8], nonce[9:]))
    client = make_client()
    for bad in (tampered, nonce[:-1], nonce + "A", "", "not a nonce at all", "=" * 44):
        challenge = Auth.parse(f'Digest realm="{REALM}", nonce="{bad or "x"}", qop="auth"')
        header = client.authorize(challenge, proxy=False, method="INVITE", uri=URI)
        result = verify(server, header, 1.0)
        assert result.outcome is Outcome.REJECTED, bad
        assert result.reason == "nonce was not issued by us or was altered"


def test_nonce_of_another_secret_or_realm_is_rejected() -> None:
    ours = make_server()
    other_secret = DigestServer(REALM, b"another secret, 32 bytes long!!!")
    other_realm = DigestServer("other.example.com", SECRET)
    for foreign in (other_secret, other_realm):
        nonce = Auth.parse(foreign.challenge(0.0)).param("nonce")
        challenge = Auth.parse(f'Digest realm="{REALM}", nonce="{nonce}", qop="auth"')
        header = make_client().authorize(challenge, proxy=False, method="INVITE", uri=URI)
        assert verify(ours, header, 1.0).outcome is Outcome.REJECTED


def test_algorithm_must_match_the_challenge() -> None:
    server = make_server()
    # Downgrade: the nonce was issued for SHA-256, the answer uses MD5.
    sha_nonce = Auth.parse(server.challenge(0.0, algorithm="SHA-256")).param("nonce")
    forged = Auth.parse(f'Digest realm="{REALM}", nonce="{sha_nonce}", qop="auth", algorithm=MD5')
    header = make_client().authorize(forged, proxy=False, method="INVITE", uri=URI)
    result = verify(server, header, 1.0)
    assert result.outcome is Outcome.REJECTED
    assert result.reason == "algorithm MD5 answers a SHA-256 challenge"


def test_credentials_for_another_realm_are_rejected() -> None:
    server = make_server()
    nonce = Auth.parse(server.challenge(0.0)).param("nonce")
    challenge = Auth.parse(f'Digest realm="elsewhere", nonce="{nonce}", qop="auth"')
    header = make_client().authorize(challenge, proxy=False, method="INVITE", uri=URI)
    result = verify(server, header, 1.0)
    assert result.outcome is Outcome.REJECTED and "not ours" in result.reason


def test_find_credentials_prefers_our_realm() -> None:
    server = make_server()
    other = Auth.parse('Digest username="u", realm="other", nonce="n", uri="sip:x", response="0"')
    mine = Auth.parse(f'Digest username="u", realm="{REALM}", nonce="n", uri="sip:x", response="0"')
    basic = Auth.parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert server.find_credentials([basic, other, mine]) is mine
    assert server.find_credentials([basic, other]) is other
    assert server.find_credentials([basic]) is None


def test_request_uri_must_match_when_given() -> None:
    server = make_server()
    [header] = make_client().answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    result = server.verify(Auth.parse(header.value), "INVITE", lookup, 1.0, request_uri="sip:other@x")
    assert result.outcome is Outcome.MALFORMED
    assert result.reason == "Digest uri does not match the Request-URI"


def test_method_is_part_of_the_response() -> None:
    server = make_server()
    [header] = make_client().answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    assert verify(server, header, 1.0, method="BYE").outcome is Outcome.REJECTED


# ------------------------------------------------------------------------- RFC 2069 (no qop)


def test_challenge_without_qop_is_answered_the_rfc2069_way() -> None:
    client = make_client()
    challenge = Auth.parse('Digest realm="legacy", nonce="abc123", opaque="xyz"')
    header = client.authorize(challenge, proxy=False, method="INVITE", uri=URI)
    sent = Auth.parse(header.value)
    assert sent.param("qop") is None and sent.param("nc") is None and sent.param("cnonce") is None
    assert sent.param("opaque") == "xyz"
    expected = digest_response(
        DigestAlgorithm.MD5, username="trunk1", realm="legacy", password="s3cret!",
        method="INVITE", uri=URI, nonce="abc123",
    )  # fmt: skip
    assert sent.param("response") == expected
    assert header.value == (
        f'Digest username="trunk1", realm="legacy", nonce="abc123", uri="{URI}", '
        f'response="{expected}", opaque="xyz"'
    )


def test_sess_algorithm_without_qop_cannot_be_answered() -> None:
    challenge = Auth.parse('Digest realm="r", nonce="n", algorithm=MD5-sess')
    with pytest.raises(ParseError, match="without qop"):
        make_client().authorize(challenge, proxy=False, method="INVITE", uri=URI)


def test_server_rejects_rfc2069_credentials_unless_allowed() -> None:
    strict = make_server()
    nonce = Auth.parse(strict.challenge(0.0)).param("nonce")
    legacy_challenge = Auth.parse(f'Digest realm="{REALM}", nonce="{nonce}"')  # the client ignored qop
    header = make_client().authorize(legacy_challenge, proxy=False, method="INVITE", uri=URI)
    result = verify(strict, header, 1.0)
    assert result.outcome is Outcome.MALFORMED
    assert result.reason == 'qop missing; the challenge asked for qop="auth"'

    lenient = make_server(allow_rfc2069=True)
    nonce = Auth.parse(lenient.challenge(0.0)).param("nonce")
    client = make_client()
    header = client.authorize(
        Auth.parse(f'Digest realm="{REALM}", nonce="{nonce}"'), proxy=False, method="INVITE", uri=URI
    )
    assert verify(lenient, header, 1.0).ok
    # Without an nc nothing tells a second use from a replay: an RFC 2069 nonce serves once.
    assert verify(lenient, header, 2.0).outcome is Outcome.REPLAYED


# ----------------------------------------------------------------------- choosing challenges


def test_sha256_preferred_when_both_offered() -> None:
    server = make_server()
    client = make_client()
    # MD5 listed first: the client still takes the stronger one (RFC 7616 §3.7).
    response = challenge_response(
        ("WWW-Authenticate", server.challenge(0.0, algorithm="MD5")),
        ("WWW-Authenticate", server.challenge(0.0, algorithm="SHA-256")),
    )
    [header] = client.answer(response, invite())
    sent = Auth.parse(header.value)
    assert sent.param("algorithm") == "SHA-256"
    assert len(sent.param("response") or "") == 64
    assert verify(server, header, 1.0).ok


def test_topmost_wins_among_equally_strong_challenges() -> None:
    client = make_client()
    response = challenge_response(
        ("WWW-Authenticate", 'Digest realm="r", nonce="first", algorithm=SHA-256-sess, qop="auth"'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="second", algorithm=SHA-256, qop="auth"'),
    )
    [header] = client.answer(response, invite())
    assert Auth.parse(header.value).param("nonce") == "first"


def test_unsupported_and_garbled_challenges_are_skipped() -> None:
    client = make_client()
    response = challenge_response(
        ("WWW-Authenticate", 'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="n2", qop="auth-conf"'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="n3", qop="auth", broken'),
        ("WWW-Authenticate", 'Basic realm="r"'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="n4", qop="auth"'),
    )
    [header] = client.answer(response, invite())
    assert Auth.parse(header.value).param("nonce") == "n4"
    nothing = challenge_response(("WWW-Authenticate", 'Digest realm="r", algorithm=SHA-512-256, nonce="n"'))
    assert make_client().answer(nothing, invite()) == []


def test_auth_int_is_used_when_it_is_the_only_qop() -> None:
    body = b"v=0\r\n"
    client = make_client()
    challenge = Auth.parse('Digest realm="r", nonce="n", qop="auth-int"')
    header = client.authorize(challenge, proxy=False, method="INVITE", uri=URI, body=body)
    sent = Auth.parse(header.value)
    assert sent.param("qop") == "auth-int"
    expected = digest_response(
        DigestAlgorithm.MD5, username="trunk1", realm="r", password="s3cret!", method="INVITE", uri=URI,
        nonce="n", qop="auth-int", nc="00000001", cnonce=sent.param("cnonce"), body=body,
    )  # fmt: skip
    assert sent.param("response") == expected


def test_realm_restriction() -> None:
    client = make_client(realm="mine")
    response = challenge_response(("WWW-Authenticate", 'Digest realm="theirs", nonce="n", qop="auth"'))
    assert client.answer(response, invite()) == []
    with pytest.raises(LocalProtocolError):
        client.authorize(Auth.parse('Digest realm="theirs", nonce="n"'), proxy=False, method="M", uri=URI)
    response = challenge_response(("WWW-Authenticate", 'Digest realm="mine", nonce="n", qop="auth"'))
    assert [h.realm for h in client.answer(response, invite())] == ["mine"]


# -------------------------------------------------------------------- once per request rule


def test_a_second_challenge_for_the_same_realm_means_wrong_credentials() -> None:
    server = make_server()
    client = make_client(password="wrong")
    first = invite()
    headers = client.answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), first)
    retry = with_credentials(first, headers)
    assert not verify(server, headers[0], 1.0).ok
    second = challenge_response(("WWW-Authenticate", server.challenge(1.0)))
    assert already_answered(second, retry)
    assert client.answer(second, retry) == []
    # ... whereas the first request carried nothing, so its challenge was not answered yet.
    assert not already_answered(second, first)


def test_stale_with_the_nonce_we_sent_still_counts_as_answered() -> None:
    client = make_client()
    first = invite()
    headers = client.answer(challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n1"')), first)
    retry = with_credentials(first, headers)
    same_nonce_stale = challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n1", stale=TRUE'))
    assert already_answered(same_nonce_stale, retry)
    new_nonce_stale = challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n2", stale="true"'))
    assert not already_answered(new_nonce_stale, retry)
    new_nonce_not_stale = challenge_response(
        ("WWW-Authenticate", 'Digest realm="r", nonce="n2", stale=false')
    )
    assert already_answered(new_nonce_not_stale, retry)


def test_challenge_for_another_realm_or_kind_is_not_answered_yet() -> None:
    client = make_client()
    first = invite()
    headers = client.answer(challenge_response(("WWW-Authenticate", 'Digest realm="a", nonce="n1"')), first)
    retry = with_credentials(first, headers)
    assert not already_answered(
        challenge_response(("WWW-Authenticate", 'Digest realm="b", nonce="n2"')), retry
    )
    proxy = challenge_response(("Proxy-Authenticate", 'Digest realm="a", nonce="n2"'), status=407)
    assert not already_answered(proxy, retry)


def test_a_reused_nonce_gets_one_fresh_try() -> None:
    # Pre-emptive credentials (nc 00000002) may meet a server that forgot the nonce and did not say
    # stale: that is no proof of a wrong password, so answer the new nonce once, at nc 00000001.
    client = make_client()
    first = invite()
    client.answer(challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n1", qop="auth"')), first)
    later = invite(*[(h.name, h.value) for h in client.credentials_for("INVITE", URI)], cseq=5)
    assert later.authorization[0].param("nc") == "00000002"
    rechallenge = challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n2", qop="auth"'))
    assert not already_answered(rechallenge, later)
    headers = client.answer(rechallenge, later)
    assert Auth.parse(headers[0].value).param("nc") == "00000001"
    retry = with_credentials(later, headers, cseq=6)
    assert already_answered(challenge_response(("WWW-Authenticate", 'Digest realm="r", nonce="n3"')), retry)


# ---------------------------------------------------------------------------------- 407 proxy


def test_407_is_answered_with_proxy_authorization() -> None:
    server = make_server()
    client = make_client()
    first = invite()
    response = challenge_response(("Proxy-Authenticate", server.challenge(0.0)), status=407)
    [header] = client.answer(response, first)
    assert header.name == "Proxy-Authorization"
    retry = with_credentials(first, [header])
    assert retry.authorization == []
    credentials = server.find_credentials(retry.proxy_authorization)
    assert credentials is not None
    assert server.verify(credentials, "INVITE", lookup, 1.0).ok
    # The proxy rejecting those same credentials again means wrong password.
    again = challenge_response(("Proxy-Authenticate", server.challenge(1.0)), status=407)
    assert already_answered(again, retry)


def test_proxy_then_far_end_challenge_carries_both_credentials() -> None:
    proxy = DigestServer("proxy.example.net", SECRET, random_bytes=counter_bytes())
    far_end = make_server()
    users = {("trunk1", "proxy.example.net"): "s3cret!", ("trunk1", REALM): "s3cret!"}

    def both(username: str, realm: str) -> str | None:
        return users.get((username, realm))

    client = make_client()
    first = invite()
    headers = client.answer(
        challenge_response(("Proxy-Authenticate", proxy.challenge(0.0)), status=407), first
    )
    second = with_credentials(first, headers)
    assert proxy.verify(second.proxy_authorization[0], "INVITE", both, 0.1).ok
    headers = client.answer(challenge_response(("WWW-Authenticate", far_end.challenge(0.2))), second)
    assert sorted(h.name for h in headers) == ["Authorization", "Proxy-Authorization"]
    third = with_credentials(second, headers, cseq=3)
    # The proxy sees its nonce again with the next count; the far end sees its first.
    assert third.proxy_authorization[0].param("nc") == "00000002"
    assert proxy.verify(third.proxy_authorization[0], "INVITE", both, 0.3).ok
    assert far_end.verify(third.authorization[0], "INVITE", both, 0.3).ok


# -------------------------------------------------------------------------- malformed input


def _valid_credentials(server: DigestServer) -> dict[str, str]:
    [header] = make_client().answer(challenge_response(("WWW-Authenticate", server.challenge(0.0))), invite())
    return dict(Auth.parse(header.value).params)


def _build(params: dict[str, str], scheme: str = "Digest") -> Auth:
    return Auth(scheme, tuple(params.items()))


Edit = Callable[[dict[str, str]], tuple[str, list[tuple[str, str]]]]


def drop(name: str) -> Edit:
    return lambda p: ("Digest", [(k, v) for k, v in p.items() if k != name])


def put(name: str, value: str) -> Edit:
    return lambda p: ("Digest", list({**p, name: value}.items()))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: ("Basic", list(p.items())), "scheme 'Basic' is not Digest"),
        (drop("username"), "Digest credentials have no username"),
        (drop("realm"), "Digest credentials have no realm"),
        (drop("nonce"), "Digest credentials have no nonce"),
        (drop("uri"), "Digest credentials have no uri"),
        (drop("response"), "Digest credentials have no response"),
        (drop("nc"), "nc must be 8 hex digits"),
        (drop("cnonce"), "cnonce missing with qop"),
        (put("nc", "1"), "nc must be 8 hex digits"),
        (put("nc", "0000000g"), "nc must be 8 hex digits"),
        (put("nc", "00000000"), "nc counts from 00000001"),
        (put("qop", "auth-int"), "qop 'auth-int' was not offered; use \"auth\""),
        (put("response", "xyz"), "response is not a MD5 digest"),
        (put("response", "0" * 64), "response is not a MD5 digest"),
        (put("algorithm", "SHA-512-256"), "unsupported algorithm 'SHA-512-256'"),
        (put("userhash", "true"), "userhash is not supported; send the username"),
        (lambda p: ("Digest", [*p.items(), ("Nonce", "again")]), "Digest parameter 'Nonce' appears twice"),
    ],
)
def test_malformed_credentials(edit: Edit, reason: str) -> None:
    server = make_server()
    scheme, params = edit(_valid_credentials(server))
    result = server.verify(Auth(scheme, tuple(params)), "INVITE", lookup, 1.0)
    assert result.outcome is Outcome.MALFORMED
    assert result.reason == reason


def test_uppercase_response_hex_and_quoted_tokens_are_tolerated() -> None:
    # Liberal in what we accept: some clients quote qop/nc or write hex in capitals.
    server = make_server()
    params = _valid_credentials(server)
    params["response"] = params["response"].upper()
    text = "Digest " + ", ".join(f'{k}="{v}"' for k, v in params.items())
    assert server.verify(Auth.parse(text), "INVITE", lookup, 1.0).ok


def test_server_configuration_errors_are_ours() -> None:
    with pytest.raises(LocalProtocolError):
        DigestServer(REALM, b"short")
    with pytest.raises(LocalProtocolError):
        DigestServer(REALM, SECRET, nonce_lifetime=0)
    with pytest.raises(LocalProtocolError):
        make_server().challenge(0.0, algorithm="SHA-512-256")


# ------------------------------------------------------------------------ replay table bound


def test_replay_table_is_pruned_as_nonces_expire() -> None:
    server = make_server(nonce_lifetime=10.0)
    for t in range(5):
        [header] = make_client().answer(
            challenge_response(("WWW-Authenticate", server.challenge(t))), invite()
        )
        assert verify(server, header, t + 0.5).ok
    assert server.tracked_nonces == 5
    [header] = make_client().answer(
        challenge_response(("WWW-Authenticate", server.challenge(12.0))), invite()
    )
    assert verify(server, header, 12.5).ok
    assert server.tracked_nonces == 3  # issued at 3, 4 and 12; 0-2 expired by 12.5


def test_full_replay_table_turns_old_nonces_stale_instead_of_replayable() -> None:
    server = make_server(max_tracked_nonces=2)
    clients = [make_client() for _ in range(3)]
    headers = []
    for i, client in enumerate(clients):
        [header] = client.answer(
            challenge_response(("WWW-Authenticate", server.challenge(float(i)))), invite()
        )
        headers.append(header)
    unused_old = make_client().answer(
        challenge_response(("WWW-Authenticate", server.challenge(0.5))), invite()
    )
    for i, header in enumerate(headers):
        assert verify(server, header, 3.0 + i).ok
    assert server.tracked_nonces == 2
    # The evicted nonce's count is forgotten, so its replay must not pass: it is stale now ...
    assert verify(server, headers[0], 10.0).outcome is Outcome.STALE
    # ... and so is a nonce older than every tracked one (tracking it would evict a younger one),
    # while the tracked ones still catch replays.
    assert verify(server, unused_old[0], 10.0).outcome is Outcome.STALE
    assert verify(server, headers[1], 10.0).outcome is Outcome.REPLAYED
    assert verify(server, headers[2], 10.0).outcome is Outcome.REPLAYED
    assert server.tracked_nonces == 2


# ----------------------------------------------------------------------------- property tests

_NAMES = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "algorithm", "opaque",
          "userhash", "stale", "USERNAME", "x")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_authorization_text_never_breaks_verify(text: str) -> None:
    server = make_server()
    try:
        credentials = Auth.parse(text)
    except ParseError:
        return
    result = server.verify(credentials, "INVITE", lookup, 1.0)
    assert isinstance(result, Verification)
    assert result.outcome is not Outcome.OK


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(_NAMES),
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(
                ["auth", "AUTH", "auth-int", "00000001", "ffffffff", "MD5", "SHA-256-sess", "true"]
            ),
            st.text(alphabet="0123456789abcdefABCDEF", min_size=8, max_size=64),
        ),
    ),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
)
def test_arbitrary_digest_parameters_never_break_verify(
    params: dict[str, str], real_nonce: bool, now: float
) -> None:
    server = make_server(allow_rfc2069=True)
    if real_nonce:
        params["nonce"] = Auth.parse(server.challenge(0.0)).param("nonce") or ""
        params.setdefault("realm", REALM)
    result = server.verify(_build(params), "INVITE", lookup, now)
    assert isinstance(result, Verification)
    # The reason may become a 400's reason phrase: peer text in it is repr()'d, never raw CR/LF.
    assert "\r" not in result.reason and "\n" not in result.reason
    assert result.outcome is not Outcome.OK or params.get("username") in USERS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200).filter(lambda s: "\r" not in s and "\n" not in s), max_size=4))
def test_arbitrary_challenges_never_break_the_client(values: list[str]) -> None:
    response = challenge_response(*[("WWW-Authenticate", v) for v in values])
    headers = make_client().answer(response, invite())
    for header in headers:
        assert Auth.parse(header.value).param("username") == "trunk1"
