"""RFC 3261 §8.2 checks of the UAS core, over RFC 4475 messages and hand-made requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip_stack import Request, parse
from sip_stack.uas_core import UasPolicy, check_request
from tests.sip_messages import CARRIER_INVITE, options

VECTORS = Path(__file__).parent / "vectors" / "rfc4475"


def req(data: bytes) -> Request:
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize(
    "name,status,header,value",
    [
        (
            "intmeth.dat",
            405,
            "allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK",
        ),  # §3.1.1.2: 501/405
        ("esc02.dat", 405, "allow", None),  # RE%47IST%45R is not REGISTER
        ("unkscm.dat", 416, None, None),  # §3.3.2
        ("novelsc.dat", 416, None, None),  # §3.3.3
        ("bext01.dat", 420, "unsupported", "nothingSupportsThis, nothingSupportsThisEither"),  # §3.3.5
        ("invut.dat", 415, "accept", "application/sdp, application/dtmf-relay, application/dtmf"),  # §3.3.6
    ],
)
def test_rfc4475_application_layer_cases(
    name: str, status: int, header: str | None, value: str | None
) -> None:
    response = check_request(req((VECTORS / name).read_bytes()))
    assert response is not None
    assert response.status == status
    assert response.to.tag is not None
    if header is not None:
        assert response.header(header) is not None
    if value is not None:
        assert response.header(header or "") == value


def test_ordinary_requests_pass() -> None:
    assert check_request(req(CARRIER_INVITE)) is None
    assert check_request(req(options())) is None
    assert check_request(req(options(extra=b"Require: 100rel, timer\r\n"))) is None


def test_ack_is_never_answered_and_cancel_ignores_require() -> None:
    ack = req(options().replace(b"OPTIONS", b"ACK"))
    assert check_request(ack) is None
    cancel = req(options(extra=b"Require: bogus\r\n").replace(b"OPTIONS", b"CANCEL"))
    assert check_request(cancel) is None


def test_content_encoding_other_than_identity_is_415() -> None:
    data = (
        req(CARRIER_INVITE).serialize().replace(b"Content-Type:", b"Content-Encoding: gzip\r\nContent-Type:")
    )
    response = check_request(req(data))
    assert response is not None and response.status == 415
    assert response.header("accept-encoding") == "identity"


def test_policy_narrows_what_is_accepted() -> None:
    policy = UasPolicy(methods=("OPTIONS",), extensions=(), content_types=())
    response = check_request(req(CARRIER_INVITE), policy)
    assert response is not None and response.status == 405 and response.header("allow") == "OPTIONS"
    response = check_request(req(options(extra=b"Require: timer\r\n")), policy)
    assert response is not None and response.status == 420 and response.header("unsupported") == "timer"
