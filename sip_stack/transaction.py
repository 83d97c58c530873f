"""The four SIP transaction state machines (RFC 3261 §17, with RFC 6026's Accepted state), sans-IO.

Each machine is data: an Enum of states, an Enum of inputs and one table
``{(state, input): (action, next_state)}``. A pair missing from a table is a protocol error: it is
counted and reported, the state does not change, and nothing raises (a Hypothesis test feeds every
state × input to every machine). Timers A-M come from one :class:`TimerConfig`; on a reliable
transport the retransmission timers are never started and the wait timers D, I, J, K are zero
(RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).

A transaction never reads the clock: every call takes ``now``; :attr:`Transaction.deadline` says when
it next needs :meth:`Transaction.on_timer`, so the owner arms one timer for all of them. What the
machine wants done comes back as a list of :data:`Action` values, carried out by the caller.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Final

from .errors import ParseError
from .message import Request, Response, make_response
from .values import NameAddr

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17 timer values, all derived from T1, T2 and T4 (Table 4 of §A)."""

    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # longest retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0  # longest time a message stays in the network
    trying: float = 0.2  # §17.2.1: a server sends 100 Trying if the TU has not answered by then

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0 or self.trying < 0:
            raise ValueError(f"bad timer config: T1={self.t1} T2={self.t2} T4={self.t4}")

    @property
    def timer_b(self) -> float:
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        return 0.0 if reliable else max(32.0, 64 * self.t1)

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4


class Kind(enum.Enum):
    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1 / §7.2
    TERMINATED = "Terminated"


class Input(enum.Enum):
    # from the network
    REQUEST = "request retransmission"
    ACK = "ACK"
    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_FINAL = "300-699"
    # from the TU
    TU_1XX = "TU 1xx"
    TU_2XX = "TU 2xx"
    TU_FINAL = "TU 300-699"
    # timers and the transport
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"
    TIMER_M = "timer M"
    TIMER_TRYING = "timer 100 Trying"
    TRANSPORT_ERROR = "transport error"


class Do(enum.Enum):
    """What a table entry asks for (carried out by the machine, which knows the messages)."""

    NOTHING = "absorb"
    RETRANSMIT_REQUEST = "retransmit request"
    PASS_UP = "pass response to TU"
    PASS_UP_AND_ACK = "pass response to TU, send ACK"
    RESEND_ACK = "send ACK again"
    TIMEOUT = "tell TU: timeout"
    TRANSPORT_ERROR = "tell TU: transport error"
    SEND_RESPONSE = "send TU's response"
    RESEND_RESPONSE = "send last response again"
    PASS_ACK_UP = "pass ACK to TU"
    SEND_TRYING = "send 100 Trying"
    NO_ACK = "tell TU: no ACK"
    END_ACCEPTED = "end; tell TU if the 2xx was never ACKed"
    TERMINATE = "terminate"


_S = State
_I = Input

# RFC 3261 §17.1.1.2 figure 5 with RFC 6026 §7.2 (Accepted).
INVITE_CLIENT_TABLE: Final[dict[tuple[State, Input], tuple[Do, State]]] = {
    (_S.CALLING, _I.TIMER_A): (Do.RETRANSMIT_REQUEST, _S.CALLING),
    (_S.CALLING, _I.TIMER_B): (Do.TIMEOUT, _S.TERMINATED),
    (_S.CALLING, _I.RESPONSE_1XX): (Do.PASS_UP, _S.PROCEEDING),
    (_S.CALLING, _I.RESPONSE_2XX): (Do.PASS_UP, _S.ACCEPTED),
    (_S.CALLING, _I.RESPONSE_FINAL): (Do.PASS_UP_AND_ACK, _S.COMPLETED),
    (_S.CALLING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.PROCEEDING, _I.RESPONSE_1XX): (Do.PASS_UP, _S.PROCEEDING),
    (_S.PROCEEDING, _I.RESPONSE_2XX): (Do.PASS_UP, _S.ACCEPTED),
    (_S.PROCEEDING, _I.RESPONSE_FINAL): (Do.PASS_UP_AND_ACK, _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    # §9.1: after a CANCEL, no final within 64*T1 means the INVITE is over (Timer B re-armed then)
    (_S.PROCEEDING, _I.TIMER_B): (Do.TIMEOUT, _S.TERMINATED),
    # §17.1.1.2: retransmitted finals are answered with the ACK again, not passed up
    (_S.COMPLETED, _I.RESPONSE_FINAL): (Do.RESEND_ACK, _S.COMPLETED),
    (_S.COMPLETED, _I.RESPONSE_1XX): (Do.NOTHING, _S.COMPLETED),
    (_S.COMPLETED, _I.RESPONSE_2XX): (Do.NOTHING, _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_D): (Do.TERMINATE, _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    # RFC 6026 §8.4: every 2xx retransmission goes to the TU, which ACKs it
    (_S.ACCEPTED, _I.RESPONSE_2XX): (Do.PASS_UP, _S.ACCEPTED),
    (_S.ACCEPTED, _I.RESPONSE_1XX): (Do.NOTHING, _S.ACCEPTED),
    (_S.ACCEPTED, _I.RESPONSE_FINAL): (Do.NOTHING, _S.ACCEPTED),
    (_S.ACCEPTED, _I.TIMER_M): (Do.TERMINATE, _S.TERMINATED),
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): (Do.NOTHING, _S.ACCEPTED),
}

# RFC 3261 §17.1.2.2 figure 6.
NON_INVITE_CLIENT_TABLE: Final[dict[tuple[State, Input], tuple[Do, State]]] = {
    (_S.TRYING, _I.TIMER_E): (Do.RETRANSMIT_REQUEST, _S.TRYING),
    (_S.TRYING, _I.TIMER_F): (Do.TIMEOUT, _S.TERMINATED),
    (_S.TRYING, _I.RESPONSE_1XX): (Do.PASS_UP, _S.PROCEEDING),
    (_S.TRYING, _I.RESPONSE_2XX): (Do.PASS_UP, _S.COMPLETED),
    (_S.TRYING, _I.RESPONSE_FINAL): (Do.PASS_UP, _S.COMPLETED),
    (_S.TRYING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.PROCEEDING, _I.TIMER_E): (Do.RETRANSMIT_REQUEST, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TIMER_F): (Do.TIMEOUT, _S.TERMINATED),
    (_S.PROCEEDING, _I.RESPONSE_1XX): (Do.PASS_UP, _S.PROCEEDING),
    (_S.PROCEEDING, _I.RESPONSE_2XX): (Do.PASS_UP, _S.COMPLETED),
    (_S.PROCEEDING, _I.RESPONSE_FINAL): (Do.PASS_UP, _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    # §17.1.2.2: Completed buffers response retransmissions
    (_S.COMPLETED, _I.RESPONSE_1XX): (Do.NOTHING, _S.COMPLETED),
    (_S.COMPLETED, _I.RESPONSE_2XX): (Do.NOTHING, _S.COMPLETED),
    (_S.COMPLETED, _I.RESPONSE_FINAL): (Do.NOTHING, _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_K): (Do.TERMINATE, _S.TERMINATED),
}

# RFC 3261 §17.2.1 figure 7 with RFC 6026 §7.1 (Accepted).
INVITE_SERVER_TABLE: Final[dict[tuple[State, Input], tuple[Do, State]]] = {
    (_S.PROCEEDING, _I.REQUEST): (Do.RESEND_RESPONSE, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TIMER_TRYING): (Do.SEND_TRYING, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_1XX): (Do.SEND_RESPONSE, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_2XX): (Do.SEND_RESPONSE, _S.ACCEPTED),
    (_S.PROCEEDING, _I.TU_FINAL): (Do.SEND_RESPONSE, _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.COMPLETED, _I.REQUEST): (Do.RESEND_RESPONSE, _S.COMPLETED),
    (_S.COMPLETED, _I.ACK): (Do.NOTHING, _S.CONFIRMED),
    (_S.COMPLETED, _I.TIMER_G): (Do.RESEND_RESPONSE, _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_H): (Do.NO_ACK, _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.CONFIRMED, _I.REQUEST): (Do.NOTHING, _S.CONFIRMED),
    (_S.CONFIRMED, _I.ACK): (Do.NOTHING, _S.CONFIRMED),
    (_S.CONFIRMED, _I.TIMER_I): (Do.TERMINATE, _S.TERMINATED),
    # RFC 6026 §7.1: INVITE retransmissions are absorbed, ACKs go to the TU. The 2xx is resent on
    # Timer G's schedule until its ACK comes (the UAS core's duty, RFC 3261 §13.3.1.4, done here
    # so that no TU forgets it); Timer L without an ACK tells the TU, which should send BYE.
    (_S.ACCEPTED, _I.REQUEST): (Do.NOTHING, _S.ACCEPTED),
    (_S.ACCEPTED, _I.ACK): (Do.PASS_ACK_UP, _S.ACCEPTED),
    (_S.ACCEPTED, _I.TU_2XX): (Do.SEND_RESPONSE, _S.ACCEPTED),
    (_S.ACCEPTED, _I.TIMER_G): (Do.RESEND_RESPONSE, _S.ACCEPTED),
    (_S.ACCEPTED, _I.TIMER_L): (Do.END_ACCEPTED, _S.TERMINATED),
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): (Do.NOTHING, _S.ACCEPTED),
}

# RFC 3261 §17.2.2 figure 8.
NON_INVITE_SERVER_TABLE: Final[dict[tuple[State, Input], tuple[Do, State]]] = {
    (_S.TRYING, _I.REQUEST): (Do.NOTHING, _S.TRYING),
    (_S.TRYING, _I.TU_1XX): (Do.SEND_RESPONSE, _S.PROCEEDING),
    (_S.TRYING, _I.TU_2XX): (Do.SEND_RESPONSE, _S.COMPLETED),
    (_S.TRYING, _I.TU_FINAL): (Do.SEND_RESPONSE, _S.COMPLETED),
    (_S.TRYING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.PROCEEDING, _I.REQUEST): (Do.RESEND_RESPONSE, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_1XX): (Do.SEND_RESPONSE, _S.PROCEEDING),
    (_S.PROCEEDING, _I.TU_2XX): (Do.SEND_RESPONSE, _S.COMPLETED),
    (_S.PROCEEDING, _I.TU_FINAL): (Do.SEND_RESPONSE, _S.COMPLETED),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
    (_S.COMPLETED, _I.REQUEST): (Do.RESEND_RESPONSE, _S.COMPLETED),
    (_S.COMPLETED, _I.TIMER_J): (Do.TERMINATE, _S.TERMINATED),
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (Do.TRANSPORT_ERROR, _S.TERMINATED),
}

TABLES: Final[dict[Kind, dict[tuple[State, Input], tuple[Do, State]]]] = {
    Kind.INVITE_CLIENT: INVITE_CLIENT_TABLE,
    Kind.NON_INVITE_CLIENT: NON_INVITE_CLIENT_TABLE,
    Kind.INVITE_SERVER: INVITE_SERVER_TABLE,
    Kind.NON_INVITE_SERVER: NON_INVITE_SERVER_TABLE,
}

INITIAL_STATE: Final[dict[Kind, State]] = {
    Kind.INVITE_CLIENT: State.CALLING,
    Kind.NON_INVITE_CLIENT: State.TRYING,
    Kind.INVITE_SERVER: State.PROCEEDING,
    Kind.NON_INVITE_SERVER: State.TRYING,
}


# ------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send these bytes to the transaction's peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PassResponse:
    """A response for the TU (client transactions)."""

    response: Response


@dataclass(frozen=True, slots=True)
class PassAck:
    """An ACK for the TU (RFC 6026: an ACK to a 2xx reaching the INVITE server transaction)."""

    ack: Request


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B or F fired (client) or H fired (server: no ACK came): the TU learns it failed."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not deliver; the transaction is over (RFC 3261 §17.1.4, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """An input the machine does not accept in its state (a pair missing from its table)."""

    state: State
    input: Input


Action = Transmit | PassResponse | PassAck | TimedOut | TransportFailed | ProtocolViolation


# --------------------------------------------------------------------------------- transactions


class Transaction:
    """State, timers and the messages one transaction retransmits.

    Subclasses differ only in which table they use and what their actions send; the table decides.
    ``deadline`` is the earliest pending timer or None.

    ``request`` is the parsed request until the transaction has its final response, then None: over
    UDP a finished transaction lingers for 32 s (Timers D, J, K, L, M) to absorb retransmissions,
    and what it needs for that is bytes and a few facts, not a tree of parsed headers. At a thousand
    calls a second, keeping the trees alive meant over a million objects for the garbage collector
    to walk, and pauses of most of a second.
    """

    __slots__ = ("_pending", "_table", "key", "method", "reliable", "request", "state", "timers")

    kind: Kind

    def __init__(self, key: object, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        self.key = key
        self.request: Request | None = request
        self.method = request.method
        self.reliable = reliable
        self.timers = timers
        self.state = INITIAL_STATE[self.kind]
        self._table = TABLES[self.kind]
        # timer name → (fire time, interval of the next firing for doubling timers)
        self._pending: dict[Input, tuple[float, float]] = {}

    # -- timers ----------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(at for at, _ in self._pending.values())

    def _arm(self, timer: Input, now: float, delay: float, interval: float = 0.0) -> None:
        self._pending[timer] = (now + delay, interval)

    def _stop(self, *timers: Input) -> None:
        for timer in timers:
            self._pending.pop(timer, None)

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer that is due, earliest first."""
        actions: list[Action] = []
        while self._pending and self.state is not State.TERMINATED:
            timer, (at, _) = min(self._pending.items(), key=lambda item: item[1][0])
            if at > now:
                break
            actions.extend(self._input(timer, now, fired_at=at))
            if self._pending.get(timer, (None,))[0] == at:
                del self._pending[timer]  # never fire the same expiry twice
        return actions

    # -- the table -------------------------------------------------------------------------------

    def _input(
        self, event: Input, now: float, *, fired_at: float | None = None, message: object = None
    ) -> list[Action]:
        entry = self._table.get((self.state, event))
        if entry is None:
            if event in _TIMERS:
                # A timer of a state we have left: drop it (leaving the state stops it).
                self._pending.pop(event, None)
                return []
            logger.debug("%s %s: no transition for %s in %s", self.kind.value, self.key, event, self.state)
            return [ProtocolViolation(self.state, event)]
        do, next_state = entry
        previous = self.state
        actions = self._do(do, event, now, fired_at, message)
        self.state = next_state
        if next_state is not previous:
            self._entered(next_state, now)
        elif event in _TIMERS and event in self._pending and fired_at is not None:
            self._rearm(event, fired_at)
        return actions

    def _rearm(self, timer: Input, fired_at: float) -> None:
        """Doubling retransmission timers: A doubles; E and G double up to T2 (§17.1.1.2 …)."""
        _, interval = self._pending[timer]
        if timer is Input.TIMER_A:
            nxt = interval * 2
        elif timer in (Input.TIMER_E, Input.TIMER_G):
            nxt = min(interval * 2, self.timers.t2)
            if timer is Input.TIMER_E and self.state is State.PROCEEDING:
                nxt = self.timers.t2  # §17.1.2.2: in Proceeding, retransmit every T2
        else:
            del self._pending[timer]
            return
        self._pending[timer] = (fired_at + interval, nxt)

    def _entered(self, state: State, now: float) -> None:
        raise NotImplementedError

    def _do(self, do: Do, event: Input, now: float, fired_at: float | None, message: object) -> list[Action]:
        raise NotImplementedError

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def transport_error(self, now: float) -> list[Action]:
        return self._input(Input.TRANSPORT_ERROR, now)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.key} {self.state.value}>"


_TIMERS: Final = frozenset(
    {
        Input.TIMER_A, Input.TIMER_B, Input.TIMER_D, Input.TIMER_E, Input.TIMER_F, Input.TIMER_G,
        Input.TIMER_H, Input.TIMER_I, Input.TIMER_J, Input.TIMER_K, Input.TIMER_L, Input.TIMER_M,
        Input.TIMER_TRYING,
    }
)  # fmt: skip


def response_input(status: int) -> Input:
    if status < 200:
        return Input.RESPONSE_1XX
    if status < 300:
        return Input.RESPONSE_2XX
    return Input.RESPONSE_FINAL


class ClientTransaction(Transaction):
    """Common part of the client machines: the request bytes and the responses coming back."""

    __slots__ = ("ack_wire", "wire")

    def __init__(self, key: object, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(key, request, reliable=reliable, timers=timers)
        self.wire = request.serialize()
        self.ack_wire: bytes | None = None

    def _final(self) -> None:
        """A final response arrived: nothing is retransmitted any more but the ACK to a non-2xx."""
        self.request = None
        self.wire = b""

    def receive_response(self, response: Response, now: float) -> list[Action]:
        """A response that matched this transaction (RFC 3261 §17.1.3)."""
        return self._input(response_input(response.status), now, message=response)


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026 §7.2."""

    __slots__ = ()

    kind = Kind.INVITE_CLIENT

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            self._arm(Input.TIMER_A, now, self.timers.t1, self.timers.t1 * 2)
        self._arm(Input.TIMER_B, now, self.timers.timer_b)
        return [Transmit(self.wire)]

    def cancelled(self, now: float) -> None:
        """A CANCEL went out for this INVITE: give up 64*T1 later if no final came (RFC 3261 §9.1)."""
        if self.state in (State.CALLING, State.PROCEEDING):
            self._arm(Input.TIMER_B, now, self.timers.timer_b)

    def _entered(self, state: State, now: float) -> None:
        if state is State.PROCEEDING:
            self._stop(Input.TIMER_A, Input.TIMER_B)
        elif state is State.COMPLETED:
            self._stop(Input.TIMER_A, Input.TIMER_B)
            self._arm(Input.TIMER_D, now, self.timers.timer_d(self.reliable))
        elif state is State.ACCEPTED:
            self._stop(Input.TIMER_A, Input.TIMER_B)
            self._arm(Input.TIMER_M, now, self.timers.timer_m)
        elif state is State.TERMINATED:
            self._pending.clear()

    def _do(self, do: Do, event: Input, now: float, fired_at: float | None, message: object) -> list[Action]:
        if do is Do.RETRANSMIT_REQUEST:
            return [Transmit(self.wire)]
        if do is Do.PASS_UP:
            assert isinstance(message, Response)
            if event is Input.RESPONSE_2XX:
                self._final()
            return [PassResponse(message)]
        if do is Do.PASS_UP_AND_ACK:
            assert isinstance(message, Response) and self.request is not None
            self.ack_wire = build_non_2xx_ack(self.request, message).serialize()
            self._final()
            # The ACK goes out first: whatever the TU does next (a retry with credentials, the next
            # gateway) must not overtake it on the wire.
            return [Transmit(self.ack_wire), PassResponse(message)]
        if do is Do.RESEND_ACK:
            return [Transmit(self.ack_wire)] if self.ack_wire is not None else []
        if do is Do.TIMEOUT:
            return [TimedOut("B")]
        if do is Do.TRANSPORT_ERROR:
            return [TransportFailed()]
        return []


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2."""

    __slots__ = ()

    kind = Kind.NON_INVITE_CLIENT

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            self._arm(Input.TIMER_E, now, self.timers.t1, min(self.timers.t1 * 2, self.timers.t2))
        self._arm(Input.TIMER_F, now, self.timers.timer_f)
        return [Transmit(self.wire)]

    def _entered(self, state: State, now: float) -> None:
        if state is State.PROCEEDING and Input.TIMER_E in self._pending:
            at, _ = self._pending[Input.TIMER_E]
            self._pending[Input.TIMER_E] = (at, self.timers.t2)
        elif state is State.COMPLETED:
            self._stop(Input.TIMER_E, Input.TIMER_F)
            self._arm(Input.TIMER_K, now, self.timers.timer_k(self.reliable))
        elif state is State.TERMINATED:
            self._pending.clear()

    def _do(self, do: Do, event: Input, now: float, fired_at: float | None, message: object) -> list[Action]:
        if do is Do.RETRANSMIT_REQUEST:
            return [Transmit(self.wire)]
        if do is Do.PASS_UP:
            assert isinstance(message, Response)
            if event is Input.RESPONSE_FINAL or event is Input.RESPONSE_2XX:
                self._final()
            return [PassResponse(message)]
        if do is Do.TIMEOUT:
            return [TimedOut("F")]
        if do is Do.TRANSPORT_ERROR:
            return [TransportFailed()]
        return []


class ServerTransaction(Transaction):
    """Common part of the server machines: the TU's responses and the request's retransmissions.

    What outlives the parsed request (see Transaction): the request's Call-ID, From tag and CSeq
    number, the status and To tag of the latest response, and that response's bytes.
    """

    __slots__ = ("_to_value", "call_id", "cseq", "from_tag", "last_status", "last_wire")

    def __init__(self, key: object, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(key, request, reliable=reliable, timers=timers)
        self.call_id = request.call_id
        self.from_tag = request.from_.tag or ""
        self.cseq = request.cseq.seq
        self.last_status: int | None = None
        self._to_value: str | None = None  # the To of our latest response, unparsed until asked for
        self.last_wire: bytes | None = None

    @property
    def to_tag(self) -> str | None:
        """The To tag of our latest response: the dialog it made or would make (RFC 3261 §12.1.1).
        Read rarely (a CANCEL, a timeout), so parsed then rather than for every response."""
        if self._to_value is None:
            return None
        try:
            return NameAddr.parse(self._to_value, "To").tag
        except ParseError:
            return None

    @property
    def answered(self) -> bool:
        """A final response has been sent."""
        return self.last_status is not None and self.last_status >= 200

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request, or (INVITE) the ACK, that matched this transaction."""
        event = Input.ACK if request.method == "ACK" else Input.REQUEST
        return self._input(event, now, message=request)

    def send_response(self, response: Response, now: float) -> list[Action]:
        """The TU answers (RFC 3261 §17.2.1, §17.2.2)."""
        status = response.status
        event = Input.TU_1XX if status < 200 else Input.TU_2XX if status < 300 else Input.TU_FINAL
        return self._input(event, now, message=response)

    def _send(self, response: Response) -> list[Action]:
        status = response.status
        if status > 100:
            self._to_value = response.header("to")
        self.last_status = status
        self.last_wire = response.serialize()
        if status >= 200:
            self.request = None
        return [Transmit(self.last_wire)]


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026 §7.1; sends 100 Trying itself when the TU is slow."""

    __slots__ = ("acked",)

    kind = Kind.INVITE_SERVER

    def __init__(self, key: object, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(key, request, reliable=reliable, timers=timers)
        self.acked = False

    def start(self, now: float) -> list[Action]:
        self._arm(Input.TIMER_TRYING, now, self.timers.trying)
        return []

    def delivered(self) -> None:
        """The 2xx evidently arrived (a later request came in its dialog): stop resending it, as the
        lost ACK would have (RFC 3261 §13.3.1.4 ends retransmission on the ACK)."""
        self.acked = True
        self._stop(Input.TIMER_G)

    def _entered(self, state: State, now: float) -> None:
        if state is State.COMPLETED:
            self._stop(Input.TIMER_TRYING)
            if not self.reliable:
                self._arm(Input.TIMER_G, now, self.timers.t1, min(self.timers.t1 * 2, self.timers.t2))
            self._arm(Input.TIMER_H, now, self.timers.timer_h)
        elif state is State.CONFIRMED:
            self._stop(Input.TIMER_G, Input.TIMER_H)
            self._arm(Input.TIMER_I, now, self.timers.timer_i(self.reliable))
        elif state is State.ACCEPTED:
            self._stop(Input.TIMER_TRYING)
            if not self.reliable:
                self._arm(Input.TIMER_G, now, self.timers.t1, min(self.timers.t1 * 2, self.timers.t2))
            self._arm(Input.TIMER_L, now, self.timers.timer_l)
        elif state is State.TERMINATED:
            self._pending.clear()

    def _do(self, do: Do, event: Input, now: float, fired_at: float | None, message: object) -> list[Action]:
        if do is Do.SEND_RESPONSE:
            assert isinstance(message, Response)
            if event is Input.TU_1XX:
                self._stop(Input.TIMER_TRYING)
            return self._send(message)
        if do is Do.RESEND_RESPONSE:
            return [Transmit(self.last_wire)] if self.last_wire is not None else []
        if do is Do.SEND_TRYING:
            self._stop(Input.TIMER_TRYING)
            if self.last_status is None and self.request is not None:
                return self._send(make_response(self.request, 100))
            return []
        if do is Do.PASS_ACK_UP:
            assert isinstance(message, Request)
            self.acked = True
            self._stop(Input.TIMER_G)
            return [PassAck(message)]
        if do is Do.END_ACCEPTED:
            return [] if self.acked else [TimedOut("L")]
        if do is Do.NO_ACK:
            return [TimedOut("H")]
        if do is Do.TRANSPORT_ERROR:
            return [TransportFailed()]
        return []


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2."""

    __slots__ = ()

    kind = Kind.NON_INVITE_SERVER

    def start(self, now: float) -> list[Action]:
        return []

    def _entered(self, state: State, now: float) -> None:
        if state is State.COMPLETED:
            self._arm(Input.TIMER_J, now, self.timers.timer_j(self.reliable))
        elif state is State.TERMINATED:
            self._pending.clear()

    def _do(self, do: Do, event: Input, now: float, fired_at: float | None, message: object) -> list[Action]:
        if do is Do.SEND_RESPONSE:
            assert isinstance(message, Response)
            return self._send(message)
        if do is Do.RESEND_RESPONSE:
            return [Transmit(self.last_wire)] if self.last_wire is not None else []
        if do is Do.TRANSPORT_ERROR:
            return [TransportFailed()]
        return []


def build_non_2xx_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID, From, CSeq number and the top Via (the only one) come from the INVITE; To
    from the response (it carries the UAS's tag); Route from the INVITE. Same branch as the INVITE.
    """
    headers: list[tuple[str, str]] = [("Via", str(invite.header_values("via")[0]))]
    headers.extend(("Route", value) for value in invite.header_fields("route"))
    headers.append(("Max-Forwards", "70"))
    from_value = invite.header("from")
    to_value = response.header("to")
    call_id = invite.header("call-id")
    assert from_value is not None and to_value is not None and call_id is not None
    headers.extend([("From", from_value), ("To", to_value), ("Call-ID", call_id)])
    headers.append(("CSeq", f"{invite.cseq.seq} ACK"))
    return Request.build("ACK", invite.uri_text, headers)
