"""A small user agent on asyncio over the sans-IO core: what the B2BUA stands on.

:class:`UserAgent` owns one :class:`~sip_stack.transport.TransportLayer`, one
:class:`~sip_stack.transaction_layer.TransactionLayer` and the :class:`~sip_stack.dialog.DialogSet`,
and wires them with one timer (``loop.call_at`` on the earliest deadline of every transaction and
dialog, re-armed after each batch of work). The application sees:

- incoming requests as :class:`IncomingRequest` (already through the RFC 3261 §8.2 checks of
  :mod:`sip_stack.uas_core`; in-dialog requests matched to their dialog or answered 481), which it
  answers with :meth:`IncomingRequest.respond`; a dialog is made on the first 1xx/2xx with a tag;
- outgoing requests through :meth:`UserAgent.send`, which returns a :class:`ClientRequest` whose
  responses can be awaited; digest challenges are answered once when credentials are given;
- dialog events (created, confirmed, terminated, session timer actions) through
  :meth:`UserAgent.on_dialog_event`.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import ipaddress
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .auth import DigestClient
from .dialog import (
    Dialog,
    DialogAction,
    DialogSet,
    DialogState,
    ProvisionalNotAcknowledged,
    RefreshSession,
    RetransmitProvisional,
    SessionExpired,
    session_timer_from_response,
)
from .dns import ServerLocator
from .errors import LocalProtocolError, ParseError
from .message import Request, Response, make_response
from .transaction import ClientTransaction, ServerTransaction, TimerConfig
from .transaction_layer import (
    AckReceived,
    Cancelled,
    RequestReceived,
    ResponseReceived,
    Send,
    StrayResponse,
    TransactionFailed,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    make_branch,
    make_tag,
)
from .transport import (
    Address,
    ListenSpec,
    Received,
    Transport,
    TransportConfig,
    TransportError,
    TransportLayer,
    datagram_response_address,
    next_hop_uri,
    request_destination,
)
from .uas_core import UasPolicy, check_request
from .uri import SipURI

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a transaction's messages go: an address, and the connection to use while it is open."""

    address: Address
    connection: int | None = None


@functools.lru_cache(maxsize=4096)  # a UDP peer is only its address: one object per peer, not per message
def _shared_peer(address: Address) -> Peer:
    return Peer(address)


# ------------------------------------------------------------------------------- dialog events


@dataclass(frozen=True, slots=True)
class DialogCreated:
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class DialogConfirmed:
    """The ACK to our 2xx arrived (RFC 3261 §13.3.1.4); it may carry the answer of a late offer."""

    dialog: Dialog
    ack: Request


@dataclass(frozen=True, slots=True)
class DialogTerminated:
    dialog: Dialog
    reason: str


@dataclass(frozen=True, slots=True)
class DialogTimer:
    """A session timer or reliable-provisional action the application must act on."""

    dialog: Dialog
    action: DialogAction


DialogEvent = DialogCreated | DialogConfirmed | DialogTerminated | DialogTimer


# ------------------------------------------------------------------------------- requests


@dataclass
class IncomingRequest:
    """A request for the application, with what it needs to answer it."""

    ua: UserAgent
    request: Request
    transaction: ServerTransaction
    peer: Peer
    dialog: Dialog | None
    local_tag: str | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def method(self) -> str:
        return self.request.method

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        reliable: bool = False,
    ) -> Response:
        """Answer the request. A 101-299 to a dialog-creating request makes the dialog (with our
        Contact and the Record-Route copied, RFC 3261 §12.1.1); ``reliable`` sends a 1xx with 100rel."""
        return self.ua._respond(self, status, reason, headers, body, content_type, reliable)


class ClientRequest:
    """A request we sent: its responses arrive in order; :meth:`final` waits for the last one."""

    def __init__(self, request: Request, peer: Peer, credentials: DigestClient | None) -> None:
        self.request = request
        self.peer = peer
        self.credentials = credentials
        self.transaction: ClientTransaction | None = None
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self._final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.dialog: Dialog | None = None  # the dialog of the 2xx that won
        self.dialogs: dict[str, Dialog] = {}  # every dialog this INVITE made, by remote tag (forks)
        self.ack: Request | None = None  # the ACK to the winning 2xx, sent again for its retransmissions
        self.auth_attempts = 0
        #: RFC 3263 §4.3: the servers still to try, in order, when this one fails (a transport error,
        #: a timeout, or a 503); empty when the destination was not located through DNS.
        self.alternatives: list[Address] = []
        self.tried: list[Address] = [peer.address]

    async def final(self, timeout: float | None = None) -> Response:
        """The final response (a local 408/503 on timeout or transport failure, RFC 3261 §8.1.3.1)."""
        return await asyncio.wait_for(asyncio.shield(self._final), timeout)

    @property
    def done(self) -> bool:
        return self._final.done()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _local_response(request: Request, status: int, reason: str) -> Response:
    return make_response(request, status, reason, to_tag=None if status == 100 else "local")


# ------------------------------------------------------------------------------ the user agent


RequestHandler = Callable[[IncomingRequest], Awaitable[None] | None]


class UserAgent:
    """See the module docstring."""

    def __init__(
        self,
        listen: Iterable[ListenSpec],
        *,
        timers: TimerConfig | None = None,
        policy: UasPolicy | None = None,
        transport_config: TransportConfig | None = None,
        user_agent: str = "enx-voice",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listen = list(listen)
        self.timers = timers or TimerConfig()
        self.policy = policy or UasPolicy()
        self.user_agent = user_agent
        self.clock = clock
        self.transport = TransportLayer(self._on_message, transport_config)
        self.transactions = TransactionLayer(self.timers)
        self.dialogs = DialogSet()
        self.on_request: RequestHandler | None = None
        self._dialog_listeners: list[Callable[[DialogEvent], None]] = []
        self._incoming: dict[int, IncomingRequest] = {}
        self._outgoing: dict[int, ClientRequest] = {}
        self._dialog_heap: list[tuple[float, int, Dialog]] = []
        self._answer_heap: list[tuple[float, int, int]] = []
        self._contacts: dict[tuple[str, str | None], str] = {}
        self._reliable_owner: dict[int, IncomingRequest] = {}
        self.locator: ServerLocator | None = (
            None  # RFC 3263, made on first use  # dialog id → INVITE with a reliable 1xx out
        )
        #: How long the application may take to answer an INVITE before we answer 500 for it.
        self.invite_answer_timeout = 180.0
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._pumping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.transport.start(self.listen)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    def on_dialog_event(self, listener: Callable[[DialogEvent], None]) -> None:
        self._dialog_listeners.append(listener)

    # ------------------------------------------------------------------ building requests

    def via(self, transport: Transport) -> str:
        """A top Via for a new client transaction on ``transport``: fresh branch, rport asked."""
        return f"{self.transport.local_via(transport)};branch={make_branch()};rport"

    def contact(self, transport: Transport = "udp", user: str | None = None) -> str:
        """``<sip:user@host:port>`` reaching our ``transport`` listener (one string per pair: every
        dialog-creating response carries one)."""
        key = (transport, user)
        value = self._contacts.get(key)
        if value is None:
            value = self._contacts[key] = f"<{self.transport.contact_uri(transport, user)}>"
        return value

    def new_request(
        self,
        method: str,
        uri: str,
        *,
        from_uri: str,
        to_uri: str | None = None,
        call_id: str | None = None,
        cseq: int = 1,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        transport: Transport = "udp",
    ) -> Request:
        """An out-of-dialog request (RFC 3261 §8.1.1) with our Contact; its Via is added by send()."""
        out: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", f"<{from_uri}>;tag={make_tag()}"),
            ("To", f"<{to_uri or uri}>"),
            ("Call-ID", call_id or f"{make_tag()}{make_tag()}"),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in ("INVITE", "SUBSCRIBE", "REFER", "UPDATE", "REGISTER"):
            out.append(("Contact", self.contact(transport)))
        out.append(("User-Agent", self.user_agent))
        out.extend(headers)
        return Request.build(method, uri, out, body)

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        request: Request,
        destination: Address | None = None,
        *,
        credentials: DigestClient | None = None,
        connection: int | None = None,
        timeout: float | None = None,
    ) -> ClientRequest:
        """Send ``request`` in a client transaction; the top Via is ours (added here when missing).

        ``destination`` defaults to the next hop of RFC 3261 §8.1.2 (the first Route, else the
        Request-URI): an IP address is used as it is; a host name is located by RFC 3263 (NAPTR,
        SRV, A/AAAA) and the candidates tried in order: the next one after a transport error, a
        timeout or a 503 from the current one, unless it already made an early dialog (§4.3; the
        retry is a new transaction, CSeq + 1). ``timeout`` (INVITE): CANCEL it when no final
        response came by then, like a proxy's Timer C (RFC 3261 §16.6); it then ends with 487, or
        408 64*T1 after the CANCEL.
        """
        alternatives: list[Address] = []
        if destination is None:
            destination, *alternatives = await self._next_hops(request)
        if not request.has_header("via"):
            request.add_header("Via", self.via(destination.transport), first=True)
        client = ClientRequest(request, Peer(destination, connection), credentials)
        client.alternatives = alternatives
        self._start_client(client)
        if timeout is not None and request.method == "INVITE" and self._loop is not None:
            self._loop.call_later(timeout, self._give_up, client)
        return client

    def _give_up(self, client: ClientRequest) -> None:
        if not client.done and not self._closed:
            self.cancel(client)

    async def _next_hops(self, request: Request) -> list[Address]:
        """The next hop (RFC 3261 §8.1.2), as the RFC 3263 candidates to try in order."""
        hop = request_destination(request)
        default = 5061 if hop.transport == "tls" else 5060
        if hop.port is not None or _is_ip(hop.host):
            return [Address(hop.transport, hop.host, hop.port or default)]
        uri = next_hop_uri(request)
        if not isinstance(uri, SipURI):
            return [Address(hop.transport, hop.host, default)]
        if self.locator is None:
            self.locator = ServerLocator()
        return await self.locator.locate(uri)

    def _fail_over(self, client: ClientRequest, why: str) -> bool:
        """Send the request again to the next RFC 3263 candidate, if there is one and no early dialog
        says the current server already reached a callee. True when a new transaction went out:
        the caller keeps the failure to itself."""
        if not client.alternatives or client.done or client.dialogs:
            return False
        failed = client.peer.address
        client.peer = Peer(client.alternatives.pop(0))
        client.tried.append(client.peer.address)
        logger.info(
            "%s to %s failed (%s): trying %s", client.request.method, failed, why, client.peer.address
        )
        client.request = self._retry_request(client)
        self._start_client(client)
        return True

    def _retry_request(
        self, client: ClientRequest, credentials: Iterable[tuple[str, str]] | None = None
    ) -> Request:
        """``client``'s request as a new transaction: a fresh Via for its peer's transport, the
        CSeq one higher (the dialog's, within one), Content-Length recomputed; ``credentials``
        (Authorization headers answering a challenge) replace the ones it carried, if given."""
        dropped = {"via", "v", "content-length", "l"}
        if credentials is not None:
            dropped |= {"authorization", "proxy-authorization"}
        old = client.request
        retry_headers: list[tuple[str, str]] = []
        for name, value in old.headers:
            key = name.lower()
            if key in dropped:
                continue
            if key == "cseq":
                if client.dialog is not None:  # §12.2.1.1: the dialog's CSeq moves on with it
                    client.dialog.local_seq += 1
                    value = f"{client.dialog.local_seq} {old.method}"
                else:
                    value = f"{old.cseq.seq + 1} {old.method}"
            retry_headers.append((name, value))
        retry_headers.extend(credentials or ())
        retry = Request.build(old.method, old.uri_text, retry_headers, old.body)
        retry.add_header("Via", self.via(client.peer.address.transport), first=True)
        return retry

    def _start_client(self, client: ClientRequest) -> None:
        txn = self.transactions.request(
            client.request, client.peer, reliable=client.peer.address.reliable, now=self.clock()
        )
        client.transaction = txn
        self._outgoing[id(txn)] = client
        self._pump()

    def dialog_peer(self, dialog: Dialog, near: Peer | None = None) -> Peer:
        """Where a dialog's requests go: the first route, else the remote target (RFC 3261 §12.2.1.1,
        §8.1.2); the connection of ``near`` is reused when that is the same hop."""
        routes = [("Route", r) for r in dialog.route_set]
        hop = request_destination(Request.build("OPTIONS", dialog.remote_target, routes))
        address = Address(hop.transport, hop.host, hop.port or (5061 if hop.transport == "tls" else 5060))
        if near is not None and near.address == address:
            return near
        return Peer(address)

    def send_ack(
        self, dialog: Dialog, invite_cseq: int, peer: Peer | None = None, *, body: bytes = b""
    ) -> Request:
        """The ACK to a 2xx (RFC 3261 §13.2.2.4), sent outside any transaction along the dialog's route."""
        peer = self.dialog_peer(dialog, peer)
        ack = dialog.ack(invite_cseq, via=self.via(peer.address.transport), body=body)
        self.transactions.send_ack(ack, peer)
        self._pump()
        return ack

    def cancel(self, client: ClientRequest) -> None:
        """CANCEL a pending INVITE (RFC 3261 §9.1); the INVITE then ends with 487."""
        if client.transaction is not None:
            self.transactions.cancel(client.transaction, self.clock())
            self._pump()

    async def send_in_dialog(
        self,
        dialog: Dialog,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        destination: Address | None = None,
        credentials: DigestClient | None = None,
    ) -> ClientRequest:
        """A request inside ``dialog`` (BYE, re-INVITE, UPDATE, INFO ...), routed by its route set."""
        peer = Peer(destination) if destination is not None else self.dialog_peer(dialog)
        transport = peer.address.transport
        request = dialog.request(
            method,
            via=self.via(transport),
            contact=self.contact(transport) if method in ("INVITE", "UPDATE") else None,
            headers=headers,
            body=body,
        )
        client = await self.send(request, peer.address, credentials=credentials)
        client.dialog = dialog
        if method == "BYE":
            self._end_dialog(dialog, "BYE sent")
        return client

    async def reinvite(
        self,
        dialog: Dialog,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        destination: Address | None = None,
        attempts: int = 3,
        credentials: DigestClient | None = None,
    ) -> Response:
        """A re-INVITE that survives glare: on 491 it waits the RFC 3261 §14.1 back-off (2.1-4 s
        when we own the Call-ID, 0-2 s otherwise) and tries again, ``attempts`` times at most."""
        for attempt in range(attempts):
            extra = list(headers)
            if body and not any(name.lower() in ("content-type", "c") for name, _ in extra):
                extra.append(("Content-Type", "application/sdp"))
            client = await self.send_in_dialog(
                dialog, "INVITE", headers=extra, body=body, destination=destination, credentials=credentials
            )
            final = await client.final()
            if final.status != 491 or attempt == attempts - 1:
                return final
            await asyncio.sleep(dialog.glare_backoff())
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ receiving

    def _on_message(self, received: Received) -> None:
        message = received.message
        connection = received.connection_id
        address = self._reply_address(received)
        peer = _shared_peer(address) if connection is None else Peer(address, connection)
        try:
            self.transactions.receive(message, peer, reliable=received.source.reliable, now=self.clock())
        except ParseError as exc:
            # A header the layer needed turned out malformed: answer 400 like the parser would.
            if isinstance(message, Request) and message.method != "ACK":
                reply = make_response(
                    message, 400, exc.reason[:100], to_tag=None if message.to.tag else "bad"
                )
                self.transactions.send_stateless(reply, peer)
        self._pump()

    def _reply_address(self, received: Received) -> Address:
        message = received.message
        if isinstance(message, Request) and not received.source.reliable:
            return datagram_response_address(message.top_via)
        return received.source

    def _pump(self) -> None:
        """Carry out everything the transaction layer produced, in order, then re-arm the one timer.

        Handlers may start transactions (a retry with credentials, a PRACK): their output joins the
        queue behind what is already being carried out, never ahead of it, so the pump does not
        re-enter itself."""
        if self._pumping:
            return
        self._pumping = True
        try:
            for _ in range(10_000):  # events can produce events (a 401 retried, a CANCEL)
                outputs = self.transactions.drain()
                if not outputs:
                    break
                for output in outputs:
                    try:
                        self._handle(output)
                    except (ParseError, LocalProtocolError) as exc:
                        logger.warning("dropping %s: %s", type(output).__name__, exc)
        finally:
            self._pumping = False
        self._arm_timer()

    def _handle(self, output: object) -> None:
        if isinstance(output, Send):
            peer = output.peer
            assert isinstance(peer, Peer)
            try:
                if self.transport.send_now(output.data, peer.address, peer.connection):
                    return
            except TransportError as exc:
                logger.info("send to %s failed: %s", peer.address, exc)
                return
            self._spawn(self._transmit(output.data, peer))
        elif isinstance(output, RequestReceived):
            self._request_received(output)
        elif isinstance(output, ResponseReceived):
            self._response_received(output.transaction, output.response)
        elif isinstance(output, AckReceived):
            self._ack_received(output.request)
        elif isinstance(output, StrayResponse):
            self._stray_2xx(output.response, output.peer)
        elif isinstance(output, Cancelled):
            incoming = self._incoming.pop(id(output.transaction), None)  # answered 487 by the layer
            if incoming is not None:
                incoming.cancelled.set()
                if incoming.dialog is not None:
                    self._end_dialog(incoming.dialog, "cancelled")
        elif isinstance(output, TransactionTimeout | TransactionFailed):
            self._transaction_failed(output)
        elif isinstance(output, TransactionTerminated):
            self._transaction_ended(output.transaction)

    async def _transmit(self, data: bytes, peer: Peer) -> None:
        try:
            await self.transport.send(data, peer.address, peer.connection)
        except TransportError as exc:
            logger.info("send to %s failed: %s", peer.address, exc)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ server side

    def _request_received(self, event: RequestReceived) -> None:
        """Every request gets a final response, whatever fails on the way to the application."""
        try:
            self._dispatch_request(event)
        except ParseError as exc:
            self._answer_if_unanswered(event.transaction, 400, exc.reason[:100])
        except Exception:
            logger.exception("handling %s failed", event.request.method)
            self._answer_if_unanswered(event.transaction, 500, None)

    def _answer_if_unanswered(self, txn: ServerTransaction, status: int, reason: str | None) -> None:
        if txn.answered:
            return
        incoming = self._incoming.get(id(txn))
        if incoming is not None:
            try:
                incoming.respond(status, reason)  # ends an early dialog too
                return
            except (ParseError, LocalProtocolError):
                pass
        request = txn.request
        if request is None:  # answered after all (the transaction releases the request then)
            return
        tag = None if request.to.tag is not None else txn.to_tag or make_tag()
        self._incoming.pop(id(txn), None)
        self.transactions.respond(txn, make_response(request, status, reason, to_tag=tag), self.clock())

    def _dispatch_request(self, event: RequestReceived) -> None:
        request = event.request
        peer = event.peer
        assert isinstance(peer, Peer)
        rejection = check_request(request, self.policy)
        if rejection is not None:
            self.transactions.respond(event.transaction, rejection, self.clock())
            return
        dialog: Dialog | None = None
        if request.to.tag is not None:
            dialog = self.dialogs.for_request(request)
            if dialog is None:
                self.transactions.respond(event.transaction, self.dialogs.no_dialog(request), self.clock())
                return
            error = dialog.receive_request(request)
            if error is not None:
                self.transactions.respond(event.transaction, error, self.clock())
                return
            if request.method == "PRACK":
                self.transactions.respond(event.transaction, dialog.receive_prack(request), self.clock())
                self._schedule_dialog(dialog)
                return
        if request.method == "INVITE" and dialog is None and not request.contact:
            raise ParseError("an INVITE needs a Contact (RFC 3261 §8.1.1.8)")
        incoming = IncomingRequest(self, request, event.transaction, peer, dialog)
        self._incoming[id(event.transaction)] = incoming
        # If the application never answers, answer for it (RFC 3261 §16.6 Timer C for INVITE;
        # 64*T1 for others, after which the client has given up anyway).
        wait = self.invite_answer_timeout if request.method == "INVITE" else self.timers.timer_f
        # Only the id: the heap must not keep an answered request alive for 180 s.
        heapq.heappush(self._answer_heap, (self.clock() + wait, next(self._seq), id(event.transaction)))
        if request.method == "BYE" and dialog is not None:
            self._end_dialog(dialog, "BYE received")
        handler = self.on_request
        if handler is None:
            incoming.respond(200 if request.method in ("BYE", "OPTIONS", "INFO") else 501)
            return
        result = handler(incoming)
        if result is not None:
            self._spawn(self._run_handler(incoming, result))

    async def _run_handler(self, incoming: IncomingRequest, result: Awaitable[None]) -> None:
        try:
            await result
        except Exception:
            logger.exception("request handler failed for %s", incoming.request.method)
            if not incoming.transaction.answered:
                incoming.respond(500)

    def _respond(
        self,
        incoming: IncomingRequest,
        status: int,
        reason: str | None,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
        reliable: bool,
    ) -> Response:
        request = incoming.request
        if incoming.transaction.terminated or incoming.transaction.answered:
            why = "cancelled (487 sent)" if incoming.cancelled.is_set() else "already answered"
            raise LocalProtocolError(f"{request.method} {why}: nothing sent")
        extra = list(headers)
        if content_type is not None and body:
            extra.append(("Content-Type", content_type))
        creates_dialog = request.method == "INVITE" and request.to.tag is None and 100 < status < 300
        tag = incoming.local_tag
        if request.to.tag is None and status > 100 and tag is None:
            tag = incoming.local_tag = make_tag()
        wants_contact = creates_dialog or (request.method in ("INVITE", "UPDATE") and 200 <= status < 300)
        if wants_contact and not any(name.lower() in ("contact", "m") for name, _ in extra):
            extra.append(("Contact", self.contact(incoming.peer.address.transport)))
        if (200 <= status < 300 and request.method == "OPTIONS") or status == 405:
            extra.extend(
                [
                    ("Allow", self.policy.allow),
                    ("Accept", self.policy.accept),
                    ("Supported", self.policy.supported),
                ]
            )
        extra.append(("Server", self.user_agent))
        response = make_response(
            request, status, reason, to_tag=tag, headers=extra, body=body, copy_record_route=creates_dialog
        )
        now = self.clock()
        if creates_dialog and incoming.dialog is None:
            assert tag is not None
            created = Dialog.from_uas_request(request, tag, confirmed=status >= 200, timers=self.timers)
            incoming.dialog = created
            self.dialogs.add(created)
            self._emit(DialogCreated(created))
        dialog = incoming.dialog
        if dialog is not None:
            if reliable:
                response = dialog.reliable_provisional(response, now)
                self._reliable_owner[id(dialog)] = incoming
                self._schedule_dialog(dialog)
            dialog.answered(request, response)
            if request.method == "INVITE" and status >= 300 and request.to.tag is None:
                self._end_dialog(dialog, f"rejected {status}")
        self.transactions.respond(incoming.transaction, response, now)
        self._session_timer_from(dialog, request, response, we_sent=False)
        if status >= 200:
            self._incoming.pop(id(incoming.transaction), None)
            if dialog is not None:
                self._reliable_owner.pop(id(dialog), None)
        self._pump()
        return response

    def _ack_received(self, ack: Request) -> None:
        dialog = self.dialogs.for_request(ack)
        if dialog is not None:
            dialog.receive_request(ack)
            self._emit(DialogConfirmed(dialog, ack))

    # ------------------------------------------------------------------ client side

    def _response_received(self, txn: ClientTransaction, response: Response) -> None:
        client = self._outgoing.get(id(txn))
        if client is None:
            return
        request = client.request
        status = response.status
        challenge = status in (401, 407) and client.credentials is not None and not client.done
        if (
            challenge
            # A 407 from a proxy may be followed by a 401 from the far end: one answer per realm,
            # which DigestClient.answer() enforces (nothing for a realm it already answered).
            and client.auth_attempts < 2
            and self._authenticated_retry(client, response) is not None
        ):
            self._outgoing.pop(id(txn), None)
            return
        if status == 503 and self._fail_over(client, "503"):
            self._outgoing.pop(id(txn), None)
            return
        try:
            if request.method == "INVITE":
                if not self._invite_response(client, response):
                    return  # a 2xx retransmission or another fork's 2xx: handled, not news
            elif client.dialog is not None:
                client.dialog.receive_response(request, response)
                self._session_timer_from(client.dialog, request, response, we_sent=True)
                if client.dialog.state is DialogState.TERMINATED:
                    self._end_dialog(client.dialog, f"{status} to {request.method}")
        except (ParseError, LocalProtocolError) as exc:
            # A 1xx/2xx whose Contact or Record-Route is malformed: no dialog can be made.
            logger.warning("%s %s: %s", status, request.method, exc)
        finally:
            if not client.done:
                client.responses.put_nowait(response)
                if status >= 200:
                    client._final.set_result(response)

    def _invite_response(self, client: ClientRequest, response: Response) -> bool:
        """Dialogs of an INVITE: one per To tag (forks, RFC 3261 §12.1.2); the first 2xx wins and is
        ACKed, every retransmission of it ACKed again (RFC 6026 §8.4); a later 2xx of another fork is
        ACKed and BYEd (§13.2.2.4); a non-2xx final ends the early dialogs. Returns False for a 2xx
        the application has already been told about."""
        request = client.request
        status = response.status
        if request.to.tag is not None:
            return self._reinvite_response(client, response)
        tag = response.to.tag
        dialog: Dialog | None = None
        if 100 < status < 300 and tag is not None:
            dialog = client.dialogs.get(tag)
            if dialog is None:
                dialog = Dialog.from_uac_response(request, response, timers=self.timers)
                client.dialogs[tag] = dialog
                self.dialogs.add(dialog)
                self._emit(DialogCreated(dialog))
        if 200 <= status < 300:
            if client.done:
                if dialog is not None and dialog is client.dialog and client.ack is not None:
                    self.transactions.send_ack(client.ack, self.dialog_peer(dialog, client.peer))
                elif dialog is not None and dialog is not client.dialog:
                    self.send_ack(dialog, request.cseq.seq, client.peer)
                    self._spawn(self.send_in_dialog(dialog, "BYE"))
                return False
            client.dialog = dialog
            if dialog is not None:
                dialog.receive_response(request, response)
                client.ack = self.send_ack(dialog, request.cseq.seq, client.peer)
                self._session_timer_from(dialog, request, response, we_sent=True)
        elif status >= 300:
            for early in list(client.dialogs.values()):
                early.receive_response(request, response)
                self._end_dialog(early, f"{status} to INVITE")
        elif dialog is not None:
            dialog.receive_response(request, response)
            # RFC 3262 §4: PRACK a reliable provisional (the dialog skips retransmissions).
            peer = self.dialog_peer(dialog, client.peer)
            prack = dialog.prack(response, via=self.via(peer.address.transport))
            if prack is not None:
                self._spawn(self.send(prack, peer.address, connection=peer.connection))
        return True

    def _reinvite_response(self, client: ClientRequest, response: Response) -> bool:
        """A response to a re-INVITE: it stays on its dialog (no new dialog, whatever its tag)."""
        dialog = client.dialog
        request = client.request
        if dialog is None or response.status < 200:
            return True
        if 200 <= response.status < 300:
            if client.done:
                if client.ack is not None:
                    self.transactions.send_ack(client.ack, self.dialog_peer(dialog, client.peer))
                return False
            dialog.receive_response(request, response)
            client.ack = self.send_ack(dialog, request.cseq.seq, client.peer)
            self._session_timer_from(dialog, request, response, we_sent=True)
            return True
        dialog.receive_response(request, response)  # 481/408 end the dialog (§14.1)
        if dialog.state is DialogState.TERMINATED:
            self._end_dialog(dialog, f"{response.status} to re-INVITE")
        return True

    def _authenticated_retry(self, client: ClientRequest, challenge: Response) -> ClientRequest | None:
        credentials = client.credentials
        assert credentials is not None
        headers = credentials.answer(challenge, client.request)
        if not headers:
            return None
        client.request = self._retry_request(client, [(h.name, h.value) for h in headers])
        client.auth_attempts += 1
        self._start_client(client)
        return client

    def _stray_2xx(self, response: Response, peer: object) -> None:
        dialog = self.dialogs.for_response(response)
        if dialog is not None and isinstance(peer, Peer):
            self.send_ack(dialog, response.cseq.seq, peer)  # RFC 6026 §8.4: ACK every 2xx again

    def _transaction_ended(self, txn: object) -> None:
        """The layer forgot the transaction: so do we (no request record outlives it)."""
        client = self._outgoing.pop(id(txn), None)
        if client is not None:
            if not client.done:
                response = _local_response(client.request, 408, "Request Timeout")
                client.responses.put_nowait(response)
                client._final.set_result(response)
            for dialog in list(client.dialogs.values()):
                if dialog.state is DialogState.EARLY:
                    self._end_dialog(dialog, "INVITE ended")  # forks that never answered
        incoming = self._incoming.pop(id(txn), None)
        if incoming is not None and incoming.dialog is not None:
            self._reliable_owner.pop(id(incoming.dialog), None)

    def _transaction_failed(self, event: TransactionTimeout | TransactionFailed) -> None:
        txn = event.transaction
        if isinstance(txn, ClientTransaction):
            # The record stays until TransactionTerminated, which also ends the INVITE's early dialogs.
            client = self._outgoing.get(id(txn))
            why = "timeout" if isinstance(event, TransactionTimeout) else "transport error"
            if client is not None and self._fail_over(client, why):
                self._outgoing.pop(id(txn), None)
                return
            if client is not None and not client._final.done():
                status, reason = (
                    (408, "Request Timeout")
                    if isinstance(event, TransactionTimeout)
                    else (503, "Service Unavailable")
                )
                response = _local_response(client.request, status, reason)
                client.responses.put_nowait(response)
                client._final.set_result(response)
                if client.dialog is not None and status == 408:
                    self._end_dialog(client.dialog, "timeout")
        else:
            incoming = self._incoming.pop(id(txn), None)
            timer = event.timer if isinstance(event, TransactionTimeout) else "transport"
            dialog = incoming.dialog if incoming is not None else None
            if dialog is None and isinstance(txn, ServerTransaction) and txn.to_tag is not None:
                # Our answer carries our tag in To: that names the dialog it made (RFC 3261 §12.1.1).
                dialog = self.dialogs.get(txn.call_id, txn.to_tag, txn.from_tag)
            if dialog is not None and timer == "L" and dialog in self.dialogs:
                # RFC 3261 §13.3.1.4: a 2xx never ACKed: the session "SHOULD be terminated" by BYE.
                bye = self.send_in_dialog(dialog, "BYE", headers=[("Reason", 'SIP;cause=408;text="No ACK"')])
                self._spawn(bye)
            elif dialog is not None and timer in ("H", "transport"):
                self._end_dialog(dialog, f"no ACK (timer {timer})")

    # ------------------------------------------------------------------ dialogs and timers

    def _emit(self, event: DialogEvent) -> None:
        for listener in self._dialog_listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("dialog listener failed")

    def _end_dialog(self, dialog: Dialog, reason: str) -> None:
        if dialog not in self.dialogs:
            return  # already ended: one DialogTerminated per dialog
        dialog.terminate()
        self.dialogs.remove(dialog)
        self._emit(DialogTerminated(dialog, reason))

    def _schedule_dialog(self, dialog: Dialog) -> None:
        deadline = dialog.deadline
        if deadline is not None:
            heapq.heappush(self._dialog_heap, (deadline, next(self._seq), dialog))
        self._arm_timer()

    def _session_timer_from(
        self, dialog: Dialog | None, request: Request, response: Response, *, we_sent: bool
    ) -> None:
        """Arm or re-arm the session timer from a 2xx to INVITE/UPDATE that carries Session-Expires
        (RFC 4028 §7.4, §9, §10): every refresh restarts it."""
        if dialog is None or request.method not in ("INVITE", "UPDATE") or not 200 <= response.status < 300:
            return
        try:
            timer = session_timer_from_response(response)
        except ParseError:
            return
        if timer is not None:
            dialog.start_session_timer(timer, self.clock(), we_sent_the_request=we_sent)
            self._schedule_dialog(dialog)

    def _session_action(self, dialog: Dialog, action: DialogAction) -> None:
        timer = dialog.session_timer
        if isinstance(action, RefreshSession) and timer is not None:
            if not dialog.peer_allows_update:
                # RFC 4028 §9: then the refresh is a re-INVITE, which must carry the session's SDP:
                # the application's, which hears DialogTimer(RefreshSession) and calls reinvite().
                return
            # We refresh with UPDATE and stay the refresher: we are the UAC of this transaction.
            headers = [("Session-Expires", f"{timer.interval};refresher=uac"), ("Supported", "timer")]
            self._spawn(self.send_in_dialog(dialog, "UPDATE", headers=headers))
        elif isinstance(action, SessionExpired):
            self._spawn(
                self.send_in_dialog(
                    dialog, "BYE", headers=[("Reason", 'SIP;cause=408;text="Session expired"')]
                )
            )

    def _arm_timer(self) -> None:
        if self._closed or self._loop is None:
            return
        # Runs after every message: written out rather than min() over a list.
        at = self.transactions.deadline
        if self._dialog_heap and (at is None or self._dialog_heap[0][0] < at):
            at = self._dialog_heap[0][0]
        if self._answer_heap and (at is None or self._answer_heap[0][0] < at):
            at = self._answer_heap[0][0]
        if at is None:
            return
        if self._timer_at is not None and self._timer_at <= at and self._timer is not None:
            return  # an earlier (or equal) wake-up is already armed
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        delay = max(0.0, at - self.clock())
        self._timer = self._loop.call_at(self._loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.clock()
        self.transactions.on_timer(now)
        while self._answer_heap and self._answer_heap[0][0] <= now:
            _, _, txn_id = heapq.heappop(self._answer_heap)
            pending = self._incoming.get(txn_id)
            if pending is not None:
                logger.warning("no answer from the application to %s: 500", pending.method)
                self._answer_if_unanswered(pending.transaction, 500, "No answer from the application")
        while self._dialog_heap and self._dialog_heap[0][0] <= now:
            _, _, dialog = heapq.heappop(self._dialog_heap)
            if dialog.deadline is None or dialog not in self.dialogs:
                continue
            if dialog.deadline > now:
                self._schedule_dialog(dialog)  # its timer moved later: keep it in the heap
                continue
            for action in dialog.on_timer(now):
                if isinstance(action, RefreshSession | SessionExpired):
                    self._session_action(dialog, action)
                if isinstance(action, RetransmitProvisional):
                    owner = self._reliable_owner.get(id(dialog))
                    if owner is not None:
                        self.transactions.send_stateless(action.response, owner.peer)
                    continue  # internal: not the application's business
                if isinstance(action, ProvisionalNotAcknowledged):
                    owner = self._reliable_owner.pop(id(dialog), None)
                    if owner is not None:  # RFC 3262 §3: reject the INVITE with a 5xx
                        self._answer_if_unanswered(
                            owner.transaction, 500, "Reliable provisional not acknowledged"
                        )
                self._emit(DialogTimer(dialog, action))
            self._schedule_dialog(dialog)
        self._pump()
