"""The IVR prompt set: the audio the voice server plays to callers (PRODUCT.md §4), loaded once at start.

Every prompt comes out as 16-bit signed little-endian linear PCM, mono, 8 kHz: the input of a G.711
encoder (RFC 3551 §4.5.14), 320 bytes per 20 ms packet (RFC 3551 §4.2). Encoding is not done here.

Where prompts come from, first match wins:

1. an operator's override: any file PyAV (FFmpeg) decodes (WAV, MP3, OGG Vorbis/Opus, FLAC ...) at any
   sample rate and channel count, converted at load; a key ``"<language>/<name>"`` replaces one
   language's prompt, a bare ``"<name>"`` replaces it in every loaded language;
2. ``<directory>/<language>/<name>.<ext>``;
3. ``<directory>/common/<name>.<ext>``, for prompts without words (the hold music);
4. for any language but the fallback language (English unless said otherwise): the fallback language's
   prompt, with a warning at load. A caller hears a sentence in English rather than silence, and an
   operator can add a language one prompt at a time. The fallback language itself must be complete:
   a prompt missing there is a :class:`PromptError` at load, naming it.

At run time :meth:`PromptSet.prompt` takes the language chosen per number or room; a language that was
not loaded gets the fallback language's prompt (the room's language may come from a remote directory,
and a call must not fail over it).

Shipped 8 kHz mono 16-bit WAVs are read with the stdlib :mod:`wave` as they are; everything else goes
through PyAV's decoder and ``AudioResampler``.
"""

from __future__ import annotations

import logging
import re
import sys
import wave
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

import av
import av.error

logger = logging.getLogger(__name__)

#: G.711's clock (RFC 3551 §4.5.14): prompts are held at the rate they are sent.
SAMPLE_RATE: Final = 8000
#: Bytes per sample: 16-bit linear PCM, what G.711 encoders take.
SAMPLE_WIDTH: Final = 2
#: The language whose prompts stand in for a language that lacks one; it must be complete.
FALLBACK_LANGUAGE: Final = "en"
#: The directory of prompts that have no words and serve every language.
COMMON_DIRECTORY: Final = "common"
#: File name endings looked for in the prompt directory, in this order; the decoder goes by content.
PROMPT_EXTENSIONS: Final = (".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac")
#: Longest prompt accepted. Prompts are held decoded in memory (16 kB per second); ten minutes is far
#: beyond any announcement or hold loop, and stops a mistaken path to an hour-long recording from
#: taking 58 MB per language.
MAX_PROMPT_SECONDS: Final = 600
MAX_PROMPT_BYTES: Final = MAX_PROMPT_SECONDS * SAMPLE_RATE * SAMPLE_WIDTH
#: A language is a BCP 47 tag (RFC 5646 §2.1), simplified: primary subtag, then subtags. It is also a
#: directory name, so the pattern keeps out path separators and dots.
_LANGUAGE_TAG: Final = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


class PromptError(Exception):
    """A prompt cannot be loaded or found: the message names the file, prompt or language and why."""


class PromptName(StrEnum):
    """Every prompt the voice server needs (PRODUCT.md §4); the file is ``<name>.wav``."""

    # §4.1 IVR
    ENTER_MEETING_ID = "enter_meeting_id"
    ENTER_PIN = "enter_pin"
    INVALID = "invalid"
    GOODBYE = "goodbye"
    CONNECTING = "connecting"
    UNABLE_TO_JOIN = "unable_to_join"
    NOT_AVAILABLE = "not_available"
    # §4.2 parked callers
    HOLD_MUSIC = "hold_music"
    # §4.5 DELETE of a call
    REMOVED = "removed"
    # §4.7 keypad command confirmations
    MUTED = "muted"
    UNMUTED = "unmuted"
    HAND_RAISED = "hand_raised"
    HAND_LOWERED = "hand_lowered"
    ROOM_LOCKED = "room_locked"
    ROOM_UNLOCKED = "room_unlocked"
    ALL_MUTED = "all_muted"
    ALL_UNMUTED = "all_unmuted"
    RECORDING_ON = "recording_on"
    RECORDING_OFF = "recording_off"
    CONFIRM_END = "confirm_end"
    #: *0 for a participant; a moderator hears HELP_MODERATOR, which adds the moderator's keys.
    HELP = "help"
    HELP_MODERATOR = "help_moderator"
    # reading an entry back
    DIGIT_0 = "digit_0"
    DIGIT_1 = "digit_1"
    DIGIT_2 = "digit_2"
    DIGIT_3 = "digit_3"
    DIGIT_4 = "digit_4"
    DIGIT_5 = "digit_5"
    DIGIT_6 = "digit_6"
    DIGIT_7 = "digit_7"
    DIGIT_8 = "digit_8"
    DIGIT_9 = "digit_9"

    @classmethod
    def for_digit(cls, digit: str) -> PromptName:
        """The prompt that speaks one of the digits 0-9, for reading an entry back."""
        if len(digit) != 1 or digit not in "0123456789":
            raise PromptError(f"no prompt for digit {digit!r}: only 0-9 are spoken")
        return cls(f"digit_{digit}")


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt's audio: ``samples`` is 16-bit signed little-endian PCM, mono, 8 kHz.

    Bytes, so the value is immutable and one decoded copy can be shared; :meth:`as_array` gives the
    integers. A 20 ms packet is ``samples[i : i + 320]``.

    ``language`` is the language the audio is in (``None`` for a prompt without words), which differs
    from the language asked for when the fallback language stood in.
    """

    name: str
    language: str | None
    samples: bytes = field(repr=False)
    source: Path

    def __post_init__(self) -> None:
        if not self.name:
            raise PromptError("a prompt needs a name")
        if not self.samples:
            raise PromptError(f"prompt {self.name!r} from {self.source} is empty")
        if len(self.samples) % SAMPLE_WIDTH:
            raise PromptError(
                f"prompt {self.name!r} from {self.source} has {len(self.samples)} bytes: "
                f"not a whole number of {SAMPLE_WIDTH}-byte samples"
            )
        if len(self.samples) > MAX_PROMPT_BYTES:
            raise PromptError(
                f"prompt {self.name!r} from {self.source} is longer than {MAX_PROMPT_SECONDS} s"
            )

    @property
    def sample_count(self) -> int:
        return len(self.samples) // SAMPLE_WIDTH

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.sample_count / SAMPLE_RATE

    def as_array(self) -> array[int]:
        """The samples as a new host-order ``array('h')``, what ``rtp.g711``'s encoders take."""
        samples = array("h", self.samples)
        if sys.byteorder == "big":
            samples.byteswap()
        return samples


def read_pcm(path: Path) -> bytes:
    """Decode an audio file to 16-bit little-endian mono 8 kHz PCM.

    Raises :class:`PromptError` ``"cannot read prompt file <path>: <reason>"`` when the file is missing,
    undecodable, holds no audio, or is longer than MAX_PROMPT_SECONDS.
    """
    if not path.exists():
        raise PromptError(f"cannot read prompt file {path}: no such file")
    if not path.is_file():
        raise PromptError(f"cannot read prompt file {path}: not a regular file")
    pcm = _read_telephone_wav(path) if path.suffix.lower() == ".wav" else None
    if pcm is None:
        pcm = _decode(path)
    if not pcm:
        raise PromptError(f"cannot read prompt file {path}: it holds no audio")
    return pcm


def _too_long(path: Path) -> PromptError:
    return PromptError(f"cannot read prompt file {path}: longer than {MAX_PROMPT_SECONDS} s")


def _read_telephone_wav(path: Path) -> bytes | None:
    """The samples of a WAV that is already 8 kHz mono 16-bit PCM; None for any other file."""
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getcomptype()) != (
                1,
                SAMPLE_WIDTH,
                SAMPLE_RATE,
                "NONE",
            ):
                return None
            # Read one sample past the limit at most: a damaged header may claim any length.
            pcm = wav.readframes(min(wav.getnframes(), MAX_PROMPT_BYTES // SAMPLE_WIDTH + 1))
    except (wave.Error, EOFError):
        # Not a plain PCM WAV (or a damaged one): FFmpeg reads more kinds, and explains failures.
        return None
    except OSError as error:
        raise PromptError(f"cannot read prompt file {path}: {error.strerror or error}") from error
    if len(pcm) > MAX_PROMPT_BYTES:
        raise _too_long(path)
    # A header that claims more frames than the file holds gives a short read, possibly odd-sized.
    return pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]


def _decode(path: Path) -> bytes:
    """Decode any file FFmpeg reads, resampled to s16 mono 8 kHz."""
    chunks: list[bytes] = []
    size = 0
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise PromptError(f"cannot read prompt file {path}: it has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    size += _append(chunks, out)
                if size > MAX_PROMPT_BYTES:
                    raise _too_long(path)
            for out in resampler.resample(None):
                size += _append(chunks, out)
    except av.error.FFmpegError as error:
        raise PromptError(f"cannot read prompt file {path}: {error.strerror or error}") from error
    except OSError as error:
        raise PromptError(f"cannot read prompt file {path}: {error.strerror or error}") from error
    if size > MAX_PROMPT_BYTES:
        raise _too_long(path)
    pcm = b"".join(chunks)
    if sys.byteorder == "big":
        # FFmpeg's s16 is host order; the documented output is little-endian.
        swapped = array("h", pcm)
        swapped.byteswap()
        pcm = swapped.tobytes()
    return pcm


def _append(chunks: list[bytes], frame: av.AudioFrame) -> int:
    """Add one resampled frame's samples (the plane may be padded past them); returns the byte count."""
    size = frame.samples * SAMPLE_WIDTH
    chunks.append(bytes(frame.planes[0])[:size])
    return size


def shipped_directory() -> Path:
    """The prompt set that ships with enx-voice: ``ivr_prompts/`` beside the ``rtp`` package."""
    return Path(__file__).resolve().parent.parent / "ivr_prompts"


def _check_language(language: str) -> str:
    if not _LANGUAGE_TAG.fullmatch(language):
        raise PromptError(f"invalid language tag {language!r}: expected a BCP 47 tag such as 'en' or 'pt-BR'")
    return language


@dataclass(frozen=True, slots=True)
class PromptSet:
    """Every required prompt in every loaded language; build it with :meth:`load`.

    ``prompts`` maps ``(language, name)`` to its :class:`Prompt` for every loaded language and every
    :class:`PromptName`; ``fallbacks`` lists the pairs served by the fallback language's prompt.
    """

    fallback: str
    languages: tuple[str, ...]
    prompts: Mapping[tuple[str, str], Prompt]
    fallbacks: frozenset[tuple[str, str]] = frozenset()

    def __post_init__(self) -> None:
        for language in self.languages:
            _check_language(language)
        if self.fallback not in self.languages:
            raise PromptError(f"the fallback language {self.fallback!r} is not loaded")
        for language in self.languages:
            for name in PromptName:
                prompt = self.prompts.get((language, name))
                if prompt is None:
                    raise PromptError(f"prompt {name.value!r} is missing for language {language!r}")
                if prompt.name != name:
                    raise PromptError(f"prompt {prompt.name!r} is filed as {name.value!r}")
        object.__setattr__(self, "prompts", MappingProxyType(dict(self.prompts)))

    @classmethod
    def load(
        cls,
        directory: Path,
        languages: Iterable[str] = (FALLBACK_LANGUAGE,),
        overrides: Mapping[str, Path] | None = None,
        fallback: str = FALLBACK_LANGUAGE,
    ) -> PromptSet:
        """Read every required prompt for ``languages`` (the fallback language is always loaded).

        ``overrides`` maps ``"<language>/<name>"`` or ``"<name>"`` (every language) to an operator's
        file; relative paths are taken from the working directory.
        """
        wanted = [_check_language(fallback)]
        wanted += [language for language in map(_check_language, languages) if language not in wanted]
        if not directory.is_dir():
            raise PromptError(f"prompt directory {directory} is not a directory")
        for language in wanted:
            if not (directory / language).is_dir():
                raise PromptError(
                    f"no prompts for language {language!r}: {directory / language} is not a directory"
                )

        chosen = _resolve_overrides(overrides or {}, wanted)
        decoded: dict[Path, bytes] = {}

        def make(name: str, language: str | None, path: Path) -> Prompt:
            if path not in decoded:
                decoded[path] = read_pcm(path)
            return Prompt(name=name, language=language, samples=decoded[path], source=path)

        prompts: dict[tuple[str, str], Prompt] = {}
        missing: list[tuple[str, str]] = []
        for language in wanted:
            for name in map(str, PromptName):
                override = chosen.get((language, name))
                if override is not None:
                    prompts[language, name] = make(name, language, override)
                    continue
                found = _find(directory / language, name)
                if found is not None:
                    prompts[language, name] = make(name, language, found)
                    continue
                found = _find(directory / COMMON_DIRECTORY, name)
                if found is not None:
                    # One decoded copy serves every language.
                    prompts[language, name] = make(name, None, found)
                elif language == fallback:
                    raise PromptError(
                        f"prompt {name!r} is missing for language {fallback!r}: no {name}"
                        f"{'/'.join(PROMPT_EXTENSIONS)} in {directory / language}"
                        f" or {directory / COMMON_DIRECTORY}"
                    )
                else:
                    missing.append((language, name))
        for language, absent in missing:
            logger.warning("no '%s' prompt in '%s': the '%s' one stands in", absent, language, fallback)
            prompts[language, absent] = prompts[fallback, absent]
        logger.info(
            "prompts for %s: %d files decoded from %s, %d stand-ins from the fallback language",
            ", ".join(wanted),
            len(decoded),
            directory,
            len(missing),
        )
        return cls(fallback=fallback, languages=tuple(wanted), prompts=prompts, fallbacks=frozenset(missing))

    def prompt(self, name: str, language: str | None = None) -> Prompt:
        """The prompt ``name`` in ``language``; the fallback language's when that language is not loaded."""
        try:
            PromptName(name)
        except ValueError:
            raise PromptError(f"unknown prompt {name!r}") from None
        if language is None or language not in self.languages:
            if language is not None:
                logger.debug("language %r is not loaded: prompt %r in %r", language, name, self.fallback)
            language = self.fallback
        return self.prompts[language, name]


def _find(folder: Path, name: str) -> Path | None:
    """The one file for ``name`` in ``folder``, by PROMPT_EXTENSIONS; two candidates are ambiguous."""
    found = [folder / f"{name}{extension}" for extension in PROMPT_EXTENSIONS]
    found = [path for path in found if path.exists()]
    if len(found) > 1:
        raise PromptError(f"prompt {name!r} is ambiguous: {', '.join(str(path) for path in found)}")
    return found[0] if found else None


def _resolve_overrides(overrides: Mapping[str, Path], languages: list[str]) -> dict[tuple[str, str], Path]:
    """Expand override keys to ``(language, name)``; a language-specific key beats a bare name."""
    names = {name.value for name in PromptName}
    chosen: dict[tuple[str, str], Path] = {}
    specific: set[tuple[str, str]] = set()
    for key, path in overrides.items():
        language, slash, name = key.rpartition("/")
        if name not in names:
            raise PromptError(f"override {key!r}: unknown prompt {name!r}")
        if not slash:
            for each in languages:
                if (each, name) not in specific:
                    chosen[each, name] = Path(path)
            continue
        if language not in languages:
            raise PromptError(
                f"override {key!r}: language {language!r} is not loaded (loaded: {', '.join(languages)})"
            )
        chosen[language, name] = Path(path)
        specific.add((language, name))
    return chosen
