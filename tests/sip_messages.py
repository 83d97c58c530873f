"""Hand-written SIP messages shared by the message-layer tests: what carriers and gateways send."""

from __future__ import annotations

SDP = (
    b"v=0\r\n"
    b"o=- 123456 654321 IN IP4 203.0.113.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 203.0.113.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

CARRIER_INVITE = (
    b"INVITE sip:+15550100@198.51.100.10:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-524287-1---7a8d2c1f9e3b;rport\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.9:5060;received=192.0.2.7;branch=z9hG4bK3f9a.8b1c.0\r\n"
    b"Record-Route: <sip:203.0.113.5;lr;ftag=as5c1d2e3f>\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "+14155550123" <sip:+14155550123@203.0.113.9;user=phone>;tag=as5c1d2e3f\r\n'
    b"To: <sip:+15550100@198.51.100.10;user=phone>\r\n"
    b"Contact: <sip:+14155550123@203.0.113.5:5060;transport=udp>\r\n"
    b"Call-ID: 3c2f4e1a7b9d@203.0.113.9\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"P-Asserted-Identity: <sip:+14155550123@203.0.113.9;user=phone>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Min-SE: 90\r\n"
    b"User-Agent: CarrierSBC 4.2\r\n"
    b"X-Carrier-Trace: 0a1b2c;;weird , value\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKb2b-1;rport=5060;received=198.51.100.10\r\n"
    b"From: <sip:+14155550123@198.51.100.10>;tag=b2b-from\r\n"
    b"To: <sip:room@127.0.0.1:5090>;tag=gw-77\r\n"
    b"Call-ID: b2b-leg-2@198.51.100.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:gw@127.0.0.1:5090>\r\n"
    b"Record-Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

BYE = (
    b"BYE sip:gw@127.0.0.1:5090 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 198.51.100.10:5060;branch=z9hG4bKbye1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+14155550123@198.51.100.10>;tag=b2b-from\r\n"
    b"To: <sip:room@127.0.0.1:5090>;tag=gw-77\r\n"
    b"Call-ID: b2b-leg-2@198.51.100.10\r\n"
    b"CSeq: 2 BYE\r\n"
    b'Reason: Q.850;cause=16;text="Normal call clearing"\r\n'
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def options(call_id: str = "opt-1", branch: str = "z9hG4bKopt1", extra: bytes = b"") -> bytes:
    return (
        b"OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=" + branch.encode() + b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:probe@127.0.0.1:5070>;tag=p1\r\n"
        b"To: <sip:127.0.0.1:5060>\r\n"
        b"Call-ID: " + call_id.encode() + b"\r\n"
        b"CSeq: 1 OPTIONS\r\n" + extra + b"Content-Length: 0\r\n"
        b"\r\n"
    )
