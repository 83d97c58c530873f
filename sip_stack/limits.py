"""Resource limits of the message layer.

Each limit is a named constant with the reason for its value (h11's ``DEFAULT_MAX_INCOMPLETE_EVENT_SIZE``
habit). They bound the work and memory a single peer can make us spend on one message, so that a scanner
or a broken carrier cannot slow down everyone else's calls.
"""

from __future__ import annotations

#: Largest UDP datagram accepted. An IPv4/IPv6 UDP payload cannot exceed 65,535 - 8 - 20 bytes; anything
#: bigger is not a datagram we could have received. RFC 3261 §18.1.1 wants messages over 1300 bytes on
#: TCP, but carriers still send 2-4 KB INVITEs over UDP with fragmentation, so we accept up to the hard max.
MAX_DATAGRAM_SIZE = 65_507

#: Largest header section (start line + headers + blank line). A real carrier INVITE with a long
#: Record-Route set and P-headers is 2-4 KB, and RFC 4475's longreq (34 Via lines, a 155-character tag,
#: a 593-byte line) is 3.4 KB; 64 KiB leaves ample room for odd-but-valid messages while keeping a
#: stream peer from making us buffer without bound before a message is even framed.
MAX_HEADER_SECTION_SIZE = 65_536

#: Most header fields (lines, after unfolding) in one message. Real messages carry 10-40; RFC 4475's
#: longreq has 43. 256 stops a header-count flood, each field costing a tuple and an index entry.
MAX_HEADER_COUNT = 256

#: Longest header line (folding included). The longest real ones are Identity (about 1 KB) and a long
#: Record-Route or P-Asserted-Identity list; RFC 4475's longreq peaks at 593 bytes. 16 KiB is far above
#: all of them, and a longer line is a peer trying to make one value expensive to split and scan.
MAX_LINE_LENGTH = 16_384

#: Largest body. SDP offers are under 4 KB, multipart with ISUP under 8 KB; INFO/MESSAGE bodies are tiny.
#: 1 MiB is far above any SIP use and still bounds what a stream peer can make us hold per message.
MAX_BODY_SIZE = 1_048_576

#: Most values in one comma-separated header field or parameters in one value (Via, Route, Contact ...).
#: A proxy chain longer than 1024 hops is an attack, not routing (Max-Forwards caps real ones at 255).
MAX_HEADER_VALUES = 1024

#: Longest request line (method SP Request-URI SP version). Request-URIs above 8 KB are answered
#: 414 Request-URI Too Long (RFC 3261 §21.4.12) rather than parsed.
MAX_REQUEST_URI_LENGTH = 8192

#: Keep-alive CRLFs a stream framer skips between messages before it counts them against the header
#: section size (RFC 5626 §3.5.1 double-CRLF pings arrive every 30 s or so; a stream of only CRLFs is junk).
MAX_KEEPALIVE_BYTES = 4096
