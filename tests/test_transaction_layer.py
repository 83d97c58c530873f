"""The transaction layer: two layers wired through a lossy in-memory network on a fake clock, and the
rules the layer owns (CANCEL, merged requests, 416, stray 2xx and ACK, RFC 2543 matching, floods)."""

from __future__ import annotations

import gc
import heapq
import itertools
import random
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sip_stack import ParseError, Request, Response, make_response, parse
from sip_stack.transaction import InviteClientTransaction, TimerConfig
from sip_stack.transaction_layer import (
    AckReceived,
    Cancelled,
    RequestReceived,
    ResponseReceived,
    Send,
    StrayResponse,
    TransactionLayer,
    TransactionTimeout,
    build_cancel,
    make_branch,
)

VECTORS = Path(__file__).parent / "vectors"


def request(method: str, *, branch: str | None = None, call_id: str = "call-1", cseq: int = 1,
            to_tag: str | None = None, from_tag: str = "a1", uri: str = "sip:b@127.0.0.2") -> Request:  # fmt: skip
    to = "<sip:b@127.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch or make_branch()}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:a@127.0.0.1:5060>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def ack_for_2xx(invite: Request, ok: Response) -> Request:
    data = (
        f"ACK {invite.uri_text} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={make_branch()}\r\n"
        f"Max-Forwards: 70\r\nFrom: {invite.header('from')}\r\nTo: {ok.header('to')}\r\n"
        f"Call-ID: {invite.call_id}\r\nCSeq: {invite.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


# ------------------------------------------------------------------------------ lossy network


@dataclass
class Network:
    """Delivers Send outputs between two layers with loss, duplication and random delay (reorder)."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, now: float, to: str, data: bytes) -> None:
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < self.loss:
                continue
            heapq.heappush(self.queue, (now + self.rng.uniform(0.005, 0.08), next(self.seq), to, data))


@dataclass
class Uac:
    layer: TransactionLayer
    outcomes: dict[str, str] = field(default_factory=dict)  # call-id → final status or timeout
    acks_sent: int = 0
    byes: dict[str, Request] = field(default_factory=dict)


@dataclass
class Uas:
    layer: TransactionLayer
    acked: set[str] = field(default_factory=set)
    byes: set[str] = field(default_factory=set)
    pending: list[tuple[float, int, object, Response]] = field(default_factory=list)


def run_calls(loss: float, duplicate: float, calls: int, seed: int) -> tuple[Uac, Uas, float]:
    rng = random.Random(seed)
    net = Network(rng, loss, duplicate)
    uac = Uac(TransactionLayer(TimerConfig()))
    uas = Uas(TransactionLayer(TimerConfig(), tag_factory=lambda: "uas-tag"))
    seq = itertools.count()
    now = 0.0
    for n in range(calls):
        uac.layer.request(request("INVITE", call_id=f"c{n}"), "uas", reliable=False, now=now + n * 0.01)

    def pump(now: float) -> None:
        for out in uac.layer.drain():
            if isinstance(out, Send):
                net.send(now, "uas", out.data)
            elif isinstance(out, ResponseReceived | StrayResponse):
                resp = out.response
                cid = resp.call_id
                if resp.cseq.method == "INVITE" and resp.status >= 200:
                    uac.outcomes.setdefault(cid, str(resp.status))
                    if resp.status < 300:
                        invite = uac.byes.get(cid)
                        uac.layer.send_ack(ack_for_2xx(request("INVITE", call_id=cid), resp), "uas")
                        uac.acks_sent += 1
                        if invite is None:
                            bye = request("BYE", call_id=cid, cseq=2, to_tag=resp.to.tag)
                            uac.byes[cid] = bye
                            uac.layer.request(bye, "uas", reliable=False, now=now)
                elif resp.cseq.method == "BYE" and resp.status >= 200:
                    uac.outcomes[cid + "/bye"] = str(resp.status)
            elif isinstance(out, TransactionTimeout):
                req = out.transaction.request
                assert req is not None  # B and F only fire before a final response
                uac.outcomes.setdefault(req.call_id + ("/bye" if req.method == "BYE" else ""), "timeout")
        for out in uas.layer.drain():
            if isinstance(out, Send):
                net.send(now, "uac", out.data)
            elif isinstance(out, RequestReceived):
                req = out.request
                if req.method == "INVITE":
                    uas.layer.respond(out.transaction, make_response(req, 180, to_tag="uas-tag"), now)
                    ok = make_response(req, 200, to_tag="uas-tag", headers=[("Contact", "<sip:b@127.0.0.2>")])
                    heapq.heappush(uas.pending, (now + 0.5, next(seq), out.transaction, ok))
                else:
                    uas.byes.add(req.call_id)
                    uas.layer.respond(out.transaction, make_response(req, 200), now)
            elif isinstance(out, AckReceived):
                uas.acked.add(out.request.call_id)

    pump(now)
    for _ in range(200_000):
        candidates = [t for t in (uac.layer.deadline, uas.layer.deadline) if t is not None]
        if net.queue:
            candidates.append(net.queue[0][0])
        if uas.pending:
            candidates.append(uas.pending[0][0])
        if not candidates:
            break
        now = max(now, min(candidates))
        while net.queue and net.queue[0][0] <= now:
            _, _, to, data = heapq.heappop(net.queue)
            msg = parse(data)
            layer = uas.layer if to == "uas" else uac.layer
            layer.receive(msg, "uac" if to == "uas" else "uas", reliable=False, now=now)
        while uas.pending and uas.pending[0][0] <= now:
            _, _, txn, ok = heapq.heappop(uas.pending)
            uas.layer.respond(txn, ok, now)  # type: ignore[arg-type]
        uac.layer.on_timer(now)
        uas.layer.on_timer(now)
        pump(now)
    return uac, uas, now


def test_calls_complete_over_a_clean_network_and_nothing_is_left_behind() -> None:
    uac, uas, _ = run_calls(loss=0.0, duplicate=0.0, calls=20, seed=1)
    assert all(uac.outcomes[f"c{n}"] == "200" for n in range(20))
    assert all(uac.outcomes[f"c{n}/bye"] == "200" for n in range(20))
    assert uas.acked == {f"c{n}" for n in range(20)}
    assert uac.layer.active == 0 and uas.layer.active == 0
    assert uac.layer.deadline is None and uas.layer.deadline is None
    assert uac.layer.stats.created == uac.layer.stats.terminated == 40


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_loss_duplication_and_reordering_every_transaction_ends_as_the_rfc_says(seed: int) -> None:
    uac, uas, _ = run_calls(loss=0.2, duplicate=0.2, calls=30, seed=seed)
    for n in range(30):
        outcome = uac.outcomes.get(f"c{n}")
        assert outcome in ("200", "timeout"), (n, outcome)
        if outcome == "200":
            bye = uac.outcomes.get(f"c{n}/bye")
            assert bye in ("200", "timeout")
    completed = [n for n in range(30) if uac.outcomes[f"c{n}"] == "200"]
    assert len(completed) >= 27  # 20% loss: retransmissions carry nearly every call through
    # every call the UAC saw answered was ACKed: the 2xx is resent until an ACK lands
    assert {f"c{n}" for n in completed} <= uas.acked | uas.byes  # or a later BYE proved the 2xx came
    assert uac.layer.active == 0 and uas.layer.active == 0  # nothing leaks, timers all ran out
    assert uas.layer.stats.retransmissions_absorbed > 0


# -------------------------------------------------------------------------------------- CANCEL


def sends(outputs: list[object]) -> list[Request | Response]:
    out = []
    for o in outputs:
        if isinstance(o, Send):
            msg = parse(o.data)
            out.append(msg)
    return out


def test_cancel_answers_200_then_487_and_tells_the_tu() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t1")
    invite = request("INVITE")
    uas.receive(invite, "peer", reliable=False, now=0.0)
    (received,) = uas.drain()
    assert isinstance(received, RequestReceived)
    uas.respond(received.transaction, make_response(invite, 180, to_tag="ring"), 0.1)
    uas.drain()
    uas.receive(build_cancel(invite), "peer", reliable=False, now=0.5)
    out = uas.drain()
    msgs = sends(out)
    assert [(m.status, m.cseq.method) for m in msgs if isinstance(m, Response)] == [
        (200, "CANCEL"),
        (487, "INVITE"),
    ]
    assert msgs[1].to.tag == "ring"  # the 487 keeps the tag of the early dialog
    assert any(isinstance(o, Cancelled) and o.transaction is received.transaction for o in out)


def test_cancel_for_nothing_gets_481_and_cancel_after_final_has_no_effect() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t1")
    uas.receive(build_cancel(request("INVITE")), "peer", reliable=False, now=0.0)
    (resp,) = sends(uas.drain())
    assert isinstance(resp, Response) and resp.status == 481
    invite = request("INVITE")
    uas.receive(invite, "peer", reliable=False, now=0.0)
    (received,) = uas.drain()
    assert isinstance(received, RequestReceived)
    uas.respond(received.transaction, make_response(invite, 486, to_tag="x"), 0.1)
    uas.drain()
    uas.receive(build_cancel(invite), "peer", reliable=False, now=0.2)
    out = uas.drain()
    assert [m.status for m in sends(out) if isinstance(m, Response)] == [200]
    assert not any(isinstance(o, Cancelled) for o in out)


def test_client_cancel_waits_for_a_provisional() -> None:
    uac = TransactionLayer()
    invite = request("INVITE")
    txn = uac.request(invite, "peer", reliable=False, now=0.0)
    uac.drain()
    uac.cancel(txn, 0.1)
    assert [m.method for m in sends(uac.drain()) if isinstance(m, Request)] == []  # held (§9.1)
    uac.receive(make_response(invite, 180, to_tag="r"), "peer", reliable=False, now=0.2)
    out = uac.drain()
    (cancel,) = [m for m in sends(out) if isinstance(m, Request)]
    assert cancel.method == "CANCEL"
    assert cancel.top_via.branch == invite.top_via.branch
    assert (cancel.cseq.seq, cancel.cseq.method, cancel.call_id) == (
        invite.cseq.seq,
        "CANCEL",
        invite.call_id,
    )
    # the 487 that follows is ACKed by the INVITE transaction itself
    uac.receive(make_response(invite, 487, to_tag="r"), "peer", reliable=False, now=0.3)
    (ack,) = [m for m in sends(uac.drain()) if isinstance(m, Request)]
    assert ack.method == "ACK" and ack.top_via.branch == invite.top_via.branch


# ---------------------------------------------------------------------- early rejections


def test_merged_request_gets_482() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t")
    first = request("INVITE", branch="z9hG4bKpath1")
    second = request("INVITE", branch="z9hG4bKpath2")  # same From tag, Call-ID, CSeq: forked to us twice
    uas.receive(first, "p1", reliable=False, now=0.0)
    uas.receive(second, "p2", reliable=False, now=0.01)
    out = uas.drain()
    assert sum(isinstance(o, RequestReceived) for o in out) == 1
    (resp,) = [m for m in sends(out) if isinstance(m, Response)]
    assert resp.status == 482 and resp.top_via.branch == "z9hG4bKpath2"
    assert uas.stats.merged_requests == 1


def test_unknown_request_uri_scheme_gets_416() -> None:
    data = (VECTORS / "rfc4475" / "unkscm.dat").read_bytes()
    msg = parse(data)
    assert isinstance(msg, Request)
    uas = TransactionLayer(tag_factory=lambda: "t")
    uas.receive(msg, "p", reliable=False, now=0.0)
    out = uas.drain()
    assert not any(isinstance(o, RequestReceived) for o in out)
    (resp,) = sends(out)
    assert isinstance(resp, Response) and resp.status == 416


def test_same_branch_flood_makes_one_transaction() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t")
    invite = request("INVITE", branch="z9hG4bKflood")
    for i in range(1000):
        uas.receive(invite, "p", reliable=False, now=i * 0.001)
    out = uas.drain()
    assert sum(isinstance(o, RequestReceived) for o in out) == 1
    assert uas.stats.created == 1 and uas.active == 1
    assert uas.stats.retransmissions_absorbed == 999


def test_stray_2xx_and_ack_go_to_the_tu() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    ok = make_response(invite, 200, to_tag="x")
    layer.receive(ok, "p", reliable=False, now=0.0)
    ack = ack_for_2xx(invite, ok)
    layer.receive(ack, "p", reliable=False, now=0.0)
    out = layer.drain()
    assert [type(o) for o in out] == [StrayResponse, AckReceived]
    layer.receive(make_response(invite, 404, to_tag="x"), "p", reliable=False, now=0.0)
    assert layer.drain() == []  # a stray non-2xx is dropped
    assert layer.stats.stray_responses == 2


def test_rfc2543_matching_without_magic_cookie() -> None:
    data = (VECTORS / "rfc4475" / "inv2543.dat").read_bytes()
    invite = parse(data)
    assert isinstance(invite, Request) and invite.top_via.branch is None
    uas = TransactionLayer(tag_factory=lambda: "t")
    uas.receive(invite, "p", reliable=False, now=0.0)
    (received,) = uas.drain()
    assert isinstance(received, RequestReceived)
    uas.receive(parse(data), "p", reliable=False, now=0.1)  # type: ignore[arg-type]
    assert uas.stats.created == 1  # the retransmission matched
    uas.respond(received.transaction, make_response(invite, 486, to_tag="t"), 0.2)
    uas.drain()
    ack_data = data.replace(b"INVITE sip:UserB@example.com", b"ACK sip:UserB@example.com").replace(
        b"CSeq: 56 INVITE", b"CSeq: 56 ACK"
    )
    ack_data = ack_data.replace(b"To: sip:UserB@example.com", b"To: sip:UserB@example.com;tag=t")
    ack = parse(ack_data[: ack_data.index(b"\r\n\r\n") + 4] + b"")
    assert isinstance(ack, Request) and ack.method == "ACK"
    uas.receive(ack, "p", reliable=False, now=0.3)
    assert uas.drain() == []  # absorbed by the INVITE server transaction (Confirmed)
    assert uas.stats.stray_acks == 0


def test_invite_client_acks_non_2xx_itself() -> None:
    uac = TransactionLayer()
    invite = request("INVITE")
    txn = uac.request(invite, "p", reliable=True, now=0.0)
    assert isinstance(txn, InviteClientTransaction)
    uac.drain()
    uac.receive(make_response(invite, 503, to_tag="x"), "p", reliable=True, now=0.1)
    out = uac.drain()
    assert isinstance(out[0], Send)  # the ACK goes out before the TU hears of the 503
    assert isinstance(out[1], ResponseReceived) and out[1].response.status == 503
    assert [m.method for m in sends(out) if isinstance(m, Request)] == ["ACK"]
    uac.on_timer(0.1)  # Timer D is zero on a reliable transport
    assert uac.active == 0


# ------------------------------------------------------------------------------ garbage flood


def test_random_and_mutated_datagrams_leave_no_transaction_or_timer_behind() -> None:
    rng = random.Random(7)
    seeds = [p.read_bytes() for p in sorted((VECTORS / "rfc4475").glob("*.dat"))]
    seeds.append(request("INVITE").serialize())
    seeds.append(request("OPTIONS").serialize())
    layer = TransactionLayer(tag_factory=lambda: "t")
    now = 0.0
    parsed = 0
    unanswered: dict[int, RequestReceived] = {}
    for i in range(10_000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 4)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        if i % 10 == 0:
            data = bytearray(rng.randbytes(rng.randint(0, 300)))
        now += 0.001
        try:
            msg = parse(bytes(data))
            layer.receive(msg, ("udp", "127.0.0.1", 5060 + i % 7), reliable=False, now=now)
        except ParseError:
            continue  # the transport answers 400 statelessly; nothing reaches the layer
        parsed += 1
        for out in layer.drain():
            if isinstance(out, RequestReceived):
                if i % 3 == 0:
                    layer.respond(out.transaction, make_response(out.request, 500, to_tag="t"), now)
                else:
                    unanswered[id(out.transaction)] = out
        layer.on_timer(now)
    assert parsed > 1000
    assert layer.active > 0
    # a TU answers everything it was handed; then every timer runs out and nothing is left
    for out in unanswered.values():
        layer.respond(out.transaction, make_response(out.request, 500, to_tag="t"), now)
    while (deadline := layer.deadline) is not None:
        now = max(now, deadline)
        layer.on_timer(now)
        layer.drain()
    assert layer.active == 0
    assert layer.stats.created == layer.stats.terminated > 100
    # every index the layer keeps was cleaned up with its transaction
    assert not (layer._client or layer._server or layer._merge or layer._accepted or layer._by_txn)


def test_a_later_request_in_the_dialog_stops_2xx_retransmission_when_the_ack_was_lost() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t")
    invite = request("INVITE")
    uas.receive(invite, "p", reliable=False, now=0.0)
    (received,) = uas.drain()
    assert isinstance(received, RequestReceived)
    uas.respond(received.transaction, make_response(invite, 200, to_tag="t"), 0.0)
    uas.drain()
    uas.on_timer(0.5)
    assert [m.status for m in sends(uas.drain()) if isinstance(m, Response)] == [200]  # resent
    bye = request("BYE", call_id=invite.call_id, cseq=invite.cseq.seq + 1, to_tag="t")
    uas.receive(bye, "p", reliable=False, now=0.6)
    uas.drain()
    now = 0.6
    resent = 0
    while (deadline := uas.deadline) is not None and deadline < 40:
        now = deadline
        uas.on_timer(now)
        resent += sum(1 for m in sends(uas.drain()) if isinstance(m, Response) and m.status == 200)
    assert resent == 0  # the BYE told us the 2xx had arrived
    assert not any(isinstance(o, TransactionTimeout) for o in uas.drain())


def test_absorbed_retransmissions_do_not_grow_the_timer_heap() -> None:
    uas = TransactionLayer(tag_factory=lambda: "t")
    invite = request("INVITE")
    uas.receive(invite, "p", reliable=False, now=0.0)
    (received,) = [o for o in uas.drain() if isinstance(o, RequestReceived)]
    uas.respond(received.transaction, make_response(invite, 200, to_tag="t"), 0.0)
    for i in range(50_000):
        uas.receive(invite, "p", reliable=False, now=0.001 * (i % 100))
    assert len(uas._heap) <= 3  # one entry per transaction, not one per retransmission
    uas.drain()


def test_cancel_200_and_487_share_the_to_tag() -> None:
    uas = TransactionLayer(tag_factory=lambda: "fresh")
    invite = request("INVITE")
    uas.receive(invite, "p", reliable=False, now=0.0)
    uas.drain()
    uas.receive(build_cancel(invite), "p", reliable=False, now=0.1)
    responses = [m for m in sends(uas.drain()) if isinstance(m, Response)]
    assert [(r.status, r.to.tag) for r in responses if r.status != 100] == [(200, "fresh"), (487, "fresh")]


def test_cancelled_invite_without_final_ends_after_64_t1() -> None:
    uac = TransactionLayer()
    invite = request("INVITE")
    txn = uac.request(invite, "p", reliable=False, now=0.0)
    uac.receive(make_response(invite, 180, to_tag="r"), "p", reliable=False, now=0.1)
    uac.cancel(txn, 1.0)
    uac.drain()
    now = 1.0
    outcome = []
    while (deadline := uac.deadline) is not None and deadline < 100:
        now = deadline
        uac.on_timer(now)
        outcome.extend(o for o in uac.drain() if isinstance(o, TransactionTimeout) and o.transaction is txn)
    assert len(outcome) == 1 and outcome[0].timer == "B"
    assert now == pytest.approx(1.0 + 32.0)
    assert txn.terminated


def _messages_reachable(root: object) -> list[object]:
    """Every parsed or built SIP message reachable from ``root`` through its data (functions,
    classes and modules are not followed: they reach everything)."""
    seen: set[int] = set()
    found: list[object] = []
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        if isinstance(obj, Request | Response):
            found.append(obj)
            continue
        stack.extend(gc.get_referents(obj))
    return found


def test_finished_transactions_keep_bytes_not_parsed_messages() -> None:
    """Over UDP a transaction lingers 32 s after its final response (Timers D, J, K, L); at a
    thousand calls a second, parsed messages kept that long are over a million objects for the
    garbage collector. What lingers is the wire bytes and the facts matching needs."""
    uac, uas = TransactionLayer(), TransactionLayer(tag_factory=lambda: "uas-tag")

    def exchange(now: float) -> list[object]:
        events: list[object] = []
        for _ in range(10):
            moved = False
            for src, dst, peer in ((uac, uas, "uac"), (uas, uac, "uas")):
                for out in src.drain():
                    if isinstance(out, Send):
                        dst.receive(parse(out.data), peer, reliable=False, now=now)
                        moved = True
                    else:
                        events.append(out)
            if not moved:
                break
        return events

    invite = request("INVITE", call_id="linger")
    uac.request(invite, "uas", reliable=False, now=0.0)
    (received,) = [e for e in exchange(0.0) if isinstance(e, RequestReceived)]
    ok = make_response(received.request, 200, to_tag="uas-tag")
    uas.respond(received.transaction, ok, 0.0)
    assert any(isinstance(e, ResponseReceived) for e in exchange(0.0))
    uas.receive(ack_for_2xx(invite, ok), "uac", reliable=False, now=0.01)
    uac.request(request("BYE", call_id="linger", cseq=2, to_tag="uas-tag"), "uas", reliable=False, now=0.1)
    (bye,) = [e for e in exchange(0.1) if isinstance(e, RequestReceived)]
    uas.respond(bye.transaction, make_response(bye.request, 200), 0.1)
    exchange(0.1)
    bye_wire = bye.request.serialize()
    del invite, received, ok, bye
    assert uas.active == 2 and uac.active == 2  # each side: the INVITE (Accepted) and the BYE
    assert _messages_reachable(uas) == [] and _messages_reachable(uac) == []
    # ... and they still do their job: a retransmitted BYE gets the same 200 again, from bytes
    uas.on_timer(20.0)
    uas.receive(parse(bye_wire), "uac", reliable=False, now=20.0)
    (resent,) = [parse(o.data) for o in uas.drain() if isinstance(o, Send)]
    assert isinstance(resent, Response) and resent.status == 200 and resent.cseq.method == "BYE"
    uas.on_timer(33.0)
    uac.on_timer(33.0)
    assert uas.active == uac.active == 0
