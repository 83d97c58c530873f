"""enx-voice media: RTP/RTCP formats, the relay, RFC 4733 and in-band DTMF, G.711, the prompt player.

The modules are imported by name (``from rtp.relay import Relay``); this package re-exports the
few names a call controller needs.
"""

from rtp.dtmf import Digit, DigitSource, parse_dtmf_info
from rtp.player import Clip
from rtp.ports import PortRange, PortsExhausted
from rtp.prompts import PromptError, PromptName, PromptSet
from rtp.relay import (
    DigitReceived,
    Direction,
    LatchMode,
    MediaControl,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    Relay,
    RelayConfig,
    RemoteMedia,
    SessionPorts,
    SessionStats,
    SourceLatched,
)

__all__ = [
    "Clip",
    "Digit",
    "DigitReceived",
    "DigitSource",
    "Direction",
    "LatchMode",
    "MediaControl",
    "MediaEvent",
    "MediaTimeout",
    "PlaybackFinished",
    "PortRange",
    "PortsExhausted",
    "PromptError",
    "PromptName",
    "PromptSet",
    "Relay",
    "RelayConfig",
    "RemoteMedia",
    "SessionPorts",
    "SessionStats",
    "SourceLatched",
    "parse_dtmf_info",
]
