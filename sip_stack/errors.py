"""Errors of the SIP message layer, sorted by whose fault they are.

A :class:`ParseError` is the peer's fault (h11's ``RemoteProtocolError``): it carries the SIP status to
answer with and a reason phrase, and, when the request's Via, From, To, Call-ID and CSeq could be read,
the :class:`StatelessReplyInfo` needed to build that answer without a transaction (RFC 3261 §8.2.6,
§16.3). A :class:`LocalProtocolError` is our own bug: an application tried to build something that
cannot be sent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatelessReplyInfo:
    """What a stateless reply to a bad request copies from it (RFC 3261 §8.2.6.2).

    Each value is the raw header field value exactly as received; ``vias`` keeps every Via value in
    order, because the reply must carry all of them (RFC 3261 §8.2.6.2: "the Via header field values
    ... MUST equal the Via header field values in the request"). The Via is what routes the reply
    back (§18.2.2), so it is required; the others are copied when present, because RFC 4475 §3.3.1
    wants even a request missing From, To and Call-ID answered with a 400.
    """

    method: str
    vias: tuple[bytes, ...]
    from_: bytes | None
    to: bytes | None
    call_id: bytes | None
    cseq: bytes | None


class SipError(Exception):
    """Base class of every error ``sip_stack`` raises on purpose."""


class ParseError(SipError):
    """The peer sent something we cannot accept.

    ``status`` is the SIP status code to answer a request with (400, 413, 414, 416, 420, 505 ...);
    for a response, which is never answered, it says why it was dropped. ``reason`` is the reason phrase
    to send, and names the exact fault so that the peer's engineer can find it.
    """

    status: int
    reason: str
    reply_info: StatelessReplyInfo | None
    is_request: bool | None

    def __init__(
        self,
        reason: str,
        status: int = 400,
        *,
        reply_info: StatelessReplyInfo | None = None,
        is_request: bool | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.reply_info = reply_info
        self.is_request = is_request

    @property
    def can_reply(self) -> bool:
        """True when this was a request and enough of it was read to send a stateless reply."""
        return self.reply_info is not None


class LocalProtocolError(SipError):
    """We tried to build or send something that breaks the protocol: a bug on our side."""
