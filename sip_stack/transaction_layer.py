"""The transaction layer: matching, CANCEL, stray messages, merged requests (RFC 3261 §17, §9, §8.2.2.2).

Sans-IO, like the machines it owns. The transport hands it parsed messages with the peer they came
from (any hashable value the transport understands) and whether that transport is reliable; the TU
hands it requests to send and responses to server transactions. Everything the layer wants done
comes out of :meth:`TransactionLayer.drain` in order: :class:`Send` for the transport and events for
the TU. One deadline for all transactions (:attr:`TransactionLayer.deadline`) is what the asyncio
adapter arms a single timer on.

What the layer owns, so that no TU has to:
- matching responses to client transactions (branch + CSeq method, §17.1.3) and requests to server
  transactions (branch + sent-by + method, ACK matching INVITE, §17.2.3), with the RFC 2543 rules
  for a branch without the magic cookie;
- the ACK for a non-2xx final (in the INVITE client machine), retransmissions, 100 Trying;
- CANCEL (§9.2): 200 to the CANCEL, 487 to the INVITE, the TU told; 481 for a CANCEL that matches
  nothing; a CANCEL the TU asks for is held until the INVITE has had a provisional (§9.1);
- a 2xx or ACK that matches no transaction goes to the TU (the dialog layer re-ACKs, RFC 6026);
- 482 for a merged request (§8.2.2.2), 416 for a Request-URI scheme we cannot route (§8.2.2.1).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final

from .message import Request, Response, make_response
from .transaction import (
    Action,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    PassAck,
    PassResponse,
    ProtocolViolation,
    ServerTransaction,
    State,
    TimedOut,
    TimerConfig,
    Transaction,
    Transmit,
    TransportFailed,
)
from .values import BRANCH_MAGIC_COOKIE

logger = logging.getLogger(__name__)

Peer = Hashable

#: Request-URI schemes a SIP element can route (RFC 3261 §8.2.2.1); others get 416.
ROUTABLE_SCHEMES: Final = frozenset({"sip", "sips", "tel"})


def make_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits (§8.1.1.7)."""
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(8)


def make_tag() -> str:
    """A From/To tag with 64 random bits (RFC 3261 §19.3 asks for at least 32)."""
    return secrets.token_hex(8)


# ------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes for the transport to send to ``peer``."""

    data: bytes
    peer: Peer


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU, with the server transaction that answers it."""

    transaction: ServerTransaction
    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for one of the TU's client transactions."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK outside any transaction: the ACK to a 2xx, for the dialog layer (RFC 3261 §13.3.1.4)."""

    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A 2xx to an INVITE after its transaction ended (a retransmission, or another fork):
    the dialog layer ACKs it again or BYEs the extra fork (RFC 6026 §8.4)."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The peer cancelled an INVITE: the layer answered 200 to the CANCEL and 487 to the INVITE."""

    transaction: ServerTransaction
    cancel: Request


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B/F (no response) or H (no ACK) fired."""

    transaction: Transaction
    timer: str


@dataclass(frozen=True, slots=True)
class TransactionFailed:
    """The transport reported it could not deliver (RFC 3261 §17.1.4, §17.2.4)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction is gone: whatever the TU kept for it can go too."""

    transaction: Transaction


Event = (
    RequestReceived
    | ResponseReceived
    | AckReceived
    | StrayResponse
    | Cancelled
    | TransactionTimeout
    | TransactionFailed
    | TransactionTerminated
)
Output = Send | Event


@dataclass(slots=True)
class LayerStats:
    """Counters for /metrics and for tests that check nothing leaks."""

    created: int = 0
    terminated: int = 0
    stray_responses: int = 0
    stray_acks: int = 0
    merged_requests: int = 0
    protocol_violations: int = 0
    retransmissions_absorbed: int = 0


@dataclass(slots=True)
class _Entry:
    transaction: Transaction
    peer: Peer
    cancel_pending: bool = False
    keys: list[object] = field(default_factory=list)
    merge_key: tuple[str, str, int, str] | None = None
    # The deadline this transaction has in the heap (one entry per transaction, whatever
    # number of retransmissions it absorbs).
    scheduled_at: float | None = None
    accepted_key: tuple[str, str] | None = None


class TransactionLayer:
    """All transactions of one SIP element, and the rules between them (module docstring)."""

    def __init__(
        self,
        timers: TimerConfig | None = None,
        *,
        tag_factory: Callable[[], str] = make_tag,
    ) -> None:
        self.timers = timers or TimerConfig()
        self._tag_factory = tag_factory
        self._client: dict[object, _Entry] = {}
        self._server: dict[object, _Entry] = {}
        self._merge: dict[tuple[str, str, int, str], _Entry] = {}
        # INVITE server transactions whose 2xx is out, by dialog (Call-ID, our To tag): the ACK to the
        # 2xx, or any later request of the dialog, stops the 2xx retransmissions.
        self._accepted: dict[tuple[str, str], _Entry] = {}
        self._by_txn: dict[int, _Entry] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()
        self._out: list[Output] = []
        self.stats = LayerStats()

    # ------------------------------------------------------------------ introspection

    @property
    def active(self) -> int:
        """Transactions not yet terminated: returns to zero when the layer is idle."""
        return len(self._by_txn)

    @property
    def deadline(self) -> float | None:
        """When :meth:`on_timer` is next needed (may be early: stale entries are skipped then)."""
        heap = self._heap
        while heap:
            at, _, txn = heap[0]
            entry = self._by_txn.get(id(txn))
            if entry is not None and entry.scheduled_at == at:
                return at
            heapq.heappop(heap)
        return None

    def drain(self) -> list[Output]:
        """Everything to send and every TU event since the last drain, in order."""
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ TU → layer

    def request(self, request: Request, peer: Peer, *, reliable: bool, now: float) -> ClientTransaction:
        """Send ``request`` in a new client transaction. Its top Via must carry a fresh branch."""
        if request.method == "ACK":
            raise ValueError("an ACK is not sent in a transaction: use send_ack()")
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = InviteClientTransaction(None, request, reliable=reliable, timers=self.timers)
        else:
            txn = NonInviteClientTransaction(None, request, reliable=reliable, timers=self.timers)
        key = _client_key(request.top_via.branch or "", request.method)
        txn.key = key
        entry = _Entry(txn, peer, keys=[key])
        self._client[key] = entry
        self._register(entry)
        self._apply(entry, txn.start(now), now)
        return txn

    def send_ack(self, ack: Request, peer: Peer) -> None:
        """The ACK to a 2xx, which is its own transaction-less request (RFC 3261 §13.2.2.4)."""
        self._out.append(Send(ack.serialize(), peer))

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        self._out.append(Send(message.serialize(), peer))

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """The TU's response to a request it received."""
        entry = self._by_txn.get(id(transaction))
        if entry is None:
            logger.debug("response %s for a finished transaction %s dropped", response.status, transaction)
            return
        self._apply(entry, transaction.send_response(response, now), now)
        if (
            transaction.state is State.ACCEPTED
            and entry.accepted_key is None
            and 200 <= response.status < 300
        ):
            key = (response.call_id, response.to.tag or "")
            self._accepted[key] = entry
            entry.accepted_key = key

    def cancel(self, transaction: ClientTransaction, now: float) -> None:
        """Cancel a pending INVITE (RFC 3261 §9.1): sent now if a provisional came, else on the first
        one; nothing if the INVITE already has a final response."""
        entry = self._by_txn.get(id(transaction))
        if entry is None or not isinstance(transaction, InviteClientTransaction):
            return
        if transaction.state is State.PROCEEDING:
            self._send_cancel(entry, now)
        elif transaction.state is State.CALLING:
            entry.cancel_pending = True

    # ------------------------------------------------------------------ network → layer

    def receive(self, message: Request | Response, peer: Peer, *, reliable: bool, now: float) -> None:
        """A message the transport parsed (and, for a request, stamped with received/rport)."""
        if isinstance(message, Response):
            self._receive_response(message, peer, now)
        else:
            self._receive_request(message, peer, reliable, now)

    def transport_error(self, transaction: Transaction, now: float) -> None:
        entry = self._by_txn.get(id(transaction))
        if entry is not None:
            self._apply(entry, transaction.transport_error(now), now)

    def on_timer(self, now: float) -> None:
        """Fire every transaction timer that is due."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, txn = heapq.heappop(heap)
            entry = self._by_txn.get(id(txn))
            if entry is None or entry.scheduled_at != at:
                continue  # stale: the transaction ended, or an earlier entry replaced this one
            entry.scheduled_at = None
            deadline = txn.deadline
            if deadline is None:
                continue
            if deadline > now:
                # Its earliest timer was stopped (a provisional, an ACK): wait for the next one.
                heapq.heappush(heap, (deadline, next(self._seq), txn))
                entry.scheduled_at = deadline
                continue
            self._apply(entry, txn.on_timer(now), now)

    # ------------------------------------------------------------------ internals

    def _register(self, entry: _Entry) -> None:
        self._by_txn[id(entry.transaction)] = entry
        self.stats.created += 1

    def _apply(self, entry: _Entry, actions: list[Action], now: float) -> None:
        txn = entry.transaction
        for action in actions:
            if isinstance(action, Transmit):
                self._out.append(Send(action.data, entry.peer))
            elif isinstance(action, PassResponse):
                assert isinstance(txn, ClientTransaction)
                self._out.append(ResponseReceived(txn, action.response))
                if entry.cancel_pending and action.response.status < 200:
                    entry.cancel_pending = False
                    self._send_cancel(entry, now)
            elif isinstance(action, PassAck):
                self._out.append(AckReceived(action.ack, entry.peer))
            elif isinstance(action, TimedOut):
                self._out.append(TransactionTimeout(txn, action.timer))
            elif isinstance(action, TransportFailed):
                self._out.append(TransactionFailed(txn))
            elif isinstance(action, ProtocolViolation):
                self.stats.protocol_violations += 1
        if txn.terminated:
            self._forget(entry)
            return
        deadline = txn.deadline
        if deadline is not None and (entry.scheduled_at is None or deadline < entry.scheduled_at):
            heapq.heappush(self._heap, (deadline, next(self._seq), txn))
            entry.scheduled_at = deadline

    def _forget(self, entry: _Entry) -> None:
        if self._by_txn.pop(id(entry.transaction), None) is None:
            return
        self.stats.terminated += 1
        self._out.append(TransactionTerminated(entry.transaction))
        for key in entry.keys:
            if self._client.get(key) is entry:
                del self._client[key]
            if self._server.get(key) is entry:
                del self._server[key]
        if entry.merge_key is not None and self._merge.get(entry.merge_key) is entry:
            del self._merge[entry.merge_key]
        if entry.accepted_key is not None and self._accepted.get(entry.accepted_key) is entry:
            del self._accepted[entry.accepted_key]

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        key = _client_key(response.top_via.branch or "", response.cseq.method)
        entry = self._client.get(key)
        if entry is None:
            if response.cseq.method == "INVITE" and 200 <= response.status < 300:
                self._out.append(StrayResponse(response, peer))
            self.stats.stray_responses += 1
            return
        txn = entry.transaction
        assert isinstance(txn, ClientTransaction)
        self._apply(entry, txn.receive_response(response, now), now)

    def _receive_request(self, request: Request, peer: Peer, reliable: bool, now: float) -> None:
        key = _server_key(request)
        entry = self._server.get(key)
        if entry is not None:
            txn = entry.transaction
            assert isinstance(txn, ServerTransaction)
            before = len(self._out)
            self._apply(entry, txn.receive_request(request, now), now)
            if request.method != "ACK" or len(self._out) == before:
                self.stats.retransmissions_absorbed += 1
            return
        accepted = self._accepted.get((request.call_id, request.to.tag or "")) if request.to.tag else None
        if accepted is not None and request.method != "ACK":
            invite = accepted.transaction
            if isinstance(invite, InviteServerTransaction) and request.cseq.seq > invite.cseq:
                invite.delivered()
        if request.method == "ACK":
            to_2xx = accepted.transaction if accepted is not None else None
            if (
                accepted is not None
                and isinstance(to_2xx, ServerTransaction)
                and to_2xx.cseq == request.cseq.seq
            ):
                # The ACK to our 2xx (its own branch, RFC 3261 §13.2.2.4): stops the 2xx resends.
                self._apply(accepted, to_2xx.receive_request(request, now), now)
                return
            self.stats.stray_acks += 1
            self._out.append(AckReceived(request, peer))
            return
        txn_new: ServerTransaction
        if request.method == "INVITE":
            txn_new = InviteServerTransaction(key, request, reliable=reliable, timers=self.timers)
        else:
            txn_new = NonInviteServerTransaction(key, request, reliable=reliable, timers=self.timers)
        entry = _Entry(txn_new, peer, keys=[key])
        self._server[key] = entry
        self._register(entry)
        self._apply(entry, txn_new.start(now), now)
        if self._reject_early(entry, request, now):
            return
        if request.method == "CANCEL":
            self._receive_cancel(entry, request, now)
            return
        self._out.append(RequestReceived(txn_new, request, peer))

    def _reject_early(self, entry: _Entry, request: Request, now: float) -> bool:
        """§8.2.2.1 (416) and §8.2.2.2 (482): answered here, the TU never sees them."""
        txn = entry.transaction
        assert isinstance(txn, ServerTransaction)
        if request.uri.scheme not in ROUTABLE_SCHEMES:
            self._apply(entry, txn.send_response(self._reply(request, 416), now), now)
            return True
        if request.to.tag is None and request.method not in ("CANCEL", "ACK"):
            merge_key = (request.from_.tag or "", request.call_id, request.cseq.seq, request.method)
            other = self._merge.get(merge_key)
            if other is not None and other is not entry and id(other.transaction) in self._by_txn:
                self.stats.merged_requests += 1
                self._apply(entry, txn.send_response(self._reply(request, 482), now), now)
                return True
            self._merge[merge_key] = entry
            entry.merge_key = merge_key
        return False

    def _reply(self, request: Request, status: int) -> Response:
        tag = None if request.to.tag is not None else self._tag_factory()
        return make_response(request, status, to_tag=tag)

    def _receive_cancel(self, entry: _Entry, cancel: Request, now: float) -> None:
        cancel_txn = entry.transaction
        assert isinstance(cancel_txn, ServerTransaction)
        invite_entry = self._server.get(_server_key(cancel, method="INVITE"))
        if invite_entry is None:
            self._apply(entry, cancel_txn.send_response(self._reply(cancel, 481), now), now)
            return
        invite_txn = invite_entry.transaction
        assert isinstance(invite_txn, InviteServerTransaction)
        # §9.2: the 200 to the CANCEL and the 487 to the INVITE carry the same To tag: the one the
        # INVITE's early dialog already has, else a new one.
        tag: str | None = invite_txn.to_tag or self._tag_factory()
        if cancel.to.tag is not None:
            tag = None
        ok = make_response(cancel, 200, to_tag=tag)
        self._apply(entry, cancel_txn.send_response(ok, now), now)
        if invite_txn.state is State.PROCEEDING and invite_txn.request is not None:
            terminated = make_response(invite_txn.request, 487, to_tag=tag)
            self._apply(invite_entry, invite_txn.send_response(terminated, now), now)
            self._out.append(Cancelled(invite_txn, cancel))

    def _send_cancel(self, entry: _Entry, now: float) -> None:
        invite_txn = entry.transaction
        assert isinstance(invite_txn, InviteClientTransaction) and invite_txn.request is not None
        self.request(build_cancel(invite_txn.request), entry.peer, reliable=invite_txn.reliable, now=now)
        invite_txn.cancelled(now)
        self._apply(entry, [], now)  # reschedule: Timer B now runs again


def _client_key(branch: str, method: str) -> tuple[str, str]:
    """RFC 3261 §17.1.3: branch of the top Via and the CSeq method."""
    return (branch, method)


def _server_key(request: Request, method: str | None = None) -> object:
    """RFC 3261 §17.2.3: branch, sent-by and method (ACK matches INVITE); RFC 2543 rules without the
    magic cookie: Request-URI, tags, Call-ID, CSeq number and top Via."""
    via = request.top_via
    m = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch
    if branch is not None and via.is_rfc3261_branch:
        return ("3261", branch, via.sent_by.lower(), m)
    # RFC 2543: the ACK for a non-2xx carries the To tag of our response, which the INVITE lacked,
    # so the To tag takes no part in matching; everything else must be equal.
    return ("2543", request.uri_text, request.from_.tag, request.call_id, request.cseq.seq, str(via), m)


def build_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite`` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq number and
    Route; a single Via equal to the INVITE's top Via (so it matches the same server transaction)."""
    headers: list[tuple[str, str]] = [("Via", invite.header_values("via")[0])]
    headers.extend(("Route", value) for value in invite.header_fields("route"))
    headers.append(("Max-Forwards", "70"))
    for name in ("From", "To", "Call-ID"):
        value = invite.header(name)
        assert value is not None
        headers.append((name, value))
    headers.append(("CSeq", f"{invite.cseq.seq} CANCEL"))
    return Request.build("CANCEL", invite.uri_text, headers)
