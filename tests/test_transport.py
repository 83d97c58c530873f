"""Transport layer (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1): the pure decisions first, then real
sockets on 127.0.0.1 with ephemeral ports. Every socket test is bounded in time and closes what it opens."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import importlib
import ipaddress
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

import pytest

from sip_stack import ParseError, Request, Response, StreamFramer, Via, make_response, parse
from sip_stack.errors import LocalProtocolError
from sip_stack.transport import (
    Address,
    CloseConnection,
    Deliver,
    ListenSpec,
    NextHop,
    Received,
    SendBack,
    StreamCore,
    TransportConfig,
    TransportConfigError,
    TransportError,
    TransportLayer,
    TransportStats,
    datagram_response_address,
    handle_datagram,
    needs_congestion_control,
    received_via,
    request_destination,
    response_destination,
    sent_by_matches,
    set_received,
)
from sip_stack.uri import parse_uri

P = ParamSpec("P")
T = TypeVar("T")

# ============================================================================== helpers


def require(module: str) -> ModuleType:
    """Import what a test needs; skip without it, except under CI, where a missing dependency fails."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed")


def bounded(
    seconds: float = 10.0,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Awaitable[T]]]:
    """Fail a socket test that hangs instead of hanging the run."""

    def wrap(test: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(test)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return await asyncio.wait_for(test(*args, **kwargs), seconds)

        return run

    return wrap


def request(
    *,
    via: str = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-t1",
    method: str = "OPTIONS",
    uri: str = "sip:127.0.0.1",
    call_id: str = "call-1",
    cseq: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@example.com>;tag=f1\r\n"
        "To: <sip:b2bua@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq or f'1 {method}'}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response(via: str, status: int = 200, call_id: str = "call-1") -> bytes:
    return (
        f"SIP/2.0 {status} OK\r\n"
        f"Via: {via}\r\n"
        "From: <sip:probe@example.com>;tag=f1\r\n"
        "To: <sip:b2bua@example.com>;tag=t1\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def parsed_request(data: bytes) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


def parsed_response(data: bytes) -> Response:
    message = parse(data)
    assert isinstance(message, Response)
    return message


UDP_SOURCE = Address("udp", "192.0.2.7", 40000)

# ======================================================== Via received/rport (RFC 3261 §18.2.1)


def test_sent_by_equal_to_source_is_left_alone() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1")
    assert received_via(via, UDP_SOURCE) is via


def test_sent_by_other_address_gets_received() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1")
    new = received_via(via, UDP_SOURCE)
    assert str(new) == "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;received=192.0.2.7"
    assert new.rport is None


def test_sent_by_domain_always_gets_received() -> None:
    # RFC 3261 §18.2.1: "If the host portion of the sent-by parameter contains a domain name ..."
    via = Via.parse("SIP/2.0/UDP pbx.example.com;branch=z9hG4bK1")
    assert received_via(via, UDP_SOURCE).received == "192.0.2.7"


def test_rport_without_value_gets_port_and_received_even_if_equal() -> None:
    # RFC 3581 §4: received is added "even if it is identical to the sent-by address".
    via = Via.parse("SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1")
    new = received_via(via, UDP_SOURCE)
    assert str(new) == "SIP/2.0/UDP 192.0.2.7:5060;rport=40000;branch=z9hG4bK1;received=192.0.2.7"
    assert new.rport == 40000


def test_rport_with_value_is_left_as_sent() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.7:5060;rport=1234;branch=z9hG4bK1")
    assert received_via(via, UDP_SOURCE) is via


def test_received_from_the_peer_is_replaced_by_what_we_saw() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5;received=203.0.113.99;branch=z9hG4bK1")
    new = received_via(via, UDP_SOURCE)
    assert new.params == (("branch", "z9hG4bK1"), ("received", "192.0.2.7"))


def test_ipv6_sent_by_compares_by_value_and_received_has_no_brackets() -> None:
    source = Address("udp", "2001:db8::7", 5060)
    same = Via.parse("SIP/2.0/UDP [2001:DB8:0::7]:5060;branch=z9hG4bK1")
    assert received_via(same, source) is same
    other = Via.parse("SIP/2.0/UDP [2001:db8::9];branch=z9hG4bK1")
    assert received_via(other, source).received == "2001:db8::7"


def test_junk_rport_is_the_peers_fault() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.7;rport=abc;branch=z9hG4bK1")
    with pytest.raises(ParseError) as info:
        received_via(via, UDP_SOURCE)
    assert info.value.status == 400


def test_set_received_replaces_only_the_top_via_value() -> None:
    data = request(
        via="SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKtop, SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1"
    )
    data = data.replace(b"Max-Forwards", b"Via: SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2\r\nMax-Forwards")
    req = parsed_request(data)
    assert set_received(req, UDP_SOURCE)
    vias = parsed_request(req.serialize()).via
    assert [str(v) for v in vias] == [
        "SIP/2.0/UDP 10.0.0.5:5060;rport=40000;branch=z9hG4bKtop;received=192.0.2.7",
        "SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1",
        "SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2",
    ]
    assert req.top_via.received == "192.0.2.7"


def test_set_received_leaves_an_unchanged_request_byte_for_byte() -> None:
    data = request(via="SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1")
    req = parsed_request(data)
    assert not set_received(req, UDP_SOURCE)
    assert req.serialize() == data


# ================================================== where a response goes (RFC 3261 §18.2.2)


@pytest.mark.parametrize(
    "via,expected",
    [
        (
            "SIP/2.0/UDP 10.0.0.5:5070;maddr=239.255.255.1;received=192.0.2.7",
            Address("udp", "239.255.255.1", 5070),
        ),
        ("SIP/2.0/UDP 10.0.0.5;maddr=239.255.255.1", Address("udp", "239.255.255.1", 5060)),
        ("SIP/2.0/UDP 10.0.0.5:5070;received=192.0.2.7;rport=40000", Address("udp", "192.0.2.7", 40000)),
        ("SIP/2.0/UDP 10.0.0.5:5070;received=192.0.2.7", Address("udp", "192.0.2.7", 5070)),
        ("SIP/2.0/UDP 10.0.0.5;received=192.0.2.7", Address("udp", "192.0.2.7", 5060)),
        ("SIP/2.0/UDP 10.0.0.5:5070;rport", Address("udp", "10.0.0.5", 5070)),
        ("SIP/2.0/UDP 10.0.0.5:5070", Address("udp", "10.0.0.5", 5070)),
        ("SIP/2.0/UDP pbx.example.com", Address("udp", "pbx.example.com", 5060)),
        ("SIP/2.0/UDP 10.0.0.5:5070;received=1.2.3", Address("udp", "10.0.0.5", 5070)),  # junk received
        ("SIP/2.0/UDP [2001:db8::5];received=2001:db8::7;rport=7000", Address("udp", "2001:db8::7", 7000)),
    ],
)
def test_unreliable_response_destination(via: str, expected: Address) -> None:
    resp = parsed_response(response(f"{via};branch=z9hG4bK1"))
    assert response_destination(resp, connection_alive=False) == expected
    assert response_destination(resp, connection_alive=True) == expected  # no connection over UDP
    assert datagram_response_address(resp.top_via) == expected


@pytest.mark.parametrize(
    "via,expected",
    [
        ("SIP/2.0/TCP 10.0.0.5:5070;received=192.0.2.7;rport=40000", Address("tcp", "192.0.2.7", 5070)),
        ("SIP/2.0/TCP 10.0.0.5", Address("tcp", "10.0.0.5", 5060)),
        ("SIP/2.0/TLS pbx.example.com;received=192.0.2.7", Address("tls", "192.0.2.7", 5061)),
    ],
)
def test_reliable_response_destination(via: str, expected: Address) -> None:
    resp = parsed_response(response(f"{via};branch=z9hG4bK1"))
    assert response_destination(resp, connection_alive=True) is None  # the request's connection
    assert response_destination(resp, connection_alive=False) == expected


def test_response_over_a_transport_we_lack_is_a_transport_error() -> None:
    resp = parsed_response(response("SIP/2.0/SCTP 10.0.0.5;branch=z9hG4bK1"))
    with pytest.raises(TransportError, match="SCTP"):
        response_destination(resp, connection_alive=False)


# ================================================ where a request goes (RFC 3261 §8.1.2, 3263)


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("sip:alice@pbx.example.com", NextHop("udp", "pbx.example.com", None)),
        ("sip:alice@pbx.example.com:5080", NextHop("udp", "pbx.example.com", 5080)),
        ("sip:+15550100@198.51.100.10", NextHop("udp", "198.51.100.10", 5060)),
        ("sip:198.51.100.10;transport=TCP", NextHop("tcp", "198.51.100.10", 5060)),
        ("sip:pbx.example.com;transport=tcp", NextHop("tcp", "pbx.example.com", None)),
        ("sip:pbx.example.com;transport=tls", NextHop("tls", "pbx.example.com", None)),
        ("sips:198.51.100.10", NextHop("tls", "198.51.100.10", 5061)),
        ("sips:pbx.example.com;transport=tcp", NextHop("tls", "pbx.example.com", None)),
        ("sip:pbx.example.com;maddr=198.51.100.20", NextHop("udp", "198.51.100.20", 5060)),
        ("sip:pbx.example.com:5070;maddr=198.51.100.20", NextHop("udp", "198.51.100.20", 5070)),
        ("sip:[2001:db8::10]:5070", NextHop("udp", "2001:db8::10", 5070)),
        ("sips:[2001:db8::10]", NextHop("tls", "2001:db8::10", 5061)),
    ],
)
def test_request_destination_from_uri(uri: str, expected: NextHop) -> None:
    assert request_destination(parse_uri(uri)) == expected


@pytest.mark.parametrize(
    "uri,reason",
    [
        ("sips:pbx.example.com;transport=udp", "cannot use transport=udp"),
        ("sip:pbx.example.com;transport=sctp", "transport=sctp is not supported"),
        ("tel:+15550100", "needs a sip: or sips: URI"),
    ],
)
def test_request_destination_refuses(uri: str, reason: str) -> None:
    with pytest.raises(TransportError, match=reason):
        request_destination(parse_uri(uri))


def test_request_goes_to_the_first_route_when_there_is_one() -> None:
    # Loose routing (RFC 3261 §8.1.2, §16.12): the Request-URI stays the target, the Route is the hop.
    routed = parsed_request(
        request(
            uri="sip:+15550100@carrier.example.net",
            extra="Route: <sip:198.51.100.1:5070;lr;transport=tcp>, <sip:p2.example.net;lr>\r\n",
        )
    )
    assert request_destination(routed) == NextHop("tcp", "198.51.100.1", 5070)
    direct = parsed_request(request(uri="sips:+15550100@198.51.100.9"))
    assert request_destination(direct) == NextHop("tls", "198.51.100.9", 5061)


def test_congestion_control_threshold() -> None:
    assert not needs_congestion_control(1300)
    assert needs_congestion_control(1301)


# ============================================================================= value types


def test_address_is_a_hashable_value_without_brackets() -> None:
    assert Address("udp", "[2001:db8::1]", 5060) == Address("udp", "2001:db8::1", 5060)
    assert len({Address("tcp", "192.0.2.1", 5060), Address("tcp", "192.0.2.1", 5060)}) == 1
    assert str(Address("tls", "2001:db8::1", 5061)) == "tls:[2001:db8::1]:5061"
    assert Address("tcp", "192.0.2.1", 1).reliable and not Address("udp", "192.0.2.1", 1).reliable
    with pytest.raises(LocalProtocolError):
        Address("sctp", "192.0.2.1", 5060)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Address("udp", "192.0.2.1", 70000)


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"transport": "udp", "host": "0.0.0.0", "port": 5060}, "needs advertised_host"),
        ({"transport": "tls", "host": "127.0.0.1", "port": 5061}, "TLS needs certfile"),
        ({"transport": "tcp", "host": "127.0.0.1", "certfile": "x.pem"}, "only apply to TLS"),
        ({"transport": "udp", "host": "127.0.0.1", "port": 70000}, "out of range"),
        ({"transport": "udp", "host": "127.0.0.1", "advertised_host": "bad host"}, "not a valid host"),
        ({"transport": "ws", "host": "127.0.0.1"}, "udp, tcp or tls"),
    ],
)
def test_listen_spec_refuses_configs_that_cannot_work(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(TransportConfigError, match=reason):
        ListenSpec(**kwargs)


def test_transport_config_checks_its_numbers() -> None:
    with pytest.raises(TransportConfigError, match="idle_timeout"):
        TransportConfig(idle_timeout=0)
    with pytest.raises(TransportConfigError, match="max_datagram_size"):
        TransportConfig(max_datagram_size=70_000)
    with pytest.raises(TransportConfigError, match="udp_receive_buffer"):
        TransportConfig(udp_receive_buffer=-1)


def test_stats_snapshot_names_every_counter() -> None:
    stats = TransportStats(connections_opened=3, connections_closed=1)
    snapshot = stats.snapshot()
    assert snapshot["connections_open"] == 2
    assert snapshot["datagrams_received"] == 0
    assert "stateless_replies_sent" in snapshot


# ======================================================== one datagram, sans-IO (§18.2.1)


def test_datagram_request_is_delivered_with_received() -> None:
    stats = TransportStats()
    (action,) = handle_datagram(
        request(via="SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1"), UDP_SOURCE, stats
    )
    assert isinstance(action, Deliver)
    assert action.message.top_via.received == "192.0.2.7"
    assert action.message.top_via.rport == 40000
    assert stats.datagrams_received == 1 and stats.datagrams_dropped == 0


def test_bad_datagram_request_gets_a_stateless_400_where_its_via_says() -> None:
    stats = TransportStats()
    bad = request(via="SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK1", cseq="1 INVITE")
    (action,) = handle_datagram(bad, UDP_SOURCE, stats)
    assert isinstance(action, SendBack) and action.kind == "stateless"
    assert action.destination == Address("udp", "192.0.2.7", 40000)  # received + rport (RFC 3581 §4)
    reply = parsed_response(action.data)
    assert reply.status == 400
    assert reply.top_via.received == "192.0.2.7" and reply.top_via.rport == 40000
    assert stats.parse_errors == 1 and stats.datagrams_dropped == 0


def test_stateless_reply_without_rport_goes_to_the_sent_by_port() -> None:
    stats = TransportStats()
    bad = request(via="SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1", cseq="1 INVITE")
    (action,) = handle_datagram(bad, UDP_SOURCE, stats)
    assert isinstance(action, SendBack)
    assert action.destination == Address("udp", "192.0.2.7", 5070)


def test_stateless_reply_with_unreadable_via_goes_back_to_the_source() -> None:
    stats = TransportStats()
    bad = request(via="SIP/2.0/UDP 10.0.0.5:99999;branch=z9hG4bK1")
    (action,) = handle_datagram(bad, UDP_SOURCE, stats)
    assert isinstance(action, SendBack)
    assert action.destination == UDP_SOURCE
    assert action.data.startswith(b"SIP/2.0 400 Via sent-by: port out of range")


@pytest.mark.parametrize(
    "data,counter",
    [
        (
            response("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1").replace(b"CSeq: 1", b"CSeq: x"),
            "parse_errors",
        ),
        (b"\x16\x03\x01 not sip at all\r\n\r\n", "parse_errors"),
        (b"\r\n\r\n", "keepalives_received"),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), "keepalives_received"),
        (b"x" * 70_000, "oversized_datagrams"),
    ],
)
def test_datagrams_that_are_dropped(data: bytes, counter: str) -> None:
    stats = TransportStats()
    assert handle_datagram(data, UDP_SOURCE, stats) == []
    assert getattr(stats, counter) == 1


def test_datagram_above_the_configured_size_is_dropped() -> None:
    stats = TransportStats()
    assert handle_datagram(request(), UDP_SOURCE, stats, max_size=100) == []
    assert stats.oversized_datagrams == 1 and stats.datagrams_dropped == 1


def test_response_with_a_via_that_is_not_ours_is_dropped() -> None:
    # RFC 3261 §18.1.2: the sent-by must be what this transport puts in requests.
    ours = frozenset({("127.0.0.1", 5060)})
    stats = TransportStats()
    mine = response("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;received=127.0.0.1")
    assert isinstance(handle_datagram(mine, UDP_SOURCE, stats, our_sent_by=ours)[0], Deliver)
    theirs = response("SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1")
    assert handle_datagram(theirs, UDP_SOURCE, stats, our_sent_by=ours) == []
    assert stats.foreign_responses_dropped == 1 and stats.datagrams_dropped == 1
    assert sent_by_matches(Via.parse("SIP/2.0/UDP 127.0.0.1"), ours)  # default port 5060


# ====================================================== one stream, sans-IO (RFC 3261 §18.3)


def make_core(stats: TransportStats, now: float = 0.0, idle: float = 30.0) -> StreamCore:
    return StreamCore(Address("tcp", "192.0.2.7", 40000), stats, idle_timeout=idle, now=now)


def test_stream_core_messages_keepalive_and_invalid_message() -> None:
    stats = TransportStats()
    core = make_core(stats)
    bad = request(via="SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bK2", cseq="1 INVITE", call_id="bad")
    stream = (
        request(via="SIP/2.0/TCP 192.0.2.7:5060;branch=z9hG4bK1")
        + b"\r\n\r\n"
        + bad
        + request(call_id="next")
    )
    actions = core.receive_data(stream[:50], 1.0) + core.receive_data(stream[50:], 2.0)
    assert [type(a).__name__ for a in actions] == ["Deliver", "SendBack", "SendBack", "Deliver"]
    assert actions[1] == SendBack(b"\r\n", None, "pong")
    stateless = actions[2]
    assert isinstance(stateless, SendBack) and stateless.destination is None  # same connection
    assert parsed_response(stateless.data).status == 400
    last = actions[3]
    assert isinstance(last, Deliver) and last.message.call_id == "next"
    assert stats.keepalives_received == 1 and stats.parse_errors == 1


def test_stream_core_closes_when_framing_is_lost() -> None:
    stats = TransportStats()
    core = make_core(stats)
    actions = core.receive_data(request().replace(b"Content-Length: 0\r\n", b""), 1.0)
    assert len(actions) == 1 and isinstance(actions[0], CloseConnection)
    assert "Content-Length is required" in actions[0].reason
    assert core.receive_data(request(), 2.0) == []  # nothing after the break is trusted
    assert stats.connections_framing_lost == 1


def test_stream_core_cuts_off_a_megabyte_without_a_blank_line() -> None:
    stats = TransportStats()
    core = make_core(stats)
    actions: list[Any] = []
    chunk = b"X-Junk: " + b"a" * 8000 + b"\r\n"
    for _ in range(130):  # ~1 MB
        actions = core.receive_data(chunk, 1.0)
        if actions:
            break
    assert len(actions) == 1 and isinstance(actions[0], CloseConnection)


def test_stream_core_idle_deadline_moves_with_traffic_either_way() -> None:
    core = make_core(TransportStats(), now=100.0, idle=30.0)
    assert core.deadline == 130.0 and not core.is_idle(129.9) and core.is_idle(130.0)
    core.receive_data(b"\r\n\r\n", 120.0)
    assert core.deadline == 150.0
    core.data_sent(140.0)
    assert core.deadline == 170.0


# ======================================================================== real sockets

Inbox = asyncio.Queue[Received]
LayerFactory = Callable[..., Awaitable[tuple[TransportLayer, Inbox]]]


@pytest.fixture
async def make_layer() -> AsyncIterator[LayerFactory]:
    layers: list[TransportLayer] = []

    async def factory(
        *specs: ListenSpec, config: TransportConfig | None = None
    ) -> tuple[TransportLayer, Inbox]:
        inbox: Inbox = asyncio.Queue()
        layer = TransportLayer(inbox.put_nowait, config)
        layers.append(layer)
        await layer.start(specs)
        return layer, inbox

    yield factory
    for layer in layers:
        await layer.close()


def listen(transport: str, **kwargs: Any) -> ListenSpec:
    return ListenSpec(transport, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]


def bound(layer: TransportLayer, transport: str) -> Address:
    return next(a for a in layer.listening if a.transport == transport)


async def next_message(inbox: Inbox, timeout: float = 3.0) -> Received:
    return await asyncio.wait_for(inbox.get(), timeout)


def our_request(layer: TransportLayer, transport: str, call_id: str, branch: str) -> bytes:
    return request(via=f"{layer.local_via(transport)};branch=z9hG4bK{branch};rport", call_id=call_id)  # type: ignore[arg-type]


class DatagramClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.inbox.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_client() -> AsyncIterator[tuple[asyncio.DatagramTransport, DatagramClient]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(DatagramClient, local_addr=("127.0.0.1", 0))
    try:
        yield transport, protocol
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def tcp_client(address: Address) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_sip(reader: asyncio.StreamReader, framer: StreamFramer) -> Request | Response:
    while True:
        data = await asyncio.wait_for(reader.read(65536), 3.0)
        assert data, "connection closed before a message arrived"
        for event in framer.feed(data):
            if isinstance(event, Request | Response):
                return event


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 3.0) -> bool:
    """True once the server closed the connection (EOF or reset)."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except ConnectionError:
        pass
    return True


@bounded()
async def test_udp_request_and_response_between_two_layers(make_layer: LayerFactory) -> None:
    server, server_inbox = await make_layer(listen("udp"))
    client, client_inbox = await make_layer(listen("udp"))
    assert await client.send(our_request(client, "udp", "udp-1", "u1"), bound(server, "udp")) is None
    got = await next_message(server_inbox)
    assert isinstance(got.message, Request) and got.connection_id is None
    assert got.source == bound(client, "udp") and got.local == bound(server, "udp")
    assert got.message.top_via.rport == bound(client, "udp").port  # RFC 3581 §4
    await server.send_response(make_response(got.message, 200, to_tag="s1"))
    answer = await next_message(client_inbox)
    assert isinstance(answer.message, Response) and answer.message.status == 200
    assert server.stats.messages_received == 1 and client.stats.messages_received == 1


@bounded()
async def test_udp_malformed_request_gets_400_and_next_one_is_handled(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("udp"))
    async with udp_client() as (sock, client):
        port = sock.get_extra_info("sockname")[1]
        via = f"SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK1"
        sock.sendto(request(via=via, cseq="1 INVITE"), ("127.0.0.1", bound(server, "udp").port))
        reply = parsed_response(await asyncio.wait_for(client.inbox.get(), 3.0))
        assert reply.status == 400 and reply.top_via.rport == port
        sock.sendto(request(via=via, call_id="good"), ("127.0.0.1", bound(server, "udp").port))
        got = await next_message(inbox)
        assert got.message.call_id == "good"
    assert server.stats.parse_errors == 1 and server.stats.stateless_replies_sent == 1


@bounded()
async def test_on_message_raising_is_counted_and_the_listener_goes_on(make_layer: LayerFactory) -> None:
    seen: list[str] = []

    def flaky(received: Received) -> None:
        seen.append(received.message.call_id)
        if len(seen) == 1:
            raise RuntimeError("bug above the transport")

    layer = TransportLayer(flaky)
    await layer.start([listen("udp")])
    try:
        async with udp_client() as (sock, _):
            for call_id in ("first", "second"):
                sock.sendto(request(call_id=call_id), ("127.0.0.1", bound(layer, "udp").port))
            while len(seen) < 2:
                await asyncio.sleep(0.01)
        assert seen == ["first", "second"] and layer.stats.callback_errors == 1
    finally:
        await layer.close()


@bounded()
async def test_tcp_several_messages_in_one_write_and_one_split_over_writes(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("tcp"))
    async with tcp_client(bound(server, "tcp")) as (_, writer):
        writer.write(request(call_id="a") + request(call_id="b") + request(call_id="c"))
        await writer.drain()
        assert [(await next_message(inbox)).message.call_id for _ in range(3)] == ["a", "b", "c"]
        split = request(call_id="split", body=b"v=0\r\n")
        for i in range(0, len(split), 17):
            writer.write(split[i : i + 17])
            await writer.drain()
            await asyncio.sleep(0.001)
        got = await next_message(inbox)
        assert got.message.call_id == "split" and got.message.body == b"v=0\r\n"
        assert got.connection_id is not None and got.source.transport == "tcp"
    assert server.stats.connections_opened == 1


@bounded()
async def test_tcp_keepalive_ping_is_answered_with_pong(make_layer: LayerFactory) -> None:
    server, _ = await make_layer(listen("tcp"))
    async with tcp_client(bound(server, "tcp")) as (reader, writer):
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), 3.0) == b"\r\n"  # RFC 5626 §3.5.1
    assert server.stats.keepalives_received == 1


@bounded()
async def test_tcp_connection_is_reused_and_the_response_comes_back_on_it(make_layer: LayerFactory) -> None:
    server, server_inbox = await make_layer(listen("tcp"))
    client, client_inbox = await make_layer(listen("tcp"))
    target = bound(server, "tcp")
    first = await client.send(our_request(client, "tcp", "r1", "r1"), target)
    second = await client.send(our_request(client, "tcp", "r2", "r2"), target)
    assert first is not None and first == second  # RFC 3261 §18.1.1
    assert client.connection_to(target) == first
    for call_id in ("r1", "r2"):
        got = await next_message(server_inbox)
        assert got.message.call_id == call_id
        assert isinstance(got.message, Request)
        used = await server.send_response(make_response(got.message, 200, to_tag="t"), got.connection_id)
        assert used == got.connection_id  # §18.2.2: the request's own connection
        answer = await next_message(client_inbox)
        assert isinstance(answer.message, Response) and answer.connection_id == first
    assert server.stats.connections_opened == 1 and client.stats.connections_opened == 1


@bounded()
async def test_concurrent_sends_to_one_peer_open_one_connection(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("tcp"))
    client, _ = await make_layer(listen("tcp"))
    target = bound(server, "tcp")
    ids = await asyncio.gather(*(client.send(request(call_id=f"c{i}"), target) for i in range(5)))
    assert len(set(ids)) == 1
    assert sorted([(await next_message(inbox)).message.call_id for _ in range(5)]) == [
        f"c{i}" for i in range(5)
    ]
    assert server.stats.connections_opened == 1


@bounded()
async def test_idle_connection_is_closed(make_layer: LayerFactory) -> None:
    server, _ = await make_layer(listen("tcp"), config=TransportConfig(idle_timeout=0.2))
    async with tcp_client(bound(server, "tcp")) as (reader, _):
        assert await closed_by_peer(reader)
    assert server.stats.connections_idle_closed == 1
    while server.stats.connections_open:
        await asyncio.sleep(0.01)


@bounded()
async def test_bad_stream_closes_only_its_connection(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("tcp"))
    address = bound(server, "tcp")
    async with (
        tcp_client(address) as (bad_reader, bad_writer),
        tcp_client(address) as (good_reader, good_writer),
    ):
        bad_writer.write(request().replace(b"Content-Length: 0\r\n", b""))
        assert await closed_by_peer(bad_reader)
        good_writer.write(request(call_id="still-here"))
        got = await next_message(inbox)
        assert got.message.call_id == "still-here"
        good_writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(good_reader.readexactly(2), 3.0) == b"\r\n"
    assert server.stats.connections_framing_lost == 1


@bounded()
async def test_invalid_message_on_a_stream_gets_400_and_the_stream_goes_on(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("tcp"))
    async with tcp_client(bound(server, "tcp")) as (reader, writer):
        writer.write(request(cseq="1 INVITE", call_id="bad") + request(call_id="after"))
        reply = await read_sip(reader, StreamFramer())
        assert isinstance(reply, Response) and reply.status == 400 and reply.call_id == "bad"
        assert (await next_message(inbox)).message.call_id == "after"
    assert server.stats.stateless_replies_sent == 1


@bounded()
async def test_megabyte_without_blank_line_is_cut_off(make_layer: LayerFactory) -> None:
    server, _ = await make_layer(listen("tcp"))
    async with tcp_client(bound(server, "tcp")) as (reader, writer):
        writer.write(b"INVITE sip:x SIP/2.0\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(128):
                writer.write(b"X-Junk: " + b"a" * 8000 + b"\r\n")
                await writer.drain()
        assert await closed_by_peer(reader)
    assert server.stats.connections_framing_lost == 1


@bounded()
async def test_peer_that_does_not_read_is_dropped(make_layer: LayerFactory) -> None:
    server, inbox = await make_layer(listen("tcp"), config=TransportConfig(max_write_buffer=256 * 1024))
    async with tcp_client(bound(server, "tcp")) as (_, writer):
        writer.write(request(call_id="slow"))
        got = await next_message(inbox)
        chunk = b"x" * 65536
        with pytest.raises(TransportError, match="not reading"):
            for _ in range(10_000):  # the kernel's socket buffers absorb a few MB first
                await server.send(chunk, got.source, got.connection_id)
    assert server.stats.write_buffer_overflows == 1
    assert got.connection_id is not None and not server.connection_alive(got.connection_id)


@bounded()
async def test_host_name_in_an_address_is_resolved(make_layer: LayerFactory) -> None:
    # "localhost" comes from the hosts file: no DNS server is asked. Over UDP only an address our
    # IPv4 socket can reach is picked, so a hosts file listing ::1 first changes nothing.
    server, inbox = await make_layer(listen("udp"))
    client, _ = await make_layer(listen("udp"))
    await client.send(request(call_id="named"), Address("udp", "localhost", bound(server, "udp").port))
    got = await next_message(inbox)
    assert got.message.call_id == "named" and got.source.host == "127.0.0.1"


@bounded()
async def test_connect_refused_is_a_transport_error(make_layer: LayerFactory) -> None:
    client, _ = await make_layer(listen("tcp"))
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(TransportError, match="cannot connect"):
            await client.send(request(), Address("tcp", "127.0.0.1", closed_port))
    assert client.stats.connect_failures == 1


def self_signed_cert(directory: Path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 and localhost, made with the cryptography package."""
    x509 = require("cryptography.x509")
    hashes = require("cryptography.hazmat.primitives.hashes")
    serialization = require("cryptography.hazmat.primitives.serialization")
    ec = require("cryptography.hazmat.primitives.asymmetric.ec")
    oid = require("cryptography.x509.oid")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, "enx-voice test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(certfile), str(keyfile)


@bounded()
async def test_tls_round_trip_with_a_self_signed_certificate(
    make_layer: LayerFactory, tmp_path: Path
) -> None:
    certfile, keyfile = self_signed_cert(tmp_path)
    server, server_inbox = await make_layer(listen("tls", certfile=certfile, keyfile=keyfile))
    client, client_inbox = await make_layer(
        listen("tls", certfile=certfile, keyfile=keyfile), config=TransportConfig(tls_cafile=certfile)
    )
    assert client.contact_uri("tls").scheme == "sips"
    await client.send(our_request(client, "tls", "tls-1", "s1"), bound(server, "tls"))
    got = await next_message(server_inbox)
    assert isinstance(got.message, Request) and got.source.transport == "tls"
    await server.send_response(make_response(got.message, 200, to_tag="t"), got.connection_id)
    answer = await next_message(client_inbox)
    assert isinstance(answer.message, Response) and answer.message.status == 200


@bounded()
async def test_tls_peer_with_an_untrusted_certificate_is_refused(
    make_layer: LayerFactory, tmp_path: Path
) -> None:
    certfile, keyfile = self_signed_cert(tmp_path)
    server, _ = await make_layer(listen("tls", certfile=certfile, keyfile=keyfile))
    client, _ = await make_layer(listen("udp"))  # trusts only the system store
    with pytest.raises(TransportError, match="cannot connect"):
        await client.send(request(), bound(server, "tls"))


@bounded()
async def test_tls_handshake_that_never_completes_times_out(make_layer: LayerFactory) -> None:
    accepted: list[asyncio.StreamWriter] = []
    # Accepts, never speaks TLS.
    silent = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    try:
        client, _ = await make_layer(listen("udp"), config=TransportConfig(connect_timeout=0.3))
        port = silent.sockets[0].getsockname()[1]
        with pytest.raises(TransportError, match=r"timed out|cannot connect"):
            await client.send(request(), Address("tls", "127.0.0.1", port))
    finally:
        silent.close()
        for writer in accepted:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await silent.wait_closed()


@bounded()
async def test_close_during_a_connect_fails_the_send_cleanly() -> None:
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    try:
        client = TransportLayer(lambda received: None)
        await client.start([listen("udp")])
        port = silent.sockets[0].getsockname()[1]
        sending = asyncio.create_task(client.send(request(), Address("tls", "127.0.0.1", port)))
        while not accepted:
            await asyncio.sleep(0.01)
        await client.close()
        with pytest.raises(TransportError, match="closed while connecting"):
            await sending
    finally:
        silent.close()
        for writer in accepted:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await silent.wait_closed()


@bounded()
async def test_advertised_address_goes_in_via_and_contact(make_layer: LayerFactory) -> None:
    layer, _ = await make_layer(
        ListenSpec("udp", "127.0.0.1", 0, advertised_host="203.0.113.10", advertised_port=5060),
        listen("tcp"),
    )
    assert layer.local_via("udp") == "SIP/2.0/UDP 203.0.113.10:5060"
    assert str(layer.contact_uri("udp", user="b2bua")) == "sip:b2bua@203.0.113.10:5060"
    tcp = bound(layer, "tcp")
    assert layer.local_via("tcp") == f"SIP/2.0/TCP 127.0.0.1:{tcp.port}"
    assert str(layer.contact_uri("tcp")) == f"sip:127.0.0.1:{tcp.port};transport=tcp"
    with pytest.raises(LocalProtocolError, match="no tls listener"):
        layer.local_via("tls")


def open_fds() -> dict[str, str]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return fds


async def exercise_and_close(tmp_path: Path) -> None:
    """Listeners of every kind, connections both ways, then close(): nothing may be left open."""
    certfile, keyfile = self_signed_cert(tmp_path)
    # libuv keeps one spare descriptor per loop from its first listen() on (its EMFILE trick);
    # let the loop make it before counting, so that only our sockets are compared.
    warm_up = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    warm_up.close()
    await warm_up.wait_closed()
    before = open_fds()
    tasks = asyncio.all_tasks()
    inbox: Inbox = asyncio.Queue()
    specs = [listen("udp"), listen("tcp"), listen("tls", certfile=certfile, keyfile=keyfile)]
    server = TransportLayer(inbox.put_nowait)
    client = TransportLayer(inbox.put_nowait, TransportConfig(tls_cafile=certfile))
    await server.start(specs)
    await client.start(specs)
    for transport in ("udp", "tcp", "tls"):
        await client.send(
            our_request(client, transport, f"x-{transport}", transport), bound(server, transport)
        )
        got = await next_message(inbox)
        assert got.message.call_id == f"x-{transport}"
    assert server.stats.connections_open == 2 and client.stats.connections_open == 2
    await server.close()
    await client.close()
    await server.close()  # idempotent
    assert open_fds() == before
    assert asyncio.all_tasks() == tasks
    assert server.stats.connections_open == 0 and client.stats.connections_open == 0
    with pytest.raises(TransportError, match="closed"):
        await client.send(request(), bound(server, "udp"))


@bounded()
async def test_close_leaves_no_sockets_or_tasks(tmp_path: Path) -> None:
    await exercise_and_close(tmp_path)


def test_the_same_on_uvloop(tmp_path: Path) -> None:
    uvloop = require("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(exercise_and_close(tmp_path), 10.0))


@bounded()
async def test_start_failure_leaves_nothing_open(make_layer: LayerFactory) -> None:
    taken, _ = await make_layer(listen("tcp"))
    before = open_fds()
    layer = TransportLayer(lambda received: None)
    with pytest.raises(OSError):
        await layer.start([listen("udp"), ListenSpec("tcp", "127.0.0.1", bound(taken, "tcp").port)])
    assert open_fds() == before


async def test_udp_socket_gets_the_receive_buffer_asked_for_up_to_the_kernel_cap(
    make_layer: LayerFactory,
) -> None:
    """A burst of INVITEs must queue in the kernel rather than be dropped: the socket asks for a
    large buffer, which Linux clamps to net.core.rmem_max (and reports doubled)."""
    cap = int(Path("/proc/sys/net/core/rmem_max").read_text())
    default, _ = await make_layer(listen("udp"), config=TransportConfig(udp_receive_buffer=0))
    asked = 2 * 1024 * 1024
    sized, _ = await make_layer(listen("udp"), config=TransportConfig(udp_receive_buffer=asked))
    system_default = int(Path("/proc/sys/net/core/rmem_default").read_text())
    assert default.stats.udp_receive_buffer == system_default  # untouched: not doubled
    assert sized.stats.udp_receive_buffer == 2 * min(asked, cap)
