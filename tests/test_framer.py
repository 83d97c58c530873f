"""Stream framing (RFC 3261 §18.3): partial reads, several messages per read, keep-alives, limits."""

from __future__ import annotations

import pytest

from sip_stack import InvalidMessage, KeepAlive, ParseError, Request, Response, StreamFramer
from sip_stack.limits import MAX_HEADER_SECTION_SIZE
from tests.sip_messages import BYE, CARRIER_INVITE, OK_200, options


def test_one_message_in_one_read() -> None:
    framer = StreamFramer()
    (msg,) = framer.feed(CARRIER_INVITE)
    assert isinstance(msg, Request)
    assert msg.serialize() == CARRIER_INVITE
    assert framer.buffered == 0


def test_message_split_at_every_byte_boundary() -> None:
    data = OK_200
    for cut in range(1, len(data)):
        framer = StreamFramer()
        assert framer.feed(data[:cut]) == []
        (msg,) = framer.feed(data[cut:])
        assert isinstance(msg, Response)
        assert msg.body == data[data.index(b"\r\n\r\n") + 4 :]


def test_byte_at_a_time() -> None:
    framer = StreamFramer()
    events = []
    for i in range(len(CARRIER_INVITE)):
        events.extend(framer.feed(CARRIER_INVITE[i : i + 1]))
    assert len(events) == 1
    assert isinstance(events[0], Request)
    assert events[0].serialize() == CARRIER_INVITE


def test_several_messages_and_keepalives_in_one_read() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + CARRIER_INVITE + OK_200 + b"\r\n" + BYE + b"\r\n\r\n" + options()
    events = framer.feed(stream)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["KeepAlive", "Request", "Response", "Request", "KeepAlive", "Request"]
    assert isinstance(events[3], Request) and events[3].method == "BYE"
    assert framer.buffered == 0


def test_keepalive_split_across_reads() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KeepAlive()]


def test_body_split_across_reads() -> None:
    framer = StreamFramer()
    head_end = CARRIER_INVITE.index(b"\r\n\r\n") + 4
    assert framer.feed(CARRIER_INVITE[: head_end + 10]) == []
    (msg,) = framer.feed(CARRIER_INVITE[head_end + 10 :] + b"INVITE sip:x SIP/2.0\r\n")
    assert isinstance(msg, Request)
    assert framer.buffered == len(b"INVITE sip:x SIP/2.0\r\n")


def test_framed_but_invalid_message_does_not_close_the_stream() -> None:
    framer = StreamFramer()
    bad = options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    events = framer.feed(bad + options(call_id="next"))
    assert isinstance(events[0], InvalidMessage)
    assert events[0].error.status == 400
    assert events[0].error.can_reply
    assert events[0].data == bad
    assert isinstance(events[1], Request) and events[1].call_id == "next"


def test_folded_content_length_is_unfolded() -> None:
    """RFC 3261 §7.3.1 lets any header value continue on a line starting with SP or HTAB; the
    framer must read the length through the fold, or it would cut the stream in the wrong place."""
    framer = StreamFramer()
    body = b"v=0\r\n"
    folded = options().replace(
        b"Content-Length: 0\r\n", b"Content-Length:\r\n\t" + str(len(body)).encode() + b"\r\n"
    )
    folded = folded + body
    first, second = framer.feed(folded + options(call_id="after"))
    assert isinstance(first, Request) and first.body == body
    assert isinstance(second, Request) and second.call_id == "after"


def test_missing_content_length_loses_framing() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError) as info:
        framer.feed(options().replace(b"Content-Length: 0\r\n", b""))
    assert "Content-Length is required on stream transports" in info.value.reason


@pytest.mark.parametrize(
    "header,message",
    [
        (b"Content-Length: -1\r\n", "Content-Length is not a number"),
        (b"Content-Length: 2\r\nl: 3\r\n", "conflicting Content-Length values"),
        (b"Content-Length: 99999999999\r\n", "Content-Length above"),
        (b"Content-Length: 1\r\n 2\r\n", "Content-Length is not a number"),  # folded: "1 2"
    ],
)
def test_bad_content_length_loses_framing(header: bytes, message: str) -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError) as info:
        framer.feed(options().replace(b"Content-Length: 0\r\n", header))
    assert message in info.value.reason


def test_header_section_without_end_is_cut_off() -> None:
    # A peer sending 1 MB without a blank line must not make us buffer it (issue [2/6]).
    framer = StreamFramer()
    chunk = b"X-Junk: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(ParseError) as info:
        for _ in range(1024):
            framer.feed(chunk)
    assert info.value.status == 413
    assert framer.buffered <= MAX_HEADER_SECTION_SIZE + len(chunk)


def test_garbage_stream_raises_only_parse_error() -> None:
    framer = StreamFramer()
    events = framer.feed(b"\x00\xff garbage\r\nContent-Length: 0\r\n\r\n")
    assert len(events) == 1
    assert isinstance(events[0], InvalidMessage)


def test_messages_framed_before_lost_framing_are_delivered_first() -> None:
    framer = StreamFramer()
    events = framer.feed(BYE + options().replace(b"Content-Length: 0\r\n", b""))
    assert [type(e).__name__ for e in events] == ["Request"]
    with pytest.raises(ParseError) as info:
        framer.feed(b"")
    assert "Content-Length is required" in info.value.reason
