"""Dialogs (RFC 3261 §12-14), reliable provisionals (RFC 3262), session timers (RFC 4028), sans-IO."""

from __future__ import annotations

import random

import pytest

from sip_stack import LocalProtocolError, Request, Response, make_response, parse
from sip_stack.dialog import (
    Dialog,
    DialogSet,
    DialogState,
    ProvisionalNotAcknowledged,
    RefreshSession,
    RetransmitProvisional,
    SessionExpired,
    SessionTimer,
    negotiate_session_timer_as_uas,
    session_timer_from_response,
)

VIA = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnew"


def invite(extra: str = "", *, to_tag: str | None = None, cseq: int = 10, contact: str = "<sip:alice@192.0.2.1:5070>") -> Request:  # fmt: skip
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        "INVITE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKinv\r\n"
        "Record-Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=alice-tag\r\n'
        f"To: {to}\r\nCall-ID: dlg-1\r\nCSeq: {cseq} INVITE\r\nContact: {contact}\r\n"
        f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def answer(req: Request, status: int = 200, extra: list[tuple[str, str]] | None = None) -> Response:
    headers = [("Contact", "<sip:bob@198.51.100.7:5080>"), *(extra or [])]
    resp = make_response(req, status, to_tag="bob-tag", headers=headers, copy_record_route=True)
    back = parse(resp.serialize())
    assert isinstance(back, Response)
    return back


def uac_dialog() -> tuple[Dialog, Request]:
    req = invite()
    return Dialog.from_uac_response(req, answer(req)), req


def uas_dialog() -> tuple[Dialog, Request]:
    """A UAS dialog whose initial INVITE has been answered and ACKed."""
    req = invite()
    dialog = Dialog.from_uas_request(req, "bob-tag", confirmed=True)
    ack = parse(
        b"ACK sip:bob@198.51.100.7:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKack\r\n"
        b'From: "Alice" <sip:alice@example.com>;tag=alice-tag\r\nTo: <sip:bob@example.com>;tag=bob-tag\r\n'
        b"Call-ID: dlg-1\r\nCSeq: 10 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(ack, Request)
    assert dialog.receive_request(ack) is None
    return dialog, req


def test_uas_cannot_reinvite_before_the_initial_ack() -> None:
    dialog = Dialog.from_uas_request(invite(), "bob-tag", confirmed=True)
    with pytest.raises(LocalProtocolError):
        dialog.request("INVITE", via=VIA)  # RFC 3261 §14.1: the initial INVITE is still in progress


def test_non_2xx_final_ends_an_early_dialog_and_481_ends_a_confirmed_one() -> None:
    req = invite()
    early = Dialog.from_uac_response(req, answer(req, 180))
    early.receive_response(req, answer(req, 486))
    assert early.state is DialogState.TERMINATED
    dialog, _ = uac_dialog()
    reinvite = dialog.request("INVITE", via=VIA)
    dialog.receive_response(reinvite, answer(reinvite, 481))
    assert dialog.state is DialogState.TERMINATED


def test_final_response_stops_reliable_provisional_retransmission() -> None:
    req = invite()
    dialog = Dialog.from_uas_request(req, "bob-tag")
    dialog.reliable_provisional(answer(req, 183), now=0.0)
    dialog.answered(req, answer(req, 200))
    assert dialog.deadline is None and not dialog.awaiting_prack


def test_rfc2543_peer_without_from_tag_gets_no_empty_to_tag() -> None:
    req = invite().__class__.build(
        "INVITE", "sip:bob@example.com",
        [("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2543"), ("From", "<sip:alice@example.com>"),
         ("To", "<sip:bob@example.com>"), ("Call-ID", "old"), ("CSeq", "1 INVITE"), ("Contact", "<sip:alice@192.0.2.1>")],
    )  # fmt: skip
    dialog = Dialog.from_uas_request(parse(req.serialize()), "b", confirmed=True)  # type: ignore[arg-type]
    bye = parse(dialog.request("BYE", via=VIA).serialize())
    assert isinstance(bye, Request) and bye.to.tag is None and "tag" not in (bye.header("to") or "")


def test_malformed_contact_is_the_peers_error_not_ours() -> None:
    from sip_stack import ParseError

    with pytest.raises(ParseError):
        Dialog.from_uas_request(invite(contact="<sip:caller host15.example.net>"), "bob-tag")


def test_refresher_is_a_role_in_the_refreshing_transaction() -> None:
    # We called the carrier (dialog UAC); the carrier's refresh says refresher=uas: that is us.
    dialog, _ = uac_dialog()
    dialog.start_session_timer(SessionTimer(1800, "uas"), now=0.0, we_sent_the_request=False)
    assert dialog.deadline == 900.0
    assert dialog.on_timer(900.0) == [RefreshSession()]


def test_uac_dialog_from_2xx_reverses_record_route_and_targets_the_contact() -> None:
    dialog, req = uac_dialog()
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id.call_id == "dlg-1"
    assert (dialog.local_tag, dialog.remote_tag) == ("alice-tag", "bob-tag")
    assert dialog.remote_target == "sip:bob@198.51.100.7:5080"
    assert dialog.route_set == ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    bye = dialog.request("BYE", via=VIA)
    assert bye.uri_text == "sip:bob@198.51.100.7:5080"  # loose routing: target stays the R-URI
    assert [r.uri_text for r in bye.route] == ["sip:p2.example.net;lr", "sip:p1.example.net;lr"]
    assert (bye.from_.tag, bye.to.tag, bye.call_id) == ("alice-tag", "bob-tag", "dlg-1")
    assert bye.from_.display_name == "Alice"
    assert bye.cseq.seq == req.cseq.seq + 1
    assert dialog.request("INFO", via=VIA).cseq.seq == req.cseq.seq + 2


def test_early_dialog_from_provisional_becomes_confirmed() -> None:
    req = invite()
    dialog = Dialog.from_uac_response(req, answer(req, 180))
    assert dialog.state is DialogState.EARLY
    dialog.receive_response(req, answer(req, 200))
    assert dialog.state is DialogState.CONFIRMED


def test_uas_dialog_keeps_record_route_order_and_remote_cseq() -> None:
    dialog, _req = uas_dialog()
    assert dialog.route_set == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    assert dialog.remote_target == "sip:alice@192.0.2.1:5070"
    assert dialog.remote_seq == 10
    bye = dialog.request("BYE", via=VIA)
    assert (bye.from_.tag, bye.to.tag) == ("bob-tag", "alice-tag")
    assert bye.to.display_name == "Alice"


def test_strict_route_puts_the_first_route_in_the_request_uri() -> None:
    req = invite().__class__.build(
        "INVITE",
        "sip:bob@example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs"),
            ("Record-Route", "<sip:strict.example.net>"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "strict"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@192.0.2.1>"),
        ],
    )
    dialog = Dialog.from_uas_request(parse(req.serialize()), "b")  # type: ignore[arg-type]
    bye = dialog.request("BYE", via=VIA)
    assert bye.uri_text == "sip:strict.example.net"
    assert [r.uri_text for r in bye.route] == ["sip:alice@192.0.2.1"]


def test_lower_cseq_gets_500_and_target_refresh_updates_the_contact() -> None:
    dialog, _ = uas_dialog()
    old = invite(to_tag="bob-tag", cseq=9)
    response = dialog.receive_request(old)
    assert response is not None and response.status == 500
    reinvite = invite(to_tag="bob-tag", cseq=11, contact="<sip:alice@203.0.113.9:5070>")
    assert dialog.receive_request(reinvite) is None
    assert dialog.remote_target == "sip:alice@203.0.113.9:5070"
    assert dialog.remote_seq == 11


def test_reinvite_glare_gets_491_and_backoff_depends_on_call_id_ownership() -> None:
    dialog, _ = uac_dialog()
    dialog.request("INVITE", via=VIA, contact="<sip:alice@192.0.2.1:5070>")
    with pytest.raises(LocalProtocolError):
        dialog.request("INVITE", via=VIA)  # one INVITE at a time (§14.1)
    theirs = parse(
        b"INVITE sip:alice@192.0.2.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bKg\r\n"
        b"From: <sip:bob@example.com>;tag=bob-tag\r\nTo: <sip:alice@example.com>;tag=alice-tag\r\n"
        b"Call-ID: dlg-1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@198.51.100.7:5080>\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(theirs, Request)
    glare = dialog.receive_request(theirs)
    assert glare is not None and glare.status == 491
    rng = random.Random(1)
    waits = [dialog.glare_backoff(rng) for _ in range(200)]
    assert min(waits) >= 2.1 and max(waits) <= 4.0  # we own the Call-ID (§14.1)
    uas, _ = uas_dialog()
    waits = [uas.glare_backoff(rng) for _ in range(200)]
    assert min(waits) >= 0.0 and max(waits) <= 2.0


def test_second_invite_before_the_first_is_answered_gets_500_with_retry_after() -> None:
    dialog, _ = uas_dialog()
    assert dialog.receive_request(invite(to_tag="bob-tag", cseq=11)) is None
    second = dialog.receive_request(invite(to_tag="bob-tag", cseq=12))
    assert second is not None and second.status == 500 and second.retry_after is not None


def test_update_with_offer_during_our_invite_gets_491() -> None:
    dialog, _ = uac_dialog()
    dialog.request("INVITE", via=VIA)
    update = parse(
        b"UPDATE sip:alice@192.0.2.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKu\r\n"
        b"From: <sip:bob@example.com>;tag=bob-tag\r\nTo: <sip:alice@example.com>;tag=alice-tag\r\n"
        b"Call-ID: dlg-1\r\nCSeq: 2 UPDATE\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nv=0"
    )
    assert isinstance(update, Request)
    result = dialog.receive_request(update)
    assert result is not None and result.status == 491


def test_ack_for_2xx_uses_the_invite_cseq() -> None:
    dialog, req = uac_dialog()
    ack = dialog.ack(req.cseq.seq, via=VIA)
    assert (ack.method, ack.cseq.seq, ack.cseq.method) == ("ACK", req.cseq.seq, "ACK")
    assert dialog.local_seq == req.cseq.seq  # an ACK does not use up a CSeq number


# ------------------------------------------------------------------------------- RFC 3262


def test_reliable_provisional_is_resent_with_doubling_until_prack() -> None:
    dialog = Dialog.from_uas_request(invite("Supported: 100rel\r\n"), "bob-tag")
    req = invite("Supported: 100rel\r\n")
    ringing = dialog.reliable_provisional(answer(req, 180), now=0.0)
    assert "100rel" in ringing.require and ringing.rseq == dialog.local_rseq
    with pytest.raises(LocalProtocolError):
        dialog.reliable_provisional(answer(req, 183), now=0.1)  # one unacknowledged at a time
    times = []
    now = 0.0
    while dialog.deadline is not None and dialog.deadline < 10:
        now = dialog.deadline
        if any(isinstance(a, RetransmitProvisional) for a in dialog.on_timer(now)):
            times.append(now)
    assert times == [0.5, 1.5, 3.5, 7.5]
    prack = dialog_prack(ringing)
    ok = dialog.receive_prack(prack)
    assert ok.status == 200 and not dialog.awaiting_prack
    assert dialog.receive_prack(prack).status == 481  # nothing outstanding any more


def test_unacknowledged_provisional_gives_up_after_64_t1() -> None:
    dialog = Dialog.from_uas_request(invite(), "bob-tag")
    dialog.reliable_provisional(answer(invite(), 183), now=0.0)
    actions = []
    now = 0.0
    while dialog.deadline is not None:
        now = dialog.deadline
        actions.extend((now, a) for a in dialog.on_timer(now))
    assert isinstance(actions[-1][1], ProvisionalNotAcknowledged)
    assert actions[-1][0] == 32.0


def dialog_prack(provisional: Response) -> Request:
    uac = Dialog.from_uac_response(invite(), provisional)
    prack = uac.prack(provisional, via=VIA)
    assert prack is not None
    return parse(prack.serialize())  # type: ignore[return-value]


def test_uac_pracks_in_order_and_ignores_retransmissions() -> None:
    req = invite("Supported: 100rel\r\n")
    first = answer(req, 180, [("Require", "100rel"), ("RSeq", "5")])
    uac = Dialog.from_uac_response(req, first)
    prack = uac.prack(first, via=VIA)
    assert prack is not None and prack.method == "PRACK"
    rack = prack.rack
    assert rack is not None and (rack.rseq, rack.cseq, rack.method) == (5, req.cseq.seq, "INVITE")
    assert uac.prack(first, via=VIA) is None  # a retransmission is not PRACKed again
    assert uac.prack(answer(req, 183, [("Require", "100rel"), ("RSeq", "7")]), via=VIA) is None  # gap
    assert uac.prack(answer(req, 183, [("Require", "100rel"), ("RSeq", "6")]), via=VIA) is not None
    assert uac.prack(answer(req, 180), via=VIA) is None  # not reliable


def test_prack_with_wrong_rack_gets_481() -> None:
    dialog = Dialog.from_uas_request(invite(), "bob-tag")
    ringing = dialog.reliable_provisional(answer(invite(), 180), now=0.0)
    prack = dialog_prack(ringing)
    prack.set_header("RAck", f"{ringing.rseq + 1} 10 INVITE")
    assert dialog.receive_prack(prack).status == 481
    assert dialog.awaiting_prack


# ------------------------------------------------------------------------------- RFC 4028


def test_too_small_session_expires_gets_422_with_min_se() -> None:
    result = negotiate_session_timer_as_uas(invite("Supported: timer\r\nSession-Expires: 30\r\n"))
    assert isinstance(result, Response)
    assert result.status == 422 and result.min_se == 90 and result.to.tag is not None


@pytest.mark.parametrize(
    "extra,expected",
    [
        ("Supported: timer\r\nSession-Expires: 1800\r\n", SessionTimer(1800, "uac")),
        ("Session-Expires: 1800\r\n", SessionTimer(1800, "uas")),  # UAC cannot refresh: we do
        ("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n", SessionTimer(600, "uas")),
        ("Supported: timer\r\n", SessionTimer(1800, "uas")),
        ("", None),
    ],
)
def test_refresher_election(extra: str, expected: SessionTimer | None) -> None:
    assert negotiate_session_timer_as_uas(invite(extra)) == expected


def test_refresher_refreshes_at_half_and_the_other_side_ends_the_session() -> None:
    req = invite()
    uac = Dialog.from_uac_response(req, answer(req, 200, [("Session-Expires", "90;refresher=uac")]))
    timer = session_timer_from_response(answer(req, 200, [("Session-Expires", "90;refresher=uac")]))
    assert timer == SessionTimer(90, "uac")
    uac.start_session_timer(timer, now=0.0, we_sent_the_request=True)
    assert uac.deadline == 45.0
    assert uac.on_timer(45.0) == [RefreshSession()]
    uas = Dialog.from_uas_request(req, "bob-tag", confirmed=True)
    uas.start_session_timer(timer, now=0.0, we_sent_the_request=False)
    assert uas.deadline == 60.0  # 90 - min(32, 90/3)
    assert uas.on_timer(60.0) == [SessionExpired()]


def test_dialog_set_finds_dialogs_and_answers_481() -> None:
    dialogs = DialogSet()
    dialog, _ = uas_dialog()
    dialogs.add(dialog)
    bye = invite(to_tag="bob-tag", cseq=11)
    assert dialogs.for_request(bye) is dialog
    unknown = invite(to_tag="nobody", cseq=11)
    assert dialogs.for_request(unknown) is None
    assert dialogs.no_dialog(unknown).status == 481
    dialogs.remove(dialog)
    assert len(dialogs) == 0
