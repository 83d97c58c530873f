"""enx-voice's SIP stack: a sans-IO message layer (parser, URIs, headers, SDP).

``parse(data)`` reads one datagram; :class:`StreamFramer` frames TCP/TLS streams. Both raise only
:class:`ParseError`, which carries the SIP status to answer with. Nothing here opens a socket or reads
the clock.
"""

from .errors import LocalProtocolError, ParseError, SipError, StatelessReplyInfo
from .framer import InvalidMessage, KeepAlive, StreamFramer
from .headers import canonical_name, header_key
from .message import (
    Message,
    Request,
    Response,
    make_response,
    parse,
    reason_phrase,
    stateless_reply,
)
from .values import (
    Auth,
    Contact,
    ContentType,
    CSeq,
    NameAddr,
    RAck,
    Reason,
    RetryAfter,
    SessionExpires,
    Via,
)

__all__ = [
    "Auth",
    "CSeq",
    "Contact",
    "ContentType",
    "InvalidMessage",
    "KeepAlive",
    "LocalProtocolError",
    "Message",
    "NameAddr",
    "ParseError",
    "RAck",
    "Reason",
    "Request",
    "Response",
    "RetryAfter",
    "SessionExpires",
    "SipError",
    "StatelessReplyInfo",
    "StreamFramer",
    "Via",
    "canonical_name",
    "header_key",
    "make_response",
    "parse",
    "reason_phrase",
    "stateless_reply",
]
