"""SIPp as the phone: it calls a UAS made of our stack and our relay, plays its RFC 2833 pcaps
(``tests/vectors/sipp-dtmf``, from Debian's sip-tester) into the relay, and every key must come out
exactly once, in order, including the same key twice in a row replayed from the same pcap (its
packets repeat identically, timestamps and sequence numbers included). Then keys by SIP INFO in
the call, as SIPp sends them, through our UA to :func:`rtp.dtmf.parse_dtmf_info`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtp.dtmf import DEFAULT_INFO_DURATION_MS, Digit, DtmfError, parse_dtmf_info
from rtp.relay import DigitReceived, MediaEvent, Relay, RelayConfig, RemoteMedia
from sip_stack.offer_answer import build_answer
from sip_stack.sdp import Origin, parse_sdp
from sip_stack.transport import ListenSpec
from sip_stack.ua import IncomingRequest, UserAgent
from tests.sipp import free_port, run_sipp_async
from tests.test_relay import free_range

PCAPS = Path(__file__).parent / "vectors" / "sipp-dtmf"
PCAP_NAMES = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}

SCENARIO_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="phone pressing keys (RFC 2833 pcaps)">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

SCENARIO_TAIL = """  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def scenario(keys: str, pause_ms: int) -> str:
    plays = "".join(
        f'  <nop><action><exec play_pcap_audio="{PCAPS / PCAP_NAMES[k]}"/></action></nop>\n'
        f'  <pause milliseconds="{pause_ms}"/>\n'
        for k in keys
    )
    return SCENARIO_HEAD + plays + SCENARIO_TAIL


@dataclass
class MediaUas:
    """Our stack answering calls with the relay's phone-side port; what the relay hears is kept."""

    ua: UserAgent
    relay: Relay
    port: int
    events: list[MediaEvent] = field(default_factory=list)
    info_digits: list[Digit] = field(default_factory=list)

    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        call_id = request.call_id
        if incoming.method == "INVITE":
            offer = parse_sdp(request.body)
            media = offer.media[0]
            connection = offer.connection_of(media)
            assert connection is not None
            ports = self.relay.open_session(call_id)
            events = media.telephone_event_payload_types
            self.relay.set_remote(
                call_id,
                "phone",
                RemoteMedia(connection.address, media.port, telephone_event=events[0] if events else None),
            )
            answer = build_answer(
                offer,
                codecs=(("PCMU", 8000),),
                address="127.0.0.1",
                port=ports.phone,
                origin=Origin.for_address("127.0.0.1", 1),
            )
            incoming.respond(200, body=answer.serialize(), content_type="application/sdp")
        elif incoming.method == "INFO":
            # What the call controller does with keypad INFO (PRODUCT.md §4.1): a digit, a 400
            # for a DTMF body that is not one, a 415 naming what we take for any other type.
            content_type = request.header("Content-Type") or ""
            try:
                digit = parse_dtmf_info(content_type, request.body)
            except DtmfError as exc:
                incoming.respond(400, str(exc))
                return
            if digit is None:
                incoming.respond(415, headers=[("Accept", "application/dtmf-relay, application/dtmf")])
                return
            self.info_digits.append(digit)
            incoming.respond(200)
        elif incoming.method == "BYE":
            self.relay.close_session(call_id)
            incoming.respond(200)

    def keys(self) -> str:
        return "".join(e.digit.key for e in self.events if isinstance(e, DigitReceived))


@pytest.fixture
async def media_uas() -> AsyncIterator[MediaUas]:
    port = free_port("udp")
    ua = UserAgent([ListenSpec("udp", "127.0.0.1", port)], user_agent="enx-voice-test")
    relay = Relay(RelayConfig(ports=free_range(8)))
    uas = MediaUas(ua, relay, port)
    relay.on_event = uas.events.append
    ua.on_request = uas.handle
    await ua.start()
    try:
        yield uas
    finally:
        relay.close()
        await ua.close()


@pytest.mark.parametrize(
    ("keys", "pause_ms"),
    [
        ("0123456789*#", 300),
        ("1133", 300),  # the same pcap twice in a row: identical packets, told apart by time
        ("99", 150),  # and with little time between the replays
    ],
)
async def test_sipp_pcap_keys_come_out_once_each(
    media_uas: MediaUas, keys: str, pause_ms: int, tmp_path: Path
) -> None:
    xml = tmp_path / "uac_keys.xml"
    xml.write_text(scenario(keys, pause_ms), encoding="ascii")
    result = await run_sipp_async(xml, f"127.0.0.1:{media_uas.port}", timeout=30, extra_args=("-s", "enx"))
    result.raise_for_failure()
    await asyncio.sleep(0.3)  # a press whose end packets are still in flight ends by timeout
    assert media_uas.keys() == keys
    assert media_uas.relay.sessions == 0


INFO = """  <send retrans="500">
    <![CDATA[

      INFO sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: {content_type}
      Content-Length: [len]

{body}
    ]]>
  </send>
  <recv response="{status}"/>
"""


async def test_sipp_keys_by_sip_info_come_out_as_digits(media_uas: MediaUas, tmp_path: Path) -> None:
    """SIPp sends keypad INFOs in the call (the two body types carriers use), then three that are
    refused: a DTMF body that is no key (400), a type the stack takes but that is no keypad (415
    from the handler), and a type the stack does not take (415 from its policy, RFC 3261 §8.2.3)."""
    infos = [
        ("application/dtmf-relay", "Signal=5\nDuration=160", 200),
        ("application/dtmf-relay", "Signal=11\nDuration=250", 200),  # 11 is '#'
        ("application/dtmf", "*", 200),
        ("application/dtmf-relay", "Signal=Z", 400),
        ("application/sdp", "v=0", 415),
        ("text/plain", "5", 415),
    ]
    body = "".join(
        INFO.format(cseq=2 + n, content_type=ctype, body=text, status=status)
        for n, (ctype, text, status) in enumerate(infos)
    )
    xml = tmp_path / "uac_info.xml"
    xml.write_text(
        SCENARIO_HEAD + body + SCENARIO_TAIL.replace("CSeq: 2 BYE", "CSeq: 10 BYE"), encoding="ascii"
    )
    result = await run_sipp_async(xml, f"127.0.0.1:{media_uas.port}", timeout=30, extra_args=("-s", "enx"))
    result.raise_for_failure()
    assert [(d.key, d.source, d.duration_ms) for d in media_uas.info_digits] == [
        ("5", "sip-info", 160),
        ("#", "sip-info", 250),
        ("*", "sip-info", DEFAULT_INFO_DURATION_MS),
    ]
    assert media_uas.relay.sessions == 0
