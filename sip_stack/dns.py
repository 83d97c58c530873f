"""Locating SIP servers: RFC 3263 §4 (NAPTR, SRV, A/AAAA) with RFC 2782 SRV selection.

Given the URI a request goes to (the first Route or the Request-URI, see
:func:`sip_stack.transport.next_hop_uri`), :meth:`ServerLocator.locate` returns the
:class:`~sip_stack.transport.Address` candidates to try, in order; the transaction layer moves to the
next one on a transport error or a timeout (RFC 3263 §4.3). The decisions that need no DNS are pure
functions tested on their own: :func:`plan_location` (which lookups a URI calls for),
:func:`order_srv` (RFC 2782 priority and weighted random order) and :func:`naptr_services` (which
NAPTR records a client may follow).

The rules, RFC 3263 §4.1-4.2, with TARGET the ``maddr`` or else the host:

* TARGET an IP address: use it, with the URI's port or the default; no DNS.
* a port in the URI: A/AAAA of TARGET only, transport from ``transport=`` or UDP (TLS for sips:).
* ``transport=`` given: SRV for that transport (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``).
* otherwise: NAPTR of TARGET (services ``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``, terminal "S" flag; a
  sips: URI keeps only ``SIPS+D2T``); without usable NAPTR, SRV for each transport we support, in our
  order of preference.
* no SRV record at all: A/AAAA of TARGET with the transport's default port.

Non-terminal NAPTR records (empty flags, another NAPTR lookup) are skipped: no SIP service publishes
them. Lookups run on dnspython's asyncio resolver, so they never block the event loop; the resolver
caches answers for their TTL. Host files are not read: a SIP next hop is an address or a DNS name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from .transport import DEFAULT_PORTS, Address, Transport, TransportError, request_destination
from .uri import SipURI

__all__ = [
    "NAPTR_SERVICES",
    "SRV_SERVICES",
    "LocationError",
    "LocationPlan",
    "NaptrRecord",
    "ServerLocator",
    "SrvRecord",
    "naptr_services",
    "order_srv",
    "plan_location",
]

logger = logging.getLogger(__name__)

#: SRV service labels per transport (RFC 3263 §4.1: "_sips" for TLS, RFC 3261 §26.2.2).
SRV_SERVICES: Final[dict[Transport, str]] = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}

#: NAPTR service fields a SIP client follows (RFC 3263 §4.1, IANA "SIP+D2U" ...) and their transport.
NAPTR_SERVICES: Final[dict[str, Transport]] = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}

#: Our default order when DNS lets us choose: UDP first because that is what the carriers we meet
#: answer on, then TCP, then TLS (a TLS peer found this way must still pass certificate checks).
DEFAULT_TRANSPORTS: Final[tuple[Transport, ...]] = ("udp", "tcp", "tls")

#: Seconds one lookup (all retries) may take. Timer B gives an INVITE 32 s in all; a resolver that
#: has not answered in 4 s is down, and the caller should fail over rather than wait.
DEFAULT_LIFETIME: Final = 4.0


class LocationError(TransportError):
    """No address could be found for a URI: says which lookups failed and how (NXDOMAIN, timeout ...).
    A :class:`~sip_stack.transport.TransportError`, so callers treat it as one (RFC 3263 §4.3)."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV record (RFC 2782); ``target`` without the trailing dot, "." for "no service"."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """One NAPTR record (RFC 3403 §4.1); ``replacement`` without the trailing dot."""

    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, slots=True)
class LocationPlan:
    """What RFC 3263 §4 says to look up for a URI, decided without DNS.

    ``port`` set: no SRV (A/AAAA only, or nothing when ``numeric``). ``srv``: the SRV names to query,
    in order, when NAPTR gives nothing usable (``naptr`` says whether to ask NAPTR first).
    ``transport`` is the transport to use when no SRV record exists (A/AAAA at its default port).
    """

    host: str
    transport: Transport
    port: int | None
    numeric: bool
    naptr: bool
    srv: tuple[tuple[Transport, str], ...]


def _domain(host: str) -> str:
    return host.rstrip(".").lower()


def plan_location(uri: SipURI, transports: Sequence[Transport] = DEFAULT_TRANSPORTS) -> LocationPlan:
    """Decide the lookups for ``uri`` (RFC 3263 §4.1 transport, §4.2 port and address).

    ``transports`` are the ones we support, in order of preference. Raises
    :class:`~sip_stack.transport.TransportError` when the URI asks for a transport we cannot use.
    """
    hop = request_destination(uri)
    secure = uri.scheme == "sips"
    explicit = uri.transport is not None
    if hop.transport not in transports:
        raise LocationError(f"{uri}: transport {hop.transport} is not enabled here")
    try:
        ipaddress.ip_address(hop.host)
        numeric = True
    except ValueError:
        numeric = False
    if numeric or hop.port is not None:
        return LocationPlan(
            hop.host, hop.transport, hop.port or DEFAULT_PORTS[hop.transport], numeric, False, ()
        )
    domain = _domain(hop.host)
    if explicit:
        return LocationPlan(
            domain, hop.transport, None, False, False, ((hop.transport, _srv_name(hop.transport, domain)),)
        )
    choices = ("tls",) if secure else tuple(transports)
    srv = tuple((t, _srv_name(t, domain)) for t in choices if t in transports)
    return LocationPlan(domain, hop.transport, None, False, True, srv)


def _srv_name(transport: Transport, domain: str) -> str:
    return f"{SRV_SERVICES[transport]}.{domain}"


def order_srv(records: Iterable[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782's order: lowest priority first; within a priority, a weighted random draw repeated
    until none is left, zero-weight records first in the running list so that they are picked
    rarely but not never. Records with target "." are left out (the service is not offered)."""
    usable = [r for r in records if r.target != "."]
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        group = sorted((r for r in usable if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


def naptr_services(
    records: Iterable[NaptrRecord], *, secure: bool, transports: Sequence[Transport]
) -> list[tuple[Transport, str]]:
    """The (transport, SRV name) pairs NAPTR records point to, in order then preference (RFC 3403
    §4.1), keeping terminal "S" records with a SIP service we support; a sips: URI keeps only
    ``SIPS+D2T`` (RFC 3263 §4.1)."""
    chosen: list[tuple[Transport, str]] = []
    for record in sorted(records, key=lambda r: (r.order, r.preference)):
        transport = NAPTR_SERVICES.get(record.service.upper())
        if transport is None or record.flags.lower() != "s" or transport not in transports:
            continue
        if secure and transport != "tls":
            continue
        pair = (transport, _domain(record.replacement))
        if pair not in chosen:
            chosen.append(pair)
    return chosen


class ServerLocator:
    """RFC 3263 §4 on dnspython's asyncio resolver.

    ``resolver``: a configured :class:`dns.asyncresolver.Resolver` (tests point one at a local
    server); by default one is built from the system configuration on first use, with a cache.
    ``transports``: the ones we support, in order of preference. ``rng``: for the RFC 2782 draw.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver | None = None,
        *,
        transports: Sequence[Transport] = DEFAULT_TRANSPORTS,
        prefer_ipv6: bool = False,
        use_naptr: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self._resolver = resolver
        self.transports = tuple(transports)
        self.prefer_ipv6 = prefer_ipv6
        self.use_naptr = use_naptr
        self._rng = rng if rng is not None else random.Random()

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.exception.DNSException as exc:
                raise LocationError(f"no DNS resolver configuration: {exc}") from exc
            resolver.lifetime = DEFAULT_LIFETIME
            resolver.cache = dns.resolver.LRUCache()
            self._resolver = resolver
        return self._resolver

    async def locate(self, uri: SipURI) -> list[Address]:
        """The addresses to try for ``uri``, best first; never empty (raises :class:`LocationError`)."""
        plan = plan_location(uri, self.transports)
        if plan.numeric:
            assert plan.port is not None
            return [Address(plan.transport, plan.host, plan.port)]
        failures: list[str] = []
        if plan.port is not None:
            addresses = await self._addresses(plan.host, {}, failures)
            found = [Address(plan.transport, ip, plan.port) for ip in addresses]
            return self._result(uri, found, failures)
        services: list[tuple[Transport, str]] = []
        if plan.naptr and self.use_naptr:
            naptr = await self._naptr(plan.host, failures)
            services = naptr_services(naptr, secure=uri.scheme == "sips", transports=self.transports)
        if not services:
            services = list(plan.srv)
        answers = await asyncio.gather(*(self._srv(name, failures) for _, name in services))
        candidates: list[Address] = []
        any_srv = False
        for (transport, _), (records, glue) in zip(services, answers, strict=True):
            any_srv = any_srv or bool(records)
            for record in order_srv(records, self._rng):
                for ip in await self._addresses(record.target, glue, failures):
                    candidates.append(Address(transport, ip, record.port))
        if not any_srv:
            # RFC 3263 §4.2: no SRV records, so A/AAAA of the domain at the transport's default port.
            port = DEFAULT_PORTS[plan.transport]
            candidates = [
                Address(plan.transport, ip, port) for ip in await self._addresses(plan.host, {}, failures)
            ]
        return self._result(uri, candidates, failures)

    @staticmethod
    def _result(uri: SipURI, candidates: list[Address], failures: list[str]) -> list[Address]:
        unique = list(dict.fromkeys(candidates))
        if not unique:
            detail = "; ".join(failures) if failures else "no records"
            raise LocationError(f"cannot locate a server for {uri}: {detail}")
        return unique

    async def _query(
        self, name: str, rdtype: dns.rdatatype.RdataType, failures: list[str]
    ) -> dns.message.Message | None:
        """One lookup; None (and a line in ``failures``) when it failed. NXDOMAIN and an empty answer
        are ordinary outcomes of RFC 3263's probing, so they are not failures."""
        try:
            answer = await self._get_resolver().resolve(
                dns.name.from_text(name), rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.DNSException as exc:
            failures.append(f"{dns.rdatatype.to_text(rdtype)} {name}: {exc.__class__.__name__} {exc}")
            logger.warning("DNS %s lookup of %s failed: %s", dns.rdatatype.to_text(rdtype), name, exc)
            return None
        return answer.response if answer.rrset is not None else None

    @staticmethod
    def _records(response: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list[Any]:
        # dnspython's rdata classes set their fields in untyped __init__s: Any is the honest type.
        return [rdata for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]

    async def _naptr(self, domain: str, failures: list[str]) -> list[NaptrRecord]:
        response = await self._query(domain, dns.rdatatype.NAPTR, failures)
        if response is None:
            return []
        records: list[NaptrRecord] = []
        for rdata in self._records(response, dns.rdatatype.NAPTR):
            records.append(
                NaptrRecord(
                    int(rdata.order),
                    int(rdata.preference),
                    bytes(rdata.flags).decode("ascii", "replace"),
                    bytes(rdata.service).decode("ascii", "replace"),
                    rdata.replacement.to_text(omit_final_dot=True),
                )
            )
        return records

    async def _srv(self, name: str, failures: list[str]) -> tuple[list[SrvRecord], dict[str, list[str]]]:
        """SRV records of ``name`` and the addresses the server sent along in the additional section
        (RFC 2782: "the additional data section ... may contain" them), to save a round trip."""
        response = await self._query(name, dns.rdatatype.SRV, failures)
        if response is None:
            return [], {}
        records = [
            SrvRecord(
                int(rdata.priority),
                int(rdata.weight),
                int(rdata.port),
                _domain(rdata.target.to_text(omit_final_dot=True)) or ".",
            )
            for rdata in self._records(response, dns.rdatatype.SRV)
        ]
        glue: dict[str, list[str]] = {}
        for rrset in response.additional:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                key = _domain(rrset.name.to_text(omit_final_dot=True))
                glue.setdefault(key, []).extend(rdata.to_text() for rdata in rrset)
        return records, glue

    async def _addresses(self, host: str, glue: dict[str, list[str]], failures: list[str]) -> list[str]:
        """A and AAAA of ``host`` (IPv4 first unless ``prefer_ipv6``), from ``glue`` when it has them."""
        try:
            ipaddress.ip_address(host)
            return [host]  # an SRV target should be a name (RFC 2782), but an address needs no lookup
        except ValueError:
            pass
        known = glue.get(_domain(host))
        if known:
            v4 = [a for a in known if ":" not in a]
            v6 = [a for a in known if ":" in a]
        else:
            a, aaaa = await asyncio.gather(
                self._query(host, dns.rdatatype.A, failures),
                self._query(host, dns.rdatatype.AAAA, failures),
            )
            v4 = [r.to_text() for r in self._records(a, dns.rdatatype.A)] if a else []
            v6 = [r.to_text() for r in self._records(aaaa, dns.rdatatype.AAAA)] if aaaa else []
        return v6 + v4 if self.prefer_ipv6 else v4 + v6
