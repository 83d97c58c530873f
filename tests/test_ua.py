"""The asyncio user agent: two UAs on loopback, a call end to end, glare, 481, §8.2, and a garbage flood
that leaves no transaction, dialog or timer behind."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sip_stack import Response, parse
from sip_stack.transaction import TimerConfig
from sip_stack.transport import Address, ListenSpec
from sip_stack.ua import (
    DialogConfirmed,
    DialogCreated,
    DialogEvent,
    DialogTerminated,
    IncomingRequest,
    UserAgent,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc4475"
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def answer_everything(seen: list[str]) -> object:
    def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming.method)
        if incoming.method == "INVITE":
            incoming.respond(200, body=SDP, content_type="application/sdp")
        elif incoming.method != "ACK":
            incoming.respond(200)

    return handler


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UserAgent, UserAgent, list[str], list[str]]]:
    a = UserAgent([ListenSpec("udp", "127.0.0.1", 0)])
    b = UserAgent([ListenSpec("udp", "127.0.0.1", 0)])
    seen_a: list[str] = []
    seen_b: list[str] = []
    a.on_request = answer_everything(seen_a)  # type: ignore[assignment]
    b.on_request = answer_everything(seen_b)  # type: ignore[assignment]
    await a.start()
    await b.start()
    try:
        yield a, b, seen_a, seen_b
    finally:
        await a.close()
        await b.close()


def address(ua: UserAgent) -> Address:
    return ua.transport.listening[0]


async def call(a: UserAgent, b: UserAgent) -> tuple[object, Response]:
    target = address(b)
    invite = a.new_request(
        "INVITE", f"sip:bob@127.0.0.1:{target.port}", from_uri="sip:alice@127.0.0.1",
        headers=[("Content-Type", "application/sdp")], body=SDP,
    )  # fmt: skip
    client = await a.send(invite, target)
    return client, await client.final(timeout=5)


async def test_a_call_end_to_end_with_dialog_events(
    pair: tuple[UserAgent, UserAgent, list[str], list[str]],
) -> None:
    a, b, _, seen_b = pair
    events_a: list[DialogEvent] = []
    events_b: list[DialogEvent] = []
    a.on_dialog_event(events_a.append)
    b.on_dialog_event(events_b.append)
    client, final = await call(a, b)
    assert final.status == 200
    dialog_a = client.dialog  # type: ignore[attr-defined]
    assert dialog_a is not None and len(a.dialogs) == 1
    for _ in range(50):
        if "ACK" in seen_b or len(b.dialogs) == 1:
            break
        await asyncio.sleep(0.02)
    (dialog_b,) = list(b.dialogs)
    assert dialog_b.call_id == dialog_a.call_id and dialog_b.remote_tag == dialog_a.local_tag
    info = await b.send_in_dialog(
        dialog_b,
        "INFO",
        headers=[("Content-Type", "application/dtmf-relay")],
        body=b"Signal=5\r\nDuration=160\r\n",
    )
    assert (await info.final(timeout=5)).status == 200
    bye = await a.send_in_dialog(dialog_a, "BYE")
    assert (await bye.final(timeout=5)).status == 200
    await asyncio.sleep(0.05)
    assert seen_b[:1] == ["INVITE"] and "BYE" in seen_b
    assert len(a.dialogs) == 0 and len(b.dialogs) == 0
    assert [type(e) for e in events_a] == [DialogCreated, DialogTerminated]
    assert [type(e) for e in events_b] == [DialogCreated, DialogConfirmed, DialogTerminated]
    confirmed = events_b[1]
    assert isinstance(confirmed, DialogConfirmed) and confirmed.ack.method == "ACK"


async def test_request_in_unknown_dialog_gets_481_and_unknown_method_405(
    pair: tuple[UserAgent, UserAgent, list[str], list[str]],
) -> None:
    a, b, _, seen_b = pair
    target = address(b)
    bye = a.new_request("BYE", f"sip:bob@127.0.0.1:{target.port}", from_uri="sip:alice@127.0.0.1")
    bye.set_header("To", f"<sip:bob@127.0.0.1:{target.port}>;tag=nosuchdialog")
    assert (await (await a.send(bye, target)).final(timeout=5)).status == 481
    message = a.new_request("MESSAGE", f"sip:bob@127.0.0.1:{target.port}", from_uri="sip:alice@127.0.0.1")
    final = await (await a.send(message, target)).final(timeout=5)
    assert final.status == 405 and "INVITE" in (final.header("allow") or "")
    assert seen_b == []  # neither reached the application


async def test_reinvite_glare_resolves_with_backoff(
    pair: tuple[UserAgent, UserAgent, list[str], list[str]],
) -> None:
    a, b, _, _ = pair
    client, final = await call(a, b)
    assert final.status == 200
    await asyncio.sleep(0.1)
    dialog_a = client.dialog  # type: ignore[attr-defined]
    (dialog_b,) = list(b.dialogs)
    results = await asyncio.wait_for(
        asyncio.gather(a.reinvite(dialog_a, body=SDP), b.reinvite(dialog_b, body=SDP)), timeout=15
    )
    assert [r.status for r in results] == [200, 200]


async def test_garbage_flood_leaves_nothing_behind() -> None:
    fast = TimerConfig(t1=0.01, t2=0.04, t4=0.05)
    ua = UserAgent([ListenSpec("udp", "127.0.0.1", 0)], timers=fast)
    seen: list[str] = []
    ua.on_request = answer_everything(seen)  # type: ignore[assignment]
    await ua.start()
    target = address(ua)
    rng = random.Random(11)
    seeds = [p.read_bytes() for p in sorted(VECTORS.glob("*.dat"))]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            for i in range(10_000):
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randint(0, 3)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if i % 10 == 0:
                    data = bytearray(rng.randbytes(rng.randint(1, 200)))
                with contextlib.suppress(BlockingIOError):
                    sock.sendto(bytes(data), ("127.0.0.1", target.port))
                if i % 50 == 0:
                    await asyncio.sleep(0.01)  # let the server drain its socket buffer
            await asyncio.sleep(0.5)
            assert ua.transport.stats.snapshot()["datagrams_received"] > 9000
            # every timer runs out (64*T1 = 0.64 s here): nothing may stay
            for _ in range(100):
                if ua.transactions.active == 0 and len(ua.dialogs) == 0:
                    break
                await asyncio.sleep(0.1)
            assert ua.transactions.active == 0
            assert len(ua.dialogs) == 0
            assert not ua._incoming and not ua._outgoing
            assert ua.transactions.stats.created == ua.transactions.stats.terminated > 100
            # and it still answers
            probe = (
                f"OPTIONS sip:127.0.0.1:{target.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKafter;rport\r\n"
                "From: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: after\r\nCSeq: 1 OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            loop = asyncio.get_running_loop()
            while True:  # drop the replies to the flood still queued on our socket
                try:
                    sock.recv(65535)
                except BlockingIOError:
                    break
            await loop.sock_sendto(sock, probe, ("127.0.0.1", target.port))
            for _ in range(20):
                reply = parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), 2))
                if isinstance(reply, Response) and reply.call_id == "after":
                    assert reply.status == 200
                    break
            else:
                raise AssertionError("no answer after the flood")
    finally:
        await ua.close()
