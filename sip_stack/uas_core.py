"""The checks a UAS makes before its application sees a request (RFC 3261 §8.2), sans-IO.

In the order §8.2 gives them: method (405 with Allow), Request-URI scheme (416), required extensions
(420 with Unsupported), content type and encoding (415 with Accept / Accept-Encoding). A CSeq method
that differs from the request's is already a 400 from the parser. ACK and CANCEL are never
rejected here: ACK gets no response at all and CANCEL is the transaction layer's (§8.2.2.3 says
Require is ignored in both).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from .message import Request, Response, make_response

#: What a plain UAS of this stack accepts unless told otherwise.
DEFAULT_METHODS: Final = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "PRACK")
DEFAULT_EXTENSIONS: Final = ("100rel", "timer", "replaces")
DEFAULT_CONTENT_TYPES: Final = ("application/sdp", "application/dtmf-relay", "application/dtmf")


@dataclass(frozen=True, slots=True)
class UasPolicy:
    """What this UAS supports; the values go into Allow, Supported and Accept as well."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    schemes: frozenset[str] = field(default_factory=lambda: frozenset({"sip", "sips", "tel"}))

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)

    @property
    def supported(self) -> str:
        return ", ".join(self.extensions)

    @property
    def accept(self) -> str:
        return ", ".join(self.content_types)


def check_request(request: Request, policy: UasPolicy | None = None) -> Response | None:
    """The error response RFC 3261 §8.2 asks for, or None when the application should handle it."""
    policy = policy or UasPolicy()
    method = request.method
    if method == "ACK":
        return None
    if method not in policy.methods:
        return _reply(request, 405, [("Allow", policy.allow)])  # §8.2.1
    if request.uri.scheme not in policy.schemes:
        return _reply(request, 416)  # §8.2.2.1
    if method != "CANCEL":
        unknown = [tag for tag in request.require if tag not in policy.extensions]
        if unknown:
            return _reply(request, 420, [("Unsupported", ", ".join(unknown))])  # §8.2.2.3
    if request.body:
        content_type = request.content_type
        if content_type is None or content_type.mime_type not in policy.content_types:
            return _reply(request, 415, [("Accept", policy.accept)])  # §8.2.3
        encodings = [e.lower() for e in request.header_values("content-encoding") if e]
        if any(e != "identity" for e in encodings):
            return _reply(request, 415, [("Accept-Encoding", "identity")])
    return None


def _reply(request: Request, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
    tag = None if request.to.tag is not None else secrets.token_hex(8)
    return make_response(request, status, to_tag=tag, headers=headers)
