"""Dialogs (RFC 3261 §12-14) with reliable provisionals (RFC 3262), UPDATE (RFC 3311) and session
timers (RFC 4028), sans-IO.

A :class:`Dialog` holds what RFC 3261 §12 says a dialog is (Call-ID, tags, local and remote CSeq,
remote target, route set, secure flag) and builds and checks the requests inside it. It keeps the
offer/answer bookkeeping that glare needs (§14: 491 and its back-off; RFC 3311 §5.2), the reliable
provisional state of both roles (RFC 3262) and the session timer (RFC 4028). Like the transactions it
never reads the clock: :attr:`Dialog.deadline` and :meth:`Dialog.on_timer` give the owner one timer.
:class:`DialogSet` finds the dialog of an in-dialog request and answers 481 when there is none.
"""

from __future__ import annotations

import contextlib
import enum
import random
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from .errors import LocalProtocolError, ParseError
from .message import Request, Response, make_response
from .transaction import TimerConfig
from .uri import SipURI
from .values import NameAddr

#: RFC 4028 §4: the smallest Session-Expires anyone may ask for, and our default interval.
MIN_SESSION_EXPIRES: Final = 90
DEFAULT_SESSION_EXPIRES: Final = 1800

#: Methods that refresh the remote target (RFC 3261 §12.2, RFC 3311 §5.1, RFC 6665 for SUBSCRIBE).
TARGET_REFRESH: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 §12: Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


# ---------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class RetransmitProvisional:
    """Send the reliable provisional again (RFC 3262 §3: T1 doubling, no cap)."""

    response: Response


@dataclass(frozen=True, slots=True)
class ProvisionalNotAcknowledged:
    """No PRACK for 64*T1: the UAS should reject the INVITE with a 5xx (RFC 3262 §3)."""

    response: Response


@dataclass(frozen=True, slots=True)
class RefreshSession:
    """We are the refresher and half the interval has passed (RFC 4028 §10)."""


@dataclass(frozen=True, slots=True)
class SessionExpired:
    """No refresh came before the session expired: send BYE (RFC 4028 §10)."""


DialogAction = RetransmitProvisional | ProvisionalNotAcknowledged | RefreshSession | SessionExpired


# ---------------------------------------------------------------------------- session timers


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """The negotiated session interval and who refreshes (RFC 4028 §7, §9)."""

    interval: int
    refresher: str  # "uac" or "uas": roles in the transaction whose 2xx carried it (RFC 4028 §7.4)

    def header(self) -> str:
        return f"{self.interval};refresher={self.refresher}"


def negotiate_session_timer_as_uas(
    request: Request,
    *,
    min_se: int = MIN_SESSION_EXPIRES,
    default_interval: int = DEFAULT_SESSION_EXPIRES,
) -> SessionTimer | Response | None:
    """What a UAS answers to an INVITE or UPDATE about session timers (RFC 4028 §9).

    Returns a 422 response (with our Min-SE) when the offered interval is too small, the timer to put
    in the 2xx otherwise, or None when the UAC asked for none and we do not insist.
    """
    se = request.session_expires
    uac_supports = "timer" in request.supported or "timer" in request.require
    if se is None:
        if not uac_supports:
            return None  # RFC 4028 §9: we may still run a timer as refresher; we keep it simple
        return SessionTimer(max(default_interval, min_se), "uas")
    if se.delta < min_se:
        return make_response(request, 422, to_tag=_tag_for(request), headers=[("Min-SE", str(min_se))])
    refresher = se.refresher or ("uac" if uac_supports else "uas")
    return SessionTimer(se.delta, refresher)


def session_timer_from_response(response: Response) -> SessionTimer | None:
    """The UAC's view after a 2xx (RFC 4028 §7.2)."""
    se = response.session_expires
    if se is None:
        return None
    return SessionTimer(se.delta, se.refresher or "uac")


def _tag_for(request: Request) -> str | None:
    return None if request.to.tag is not None else secrets.token_hex(8)


# ------------------------------------------------------------------------------------ dialog


@dataclass
class _ReliableProvisional:
    response: Response
    rseq: int
    next_at: float
    interval: float
    give_up_at: float


@dataclass
class Dialog:
    """One dialog, from either side (RFC 3261 §12)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the From (UAC) or To (UAS) value of the dialog-creating request, without tag
    remote_uri: str
    remote_target: str
    route_set: list[str]
    local_seq: int
    remote_seq: int | None
    is_uac: bool  # we sent the dialog-creating request
    secure: bool = False
    state: DialogState = DialogState.EARLY
    timers: TimerConfig = field(default_factory=TimerConfig)
    # offer/answer and glare (RFC 3261 §14, RFC 3311 §5.2)
    outgoing_invite_pending: bool = False
    incoming_invite_pending: int | None = None  # CSeq of a re-INVITE we have not answered yet
    # RFC 3262
    local_rseq: int = field(default_factory=lambda: random.randint(1, 2**31 - 1))
    last_remote_rseq: int | None = None
    _unacked: _ReliableProvisional | None = None
    #: The methods the peer's last Allow listed (RFC 3261 §20.5), None until it sent one: absent
    #: Allow says nothing, so an UPDATE refresh is tried; a list without UPDATE means re-INVITE.
    remote_allow: frozenset[str] | None = None
    # RFC 4028
    session_timer: SessionTimer | None = None
    _refresh_at: float | None = None
    _expire_at: float | None = None

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # ------------------------------------------------------------------ creation (§12.1)

    @classmethod
    def from_uac_response(
        cls, request: Request, response: Response, *, timers: TimerConfig | None = None
    ) -> Dialog:
        """RFC 3261 §12.1.2: a 1xx (with To tag) or 2xx to our INVITE creates the dialog."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if remote_tag is None or local_tag is None:
            raise ParseError("a dialog-creating response needs From and To tags")
        target = _contact_target(response) or request.uri_text
        dialog = cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            remote_target=target,
            route_set=[str(rr) for rr in reversed(response.record_route)],
            local_seq=request.cseq.seq,
            remote_seq=None,
            is_uac=True,
            secure=request.uri_text.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
            timers=timers or TimerConfig(),
        )
        dialog._learn_allow(response)
        return dialog

    @classmethod
    def from_uas_request(
        cls, request: Request, local_tag: str, *, confirmed: bool = False, timers: TimerConfig | None = None
    ) -> Dialog:
        """RFC 3261 §12.1.1: the UAS side, made when it sends a 1xx/2xx with ``local_tag``."""
        # RFC 3261 §12.1.1: an RFC 2543 peer sends no From tag; the remote tag is then empty.
        remote_tag = request.from_.tag or ""
        target = _contact_target(request)
        if target is None:
            raise ParseError("a dialog-creating request needs a Contact")
        dialog = cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=target,
            route_set=[str(rr) for rr in request.record_route],
            local_seq=random.randint(1, 2**31 - 1) // 2,
            remote_seq=request.cseq.seq,
            is_uac=False,
            secure=request.uri_text.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
            timers=timers or TimerConfig(),
        )
        # §14.1: the initial INVITE is in progress until its ACK: no re-INVITE from us before that.
        dialog.incoming_invite_pending = request.cseq.seq
        dialog._learn_allow(request)
        return dialog

    def _learn_allow(self, message: Request | Response) -> None:
        # A broken Allow teaches nothing: the refresh goes on as if it were absent.
        if message.has_header("allow"):
            with contextlib.suppress(ParseError):
                self.remote_allow = frozenset(m.upper() for m in message.allow)

    @property
    def peer_allows_update(self) -> bool:
        """Whether an UPDATE may be sent (RFC 3311 §5.1): unless the peer's Allow left it out."""
        return self.remote_allow is None or "UPDATE" in self.remote_allow

    # ------------------------------------------------------------------ requests we send (§12.2.1)

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request inside this dialog: Request-URI and Route from the route set and remote target
        (loose and strict routing, §12.2.1.1), From/To with tags, the next local CSeq."""
        if self.state is DialogState.TERMINATED and method not in ("ACK", "BYE"):
            raise LocalProtocolError(f"{method} on a terminated dialog")
        if method == "INVITE" and (self.outgoing_invite_pending or self.incoming_invite_pending is not None):
            raise LocalProtocolError("an INVITE is already in progress on this dialog (RFC 3261 §14.1)")
        if cseq is None:
            if method in ("ACK", "CANCEL"):
                raise LocalProtocolError(f"{method} takes the CSeq of the request it belongs to")
            self.local_seq += 1
            cseq = self.local_seq
        request_uri, routes = self._routing()
        out: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        out.extend(("Route", r) for r in routes)
        # RFC 3261 §12.2.1.1: an empty (RFC 2543) remote tag means no tag parameter at all.
        out.append(("From", f"{self.local_uri};tag={self.local_tag}" if self.local_tag else self.local_uri))
        out.append(("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri))
        out.append(("Call-ID", self.call_id))
        out.append(("CSeq", f"{cseq} {method}"))
        if contact is not None and method in TARGET_REFRESH:
            out.append(("Contact", contact))
        out.extend(headers)
        if method == "INVITE":
            self.outgoing_invite_pending = True
        return Request.build(method, request_uri, out, body)

    def _routing(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0], "Route")
        first_uri = first.uri
        if isinstance(first_uri, SipURI) and first_uri.lr:
            return self.remote_target, list(self.route_set)
        # Strict routing (RFC 2543 proxies): the first route becomes the Request-URI and the remote
        # target goes to the end of the Route set (§12.2.1.1).
        strict_uri = first.uri_text
        return strict_uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    def ack(
        self, invite_cseq: int, *, via: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> Request:
        """The ACK to a 2xx (RFC 3261 §13.2.2.4): CSeq number of the INVITE, a new branch in ``via``."""
        self.outgoing_invite_pending = False
        self.state = DialogState.CONFIRMED if self.state is DialogState.EARLY else self.state
        return self.request("ACK", via=via, cseq=invite_cseq, body=body, headers=headers)

    def prack(self, response: Response, *, via: str) -> Request | None:
        """RFC 3262 §4: the PRACK for a reliable provisional, or None for a retransmission or one
        arriving out of order (which must not be PRACKed)."""
        rseq = response.rseq
        if rseq is None or "100rel" not in response.require:
            return None
        if self.last_remote_rseq is not None and rseq != self.last_remote_rseq + 1:
            return None
        self.last_remote_rseq = rseq
        cseq = response.cseq
        return self.request("PRACK", via=via, headers=[("RAck", f"{rseq} {cseq.seq} {cseq.method}")])

    # ------------------------------------------------------------------ requests we receive (§12.2.2)

    def receive_request(self, request: Request) -> Response | None:
        """Check an in-dialog request; returns the error response to send, or None to go on.

        Enforces the remote CSeq order (500, §12.2.2), INVITE glare (491 / 500 with Retry-After,
        §14.2), UPDATE glare (RFC 3311 §5.2), and refreshes the remote target.
        """
        seq = request.cseq.seq
        method = request.method
        if method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq <= self.remote_seq:
                return make_response(request, 500, headers=[("Retry-After", "1")])
            self.remote_seq = seq
        if method == "INVITE":
            if self.outgoing_invite_pending:
                return make_response(request, 491)
            if self.incoming_invite_pending is not None:
                return make_response(request, 500, headers=[("Retry-After", str(random.randint(0, 10)))])
            self.incoming_invite_pending = seq
        elif method == "UPDATE" and request.body and self.outgoing_invite_pending:
            return make_response(request, 491)
        elif (
            method == "ACK"
            and self.incoming_invite_pending is not None
            and seq >= self.incoming_invite_pending
        ):
            self.incoming_invite_pending = None
        elif method == "BYE":
            self.terminate()
        if method in TARGET_REFRESH and method != "ACK":
            try:
                target = _contact_target(request)
            except ParseError as exc:
                return make_response(request, 400, exc.reason[:100])
            if target is not None:
                self.remote_target = target
            self._learn_allow(request)
        return None

    def answered(self, request: Request, response: Response) -> None:
        """We sent ``response`` to ``request`` in this dialog (keeps glare state right)."""
        if request.method == "INVITE" and response.status >= 300:
            self.incoming_invite_pending = None  # a non-2xx closes the offer; its ACK is hop-by-hop
        if request.method == "INVITE" and 200 <= response.status < 300 and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
        if request.method == "INVITE" and response.status >= 200:
            self._unacked = None  # RFC 3262 §3: reliable 1xx retransmission ends with the final

    def receive_response(self, request: Request, response: Response) -> None:
        """A response to a request we sent in this dialog: confirms the dialog, refreshes the target,
        ends INVITE glare bookkeeping, and ends the dialog on 481/408 (RFC 5057 §5.1)."""
        if response.status < 200:
            return
        if request.method == "INVITE":
            if response.status >= 300:
                self.outgoing_invite_pending = False
                if self.state is DialogState.EARLY:
                    self.terminate()  # §12.3: a non-2xx final ends the early dialog
                    return
            elif self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
        if 200 <= response.status < 300 and request.method in TARGET_REFRESH:
            target = _contact_target(response)
            if target is not None:
                self.remote_target = target
            self._learn_allow(response)
        if response.status in (481, 408):
            self.terminate()  # §12.2.1.2, §14.1: the dialog is gone on the far side

    def glare_backoff(self, rng: random.Random | None = None) -> float:
        """Seconds to wait before retrying after a 491 (RFC 3261 §14.1): 2.1-4 s for the owner of
        the Call-ID (the UAC of the dialog), 0-2 s otherwise, in units of 10 ms."""
        r = rng or random
        if self.is_uac:
            return r.randint(210, 400) / 100
        return r.randint(0, 200) / 100

    # ------------------------------------------------------------------ RFC 3262 (UAS side)

    def reliable_provisional(self, response: Response, now: float) -> Response:
        """Make ``response`` (101-199) reliable: Require: 100rel and the next RSeq; it is resent until
        PRACKed (RFC 3262 §3). Only one may be unacknowledged at a time."""
        if not 100 < response.status < 200:
            raise LocalProtocolError("only 101-199 responses are sent reliably")
        if self._unacked is not None:
            raise LocalProtocolError("a reliable provisional is still unacknowledged (RFC 3262 §3)")
        self.local_rseq += 1
        response.set_header("RSeq", str(self.local_rseq))
        if "100rel" not in response.require:
            response.add_header("Require", "100rel")
        t1 = self.timers.t1
        self._unacked = _ReliableProvisional(response, self.local_rseq, now + t1, t1, now + 64 * t1)
        return response

    def receive_prack(self, prack: Request) -> Response:
        """Answer a PRACK: 200 when its RAck matches the unacknowledged provisional, 481 otherwise."""
        rack = prack.rack
        pending = self._unacked
        if (
            rack is None
            or pending is None
            or rack.rseq != pending.rseq
            or rack.cseq != pending.response.cseq.seq
            or rack.method != pending.response.cseq.method
        ):
            return make_response(prack, 481)
        self._unacked = None
        return make_response(prack, 200)

    @property
    def awaiting_prack(self) -> bool:
        return self._unacked is not None

    # ------------------------------------------------------------------ RFC 4028

    def start_session_timer(self, timer: SessionTimer, now: float, *, we_sent_the_request: bool) -> None:
        """Arm the session timer after a 2xx to INVITE or UPDATE, and again after every refresh (§10).

        ``refresher`` names a role in *the transaction whose 2xx carried Session-Expires* (RFC 4028
        §7.4, §9): ``we_sent_the_request`` says whether we were its UAC.
        """
        self.session_timer = timer
        we_refresh = (timer.refresher == "uac") == we_sent_the_request
        if we_refresh:
            self._refresh_at = now + timer.interval / 2
            self._expire_at = None
        else:
            self._refresh_at = None
            self._expire_at = now + timer.interval - min(32, timer.interval / 3)

    # ------------------------------------------------------------------ timers

    @property
    def deadline(self) -> float | None:
        times = [t for t in (self._refresh_at, self._expire_at) if t is not None]
        if self._unacked is not None:
            times.append(min(self._unacked.next_at, self._unacked.give_up_at))
        return min(times) if times else None

    def on_timer(self, now: float) -> list[DialogAction]:
        actions: list[DialogAction] = []
        pending = self._unacked
        if pending is not None:
            if now >= pending.give_up_at:
                self._unacked = None
                actions.append(ProvisionalNotAcknowledged(pending.response))
            elif now >= pending.next_at:
                pending.interval *= 2  # RFC 3262 §3: doubling, with no T2 cap
                pending.next_at = now + pending.interval
                actions.append(RetransmitProvisional(pending.response))
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            actions.append(RefreshSession())
        if self._expire_at is not None and now >= self._expire_at:
            self._expire_at = None
            actions.append(SessionExpired())
        return actions

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED
        self._unacked = None
        self._refresh_at = self._expire_at = None


def _contact_target(message: Request | Response) -> str | None:
    """The remote target a message's Contact names, checked now: a peer's malformed Contact is a 400
    here (RFC 3261 §8.2.2, §12.1.1), not an error of ours when we later send a BYE to it."""
    contact = message.contact
    if not contact or contact[0].address is None:
        return None
    uri_text = contact[0].address.uri_text
    uri = contact[0].address.uri  # raises ParseError for a malformed URI
    if not isinstance(uri, SipURI):
        raise ParseError(f"Contact is not a SIP URI: {uri_text[:60]!r}")
    return uri_text


def _without_tag(address: NameAddr) -> str:
    params = tuple(p for p in address.params if p[0].lower() != "tag")
    return str(NameAddr(address.uri_text, address.display_name, params, True))


class DialogSet:
    """The dialogs of one UA, found by (Call-ID, local tag, remote tag) (RFC 3261 §12.2.2)."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __contains__(self, dialog: object) -> bool:
        return isinstance(dialog, Dialog) and self._dialogs.get(dialog.id) is dialog

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.id, None)

    def get(self, call_id: str, local_tag: str, remote_tag: str) -> Dialog | None:
        return self._dialogs.get(DialogId(call_id, local_tag, remote_tag))

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog of an incoming in-dialog request (our tag is in To, theirs in From)."""
        local = request.to.tag
        if local is None:
            return None
        return self._dialogs.get(DialogId(request.call_id, local, request.from_.tag or ""))

    def for_response(self, response: Response) -> Dialog | None:
        """The dialog a response to our request belongs to (our tag in From, theirs in To)."""
        local, remote = response.from_.tag, response.to.tag
        if local is None or remote is None:
            return None
        return self._dialogs.get(DialogId(response.call_id, local, remote))

    def no_dialog(self, request: Request) -> Response:
        """481 for an in-dialog request that matches no dialog (RFC 3261 §12.2.2)."""
        return make_response(request, 481)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))
