#!/usr/bin/env python3
"""Build the IVR prompt audio (PRODUCT.md §4) from prompts.toml with espeak-ng and sox.

Writes ``<language>/<name>.wav`` for every prompt and language in prompts.toml, ``common/hold_music.wav``
(a loop synthesised by sox, so there are no rights to clear), and ``manifest.toml``, which records what
each file was made from so the tests notice a text changed without its audio being regenerated.

Every file is what the relay plays without converting it: 8 kHz (the G.711 clock, RFC 3551 §4.5.14),
mono, 16-bit signed PCM WAV. Speech is trimmed to the voice, padded with the same silence at both ends
and set to the same level, so prompts played one after another (digits read back) sound even.

Level: the RMS of the *active* 20 ms frames (those within ``ACTIVE_RANGE_DB`` of the loudest frame, so
the pauses between words don't count), in dBFS where 0 dBFS is the RMS of a full-scale square wave.

Run from anywhere: ``python3 ivr_prompts/generate.py`` (needs the Debian packages espeak-ng and sox).
The output is byte-for-byte reproducible with the same espeak-ng and sox versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import wave
from array import array
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
SOURCE: Final = HERE / "prompts.toml"
MANIFEST_NAME: Final = "manifest.toml"

#: Tools this script runs, and the Debian package that provides each.
TOOLS: Final = {"espeak-ng": "espeak-ng", "sox": "sox"}

#: G.711 runs at 8 kHz (RFC 3551 §4.5.14): prompts are stored at the rate they are sent, so the relay
#: never resamples at call time.
SAMPLE_RATE: Final = 8000
#: 16-bit linear PCM is what G.711 encoders take and what the loader hands out.
SAMPLE_WIDTH: Final = 2
FULL_SCALE: Final = 32768.0

#: Words per minute. espeak-ng's default of 175 is hard to follow through a phone line's narrow band;
#: 150 is the pace of a careful human announcer.
SPEECH_RATE_WPM: Final = 150
#: Speech level. ITU-T P.56 active speech levels on telephone networks sit around -16 to -20 dBFS;
#: -18 is the middle. espeak-ng's peaks stand 14-20 dB above its active level, so at -18 the limiter
#: below takes at most about 3 dB off the tallest few.
TARGET_LEVEL_DBFS: Final = -18.0
#: Peak ceiling: 1 dB of headroom so a later resampler or filter overshoot does not clip.
PEAK_CEILING_DBFS: Final = -1.0
#: The limiter's gain moves over 2 x 10 ms: slow enough to sound like level, not distortion.
LIMITER_SECONDS: Final = 0.010
#: Gain/limiter rounds until the level is within LEVEL_TOLERANCE_DB of the target (two or three do).
LEVEL_ITERATIONS: Final = 8
LEVEL_TOLERANCE_DB: Final = 0.05
#: espeak-ng's amplitude (default 100): at 100 its loudest vowels reach full scale and clip inside the
#: synthesiser; at 50 they cannot, and our own gain sets the level afterwards.
SPEECH_AMPLITUDE: Final = 50
#: A frame quieter than the loudest frame by more than this is a pause, not speech, for the level.
ACTIVE_RANGE_DB: Final = 30.0
#: Level frames are 20 ms: one RTP packet of G.711 (RFC 3551 §4.2 default packetisation).
LEVEL_FRAME_SECONDS: Final = 0.020
#: Trimming looks at 5 ms frames and keeps everything within this range of the loudest one, so the
#: voice's soft onsets and decays stay and only the synthesiser's silence goes.
TRIM_FRAME_SECONDS: Final = 0.005
TRIM_RANGE_DB: Final = 45.0
#: Short fades at the cut points so a cut through a low-level tail cannot click.
EDGE_FADE_SECONDS: Final = 0.005
#: Silence before and after every spoken prompt: prompts played back to back (a digit read-back, a
#: confirmation after a beep) get 300 ms between voices, a natural pause.
LEAD_SILENCE_SECONDS: Final = 0.100
TRAIL_SILENCE_SECONDS: Final = 0.200
#: espeak-ng speaks at 22.05 kHz; sox cuts rumble and DC below this before resampling to 8 kHz. Low,
#: because a G.711 path may pass bass that a carrier's 300 Hz filter would not, and it carries warmth.
HIGHPASS_HZ: Final = 120

# Hold music: an arpeggio over soft chords, 12 bars of 2 s (24 s), I-vi-IV-V in C major and
# variations, ending on G so the loop falls back to C. Notes stay between 290 Hz and 1.1 kHz, inside the
# telephone band, so nothing is lost in G.711 and the carrier's filters.
MUSIC_NAME: Final = "hold_music"
MUSIC_SYNTH_RATE: Final = 16000  # synthesised at twice the output rate, then resampled: no aliasing
MUSIC_NOTE_SECONDS: Final = 0.25  # eighth notes at 120 bpm
MUSIC_NOTE_FADE_SECONDS: Final = 0.03  # end of each plucked note, so notes join without clicks
MUSIC_PAD_FADE_SECONDS: Final = 0.05  # chord changes: short enough not to pulse, long enough not to click
MUSIC_PAD_GAIN_DB: Final = -14.0  # the chord sits under the arpeggio
#: sox's pluck is bright, with harmonics up to the 4 kHz band edge that sound harsh on a phone; above
#: 2 kHz they go (a steep sinc filter; sox's 2-pole lowpass leaves them 12 dB down at 4 kHz), for a softer
#: harp-like tone.
MUSIC_LOWPASS_HZ: Final = 2000
#: The plucked notes start from noise with a DC offset; nothing is played below the lowest note (294 Hz).
MUSIC_HIGHPASS_HZ: Final = 200
#: Chords as MIDI notes: the pad holds the three tones, the arpeggio walks them.
MUSIC_CHORDS: Final = {
    "C": (72, 76, 79),
    "Am": (69, 72, 76),
    "F": (65, 69, 72),
    "G": (67, 71, 74),
    "Em": (64, 67, 71),
    "Dm": (62, 65, 69),
}
#: Arpeggio patterns over the chord tones: 0-2 are the chord, 3 its root an octave up.
MUSIC_PATTERNS: Final = (
    (0, 1, 2, 3, 2, 1, 2, 1),
    (0, 2, 1, 2, 3, 2, 1, 2),
    (3, 2, 1, 0, 1, 2, 3, 2),
)
MUSIC_PHRASES: Final = (
    (("C", "Am", "F", "G"), 0),
    (("C", "Em", "F", "G"), 1),
    (("Am", "F", "Dm", "G"), 2),
)


class GenerateError(Exception):
    """A tool is missing or failed, or prompts.toml is malformed."""


def check_tools() -> None:
    """Fail with the Debian package to install when espeak-ng or sox is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(TOOLS[tool] for tool in missing)
        raise GenerateError(
            f"{', '.join(missing)} not found: install the Debian package(s) {packages} "
            f"(apt-get install {packages})"
        )


def tool_versions() -> dict[str, str]:
    """Each tool's version number, for the manifest (only the number: the banners name local paths)."""
    espeak = re.search(r"text-to-speech: (\S+)", run(["espeak-ng", "--version"]).decode())
    sox = re.search(r"SoX v(\S+)", run(["sox", "--version"]).decode())
    if espeak is None or sox is None:
        raise GenerateError("cannot read the espeak-ng or sox version")
    return {"espeak-ng": espeak.group(1), "sox": sox.group(1)}


def run(command: Sequence[str]) -> bytes:
    """Run a tool; a failure names the command and carries its stderr."""
    result = subprocess.run(list(command), capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise GenerateError(f"{command[0]} failed ({result.returncode}): {stderr}")
    return result.stdout


def load_source(path: Path = SOURCE) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Read prompts.toml: (voice per language, {prompt name: {language: text}}), checked complete."""
    with path.open("rb") as file:
        data = tomllib.load(file)
    voices = data.get("voices")
    prompts = data.get("prompts")
    if not isinstance(voices, dict) or not voices:
        raise GenerateError(f"{path}: [voices] must map each language to an espeak-ng voice")
    if not isinstance(prompts, dict) or not prompts:
        raise GenerateError(f"{path}: no [prompts.<name>] tables")
    for name, texts in prompts.items():
        if not isinstance(texts, dict) or set(texts) != set(voices):
            have = sorted(texts) if isinstance(texts, dict) else []
            raise GenerateError(f"{path}: prompt {name!r} has languages {have}, needs {sorted(voices)}")
        for language, text in texts.items():
            if not isinstance(text, str) or not text.strip():
                raise GenerateError(f"{path}: prompt {name!r} has no {language} text")
    return dict(voices), {name: dict(texts) for name, texts in prompts.items()}


def _digest(recipe: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _level_settings() -> dict[str, object]:
    return {
        "rate": SAMPLE_RATE,
        "level": TARGET_LEVEL_DBFS,
        "ceiling": PEAK_CEILING_DBFS,
        "active_range": ACTIVE_RANGE_DB,
        "level_frame": LEVEL_FRAME_SECONDS,
        "limiter": LIMITER_SECONDS,
    }


def speech_digest(voice: str, text: str) -> str:
    """What a spoken prompt is made from: voice, words and every setting that shapes the audio."""
    return _digest(
        {
            "kind": "speech",
            "voice": voice,
            "text": text,
            "wpm": SPEECH_RATE_WPM,
            "amplitude": SPEECH_AMPLITUDE,
            "highpass": HIGHPASS_HZ,
            "trim": [TRIM_FRAME_SECONDS, TRIM_RANGE_DB, EDGE_FADE_SECONDS],
            "pad": [LEAD_SILENCE_SECONDS, TRAIL_SILENCE_SECONDS],
            **_level_settings(),
        }
    )


def music_digest() -> str:
    """What the hold music is made from: the score and the synthesis settings."""
    return _digest(
        {
            "kind": "music",
            "synth_rate": MUSIC_SYNTH_RATE,
            "note": [MUSIC_NOTE_SECONDS, MUSIC_NOTE_FADE_SECONDS],
            "pad": [MUSIC_PAD_FADE_SECONDS, MUSIC_PAD_GAIN_DB],
            "band": [MUSIC_HIGHPASS_HZ, MUSIC_LOWPASS_HZ],
            "chords": MUSIC_CHORDS,
            "patterns": MUSIC_PATTERNS,
            "phrases": MUSIC_PHRASES,
            **_level_settings(),
        }
    )


#: sox's options for 32-bit float samples: intermediate files keep full precision and cannot clip.
_FLOAT: Final = ("-e", "floating-point", "-b", "32")


def _read_f32(path: Path) -> array[float]:
    samples = array("f", path.read_bytes())
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _f32_output(path: Path) -> list[str]:
    """sox output options: raw little-endian float mono at 8 kHz: no precision lost before our gain."""
    return ["-t", "raw", *_FLOAT, "-L", "-c", "1", "-r", str(SAMPLE_RATE), str(path)]


def speak(voice: str, text: str, workdir: Path) -> array[float]:
    """The text spoken by espeak-ng, high-passed and resampled to 8 kHz by sox, as float samples."""
    spoken = workdir / "spoken.wav"
    converted = workdir / "spoken.f32"
    amplitude, wpm = str(SPEECH_AMPLITUDE), str(SPEECH_RATE_WPM)
    run(["espeak-ng", "-v", voice, "-a", amplitude, "-s", wpm, "-w", str(spoken), text])
    run(["sox", "-R", str(spoken), *_f32_output(converted), "highpass", str(HIGHPASS_HZ), "rate", "-v"])
    return _read_f32(converted)


def _frame_levels(samples: Sequence[float], frame: int) -> list[float]:
    """RMS of each whole-or-last-partial frame, linear."""
    levels = []
    for start in range(0, len(samples), frame):
        chunk = samples[start : start + frame]
        levels.append(math.sqrt(sum(x * x for x in chunk) / len(chunk)))
    return levels


def active_level_dbfs(samples: Sequence[float]) -> float:
    """RMS of the frames within ACTIVE_RANGE_DB of the loudest, in dBFS (samples in [-1, 1])."""
    frame = round(LEVEL_FRAME_SECONDS * SAMPLE_RATE)
    levels = _frame_levels(samples, frame)
    floor = max(levels) * 10 ** (-ACTIVE_RANGE_DB / 20)
    active = [level for level in levels if level >= floor]
    return 20 * math.log10(math.sqrt(sum(level * level for level in active) / len(active)))


def trim_and_pad(samples: Sequence[float]) -> list[float]:
    """Cut the synthesiser's silence, fade the cut points, then add the standard silence both ends."""
    frame = round(TRIM_FRAME_SECONDS * SAMPLE_RATE)
    levels = _frame_levels(samples, frame)
    floor = max(levels) * 10 ** (-TRIM_RANGE_DB / 20)
    loud = [index for index, level in enumerate(levels) if level >= floor]
    voice = list(samples[loud[0] * frame : (loud[-1] + 1) * frame])
    fade = round(EDGE_FADE_SECONDS * SAMPLE_RATE)
    for index in range(min(fade, len(voice))):
        ramp = index / fade
        voice[index] *= ramp
        voice[-1 - index] *= ramp
    lead = [0.0] * round(LEAD_SILENCE_SECONDS * SAMPLE_RATE)
    trail = [0.0] * round(TRAIL_SILENCE_SECONDS * SAMPLE_RATE)
    return lead + voice + trail


def limit(samples: Sequence[float]) -> list[float]:
    """Hold every peak under the ceiling with a smooth gain curve (a look-ahead peak limiter).

    The gain each sample needs is min-filtered over +-LIMITER_SECONDS, then averaged over the same span:
    every sample in the average's window saw the sample's own need, so the result never exceeds it, and
    the gain moves over 10-20 ms instead of bending single samples (which would be audible distortion).
    """
    ceiling = 10 ** (PEAK_CEILING_DBFS / 20)
    need = [min(1.0, ceiling / abs(x)) if x else 1.0 for x in samples]
    span = round(LIMITER_SECONDS * SAMPLE_RATE)
    held = _sliding_min(need, span)
    sums = [0.0]
    for value in held:
        sums.append(sums[-1] + value)
    count = len(held)
    out = []
    for index, x in enumerate(samples):
        low, high = max(0, index - span), min(count, index + span + 1)
        out.append(x * (sums[high] - sums[low]) / (high - low))
    return out


def _sliding_min(values: Sequence[float], span: int) -> list[float]:
    """min(values[i - span : i + span + 1]) for every i, in one pass (monotonic deque)."""
    window: deque[int] = deque()
    out: list[float] = []
    count = len(values)
    for right in range(count + span):
        if right < count:
            while window and values[window[-1]] >= values[right]:
                window.pop()
            window.append(right)
        centre = right - span
        if centre >= 0:
            while window[0] < centre - span:
                window.popleft()
            out.append(values[window[0]])
    return out


def to_pcm(samples: Sequence[float], name: str) -> array[int]:
    """Bring the active level to TARGET_LEVEL_DBFS under the peak ceiling, rounded to int16.

    Limiting takes a little off the level, so gain and limiter alternate until the level is on target.
    """
    gain = 10 ** ((TARGET_LEVEL_DBFS - active_level_dbfs(samples)) / 20)
    for _ in range(LEVEL_ITERATIONS):
        shaped = limit([x * gain for x in samples])
        error = TARGET_LEVEL_DBFS - active_level_dbfs(shaped)
        if abs(error) < LEVEL_TOLERANCE_DB:
            return array("h", (round(x * FULL_SCALE) for x in shaped))
        gain *= 10 ** (error / 20)
    raise GenerateError(f"{name}: level did not settle at {TARGET_LEVEL_DBFS} dBFS under the peak ceiling")


def write_wav(path: Path, pcm: array[int]) -> None:
    """Write 8 kHz mono 16-bit PCM; written beside the target and renamed, so a failed run leaves no stub."""
    if sys.byteorder == "big":
        pcm = array("h", pcm)
        pcm.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".wav.partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    partial.replace(path)


def _midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def hold_music(workdir: Path) -> array[float]:
    """Synthesise the hold loop with sox: plucked arpeggio notes over a sine chord, bar by bar."""
    note_files: dict[int, Path] = {}

    def note_file(note: int) -> Path:
        if note not in note_files:
            path = workdir / f"note{note}.wav"
            length, fade = str(MUSIC_NOTE_SECONDS), str(MUSIC_NOTE_FADE_SECONDS)
            effects = ["synth", length, "pluck", f"{_midi_hz(note):.3f}", "fade", "t", "0", length, fade]
            run(["sox", "-R", "-n", "-r", str(MUSIC_SYNTH_RATE), "-c", "1", *_FLOAT, str(path), *effects])
            note_files[note] = path
        return note_files[note]

    bar_seconds = MUSIC_NOTE_SECONDS * len(MUSIC_PATTERNS[0])
    bars: list[Path] = []
    for chords, pattern_index in MUSIC_PHRASES:
        for chord_name in chords:
            tones = MUSIC_CHORDS[chord_name]
            ladder = (*tones, tones[0] + 12)
            index = len(bars)
            arpeggio = workdir / f"arpeggio{index}.wav"
            notes = [str(note_file(ladder[step])) for step in MUSIC_PATTERNS[pattern_index]]
            run(["sox", *notes, str(arpeggio)])
            pad = workdir / f"pad{index}.wav"
            sines = [word for tone in tones for word in ("sine", f"{_midi_hz(tone):.3f}")]
            length, fade = str(bar_seconds), str(MUSIC_PAD_FADE_SECONDS)
            effects = ["synth", length, *sines, "gain", str(MUSIC_PAD_GAIN_DB)]
            effects += ["fade", "t", fade, length, fade]
            # Three input channels, one sine each, mixed down to the mono output.
            rate = str(MUSIC_SYNTH_RATE)
            run(["sox", "-R", "-c", "3", "-r", rate, "-n", "-c", "1", *_FLOAT, str(pad), *effects])
            bar = workdir / f"bar{index}.wav"
            run(["sox", "-R", "-m", str(arpeggio), str(pad), *_FLOAT, str(bar)])
            bars.append(bar)
    loop = workdir / "music.f32"
    band = f"{MUSIC_HIGHPASS_HZ}-{MUSIC_LOWPASS_HZ}"
    # The filters ring across the loop point, so filter three rounds and keep the middle one: its end
    # runs into its own start exactly as it will when played on repeat, without a click.
    rounds = [str(bar) for bar in bars] * 3
    run(["sox", "-R", *rounds, *_f32_output(loop), "sinc", band, "rate", "-v"])
    samples = _read_f32(loop)
    one_round = round(bar_seconds * len(bars) * SAMPLE_RATE)
    if len(samples) != 3 * one_round:
        raise GenerateError(f"hold music: sox made {len(samples)} samples, expected {3 * one_round}")
    return samples[one_round : 2 * one_round]


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def write_manifest(out: Path, versions: dict[str, str], entries: dict[str, tuple[str, Path]]) -> None:
    """manifest.toml: the tools' versions and, per file, the recipe digest and the WAV's SHA-256."""
    lines = [
        "# Written by generate.py; do not edit. tests/test_prompts.py checks every WAV against it and",
        "# every recipe against prompts.toml, so a text changed without regenerating is caught.",
        "",
        "[tools]",
        *(f"{_toml_string(tool)} = {_toml_string(version)}" for tool, version in sorted(versions.items())),
    ]
    for relative, (recipe, path) in sorted(entries.items()):
        wav_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines += ["", f"[files.{_toml_string(relative)}]", f'recipe = "{recipe}"', f'sha256 = "{wav_digest}"']
    (out / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out: Path) -> dict[str, tuple[str, Path]]:
    """Build every prompt into ``out``; returns {relative path: (recipe digest, file)}."""
    check_tools()
    voices, prompts = load_source()
    entries: dict[str, tuple[str, Path]] = {}
    with tempfile.TemporaryDirectory(prefix="ivr-prompts-") as scratch:
        workdir = Path(scratch)
        for name, texts in prompts.items():
            for language, text in texts.items():
                relative = f"{language}/{name}.wav"
                samples = trim_and_pad(speak(voices[language], text, workdir))
                write_wav(out / relative, to_pcm(samples, relative))
                entries[relative] = (speech_digest(voices[language], text), out / relative)
                print(f"{relative}: {len(samples) / SAMPLE_RATE:.2f} s")
        relative = f"common/{MUSIC_NAME}.wav"
        music = hold_music(workdir)
        write_wav(out / relative, to_pcm(music, relative))
        entries[relative] = (music_digest(), out / relative)
        print(f"{relative}: {len(music) / SAMPLE_RATE:.2f} s")
    write_manifest(out, tool_versions(), entries)
    for stale in sorted({*out.glob("*/*.wav")} - {path for _, path in entries.values()}):
        print(f"{stale.relative_to(out)}: not made from prompts.toml any more; delete it", file=sys.stderr)
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (default: this script's)")
    args = parser.parse_args(argv)
    try:
        entries = generate(args.out)
    except GenerateError as error:
        print(f"generate.py: {error}", file=sys.stderr)
        return 2
    total = sum(path.stat().st_size for _, path in entries.values())
    print(f"{len(entries)} files, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
