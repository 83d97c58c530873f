"""Framing SIP messages on a stream transport (TCP, TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.

A stream carries messages back to back, so Content-Length is required to find where one ends. The
framer is sans-IO: feed it whatever ``recv`` returned (a partial message, several messages, keep-alive
CRLFs) and it returns the events completed so far.

Two kinds of failure differ on purpose. A message that was framed correctly but does not parse comes
back as :class:`InvalidMessage`: the transport answers it (400 …) and the connection goes on. When
framing itself is lost (no Content-Length, an oversized header section, a non-numeric Content-Length),
:meth:`StreamFramer.feed` raises :class:`~sip_stack.errors.ParseError`: nothing after that point can be
trusted, and the transport must close that one connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import ParseError
from .limits import MAX_BODY_SIZE, MAX_HEADER_SECTION_SIZE, MAX_KEEPALIVE_BYTES
from .message import Request, Response, _parse

# The Content-Length field at the start of a header line, long or compact form (RFC 3261 §7.3.3),
# with any continuation lines (§7.3.1: a value may be folded onto lines starting with SP or HTAB).
_CONTENT_LENGTH: Final = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.I
)
_FOLD: Final = re.compile(rb"\r\n[ \t]+")


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A double-CRLF ping (RFC 5626 §3.5.1): the transport answers with a single CRLF pong."""


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A correctly framed message that failed to parse; ``error`` says what to answer."""

    error: ParseError
    data: bytes


FramerEvent = Request | Response | KeepAlive | InvalidMessage


class StreamFramer:
    """Splits a byte stream into SIP messages (one per connection)."""

    __slots__ = ("_buffer", "_failed", "_max_body", "_max_header", "_scanned")

    def __init__(self, *, max_header: int = MAX_HEADER_SECTION_SIZE, max_body: int = MAX_BODY_SIZE) -> None:
        self._buffer = bytearray()
        self._max_header = max_header
        self._max_body = max_body
        # How far the current message's header section was already searched for the blank line, so
        # that a message arriving a byte at a time costs linear, not quadratic, time.
        self._scanned = 0
        # Framing lost after complete messages in the same read: those are returned first, and
        # the error is raised on the next call.
        self._failed: ParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FramerEvent]:
        """Add received bytes; return every event they complete. Raises ParseError if framing is lost."""
        if self._failed is not None:
            raise self._failed
        buf = self._buffer
        buf += data
        events: list[FramerEvent] = []
        try:
            self._frame(buf, events)
        except ParseError as exc:
            if not events:
                raise
            self._failed = exc
        return events

    def _frame(self, buf: bytearray, events: list[FramerEvent]) -> None:
        while buf:
            # Keep-alives between messages: CRLFCRLF is a ping, a lone CRLF is a pong (ignored).
            if buf[:2] == b"\r\n":
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    events.append(KeepAlive())
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(buf):
                    break  # maybe the start of a ping: wait for the rest
                del buf[:2]
                continue
            if buf[:1] == b"\n":
                del buf[:1]
                continue
            if len(buf) <= 3 and b"\r\n\r\n".startswith(bytes(buf)):
                break
            head_end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if head_end < 0:
                self._scanned = len(buf)
                if len(buf) > self._max_header:
                    raise ParseError(f"no end of header section within {self._max_header} bytes", 413)
                break
            if head_end > self._max_header:
                raise ParseError(f"header section exceeds {self._max_header} bytes", 413)
            length = self._content_length(bytes(buf[: head_end + 2]))
            end = head_end + 4 + length
            if len(buf) < end:
                self._scanned = head_end
                break
            message = bytes(buf[:end])
            del buf[:end]
            self._scanned = 0
            try:
                events.append(_parse(message, stream=True))
            except ParseError as exc:
                events.append(InvalidMessage(exc, message))
            except (
                ValueError,
                IndexError,
                UnicodeError,
                TypeError,
                AttributeError,
                KeyError,
            ) as exc:
                events.append(InvalidMessage(ParseError(f"unparseable message ({exc!r})"), message))
        if len(buf) > self._max_header + self._max_body + MAX_KEEPALIVE_BYTES:
            raise ParseError("stream buffer limit exceeded", 413)

    def _content_length(self, head: bytes) -> int:
        values = {_FOLD.sub(b" ", m.group(1)).strip(b" \t") for m in _CONTENT_LENGTH.finditer(head)}
        if not values:
            raise ParseError("Content-Length is required on stream transports (RFC 3261 §18.3)")
        if len(values) > 1:
            raise ParseError("conflicting Content-Length values on a stream")
        value = values.pop()
        if not value.isdigit():
            raise ParseError(f"Content-Length is not a number: {value[:20]!r}")
        if len(value) > 9 or int(value) > self._max_body:
            raise ParseError(f"Content-Length above {self._max_body}", 413)
        return int(value)
