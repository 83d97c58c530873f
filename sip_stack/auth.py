"""Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760), both sides, sans-IO.

Client side (a trunk challenges us with 401/407): :class:`DigestClient` turns a challenge into the
Authorization or Proxy-Authorization value of the retried request, remembers the challenge so that
later requests may reuse its nonce with a growing nonce count, and :func:`already_answered` enforces
the B2BUA rule "answer a challenge once per request": a second challenge for a realm we just answered
means wrong credentials, not a reason to loop.

Server side (we challenge a peer configured with credentials): :class:`DigestServer` issues
self-validating nonces (issue time + HMAC under a server secret), so checking where a nonce came from
and how old it is needs no state; the only state is a bounded table of the highest nonce count accepted
per nonce, which stops replays (RFC 7616 §3.4 "nc", §5.4) and is pruned as nonces expire.

Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess (RFC 7616 §3.2, §6.1). SHA-512-256 is not supported
(challenges offering only it are skipped), nor is ``userhash`` (RFC 7616 §3.4.4): we always send the
username in clear, which RFC 7616 allows a client to do, and reject ``userhash=true`` credentials.
qop is ``auth``; a client also answers ``auth-int`` when it is the only qop offered. A challenge without
qop is answered the RFC 2069 way (RFC 2617 §3.2.2.1: no cnonce, no nc).

Nothing here reads a clock or a socket: the time comes in as ``now``, and randomness (cnonce, nonce
salt) comes from injectable sources so that tests are deterministic.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import heapq
import hmac
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .errors import LocalProtocolError, ParseError
from .headers import quote
from .message import Request, Response
from .values import Auth

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_REMEMBERED_CHALLENGES",
    "MAX_TRACKED_NONCES",
    "MIN_SECRET_BYTES",
    "NONCE_LIFETIME",
    "CredentialsHeader",
    "DigestAlgorithm",
    "DigestClient",
    "DigestServer",
    "Outcome",
    "Verification",
    "already_answered",
    "digest_response",
]

logger = logging.getLogger(__name__)

#: How long a nonce we issue stays fresh, in seconds. A challenged INVITE is retried within
#: milliseconds, but a peer may reuse the nonce (with a higher nc) for the dialog's later requests;
#: five minutes covers those, and an expired nonce only costs the peer one stale=true round trip.
NONCE_LIFETIME: Final = 300.0

#: Most nonces whose last nonce count the server remembers. An entry costs about 300 bytes, so the
#: table stays under 20 MB; entries are added only for correct responses, and when the table is full
#: the oldest nonces are declared stale instead of forgotten (forgetting would reopen their replay).
MAX_TRACKED_NONCES: Final = 65_536

#: How far in the future a nonce's issue time may be and still be ours, in seconds: several nodes
#: sharing one secret (and passing a wall clock as ``now``) disagree by a little.
MAX_CLOCK_SKEW: Final = 5.0

#: Most (header kind, realm) challenges a client remembers for reuse. A trunk has one or two
#: (its proxy's and its registrar's); the bound only stops a hostile peer inventing realms.
MAX_REMEMBERED_CHALLENGES: Final = 16

#: Shortest server secret accepted. RFC 2104 §3 discourages HMAC keys shorter than the hash output
#: (32 bytes for SHA-256, which we recommend); below 16 bytes we call it a configuration bug.
MIN_SECRET_BYTES: Final = 16

#: RFC 7616 §3.4: nc-value = 8LHEX.
_NC_MAX: Final = 0xFFFFFFFF
_NC_RE: Final = re.compile(r"[0-9A-Fa-f]{8}")

_DIGEST = "digest"
_HEX_RE: Final = re.compile(r"[0-9a-f]+")


class DigestAlgorithm(enum.Enum):
    """A Digest hash algorithm (RFC 7616 §3.3 "algorithm", IANA "HTTP Digest Hash Algorithms")."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"

    @classmethod
    def from_token(cls, token: str | None) -> DigestAlgorithm | None:
        """The algorithm a challenge or credentials name; absent means MD5 (RFC 7616 §3.3).

        Names compare without regard to case: carriers send ``md5`` and ``MD5-SESS``. None when the
        algorithm is one we do not support.
        """
        if token is None:
            return cls.MD5
        return _ALGORITHMS_BY_NAME.get(token.lower())

    @property
    def hash_name(self) -> str:
        return "sha256" if self in (DigestAlgorithm.SHA_256, DigestAlgorithm.SHA_256_SESS) else "md5"

    @property
    def is_session(self) -> bool:
        """True for the -sess variants, whose A1 folds in nonce and cnonce (RFC 7616 §3.4.2)."""
        return self in (DigestAlgorithm.MD5_SESS, DigestAlgorithm.SHA_256_SESS)

    @property
    def strength(self) -> int:
        """Rank for choosing among challenges: SHA-256 before MD5 (RFC 7616 §3.7, RFC 8760 §2.3)."""
        return 2 if self.hash_name == "sha256" else 1

    @property
    def digest_hex_length(self) -> int:
        return 64 if self.hash_name == "sha256" else 32

    @property
    def code(self) -> int:
        """The byte that binds a nonce to the algorithm it was issued for."""
        return _ALGORITHM_CODES[self]


_ALGORITHMS_BY_NAME: Final = {a.value.lower(): a for a in DigestAlgorithm}
_ALGORITHM_CODES: Final = {a: i for i, a in enumerate(DigestAlgorithm, start=1)}
_ALGORITHMS_BY_CODE: Final = {i: a for a, i in _ALGORITHM_CODES.items()}


def _utf8(text: str) -> bytes:
    """``text`` as the bytes that were on the wire (RFC 7616 §4: UTF-8).

    The parser decodes with surrogateescape, so non-UTF-8 octets come back as they were received,
    which is what the peer hashed. Other lone surrogates (never from the wire) pass through rather
    than raise: a hash of nonsense simply does not match.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _h(algorithm: DigestAlgorithm, data: str) -> str:
    # RFC 7616 §3.4: the digest is written as lower-case hex.
    return hashlib.new(algorithm.hash_name, _utf8(data)).hexdigest()


def digest_response(
    algorithm: DigestAlgorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1-§3.4.3; without qop, RFC 2617 §3.2.2.1 / RFC 2069).

    ``qop`` is ``"auth"``, ``"auth-int"`` (A2 then carries H(body)) or None for the RFC 2069 form
    ``KD(H(A1), nonce:H(A2))``. With a qop, ``nc`` and ``cnonce`` are required, and so is ``cnonce``
    for the -sess algorithms. Raises :class:`LocalProtocolError` when they are missing: the caller
    asked for a response that cannot be computed.
    """
    if (qop is not None or algorithm.is_session) and cnonce is None:
        raise LocalProtocolError(f"Digest {algorithm.value} with qop={qop} needs a cnonce")
    if qop is not None and nc is None:
        raise LocalProtocolError("Digest with a qop needs an nc")
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.is_session:
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        body_hash = hashlib.new(algorithm.hash_name, body).hexdigest()
        ha2 = _h(algorithm, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _is_digest(auth: Auth) -> bool:
    return auth.scheme.lower() == _DIGEST


def _is_true(value: str | None) -> bool:
    # RFC 7616 §3.3: stale is "true" or "false", case-insensitive; some servers quote it.
    return value is not None and value.strip().lower() == "true"


def _parse_header_fields(msg: Request | Response, name: str) -> list[Auth]:
    """Every parsable value of an authentication header; one garbled field does not hide the rest."""
    out: list[Auth] = []
    for text in msg.header_fields(name):
        try:
            out.append(Auth.parse(text))
        except ParseError as exc:
            logger.debug("ignoring unparsable %s: %s", name, exc.reason)
    return out


# =========================================================================================== client


@dataclass(frozen=True, slots=True)
class CredentialsHeader:
    """A header field to add to the retried request: ``name`` is Authorization (answering a 401's
    WWW-Authenticate) or Proxy-Authorization (answering a 407's Proxy-Authenticate), RFC 3261 §22.2,
    §22.3. ``realm`` says which challenge it answers."""

    name: str
    value: str
    realm: str


@dataclass(slots=True)
class _Remembered:
    """A challenge we answered, kept so later requests can reuse its nonce (RFC 7616 §3.4: nc
    counts the requests sent with one nonce)."""

    challenge: Auth
    realm: str
    nonce: str
    algorithm: DigestAlgorithm
    qop: str | None
    nc: int


def _choose_qop(challenge: Auth) -> str | None:
    """The qop to answer with: auth when offered, else auth-int, None when the challenge has no qop.

    Raises ParseError when a qop list names neither (RFC 7616 §3.3 defines only these two).
    """
    value = challenge.param("qop")
    if value is None:
        return None
    offered = {item.strip().lower() for item in value.split(",")}
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    raise ParseError(f"Digest challenge offers no qop we know: {value[:40]!r}")


def _check_challenge(challenge: Auth) -> DigestAlgorithm:
    """The challenge's algorithm, after checking it can be answered at all (RFC 7616 §3.3)."""
    if not _is_digest(challenge):
        raise ParseError(f"challenge scheme {challenge.scheme[:20]!r} is not Digest")
    if challenge.param("realm") is None:
        raise ParseError("Digest challenge has no realm")
    if not challenge.param("nonce"):
        raise ParseError("Digest challenge has no nonce")
    algorithm = DigestAlgorithm.from_token(challenge.param("algorithm"))
    if algorithm is None:
        raise ParseError(f"Digest algorithm not supported: {(challenge.param('algorithm') or '')[:40]!r}")
    qop = _choose_qop(challenge)
    if qop is None and algorithm.is_session:
        # The -sess A1 needs a cnonce, and RFC 2617 §3.2.2 sends one only with a qop.
        raise ParseError(f"Digest challenge asks {algorithm.value} without qop")
    return algorithm


class DigestClient:
    """Answers Digest challenges with one account's username and password (RFC 3261 §22.2-§22.3).

    One client per account, e.g. per outbound trunk: it remembers the latest challenge per header kind
    and realm, so the retried request and later requests on that trunk carry credentials with that
    nonce and a growing nc (``00000001``, ``00000002`` ...). ``realm`` restricts the account to
    challenges of that realm; without it the password is sent to any realm that asks, which is what
    a trunk configured with only a username and password expects.

    ``cnonce_factory`` makes each client nonce; the default draws 128 random bits from the OS. Tests
    inject a fixed one.

    Typical use on a 401/407 to ``request``::

        headers = client.answer(response, request)
        if not headers:
            ...  # give up: pass the failure upstream
        retry = copy of request, CSeq + 1, Authorization and Proxy-Authorization removed,
                each of ``headers`` added
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        realm: str | None = None,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.realm = realm
        self._cnonce_factory = cnonce_factory or _random_cnonce
        # (proxy?, realm) -> remembered challenge; dict order is the eviction order.
        self._remembered: dict[tuple[bool, str], _Remembered] = {}

    def covers(self, challenge: Auth) -> bool:
        """True when this account may answer ``challenge``'s realm."""
        return self.realm is None or challenge.param("realm") == self.realm

    def authorize(
        self, challenge: Auth, *, proxy: bool, method: str, uri: str, body: bytes = b""
    ) -> CredentialsHeader:
        """Credentials answering one challenge (RFC 7616 §3.4), and remember it for reuse.

        ``proxy`` is True for a Proxy-Authenticate challenge (answered in Proxy-Authorization).
        ``uri`` is the Request-URI as sent, ``body`` the request body (hashed only for auth-int).
        A nonce answered before continues its nc; a new nonce starts at 00000001. Raises
        :class:`ParseError` when the challenge cannot be answered (not Digest, no nonce, unknown
        algorithm or qop) and :class:`LocalProtocolError` when its realm is not this account's.
        """
        known = self._adopt(challenge, proxy=proxy)
        header = self._credentials(known, proxy=proxy, method=method, uri=uri, body=body)
        if header is None:
            raise ParseError(f"nonce of realm {known.realm!r} was used {_NC_MAX} times; need a new one")
        return header

    def credentials_for(self, method: str, uri: str, body: bytes = b"") -> list[CredentialsHeader]:
        """Credentials for a new request from every remembered challenge, each with its next nc.

        Sending them pre-emptively saves a round trip when the server accepts the nonce again; when it
        does not, its challenge carries stale=true or a fresh nonce, and :meth:`answer` handles that.
        """
        out: list[CredentialsHeader] = []
        for (proxy, _realm), known in list(self._remembered.items()):
            header = self._credentials(known, proxy=proxy, method=method, uri=uri, body=body)
            if header is not None:
                out.append(header)
        return out

    def answer(self, response: Response, request: Request) -> list[CredentialsHeader]:
        """Everything the retry of ``request`` should carry after the 401/407 ``response``.

        Picks, per header kind and realm this account covers, the strongest challenge we support:
        SHA-256 before MD5, then the topmost (RFC 7616 §3.7; RFC 8760 §2.4 has the UAC take the
        topmost it supports, and §2.3 has the UAS list the preferred first). Then returns credentials
        for every remembered challenge, the new ones included, so that a request challenged first
        by a proxy (407) and then by the far end (401) carries both, each with a fresh nc.

        Returns ``[]`` to say "give up": the response carries no challenge we can answer, or
        :func:`already_answered` says this request already answered it (wrong username or password).
        """
        if already_answered(response, request):
            logger.debug("challenge for %r already answered: wrong credentials", request)
            return []
        answered = False
        for proxy, challenge in self._best_challenges(response):
            try:
                self._adopt(challenge, proxy=proxy)
            except ParseError as exc:
                logger.debug("cannot answer challenge %s: %s", challenge, exc.reason)
                continue
            answered = True
        if not answered:
            return []
        return self.credentials_for(request.method, request.uri_text, request.body)

    def forget(self) -> None:
        """Drop every remembered challenge (the account's password changed, the trunk was reset)."""
        self._remembered.clear()

    # ----------------------------------------------------------------------------- internals

    def _best_challenges(self, response: Response) -> list[tuple[bool, Auth]]:
        best: dict[tuple[bool, str], tuple[int, int, Auth]] = {}
        index = 0
        for proxy, name in ((False, "WWW-Authenticate"), (True, "Proxy-Authenticate")):
            for challenge in _parse_header_fields(response, name):
                index += 1
                try:
                    algorithm = _check_challenge(challenge)
                except ParseError as exc:
                    logger.debug("skipping challenge %s: %s", challenge, exc.reason)
                    continue
                if not self.covers(challenge):
                    continue
                key = (proxy, challenge.param("realm") or "")
                rank = (algorithm.strength, -index)
                current = best.get(key)
                if current is None or rank > current[:2]:
                    best[key] = (*rank, challenge)
        return [(key[0], entry[2]) for key, entry in best.items()]

    def _adopt(self, challenge: Auth, *, proxy: bool) -> _Remembered:
        """Check a challenge and make it the remembered one for its header kind and realm; the same
        nonce keeps its count, a new nonce starts from zero."""
        algorithm = _check_challenge(challenge)
        if not self.covers(challenge):
            raise LocalProtocolError(
                f"challenge realm {challenge.param('realm')!r} is not this account's {self.realm!r}"
            )
        realm = challenge.param("realm") or ""
        key = (proxy, realm)
        known = self._remembered.pop(key, None)
        if known is None or known.nonce != challenge.param("nonce"):
            known = _Remembered(
                challenge, realm, challenge.param("nonce") or "", algorithm, _choose_qop(challenge), 0
            )
        else:
            # Same nonce, maybe new opaque or qop list: answer what the server sent last.
            known.challenge = challenge
        self._remembered[key] = known
        while len(self._remembered) > MAX_REMEMBERED_CHALLENGES:
            del self._remembered[next(iter(self._remembered))]
        return known

    def _credentials(
        self, known: _Remembered, *, proxy: bool, method: str, uri: str, body: bytes
    ) -> CredentialsHeader | None:
        challenge = known.challenge
        realm = known.realm
        nonce = known.nonce
        if known.nc >= _NC_MAX:
            return None
        nc: str | None = None
        cnonce: str | None = None
        if known.qop is not None:
            known.nc += 1
            nc = f"{known.nc:08x}"
            cnonce = self._cnonce_factory()
        response = digest_response(
            known.algorithm,
            username=self.username,
            realm=realm,
            password=self.password,
            method=method,
            uri=uri,
            nonce=nonce,
            qop=known.qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        # RFC 7616 §3.4, §3.4.5: username, realm, nonce, uri, response, cnonce and opaque are
        # quoted-strings; algorithm, qop and nc are tokens, and quoting them breaks strict servers.
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(realm)}",
            f"nonce={quote(nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(response)}",
        ]
        if challenge.param("algorithm") is not None:
            parts.append(f"algorithm={known.algorithm.value}")
        if known.qop is not None and cnonce is not None:
            parts += [f"cnonce={quote(cnonce)}", f"qop={known.qop}", f"nc={nc}"]
        opaque = challenge.param("opaque")
        if opaque is not None:
            parts.append(f"opaque={quote(opaque)}")
        name = "Proxy-Authorization" if proxy else "Authorization"
        return CredentialsHeader(name, "Digest " + ", ".join(parts), realm)


def _random_cnonce() -> str:
    # RFC 7616 §3.4: the cnonce should be unpredictable; 128 bits from the OS, as hex (a safe token).
    return os.urandom(16).hex()


def already_answered(response: Response, request: Request) -> bool:
    """True when ``response`` challenges a realm that ``request`` already answered: give up.

    This is the B2BUA's "answer each challenge once" rule. A new challenge to credentials we just
    sent means they were refused: by RFC 7616 §3.3 (RFC 2617 §3.2.1), unless ``stale`` is true the
    username or password is wrong and new values are needed, and retrying with the same ones would loop
    (each retry a new CSeq, RFC 3261 §22.2). A challenge is *not* proof of wrong credentials, and so
    does not count, when:

    * it carries ``stale=true`` with a nonce other than the one we sent (RFC 7616 §3.3: the password
      was right, only the nonce expired);
    * our credentials for that realm reused a remembered nonce (nc above 00000001), so the server
      may simply have forgotten it; the retry then answers the new nonce with nc 00000001, and a
      challenge to that one does count.

    A server that answers stale=true with a new nonce every time would keep a UAC retrying; the
    caller caps attempts per request chain (a small constant such as 3).
    """
    for challenge_header, credentials_header in (
        ("WWW-Authenticate", "Authorization"),
        ("Proxy-Authenticate", "Proxy-Authorization"),
    ):
        sent = [c for c in _parse_header_fields(request, credentials_header) if _is_digest(c)]
        if not sent:
            continue
        for challenge in _parse_header_fields(response, challenge_header):
            if not _is_digest(challenge):
                continue
            realm = challenge.param("realm")
            for credentials in sent:
                if credentials.param("realm") != realm:
                    continue
                if _is_true(challenge.param("stale")) and challenge.param("nonce") != credentials.param(
                    "nonce"
                ):
                    continue
                nc = credentials.param("nc")
                if nc is not None and _NC_RE.fullmatch(nc) and int(nc, 16) > 1:
                    continue
                return True
    return False


# =========================================================================================== server


class Outcome(enum.Enum):
    """What :meth:`DigestServer.verify` decided, and what the caller answers."""

    #: The credentials are right and this nonce count is new: let the request through.
    OK = "ok"
    #: Right password, expired nonce: challenge again with ``stale=true`` (RFC 7616 §3.3).
    STALE = "stale"
    #: Right password, but this nonce and nc were already accepted (a replay, RFC 7616 §5.4, or a
    #: second use of a single-use RFC 2069 nonce): challenge again with ``stale=true``, never forward.
    REPLAYED = "replayed"
    #: Wrong password, unknown user, another realm, or a nonce we did not issue: challenge again
    #: (401/407), or 403 when the caller counts repeated failures.
    REJECTED = "rejected"
    #: The credentials break the Digest grammar or rules (a missing parameter, a qop we did not offer):
    #: answer 400 with ``reason``.
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking one set of credentials. ``reason`` names the exact fault for logs and
    for a 400's reason phrase; ``username`` is set when the username could be read."""

    outcome: Outcome
    reason: str = ""
    username: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


#: Parameters a Digest credentials value must carry (RFC 7616 §3.4; "username" may instead be
#: "username*" or a userhash, which we do not support).
_REQUIRED: Final = ("username", "realm", "nonce", "uri", "response")

#: The part of a nonce the HMAC covers: issue time (ms, signed 64-bit), algorithm code, salt.
_STAMP_BYTES: Final = 8
_SALT_BYTES: Final = 8
_MAC_BYTES: Final = 16  # 128 bits of HMAC-SHA-256: forgery odds 2**-128 per try
_NONCE_BYTES: Final = _STAMP_BYTES + 1 + _SALT_BYTES + _MAC_BYTES
# 33 bytes is a multiple of 3, so the base64url form has no padding: 44 characters.
_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{44}")

#: Used when the username is unknown so that the reply takes as long as for a known one, and the
#: timing does not tell which usernames exist.
_DUMMY_PASSWORD: Final = "\x00not-a-password\x00"


class DigestServer:
    """Challenges peers and checks their credentials (RFC 7616 §3.3-§3.4, §5.4; RFC 3261 §22.4).

    ``secret`` keys the HMAC that makes nonces self-validating. Give each process a random one
    (``os.urandom(32)``) unless several nodes must accept each other's nonces: a new secret at
    restart also invalidates nonces whose replay table was lost. ``now`` must come from one clock
    for every call (several nodes sharing a secret must pass a wall clock).

    ``allow_rfc2069`` accepts credentials without qop from old clients that ignore it; such a
    response has no nc, so each nonce then serves one request only (a second use is REPLAYED).
    ``random_bytes`` salts nonces so that two challenges issued in the same millisecond differ.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_lifetime: float = NONCE_LIFETIME,
        *,
        allow_rfc2069: bool = False,
        max_tracked_nonces: int = MAX_TRACKED_NONCES,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise LocalProtocolError(f"Digest server secret must be at least {MIN_SECRET_BYTES} bytes")
        if not nonce_lifetime > 0 or not math.isfinite(nonce_lifetime):
            raise LocalProtocolError(f"nonce lifetime must be a positive number: {nonce_lifetime!r}")
        if max_tracked_nonces < 1:
            raise LocalProtocolError(f"max_tracked_nonces must be positive: {max_tracked_nonces}")
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.allow_rfc2069 = allow_rfc2069
        self.max_tracked_nonces = max_tracked_nonces
        self._secret = secret
        self._random_bytes = random_bytes
        # nonce -> highest nc accepted: the only state, and what lets nc catch replays (RFC 7616 §3.4).
        self._last_nc: dict[str, int] = {}
        # (issue time, nonce) for every key of _last_nc, oldest on top: pruning is O(log n) a nonce.
        self._issued: list[tuple[float, str]] = []
        # Nonces issued at or before this time count as stale: their entries were evicted when the
        # table was full, so their replays could no longer be caught.
        self._horizon = -math.inf

    # ----------------------------------------------------------------------------- challenge

    def challenge(self, now: float, *, stale: bool = False, algorithm: str | DigestAlgorithm = "MD5") -> str:
        """A WWW-Authenticate or Proxy-Authenticate value with a fresh nonce (RFC 7616 §3.3).

        MD5 is the default because most SIP equipment knows nothing else; RFC 8760 §2.3 has a UAS
        that also offers SHA-256 send it first, i.e. call this once per algorithm and add the values
        in order. ``stale=True`` answers a STALE or REPLAYED verification.
        """
        alg = algorithm if isinstance(algorithm, DigestAlgorithm) else DigestAlgorithm.from_token(algorithm)
        if alg is None:
            raise LocalProtocolError(f"unsupported Digest algorithm: {algorithm!r}")
        nonce = self._make_nonce(now, alg)
        value = f'Digest realm={quote(self.realm)}, nonce="{nonce}", algorithm={alg.value}, qop="auth"'
        if stale:
            value += ", stale=true"
        return value

    def _make_nonce(self, now: float, algorithm: DigestAlgorithm) -> str:
        if not math.isfinite(now) or not -(2**63) <= round(now * 1000) < 2**63:
            raise LocalProtocolError(f"clock value out of range for a nonce: {now!r}")
        stamp = round(now * 1000)
        salt = self._random_bytes(_SALT_BYTES)
        if len(salt) != _SALT_BYTES:
            raise LocalProtocolError(f"random_bytes({_SALT_BYTES}) returned {len(salt)} bytes")
        payload = stamp.to_bytes(_STAMP_BYTES, "big", signed=True) + bytes((algorithm.code,)) + salt
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def _mac(self, payload: bytes) -> bytes:
        # The realm is bound in too, so that servers sharing a secret cannot take each other's nonces.
        message = _utf8(self.realm) + b"\x00" + payload
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def _open_nonce(self, nonce: str) -> tuple[float, DigestAlgorithm] | None:
        """Issue time and algorithm of a nonce we made, or None when it is not ours or was altered."""
        if not _NONCE_RE.fullmatch(nonce):
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_BYTES:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        algorithm = _ALGORITHMS_BY_CODE.get(payload[_STAMP_BYTES])
        if algorithm is None:
            return None
        stamp = int.from_bytes(payload[:_STAMP_BYTES], "big", signed=True)
        return stamp / 1000, algorithm

    # ----------------------------------------------------------------------------- verify

    def find_credentials(self, candidates: Sequence[Auth]) -> Auth | None:
        """The Digest credentials for our realm among a request's Authorization (or
        Proxy-Authorization) values; RFC 3261 §22.3 lets a request carry several, one per realm."""
        for auth in candidates:
            if _is_digest(auth) and auth.param("realm") == self.realm:
                return auth
        for auth in candidates:
            if _is_digest(auth):
                return auth
        return None

    def verify(
        self,
        credentials: Auth,
        method: str,
        password_lookup: Callable[[str, str], str | None],
        now: float,
        *,
        request_uri: str | None = None,
    ) -> Verification:
        """Check credentials for a request with ``method`` (RFC 7616 §3.4, §5.4).

        ``password_lookup(username, realm)`` returns the password or None for an unknown user; it is
        called only after the nonce proved ours, so forged nonces cost no lookup. When
        ``request_uri`` is given, the ``uri`` parameter must equal it (RFC 2617 §3.2.2.5).

        Never raises for anything the peer sent: every fault is a :class:`Verification`. A correct
        response records its nonce count, so the same nonce and nc pass once only.
        """
        if not _is_digest(credentials):
            return _malformed(f"scheme {credentials.scheme[:20]!r} is not Digest")
        seen: set[str] = set()
        for name, _value in credentials.params:
            key = name.lower()
            if key in seen:
                return _malformed(f"Digest parameter {name[:20]!r} appears twice")
            seen.add(key)
        if _is_true(credentials.param("userhash")):
            return _malformed("userhash is not supported; send the username")
        for name in _REQUIRED:
            if credentials.param(name) is None:
                return _malformed(f"Digest credentials have no {name}")
        username = credentials.param("username") or ""
        realm = credentials.param("realm") or ""
        nonce = credentials.param("nonce") or ""
        uri = credentials.param("uri") or ""
        response = (credentials.param("response") or "").lower()
        if request_uri is not None and uri != request_uri:
            return _malformed("Digest uri does not match the Request-URI", username)

        algorithm = DigestAlgorithm.from_token(credentials.param("algorithm"))
        if algorithm is None:
            return _malformed(
                f"unsupported algorithm {(credentials.param('algorithm') or '')[:20]!r}", username
            )
        if len(response) != algorithm.digest_hex_length or not _HEX_RE.fullmatch(response):
            return _malformed(f"response is not a {algorithm.value} digest", username)

        qop = credentials.param("qop")
        nc_value = 0
        nc: str | None = None
        cnonce: str | None = None
        if qop is None:
            if not self.allow_rfc2069:
                return _malformed('qop missing; the challenge asked for qop="auth"', username)
            if algorithm.is_session:
                return _malformed(f"{algorithm.value} needs qop and cnonce", username)
        else:
            qop = qop.lower()
            if qop != "auth":
                return _malformed(f'qop {qop[:20]!r} was not offered; use "auth"', username)
            nc = credentials.param("nc")
            cnonce = credentials.param("cnonce")
            if nc is None or not _NC_RE.fullmatch(nc):
                return _malformed("nc must be 8 hex digits", username)
            nc_value = int(nc, 16)
            if nc_value == 0:
                return _malformed("nc counts from 00000001", username)
            if not cnonce:
                return _malformed("cnonce missing with qop", username)

        if realm != self.realm:
            return Verification(Outcome.REJECTED, f"realm {realm[:40]!r} is not ours", username)
        opened = self._open_nonce(nonce)
        if opened is None:
            return Verification(Outcome.REJECTED, "nonce was not issued by us or was altered", username)
        issued, nonce_algorithm = opened
        if algorithm is not nonce_algorithm:
            return Verification(
                Outcome.REJECTED,
                f"algorithm {algorithm.value} answers a {nonce_algorithm.value} challenge",
                username,
            )

        password = password_lookup(username, realm)
        expected = digest_response(
            algorithm,
            username=username,
            realm=realm,
            password=_DUMMY_PASSWORD if password is None else password,
            method=method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )
        matches = hmac.compare_digest(expected, response)
        if password is None:
            return Verification(Outcome.REJECTED, "unknown username", username)
        if not matches:
            return Verification(Outcome.REJECTED, "wrong response: wrong password?", username)

        # Only a correct response may say stale (RFC 7616 §3.3): else stale=true would invite a
        # guesser to keep trying without the user being asked again.
        if now >= issued + self.nonce_lifetime:
            return Verification(Outcome.STALE, "nonce expired", username)
        if issued > now + MAX_CLOCK_SKEW:
            return Verification(
                Outcome.STALE, "nonce issued in the future: clock or secret changed", username
            )
        self._prune(now)
        # RFC 2069 responses carry no nc: the first use takes the whole count range, so any later
        # use of that nonce, with or without qop, is a replay.
        count = nc_value if qop is not None else _NC_MAX + 1
        last = self._last_nc.get(nonce)
        if last is None:
            heap = self._issued
            full = len(heap) >= self.max_tracked_nonces
            if issued <= self._horizon or (full and issued <= heap[0][0]):
                # Tracking it would mean evicting a younger nonce, or it was evicted already.
                return Verification(Outcome.STALE, "nonce older than the replay table", username)
            self._make_room()
            heapq.heappush(heap, (issued, nonce))
        elif count <= last:
            return Verification(Outcome.REPLAYED, f"nonce count {count:08x} already used", username)
        self._last_nc[nonce] = count
        return Verification(Outcome.OK, "", username)

    @property
    def tracked_nonces(self) -> int:
        """How many nonces the replay table holds (for metrics and tests)."""
        return len(self._last_nc)

    def _prune(self, now: float) -> None:
        """Forget nonces that have expired: their use is STALE now, whatever their count."""
        heap = self._issued
        lifetime = self.nonce_lifetime
        while heap and now >= heap[0][0] + lifetime:
            _issued, nonce = heapq.heappop(heap)
            del self._last_nc[nonce]

    def _make_room(self) -> None:
        """Evict the oldest nonces while the table is full, and declare everything issued up to
        them stale: forgetting a live nonce's count must not reopen its replay."""
        heap = self._issued
        while len(heap) >= self.max_tracked_nonces:
            issued, nonce = heapq.heappop(heap)
            del self._last_nc[nonce]
            self._horizon = max(self._horizon, issued)


def _malformed(reason: str, username: str | None = None) -> Verification:
    return Verification(Outcome.MALFORMED, reason, username)
