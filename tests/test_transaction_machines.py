"""The four transaction machines on a fake clock: exact timer schedules and what each ends in
(RFC 3261 §17, RFC 6026), and totality: every state × every input is handled."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_stack import Request, Response, make_response, parse
from sip_stack.transaction import (
    TABLES,
    Action,
    ClientTransaction,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    Kind,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    PassAck,
    PassResponse,
    ProtocolViolation,
    State,
    TimedOut,
    TimerConfig,
    Transaction,
    Transmit,
    TransportFailed,
)
from tests.sip_messages import CARRIER_INVITE, options

TIMERS = TimerConfig()


def invite() -> Request:
    msg = parse(CARRIER_INVITE)
    assert isinstance(msg, Request)
    return msg


def opts() -> Request:
    msg = parse(options())
    assert isinstance(msg, Request)
    return msg


def ack_for(request: Request) -> Request:
    msg = parse(
        b"ACK " + request.uri_text.encode() + b" SIP/2.0\r\n"
        b"Via: " + str(request.header_values("via")[0]).encode() + b"\r\n"
        b"From: " + str(request.header("from")).encode() + b"\r\n"
        b"To: " + str(request.header("to")).encode() + b";tag=uas\r\n"
        b"Call-ID: " + request.call_id.encode() + b"\r\n"
        b"CSeq: " + str(request.cseq.seq).encode() + b" ACK\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(msg, Request)
    return msg


def response(request: Request, status: int) -> Response:
    return make_response(request, status, to_tag="uas")


def run_until_quiet(txn: Transaction, *, until: float = 200.0) -> list[tuple[float, Action]]:
    """Fire every timer in order on a fake clock; return what happened when."""
    log: list[tuple[float, Action]] = []
    while not txn.terminated and txn.deadline is not None and txn.deadline <= until:
        now = txn.deadline
        log.extend((now, a) for a in txn.on_timer(now))
    return log


def transmit_times(log: list[tuple[float, Action]]) -> list[float]:
    return [t for t, a in log if isinstance(a, Transmit)]


def gaps(times: list[float], start: float = 0.0) -> list[float]:
    out, prev = [], start
    for t in times:
        out.append(round(t - prev, 6))
        prev = t
    return out


# ------------------------------------------------------------------------------- INVITE client


def test_timer_a_doubles_from_t1_and_timer_b_ends_it_at_64_t1() -> None:
    txn = InviteClientTransaction("k", invite(), reliable=False, timers=TIMERS)
    assert [type(a) for a in txn.start(0.0)] == [Transmit]
    log = run_until_quiet(txn)
    assert gaps(transmit_times(log)) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert [(t, a) for t, a in log if not isinstance(a, Transmit)] == [(32.0, TimedOut("B"))]
    assert txn.state is State.TERMINATED


def test_invite_client_on_reliable_transport_never_retransmits() -> None:
    txn = InviteClientTransaction("k", invite(), reliable=True, timers=TIMERS)
    txn.start(0.0)
    log = run_until_quiet(txn)
    assert log == [(32.0, TimedOut("B"))]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    req = invite()
    txn = InviteClientTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.on_timer(0.5)
    actions = txn.receive_response(response(req, 180), 0.7)
    assert [type(a) for a in actions] == [PassResponse]
    assert txn.state is State.PROCEEDING
    assert txn.deadline is None  # rings as long as it likes; Timer C is the TU's business


def test_non_2xx_final_is_acked_and_timer_d_is_32_s_unreliable_0_reliable() -> None:
    req = invite()
    for reliable, timer_d in ((False, 32.0), (True, 0.0)):
        txn = InviteClientTransaction("k", req, reliable=reliable, timers=TIMERS)
        txn.start(0.0)
        busy = response(req, 486)
        actions = txn.receive_response(busy, 1.0)
        assert [type(a) for a in actions] == [Transmit, PassResponse]  # the ACK leaves first
        ack_wire = actions[0].data  # type: ignore[union-attr]
        ack = parse(ack_wire)
        assert isinstance(ack, Request) and ack.method == "ACK"
        assert ack.top_via.branch == req.top_via.branch  # same branch as the INVITE (§17.1.1.3)
        assert ack.to.tag == "uas" and ack.cseq.seq == req.cseq.seq and ack.cseq.method == "ACK"
        assert ack.uri_text == req.uri_text
        assert txn.state is State.COMPLETED
        # a retransmitted 486 gets the same ACK again, and is not passed up
        assert txn.receive_response(busy, 2.0) == [Transmit(ack_wire)]
        assert txn.deadline == 1.0 + timer_d
        assert txn.on_timer(1.0 + timer_d) == []
        assert txn.state is State.TERMINATED


def test_2xx_goes_to_accepted_and_retransmissions_reach_the_tu_until_timer_m() -> None:
    req = invite()
    txn = InviteClientTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    ok = response(req, 200)
    assert txn.receive_response(ok, 1.0) == [PassResponse(ok)]
    assert txn.state is State.ACCEPTED
    assert txn.receive_response(ok, 1.5) == [PassResponse(ok)]  # RFC 6026 §8.4: the TU re-ACKs
    assert txn.deadline == 1.0 + 32.0
    txn.on_timer(33.0)
    assert txn.state is State.TERMINATED


# --------------------------------------------------------------------------- non-INVITE client


def test_timer_e_doubles_up_to_t2_and_timer_f_ends_it() -> None:
    txn = NonInviteClientTransaction("k", opts(), reliable=False, timers=TIMERS)
    txn.start(0.0)
    log = run_until_quiet(txn)
    assert gaps(transmit_times(log)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert log[-1] == (32.0, TimedOut("F"))


def test_timer_e_is_t2_in_proceeding() -> None:
    req = opts()
    txn = NonInviteClientTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.on_timer(0.5)  # next at 1.5
    txn.receive_response(response(req, 100), 0.6)
    assert txn.state is State.PROCEEDING
    log = run_until_quiet(txn)
    assert transmit_times(log)[:4] == [1.5, 5.5, 9.5, 13.5]
    assert log[-1] == (32.0, TimedOut("F"))


def test_timer_k_is_t4_unreliable_and_zero_reliable() -> None:
    req = opts()
    for reliable, timer_k in ((False, 5.0), (True, 0.0)):
        txn = NonInviteClientTransaction("k", req, reliable=reliable, timers=TIMERS)
        txn.start(0.0)
        ok = response(req, 200)
        assert txn.receive_response(ok, 1.0) == [PassResponse(ok)]
        assert txn.receive_response(ok, 1.2) == []  # absorbed in Completed
        assert txn.deadline == 1.0 + timer_k
        txn.on_timer(1.0 + timer_k)
        assert txn.terminated


# ------------------------------------------------------------------------------- INVITE server


def test_server_sends_100_trying_when_the_tu_is_silent_for_200_ms() -> None:
    req = invite()
    txn = InviteServerTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.deadline == pytest.approx(0.2)
    (sent,) = txn.on_timer(0.2)
    assert isinstance(sent, Transmit)
    trying = parse(sent.data)
    assert isinstance(trying, Response) and trying.status == 100 and trying.to.tag is None
    # an INVITE retransmission now gets the 100 again
    assert txn.receive_request(req, 0.5) == [sent]


def test_no_100_trying_when_the_tu_answers_in_time() -> None:
    req = invite()
    txn = InviteServerTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    ringing = response(req, 180)
    assert [type(a) for a in txn.send_response(ringing, 0.1)] == [Transmit]
    assert txn.on_timer(0.3) == []
    assert txn.deadline is None


def test_timer_g_doubles_to_t2_and_timer_h_gives_up_without_ack() -> None:
    req = invite()
    txn = InviteServerTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(response(req, 486), 0.0)
    assert txn.state is State.COMPLETED
    log = run_until_quiet(txn)
    assert gaps(transmit_times(log)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert log[-1] == (32.0, TimedOut("H"))
    assert txn.terminated


def test_ack_confirms_and_timer_i_absorbs_acks_for_t4() -> None:
    req = invite()
    for reliable, timer_i in ((False, 5.0), (True, 0.0)):
        txn = InviteServerTransaction("k", req, reliable=reliable, timers=TIMERS)
        txn.start(0.0)
        txn.send_response(response(req, 404), 0.0)
        assert txn.receive_request(ack_for(req), 1.0) == []
        assert txn.state is State.CONFIRMED
        assert txn.receive_request(ack_for(req), 1.1) == []
        assert txn.deadline == 1.0 + timer_i
        txn.on_timer(1.0 + timer_i)
        assert txn.terminated


def test_2xx_is_resent_on_timer_g_schedule_until_acked_and_l_reports_a_missing_ack() -> None:
    req = invite()
    txn = InviteServerTransaction("k", req, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(response(req, 200), 0.0)
    log = run_until_quiet(txn)
    assert gaps(transmit_times(log)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert log[-1] == (32.0, TimedOut("L"))  # RFC 3261 §13.3.1.4: the TU should now send BYE
    reliable = InviteServerTransaction("k", req, reliable=True, timers=TIMERS)
    reliable.start(0.0)
    reliable.send_response(response(req, 200), 0.0)
    assert run_until_quiet(reliable) == [(32.0, TimedOut("L"))]


def test_2xx_goes_to_accepted_absorbs_invites_passes_acks_until_timer_l() -> None:
    req = invite()
    txn = InviteServerTransaction("k", req, reliable=True, timers=TIMERS)
    txn.start(0.0)
    ok = response(req, 200)
    txn.send_response(ok, 0.1)
    assert txn.state is State.ACCEPTED
    assert txn.receive_request(req, 0.5) == []  # RFC 6026 §7.1
    ack = ack_for(req)
    assert txn.receive_request(ack, 0.6) == [PassAck(ack)]
    assert [type(a) for a in txn.send_response(ok, 0.7)] == [Transmit]  # TU retransmits its 2xx
    assert txn.deadline == pytest.approx(0.1 + 32.0)
    assert txn.on_timer(32.1) == []  # it was ACKed: Timer L ends it quietly
    assert txn.terminated


# --------------------------------------------------------------------------- non-INVITE server


def test_non_invite_server_timer_j() -> None:
    req = opts()
    for reliable, timer_j in ((False, 32.0), (True, 0.0)):
        txn = NonInviteServerTransaction("k", req, reliable=reliable, timers=TIMERS)
        txn.start(0.0)
        assert txn.receive_request(req, 0.1) == []  # Trying absorbs retransmissions
        ok = response(req, 200)
        (sent,) = txn.send_response(ok, 0.2)
        assert txn.receive_request(req, 0.3) == [sent]  # Completed resends the final
        assert txn.deadline == pytest.approx(0.2 + timer_j)
        txn.on_timer(0.2 + timer_j)
        assert txn.terminated


def test_transport_error_ends_a_client_transaction() -> None:
    txn = NonInviteClientTransaction("k", opts(), reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.transport_error(0.1) == [TransportFailed()]
    assert txn.terminated and txn.deadline is None


def test_custom_timers_scale_every_schedule() -> None:
    fast = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
    txn = InviteClientTransaction("k", invite(), reliable=False, timers=fast)
    txn.start(0.0)
    log = run_until_quiet(txn)
    assert gaps(transmit_times(log)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
    assert log[-1][0] == pytest.approx(6.4)
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)


# ----------------------------------------------------------------------------------- totality

MACHINES: dict[Kind, Callable[[], Transaction]] = {
    Kind.INVITE_CLIENT: lambda: InviteClientTransaction("k", invite(), reliable=False, timers=TIMERS),
    Kind.NON_INVITE_CLIENT: lambda: NonInviteClientTransaction("k", opts(), reliable=False, timers=TIMERS),
    Kind.INVITE_SERVER: lambda: InviteServerTransaction("k", invite(), reliable=False, timers=TIMERS),
    Kind.NON_INVITE_SERVER: lambda: NonInviteServerTransaction("k", opts(), reliable=False, timers=TIMERS),
}

NETWORK_RESPONSES = {Input.RESPONSE_1XX: 180, Input.RESPONSE_2XX: 200, Input.RESPONSE_FINAL: 486}
TU_RESPONSES = {Input.TU_1XX: 180, Input.TU_2XX: 200, Input.TU_FINAL: 486}


def feed(txn: Transaction, event: Input, now: float) -> list[Action]:
    """Deliver ``event`` the way the layer would. The transaction lets go of its request at the
    final response, so the messages are built from a fresh one of the same method."""
    request = invite() if txn.method == "INVITE" else opts()
    if event in NETWORK_RESPONSES:
        assert isinstance(txn, ClientTransaction)
        return txn.receive_response(response(request, NETWORK_RESPONSES[event]), now)
    if event in TU_RESPONSES:
        assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
        return txn.send_response(response(request, TU_RESPONSES[event]), now)
    if event is Input.REQUEST:
        assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
        return txn.receive_request(request, now)
    if event is Input.ACK:
        assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
        return txn.receive_request(ack_for(request), now)
    if event is Input.TRANSPORT_ERROR:
        return txn.transport_error(now)
    return txn._input(event, now, fired_at=now)


def applicable(kind: Kind) -> list[Input]:
    client = kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT)
    return [
        i
        for i in Input
        if not (client and (i in TU_RESPONSES or i in (Input.REQUEST, Input.ACK)))
        and not (not client and i in NETWORK_RESPONSES)
    ]


@pytest.mark.parametrize("kind", list(Kind))
def test_every_state_and_input_is_handled(kind: Kind) -> None:
    """h2-style totality: each (state, input) either has a table entry or is a handled violation."""
    table = TABLES[kind]
    for state in State:
        for event in applicable(kind):
            txn = MACHINES[kind]()
            txn.state = state
            actions = feed(txn, event, 1.0)
            assert isinstance(actions, list)
            if (state, event) in table:
                assert txn.state is table[(state, event)][1]
            else:
                assert txn.state is state
                assert actions in ([], [ProtocolViolation(state, event)])


@given(
    st.sampled_from(list(Kind)),
    st.lists(st.tuples(st.integers(0, len(Input) - 1), st.floats(0, 5)), max_size=40),
)
def test_random_input_sequences_never_raise_and_always_end(
    kind: Kind, steps: list[tuple[int, float]]
) -> None:
    txn = MACHINES[kind]()
    txn.start(0.0)
    inputs = applicable(kind)
    now = 0.0
    for index, delta in steps:
        now += delta
        feed(txn, inputs[index % len(inputs)], now)
        txn.on_timer(now)
    # whatever happened, the machine reaches Terminated on its own timers (nothing leaks)
    run_until_quiet(txn, until=now + 1000)
    if txn.state is State.PROCEEDING and kind is Kind.INVITE_CLIENT:
        return  # a ringing INVITE waits for the far end (or the TU's CANCEL), by design
    if txn.state is State.PROCEEDING and kind is Kind.INVITE_SERVER:
        return  # waits for the TU's final response
    if kind is Kind.NON_INVITE_SERVER and txn.state in (State.TRYING, State.PROCEEDING):
        return  # waits for the TU
    assert txn.terminated, txn
