"""The user agent against a scripted raw peer on loopback: the cases a real peer makes rare but a
carrier makes daily (lost ACKs, forks, CANCEL races, broken headers, silent far ends)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from sip_stack import LocalProtocolError, Request, Response, make_response, parse
from sip_stack.dns import ServerLocator
from sip_stack.transaction import TimerConfig
from sip_stack.transaction_layer import build_cancel
from sip_stack.transport import Address, ListenSpec
from sip_stack.ua import ClientRequest, IncomingRequest, UserAgent
from tests.test_dns import ServerFactory

FAST = TimerConfig(t1=0.01, t2=0.04, t4=0.05)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


class RawPeer:
    """A UDP socket the test drives message by message."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()

    async def recv(self, timeout: float = 2.0) -> Request | Response:
        data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65535), timeout)
        return parse(data)

    async def recv_request(self, method: str, timeout: float = 2.0) -> Request:
        while True:
            msg = await self.recv(timeout)
            if isinstance(msg, Request) and msg.method == method:
                return msg

    async def send(self, message: Request | Response, port: int) -> None:
        await self.loop.sock_sendto(self.sock, message.serialize(), ("127.0.0.1", port))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def ua() -> AsyncIterator[UserAgent]:
    agent = UserAgent([ListenSpec("udp", "127.0.0.1", 0)], timers=FAST)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.close()


@pytest.fixture
async def peer() -> AsyncIterator[RawPeer]:
    raw = RawPeer()
    try:
        yield raw
    finally:
        raw.close()


def ua_port(ua: UserAgent) -> int:
    return ua.transport.listening[0].port


async def invite_to(ua: UserAgent, peer: RawPeer) -> tuple[ClientRequest, Request]:
    invite = ua.new_request(
        "INVITE", f"sip:bob@127.0.0.1:{peer.port}", from_uri="sip:alice@127.0.0.1",
        headers=[("Content-Type", "application/sdp")], body=SDP,
    )  # fmt: skip
    client = await ua.send(invite, Address("udp", "127.0.0.1", peer.port))
    received = await peer.recv_request("INVITE")
    return client, received


def reply(request: Request, status: int, tag: str, port: int, *, contact: str | None = None) -> Response:
    headers = [("Contact", contact or f"<sip:bob@127.0.0.1:{port}>")]
    return make_response(request, status, to_tag=tag, headers=headers, body=SDP if status == 200 else b"")


async def quiet(ua: UserAgent, seconds: float = 1.5) -> None:
    """Let every (fast) timer run out."""
    for _ in range(int(seconds / 0.05)):
        if ua.transactions.active == 0:
            break
        await asyncio.sleep(0.05)


async def test_a_retransmitted_2xx_is_acked_again(ua: UserAgent, peer: RawPeer) -> None:
    client, invite = await invite_to(ua, peer)
    ok = reply(invite, 200, "b1", peer.port)
    await peer.send(ok, ua_port(ua))
    first = await peer.recv_request("ACK")
    for _ in range(2):  # as a UAS does while its ACK is lost (RFC 3261 §13.3.1.4)
        await peer.send(ok, ua_port(ua))
        again = await peer.recv_request("ACK")
        assert again.serialize() == first.serialize()
    assert (await client.final(timeout=2)).status == 200


async def test_a_second_fork_is_acked_and_released_and_early_forks_end(ua: UserAgent, peer: RawPeer) -> None:
    client, invite = await invite_to(ua, peer)
    await peer.send(reply(invite, 180, "forkA", peer.port), ua_port(ua))
    await peer.send(reply(invite, 200, "forkB", peer.port), ua_port(ua))
    ack = await peer.recv_request("ACK")
    assert ack.to.tag == "forkB"
    assert (await client.final(timeout=2)).to.tag == "forkB"
    await peer.send(reply(invite, 200, "forkC", peer.port), ua_port(ua))
    ack_c = await peer.recv_request("ACK")
    bye_c = await peer.recv_request("BYE")
    assert ack_c.to.tag == "forkC" and bye_c.to.tag == "forkC"  # RFC 3261 §13.2.2.4
    await peer.send(make_response(bye_c, 200), ua_port(ua))
    await quiet(ua)
    tags = {d.remote_tag for d in ua.dialogs}
    assert tags == {"forkB"}  # forkA (early, never answered) ended with the INVITE transaction


async def test_non_2xx_after_provisional_ends_the_early_dialog(ua: UserAgent, peer: RawPeer) -> None:
    client, invite = await invite_to(ua, peer)
    await peer.send(reply(invite, 180, "e1", peer.port), ua_port(ua))
    await peer.send(reply(invite, 486, "e1", peer.port), ua_port(ua))
    assert (await client.final(timeout=2)).status == 486
    assert len(ua.dialogs) == 0  # (the transaction itself lingers for Timer D, 32 s on UDP, §17.1.1.2)


async def test_a_2xx_with_a_broken_contact_still_completes_the_request(ua: UserAgent, peer: RawPeer) -> None:
    client, invite = await invite_to(ua, peer)
    broken = reply(invite, 200, "x", peer.port)
    await peer.send(parse(broken.serialize().replace(b">\r\n", b"\r\n", 1)), ua_port(ua))  # type: ignore[arg-type]
    assert (await client.final(timeout=2)).status == 200
    await quiet(ua)
    assert not ua._outgoing and len(ua.dialogs) == 0


async def test_cancel_of_a_silent_invite_ends_it_after_64_t1(ua: UserAgent, peer: RawPeer) -> None:
    client, invite = await invite_to(ua, peer)
    await peer.send(reply(invite, 180, "s1", peer.port), ua_port(ua))
    await asyncio.sleep(0.05)
    ua.cancel(client)
    cancel = await peer.recv_request("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    await peer.send(make_response(cancel, 200, to_tag="s1"), ua_port(ua))  # and never a 487
    final = await client.final(timeout=3)
    assert final.status == 408
    await quiet(ua)
    assert not ua._outgoing and len(ua.dialogs) == 0 and ua.transactions.active == 0


async def test_respond_after_cancel_raises_and_nothing_is_left(ua: UserAgent, peer: RawPeer) -> None:
    held: list[IncomingRequest] = []
    ua.on_request = held.append  # type: ignore[assignment]
    invite = parse(
        f"INVITE sip:bob@127.0.0.1:{ua_port(ua)} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKraw1\r\n"
        f"From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: raw-cancel\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@127.0.0.1:{peer.port}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(invite, Request)
    await peer.send(invite, ua_port(ua))
    for _ in range(40):
        if held:
            break
        await asyncio.sleep(0.01)
    (incoming,) = held
    incoming.respond(180)
    await peer.send(build_cancel(invite), ua_port(ua))
    statuses = set()
    while not {200, 487} <= statuses:
        msg = await peer.recv()
        if isinstance(msg, Response):
            statuses.add(msg.status)
    with pytest.raises(LocalProtocolError):
        incoming.respond(200)  # the race of an IVR answering as the caller hangs up
    assert incoming.cancelled.is_set()
    await quiet(ua)
    assert not ua._incoming and len(ua.dialogs) == 0


async def test_invite_timeout_cancels_a_call_nobody_answers(ua: UserAgent, peer: RawPeer) -> None:
    invite = ua.new_request("INVITE", f"sip:bob@127.0.0.1:{peer.port}", from_uri="sip:alice@127.0.0.1")
    client = await ua.send(invite, Address("udp", "127.0.0.1", peer.port), timeout=0.2)
    sent = await peer.recv_request("INVITE")
    await peer.send(reply(sent, 180, "r", peer.port), ua_port(ua))
    cancel = await peer.recv_request("CANCEL", timeout=2)  # Timer C's job (RFC 3261 §16.6)
    await peer.send(make_response(cancel, 200, to_tag="r"), ua_port(ua))
    await peer.send(reply(sent, 487, "r", peer.port), ua_port(ua))
    assert (await client.final(timeout=2)).status == 487


# ---------------------------------------------------------------- RFC 3263 §4.3: the next server


async def two_server_trunk(fake_dns: ServerFactory, first: RawPeer, second: RawPeer) -> ServerLocator:
    """trunk.test: SRV to a.trunk.test (priority 10) and b.trunk.test (priority 20), both loopback."""
    zone = {
        ("SRV", "_sip._udp.trunk.test"): [
            f"10 0 {first.port} a.trunk.test.",
            f"20 0 {second.port} b.trunk.test.",
        ],
        ("A", "a.trunk.test"): ["127.0.0.1"],
        ("A", "b.trunk.test"): ["127.0.0.1"],
    }
    locator, _ = await fake_dns(zone, use_naptr=False, transports=("udp",))
    return locator


async def options_to_trunk(ua: UserAgent) -> ClientRequest:
    options = ua.new_request("OPTIONS", "sip:trunk.test", from_uri="sip:alice@127.0.0.1")
    return await ua.send(options)


@pytest.mark.parametrize("failure", ["503", "timeout"])
async def test_the_next_srv_target_is_tried_after_a_503_or_a_timeout(
    ua: UserAgent, fake_dns: ServerFactory, failure: str
) -> None:
    first, second = RawPeer(), RawPeer()
    try:
        ua.locator = await two_server_trunk(fake_dns, first, second)
        client = await options_to_trunk(ua)
        tried = await first.recv_request("OPTIONS")
        if failure == "503":
            await first.send(make_response(tried, 503, to_tag="a"), ua_port(ua))
        retried = await second.recv_request("OPTIONS", timeout=5.0)  # FAST timers: Timer F is 0.64 s
        assert retried.top_via.branch != tried.top_via.branch
        assert retried.cseq.seq == tried.cseq.seq + 1 and retried.call_id == tried.call_id
        await second.send(make_response(retried, 200, to_tag="b"), ua_port(ua))
        final = await client.final(5.0)
        assert final.status == 200
        assert [a.port for a in client.tried] == [first.port, second.port]
    finally:
        first.close()
        second.close()


async def test_when_every_srv_target_fails_the_last_failure_is_the_answer(
    ua: UserAgent, fake_dns: ServerFactory
) -> None:
    first, second = RawPeer(), RawPeer()
    try:
        ua.locator = await two_server_trunk(fake_dns, first, second)
        client = await options_to_trunk(ua)
        for server in (first, second):
            request = await server.recv_request("OPTIONS")
            await server.send(make_response(request, 503, to_tag="x"), ua_port(ua))
        final = await client.final(5.0)
        assert final.status == 503 and len(client.tried) == 2
    finally:
        first.close()
        second.close()


async def test_no_failover_once_the_first_server_made_an_early_dialog(
    ua: UserAgent, fake_dns: ServerFactory
) -> None:
    first, second = RawPeer(), RawPeer()
    try:
        ua.locator = await two_server_trunk(fake_dns, first, second)
        invite = ua.new_request(
            "INVITE", "sip:bob@trunk.test", from_uri="sip:alice@127.0.0.1",
            headers=[("Content-Type", "application/sdp")], body=SDP,
        )  # fmt: skip
        client = await ua.send(invite)
        received = await first.recv_request("INVITE")
        await first.send(reply(received, 180, "ring", first.port), ua_port(ua))
        await first.send(make_response(received, 503, to_tag="ring"), ua_port(ua))
        final = await client.final(5.0)
        assert final.status == 503 and len(client.tried) == 1  # the callee was ringing: not retried
        with pytest.raises(TimeoutError):
            await second.recv(0.3)
    finally:
        first.close()
        second.close()


# ------------------------------------------------------ RFC 4028 refresh: UPDATE only if allowed


def raw_invite(peer: RawPeer, ua: UserAgent, allow: str) -> Request:
    data = (
        f"INVITE sip:uas@127.0.0.1:{ua_port(ua)} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-st-{allow.count(',')}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:carrier@127.0.0.1>;tag=c1\r\nTo: <sip:uas@127.0.0.1>\r\n"
        "Call-ID: session-timer-refresh\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:carrier@127.0.0.1:{peer.port}>\r\nAllow: {allow}\r\nSupported: timer\r\n"
        "Session-Expires: 2\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize(
    "allow", ["INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE", "INVITE, ACK, BYE, CANCEL, OPTIONS"]
)
async def test_we_refresh_by_update_only_when_the_peer_allows_it(
    ua: UserAgent, peer: RawPeer, allow: str
) -> None:
    """We are the refresher (our 2xx says refresher=uas) of a 2 s session: at 1 s an UPDATE goes out
    if the peer's Allow has UPDATE; if not, the application hears RefreshSession and re-INVITEs."""
    from sip_stack.dialog import RefreshSession
    from sip_stack.ua import DialogEvent, DialogTimer

    timers: list[DialogTimer] = []

    def on_event(event: DialogEvent) -> None:
        if isinstance(event, DialogTimer) and isinstance(event.action, RefreshSession):
            timers.append(event)
            if not event.dialog.peer_allows_update:  # the application's part: re-INVITE, its SDP
                headers = [("Session-Expires", "2;refresher=uac"), ("Supported", "timer")]
                asyncio.get_running_loop().create_task(ua.reinvite(event.dialog, body=SDP, headers=headers))

    ua.on_dialog_event(on_event)

    def handle(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            headers = [("Session-Expires", "2;refresher=uas"), ("Require", "timer")]
            incoming.respond(200, headers=headers, body=SDP, content_type="application/sdp")
        else:
            incoming.respond(200)

    ua.on_request = handle
    invite = raw_invite(peer, ua, allow)
    await peer.send(invite, ua_port(ua))
    ok = await peer.recv()
    assert isinstance(ok, Response) and ok.status == 200
    ack = (
        f"ACK sip:uas@127.0.0.1:{ua_port(ua)} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-ack\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:carrier@127.0.0.1>;tag=c1\r\nTo: {ok.header('to')}\r\n"
        "Call-ID: session-timer-refresh\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    await peer.loop.sock_sendto(peer.sock, ack, ("127.0.0.1", ua_port(ua)))
    refresh = await peer.recv(3.0)
    assert isinstance(refresh, Request)
    if "UPDATE" in allow:
        assert refresh.method == "UPDATE" and refresh.header("session-expires") == "2;refresher=uac"
        assert timers  # the application is told either way
    else:
        # Nothing went out by itself: the refresh that arrives is the application's re-INVITE.
        assert refresh.method == "INVITE" and len(timers) == 1
        assert refresh.body == SDP and refresh.header("session-expires") == "2;refresher=uac"
    await peer.send(
        make_response(refresh, 200, headers=[("Session-Expires", "2;refresher=uac")]), ua_port(ua)
    )
