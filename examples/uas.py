"""A minimal UAS on sip_stack: answers OPTIONS, answers INVITE with an SDP answer, ends calls on BYE.

    python examples/uas.py --listen 127.0.0.1:5090 [--transport udp|tcp] [--auth user:password]

It exercises what a B2BUA leg needs from the stack: an SDP answer (PCMU/PCMA and telephone-event, in
the caller's order), reliable provisionals when the caller requires 100rel (RFC 3262), session timers
(RFC 4028: 422 below our Min-SE, refresher election, BYE when the session expires), re-INVITE and
UPDATE (hold included), INFO, CANCEL, and digest authentication when ``--auth`` is given. It logs
one line per call when the call ends. It sends no media: the SDP names a port nobody listens on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

from sip_stack import ParseError, Response
from sip_stack.auth import DigestServer, Outcome
from sip_stack.dialog import (
    Dialog,
    RefreshSession,
    SessionTimer,
    negotiate_session_timer_as_uas,
)
from sip_stack.offer_answer import build_answer
from sip_stack.sdp import Origin, SdpError, parse_sdp
from sip_stack.transport import ListenSpec
from sip_stack.ua import (
    DialogEvent,
    DialogTerminated,
    DialogTimer,
    IncomingRequest,
    UserAgent,
)

log = logging.getLogger("uas")

CODECS = (("PCMU", 8000), ("PCMA", 8000))


@dataclass
class Call:
    call_id: str
    caller: str
    answered: float | None = None
    rtp_port: int = 0
    sdp: bytes = b""  # our last answer: a refresh re-INVITE offers it again (RFC 4028 §9)


class ExampleUas:
    def __init__(
        self, ua: UserAgent, host: str, auth: tuple[str, str] | None, min_se: int, ring: float = 0.0
    ) -> None:
        self.ua = ua
        self.ring = ring
        self.host = host
        self.min_se = min_se
        self.calls: dict[str, Call] = {}
        self.refreshes: set[asyncio.Task[Response]] = set()  # held until done (asyncio keeps weak refs)
        # even RTP ports 40000-59998, round and round (a real relay allocates and frees them)
        self.ports = (40000 + (n * 2) % 20000 for n in itertools.count())
        self.digest = DigestServer("enx-voice", os.urandom(32)) if auth else None
        self.auth = auth
        ua.on_request = self.handle
        ua.on_dialog_event(self.dialog_event)

    # ------------------------------------------------------------------ requests

    async def handle(self, incoming: IncomingRequest) -> None:
        method = incoming.method
        if method == "OPTIONS":
            incoming.respond(200)
        elif method == "INVITE" and incoming.dialog is None:
            await self.invite(incoming)
        elif method in ("INVITE", "UPDATE"):
            self.refresh(incoming)
        elif method in ("INFO", "BYE", "ACK"):
            if method != "ACK":
                incoming.respond(200)
        else:
            incoming.respond(501)

    def challenge_failed(self, incoming: IncomingRequest) -> bool:
        if self.digest is None or self.auth is None:
            return False
        user, password = self.auth
        credentials = self.digest.find_credentials(incoming.request.authorization)
        now = time.time()
        if credentials is not None:
            result = self.digest.verify(
                credentials, incoming.method, lambda u, _r: password if u == user else None, now
            )
            if result.ok:
                return False
            if result.outcome is Outcome.MALFORMED:
                incoming.respond(400, result.reason[:80] or None)
                return True
            stale = result.outcome is Outcome.STALE
        else:
            stale = False
        incoming.respond(401, headers=[("WWW-Authenticate", self.digest.challenge(now, stale=stale))])
        return True

    async def invite(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if self.challenge_failed(incoming):
            return
        timer = negotiate_session_timer_as_uas(request, min_se=self.min_se)
        if timer is not None and not isinstance(timer, SessionTimer):
            incoming.respond(422, headers=[("Min-SE", str(self.min_se))])
            return
        call = Call(request.call_id, str(request.from_.uri_text), rtp_port=next(self.ports))
        answer = self.answer_sdp(incoming, call)
        if answer is None:
            return
        self.calls[call.call_id] = call
        if "100rel" in request.require or "100rel" in request.supported:
            incoming.respond(183, body=answer, content_type="application/sdp", reliable=True)
            dialog = incoming.dialog
            for _ in range(100):  # wait for the PRACK (RFC 3262 §3), at most 5 s
                if incoming.cancelled.is_set() or dialog is None or not dialog.awaiting_prack:
                    break
                await asyncio.sleep(0.05)
        else:
            incoming.respond(180)
        if self.ring > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(incoming.cancelled.wait(), self.ring)
        if incoming.cancelled.is_set():
            return
        headers: list[tuple[str, str]] = []
        if timer is not None:
            headers.append(("Session-Expires", timer.header()))
            if "timer" in request.supported or "timer" in request.require:
                headers.append(("Require", "timer"))
        incoming.respond(200, headers=headers, body=answer, content_type="application/sdp")
        call.answered = time.monotonic()  # the UA arms the session timer from our 2xx

    def answer_sdp(self, incoming: IncomingRequest, call: Call) -> bytes | None:
        request = incoming.request
        if not request.body:
            incoming.respond(488, "SDP offer required")
            return None
        try:
            offer = parse_sdp(request.body)
            origin = Origin.for_address(self.host, abs(hash(call.call_id)) % 10**9)
            answer = build_answer(offer, codecs=CODECS, address=self.host, port=call.rtp_port, origin=origin)
        except SdpError as exc:
            incoming.respond(exc.status if exc.status >= 400 else 488, exc.reason[:80])
            return None
        except ParseError as exc:
            incoming.respond(400, exc.reason[:80])
            return None
        call.sdp = answer.serialize()
        return call.sdp

    def refresh(self, incoming: IncomingRequest) -> None:
        """re-INVITE or UPDATE: a new offer (hold, codec change) or a session refresh (RFC 4028 §10)."""
        request = incoming.request
        call = self.calls.get(request.call_id)
        headers: list[tuple[str, str]] = []
        timer = negotiate_session_timer_as_uas(request, min_se=self.min_se)
        if isinstance(timer, SessionTimer):
            headers.append(("Session-Expires", timer.header()))
        elif timer is not None:
            incoming.respond(422, headers=[("Min-SE", str(self.min_se))])
            return
        body = b""
        if request.body and call is not None:
            answer = self.answer_sdp(incoming, call)
            if answer is None:
                return
            body = answer
        incoming.respond(200, headers=headers, body=body, content_type="application/sdp" if body else None)

    # ------------------------------------------------------------------ dialogs

    def dialog_event(self, event: DialogEvent) -> None:
        # Refreshes by UPDATE and expiry BYEs are the UA's; a peer whose Allow has no UPDATE is
        # refreshed by re-INVITE with our SDP, which only we have. Calls are logged as they end.
        if isinstance(event, DialogTerminated):
            self.call_ended(event.dialog, event.reason)
        elif (
            isinstance(event, DialogTimer)
            and isinstance(event.action, RefreshSession)
            and not event.dialog.peer_allows_update
        ):
            call = self.calls.get(event.dialog.call_id)
            timer = event.dialog.session_timer
            if call is not None and timer is not None:
                headers = [("Session-Expires", f"{timer.interval};refresher=uac"), ("Supported", "timer")]
                task = asyncio.ensure_future(self.ua.reinvite(event.dialog, body=call.sdp, headers=headers))
                self.refreshes.add(task)
                task.add_done_callback(self.refreshes.discard)

    def call_ended(self, dialog: Dialog, reason: str) -> None:
        call = self.calls.pop(dialog.call_id, None)
        if call is None:
            return
        now = time.monotonic()
        talk = f"{now - call.answered:.1f}s" if call.answered else "unanswered"
        log.info(
            "call call_id=%s from=%s duration=%s end=%s",
            call.call_id,
            call.caller,
            talk,
            reason.replace(" ", "_"),
        )


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def run(args: argparse.Namespace) -> None:
    host, port = args.listen
    specs = [ListenSpec(t, host, port) for t in args.transport]
    ua = UserAgent(specs, user_agent="enx-voice-example-uas")
    auth: tuple[str, str] | None = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = (user, password)
    ExampleUas(ua, host, auth, args.min_se, args.ring_ms / 1000)
    await ua.start()
    gc.freeze()
    log.info("listening on %s:%d (%s)", host, port, ",".join(args.transport))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await ua.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT to listen on")
    parser.add_argument(
        "--transport", action="append", choices=("udp", "tcp"), help="udp (default), tcp; repeat for both"
    )
    parser.add_argument("--auth", help="USER:PASSWORD: challenge INVITEs with digest (RFC 7616)")
    parser.add_argument(
        "--min-se", type=int, default=90, help="smallest session interval accepted (RFC 4028)"
    )
    parser.add_argument("--ring-ms", type=int, default=0, help="ring this long before answering")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    args.transport = args.transport or ["udp"]
    # UDP transactions linger 32 s after they end (Timers J, L, D: RFC 3261 §17), so at a few
    # hundred calls/s tens of thousands of parsed messages are alive; the collector's default
    # thresholds then make long full passes over them and stall the socket. Collect young objects
    # less often, and keep start-up objects out of every pass.
    gc.set_threshold(50_000, 50, 100)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
