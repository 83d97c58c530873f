"""The media port range: even RTP ports, RTCP on the next odd one (RFC 3550 §11), handed out to calls.

Every call takes two endpoints (phone side and gateway side), each an even port and, unless the
peers multiplex RTCP on it (RFC 5761), the odd port above. A port is bound when it is handed out,
so a port some other program holds is skipped rather than failing the call later. When the range
is exhausted the caller gets :class:`PortsExhausted`, which the call controller turns into a 503:
nothing is half-allocated and nothing leaks.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
from collections import deque
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

#: PRODUCT.md's default RTP range: 1,000 ports, 250 calls of two RTP+RTCP endpoints.
DEFAULT_RANGE: Final = (20000, 20999)

#: Kernel receive buffer per media socket. A 20 ms G.711 stream is 50 packets/s; a relay that
#: stalls for a garbage-collector pause or a burst of signalling should lose none, and 256 KiB holds
#: about half a second of a stream at Linux's per-packet accounting.
MEDIA_RECEIVE_BUFFER: Final = 256 * 1024


class PortsExhausted(Exception):
    """No free even port (and its RTCP neighbour) is left in the range: answer the call 503."""


class PortRangeError(ValueError):
    """The configured range cannot work (odd bounds swapped, outside 1024-65535, too small)."""


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive range of UDP ports for media. RTP takes the even ones."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1024 <= self.first <= self.last <= 65535:
            raise PortRangeError(f"media port range {self.first}-{self.last}: must be low-high in 1024-65535")
        if self.pairs < 1:
            raise PortRangeError(
                f"media port range {self.first}-{self.last} holds no even port with an odd one above it"
            )

    @property
    def pairs(self) -> int:
        """How many RTP/RTCP pairs fit: even ports p with p + 1 also in the range."""
        start = self.first + (self.first & 1)
        return max(0, (self.last - start + 1) // 2)

    def even_ports(self) -> range:
        start = self.first + (self.first & 1)
        return range(start, start + 2 * self.pairs, 2)


@dataclass(slots=True)
class BoundPorts:
    """The sockets of one endpoint: RTP on an even port, RTCP on the next one (None with rtcp-mux)."""

    port: int
    rtp: socket.socket
    rtcp: socket.socket | None

    def close(self) -> None:
        self.rtp.close()
        if self.rtcp is not None:
            self.rtcp.close()


class PortAllocator:
    """Hands out even ports of a :class:`PortRange` in rotation and binds them.

    Rotation (least recently freed first) keeps a port just released out of use for as long as
    possible, so late packets of an ended call do not reach the next one.
    """

    def __init__(self, ports: PortRange, host: str = "127.0.0.1") -> None:
        self.range = ports
        self.host = host
        self._free: deque[int] = deque(ports.even_ports())
        self._used: dict[int, BoundPorts] = {}
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self, *, rtcp: bool = True) -> BoundPorts:
        """Bind the next free even port (and its RTCP port unless ``rtcp`` is False).

        Ports another program holds are skipped and stay in rotation (they may be free next time).
        Raises :class:`PortsExhausted` when a whole turn of the range found nothing.
        """
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                bound = self._bind(port, rtcp)
            except BaseException:  # out of file descriptors, or worse: the port stays ours to give
                self._free.appendleft(port)
                raise
            if bound is not None:
                self._used[port] = bound
                return bound
            self._free.append(port)
        raise PortsExhausted(
            f"no free media port pair in {self.range.first}-{self.range.last} on {self.host} "
            f"({len(self._used)} in use)"
        )

    def release(self, bound: BoundPorts) -> None:
        """Close the sockets and put the port at the back of the rotation."""
        bound.close()
        if self._used.get(bound.port) is bound:  # a stale handle must not free a live port
            del self._used[bound.port]
            self._free.append(bound.port)

    def _bind(self, port: int, rtcp: bool) -> BoundPorts | None:
        rtp_sock = self._socket(port)
        if rtp_sock is None:
            return None
        rtcp_sock = None
        if rtcp:
            try:
                rtcp_sock = self._socket(port + 1)
            except BaseException:
                rtp_sock.close()
                raise
            if rtcp_sock is None:
                rtp_sock.close()
                return None
        return BoundPorts(port, rtp_sock, rtcp_sock)

    def _socket(self, port: int) -> socket.socket | None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # the kernel clamps rather than refuses
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MEDIA_RECEIVE_BUFFER)
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                logger.debug("media port %d on %s is taken: skipped", port, self.host)
                return None
            raise
        return sock


def free_port_range(pairs: int, host: str = "127.0.0.1", *, attempts: int = 100) -> PortRange:
    """A range of ``pairs`` RTP/RTCP port pairs that are all free on ``host`` right now (they may
    be taken again by the time they are bound): for tests, benches and lab setups that cannot
    promise a fixed range. Raises :class:`PortsExhausted` when ``attempts`` random tries fail."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        base = random.randrange(20000, 65000 - 2 * pairs, 2)
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + 2 * pairs):
                probe = socket.socket(family, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind((host, port))
            return PortRange(base, base + 2 * pairs - 1)
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise PortsExhausted(f"no {pairs} free port pairs found on {host}")
