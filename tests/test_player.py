"""The prompt player and the media clock: frame order and numbering, loops, queues, barge-in,
catching up after a stall; then over loopback through the relay, sharing the stream with the
bridged audio."""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Collection

import pytest

from rtp.g711 import decode_pcma, encode_pcmu
from rtp.player import FRAME_SAMPLES, Clip, MediaClock, PromptPlayer
from rtp.prompts import PromptSet, shipped_directory
from rtp.relay import DigitReceived, PlaybackFinished, Relay, RelayConfig, RemoteMedia
from tests.test_relay import HOST, Peer, free_range, header, rtp


def clip(name: str, frames: int, base: int = 0) -> Clip:
    return Clip(name, tuple(bytes([(base + n) % 256]) * FRAME_SAMPLES for n in range(frames)))


class FakeSink:
    def __init__(self) -> None:
        self.frames: list[tuple[int, int, bytes, float, bool]] = []

    def send_frame(self, source: object, seq: int, ts: int, payload: bytes, now: float, marker: bool) -> None:
        self.frames.append((seq, ts, payload, now, marker))


class NoClock(MediaClock):
    """A clock that does not schedule: the test calls on_tick itself."""

    def add(self, player: PromptPlayer) -> None:
        self.added = getattr(self, "added", 0) + 1

    def remove(self, player: PromptPlayer) -> None:
        self.removed = getattr(self, "removed", 0) + 1


def make_player() -> tuple[PromptPlayer, FakeSink, list[str]]:
    sink = FakeSink()
    finished: list[str] = []
    player = PromptPlayer(sink, NoClock(), lambda _, reason: finished.append(reason))
    return player, sink, finished


def test_clip_pads_the_last_frame_with_silence() -> None:
    c = Clip.from_payload("x", b"\x01" * 330, silence=0xFF)
    assert [len(f) for f in c.frames] == [160, 160, 160]
    assert c.frames[2] == b"\x01" * 10 + b"\xff" * 150


def test_frames_go_out_in_order_one_per_tick_numbered_like_a_stream() -> None:
    player, sink, finished = make_player()
    player.play([clip("a", 3), clip("b", 2, base=10)])
    for n in range(8):
        player.on_tick(n * 0.02, n * 0.02)
    payloads = [f[2][0] for f in sink.frames]
    assert payloads == [0, 1, 2, 10, 11]
    seqs = [f[0] for f in sink.frames]
    assert [s - seqs[0] for s in seqs] == [0, 1, 2, 3, 4]
    assert [f[1] - sink.frames[0][1] for f in sink.frames] == [0, 160, 320, 480, 640]
    assert [f[4] for f in sink.frames] == [True, False, False, False, False]
    assert finished == ["done"] and not player.playing


def test_loop_repeats_the_last_clip_until_stopped() -> None:
    player, sink, finished = make_player()
    player.play([clip("intro", 1, base=50), clip("music", 2)], loop=True)
    for n in range(7):
        player.on_tick(n * 0.02, n * 0.02)
    assert [f[2][0] for f in sink.frames] == [50, 0, 1, 0, 1, 0, 1]
    assert finished == []
    player.stop()
    assert finished == ["stopped"]


def test_barge_in_stops_only_prompts_that_allow_it() -> None:
    player, _, finished = make_player()
    player.play([clip("pin", 10)], barge_in=False)
    player.on_tick(0.0, 0.0)
    assert player.digit() is False and player.playing
    player.play([clip("menu", 10)])  # replaces the first
    assert finished == ["replaced"]
    player.on_tick(0.02, 0.02)
    assert player.digit() is True and not player.playing
    assert finished == ["replaced", "barge-in"]


def test_a_late_tick_sends_the_frames_owed_with_steady_timestamps() -> None:
    player, sink, _ = make_player()
    player.play([clip("a", 10)])
    player.on_tick(0.0, 0.0)
    player.on_tick(0.1, 0.1)  # the loop was blocked for 100 ms: five frames are due
    assert len(sink.frames) == 6
    assert [f[1] - sink.frames[0][1] for f in sink.frames] == [160 * n for n in range(6)]
    assert player.late_frames == 4  # the 20, 40, 60 and 80 ms frames went out late


def test_an_empty_queue_finishes_at_once() -> None:
    player, sink, finished = make_player()
    player.play([Clip("empty", ())])
    assert finished == ["done"] and sink.frames == []


# ------------------------------------------------------------------------------- through the relay


@pytest.fixture
async def relay() -> object:
    r = Relay(RelayConfig(ports=free_range(4)), on_event=None)
    events: list[object] = []
    r.on_event = events.append
    yield r, events
    r.close()


async def test_a_prompt_arrives_whole_paced_and_then_the_bridge_continues_the_stream(relay) -> None:  # type: ignore[no-untyped-def]
    r, events = relay
    phone, gateway = Peer(), Peer()
    try:
        ports = r.open_session("call")
        r.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], payload_type=8))
        r.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
        r.bridge("call")
        loop = asyncio.get_running_loop()
        prompt = clip("welcome", 15, base=100)
        r.play("call", "phone", [prompt])
        received: list[tuple[float, bytes]] = []
        for n in range(15):
            received.append((loop.time(), await phone.recv()))
            if n == 3:
                gateway.send(rtp(1, 160, 0xB), ports.gateway)  # paused while the prompt plays
        assert [d[12:] for _, d in received] == list(prompt.frames)
        heads = [header(d) for _, d in received]
        assert {h[1] for h in heads} == {8}  # PCMA, as negotiated with the phone
        assert [(h[2] - heads[0][2]) & 0xFFFF for h in heads] == list(range(15))
        assert [(h[3] - heads[0][3]) & 0xFFFFFFFF for h in heads] == [160 * n for n in range(15)]
        span = received[-1][0] - received[0][0]
        assert 0.2 < span < 0.45  # 14 intervals of 20 ms, not a burst and not stalled
        await asyncio.sleep(0.05)
        assert [e for e in events if isinstance(e, PlaybackFinished)] == [
            PlaybackFinished("call", "phone", "done")
        ]
        gateway.send(rtp(2, 320, 0xB), ports.gateway)
        after = header(await phone.recv())
        assert after[4] == heads[0][4]  # the same SSRC: one stream
        assert (after[2] - heads[-1][2]) & 0xFFFF == 1 and after[0] is True
        assert await phone.nothing(0.05)  # the packet sent during the prompt was not queued
    finally:
        phone.close()
        gateway.close()


async def test_many_players_share_one_clock(relay) -> None:  # type: ignore[no-untyped-def]
    r, events = relay
    r.close()
    big = Relay(RelayConfig(ports=free_range(40)), on_event=events.append)
    peers = [Peer() for _ in range(20)]
    try:
        for n in range(10):
            big.open_session(f"c{n}")
            big.set_remote(f"c{n}", "phone", RemoteMedia(HOST, peers[n].address[1]))
            big.play(f"c{n}", "phone", [clip("x", 5)])
        assert big.clock.players == 10
        for n in range(10):
            heads = [header(await peers[n].recv()) for _ in range(5)]
            assert [(h[2] - heads[0][2]) & 0xFFFF for h in heads] == [0, 1, 2, 3, 4]  # each call its stream
        await asyncio.sleep(0.05)
        assert big.clock.players == 0 and big.clock._handle is None  # the clock stops when idle
    finally:
        big.close()
        for p in peers:
            p.close()


# ---------------------------------------------------------------------- real prompts, real codecs


async def test_shipped_prompts_arrive_decodable_to_their_source_audio(relay) -> None:  # type: ignore[no-untyped-def]
    """A queue of two shipped prompts ("you entered" style read-back: digit 4, digit 2) in PCMA:
    every frame arrives, timestamps advance by 160 without a jump, and the audio decodes back to
    the prompt's samples within G.711's quantization error."""
    r, _ = relay
    r.prompts = PromptSet.load(shipped_directory(), languages=("en", "es"))
    phone = Peer()
    try:
        r.open_session("call")
        r.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], payload_type=8))
        r.play_prompts("call", "phone", ["digit_4", "digit_2"], language="es")
        source = array("h")
        for name in ("digit_4", "digit_2"):
            samples = r.prompts.prompt(name, "es").as_array()
            source.extend(samples)
            source.extend([0] * ((-len(samples)) % FRAME_SAMPLES))  # each clip is padded to a frame
        frames = len(source) // FRAME_SAMPLES
        received = [await phone.recv() for _ in range(frames)]
        assert await phone.nothing(0.1)
        heads = [header(d) for d in received]
        assert [(h[3] - heads[0][3]) & 0xFFFFFFFF for h in heads] == [
            FRAME_SAMPLES * n for n in range(frames)
        ]
        assert {h[1] for h in heads} == {8}
        decoded = decode_pcma(b"".join(d[12:] for d in received))
        assert len(decoded) == len(source)
        worst = max(abs(a - b) for a, b in zip(decoded, source, strict=True))
        assert worst <= 1024  # A-law's largest step is 1024 at the top of its range: half is the error
        signal = sum(s * s for s in source)
        noise = sum((a - b) ** 2 for a, b in zip(decoded, source, strict=True))
        assert signal / max(noise, 1) > 10 ** (30 / 10)  # > 30 dB SNR: G.711 gives ~38 dB on speech
    finally:
        phone.close()


DTMF_TONES = {"1": (697, 1209), "7": (852, 1209), "#": (941, 1477)}


def dtmf_tone(key: str, samples: int) -> list[int]:
    low, high = DTMF_TONES[key]
    return [
        int(6000 * (math.sin(2 * math.pi * low * n / 8000) + math.sin(2 * math.pi * high * n / 8000)))
        for n in range(samples)
    ]


async def send_audio_without_telephone_event(r: Relay, pcm: array[int], lost: Collection[int] = ()) -> None:
    """A phone whose SDP offered no telephone-event sends ``pcm`` in 20 ms PCMU packets through a
    bridged call, the ones numbered in ``lost`` lost on the way; each sent must reach the gateway."""
    phone, gateway = Peer(), Peer()
    try:
        ports = r.open_session("call")
        r.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], payload_type=0))  # no events
        r.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
        r.bridge("call")
        payload = encode_pcmu(pcm)
        for n in range(len(payload) // 160):
            if n in lost:
                continue
            phone.send(rtp(n, 160 * n, 0x5, payload[160 * n : 160 * (n + 1)]), ports.phone)
            await gateway.recv()  # the audio still reaches the gateway
            await asyncio.sleep(0.002)
    finally:
        phone.close()
        gateway.close()


async def test_inband_tones_from_a_phone_without_telephone_event_become_digits(relay) -> None:  # type: ignore[no-untyped-def]
    r, events = relay
    pcm = array("h")
    for key in "7#":
        pcm.extend(dtmf_tone(key, 800) + [0] * 800)  # 100 ms tone, 100 ms pause
    await send_audio_without_telephone_event(r, pcm)
    digits = [e.digit for e in events if isinstance(e, DigitReceived)]
    assert [(d.key, d.source) for d in digits] == [("7", "inband"), ("#", "inband")]
    assert all(80 <= d.duration_ms <= 120 for d in digits)


async def test_inband_presses_of_one_key_stay_two_when_their_pause_is_lost(relay) -> None:  # type: ignore[no-untyped-def]
    """ "11" whose 60 ms pause (three packets) is lost on the way: the relay fills the gap the
    RTP timestamps show, so the pause is still there and the key counts twice."""
    r, events = relay
    tone = dtmf_tone("1", 800)
    pcm = array("h", tone + [0] * 480 + tone + [0] * 800)  # 100 ms, 60 ms pause, 100 ms, silence
    await send_audio_without_telephone_event(r, pcm, lost=(5, 6, 7))
    digits = [e.digit for e in events if isinstance(e, DigitReceived)]
    assert [(d.key, d.source) for d in digits] == [("1", "inband"), ("1", "inband")]


def test_a_prompt_started_by_the_finish_handler_begins_on_the_next_tick() -> None:
    """Chaining prompts from PlaybackFinished: the next one is paced like any other, not sent in a
    burst inside the tick that finished the first (review finding: a whole menu in one go)."""
    sink = FakeSink()
    chained: list[str] = []
    follow_up = clip("menu", 5, base=20)

    def finished(player: PromptPlayer, reason: str) -> None:
        chained.append(reason)
        if len(chained) == 1:
            player.play([follow_up])

    player = PromptPlayer(sink, NoClock(), finished)
    player.play([clip("welcome", 2)])
    for n in range(4):
        player.on_tick(100.0 + n * 0.02, 100.0 + n * 0.02)  # a real clock's times, far from zero
    assert [f[2][0] for f in sink.frames] == [0, 1, 20, 21]
    assert chained == ["done"]
