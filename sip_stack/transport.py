"""The SIP transport layer: UDP, TCP and TLS on asyncio (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1).

The module has two halves, as the rest of ``sip_stack`` does:

* **Decisions, sans-IO.** Value types (:class:`Address`, :class:`Received`, :class:`ListenSpec`), the
  Via ``received``/``rport`` rules on receipt (:func:`received_via`, :func:`set_received`), where a
  response goes (:func:`response_destination`), where a request goes (:func:`request_destination`),
  and two small cores that turn received bytes into actions: :func:`handle_datagram` for one UDP
  datagram and :class:`StreamCore` for one TCP/TLS connection (framing, keep-alive pong, stateless
  400, idle deadline). None of them touch a socket or read the clock; tests drive them directly.
* **A thin asyncio edge.** :class:`TransportLayer` binds the listeners, keeps the table of open
  connections, runs the cores' actions and hands every accepted message to one callback. It uses the
  running loop, so it runs on uvloop when the application installs it.

What this layer does not do, on purpose: it never retransmits (the transaction layer owns timers A/E/G)
and never resolves a URI through DNS (:mod:`sip_stack.dns` turns a URI into the :class:`Address`
candidates to try; :meth:`TransportLayer.send` only resolves a host name in an :class:`Address` to
one IP address, with ``getaddrinfo``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, cast

import msgspec

from .errors import LocalProtocolError, ParseError, SipError
from .framer import InvalidMessage, KeepAlive, StreamFramer
from .headers import split_list
from .limits import MAX_DATAGRAM_SIZE
from .message import Message, Request, Response, parse, stateless_reply
from .uri import AbsoluteURI, SipURI, TelURI, check_host
from .values import Via

__all__ = [
    "DEFAULT_PORTS",
    "Address",
    "CloseConnection",
    "Deliver",
    "ListenSpec",
    "NextHop",
    "Received",
    "SendBack",
    "StreamCore",
    "TransportConfig",
    "TransportConfigError",
    "TransportError",
    "TransportLayer",
    "TransportStats",
    "client_ssl_context",
    "datagram_response_address",
    "handle_datagram",
    "needs_congestion_control",
    "next_hop_uri",
    "received_via",
    "replace_top_via",
    "request_destination",
    "response_destination",
    "sent_by_matches",
    "server_ssl_context",
    "set_received",
    "uri_transport",
    "via_transport",
]

logger = logging.getLogger(__name__)

Transport = Literal["udp", "tcp", "tls"]

#: Default ports (RFC 3261 §19.1.2): 5060 for UDP and TCP, 5061 for TLS.
DEFAULT_PORTS: Final[dict[str, int]] = {"udp": 5060, "tcp": 5060, "tls": 5061}

#: RFC 3261 §18.1.1: a request "larger than 1300 bytes" with an unknown path MTU must go over a
#: congestion-controlled transport. The figure is the RFC's own, not a tuning knob.
UDP_SIZE_THRESHOLD: Final = 1300

#: How long an idle TCP/TLS connection stays open. Longer than the 95-120 s keep-alive period of
#: RFC 5626 §4.4.1, so a client that pings keeps its flow; short enough that port scanners and
#: abandoned phones do not pile up file descriptors.
DEFAULT_IDLE_TIMEOUT: Final = 300.0

#: How long an outgoing TCP connect (and TLS handshake) may take. RFC 3263 §4.3 fails over to the next
#: candidate on a transport error, and Timer B (32 s) bounds the whole INVITE: 5 s leaves room for
#: several candidates inside it, and a carrier's SBC on a working path answers a SYN in milliseconds.
DEFAULT_CONNECT_TIMEOUT: Final = 5.0

#: Bytes queued for a peer that does not read before we give up on it. A few hundred INVITEs (~4 KB
#: each) in flight fit; a peer this far behind is stuck, and buffering more only grows our memory.
DEFAULT_MAX_WRITE_BUFFER: Final = 1_048_576

#: The receive buffer asked for on each UDP socket. Linux's default (212,992 bytes) holds only about
#: a hundred small datagrams, because each one is charged its whole kernel buffer: at 3,000
#: datagrams a second that is 40 ms, and one collector pause or busy burst longer than that drops
#: INVITEs, which then cost a 500 ms retransmission each. 4 MiB holds over a second. The kernel
#: clamps the request to ``net.core.rmem_max``; the effective size is in ``TransportStats``.
UDP_RECEIVE_BUFFER: Final = 4 * 1024 * 1024

#: How long :meth:`TransportLayer.close` waits for connections to close politely (TLS close_notify,
#: TCP FIN after the write buffer drains) before it aborts them.
CLOSE_GRACE: Final = 1.0

#: How long a closing TLS connection waits for the peer's close_notify. asyncio's default is 30 s;
#: a SIP peer that has not answered in 5 s is not going to, and the socket should not linger.
TLS_SHUTDOWN_TIMEOUT: Final = 5.0

# The STUN magic cookie (RFC 5389 §6): RFC 5626 §4.4.2 clients ping UDP flows with STUN binding requests.
_STUN_MAGIC: Final = b"\x21\x12\xa4\x42"
_KEEPALIVE_BYTES: Final = b"\r\n\x00 \t"
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::", "[::]"})
_TRANSPORT_NAMES: Final[dict[str, Transport]] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}


class TransportError(SipError):
    """A message could not be sent: no transport for it, connect failed or timed out, connection lost
    or stuck. For a client transaction this is RFC 3261 §8.1.3.1's transport error: act as if a 503
    had been received, and try the next RFC 3263 candidate."""


class TransportConfigError(ValueError):
    """The transport configuration cannot work (a TLS listener without certificate, a wildcard bind
    without the address to advertise ...): the operator's to fix, reported at start."""


# ================================================================================ values


@functools.lru_cache(maxsize=4096)  # per message on the send path; peers are few, and it is bounded
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host text holds (brackets and an IPv6 zone allowed), or None for a name."""
    text = host[1:-1] if host[:1] == "[" and host[-1:] == "]" else host
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are IPv4 peers.
        return address.ipv4_mapped
    return address


def _host_key(host: str) -> str:
    """A host as compared: an address by value, a name without case."""
    address = _ip(host)
    return host.lower().rstrip(".") if address is None else str(address)


def _uri_host(host: str) -> str:
    """A host as written in a Via sent-by or a URI: IPv6 in brackets (RFC 3261 §25.1 IPv6reference)."""
    address = _ip(host)
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else host


@functools.lru_cache(maxsize=4096)  # every datagram names one; peers are few, and it is bounded
def _udp_address(host: str, port: int) -> Address:
    """The (immutable, so shareable) Address of a UDP peer: one object per peer, not per datagram."""
    return Address("udp", host, port)


def _normalize_peer(host: str) -> str:
    """A socket peer address as we name it: IPv4-mapped IPv6 becomes IPv4, the zone is kept."""
    address = _ip(host)
    if isinstance(address, ipaddress.IPv4Address) and ":" in host:
        return str(address)
    return host


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message goes or came from: a transport, a host (an IP address or a host name, IPv6
    without brackets) and a port. Hashable, so it keys the table of open connections."""

    transport: Transport
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in DEFAULT_PORTS:
            raise LocalProtocolError(f"transport must be udp, tcp or tls, not {self.transport!r}")
        if not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"port out of range: {self.port}")
        host = self.host
        if host[:1] == "[" and host[-1:] == "]":
            object.__setattr__(self, "host", host[1:-1])
        if not self.host:
            raise LocalProtocolError("empty host in an Address")

    @property
    def reliable(self) -> bool:
        """True for TCP and TLS (RFC 3261 §18: retransmissions and connection reuse depend on it)."""
        return self.transport != "udp"

    @property
    def is_ip(self) -> bool:
        """True when the host is an IP address, so the address needs no name resolution."""
        return _ip(self.host) is not None

    def __str__(self) -> str:
        return f"{self.transport}:{_uri_host(self.host)}:{self.port}"


@dataclass(frozen=True, slots=True)
class Received:
    """A message the transport accepted (RFC 3261 §18.2.1 already applied to a request's Via).

    ``source`` is the peer's address as the socket saw it, ``local`` the listener or connection end
    it arrived on, and ``connection_id`` the TCP/TLS connection (None for UDP): pass it back to
    :meth:`TransportLayer.send` to answer on the same connection (RFC 3261 §18.2.2).
    """

    message: Request | Response
    source: Address
    local: Address
    connection_id: int | None


@dataclass(slots=True)
class TransportStats:
    """Counters of the transport layer, exported on /metrics. Monotonic except ``connections_open``
    and ``udp_receive_buffer`` (a size)."""

    datagrams_received: int = 0
    #: Datagrams neither delivered nor answered: oversized, unparseable responses, unanswerable
    #: requests, responses whose Via is not ours.
    datagrams_dropped: int = 0
    oversized_datagrams: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    parse_errors: int = 0
    stateless_replies_sent: int = 0
    #: RFC 3261 §18.1.2: responses whose top Via sent-by is not one we put there.
    foreign_responses_dropped: int = 0
    keepalives_received: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    connections_idle_closed: int = 0
    #: Connections we closed because the peer broke framing (RFC 3261 §18.3).
    connections_framing_lost: int = 0
    #: Connections aborted because the peer did not read what we sent.
    write_buffer_overflows: int = 0
    connect_failures: int = 0
    send_errors: int = 0
    #: The ``on_message`` callback raised: a bug above the transport, counted and logged.
    callback_errors: int = 0
    #: SO_RCVBUF of the last UDP socket bound, as the kernel reports it (once set, Linux reports
    #: double the size granted: the other half is its allowance for bookkeeping).
    udp_receive_buffer: int = 0
    #: Anything else that escaped a protocol callback: a bug here, counted and logged.
    internal_errors: int = 0

    @property
    def connections_open(self) -> int:
        return self.connections_opened - self.connections_closed

    def snapshot(self) -> dict[str, int]:
        """Every counter by name, ``connections_open`` included, for a metrics exporter."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["connections_open"] = self.connections_open
        return values


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listener. ``port=None`` means the transport's default (5060/5061), ``0`` an ephemeral port.

    ``advertised_host``/``advertised_port`` are what goes in Via sent-by and Contact when they differ
    from the bind address (behind NAT, a load balancer or a container port mapping); a wildcard bind
    must name one, because "0.0.0.0" in a Via would route responses nowhere. TLS needs ``certfile``
    (PEM chain) and ``keyfile`` (PEM key; may be omitted when ``certfile`` holds the key too).
    """

    transport: Transport
    host: str
    port: int | None = None
    advertised_host: str | None = None
    advertised_port: int | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def __post_init__(self) -> None:
        where = f"{self.transport} listener on {self.host!r}"
        if self.transport not in DEFAULT_PORTS:
            raise TransportConfigError(f"listener transport must be udp, tcp or tls, not {self.transport!r}")
        for name, port in (("port", self.port), ("advertised_port", self.advertised_port)):
            if port is not None and not 0 <= port <= 65535:
                raise TransportConfigError(f"{where}: {name} out of range: {port}")
        if self.advertised_port == 0:
            raise TransportConfigError(f"{where}: advertised_port 0 is not a port peers can reach")
        if self.host not in _WILDCARD_HOSTS:
            _check_config_host(self.host, where)
        elif self.advertised_host is None:
            raise TransportConfigError(f"{where}: a wildcard bind needs advertised_host for Via and Contact")
        if self.advertised_host is not None:
            _check_config_host(self.advertised_host, f"{where}: advertised_host")
        if self.transport == "tls" and not self.certfile:
            raise TransportConfigError(f"{where}: TLS needs certfile (and keyfile)")
        if self.transport != "tls" and (self.certfile or self.keyfile):
            raise TransportConfigError(f"{where}: certfile/keyfile only apply to TLS listeners")

    @property
    def bind_port(self) -> int:
        return DEFAULT_PORTS[self.transport] if self.port is None else self.port


def _check_config_host(host: str, where: str) -> None:
    try:
        check_host(_uri_host(host), where)
    except ParseError as exc:
        raise TransportConfigError(exc.reason) from None


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Tunables of :class:`TransportLayer`; every default is a named constant above with its reason."""

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_write_buffer: int = DEFAULT_MAX_WRITE_BUFFER
    max_datagram_size: int = MAX_DATAGRAM_SIZE
    #: CA bundle (PEM) that outgoing TLS connections trust; None: the system's store.
    tls_cafile: str | None = None
    #: Verify the peer's certificate and name on outgoing TLS (RFC 5922 §7.3). Off only for labs.
    tls_verify_peer: bool = True
    #: RFC 3261 §18.1.2: drop responses whose top Via sent-by is not one of ours.
    check_response_sent_by: bool = True
    #: SO_RCVBUF asked for on UDP sockets (see UDP_RECEIVE_BUFFER); 0 keeps the system's default.
    udp_receive_buffer: int = UDP_RECEIVE_BUFFER

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise TransportConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_write_buffer <= 0:
            raise TransportConfigError(f"max_write_buffer must be positive, not {self.max_write_buffer}")
        if not 0 < self.max_datagram_size <= MAX_DATAGRAM_SIZE:
            raise TransportConfigError(f"max_datagram_size must be 1-{MAX_DATAGRAM_SIZE}")
        if self.udp_receive_buffer < 0:
            raise TransportConfigError(f"udp_receive_buffer must be >= 0, not {self.udp_receive_buffer}")


# ============================================================ Via on receipt (RFC 3261 §18.2.1)


def received_via(via: Via, source: Address) -> Via:
    """The top Via of a request received from ``source``, with ``received`` and ``rport`` as the
    server transport must set them; ``via`` itself when nothing changes.

    RFC 3261 §18.2.1: when the sent-by host is a domain name or an address other than the packet's
    source, add ``received=<source IP>``. RFC 3581 §4: when ``rport`` has no value, set it to the
    source port, and add ``received`` even if the address is the same. A ``received`` the peer sent
    is replaced by what we saw. Raises :class:`ParseError` (400) when ``rport`` has a junk value.
    """
    rport = via.rport
    wants_rport = rport is True
    sent_by_ip = _ip(via.host)
    source_ip = _ip(source.host)
    add_received = wants_rport or sent_by_ip is None or sent_by_ip != source_ip
    if not add_received:
        return via
    params: list[tuple[str, str | None]] = []
    for name, value in via.params:
        lowered = name.lower()
        if lowered == "received":
            continue
        if lowered == "rport" and wants_rport:
            params.append((name, str(source.port)))
        else:
            params.append((name, value))
    # RFC 3261 §25.1: via-received = IPv4address / IPv6address, no brackets and no zone.
    params.append(("received", str(source_ip) if source_ip is not None else source.host))
    return msgspec.structs.replace(via, params=tuple(params))


def replace_top_via(message: Message, via: Via) -> None:
    """Replace the first Via value of ``message`` by ``via``, leaving every other Via value alone."""
    message.remove_first_value("Via")
    message.add_header("Via", str(via), first=True)


def set_received(request: Request, source: Address) -> bool:
    """Apply :func:`received_via` to the request's top Via in place; True when it changed."""
    via = request.top_via
    new = received_via(via, source)
    if new is via:
        return False
    replace_top_via(request, new)
    return True


def sent_by_matches(via: Via, ours: frozenset[tuple[str, int]]) -> bool:
    """RFC 3261 §18.1.2: does this response's top Via sent-by name one of our (host, port) pairs?

    ``ours`` holds hosts already passed through the same normalisation (see
    :meth:`TransportLayer.local_sent_by`). A Via without a port means its transport's default.
    """
    transport = via.transport.lower()
    port = via.port if via.port is not None else DEFAULT_PORTS.get(transport, 5060)
    return (_host_key(via.host), port) in ours


# ======================================================== where messages go (§18.2.2, §8.1.2)


def via_transport(via: Via) -> Transport:
    """The transport a Via names, if it is one we have; else :class:`TransportError`."""
    transport = _TRANSPORT_NAMES.get(via.transport.lower())
    if transport is not None:
        return transport
    raise TransportError(f"Via transport {via.transport} is not one we support (UDP, TCP, TLS)")


def _valid_host(text: str | None) -> str | None:
    """A ``received`` or ``maddr`` value usable as an address, or None when absent or junk (the Via
    parser keeps parameter values as tokens; an unusable one must not crash the sender)."""
    if not text:
        return None
    try:
        check_host(_uri_host(text.strip("[]")))
    except ParseError:
        return None
    return text.strip("[]")


def _rport_port(via: Via) -> int | None:
    try:
        rport = via.rport
    except ParseError:
        return None
    return rport if isinstance(rport, int) and not isinstance(rport, bool) and rport > 0 else None


def datagram_response_address(via: Via) -> Address:
    """Where a response goes over UDP, from the top Via of the request (RFC 3261 §18.2.2, RFC 3581 §4).

    ``maddr`` first (port from sent-by or 5060); else ``received`` with the ``rport`` port when it
    has a value, the sent-by port otherwise; else the sent-by host and port. A sent-by host name is
    returned as is (RFC 3263 §5); in practice §18.2.1 made the server add ``received`` for it.
    """
    port = via.port or DEFAULT_PORTS["udp"]
    maddr = _valid_host(via.maddr)
    if maddr is not None:
        return _udp_address(maddr, port)
    rport = _rport_port(via)
    received = _valid_host(via.received)
    if received is not None:
        return _udp_address(received, rport or port)
    return _udp_address(via.host, rport or port)


def response_destination(response: Response, connection_alive: bool) -> Address | None:
    """Where to send ``response`` (RFC 3261 §18.2.2, RFC 3581 §4).

    Reliable transport (the top Via says TCP or TLS): ``None`` while the connection the request came
    on is open, meaning "send it there"; else a new connection to ``received`` (or the sent-by host)
    at the sent-by port or the transport's default. (rport is not used: the peer's ephemeral TCP
    port accepts no connections.) Unreliable: :func:`datagram_response_address`. Raises
    :class:`TransportError` when the Via names a transport we do not have.
    """
    via = response.top_via
    transport = via_transport(via)
    if transport == "udp":
        return datagram_response_address(via)
    if connection_alive:
        return None
    host = _valid_host(via.received) or via.host
    return Address(transport, host, via.port or DEFAULT_PORTS[transport])


class NextHop(NamedTuple):
    """Where a request goes before DNS: transport, host (IP or name, no brackets) and port.

    ``port`` is None only for a host name without an explicit port: RFC 3263 §4.2 then asks SRV for
    it (see :mod:`sip_stack.dns`), falling back to :data:`DEFAULT_PORTS`.
    """

    transport: Transport
    host: str
    port: int | None


def next_hop_uri(request: Request) -> SipURI | TelURI | AbsoluteURI:
    """The URI a request is sent towards: the first Route when there is one (loose routing, RFC 3261
    §8.1.2, §16.12), else the Request-URI. A request formed for a strict router (§12.2.1.1) goes to
    its Request-URI: pass ``request.uri`` to :func:`request_destination` instead."""
    routes = request.route
    return routes[0].uri if routes else request.uri


def uri_transport(uri: SipURI) -> Transport:
    """The transport a SIP/SIPS URI asks for (RFC 3261 §19.1.1 ``transport=``, §26.2.2; RFC 3263 §4.1).

    No parameter: UDP for sip:, TLS for sips:. ``transport=tcp`` on a sips: URI is TLS over TCP;
    ``transport=tls`` (RFC 2543's spelling) is TLS. SIPS over UDP cannot exist, and SCTP/WS are not
    transports we have: both raise :class:`TransportError`.
    """
    secure = uri.scheme == "sips"
    param = uri.transport
    if param is None:
        return "tls" if secure else "udp"
    if param == "tls" or (param == "tcp" and secure):
        return "tls"
    if param == "tcp":
        return "tcp"
    if param == "udp":
        if secure:
            raise TransportError(f"{uri}: a sips: URI cannot use transport=udp (RFC 3261 §26.2.2)")
        return "udp"
    raise TransportError(f"{uri}: transport={param} is not supported (udp, tcp, tls)")


def request_destination(target: Request | SipURI | TelURI | AbsoluteURI) -> NextHop:
    """Transport, host and port to send a request to, before any DNS (RFC 3261 §8.1.2, RFC 3263 §4).

    ``target`` is the request (its first Route, else its Request-URI, see :func:`next_hop_uri`) or a
    URI. ``maddr`` overrides the host; sips: means TLS; the port is the URI's, else the default
    (5060/5061) when the host is an IP address, else None (let SRV decide). A tel: or other non-SIP
    URI cannot be routed without a proxy or trunk: :class:`TransportError`.
    """
    uri = next_hop_uri(target) if isinstance(target, Request) else target
    if not isinstance(uri, SipURI):
        raise TransportError(f"cannot route to {uri}: a next hop needs a sip: or sips: URI (RFC 3261 §8.1.2)")
    transport = uri_transport(uri)
    host = uri.host
    if uri.maddr is not None:
        maddr = _valid_host(uri.maddr)
        if maddr is None:
            raise TransportError(f"{uri}: maddr is not a host")
        host = maddr
    host = host[1:-1] if host[:1] == "[" else host
    port = uri.port
    if port is None and _ip(host) is not None:
        port = DEFAULT_PORTS[transport]
    return NextHop(transport, host, port)


def needs_congestion_control(size: int) -> bool:
    """RFC 3261 §18.1.1: a request over 1300 bytes (path MTU unknown) must go over TCP, not UDP.

    For the layer that picks the transport before building the Via; this layer never switches a
    message's transport behind its Via's back.
    """
    return size > UDP_SIZE_THRESHOLD


# ============================================================================= sans-IO cores


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand this accepted message to the layer above."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class SendBack:
    """Send these bytes to ``destination``, or on the same connection when it is None.

    ``kind`` says what it is for the counters: a stateless reply to a bad request (RFC 3261 §8.2.6)
    or a keep-alive pong (RFC 5626 §3.5.1).
    """

    data: bytes
    destination: Address | None
    kind: Literal["stateless", "pong"]


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close this connection: nothing after this point of the stream can be trusted."""

    reason: str


Action = Deliver | SendBack | CloseConnection

_PONG: Final = SendBack(b"\r\n", None, "pong")


def _stateless_answer(error: ParseError, source: Address) -> SendBack | None:
    """The stateless reply to a request that failed to parse (RFC 3261 §8.2.6, §18.2.1-2), or None
    when it cannot be answered (a response, or a request whose Via/From/... could not be read).

    The reply's top Via gets ``received``/``rport`` like any request's would, and over UDP the reply
    goes where that Via says; when the Via itself is unreadable, back to the packet's source, the only
    address we know. On a stream it goes back on the same connection.
    """
    info = error.reply_info
    if not error.is_request or info is None:
        return None
    top_via: Via | None = None
    try:
        first, *rest = split_list(info.vias[0].decode("utf-8", "surrogateescape"), "Via")
        top_via = received_via(Via.parse(first), source)
        new_top = ", ".join([str(top_via), *rest]).encode("utf-8", "surrogateescape")
        info = dataclasses.replace(info, vias=(new_top, *info.vias[1:]))
    except ParseError:
        top_via = None
    data = stateless_reply(ParseError(error.reason, error.status, reply_info=info, is_request=True))
    if data is None:
        return None
    destination: Address | None = None
    if not source.reliable:
        destination = source
        if top_via is not None:
            candidate = datagram_response_address(top_via)
            if candidate.is_ip:
                destination = candidate
    return SendBack(data, destination, "stateless")


def _accept(
    message: Request | Response,
    source: Address,
    stats: TransportStats,
    our_sent_by: frozenset[tuple[str, int]] | None,
) -> Action | None:
    """Apply the receive rules to one parsed message: Via received/rport on a request (RFC 3261
    §18.2.1), the sent-by check on a response (§18.1.2). None: drop it."""
    if isinstance(message, Request):
        try:
            set_received(message, source)
        except ParseError as exc:
            stats.parse_errors += 1
            exc.is_request = True
            exc.reply_info = message.reply_info()
            return _stateless_answer(exc, source)
        return Deliver(message)
    if our_sent_by is not None and not sent_by_matches(message.top_via, our_sent_by):
        stats.foreign_responses_dropped += 1
        logger.debug("dropping %s from %s: top Via %s is not ours", message, source, message.top_via)
        return None
    return Deliver(message)


def handle_datagram(
    data: bytes,
    source: Address,
    stats: TransportStats,
    *,
    max_size: int = MAX_DATAGRAM_SIZE,
    our_sent_by: frozenset[tuple[str, int]] | None = None,
) -> list[Action]:
    """What to do with one UDP datagram (RFC 3261 §18.2.1, §18.1.2): deliver it, answer it with a
    stateless 400-class reply, or drop it (counted in ``stats``). Never raises."""
    stats.datagrams_received += 1
    if len(data) > max_size:
        stats.oversized_datagrams += 1
        stats.datagrams_dropped += 1
        return []
    if not data.strip(_KEEPALIVE_BYTES) or (len(data) >= 20 and data[0] < 2 and data[4:8] == _STUN_MAGIC):
        # NAT keep-alives: CRLFs, NULs, or an RFC 5626 §4.4.2 STUN request we do not answer.
        stats.keepalives_received += 1
        return []
    try:
        message = parse(data)
    except ParseError as exc:
        stats.parse_errors += 1
        answer = _stateless_answer(exc, source)
        if answer is None:
            stats.datagrams_dropped += 1
            logger.debug("dropping unanswerable datagram from %s: %s", source, exc)
            return []
        return [answer]
    action = _accept(message, source, stats, our_sent_by)
    if action is None:
        stats.datagrams_dropped += 1
        return []
    return [action]


class StreamCore:
    """Sans-IO state of one TCP/TLS connection (RFC 3261 §18.3, RFC 5626 §3.5.1).

    Feed it what the socket read with :meth:`receive_data`; it returns the actions to run: deliver a
    message, answer a ping with CRLF, answer a framed-but-invalid message with a stateless reply and
    go on, or close the connection when framing is lost (the framer raised: nothing after that can
    be trusted, so only this connection goes). :attr:`deadline` is when it becomes idle.
    """

    __slots__ = ("_framer", "_our_sent_by", "_stats", "closed", "idle_timeout", "last_activity", "remote")

    def __init__(
        self,
        remote: Address,
        stats: TransportStats,
        *,
        idle_timeout: float,
        now: float,
        our_sent_by: frozenset[tuple[str, int]] | None = None,
        framer: StreamFramer | None = None,
    ) -> None:
        self.remote = remote
        self.idle_timeout = idle_timeout
        self.last_activity = now
        self.closed = False
        self._stats = stats
        self._our_sent_by = our_sent_by
        self._framer = framer if framer is not None else StreamFramer()

    @property
    def deadline(self) -> float:
        """The time at which this connection has been idle for ``idle_timeout``."""
        return self.last_activity + self.idle_timeout

    def is_idle(self, now: float) -> bool:
        return now >= self.deadline

    def data_sent(self, now: float) -> None:
        """Traffic either way keeps the connection alive."""
        self.last_activity = now

    def receive_data(self, data: bytes, now: float) -> list[Action]:
        if self.closed:
            return []
        self.last_activity = now
        stats = self._stats
        try:
            events = self._framer.feed(data)
        except ParseError as exc:
            self.closed = True
            stats.parse_errors += 1
            stats.connections_framing_lost += 1
            return [CloseConnection(f"framing lost: {exc.reason}")]
        actions: list[Action] = []
        for event in events:
            if isinstance(event, KeepAlive):
                stats.keepalives_received += 1
                actions.append(_PONG)
            elif isinstance(event, InvalidMessage):
                stats.parse_errors += 1
                answer = _stateless_answer(event.error, self.remote)
                if answer is not None:
                    actions.append(answer)
                else:
                    logger.debug("dropping invalid message from %s: %s", self.remote, event.error)
            else:
                action = _accept(event, self.remote, stats, self._our_sent_by)
                if action is not None:
                    actions.append(action)
        return actions


# ============================================================================== asyncio edge


def server_ssl_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The TLS context of a listener: TLS 1.2 or later (RFC 8996), our certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TransportConfigError(
            f"cannot load TLS certificate {certfile!r} / key {keyfile!r}: {exc}"
        ) from exc
    return context


def client_ssl_context(
    cafile: str | None = None,
    *,
    verify_peer: bool = True,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> ssl.SSLContext:
    """The TLS context for outgoing connections: the peer's certificate checked against ``cafile``
    (or the system store) and its name (RFC 5922 §7.3); our own certificate presented when given,
    for carriers that ask for mutual TLS."""
    try:
        context = ssl.create_default_context(cafile=cafile)
        if certfile:
            context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise TransportConfigError(
            f"cannot load TLS trust store {cafile!r} or client certificate: {exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _PeerLog(logging.LoggerAdapter[logging.Logger]):
    """Puts the connection id and peer on every line."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['peer'] if self.extra else '?'}] {msg}", kwargs


@dataclass(slots=True)
class _Listener:
    spec: ListenSpec
    bound: Address
    advertised_host: str
    advertised_port: int
    server: asyncio.Server | None = None
    endpoint: _DatagramEndpoint | None = None


class _DatagramEndpoint(asyncio.DatagramProtocol):
    """One UDP socket: runs :func:`handle_datagram` on each datagram and carries out its actions."""

    def __init__(self, layer: TransportLayer) -> None:
        self._layer = layer
        self.transport: asyncio.DatagramTransport | None = None
        self.local = Address("udp", "0.0.0.0", 0)
        self.family = socket.AF_INET
        self.dual_stack = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        name = transport.get_extra_info("sockname")
        self.local = Address("udp", _normalize_peer(name[0]), name[1])
        if sock is not None:
            self.family = sock.family
            if sock.family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    self.dual_stack = not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        layer = self._layer
        try:
            source = _udp_address(_normalize_peer(addr[0]), addr[1])
            actions = handle_datagram(
                data,
                source,
                layer.stats,
                max_size=layer.config.max_datagram_size,
                our_sent_by=layer._our_sent_by,
            )
            for action in actions:
                if isinstance(action, Deliver):
                    layer._deliver(Received(action.message, source, self.local, None))
                elif isinstance(action, SendBack):
                    destination = action.destination or source
                    if self.sendto(action.data, destination.host, destination.port):
                        layer.stats.stateless_replies_sent += 1
        except Exception:
            # A peer's datagram must never take the listener down; this is our bug, so say so loudly.
            layer.stats.internal_errors += 1
            logger.exception("internal error handling a datagram from %s", addr)

    def sendto(self, data: bytes, host: str, port: int) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        # Both asyncio's and uvloop's datagram transports have it; typeshed does not say so.
        buffered: int = getattr(transport, "get_write_buffer_size", lambda: 0)()
        if buffered > self._layer.config.max_write_buffer:
            # The socket is not draining; UDP may lose packets, and the transaction layer retransmits.
            self._layer.stats.send_errors += 1
            logger.warning("UDP send buffer full on %s: dropping %d bytes to %s", self.local, len(data), host)
            return False
        address = _ip(host)
        if self.family == socket.AF_INET6 and isinstance(address, ipaddress.IPv4Address):
            host = f"::ffff:{address}"
        transport.sendto(data, (host, port))
        return True

    def accepts(self, host: str) -> bool:
        """Can this socket send to ``host`` (an IP address)?"""
        address = _ip(host)
        if isinstance(address, ipaddress.IPv6Address):
            return self.family == socket.AF_INET6
        return self.family == socket.AF_INET or self.dual_stack

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and the like (RFC 3261 §18.4); the transaction's timer will notice.
        logger.debug("UDP socket %s: %s", self.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: a :class:`StreamCore` fed by the socket, with one idle timer."""

    def __init__(self, layer: TransportLayer, transport_name: Transport, *, outgoing: bool) -> None:
        self._layer = layer
        self._loop = asyncio.get_running_loop()
        self.id = next(layer._ids)
        self.transport_name: Transport = transport_name
        self.outgoing = outgoing
        self.transport: asyncio.Transport | None = None
        self.core: StreamCore | None = None
        self.remote = Address(transport_name, "0.0.0.0", 0)
        self.local = Address(transport_name, "0.0.0.0", 0)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        #: Every key of the layer's connection table that points here (the peer's address, and the
        #: address we dialled when it differs), so that closing removes them all.
        self.keys: set[Address] = set()
        self.log = _PeerLog(logger, {"peer": f"conn {self.id}"})

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        layer = self._layer
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        name = transport.get_extra_info("sockname")
        self.remote = Address(self.transport_name, _normalize_peer(peer[0]), peer[1])
        self.local = Address(self.transport_name, _normalize_peer(name[0]), name[1])
        self.log = _PeerLog(logger, {"peer": f"conn {self.id} {self.remote}"})
        self.core = StreamCore(
            self.remote,
            layer.stats,
            idle_timeout=layer.config.idle_timeout,
            now=self._loop.time(),
            our_sent_by=layer._our_sent_by,
        )
        layer._register(self)
        self.log.debug("%s connection open", "outgoing" if self.outgoing else "incoming")
        if layer._closing:
            self.close("transport layer is closing")
            return
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is None or not self.is_open:
            return
        layer = self._layer
        try:
            for action in core.receive_data(data, self._loop.time()):
                if isinstance(action, Deliver):
                    layer._deliver(Received(action.message, self.remote, self.local, self.id))
                elif isinstance(action, SendBack):
                    with contextlib.suppress(TransportError):
                        self.write(action.data)
                        if action.kind == "stateless":
                            layer.stats.stateless_replies_sent += 1
                else:
                    self.log.info("closing: %s", action.reason)
                    self.close(action.reason)
                    return
        except Exception:
            layer.stats.internal_errors += 1
            self.log.exception("internal error handling received data; closing the connection")
            self.abort()

    def eof_received(self) -> bool | None:
        # The peer half-closed: SIP has no use for a half-open stream, so let the transport close.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.core is not None:
            self.core.closed = True
        self._layer._unregister(self)
        self.log.debug("connection closed%s", f": {exc}" if exc else "")
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not self.is_open:
            raise TransportError(f"connection {self.id} to {self.remote} is closed")
        if transport.get_write_buffer_size() + len(data) > self._layer.config.max_write_buffer:
            self._layer.stats.write_buffer_overflows += 1
            self.log.warning(
                "peer is not reading: write buffer over %d bytes", self._layer.config.max_write_buffer
            )
            self.abort()
            raise TransportError(f"connection to {self.remote} dropped: the peer is not reading")
        transport.write(data)
        if self.core is not None:
            self.core.data_sent(self._loop.time())

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.log.debug("closing: %s", reason)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm_timer(self) -> None:
        if self.core is not None:
            self._timer = self._loop.call_at(self.core.deadline, self._on_timer)

    def _on_timer(self) -> None:
        # Re-armed lazily: traffic only moves last_activity, so a busy connection costs one timer
        # callback per idle_timeout instead of one re-arm per message.
        self._timer = None
        core = self.core
        if core is None or not self.is_open:
            return
        if core.is_idle(self._loop.time()):
            self._layer.stats.connections_idle_closed += 1
            self.log.debug("idle for %.0f s", core.idle_timeout)
            self.close("idle")
        else:
            self._arm_timer()


class TransportLayer:
    """UDP, TCP and TLS listeners plus outgoing connections, on the running event loop.

    Every accepted message goes to ``on_message`` (a plain callable: the layers above are sans-IO and
    schedule their own work); an exception from it is logged and counted, never propagated into a
    socket callback. :meth:`send` writes a message to an :class:`Address`, reusing an open
    connection to it (RFC 3261 §18.1.1, §18.2.2) or opening one.
    """

    def __init__(self, on_message: Callable[[Received], None], config: TransportConfig | None = None) -> None:
        self.config = config if config is not None else TransportConfig()
        self.stats = TransportStats()
        self._on_message = on_message
        self._ids = itertools.count(1)
        self._listeners: list[_Listener] = []
        self._connections: dict[int, _StreamConnection] = {}
        self._by_remote: dict[Address, _StreamConnection] = {}
        self._pending: dict[Address, asyncio.Future[_StreamConnection]] = {}
        self._our_sent_by: frozenset[tuple[str, int]] | None = None
        self._client_ssl: ssl.SSLContext | None = None
        self._tls_identity: tuple[str, str | None] | None = None
        self._started = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self, listen: Iterable[ListenSpec]) -> None:
        """Bind every listener. Raises :class:`TransportConfigError` for a bad certificate and
        ``OSError`` when a port cannot be bound; either way nothing stays open."""
        if self._started:
            raise LocalProtocolError("TransportLayer.start() called twice")
        self._started = True
        loop = asyncio.get_running_loop()
        try:
            for spec in listen:
                await self._bind(loop, spec)
        except BaseException:
            await self.close()
            raise
        self._update_sent_by()

    def _size_receive_buffer(self, endpoint: _DatagramEndpoint) -> None:
        sock = endpoint.transport.get_extra_info("socket") if endpoint.transport is not None else None
        if sock is None:
            return
        wanted = self.config.udp_receive_buffer
        if wanted:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            except OSError as exc:
                logger.warning("UDP %s: no %d-byte receive buffer: %s", endpoint.local, wanted, exc)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.stats.udp_receive_buffer = granted
        if wanted and granted < wanted:
            logger.info(
                "UDP %s: receive buffer %d bytes, not the %d asked for (raise net.core.rmem_max)",
                endpoint.local,
                granted,
                wanted,
            )

    async def _bind(self, loop: asyncio.AbstractEventLoop, spec: ListenSpec) -> None:
        host = spec.host.strip("[]") or "0.0.0.0"
        if spec.transport == "udp":
            _, endpoint = await loop.create_datagram_endpoint(
                lambda: _DatagramEndpoint(self), local_addr=(host, spec.bind_port)
            )
            listener = _Listener(spec, endpoint.local, "", 0, endpoint=endpoint)
            self._size_receive_buffer(endpoint)
        else:
            context = None
            if spec.transport == "tls":
                assert spec.certfile is not None  # ListenSpec checked it
                context = server_ssl_context(spec.certfile, spec.keyfile)
                if self._tls_identity is None:
                    self._tls_identity = (spec.certfile, spec.keyfile)
            transport_name: Transport = spec.transport
            server = await loop.create_server(
                lambda: _StreamConnection(self, transport_name, outgoing=False),
                host,
                spec.bind_port,
                ssl=context,
                ssl_handshake_timeout=self.config.connect_timeout if context else None,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT if context else None,
            )
            name = server.sockets[0].getsockname()
            listener = _Listener(spec, Address(spec.transport, name[0], name[1]), "", 0, server=server)
        listener.advertised_host = spec.advertised_host or listener.bound.host
        listener.advertised_port = spec.advertised_port or listener.bound.port
        self._listeners.append(listener)
        logger.info(
            "listening on %s (advertised as %s:%d)",
            listener.bound,
            _uri_host(listener.advertised_host),
            listener.advertised_port,
        )

    def _update_sent_by(self) -> None:
        if self.config.check_response_sent_by and self._listeners:
            self._our_sent_by = frozenset(
                (_host_key(lst.advertised_host), lst.advertised_port) for lst in self._listeners
            )

    async def close(self) -> None:
        """Close every listener and connection and wait until they are gone. Idempotent.

        Connections get :data:`CLOSE_GRACE` to flush and close politely (TLS close_notify), then are
        aborted. A connect in progress is cancelled; one that completes meanwhile closes itself.
        """
        self._closing = True
        pending = list(self._pending.values())
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_GRACE)
        endpoints: list[asyncio.Future[None]] = []
        for listener in self._listeners:
            if listener.server is not None:
                listener.server.close()
            endpoint = listener.endpoint
            if endpoint is not None and endpoint.transport is not None:
                endpoint.transport.close()
                endpoints.append(endpoint.closed)
        connections = list(self._connections.values())
        for connection in connections:
            connection.close("transport layer closing")
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=CLOSE_GRACE)
        # Whatever did not close politely in time, or was accepted meanwhile, is cut.
        leftovers = [c for c in (*connections, *self._connections.values()) if not c.closed.done()]
        for connection in leftovers:
            connection.abort()
        if leftovers:
            await asyncio.wait([c.closed for c in leftovers], timeout=CLOSE_GRACE)
        for listener in self._listeners:
            if listener.server is not None:
                await listener.server.wait_closed()
        if endpoints:
            await asyncio.wait(endpoints, timeout=CLOSE_GRACE)

    # ------------------------------------------------------------------ local addresses

    @property
    def listening(self) -> tuple[Address, ...]:
        """The bound addresses, ephemeral ports resolved."""
        return tuple(lst.bound for lst in self._listeners)

    def _listener(self, transport: Transport) -> _Listener:
        for listener in self._listeners:
            if listener.spec.transport == transport:
                return listener
        raise LocalProtocolError(f"no {transport} listener: cannot build a Via or Contact for it")

    def local_sent_by(self, transport: Transport) -> tuple[str, int]:
        """The advertised (host, port) of the first listener of ``transport``."""
        listener = self._listener(transport)
        return listener.advertised_host, listener.advertised_port

    def local_via(self, transport: Transport) -> str:
        """The start of our Via value for ``transport`` (RFC 3261 §18.1.1, §20.42), without branch:
        ``"SIP/2.0/UDP 192.0.2.10:5060"``. Add ``;branch=z9hG4bK...`` (and ``;rport``) to it."""
        host, port = self.local_sent_by(transport)
        return f"SIP/2.0/{transport.upper()} {_uri_host(host)}:{port}"

    def contact_uri(self, transport: Transport, user: str | None = None) -> SipURI:
        """A Contact URI reaching our ``transport`` listener (RFC 3261 §8.1.1.8): ``sip:`` with
        ``transport=tcp`` for TCP, ``sips:`` for TLS (§26.2.2), plain ``sip:`` for UDP."""
        host, port = self.local_sent_by(transport)
        params: tuple[tuple[str, str | None], ...] = (("transport", "tcp"),) if transport == "tcp" else ()
        scheme = "sips" if transport == "tls" else "sip"
        return SipURI(scheme, user, None, _uri_host(host), port, params)

    # ------------------------------------------------------------------ connections

    def connection_alive(self, connection_id: int) -> bool:
        connection = self._connections.get(connection_id)
        return connection is not None and connection.is_open

    def connection_to(self, remote: Address) -> int | None:
        """The id of an open connection to ``remote`` (an IP address), if any."""
        connection = self._by_remote.get(remote)
        return connection.id if connection is not None and connection.is_open else None

    def _register(self, connection: _StreamConnection) -> None:
        self.stats.connections_opened += 1
        self._connections[connection.id] = connection
        self._add_key(connection, connection.remote)

    def _add_key(self, connection: _StreamConnection, key: Address) -> None:
        # The newest connection to a peer wins: it is the one most likely to be alive.
        self._by_remote[key] = connection
        connection.keys.add(key)

    def _unregister(self, connection: _StreamConnection) -> None:
        if self._connections.pop(connection.id, None) is not None:
            self.stats.connections_closed += 1
        for key in connection.keys:
            if self._by_remote.get(key) is connection:
                del self._by_remote[key]
        connection.keys.clear()

    async def _stream_to(self, destination: Address, server_name: str | None) -> _StreamConnection:
        existing = self._by_remote.get(destination)
        if existing is not None and existing.is_open:
            return existing
        pending = self._pending.get(destination)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(destination, server_name))
            self._pending[destination] = pending

            def forget(future: asyncio.Future[_StreamConnection]) -> None:
                if self._pending.get(destination) is future:
                    del self._pending[destination]
                if not future.cancelled():
                    future.exception()  # retrieved here, so a connect nobody awaits logs no warning

            pending.add_done_callback(forget)
        try:
            # shield: one sender giving up must not cancel the connect others wait on.
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if pending.cancelled() and (task is None or not task.cancelling()):
                # close() cancelled the connect, not our caller: to the caller it is a failed send.
                raise TransportError(
                    f"the transport layer closed while connecting to {destination}"
                ) from None
            raise

    async def _connect(self, destination: Address, server_name: str | None) -> _StreamConnection:
        loop = asyncio.get_running_loop()
        context = self._client_context() if destination.transport == "tls" else None
        transport_name: Transport = destination.transport
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _StreamConnection(self, transport_name, outgoing=True),
                    destination.host,
                    destination.port,
                    ssl=context,
                    server_hostname=(server_name or destination.host) if context else None,
                    ssl_handshake_timeout=self.config.connect_timeout if context else None,
                    ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT if context else None,
                )
        except (OSError, TimeoutError) as exc:
            self.stats.connect_failures += 1
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise TransportError(f"cannot connect to {destination}: {reason}") from exc
        if not connection.is_open:
            raise TransportError(f"connection to {destination} closed as soon as it opened")
        # The table keys it by the peer's own report; make the address we dialled find it too.
        self._add_key(connection, destination)
        return connection

    def _client_context(self) -> ssl.SSLContext:
        if self._client_ssl is None:
            certfile, keyfile = self._tls_identity or (None, None)
            self._client_ssl = client_ssl_context(
                self.config.tls_cafile,
                verify_peer=self.config.tls_verify_peer,
                certfile=certfile,
                keyfile=keyfile,
            )
        return self._client_ssl

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        message: Message | bytes,
        destination: Address,
        connection: int | None = None,
        *,
        server_name: str | None = None,
    ) -> int | None:
        """Send ``message`` to ``destination``; returns the connection id used (None for UDP).

        ``connection``: the connection a request came on; when it is still open the message goes
        there whatever ``destination`` says (RFC 3261 §18.2.2). Otherwise TCP/TLS reuse an open
        connection to ``destination`` or open one (§18.1.1). A host name in ``destination`` is
        resolved to one address with getaddrinfo; ``server_name`` is the name a TLS peer's
        certificate must carry (default: ``destination.host``). Raises :class:`TransportError`.
        """
        if self._closing:
            raise TransportError("the transport layer is closed")
        data = message.serialize() if isinstance(message, Message) else message
        if connection is not None:
            open_connection = self._connections.get(connection)
            if open_connection is not None and open_connection.is_open:
                open_connection.write(data)
                self.stats.messages_sent += 1
                return open_connection.id
        resolved = destination if destination.is_ip else await self._resolve(destination)
        if resolved.transport == "udp":
            self._send_datagram(data, resolved)
            self.stats.messages_sent += 1
            return None
        name = server_name or (destination.host if not destination.is_ip else None)
        stream = await self._stream_to(resolved, name)
        stream.write(data)
        self.stats.messages_sent += 1
        return stream.id

    async def send_response(self, response: Response, connection: int | None = None) -> int | None:
        """Send a response where RFC 3261 §18.2.2 says: on ``connection`` (the request's) while it is
        open, else to :func:`response_destination`."""
        alive = connection is not None and self.connection_alive(connection)
        destination = response_destination(response, alive)
        if destination is None:
            assert connection is not None
            return await self.send(response, self._connections[connection].remote, connection)
        return await self.send(response, destination)

    def send_now(self, data: bytes, destination: Address, connection: int | None = None) -> bool:
        """Send without waiting when nothing needs waiting for: over an open connection (the one a
        request came on, or one to ``destination``) or as a datagram to an IP address. Returns False
        when :meth:`send` is needed (a connection to open, a name to resolve). Raises
        :class:`TransportError` like :meth:`send`. This is the per-message path: no task, no await."""
        if self._closing:
            raise TransportError("the transport layer is closed")
        open_connection = self._connections.get(connection) if connection is not None else None
        if open_connection is None and destination.reliable:
            open_connection = self._by_remote.get(destination)
        if open_connection is not None and open_connection.is_open:
            open_connection.write(data)
            self.stats.messages_sent += 1
            return True
        if destination.transport == "udp" and destination.is_ip:
            self._send_datagram(data, destination)
            self.stats.messages_sent += 1
            return True
        return False

    def _send_datagram(self, data: bytes, destination: Address) -> None:
        if len(data) > self.config.max_datagram_size:
            self.stats.send_errors += 1
            raise TransportError(f"{len(data)}-byte message is too large for UDP to {destination}")
        for listener in self._listeners:
            endpoint = listener.endpoint
            if endpoint is not None and endpoint.accepts(destination.host):
                endpoint.sendto(data, destination.host, destination.port)
                return
        self.stats.send_errors += 1
        raise TransportError(f"no UDP listener can send to {destination}")

    async def _resolve(self, destination: Address) -> Address:
        loop = asyncio.get_running_loop()
        kind = socket.SOCK_DGRAM if destination.transport == "udp" else socket.SOCK_STREAM
        try:
            infos = await loop.getaddrinfo(destination.host, destination.port, type=kind)
        except OSError as exc:
            self.stats.send_errors += 1
            raise TransportError(f"cannot resolve {destination.host}: {exc}") from exc
        hosts = [str(info[4][0]) for info in infos]
        if destination.transport == "udp":
            # Only an address family one of our UDP sockets can send to is any use.
            endpoints = [lst.endpoint for lst in self._listeners if lst.endpoint is not None]
            hosts = [h for h in hosts if any(e.accepts(h) for e in endpoints)]
        if not hosts:
            self.stats.send_errors += 1
            raise TransportError(f"no usable address for {destination.host}")
        return Address(destination.transport, hosts[0], destination.port)

    def _deliver(self, received: Received) -> None:
        self.stats.messages_received += 1
        try:
            self._on_message(received)
        except Exception:
            self.stats.callback_errors += 1
            logger.exception("on_message raised for %s from %s", received.message, received.source)
