"""The SIPp harness (tests/sipp.py) and every scenario in tests/sipp_scenarios/, validated SIPp against SIPp.

No enx-voice code runs here: each scenario we will point at our stack is first played against a peer that
behaves as the RFC says (SIPp's built-in scenarios, our own scenarios, or a small peer in
tests/sipp_scenarios/peers/), over UDP and TCP on 127.0.0.1. The harness itself is tested for the cases a
stack test depends on: a failed call reports its error log, a run past its limit is killed and reported,
no SIPp process outlives its test, and a missing sipp fails under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
import xml.dom.minidom
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.sipp import (
    DIGEST_PASSWORD,
    DIGEST_USERNAME,
    DRACHTIO_SCENARIO_DIR,
    KILL_GRACE_S,
    PEER_SCENARIO_DIR,
    SCENARIO_DIR,
    SHORT_TIMEWAIT,
    TERM_GRACE_S,
    TIMEWAIT_VARIABLE,
    SippResult,
    SippServer,
    Transport,
    free_port,
    key_args,
    lost_args,
    run_sipp,
    run_sipp_async,
    set_args,
    sipp_binary,
)

TRANSPORTS = [pytest.param("u1", id="udp"), pytest.param("t1", id="tcp")]

# Client scenario, server scenario: each pair must end with both sides successful.
PAIRS = [
    pytest.param(
        SCENARIO_DIR / "uac_invite_bye.xml", SCENARIO_DIR / "uas_basic.xml", id="uac_invite_bye-uas_basic"
    ),
    pytest.param("uac", SCENARIO_DIR / "uas_basic.xml", id="builtin_uac-uas_basic"),
    pytest.param(SCENARIO_DIR / "uac_cancel.xml", PEER_SCENARIO_DIR / "uas_ring_cancel.xml", id="uac_cancel"),
    pytest.param(SCENARIO_DIR / "uac_options.xml", PEER_SCENARIO_DIR / "uas_options.xml", id="uac_options"),
    pytest.param(
        SCENARIO_DIR / "uac_reinvite.xml", PEER_SCENARIO_DIR / "uas_accept_reinvite.xml", id="uac_reinvite"
    ),
    pytest.param(
        SCENARIO_DIR / "uac_update.xml", PEER_SCENARIO_DIR / "uas_accept_update.xml", id="uac_update"
    ),
    pytest.param(
        SCENARIO_DIR / "uac_session_timer.xml",
        PEER_SCENARIO_DIR / "uas_session_timer.xml",
        id="uac_session_timer",
    ),
    pytest.param(
        SCENARIO_DIR / "uac_too_small_session_timer.xml",
        PEER_SCENARIO_DIR / "uas_min_se.xml",
        id="uac_too_small_session_timer",
    ),
    pytest.param(SCENARIO_DIR / "uac_prack.xml", SCENARIO_DIR / "uas_prack.xml", id="uac_prack-uas_prack"),
    pytest.param(
        SCENARIO_DIR / "uac_digest.xml", SCENARIO_DIR / "uas_digest.xml", id="uac_digest-uas_digest"
    ),
    pytest.param(
        PEER_SCENARIO_DIR / "uac_answer_reinvite.xml",
        SCENARIO_DIR / "uas_sends_reinvite.xml",
        id="uas_sends_reinvite",
    ),
]

OUR_SCENARIOS = sorted(SCENARIO_DIR.glob("*.xml"))
PEER_SCENARIOS = sorted(PEER_SCENARIO_DIR.glob("*.xml"))
DRACHTIO_FILES = [
    "LICENSE-NOTE.md",
    "uac-delayed-ack.xml",
    "uac-nosdp.xml",
    "uac-prack.xml",
    "uac-recv-reinvite.xml",
    "uac-send-reinvite-no-sdp.xml",
    "uas-reinvite-overlap.xml",
    "uas-reinvite-with-auth.xml",
    "uas-reinvite.xml",
    "uas-update-with-sdp.xml",
]

# A pair's client and server run for well under a second; these bound a misbehaving one.
PAIR_TIMEOUT_S = 10.0
SERVER_FINISH_S = 5.0


def timewait_for(scenario: Path | str) -> dict[str, str] | None:
    """Our scenarios that linger after their last message read timewait_ms; keep it short in tests."""
    if isinstance(scenario, Path) and TIMEWAIT_VARIABLE in scenario.read_text(encoding="iso-8859-1"):
        return SHORT_TIMEWAIT
    return None


def sipp_processes(marker: str | Path) -> list[str]:
    """pids of processes whose command line contains ``marker`` (each run's own directory): ``pgrep -f``,
    or the same search through /proc where procps is not installed."""
    if shutil.which("pgrep") is not None:
        found = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True, check=False)
        return found.stdout.split()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(marker).encode() in cmdline.read_bytes():
                pids.append(cmdline.parent.name)
    return pids


def option(argv: tuple[str, ...], name: str, count: int) -> tuple[str, ...]:
    """The ``count`` values following option ``name`` on a SIPp command line."""
    at = argv.index(name)
    return argv[at + 1 : at + 1 + count]


def assert_gone(*results: SippResult) -> None:
    for result in results:
        assert sipp_processes(result.run_dir) == [], f"SIPp still running for {result.run_dir}"


@pytest.fixture(scope="module", autouse=True)
def require_sipp() -> None:
    sipp_binary()


@pytest.fixture
def silent_udp_peer() -> Iterator[str]:
    """A UDP socket on loopback that swallows everything: the peer that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- scenario files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", OUR_SCENARIOS + PEER_SCENARIOS, ids=lambda p: p.relative_to(SCENARIO_DIR).as_posix()
)
def test_scenario_is_well_formed_and_says_what_it_tests(path: Path) -> None:
    document = xml.dom.minidom.parse(str(path))
    assert document.documentElement.tagName == "scenario"
    header = [node.data for node in document.childNodes if node.nodeType == node.COMMENT_NODE]
    assert header, f"{path.name} has no header comment"
    assert path.stem in header[0], f"{path.name}: the header comment should name the file"
    if path.parent == SCENARIO_DIR:
        assert "RFC" in header[0], f"{path.name}: the header comment should cite the RFC sections it checks"


def test_drachtio_vectors_are_copied_unchanged() -> None:
    """SHA256SUMS was written when the copy was made and checked byte-for-byte against the source."""
    sums = {}
    for line in (DRACHTIO_SCENARIO_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert sorted(sums) == sorted(name for name in DRACHTIO_FILES if name.endswith(".xml"))
    for name, digest in sums.items():
        assert hashlib.sha256((DRACHTIO_SCENARIO_DIR / name).read_bytes()).hexdigest() == digest, name


# -- every scenario against a peer ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_scenario_pair(client: Path | str, server: Path, transport: Transport) -> None:
    with SippServer(server, transport=transport, variables=timewait_for(server)) as uas:
        client_result = run_sipp(
            client, uas.address, transport=transport, variables=timewait_for(client), timeout=PAIR_TIMEOUT_S
        )
        client_result.raise_for_failure()
        server_result = uas.wait(timeout=SERVER_FINISH_S)
    server_result.raise_for_failure()
    assert (client_result.successful, client_result.failed) == (1, 0)
    assert (server_result.successful, server_result.failed) == (1, 0)
    assert_gone(client_result, server_result)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_uac_invite_bye_against_builtin_uas(transport: Transport) -> None:
    """The reference peer: SIPp's own UAS. Its 4 s timewait is fixed, so it is stopped, not awaited."""
    with SippServer("uas", transport=transport, keep_files=False) as uas:
        client_result = run_sipp(
            SCENARIO_DIR / "uac_invite_bye.xml",
            uas.address,
            transport=transport,
            extra_args=("-d", "100"),
            timeout=PAIR_TIMEOUT_S,
        )
        client_result.raise_for_failure()
        server_result = uas.stop(drain=0)
    assert server_result.counter("IncomingCall") == 1
    assert server_result.failed == 0
    assert server_result.stop_signal == "SIGTERM" and not server_result.ok
    assert "200 answer: application/sdp m=audio" in client_result.logs
    assert_gone(client_result, server_result)


def test_checks_fail_the_call_when_the_peer_breaks_the_rfc() -> None:
    """uac_session_timer.xml demands Session-Expires in the 2xx; uas_basic.xml does not send one.

    SIPp does not stop a call at a failed check_it: it logs it, plays on (here an UPDATE that uas_basic
    never answers) and counts the call failed when it ends, so this run ends at its timeout."""
    with SippServer(SCENARIO_DIR / "uas_basic.xml", variables=SHORT_TIMEWAIT, keep_files=False) as uas:
        result = run_sipp(SCENARIO_DIR / "uac_session_timer.xml", uas.address, timeout=2.0, keep_files=False)
    assert not result.ok
    assert result.timed_out
    assert "Failed regexp match: header Session-Expires: not found" in result.errors
    assert_gone(result)


def test_uas_digest_rejects_a_wrong_password(tmp_path: Path) -> None:
    """A caller with the wrong password gets 403, ACKs it, and uas_digest.xml counts the call failed."""
    text = (SCENARIO_DIR / "uac_digest.xml").read_text(encoding="iso-8859-1")
    assert f"[authentication username={DIGEST_USERNAME} password={DIGEST_PASSWORD}]" in text
    text = text.replace(f"password={DIGEST_PASSWORD}]", "password=not-the-secret]")
    # The caller expects the 403 and ACKs it, instead of the 200 and the BYE.
    second_invite_sent = text.index("</send>", text.index("CSeq: 2 INVITE")) + len("</send>")
    wrong = tmp_path / "uac_digest_wrong_password.xml"
    wrong.write_text(text[:second_invite_sent] + EXPECT_403_AND_ACK, encoding="iso-8859-1")
    with SippServer(SCENARIO_DIR / "uas_digest.xml", variables=SHORT_TIMEWAIT, keep_files=False) as uas:
        client_result = run_sipp(wrong, uas.address, timeout=PAIR_TIMEOUT_S)
        server_result = uas.wait(timeout=SERVER_FINISH_S)
    client_result.raise_for_failure()
    assert not server_result.ok
    assert (server_result.successful, server_result.failed) == (0, 1)
    assert server_result.counter("FailedTimeoutOnRecv") == 1
    assert "digest response did not verify for enx-test / enx-secret" in server_result.errors
    assert_gone(client_result, server_result)


EXPECT_403_AND_ACK = """
  <recv response="100" optional="true"/>
  <recv response="403"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


def test_drachtio_uac_prack_malformed_rack_is_caught(tmp_path: Path) -> None:
    """drachtio's uac-prack.xml sends "RAck: 1 1 INVITE INVITE" (SIPp's ereg puts the whole match in its
    first variable); uas_prack.xml's RAck check must refuse it. drachtio's scenario wants a 180, so the
    reliable provisional is turned into a 180 for this run."""
    uas_180 = tmp_path / "uas_prack_180.xml"
    text = (SCENARIO_DIR / "uas_prack.xml").read_text(encoding="iso-8859-1")
    uas_180.write_text(
        text.replace("SIP/2.0 183 Session Progress", "SIP/2.0 180 Ringing"), encoding="iso-8859-1"
    )
    with SippServer(uas_180, variables=SHORT_TIMEWAIT, keep_files=False) as uas:
        client_result = run_sipp(DRACHTIO_SCENARIO_DIR / "uac-prack.xml", uas.address, timeout=PAIR_TIMEOUT_S)
        server_result = uas.wait(timeout=SERVER_FINISH_S)
    assert "RAck: 1 1 INVITE INVITE" in client_result.messages
    assert not server_result.ok
    assert server_result.counter("FailedRegexpDoesntMatch") == 1
    assert "1 1 INVITE INVITE" in server_result.errors


def test_calls_survive_ten_percent_loss() -> None:
    """-lost 10 on the caller: retransmissions (RFC 3261 §17.1) carry the call through; the callee is
    stopped at once, its verdict depends on which message was lost (a lost ACK makes the BYE unexpected)."""
    with SippServer(
        SCENARIO_DIR / "uas_basic.xml", calls=2, variables={TIMEWAIT_VARIABLE: "4000"}, keep_files=False
    ) as uas:
        result = run_sipp(
            SCENARIO_DIR / "uac_invite_bye.xml",
            uas.address,
            calls=2,
            rate=10,
            extra_args=lost_args(10),
            timeout=15,
        )
        server_result = uas.stop(drain=0)
    result.raise_for_failure()
    assert result.successful == 2
    assert option(result.argv, "-lost", 1) == ("10",)
    assert_gone(result, server_result)


# -- failures are reported ----------------------------------------------------------------------------------


def test_unanswered_request_fails_with_the_error_log(silent_udp_peer: str) -> None:
    result = run_sipp(
        SCENARIO_DIR / "uac_options.xml", silent_udp_peer, extra_args=("-recv_timeout", "1200"), timeout=10
    )
    assert not result.ok
    assert result.exit_code == 1 and result.exit_meaning == "at least one call failed"
    assert (result.successful, result.failed) == (0, 1)
    assert result.counter("FailedTimeoutOnRecv") == 1
    assert result.retransmissions >= 1  # OPTIONS again at T1 = 500 ms (RFC 3261 §17.1.2.2)
    assert "receive timeout" in result.errors
    assert result.messages.count("OPTIONS sip:service@") >= 2
    assert result.run_dir.is_dir(), "a failed run keeps its files for a look"
    with pytest.raises(pytest.fail.Exception) as failure:
        result.raise_for_failure()
    report = str(failure.value)
    assert "exit code 1 (at least one call failed)" in report
    assert "receive timeout" in report
    assert str(result.run_dir) in report
    assert "--- messages ---" in report
    shutil.rmtree(result.run_dir)
    assert_gone(result)


def test_sipp_global_timeout_is_reported(silent_udp_peer: str) -> None:
    started = time.monotonic()
    result = run_sipp(SCENARIO_DIR / "uac_options.xml", silent_udp_peer, timeout=1.0, keep_files=False)
    assert time.monotonic() - started < 1.0 + KILL_GRACE_S
    assert result.timed_out and not result.killed
    assert result.exit_code == 255
    assert not result.ok
    assert "timed out after" in result.describe()
    assert_gone(result)


def test_run_past_its_wall_clock_is_killed(silent_udp_peer: str) -> None:
    """-sleep holds SIPp before its scenario starts, where its own -timeout cannot fire: the kill must."""
    started = time.monotonic()
    result = run_sipp(
        SCENARIO_DIR / "uac_options.xml",
        silent_udp_peer,
        timeout=1.0,
        extra_args=("-sleep", "30s"),
        keep_files=False,
    )
    elapsed = time.monotonic() - started
    assert result.killed
    assert result.stop_signal in ("SIGTERM", "SIGKILL")
    assert 1.0 + KILL_GRACE_S <= elapsed < 1.0 + KILL_GRACE_S + TERM_GRACE_S + 1.0
    assert not result.ok
    assert "past its wall-clock limit" in result.describe()
    assert_gone(result)


def test_server_is_stopped_when_the_test_fails() -> None:
    server = SippServer(SCENARIO_DIR / "uas_basic.xml", keep_files=False)
    with pytest.raises(RuntimeError, match="the test failed"), server:
        assert sipp_processes(server.run_dir), "SIPp should be running inside the block"
        raise RuntimeError("the test failed")
    assert server.result is not None
    assert server.result.stop_signal == "SIGTERM"  # the block raised: stopped at once
    assert server.result.successful == 0 and not server.result.ok
    assert_gone(server.result)


def test_server_that_cannot_bind_fails_at_start() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        server = SippServer(SCENARIO_DIR / "uas_basic.xml", local_port=port, keep_files=False)
        with pytest.raises(pytest.fail.Exception, match="never listened") as failure:
            server.start()
    assert "fatal error binding a socket" in str(failure.value)
    assert server.result is not None and server.result.exit_code == 254
    assert_gone(server.result)


# -- asyncio: SIPp beside our own server in one event loop ------------------------------------------------


class _OptionsResponder(asyncio.DatagramProtocol):
    """A stand-in for our stack: answers any OPTIONS with 200, echoing the transaction headers."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if not head[0].startswith(b"OPTIONS "):
            return
        keep = (b"via:", b"from:", b"to:", b"call-id:", b"cseq:")
        echoed = [line for line in head[1:] if line.lower().startswith(keep)]
        echoed = [line + b";tag=enx" if line.lower().startswith(b"to:") else line for line in echoed]
        assert self.transport is not None
        self.transport.sendto(
            b"\r\n".join([b"SIP/2.0 200 OK", *echoed, b"Content-Length: 0", b"", b""]), addr
        )
        self.answered += 1


async def test_run_sipp_async_shares_the_loop_with_our_server() -> None:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(_OptionsResponder, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        result = await run_sipp_async(
            SCENARIO_DIR / "uac_options.xml", f"127.0.0.1:{port}", calls=3, rate=20, timeout=10
        )
    finally:
        transport.close()
    result.raise_for_failure()
    assert result.successful == 3
    assert responder.answered >= 3
    assert_gone(result)


async def test_async_server_and_clients_run_concurrently() -> None:
    async def pair(transport: Transport) -> tuple[SippResult, SippResult]:
        async with SippServer(
            SCENARIO_DIR / "uas_basic.xml", transport=transport, variables=SHORT_TIMEWAIT
        ) as uas:
            client_result = await run_sipp_async(
                "uac", uas.address, transport=transport, timeout=PAIR_TIMEOUT_S
            )
            server_result = await uas.wait_async(timeout=SERVER_FINISH_S)
        return client_result, server_result

    started = time.monotonic()
    results = await asyncio.gather(pair("u1"), pair("t1"))
    assert time.monotonic() - started < PAIR_TIMEOUT_S
    for client_result, server_result in results:
        client_result.raise_for_failure()
        server_result.raise_for_failure()
        assert_gone(client_result, server_result)


async def test_async_server_is_stopped_when_cancelled() -> None:
    server = SippServer(SCENARIO_DIR / "uas_basic.xml", keep_files=False)

    async def hold() -> None:
        async with server:
            await asyncio.sleep(30)

    task = asyncio.create_task(hold())
    while not server.argv or not sipp_processes(server.run_dir):
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert server.result is not None and not server.result.ok
    assert_gone(server.result)


# -- small pieces -------------------------------------------------------------------------------------------


def test_sipp_binary_fails_under_ci_and_skips_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        sipp_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="sip-tester"):
        sipp_binary()


def test_free_port_is_free_for_both_transports() -> None:
    port = free_port("both")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))
    assert 1024 < free_port("tcp") < 65536


def test_only_loopback_is_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_sipp("uac", "192.0.2.1:5060")
    with pytest.raises(ValueError, match="loopback"):
        run_sipp("uas", None, local_ip="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        free_port("udp", "localhost")


def test_argument_helpers(tmp_path: Path) -> None:
    assert key_args({"user": "alice", "port": 5060}) == ("-key", "user", "alice", "-key", "port", "5060")
    assert set_args({TIMEWAIT_VARIABLE: 0}) == ("-set", TIMEWAIT_VARIABLE, "0")
    assert lost_args(10) == ("-lost", "10")
    with pytest.raises(ValueError):
        lost_args(101)
    users = tmp_path / "users.csv"
    users.write_text("SEQUENTIAL\nalice;secret\n")
    with SippServer(
        "uas", keys={"user": "alice"}, inject_csv=users, service="enx", trace_messages=False, keep_files=False
    ) as uas:
        argv = uas.argv
    assert option(argv, "-key", 2) == ("user", "alice")
    assert option(argv, "-inf", 1) == (str(users),)
    assert option(argv, "-s", 1) == ("enx",)
    assert "-trace_msg" not in argv
