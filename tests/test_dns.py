"""RFC 3263 §4 server location: pure planning and RFC 2782 ordering, then lookups against a tiny DNS server
on 127.0.0.1 built here from dnspython's message classes. Nothing here touches the internet."""

from __future__ import annotations

import asyncio
import collections
import importlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest

from sip_stack.transport import Address, TransportError
from sip_stack.uri import SipURI, parse_uri


def require(module: str) -> ModuleType:
    """Import what a test needs; skip without it, except under CI, where a missing dependency fails."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed")


require("dns.asyncresolver")

import dns.asyncresolver  # noqa: E402
import dns.message  # noqa: E402
import dns.nameserver  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402

from sip_stack.dns import (  # noqa: E402
    LocationError,
    LocationPlan,
    NaptrRecord,
    ServerLocator,
    SrvRecord,
    naptr_services,
    order_srv,
    plan_location,
)


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


# ============================================================================ planning


@pytest.mark.parametrize(
    "uri,plan",
    [
        ("sip:198.51.100.10", LocationPlan("198.51.100.10", "udp", 5060, True, False, ())),
        ("sips:198.51.100.10:5071", LocationPlan("198.51.100.10", "tls", 5071, True, False, ())),
        ("sip:[2001:db8::1];transport=tcp", LocationPlan("2001:db8::1", "tcp", 5060, True, False, ())),
        ("sip:pbx.example.com:5080", LocationPlan("pbx.example.com", "udp", 5080, False, False, ())),
        (
            "sip:pbx.example.com;transport=tcp",
            LocationPlan(
                "pbx.example.com", "tcp", None, False, False, (("tcp", "_sip._tcp.pbx.example.com"),)
            ),
        ),
        (
            "sip:PBX.example.com;transport=tls",
            LocationPlan(
                "pbx.example.com", "tls", None, False, False, (("tls", "_sips._tcp.pbx.example.com"),)
            ),
        ),
        (
            "sip:u@example.com",
            LocationPlan(
                "example.com",
                "udp",
                None,
                False,
                True,
                (
                    ("udp", "_sip._udp.example.com"),
                    ("tcp", "_sip._tcp.example.com"),
                    ("tls", "_sips._tcp.example.com"),
                ),
            ),
        ),
        (
            "sips:u@example.com",
            LocationPlan("example.com", "tls", None, False, True, (("tls", "_sips._tcp.example.com"),)),
        ),
        (
            "sip:u@example.com;maddr=proxy.example.net",
            LocationPlan(
                "proxy.example.net",
                "udp",
                None,
                False,
                True,
                (
                    ("udp", "_sip._udp.proxy.example.net"),
                    ("tcp", "_sip._tcp.proxy.example.net"),
                    ("tls", "_sips._tcp.proxy.example.net"),
                ),
            ),
        ),
    ],
)
def test_plan_follows_rfc_3263_section_4(uri: str, plan: LocationPlan) -> None:
    assert plan_location(sip(uri)) == plan


def test_plan_keeps_to_the_transports_we_support() -> None:
    plan = plan_location(sip("sip:example.com"), ("tcp", "udp"))
    assert plan.srv == (("tcp", "_sip._tcp.example.com"), ("udp", "_sip._udp.example.com"))
    with pytest.raises(LocationError, match="tls is not enabled"):
        plan_location(sip("sips:example.com"), ("udp", "tcp"))
    with pytest.raises(TransportError, match="transport=sctp"):
        plan_location(sip("sip:example.com;transport=sctp"))


# ============================================================== RFC 2782 order, NAPTR filter


def test_srv_order_respects_priority_and_drops_dot_targets() -> None:
    records = [
        SrvRecord(20, 0, 5060, "backup.example.com"),
        SrvRecord(10, 60, 5060, "a.example.com"),
        SrvRecord(10, 40, 5060, "b.example.com"),
        SrvRecord(30, 0, 5060, "."),
    ]
    for seed in range(50):
        ordered = order_srv(records, random.Random(seed))
        assert [r.priority for r in ordered] == [10, 10, 20]
        assert {r.target for r in ordered[:2]} == {"a.example.com", "b.example.com"}


def test_srv_weights_share_first_place_in_proportion() -> None:
    records = [
        SrvRecord(10, 90, 5060, "heavy"),
        SrvRecord(10, 10, 5060, "light"),
        SrvRecord(10, 0, 5060, "zero"),
    ]
    rng = random.Random(3263)
    first = collections.Counter(order_srv(records, rng)[0].target for _ in range(10_000))
    # RFC 2782: chance of a record ~ weight / (sum + 1); weight 0 gets only the "pick 0" draw.
    assert 8700 < first["heavy"] < 9200
    assert 800 < first["light"] < 1200
    assert 50 < first["zero"] < 160


def test_srv_all_zero_weights_still_orders_every_record() -> None:
    records = [SrvRecord(0, 0, 5060, f"h{i}") for i in range(4)]
    assert sorted(r.target for r in order_srv(records, random.Random(1))) == ["h0", "h1", "h2", "h3"]


def test_naptr_services_filter_and_order() -> None:
    records = [
        NaptrRecord(20, 10, "S", "SIP+D2U", "_sip._udp.example.com."),
        NaptrRecord(10, 20, "s", "SIP+D2T", "_sip._tcp.example.com"),
        NaptrRecord(10, 10, "S", "SIPS+D2T", "_sips._tcp.example.com"),
        NaptrRecord(5, 10, "", "SIP+D2T", "next.example.com"),  # non-terminal: skipped
        NaptrRecord(5, 10, "S", "SIP+D2S", "_sip._sctp.example.com"),  # SCTP: not ours
        NaptrRecord(5, 10, "U", "E2U+sip", "!^.*$!sip:x@example.com!"),  # ENUM, not RFC 3263
    ]
    assert naptr_services(records, secure=False, transports=("udp", "tcp", "tls")) == [
        ("tls", "_sips._tcp.example.com"),
        ("tcp", "_sip._tcp.example.com"),
        ("udp", "_sip._udp.example.com"),
    ]
    assert naptr_services(records, secure=True, transports=("udp", "tcp", "tls")) == [
        ("tls", "_sips._tcp.example.com")
    ]
    assert naptr_services(records, secure=False, transports=("udp",)) == [("udp", "_sip._udp.example.com")]


# ====================================================================== a tiny DNS server

Zone = dict[tuple[str, str], list[str]]


class FakeDns(asyncio.DatagramProtocol):
    """Answers from ``zone`` ({(type, name): [rdata text]}); NXDOMAIN for names it does not hold.
    ``glue`` adds records to the additional section of an answer; ``silent`` never answers."""

    def __init__(self, zone: Zone, glue: dict[tuple[str, str], Zone] | None = None) -> None:
        self.zone = zone
        self.glue = glue or {}
        self.silent = False
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((rdtype, name))
        if self.silent or self.transport is None:
            return
        reply = dns.message.make_response(query)
        records = self.zone.get((rdtype, name))
        if records:
            reply.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype, records))
            for (extra_type, extra_name), values in self.glue.get((rdtype, name), {}).items():
                reply.additional.append(
                    dns.rrset.from_text_list(extra_name + ".", 60, "IN", extra_type, values)
                )
        elif not any(known == name for _, known in self.zone):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(reply.to_wire(), addr)

    def asked(self, rdtype: str) -> list[str]:
        return [name for kind, name in self.queries if kind == rdtype]


ServerFactory = Callable[..., Awaitable[tuple[ServerLocator, FakeDns]]]


@pytest.fixture
async def fake_dns() -> AsyncIterator[ServerFactory]:
    transports: list[asyncio.BaseTransport] = []

    async def start(
        zone: Zone, glue: dict[tuple[str, str], Zone] | None = None, **locator: Any
    ) -> tuple[ServerLocator, FakeDns]:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            lambda: FakeDns(zone, glue), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver("127.0.0.1", transport.get_extra_info("sockname")[1])
        ]
        resolver.timeout = 0.3
        resolver.lifetime = 0.6
        return ServerLocator(resolver, rng=random.Random(7), **locator), server

    yield start
    for transport in transports:
        transport.close()


async def locate(locator: ServerLocator, uri: str) -> list[Address]:
    return await asyncio.wait_for(locator.locate(sip(uri)), 5.0)


# =========================================================================== lookups


async def test_numeric_host_needs_no_dns(fake_dns: ServerFactory) -> None:
    locator, server = await fake_dns({})
    assert await locate(locator, "sips:198.51.100.10") == [Address("tls", "198.51.100.10", 5061)]
    assert await locate(locator, "sip:[2001:db8::1]:5070;transport=tcp") == [
        Address("tcp", "2001:db8::1", 5070)
    ]
    assert server.queries == []


async def test_explicit_port_asks_only_for_addresses(fake_dns: ServerFactory) -> None:
    zone = {
        ("A", "pbx.example.com"): ["198.51.100.10", "198.51.100.11"],
        ("AAAA", "pbx.example.com"): ["2001:db8::10"],
        ("SRV", "_sip._udp.pbx.example.com"): ["0 0 5090 other.example.com."],
    }
    locator, server = await fake_dns(zone)
    found = await locate(locator, "sip:pbx.example.com:5080")
    # An RRset has no order (DNS servers rotate it); IPv4 comes before IPv6 by default.
    assert set(found[:2]) == {Address("udp", "198.51.100.10", 5080), Address("udp", "198.51.100.11", 5080)}
    assert found[2] == Address("udp", "2001:db8::10", 5080)
    assert sorted(kind for kind, _ in server.queries) == ["A", "AAAA"]


async def test_transport_param_asks_srv_for_that_transport(fake_dns: ServerFactory) -> None:
    zone = {
        ("SRV", "_sip._tcp.carrier.example.net"): [
            "20 0 5062 sbc3.carrier.example.net.",
            "10 50 5060 sbc1.carrier.example.net.",
            "10 50 5061 sbc2.carrier.example.net.",
        ],
        ("A", "sbc1.carrier.example.net"): ["203.0.113.1"],
        ("A", "sbc2.carrier.example.net"): ["203.0.113.2"],
        ("A", "sbc3.carrier.example.net"): ["203.0.113.3"],
    }
    locator, server = await fake_dns(zone)
    found = await locate(locator, "sip:+15550100@carrier.example.net;transport=tcp")
    assert set(found[:2]) == {Address("tcp", "203.0.113.1", 5060), Address("tcp", "203.0.113.2", 5061)}
    assert found[2] == Address("tcp", "203.0.113.3", 5062)
    assert server.asked("SRV") == ["_sip._tcp.carrier.example.net"]
    assert server.asked("NAPTR") == []


async def test_without_naptr_srv_is_asked_for_every_transport(fake_dns: ServerFactory) -> None:
    zone = {
        ("SRV", "_sip._udp.example.com"): ["10 0 5060 udp.example.com."],
        ("SRV", "_sips._tcp.example.com"): ["10 0 5061 tls.example.com."],
        ("A", "udp.example.com"): ["192.0.2.1"],
        ("A", "tls.example.com"): ["192.0.2.3"],
    }
    locator, server = await fake_dns(zone)
    assert await locate(locator, "sip:alice@example.com") == [
        Address("udp", "192.0.2.1", 5060),
        Address("tls", "192.0.2.3", 5061),
    ]
    assert server.asked("NAPTR") == ["example.com"]
    assert sorted(server.asked("SRV")) == [
        "_sip._tcp.example.com",
        "_sip._udp.example.com",
        "_sips._tcp.example.com",
    ]


async def test_naptr_picks_the_transport_order(fake_dns: ServerFactory) -> None:
    zone = {
        ("NAPTR", "example.com"): [
            '10 50 "s" "SIP+D2T" "" _sip._tcp.example.com.',
            '20 50 "s" "SIP+D2U" "" _sip._udp.example.com.',
        ],
        ("SRV", "_sip._tcp.example.com"): ["0 0 5060 tcp.example.com."],
        ("SRV", "_sip._udp.example.com"): ["0 0 5060 udp.example.com."],
        ("A", "tcp.example.com"): ["192.0.2.2"],
        ("A", "udp.example.com"): ["192.0.2.1"],
    }
    locator, server = await fake_dns(zone)
    assert await locate(locator, "sip:alice@example.com") == [
        Address("tcp", "192.0.2.2", 5060),
        Address("udp", "192.0.2.1", 5060),
    ]
    assert "_sips._tcp.example.com" not in server.asked("SRV")  # NAPTR did not offer it


async def test_naptr_for_sips_keeps_only_tls(fake_dns: ServerFactory) -> None:
    zone = {
        ("NAPTR", "example.com"): [
            '10 50 "s" "SIP+D2U" "" _sip._udp.example.com.',
            '20 50 "s" "SIPS+D2T" "" _sips._tcp.example.com.',
        ],
        ("SRV", "_sips._tcp.example.com"): ["0 0 5061 tls.example.com."],
        ("A", "tls.example.com"): ["192.0.2.3"],
    }
    locator, server = await fake_dns(zone)
    assert await locate(locator, "sips:alice@example.com") == [Address("tls", "192.0.2.3", 5061)]
    assert server.asked("SRV") == ["_sips._tcp.example.com"]


async def test_naptr_can_be_turned_off(fake_dns: ServerFactory) -> None:
    zone = {("A", "example.com"): ["192.0.2.9"]}
    locator, server = await fake_dns(zone, use_naptr=False)
    assert await locate(locator, "sip:example.com") == [Address("udp", "192.0.2.9", 5060)]
    assert server.asked("NAPTR") == []


async def test_no_srv_falls_back_to_addresses_at_the_default_port(fake_dns: ServerFactory) -> None:
    zone = {("A", "pbx.example.com"): ["192.0.2.10"], ("AAAA", "pbx.example.com"): ["2001:db8::10"]}
    locator, _ = await fake_dns(zone)
    assert await locate(locator, "sip:pbx.example.com") == [
        Address("udp", "192.0.2.10", 5060),
        Address("udp", "2001:db8::10", 5060),
    ]
    assert await locate(locator, "sips:pbx.example.com") == [
        Address("tls", "192.0.2.10", 5061),
        Address("tls", "2001:db8::10", 5061),
    ]
    assert await locate(locator, "sip:pbx.example.com;transport=tcp") == [
        Address("tcp", "192.0.2.10", 5060),
        Address("tcp", "2001:db8::10", 5060),
    ]


async def test_prefer_ipv6_puts_aaaa_first(fake_dns: ServerFactory) -> None:
    zone = {("A", "pbx.example.com"): ["192.0.2.10"], ("AAAA", "pbx.example.com"): ["2001:db8::10"]}
    locator, _ = await fake_dns(zone, prefer_ipv6=True)
    assert await locate(locator, "sip:pbx.example.com:5060") == [
        Address("udp", "2001:db8::10", 5060),
        Address("udp", "192.0.2.10", 5060),
    ]


async def test_addresses_in_the_additional_section_save_a_lookup(fake_dns: ServerFactory) -> None:
    zone = {("SRV", "_sip._tcp.example.com"): ["0 0 5070 sbc.example.com."]}
    glue = {("SRV", "_sip._tcp.example.com"): {("A", "sbc.example.com"): ["192.0.2.70"]}}
    locator, server = await fake_dns(zone, glue)
    assert await locate(locator, "sip:example.com;transport=tcp") == [Address("tcp", "192.0.2.70", 5070)]
    assert server.asked("A") == []


async def test_dot_target_means_no_service_and_no_fallback(fake_dns: ServerFactory) -> None:
    zone = {("SRV", "_sip._tcp.example.com"): ["0 0 0 ."], ("A", "example.com"): ["192.0.2.1"]}
    locator, server = await fake_dns(zone)
    with pytest.raises(LocationError, match="cannot locate"):
        await locate(locator, "sip:example.com;transport=tcp")
    assert server.asked("A") == []


async def test_unknown_domain_is_a_location_error(fake_dns: ServerFactory) -> None:
    locator, _ = await fake_dns({})
    with pytest.raises(LocationError, match="no records"):
        await locate(locator, "sip:nowhere.example.com")


async def test_dns_timeout_is_reported_as_such(fake_dns: ServerFactory) -> None:
    locator, server = await fake_dns({("A", "example.com"): ["192.0.2.1"]})
    server.silent = True
    with pytest.raises(LocationError, match="Timeout"):
        await locate(locator, "sip:example.com:5060")


async def test_cname_is_followed(fake_dns: ServerFactory) -> None:
    zone = {
        ("CNAME", "alias.example.com"): ["real.example.com."],
        ("A", "real.example.com"): ["192.0.2.5"],
    }

    # The fake server answers CNAME only when asked for it; teach it the usual chained answer.
    class Chained(FakeDns):
        def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
            query = dns.message.from_wire(data)
            question = query.question[0]
            if question.name.to_text(omit_final_dot=True) == "alias.example.com" and self.transport:
                self.queries.append((dns.rdatatype.to_text(question.rdtype), "alias.example.com"))
                reply = dns.message.make_response(query)
                reply.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", "CNAME", ["real.example.com."])
                )
                if question.rdtype == dns.rdatatype.A:
                    reply.answer.append(
                        dns.rrset.from_text_list("real.example.com.", 60, "IN", "A", ["192.0.2.5"])
                    )
                self.transport.sendto(reply.to_wire(), addr)
                return
            super().datagram_received(data, addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: Chained(zone), local_addr=("127.0.0.1", 0))
    try:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver("127.0.0.1", transport.get_extra_info("sockname")[1])
        ]
        resolver.lifetime = 1.0
        found = await locate(ServerLocator(resolver), "sip:alias.example.com:5080")
        assert found == [Address("udp", "192.0.2.5", 5080)]
    finally:
        transport.close()
