"""The stack against a real peer: SIPp on loopback, against examples/uas.py and a UAC built on sip_stack.

Every scenario runs over UDP and TCP; `-lost 10` calls still complete; the RFC 4475 messages sent on
the wire get their answer and the server still takes the next call. Each test starts and stops its own
processes on ephemeral ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sip_stack import Response
from sip_stack.auth import DigestClient
from sip_stack.offer_answer import build_answer
from sip_stack.sdp import Origin, parse_sdp
from sip_stack.transport import Address, ListenSpec
from sip_stack.ua import IncomingRequest, UserAgent
from tests.sipp import (
    DIGEST_PASSWORD,
    DIGEST_USERNAME,
    SCENARIO_DIR,
    SHORT_TIMEWAIT,
    SippServer,
    free_port,
    lost_args,
    run_sipp,
    sipp_binary,
)

ROOT = Path(__file__).resolve().parent.parent
RFC4475 = Path(__file__).parent / "vectors" / "rfc4475"
TRANSPORTS = {"udp": "u1", "tcp": "t1"}


@contextmanager
def example_uas(*args: str) -> Iterator[tuple[int, Path]]:
    """Run examples/uas.py on UDP and TCP at a free port; stop it (SIGTERM, then kill) afterwards."""
    sipp_binary()  # SIPp tests fail in CI when sipp is missing
    port = free_port("both")
    log = Path(tempfile.mkstemp(prefix="uas-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "uas.py"), "--listen", f"127.0.0.1:{port}",
             "--transport", "udp", "--transport", "tcp", *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not answers_options(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"example UAS did not start:\n{log.read_text(errors='replace')}")
        yield port, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.unlink(missing_ok=True)


def answers_options(port: int) -> bool:
    """True once the server answers an OPTIONS over UDP (it binds UDP and TCP together)."""
    probe = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKready;rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ready\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    try:
        response = udp_exchange(port, probe, timeout=0.2)
    except ConnectionRefusedError:
        time.sleep(0.1)
        return False
    return response == 200


def run(scenario: str, port: int, transport: str, *, calls: int = 1, extra: tuple[str, ...] = ()) -> None:
    result = run_sipp(
        SCENARIO_DIR / scenario if scenario.endswith(".xml") else scenario,
        f"127.0.0.1:{port}",
        local_port=free_port("both"),
        transport=TRANSPORTS[transport],  # type: ignore[arg-type]
        calls=calls,
        rate=50,
        timeout=30,
        variables=timewait(scenario),
        extra_args=extra,
    )
    result.raise_for_failure()
    assert result.successful == calls and result.failed == 0


def timewait(scenario: str) -> dict[str, str] | None:
    """The short linger for scenarios that declare it (they re-ACK retransmissions meanwhile)."""
    path = SCENARIO_DIR / scenario
    return SHORT_TIMEWAIT if path.suffix == ".xml" and "timewait_ms" in path.read_text() else None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_example_uas_scenarios(transport: str) -> None:
    with example_uas() as (port, log):
        run("uac", port, transport, calls=5, extra=("-d", "100"))
        run("uac_invite_bye.xml", port, transport, calls=3)
        run("uac_options.xml", port, transport)
        run("uac_reinvite.xml", port, transport)
        run("uac_update.xml", port, transport)
        run("uac_session_timer.xml", port, transport)
        run("uac_too_small_session_timer.xml", port, transport)
        run("uac_prack.xml", port, transport)
        time.sleep(0.3)
        lines = [ln for ln in log.read_text().splitlines() if " call call_id=" in ln]
        assert len(lines) >= 5 + 3 + 4  # one line per call that was answered
        assert all("end=BYE_received" in ln for ln in lines)


def test_session_refreshed_by_reinvite_when_the_peer_does_not_allow_update() -> None:
    """RFC 4028 §9 with a carrier whose Allow has no UPDATE: the example refreshes by re-INVITE
    (with its SDP), inside the 4 s interval; the UAS runs with Min-SE 2, a lab setting."""
    with example_uas("--min-se", "2") as (port, _):
        run("uac_session_timer_no_update.xml", port, "udp")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_cancel_before_answer(transport: str) -> None:
    with example_uas("--ring-ms", "3000") as (port, _):
        run("uac_cancel.xml", port, transport, calls=2)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_digest_challenge_from_the_uas(transport: str) -> None:
    with example_uas("--auth", f"{DIGEST_USERNAME}:{DIGEST_PASSWORD}") as (port, _):
        run("uac_digest.xml", port, transport)


def test_ten_percent_loss_every_call_completes() -> None:
    with example_uas("--log-level", "WARNING") as (port, _):
        run("uac", port, "udp", calls=60, extra=(*lost_args(10), "-d", "100"))


# -------------------------------------------------------------------- RFC 4475 on the wire

ANSWERS = {
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400, "quotbal.dat": 400,
    "ltgtruri.dat": 400, "lwsruri.dat": 400, "lwsstart.dat": 400, "trws.dat": 400, "baddn.dat": 400,
    "badvers.dat": 505, "mismatch01.dat": 400, "mismatch02.dat": 501, "multi01.dat": 400,
    "mcl01.dat": 400, "insuf.dat": 400, "unkscm.dat": 416, "novelsc.dat": 416, "bext01.dat": 420,
    "invut.dat": 415, "intmeth.dat": 405, "esc02.dat": 405,
}  # fmt: skip


def udp_exchange(port: int, data: bytes, timeout: float = 2.0) -> int | None:
    """Send one datagram; the status code of the reply, or None. A stateless reply copies the
    request's headers byte-for-byte, malformed ones too, so only its status line is read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        # the messages' Vias name other hosts: point the reply at us through received/rport
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            reply, _ = sock.recvfrom(65535)
        except TimeoutError:
            return None
    assert reply.startswith(b"SIP/2.0 "), reply[:60]
    return int(reply[8:11])


def readdress(data: bytes, unique: str) -> bytes:
    """Make the top Via ask for rport, so the reply comes back to our socket (RFC 3581), and make its
    branch unique: several RFC 4475 messages share one, and to a server that has seen one of them the
    next is a retransmission, whose answer goes to the first sender (RFC 3261 §17.2.3)."""
    data = data.replace(b"branch=z9hG4bK", b"branch=z9hG4bK" + unique.encode(), 1)
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith((b"via:", b"v:")):
            lines[i] = line + b";rport"
            break
    return b"\r\n".join(lines) + sep + body


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_rfc4475_messages_over_udp_get_their_answer(name: str, shared_uas: int) -> None:
    status = udp_exchange(shared_uas, readdress((RFC4475 / name).read_bytes(), name.split(".")[0]))
    assert status == ANSWERS[name], (name, status)


@pytest.fixture(scope="module")
def shared_uas() -> Iterator[int]:
    with example_uas("--log-level", "WARNING") as (port, _):
        yield port
        # the server still takes calls after all the torture
        run("uac", port, "udp", calls=2, extra=("-d", "100"))


#: Messages whose Content-Length cannot frame them on a stream: the server waits for more
#: (clerr, baddn) or closes the connection (ncl, mcl01), and answers nothing.
UNFRAMEABLE = {"clerr.dat", "baddn.dat", "ncl.dat", "mcl01.dat"}


def test_rfc4475_messages_over_tcp_get_their_answer_and_never_stop_the_server() -> None:
    with example_uas("--log-level", "WARNING") as (port, _):
        for path in sorted(RFC4475.glob("*.dat")):
            data = readdress(path.read_bytes(), path.stem)
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(data)
                conn.settimeout(1.0)
                try:
                    reply = conn.recv(65535)
                except (TimeoutError, ConnectionResetError):
                    reply = b""
            if path.name in ANSWERS and path.name not in UNFRAMEABLE:
                assert reply.startswith(b"SIP/2.0 "), f"no answer to {path.name} over TCP"
                assert int(reply[8:11]) == ANSWERS[path.name], (path.name, reply[:40])
            elif path.name in UNFRAMEABLE:
                assert not reply.startswith(b"SIP/2.0 "), (path.name, reply[:40])
        run("uac", port, "tcp", calls=3, extra=("-d", "100"))


# ---------------------------------------------------------------- our UAC against SIPp UASes


async def uac(port_to: int, scenario: str, *, transport: str = "udp", credentials: DigestClient | None = None,
              on_request: object = None) -> tuple[Response, UserAgent, object]:  # fmt: skip
    ua = UserAgent([ListenSpec(transport, "127.0.0.1", 0)])  # type: ignore[arg-type]
    if on_request is not None:
        ua.on_request = on_request  # type: ignore[assignment]
    await ua.start()
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    )
    invite = ua.new_request(
        "INVITE", f"sip:service@127.0.0.1:{port_to}", from_uri="sip:enx@127.0.0.1",
        headers=[("Content-Type", "application/sdp"), ("Supported", "100rel, timer")], body=sdp,
        transport=transport,  # type: ignore[arg-type]
    )  # fmt: skip
    client = await ua.send(invite, Address(transport, "127.0.0.1", port_to), credentials=credentials)  # type: ignore[arg-type]
    final = await client.final(timeout=10)
    return final, ua, client


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_stack_uac_calls_sipp_uas(transport: str) -> None:
    sipp_binary()
    port = free_port("both")
    async with SippServer(
        SCENARIO_DIR / "uas_basic.xml",
        local_port=port,
        transport=TRANSPORTS[transport],
        variables=timewait("uas_basic.xml"),
    ) as uas:  # type: ignore[arg-type]
        final, ua, client = await uac(port, "uas_basic.xml", transport=transport)
        try:
            assert final.status == 200
            dialog = client.dialog  # type: ignore[attr-defined]
            assert dialog is not None
            bye = await ua.send_in_dialog(dialog, "BYE", destination=Address(transport, "127.0.0.1", port))  # type: ignore[arg-type]
            assert (await bye.final(timeout=10)).status == 200
        finally:
            await ua.close()
        result = await uas.stop_async(drain=2)
    assert result.successful >= 1 and result.failed == 0, result.describe()


async def test_stack_uac_pracks_a_reliable_provisional() -> None:
    sipp_binary()
    port = free_port("both")
    async with SippServer(
        SCENARIO_DIR / "uas_prack.xml", local_port=port, variables=timewait("uas_prack.xml")
    ) as uas:
        final, ua, client = await uac(port, "uas_prack.xml")
        try:
            assert final.status == 200
            bye = await ua.send_in_dialog(client.dialog, "BYE", destination=Address("udp", "127.0.0.1", port))  # type: ignore[attr-defined]
            await bye.final(timeout=10)
        finally:
            await ua.close()
        result = await uas.stop_async(drain=2)
    assert result.failed == 0, result.describe()


async def test_stack_uac_answers_a_digest_challenge() -> None:
    sipp_binary()
    port = free_port("both")
    async with SippServer(
        SCENARIO_DIR / "uas_digest.xml", local_port=port, variables=timewait("uas_digest.xml")
    ) as uas:
        final, ua, client = await uac(
            port, "uas_digest.xml", credentials=DigestClient(DIGEST_USERNAME, DIGEST_PASSWORD)
        )
        try:
            assert final.status == 200
            assert client.auth_attempts == 1  # type: ignore[attr-defined]
            assert client.request.authorization  # type: ignore[attr-defined]
            bye = await ua.send_in_dialog(client.dialog, "BYE", destination=Address("udp", "127.0.0.1", port))  # type: ignore[attr-defined]
            await bye.final(timeout=10)
        finally:
            await ua.close()
        result = await uas.stop_async(drain=2)
    assert result.failed == 0, result.describe()


async def test_stack_uac_answers_a_reinvite_from_sipp() -> None:
    sipp_binary()
    port = free_port("both")
    seen: list[str] = []

    def answer(incoming: IncomingRequest) -> None:
        seen.append(incoming.method)
        if incoming.method == "INVITE":
            offer = parse_sdp(incoming.request.body)
            sdp = build_answer(offer, codecs=[("PCMU", 8000)], address="127.0.0.1", port=40000,
                               origin=Origin.for_address("127.0.0.1", 7))  # fmt: skip
            incoming.respond(200, body=sdp.serialize(), content_type="application/sdp")
        else:
            incoming.respond(200)

    async with SippServer(
        SCENARIO_DIR / "uas_sends_reinvite.xml", local_port=port, variables=timewait("uas_sends_reinvite.xml")
    ) as uas:
        final, ua, _ = await uac(port, "uas_sends_reinvite.xml", on_request=answer)
        try:
            assert final.status == 200
            for _ in range(100):
                if "BYE" in seen:
                    break
                await asyncio.sleep(0.05)
        finally:
            await ua.close()
        result = await uas.stop_async(drain=2)
    assert seen[:1] == ["INVITE"] and "BYE" in seen
    assert result.failed == 0, result.describe()
