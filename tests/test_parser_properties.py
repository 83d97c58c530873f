"""Property tests of the message layer: round trips, totality on garbage, linear time on hostile input.

Nothing a peer sends may raise anything but ParseError, neither from ``parse`` nor later from a typed
accessor; and no input may cost more than linear time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip_stack import InvalidMessage, Message, ParseError, Request, Response, StreamFramer, parse

VECTORS = Path(__file__).parent / "vectors"
TORTURE = sorted(
    p.read_bytes()
    for d in ("rfc4475", "rfc5118")
    for p in (VECTORS / d).iterdir()
    if p.suffix in (".dat", "") and p.name.lower() not in ("sha256sums",)
)

TYPED_ACCESSORS = (
    "via", "top_via", "from_", "to", "call_id", "cseq", "max_forwards", "contact", "route",
    "record_route", "content_type", "expires", "authorization", "proxy_authorization",
    "www_authenticate", "proxy_authenticate", "reason", "allow", "supported", "require",
    "proxy_require", "unsupported", "session_expires", "min_se", "rseq", "rack", "retry_after",
)  # fmt: skip


def touch_everything(msg: Message) -> None:
    """Read every typed value, as layers above will; each may raise ParseError only."""
    for name in TYPED_ACCESSORS:
        try:
            value = getattr(msg, name)
            str(value)
            for item in value if isinstance(value, list) else ():
                for attr in ("uri", "tag", "branch", "rport", "ttl", "expires", "q", "cause"):
                    with contextlib.suppress(ParseError):
                        getattr(item, attr, None)
        except ParseError:
            pass
    if isinstance(msg, Request):
        with contextlib.suppress(ParseError):
            str(msg.uri)
    msg.serialize()
    msg.headers  # noqa: B018


def parse_or_error(data: bytes) -> Request | Response | ParseError:
    try:
        msg = parse(data)
    except ParseError as exc:
        assert 400 <= exc.status <= 599
        assert exc.reason
        return exc
    touch_everything(msg)
    return msg


# ------------------------------------------------------------------------------- generated messages

token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
label = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
hostname = st.lists(label, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
host = st.one_of(hostname, ipv4)
port = st.one_of(st.none(), st.integers(1, 65535))
user = st.from_regex(r"\+?[a-zA-Z0-9_.!~*'()-]{1,16}", fullmatch=True)
methods = st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"]), token)
unknown_header = st.tuples(
    st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)


def hostport(h: str, p: int | None) -> str:
    return h if p is None else f"{h}:{p}"


@st.composite
def sip_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    method = draw(methods)
    r_user, r_host, r_port = draw(user), draw(host), draw(port)
    v_host, v_port = draw(host), draw(port)
    branch = "z9hG4bK" + draw(token)
    from_tag, call_id, seq = (
        draw(token),
        draw(token) + "@" + draw(hostname),
        draw(st.integers(0, 2**31 - 1)),
    )
    display = draw(
        st.one_of(
            st.none(),
            st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
        )
    )
    body = draw(st.binary(max_size=200))
    extra = draw(st.lists(unknown_header, max_size=5))
    quoted = "" if display is None else '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '" '
    lines = [
        f"{method} sip:{r_user}@{hostport(r_host, r_port)} SIP/2.0",
        f"Via: SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS']))} {hostport(v_host, v_port)};branch={branch}",
        f"From: {quoted}<sip:{draw(user)}@{draw(host)}>;tag={from_tag}",
        f"To: <sip:{r_user}@{r_host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {seq} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
        *(f"{n}: {v}" for n, v in extra),
        f"Content-Length: {len(body)}",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    expect: dict[str, object] = {
        "method": method, "r_host": r_host, "r_port": r_port, "v_host": v_host, "v_port": v_port,
        "branch": branch, "from_tag": from_tag, "call_id": call_id, "seq": seq, "display": display,
        "body": body, "extra": extra,
    }  # fmt: skip
    return data, expect


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(sip_requests())
def test_generated_requests_parse_to_what_was_written_and_round_trip(
    case: tuple[bytes, dict[str, object]],
) -> None:
    data, expect = case
    msg = parse(data)
    assert isinstance(msg, Request)
    assert msg.serialize() == data
    assert msg.method == expect["method"]
    uri = msg.uri
    assert getattr(uri, "host", None) == expect["r_host"]
    assert getattr(uri, "port", None) == expect["r_port"]
    via = msg.top_via
    assert (via.host, via.port, via.branch) == (
        expect["v_host"],
        expect["v_port"],
        expect["branch"],
    )
    assert msg.from_.tag == expect["from_tag"]
    assert msg.from_.display_name == expect["display"]
    assert msg.call_id == expect["call_id"]
    assert msg.cseq.seq == expect["seq"]
    assert msg.body == expect["body"]
    for name, value in expect["extra"]:  # type: ignore[attr-defined]
        assert value in msg.header_fields(name)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sip_requests(), min_size=1, max_size=4), st.data())
def test_stream_in_random_chunks_gives_the_same_messages(
    cases: list[tuple[bytes, dict[str, object]]], data: st.DataObject
) -> None:
    stream = b"".join(c[0] for c in cases)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = StreamFramer()
    events: list[object] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        events.extend(framer.feed(stream[prev:cut]))
        prev = cut
    assert [e.serialize() for e in events if isinstance(e, Request)] == [c[0] for c in cases]


# ------------------------------------------------------------------------------------ garbage


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    parse_or_error(data)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_after_a_valid_start_line(data: bytes) -> None:
    parse_or_error(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    parse_or_error(b"SIP/2.0 200 OK\r\n" + data)


@st.composite
def mutated_torture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(TORTURE)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(
                st.sampled_from([b",", b";", b'"', b"<", b">", b"\r\n", b" ", b":", b"\x00", b"%", b"["])
            )
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 20))]
        elif op == "truncate":
            del data[i:]
        else:
            j = draw(st.integers(i, min(len(data), i + 200)))
            data[j:j] = data[i:j]
    return bytes(data)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_torture())
def test_mutated_torture_messages_raise_only_parse_error(data: bytes) -> None:
    parse_or_error(data)
    framer = StreamFramer()
    try:
        for event in framer.feed(data):
            if isinstance(event, Request | Response):
                touch_everything(event)
            elif isinstance(event, InvalidMessage):
                assert event.error.status >= 400
    except ParseError:
        pass


# ------------------------------------------------------------------------------ linear time


def best_cpu_time(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def base_request(extra: bytes) -> bytes:
    return (
        b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n"
        b"CSeq: 1 INVITE\r\n" + extra + b"Content-Length: 0\r\n\r\n"
    )


HOSTILE: dict[str, Callable[[int], bytes]] = {
    "long header line": lambda n: base_request(b"Subject: " + b"a" * n + b"\r\n"),
    "commas in a list header": lambda n: base_request(
        b"Contact: " + b"<sip:a@b>," * (n // 10) + b"<sip:a@b>\r\n"
    ),
    "bare commas": lambda n: base_request(b"Route: " + b"," * n + b"\r\n"),
    "nested quotes": lambda n: base_request(b'Contact: "' + b'\\"' * (n // 2) + b'" <sip:a@b>\r\n'),
    "unbalanced quote": lambda n: base_request(b'Contact: "' + b"a," * (n // 2) + b"\r\n"),
    "angle brackets": lambda n: base_request(b"Route: " + b"<" * n + b"\r\n"),
    "semicolons in a URI": lambda n: base_request(b"Contact: <sip:a@b" + b";p" * (n // 2) + b">\r\n"),
    "long host name": lambda n: base_request(b"Contact: <sip:a@" + b"a-" * (n // 2) + b"b>\r\n"),
    "long Via": lambda n: base_request(b"Via: SIP/2.0/UDP " + b"a." * (n // 2) + b"com;branch=z9hG4bK\r\n"),
    "many params in Via": lambda n: base_request(
        b"Via: SIP/2.0/UDP h;" + b"x=1;" * (n // 4) + b"branch=z9hG4bK2\r\n"
    ),
    "digest with many commas": lambda n: base_request(
        b"Authorization: Digest " + b'a="x",' * (n // 6) + b"b=1\r\n"
    ),
    # 200 lines, so the whole section grows (to 60 KB at the large size), not one line
    "many long list lines": lambda n: base_request(
        (b"Route: " + b"<sip:a@b;lr>," * (n // 650) + b",<x>\r\n") * 200
    ),
    "many folded lines": lambda n: base_request(b"Subject: a\r\n" + b" b,\r\n" * (n // 6)),
}


def test_hostile_inputs_cost_linear_time() -> None:
    """A 64 KiB line, 10,000 commas, deep quote nesting: growing the input 8x may grow the work
    about 8x, never 64x (quadratic). CPU time, best of three, ratio against the same input at 1/8
    size, so a slow machine does not matter."""
    small, large = 1_900, 15_200  # both under MAX_LINE_LENGTH, so both are really parsed
    for name, make in HOSTILE.items():
        small_data, large_data = make(small), make(large)
        t_small = best_cpu_time(lambda d=small_data: [parse_or_error(d) for _ in range(5)])  # type: ignore[misc]
        t_large = best_cpu_time(lambda d=large_data: [parse_or_error(d) for _ in range(5)])  # type: ignore[misc]
        assert t_large < max(t_small, 0.002) * 24, f"{name}: {t_small:.4f}s -> {t_large:.4f}s"


def test_hostile_inputs_are_parsed_not_refused_by_size() -> None:
    """The linear-time test means something only if both sizes are really parsed."""
    for name, make in HOSTILE.items():
        result = parse_or_error(make(15_200))
        assert not (isinstance(result, ParseError) and result.status == 513), name


def test_a_64_kib_header_line_is_refused_cleanly() -> None:
    data = base_request(b"Subject: " + b"a" * 65_536 + b"\r\n")
    error = parse_or_error(data)
    assert isinstance(error, ParseError)
    assert error.status == 513
    assert error.reason == f"message of {len(data)} bytes exceeds 65507"
    # on a stream the header section limit cuts the connection
    framer = StreamFramer()
    try:
        framer.feed(data)
    except ParseError as exc:
        assert exc.status == 413
        assert exc.reason == "header section exceeds 65536 bytes"
    else:
        raise AssertionError("the framer accepted a 64 KiB header line")
