"""The SDP offer/answer model (RFC 3264) for a voice relay: build offers and answers, detect hold.

Sans-IO: these functions take parsed :class:`~sip_stack.sdp.SessionDescription` values plus what
the caller knows (our codecs, the relay's address and port, our origin) and return new values. They
never pick ports, read clocks or make session ids; the caller does that.

Codecs are given as ``(encoding, clock_rate)`` pairs such as ``("PCMU", 8000)``; names compare
without regard to case (RFC 4855 §3) and the channel count is not compared. ``telephone-event``
(RFC 4733) is negotiated on its own, never as a listed codec.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TypeAlias

from sip_stack.errors import LocalProtocolError
from sip_stack.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
)

__all__ = [
    "DEFAULT_TELEPHONE_EVENTS",
    "NOT_ACCEPTABLE_HERE",
    "Codec",
    "answer_direction",
    "build_answer",
    "build_offer",
    "is_hold",
    "next_version",
]

#: A codec we support: ``(encoding name, clock rate)``.
Codec: TypeAlias = tuple[str, int]

#: Events we offer and accept by default: the 16 DTMF events (RFC 4733 §3.2) and 16, flash, which
#: carriers commonly offer with them.
DEFAULT_TELEPHONE_EVENTS = "0-16"

#: What RFC 4733 §2.4 has a receiver assume when telephone-event comes with no fmtp.
_IMPLIED_TELEPHONE_EVENTS = "0-15"

#: RFC 3261 §21.4.26: the status of an offer we cannot accept.
NOT_ACCEPTABLE_HERE = 488

#: Connection addresses that put a stream on hold in the RFC 2543 way (RFC 3264 §8.4 keeps
#: recognising 0.0.0.0); some IPv6 stacks send the unspecified address "::" the same way.
_HOLD_ADDRESSES = frozenset(("0.0.0.0", "::"))

#: RFC 3551 §3: 96-127 is the dynamic payload type range.
_FIRST_DYNAMIC_PT = 96
_LAST_DYNAMIC_PT = 127

#: RFC 4733 §2.3: the event field is 8 bits.
_MAX_EVENT = 255

#: Comfort noise (RFC 3389) rides with a codec but is not one: an offer whose only common format is
#: CN has nothing to carry speech.
_NOT_SPEECH = frozenset(("cn", "telephone-event"))


def answer_direction(offered: Direction, local: Direction = Direction.SENDRECV) -> Direction:
    """The direction to answer with (RFC 3264 §6.1).

    We may send only if the offerer receives and receive only if it sends: sendonly is answered
    recvonly, recvonly sendonly, inactive inactive. ``local`` narrows it further, e.g. sendonly
    while we hold the call ourselves (RFC 3264 §8.4).
    """
    return Direction.from_flags(
        send=offered.receives and local.sends, receive=offered.sends and local.receives
    )


def is_hold(
    subject: SessionDescription | MediaDescription, session: SessionDescription | None = None
) -> bool:
    """True when a description puts us on hold (RFC 3264 §8.4).

    A media description is on hold when the direction in force is sendonly or inactive (media level
    overrides session level, RFC 8866 §6.7) or its connection address is 0.0.0.0 (the RFC 2543 way,
    still sent by carriers). Pass ``session`` with a media description to take the session-level
    direction and c= into account. A rejected stream (port 0) is not on hold. A whole session is on
    hold when it has an active stream and every active stream is on hold.

    With ICE (``a=ice-ufrag`` present) 0.0.0.0 only means "no candidate yet" (RFC 8839, RFC 8840),
    so it does not count as hold there.
    """
    if isinstance(subject, SessionDescription):
        active = [m for m in subject.media if m.port != 0]
        return bool(active) and all(_media_on_hold(m, subject) for m in active)
    return _media_on_hold(subject, session)


def _media_on_hold(media: MediaDescription, session: SessionDescription | None) -> bool:
    if media.port == 0:
        return False
    if session is None:
        direction = media.direction or Direction.SENDRECV
        connection = media.connections[0] if media.connections else None
        ice = media.has_attribute("ice-ufrag")
    else:
        direction = session.direction_of(media)
        connection = session.connection_of(media)
        ice = media.has_attribute("ice-ufrag") or session.has_attribute("ice-ufrag")
    if direction is Direction.SENDONLY or direction is Direction.INACTIVE:
        return True
    return connection is not None and connection.address in _HOLD_ADDRESSES and not ice


def next_version(sdp: SessionDescription) -> SessionDescription:
    """Our previous description as a re-offer: same o= username and session id, version + 1
    (RFC 3264 §8)."""
    return sdp.next_version()


def build_offer(
    *,
    codecs: Sequence[Codec],
    address: str,
    port: int,
    origin: Origin,
    telephone_event: bool = True,
    telephone_event_pt: int = 101,
    telephone_events: str = DEFAULT_TELEPHONE_EVENTS,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = None,
    proto: str = "RTP/AVP",
    session_name: str = "-",
) -> SessionDescription:
    """An offer of one audio stream with our codecs in our order of preference (RFC 3264 §5).

    Codecs with a static payload type (RFC 3551 §6) use it; others get dynamic numbers from 96.
    With ``telephone_event``, one telephone-event format is offered per clock rate of our codecs
    (RFC 4733: its clock rate follows the audio it goes with), the first one as
    ``telephone_event_pt``. For hold, pass ``direction=Direction.SENDONLY`` and ``origin`` moved on
    by :meth:`~sip_stack.sdp.Origin.next_version` (RFC 3264 §8.4).
    """
    if not codecs:
        raise LocalProtocolError("an SDP offer needs at least one codec")
    if not _FIRST_DYNAMIC_PT <= telephone_event_pt <= _LAST_DYNAMIC_PT:
        raise LocalProtocolError(f"telephone-event payload type not dynamic: {telephone_event_pt}")
    static = {(m.encoding.lower(), m.clock_rate): pt for pt, m in STATIC_PAYLOAD_TYPES.items()}
    free = (
        pt
        for pt in range(_FIRST_DYNAMIC_PT, _LAST_DYNAMIC_PT + 1)
        if not (telephone_event and pt == telephone_event_pt)
    )
    seen: set[tuple[str, int]] = set()
    # Formats go in our order of preference, which the m= order expresses (RFC 3264 §5.1).
    maps: list[RtpMap] = []
    for encoding, clock_rate in codecs:
        key = (encoding.lower(), clock_rate)
        if key in seen:
            continue
        seen.add(key)
        pt = static.get(key)
        maps.append(RtpMap(_next_free(free) if pt is None else pt, encoding, clock_rate))
    fmtps: list[Attribute] = []
    if telephone_event:
        rates = list(dict.fromkeys(m.clock_rate for m in maps))
        for index, rate in enumerate(rates):
            pt = telephone_event_pt if index == 0 else _next_free(free)
            maps.append(RtpMap(pt, "telephone-event", rate))
            fmtps.append(("fmtp", f"{pt} {telephone_events}"))
    attributes: list[Attribute] = [("rtpmap", m.value) for m in maps]
    attributes.extend(fmtps)
    if ptime is not None:
        attributes.append(("ptime", str(ptime)))
    attributes.append((direction.value, None))
    media = MediaDescription(
        media="audio",
        port=port,
        proto=proto,
        formats=tuple(str(m.payload_type) for m in maps),
        attributes=tuple(attributes),
    )
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=Connection.for_address(address),
        timing=(Timing(0, 0),),
        media=(media,),
    )


def _next_free(free: Iterator[int]) -> int:
    try:
        return next(free)
    except StopIteration:
        raise LocalProtocolError("no dynamic RTP payload type left (RFC 3551 §3: 96-127)") from None


def build_answer(
    offer: SessionDescription,
    *,
    codecs: Sequence[Codec],
    address: str,
    port: int,
    origin: Origin,
    telephone_event: bool = True,
    telephone_events: str = DEFAULT_TELEPHONE_EVENTS,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = None,
    protocols: Sequence[str] = ("RTP/AVP",),
    max_codecs: int | None = None,
    rtcp_mux: bool = False,
    session_name: str = "-",
) -> SessionDescription:
    """Our answer to an offer, for a relay with one audio port (RFC 3264 §6).

    One m= per offered m=, in the same order. We accept the first active audio stream whose proto is
    in ``protocols`` and that has a codec in common with ``codecs``; every other stream is rejected
    with port 0, keeping its media, proto and formats (RFC 3264 §6: at least one format must stay).

    In the accepted stream the formats are the common codecs in the OFFERER's order (the caller's
    preferred first), with the offerer's payload type numbers and fmtp (so ``annexb=no`` is echoed),
    at most ``max_codecs`` of them (comfort noise not counted, and kept only at the rate of a chosen
    codec). A telephone-event format of the offer at the rate of a chosen codec is kept with the
    offerer's dynamic payload type (RFC 3264 §6.1) and the events both sides support (RFC 4733
    §2.4). The direction is :func:`answer_direction` of the offered one, ``a=rtcp-mux`` is
    echoed when offered and ``rtcp_mux`` is set (RFC 5761 §5.1.1), and ``t=`` equals the offer's
    (RFC 3264 §6). Our c= and port come from ``address`` and ``port``.

    Raises :class:`~sip_stack.sdp.SdpError` with status 488 Not Acceptable Here when no stream can
    be accepted; the reason says why.
    """
    ours = {(encoding.lower(), clock_rate) for encoding, clock_rate in codecs}
    accepted: MediaDescription | None = None
    accepted_index = -1
    active_audio = False
    right_proto = False
    for index, offered in enumerate(offer.media):
        if offered.media != "audio" or offered.port == 0:
            continue
        active_audio = True
        if offered.proto not in protocols:
            continue
        right_proto = True
        accepted = _answer_media(
            offered,
            ours,
            offered_direction=offer.direction_of(offered),
            port=port,
            telephone_event=telephone_event,
            telephone_events=telephone_events,
            direction=direction,
            ptime=ptime,
            max_codecs=max_codecs,
            rtcp_mux=rtcp_mux,
        )
        if accepted is not None:
            accepted_index = index
            break
    if accepted is None:
        if not active_audio:
            reason = "offer has no active audio stream"
        elif not right_proto:
            reason = f"offer has no audio stream over {' or '.join(protocols)}"
        else:
            supported = ", ".join(f"{encoding}/{rate}" for encoding, rate in codecs)
            reason = f"offer has no codec we support ({supported})"
        raise SdpError(reason, NOT_ACCEPTABLE_HERE)

    media = tuple(
        accepted if index == accepted_index else _rejected(offered)
        for index, offered in enumerate(offer.media)
    )
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=Connection.for_address(address),
        # RFC 3264 §6: "The t= line in the answer MUST equal that of the offer."
        timing=offer.timing or (Timing(0, 0),),
        media=media,
    )


def _rejected(offered: MediaDescription) -> MediaDescription:
    return MediaDescription(media=offered.media, port=0, proto=offered.proto, formats=offered.formats)


def _answer_media(
    offered: MediaDescription,
    ours: set[tuple[str, int]],
    *,
    offered_direction: Direction,
    port: int,
    telephone_event: bool,
    telephone_events: str,
    direction: Direction,
    ptime: int | None,
    max_codecs: int | None,
    rtcp_mux: bool,
) -> MediaDescription | None:
    """The answer to one acceptable audio stream, or None when no codec is in common."""
    speech: list[RtpMap] = []
    comfort_noise: list[RtpMap] = []
    telephone: list[RtpMap] = []
    for rtpmap in offered.codecs:
        encoding = rtpmap.encoding.lower()
        if encoding == "telephone-event":
            telephone.append(rtpmap)
        elif (encoding, rtpmap.clock_rate) not in ours:
            continue
        elif encoding == "cn":
            comfort_noise.append(rtpmap)
        elif max_codecs is None or len(speech) < max_codecs:
            speech.append(rtpmap)
    if not speech:
        return None
    rates = {m.clock_rate for m in speech}
    chosen = {m.payload_type: m for m in speech}
    chosen.update((m.payload_type, m) for m in comfort_noise if m.clock_rate in rates)
    events: dict[int, str] = {}
    if telephone_event:
        wanted = _parse_events(telephone_events)
        for rtpmap in telephone:
            pt = rtpmap.payload_type
            if rtpmap.clock_rate not in rates or any(
                chosen[other].clock_rate == rtpmap.clock_rate for other in events
            ):
                continue
            offered_events = offered.telephone_events(pt) or _IMPLIED_TELEPHONE_EVENTS
            common = _parse_events(offered_events) & wanted
            if common:
                chosen[pt] = rtpmap
                events[pt] = _format_events(common)

    # dict.fromkeys: an offer listing a payload type twice gets it once in the answer.
    formats = tuple(str(pt) for pt in dict.fromkeys(offered.payload_types) if pt in chosen)
    attributes: list[Attribute] = [("rtpmap", chosen[int(f)].value) for f in formats]
    for fmt in formats:
        pt = int(fmt)
        params = events.get(pt) or offered.fmtp(pt)
        if params:
            attributes.append(("fmtp", f"{pt} {params}"))
    if ptime is not None:
        attributes.append(("ptime", str(ptime)))
    if rtcp_mux and offered.rtcp_mux:
        attributes.append(("rtcp-mux", None))
    attributes.append((answer_direction(offered_direction, direction).value, None))
    return MediaDescription(
        media="audio",
        port=port,
        proto=offered.proto,
        formats=formats,
        attributes=tuple(attributes),
    )


@functools.lru_cache(maxsize=256)  # the same few lists come in every call
def _parse_events(text: str) -> frozenset[int]:
    """The event codes of a telephone-event fmtp such as ``0-15,66,70`` (RFC 4733 §2.4).

    Parts we cannot read are skipped, so a broken list narrows what we agree to rather than
    failing the call.
    """
    codes: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not (low.isascii() and low.isdigit()):
            continue
        if not dash:
            high = low
        elif not (high.isascii() and high.isdigit()):
            continue
        first, last = int(low), min(int(high), _MAX_EVENT)
        if first <= last:
            codes.update(range(first, last + 1))
    return frozenset(codes)


def _format_events(codes: frozenset[int]) -> str:
    """``{0, 1, ..., 15, 66}`` as ``0-15,66``."""
    parts: list[str] = []
    ordered = sorted(codes)
    start = previous = ordered[0]
    for code in [*ordered[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = code
    return ",".join(parts)
