"""Tests of sip_stack.offer_answer: RFC 3264 answers and offers, direction, hold detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_stack.errors import LocalProtocolError, ParseError
from sip_stack.offer_answer import (
    answer_direction,
    build_answer,
    build_offer,
    is_hold,
    next_version,
)
from sip_stack.sdp import (
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    parse_sdp,
)

VECTORS = Path(__file__).parent / "vectors" / "sdp-transform"

OUR_CODECS = [("PCMU", 8000), ("PCMA", 8000)]
RELAY = "192.0.2.50"
ORIGIN = Origin("enx", "7001", 7001, "IN", "IP4", RELAY)


def sdp(text: str) -> SessionDescription:
    return parse_sdp(text.strip("\n").replace("\n", "\r\n") + "\r\n")


def offer_with(media_lines: str, session_lines: str = "") -> SessionDescription:
    return sdp(
        "v=0\no=carrier 4858949 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.2\nt=0 0\n"
        + session_lines
        + media_lines
    )


def answer(offer: SessionDescription, **options: object) -> SessionDescription:
    kwargs: dict[str, object] = {
        "codecs": OUR_CODECS,
        "address": RELAY,
        "port": 40000,
        "origin": ORIGIN,
    }
    kwargs.update(options)
    return build_answer(offer, **kwargs)  # type: ignore[arg-type]


CARRIER_OFFER = offer_with("""
m=audio 24680 RTP/AVP 18 8 0 101
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")


def test_answer_to_carrier_offer() -> None:
    result = answer(CARRIER_OFFER)
    assert result.serialize() == (
        b"v=0\r\n"
        b"o=enx 7001 7001 IN IP4 192.0.2.50\r\n"
        b"s=-\r\n"
        b"c=IN IP4 192.0.2.50\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 8 0 101\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=sendrecv\r\n"
    )
    assert parse_sdp(result.serialize()) == result


def test_codec_intersection_keeps_offerer_order() -> None:
    # We prefer PCMU; the caller prefers PCMA: the caller's order wins (PRODUCT.md §4.1).
    (audio,) = answer(CARRIER_OFFER, codecs=[("PCMU", 8000), ("PCMA", 8000)]).media
    assert audio.payload_types == (8, 0, 101)
    offer = offer_with("m=audio 4000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\n")
    (audio,) = answer(offer, codecs=[("PCMA", 8000), ("PCMU", 8000)]).media
    assert audio.payload_types == (0, 8, 101)


def test_codec_names_compare_without_case() -> None:
    (audio,) = answer(CARRIER_OFFER, codecs=[("pcma", 8000), ("g729", 8000)]).media
    assert audio.payload_types == (18, 8, 101)


def test_max_codecs_keeps_the_callers_preferred() -> None:
    (audio,) = answer(CARRIER_OFFER, max_codecs=1).media
    assert audio.payload_types == (8, 101)
    assert audio.codecs[0] == RtpMap(8, "PCMA", 8000)


def test_static_payload_types_without_rtpmap_are_matched() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 18 0 8\n")
    (audio,) = answer(offer).media
    assert audio.payload_types == (0, 8)
    # The answer names every format it keeps (RFC 3264 §5.1 recommends rtpmap even for static).
    assert audio.attribute_values("rtpmap") == ("0 PCMU/8000", "8 PCMA/8000")
    assert audio.telephone_event_payload_types == ()


def test_fmtp_of_a_chosen_codec_is_echoed() -> None:
    (audio,) = answer(CARRIER_OFFER, codecs=[("G729", 8000)]).media
    assert audio.payload_types == (18, 101)
    assert audio.fmtp(18) == "annexb=no"


def test_telephone_event_payload_type_comes_from_the_offer() -> None:
    offer = offer_with("""
m=audio 4000 RTP/AVP 0 96
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
""")
    (audio,) = answer(offer).media
    assert audio.payload_types == (0, 96)
    assert audio.telephone_event_payload_types == (96,)
    assert audio.rtpmap(96) == RtpMap(96, "telephone-event", 8000)
    assert audio.telephone_events(96) == "0-15"


def test_telephone_event_without_fmtp_means_0_to_15() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 8 100\na=rtpmap:100 telephone-event/8000\n")
    (audio,) = answer(offer).media
    assert audio.telephone_events(100) == "0-15"


def test_telephone_events_are_intersected() -> None:
    offer = offer_with(
        "m=audio 4000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n"
        "a=fmtp:101 0-11,12,13-15,16,32-49,66\n"
    )
    (audio,) = answer(offer).media
    assert audio.telephone_events(101) == "0-16"
    (audio,) = answer(offer, telephone_events="0-9,16,66,70").media
    assert audio.telephone_events(101) == "0-9,16,66"
    # Nothing in common: no telephone-event at all rather than an empty event list.
    (audio,) = answer(offer, telephone_events="200").media
    assert audio.payload_types == (8,)


def test_telephone_event_only_at_the_chosen_codecs_rate() -> None:
    jsep = parse_sdp((VECTORS / "jsep.sdp").read_bytes())
    audio, video = answer(jsep, protocols=["UDP/TLS/RTP/SAVPF"]).media
    # jsep.sdp offers telephone-event at 8000 (97) and 48000 (98); we chose 8 kHz codecs.
    assert audio.payload_types == (0, 8, 97)
    assert video.port == 0


def test_telephone_event_can_be_refused() -> None:
    (audio,) = answer(CARRIER_OFFER, telephone_event=False).media
    assert audio.payload_types == (8, 0)
    assert audio.fmtp(101) is None


def test_comfort_noise_only_with_a_codec_at_its_rate() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 13 0 8\n")
    (audio,) = answer(offer, codecs=[*OUR_CODECS, ("CN", 8000)], max_codecs=1).media
    assert audio.payload_types == (13, 0)
    only_cn = offer_with("m=audio 4000 RTP/AVP 13\n")
    with pytest.raises(SdpError) as caught:
        answer(only_cn, codecs=[*OUR_CODECS, ("CN", 8000)])
    assert caught.value.status == 488


def test_rejected_media_get_port_zero_in_the_same_order() -> None:
    offer = offer_with("""
m=video 5000 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 4000 RTP/AVP 0
m=image 6000 udptl t38
m=audio 4002 RTP/AVP 8
""")
    result = answer(offer)
    assert [(m.media, m.port, m.proto, m.formats) for m in result.media] == [
        ("video", 0, "RTP/AVP", ("96",)),
        ("audio", 40000, "RTP/AVP", ("0",)),
        ("image", 0, "udptl", ("t38",)),
        # A second audio stream is rejected: the relay has one audio port per leg.
        ("audio", 0, "RTP/AVP", ("8",)),
    ]
    assert result.media[0].attributes == ()


def test_disabled_or_unusable_streams_are_skipped_for_a_later_one() -> None:
    offer = offer_with("""
m=audio 0 RTP/AVP 0
m=audio 4000 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR
m=audio 4002 RTP/AVP 18
m=audio 4004 RTP/AVP 8
""")
    assert [m.port for m in answer(offer).media] == [0, 0, 0, 40000]


def test_savp_accepted_only_when_asked() -> None:
    offer = offer_with("m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\n")
    result = answer(offer, protocols=["RTP/AVP", "RTP/SAVP"])
    assert result.media[0].proto == "RTP/SAVP"
    assert result.media[0].port == 40000


@pytest.mark.parametrize(
    ("media_lines", "reason"),
    [
        (
            "m=audio 4000 RTP/AVP 18 9\n",
            "offer has no codec we support (PCMU/8000, PCMA/8000)",
        ),
        (
            "m=audio 4000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n",
            "offer has no codec we support (PCMU/8000, PCMA/8000)",
        ),
        ("m=video 4000 RTP/AVP 31\n", "offer has no active audio stream"),
        ("m=audio 0 RTP/AVP 0\n", "offer has no active audio stream"),
        ("", "offer has no active audio stream"),
        (
            "m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\n",
            "offer has no audio stream over RTP/AVP",
        ),
    ],
)
def test_not_acceptable_here(media_lines: str, reason: str) -> None:
    with pytest.raises(SdpError) as caught:
        answer(offer_with(media_lines))
    assert caught.value.status == 488
    assert caught.value.reason == reason
    assert isinstance(caught.value, ParseError)
    assert str(caught.value) == f"488 {reason}"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_answer_direction_in_the_answer(offered: str, answered: str) -> None:
    offer = offer_with(f"m=audio 4000 RTP/AVP 0\na={offered}\n")
    result = answer(offer)
    assert result.media[0].direction is Direction(answered)


def test_session_level_direction_of_the_offer_counts() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 0\n", session_lines="a=sendonly\n")
    assert answer(offer).media[0].direction is Direction.RECVONLY


def test_no_direction_in_the_offer_means_sendrecv() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 0\n")
    assert answer(offer).media[0].direction is Direction.SENDRECV


@pytest.mark.parametrize("offered", list(Direction))
@pytest.mark.parametrize("local", list(Direction))
def test_answer_direction_table(offered: Direction, local: Direction) -> None:
    result = answer_direction(offered, local)
    # RFC 3264 §6.1: we never send to a side that does not receive, nor expect what is not sent.
    assert result.sends == (offered.receives and local.sends)
    assert result.receives == (offered.sends and local.receives)


def test_answer_direction_named_cases() -> None:
    assert answer_direction(Direction.SENDONLY) is Direction.RECVONLY
    assert answer_direction(Direction.RECVONLY) is Direction.SENDONLY
    assert answer_direction(Direction.INACTIVE) is Direction.INACTIVE
    assert answer_direction(Direction.SENDRECV) is Direction.SENDRECV
    # We hold (sendonly) while the far end holds us too: inactive.
    assert answer_direction(Direction.SENDONLY, Direction.SENDONLY) is Direction.INACTIVE
    assert answer_direction(Direction.SENDRECV, Direction.SENDONLY) is Direction.SENDONLY


def test_answer_copies_t_line_of_the_offer() -> None:
    offer = sdp("""
v=0
o=- 1 1 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.2
t=3034423619 3042462419
m=audio 4000 RTP/AVP 0
""")
    assert answer(offer).timing == (Timing(3034423619, 3042462419),)
    no_t = sdp("v=0\no=- 1 1 IN IP4 198.51.100.1\nc=IN IP4 198.51.100.2\nm=audio 4000 RTP/AVP 0\n")
    assert answer(no_t).timing == (Timing(0, 0),)


def test_answer_with_ipv6_relay_address() -> None:
    result = answer(CARRIER_OFFER, address="2001:db8::50")
    assert result.connection == Connection("IN", "IP6", "2001:db8::50")


def test_ptime_and_rtcp_mux_options() -> None:
    offer = offer_with("m=audio 4000 RTP/AVP 0\na=rtcp-mux\n")
    (audio,) = answer(offer, ptime=20, rtcp_mux=True).media
    assert audio.ptime == 20.0
    assert audio.rtcp_mux
    (audio,) = answer(offer).media
    assert audio.ptime is None
    assert not audio.rtcp_mux
    (audio,) = answer(offer_with("m=audio 4000 RTP/AVP 0\n"), rtcp_mux=True).media
    assert not audio.rtcp_mux


def test_answers_to_the_corpus() -> None:
    # Offers from the sdp-transform corpus that carry PCMU or PCMA over plain RTP.
    icelite = parse_sdp((VECTORS / "icelite.sdp").read_bytes())
    (audio,) = answer(icelite, protocols=["RTP/SAVPF"]).media
    assert audio.payload_types == (8, 0, 101)
    assert audio.telephone_events(101) == "0-15"
    simulcast = parse_sdp((VECTORS / "simulcast.sdp").read_bytes())
    result = answer(simulcast)
    assert [m.port for m in result.media] == [40000, 0]


def test_origin_version_for_re_offers() -> None:
    first = build_offer(codecs=OUR_CODECS, address=RELAY, port=40000, origin=ORIGIN)
    second = next_version(first)
    assert second.origin.username == first.origin.username
    assert second.origin.session_id == first.origin.session_id
    assert second.origin.session_version == first.origin.session_version + 1
    assert next_version(second).origin.session_version == 7003
    assert second.media == first.media


def test_build_offer() -> None:
    offer = build_offer(
        codecs=[("PCMU", 8000), ("PCMA", 8000), ("opus", 48000), ("G722", 8000)],
        address=RELAY,
        port=40000,
        origin=ORIGIN,
        ptime=20,
    )
    assert offer.serialize() == (
        b"v=0\r\n"
        b"o=enx 7001 7001 IN IP4 192.0.2.50\r\n"
        b"s=-\r\n"
        b"c=IN IP4 192.0.2.50\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 8 96 9 101 97\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:96 opus/48000\r\n"
        b"a=rtpmap:9 G722/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=rtpmap:97 telephone-event/48000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=fmtp:97 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n"
    )
    assert parse_sdp(offer.serialize()) == offer


def test_build_offer_for_hold_and_without_telephone_event() -> None:
    offer = build_offer(
        codecs=[("PCMA", 8000), ("PCMA", 8000)],
        address="2001:db8::50",
        port=40000,
        origin=ORIGIN.next_version(),
        telephone_event=False,
        direction=Direction.SENDONLY,
    )
    (audio,) = offer.media
    assert audio.formats == ("8",)
    assert audio.direction is Direction.SENDONLY
    assert offer.connection == Connection("IN", "IP6", "2001:db8::50")
    assert is_hold(offer)


def test_build_offer_then_answer_it() -> None:
    offer = build_offer(
        codecs=[("PCMU", 8000), ("PCMA", 8000)],
        address=RELAY,
        port=40000,
        origin=ORIGIN,
        telephone_event_pt=96,
    )
    result = build_answer(
        parse_sdp(offer.serialize()),
        codecs=[("PCMA", 8000)],
        address="203.0.113.9",
        port=50000,
        origin=Origin.for_address("203.0.113.9", 1),
    )
    (audio,) = result.media
    assert audio.payload_types == (8, 96)
    assert audio.telephone_events(96) == "0-16"


@pytest.mark.parametrize(
    "options",
    [
        {"codecs": []},
        {"telephone_event_pt": 95},
        {"codecs": [(f"X{n}", 8000) for n in range(40)]},
    ],
)
def test_build_offer_refuses_bad_input(options: dict[str, object]) -> None:
    kwargs: dict[str, object] = {
        "codecs": OUR_CODECS,
        "address": RELAY,
        "port": 40000,
        "origin": ORIGIN,
    }
    kwargs.update(options)
    with pytest.raises(LocalProtocolError):
        build_offer(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Hold detection (RFC 3264 §8.4).


def audio_with(lines: str, session_lines: str = "", connection: str = "198.51.100.2") -> SessionDescription:
    return sdp(
        f"v=0\no=- 1 2 IN IP4 198.51.100.1\ns=-\nc=IN IP4 {connection}\nt=0 0\n{session_lines}"
        f"m=audio 4000 RTP/AVP 0\n{lines}"
    )


@pytest.mark.parametrize(
    ("description", "held"),
    [
        (audio_with(""), False),
        (audio_with("a=sendrecv\n"), False),
        (audio_with("a=recvonly\n"), False),
        (audio_with("a=sendonly\n"), True),
        (audio_with("a=inactive\n"), True),
        (audio_with("", session_lines="a=sendonly\n"), True),
        (audio_with("", session_lines="a=inactive\n"), True),
        # Media level overrides session level (RFC 8866 §6.7).
        (audio_with("a=sendrecv\n", session_lines="a=sendonly\n"), False),
        # RFC 2543 hold: c=0.0.0.0 at session or media level.
        (audio_with("", connection="0.0.0.0"), True),
        (audio_with("c=IN IP4 0.0.0.0\n"), True),
        (audio_with("c=IN IP4 198.51.100.3\n", connection="0.0.0.0"), False),
        (audio_with("c=IN IP6 ::\n"), True),
        # With ICE, 0.0.0.0 is a placeholder, not hold.
        (audio_with("a=ice-ufrag:abcd\n", connection="0.0.0.0"), False),
        (audio_with("", session_lines="a=ice-ufrag:abcd\n", connection="0.0.0.0"), False),
    ],
)
def test_is_hold(description: SessionDescription, held: bool) -> None:
    assert is_hold(description) is held
    assert is_hold(description.media[0], description) is held


def test_is_hold_on_media_alone_sees_only_media_level() -> None:
    held_by_session = audio_with("", session_lines="a=sendonly\n")
    assert is_hold(held_by_session.media[0]) is False
    assert is_hold(held_by_session.media[0], held_by_session) is True
    assert is_hold(audio_with("a=inactive\n").media[0]) is True
    assert is_hold(
        MediaDescription("audio", 4000, "RTP/AVP", ("0",), connections=(Connection.for_address("0.0.0.0"),))
    )


def test_is_hold_whole_session() -> None:
    # A rejected stream is not on hold, and does not keep the session from being on hold.
    mixed = sdp("""
v=0
o=- 1 2 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.2
t=0 0
m=audio 4000 RTP/AVP 0
a=sendonly
m=video 0 RTP/AVP 31
""")
    assert is_hold(mixed)
    assert not is_hold(mixed.media[1], mixed)
    partly = sdp("""
v=0
o=- 1 2 IN IP4 198.51.100.1
s=-
c=IN IP4 198.51.100.2
t=0 0
m=audio 4000 RTP/AVP 0
a=sendonly
m=video 5000 RTP/AVP 31
""")
    assert not is_hold(partly)
    # No active stream at all: nothing is held.
    assert not is_hold(parse_sdp((VECTORS / "onvif.sdp").read_bytes()))


def test_is_hold_on_corpus() -> None:
    for name, held in [
        ("mediaclk-rtp.sdp", True),  # a=sendonly
        ("invalid.sdp", True),  # c=IN IP4 0.0.0.0 without ICE
        ("hacky.sdp", False),  # c=IN IP4 0.0.0.0 with ICE candidates
        ("ssrc.sdp", False),
        ("normal.sdp", False),
    ]:
        assert is_hold(parse_sdp((VECTORS / name).read_bytes())) is held, name


# --------------------------------------------------------------------------------------------------
# Property: every answer is a well-formed answer to its offer.

PT_CODECS = st.sampled_from(
    [
        (0, "PCMU", 8000),
        (8, "PCMA", 8000),
        (18, "G729", 8000),
        (9, "G722", 8000),
        (96, "opus", 48000),
        (97, "telephone-event", 8000),
        (98, "telephone-event", 48000),
        (13, "CN", 8000),
    ]
)


@st.composite
def offers(draw: st.DrawFn) -> SessionDescription:
    media = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["audio", "audio", "video"]))
        codecs = draw(st.lists(PT_CODECS, min_size=1, max_size=6, unique_by=lambda c: c[0]))
        attributes: list[tuple[str, str | None]] = [
            ("rtpmap", f"{pt} {name}/{rate}") for pt, name, rate in codecs
        ]
        direction = draw(st.none() | st.sampled_from(list(Direction)))
        if direction is not None:
            attributes.append((direction.value, None))
        media.append(
            MediaDescription(
                kind,
                draw(st.sampled_from([0, 4000])),
                draw(st.sampled_from(["RTP/AVP", "RTP/SAVP"])),
                tuple(str(pt) for pt, _, _ in codecs),
                attributes=tuple(attributes),
            )
        )
    return SessionDescription(
        origin=Origin.for_address("198.51.100.1", 5),
        connection=Connection.for_address("198.51.100.2"),
        media=tuple(media),
    )


@given(offers())
def test_answers_are_well_formed(offer: SessionDescription) -> None:
    try:
        result = answer(offer)
    except SdpError as error:
        assert error.status == 488
        return
    assert len(result.media) == len(offer.media)
    accepted = [m for m in result.media if m.port != 0]
    assert len(accepted) == 1
    for offered, answered in zip(offer.media, result.media, strict=True):
        assert (answered.media, answered.proto) == (offered.media, offered.proto)
        if answered.port == 0:
            continue
        # Every answered format was offered, in the offerer's order.
        offered_pts = list(offered.payload_types)
        positions = [offered_pts.index(pt) for pt in answered.payload_types]
        assert positions == sorted(positions)
        assert {c.encoding for c in answered.codecs} & {"PCMU", "PCMA"}
        assert answered.direction is answer_direction(offer.direction_of(offered))
    assert parse_sdp(result.serialize()) == result
