"""The shipped IVR prompt set (ivr_prompts/) and its loader, rtp.prompts (PRODUCT.md §4)."""

from __future__ import annotations

import cmath
import hashlib
import importlib.util
import itertools
import math
import struct
import sys
import tomllib
import wave
from array import array
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtp.prompts import (
    FALLBACK_LANGUAGE,
    MAX_PROMPT_SECONDS,
    SAMPLE_RATE,
    Prompt,
    PromptError,
    PromptName,
    PromptSet,
    read_pcm,
    shipped_directory,
)

PROMPTS = Path(__file__).parent.parent / "ivr_prompts"
LANGUAGES = ("en", "es")
SPEECH = [name for name in PromptName if name is not PromptName.HOLD_MUSIC]

# The level window a telephone prompt must sit in (ITU-T P.56 active level, dBFS), the peak ceiling the
# generator promises, and its padding: see ivr_prompts/generate.py.
LEVEL_WINDOW_DBFS = (-20.0, -16.0)
PEAK_CEILING = round(32768 * 10 ** (-1.0 / 20)) + 1
LEAD_SILENCE_SAMPLES = 800  # 100 ms
TRAIL_SILENCE_SAMPLES = 1600  # 200 ms


def samples_of(pcm: bytes) -> array[int]:
    values = array("h", pcm)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def read_wav(path: Path) -> tuple[tuple[int, int, int, str], array[int]]:
    with wave.open(str(path), "rb") as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getcomptype())
        return params, samples_of(wav.readframes(wav.getnframes()))


def active_level_dbfs(samples: Sequence[int]) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest, in dBFS (full-scale square = 0)."""
    frame = SAMPLE_RATE // 50
    levels = []
    for start in range(0, len(samples), frame):
        chunk = samples[start : start + frame]
        levels.append(math.sqrt(sum(x * x for x in chunk) / len(chunk)) / 32768)
    floor = max(levels) * 10 ** (-30 / 20)
    active = [level for level in levels if level >= floor]
    return 20 * math.log10(math.sqrt(sum(level * level for level in active) / len(active)))


def zero_crossings(samples: Sequence[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))


def high_band_share(segment: Sequence[int], above_hz: float = 2600.0) -> float:
    """Share of a Hann-windowed segment's energy above ``above_hz`` (a plain DFT: segments are short)."""
    count = len(segment)
    windowed = [x * (0.5 - 0.5 * math.cos(2 * math.pi * i / (count - 1))) for i, x in enumerate(segment)]
    total = high = 0.0
    for k in range(count // 2 + 1):
        energy = abs(sum(x * cmath.exp(-2j * math.pi * k * i / count) for i, x in enumerate(windowed))) ** 2
        total += energy
        if k * SAMPLE_RATE / count >= above_hz:
            high += energy
    return high / total


def shipped_file(language: str, name: str) -> Path:
    if name == PromptName.HOLD_MUSIC:
        return PROMPTS / "common" / f"{name}.wav"
    return PROMPTS / language / f"{name}.wav"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ivr_prompts_generate", PROMPTS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the shipped set ------------------------------------------------------------------------------


def test_the_loader_finds_the_shipped_set() -> None:
    assert shipped_directory() == PROMPTS.resolve()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_required_prompt_ships(language: str) -> None:
    missing = [name.value for name in PromptName if not shipped_file(language, name).is_file()]
    assert missing == []


@pytest.mark.parametrize(("language", "name"), [(lang, name) for lang in LANGUAGES for name in PromptName])
def test_shipped_prompt_is_telephone_audio_at_level(language: str, name: PromptName) -> None:
    params, samples = read_wav(shipped_file(language, name))
    assert params == (1, 2, 8000, "NONE")
    assert len(samples) >= SAMPLE_RATE // 2
    peak = max(abs(x) for x in samples)
    assert peak <= PEAK_CEILING, f"peak {20 * math.log10(peak / 32768):.2f} dBFS"
    low, high = LEVEL_WINDOW_DBFS
    assert low <= active_level_dbfs(samples) <= high


@pytest.mark.parametrize(("language", "name"), [(lang, name) for lang in LANGUAGES for name in SPEECH])
def test_spoken_prompt_has_the_standard_padding(language: str, name: PromptName) -> None:
    _, samples = read_wav(shipped_file(language, name))
    assert not any(samples[:LEAD_SILENCE_SAMPLES])
    assert not any(samples[-TRAIL_SILENCE_SAMPLES:])
    # The voice starts and ends right at the padding: the synthesiser's own silence was trimmed.
    assert any(samples[LEAD_SILENCE_SAMPLES : LEAD_SILENCE_SAMPLES + 80])
    assert any(samples[-TRAIL_SILENCE_SAMPLES - 80 : -TRAIL_SILENCE_SAMPLES])


def test_hold_music_is_a_loop_of_20_to_30_seconds() -> None:
    _, samples = read_wav(PROMPTS / "common" / "hold_music.wav")
    assert 20 <= len(samples) / SAMPLE_RATE <= 30
    # Loops without a click: the music holds nothing above 2 kHz, and a jump where the end meets the
    # start would splash energy across the band. Across the loop point it stays as clean as inside.
    join = [*samples[-32:], *samples[:32]]
    assert high_band_share(join) < 1e-4
    assert high_band_share(samples[SAMPLE_RATE - 32 : SAMPLE_RATE + 32]) < 1e-4
    # The check can see a click: the same end against a point in mid-phrase.
    assert high_band_share([*samples[-32:], *samples[1003:1035]]) > 1e-3
    # No DC, which would waste headroom and thump at the loop point.
    assert abs(sum(samples) / len(samples)) < 10


def test_shipped_set_size_is_reasonable() -> None:
    total = sum(path.stat().st_size for path in PROMPTS.glob("*/*.wav"))
    assert total < 5_000_000


def test_prompt_names_agree_with_texts_and_readme() -> None:
    with (PROMPTS / "prompts.toml").open("rb") as file:
        source = tomllib.load(file)
    assert set(source["voices"]) == set(LANGUAGES)
    assert set(source["prompts"]) | {"hold_music"} == {name.value for name in PromptName}
    readme = (PROMPTS / "README.md").read_text(encoding="utf-8")
    assert [name.value for name in PromptName if f"`{name.value}`" not in readme] == []


def test_every_wav_is_what_generate_py_made_from_prompts_toml() -> None:
    """A text or setting changed without regenerating, or a WAV edited by hand, fails here."""
    generator = load_generator()
    voices, texts = generator.load_source(PROMPTS / "prompts.toml")
    with (PROMPTS / "manifest.toml").open("rb") as file:
        manifest = tomllib.load(file)["files"]
    expected = {
        f"{language}/{name}.wav": generator.speech_digest(voices[language], text)
        for name, by_language in texts.items()
        for language, text in by_language.items()
    }
    expected["common/hold_music.wav"] = generator.music_digest()
    on_disk = {str(path.relative_to(PROMPTS)) for path in PROMPTS.glob("*/*.wav")}
    assert on_disk == set(expected) == set(manifest)
    for relative, recipe in expected.items():
        assert manifest[relative]["recipe"] == recipe, (
            f"{relative}: regenerate (python3 ivr_prompts/generate.py)"
        )
        digest = hashlib.sha256((PROMPTS / relative).read_bytes()).hexdigest()
        assert manifest[relative]["sha256"] == digest, f"{relative} differs from what generate.py wrote"


def test_load_shipped_set_in_both_languages() -> None:
    prompts = PromptSet.load(PROMPTS, LANGUAGES)
    assert prompts.languages == LANGUAGES
    assert prompts.fallbacks == frozenset()
    for language in LANGUAGES:
        for name in PromptName:
            prompt = prompts.prompt(name, language)
            _, samples = read_wav(shipped_file(language, name))
            assert samples_of(prompt.samples) == samples
            assert prompt.duration == len(samples) / SAMPLE_RATE
            assert prompt.language == (None if name is PromptName.HOLD_MUSIC else language)
    # Words differ between the languages; the hold music is one decoded copy.
    assert prompts.prompt("goodbye", "en").samples != prompts.prompt("goodbye", "es").samples
    assert prompts.prompt("hold_music", "en").samples is prompts.prompt("hold_music", "es").samples


def test_language_not_loaded_gets_the_fallback() -> None:
    prompts = PromptSet.load(PROMPTS, ["es"])
    assert prompts.languages == ("en", "es")
    assert prompts.prompt("muted", "de").language == "en"
    assert prompts.prompt("muted").language == "en"
    assert prompts.prompt("muted", "es").language == "es"


def test_unknown_prompt_name() -> None:
    prompts = PromptSet.load(PROMPTS)
    with pytest.raises(PromptError) as caught:
        prompts.prompt("welcome", "en")
    assert str(caught.value) == "unknown prompt 'welcome'"


# --- operator overrides in other formats ----------------------------------------------------------

TONE_HZ = 1000.0
TONE_SECONDS = 1.5


def write_tone(
    path: Path, codec: str, container: str, rate: int, layout: str, options: dict[str, str] | None = None
) -> None:
    """A 1 kHz sine at half scale, encoded by PyAV: what an operator's recording stands in for."""
    channels = 2 if layout == "stereo" else 1
    total = round(rate * TONE_SECONDS)
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout, options=options or {})
        assert isinstance(stream, av.AudioStream)
        for start in range(0, total, 960):
            count = min(960, total - start)
            values = array(
                "h",
                (
                    round(16000 * math.sin(2 * math.pi * TONE_HZ * (start + i) / rate))
                    for i in range(count)
                    for _ in range(channels)
                ),
            )
            if sys.byteorder == "big":
                values.byteswap()
            frame = av.AudioFrame(format="s16", layout=layout, samples=count)
            frame.planes[0].update(values.tobytes())
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


OPERATOR_FORMATS = {
    "mp3 44.1 kHz stereo": ("goodbye.mp3", "libmp3lame", "mp3", 44100, "stereo", None),
    # FFmpeg's own Vorbis encoder is marked experimental; decoding is what is under test.
    "ogg vorbis 44.1 kHz stereo": (
        "goodbye.ogg",
        "vorbis",
        "ogg",
        44100,
        "stereo",
        {"strict": "experimental"},
    ),
    "ogg opus 48 kHz mono": ("goodbye.opus", "libopus", "ogg", 48000, "mono", None),
    "wav 44.1 kHz stereo": ("goodbye.wav", "pcm_s16le", "wav", 44100, "stereo", None),
    "wav 16 kHz mono": ("goodbye.wav", "pcm_s16le", "wav", 16000, "mono", None),
}


@pytest.mark.parametrize("kind", OPERATOR_FORMATS)
def test_operator_file_comes_out_8khz_mono_with_its_length_and_pitch(tmp_path: Path, kind: str) -> None:
    filename, codec, container, rate, layout, options = OPERATOR_FORMATS[kind]
    path = tmp_path / filename
    write_tone(path, codec, container, rate, layout, options)
    prompts = PromptSet.load(PROMPTS, LANGUAGES, overrides={"en/goodbye": path})
    prompt = prompts.prompt("goodbye", "en")
    assert prompt.source == path
    assert abs(prompt.duration - TONE_SECONDS) <= 0.020
    samples = samples_of(prompt.samples)
    # Away from the codec's edges, a 1 kHz tone crosses zero 2,000 times a second.
    middle = samples[SAMPLE_RATE // 10 : -SAMPLE_RATE // 10]
    expected = 2 * TONE_HZ * len(middle) / SAMPLE_RATE
    assert abs(zero_crossings(middle) - expected) <= expected * 0.01
    # Mono means a mixdown, not one channel twice: half scale in, about half scale out.
    assert 12000 <= max(middle) <= 20000
    # Only English was replaced.
    assert prompts.prompt("goodbye", "es").source == PROMPTS / "es" / "goodbye.wav"


def test_bare_override_replaces_every_language_and_a_specific_one_wins(tmp_path: Path) -> None:
    music, spanish = tmp_path / "music.wav", tmp_path / "espera.wav"
    write_tone(music, "pcm_s16le", "wav", 22050, "mono")
    write_tone(spanish, "pcm_s16le", "wav", 8000, "mono")
    for overrides in (
        {"hold_music": music, "es/hold_music": spanish},
        {"es/hold_music": spanish, "hold_music": music},
    ):
        prompts = PromptSet.load(PROMPTS, LANGUAGES, overrides=overrides)
        assert prompts.prompt("hold_music", "en").source == music
        assert prompts.prompt("hold_music", "es").source == spanish
        assert prompts.prompt("hold_music", "es").language == "es"


def test_telephone_wav_is_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "exact.wav"
    write_tone(path, "pcm_s16le", "wav", 8000, "mono")
    _, samples = read_wav(path)
    assert samples_of(read_pcm(path)) == samples


# --- errors ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.mp3"
    with pytest.raises(PromptError) as caught:
        PromptSet.load(PROMPTS, overrides={"en/goodbye": path})
    assert str(caught.value) == f"cannot read prompt file {path}: no such file"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as caught:
        read_pcm(tmp_path)
    assert str(caught.value) == f"cannot read prompt file {tmp_path}: not a regular file"


INVALID_DATA = "Invalid data found when processing input"
CORRUPT = {
    "text named .mp3": ("bad.mp3", b"this is not audio at all\n" * 10, INVALID_DATA),
    "cut WAV header": (
        "bad.wav",
        b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00",
        INVALID_DATA,
    ),
    "FLAC marker, no stream": ("bad.flac", b"fLaC" + bytes(300), INVALID_DATA),
    "OGG page marker, then noise": ("bad.ogg", b"OggS" + bytes(range(256)) * 2, "End of file"),
    "empty": ("empty.ogg", b"", "End of file"),
    "a picture": ("picture.ogg", b"\x89PNG\r\n\x1a\n" + bytes(100), "it has no audio stream"),
}


@pytest.mark.parametrize("kind", CORRUPT)
def test_corrupt_file(tmp_path: Path, kind: str) -> None:
    filename, content, reason = CORRUPT[kind]
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(PromptError) as caught:
        PromptSet.load(PROMPTS, overrides={"connecting": path})
    assert str(caught.value) == f"cannot read prompt file {path}: {reason}"


def test_wav_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
    with pytest.raises(PromptError) as caught:
        read_pcm(path)
    assert str(caught.value) == f"cannot read prompt file {path}: it holds no audio"


def _write_long_wav(path: Path, rate: int, width: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(bytes([128]) * (rate * width * (MAX_PROMPT_SECONDS + 1)))


@pytest.mark.parametrize(("rate", "width"), [(8000, 2), (4000, 1)], ids=["telephone wav", "decoded wav"])
def test_too_long(tmp_path: Path, rate: int, width: int) -> None:
    path = tmp_path / "long.wav"
    _write_long_wav(path, rate, width)
    with pytest.raises(PromptError) as caught:
        read_pcm(path)
    assert str(caught.value) == f"cannot read prompt file {path}: longer than {MAX_PROMPT_SECONDS} s"


def test_prompt_value_checks() -> None:
    source = Path("x.wav")
    with pytest.raises(PromptError) as caught:
        Prompt(name="goodbye", language="en", samples=b"\x01\x02\x03", source=source)
    assert (
        str(caught.value) == "prompt 'goodbye' from x.wav has 3 bytes: not a whole number of 2-byte samples"
    )
    with pytest.raises(PromptError) as caught:
        Prompt(name="goodbye", language="en", samples=b"", source=source)
    assert str(caught.value) == "prompt 'goodbye' from x.wav is empty"
    assert Prompt(name="goodbye", language="en", samples=bytes(16000), source=source).duration == 1.0
    assert "samples" not in repr(Prompt(name="goodbye", language="en", samples=bytes(2), source=source))


def test_prompt_samples_as_integers() -> None:
    prompt = Prompt(name="muted", language="en", samples=b"\x01\x00\xff\xff\x00\x80", source=Path("m.wav"))
    assert prompt.as_array() == array("h", [1, -1, -32768])
    assert prompt.sample_count == 3


def test_digit_prompts() -> None:
    assert [PromptName.for_digit(d) for d in "0369"] == ["digit_0", "digit_3", "digit_6", "digit_9"]
    for bad in ("#", "10", "", "٣"):
        with pytest.raises(PromptError) as caught:
            PromptName.for_digit(bad)
        assert str(caught.value) == f"no prompt for digit {bad!r}: only 0-9 are spoken"


# --- a hand-made prompt directory: completeness, fallback, overrides ------------------------------


def make_directory(root: Path, contents: dict[str, Sequence[str]]) -> Path:
    """A prompt directory with a 50 ms tone for each listed name, per language (or "common")."""
    for folder, names in contents.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            with wave.open(str(root / folder / f"{name}.wav"), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                wav.writeframes(array("h", [1000, -1000] * 200).tobytes())
    return root


ALL_WORDS = [name.value for name in SPEECH]


def test_missing_prompt_in_the_fallback_language(tmp_path: Path) -> None:
    directory = make_directory(
        tmp_path, {"en": [n for n in ALL_WORDS if n != "goodbye"], "common": ["hold_music"]}
    )
    with pytest.raises(PromptError) as caught:
        PromptSet.load(directory)
    assert str(caught.value) == (
        f"prompt 'goodbye' is missing for language 'en': no goodbye.wav/.mp3/.ogg/.oga/.opus/.flac "
        f"in {directory / 'en'} or {directory / 'common'}"
    )


def test_other_language_falls_back_prompt_by_prompt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = make_directory(tmp_path, {"en": ALL_WORDS, "common": ["hold_music"], "fr": ["muted"]})
    prompts = PromptSet.load(directory, ["fr"])
    assert prompts.prompt("muted", "fr").language == "fr"
    assert prompts.prompt("goodbye", "fr").language == "en"
    assert prompts.prompt("goodbye", "fr") is prompts.prompt("goodbye", "en")
    assert prompts.fallbacks == {("fr", name) for name in ALL_WORDS if name != "muted"}
    assert "no 'goodbye' prompt in 'fr': the 'en' one stands in" in caplog.text


def test_a_language_file_beats_common(tmp_path: Path) -> None:
    directory = make_directory(tmp_path, {"en": [*ALL_WORDS, "hold_music"], "common": ["hold_music"]})
    assert PromptSet.load(directory).prompt("hold_music").source == directory / "en" / "hold_music.wav"


def test_another_fallback_language(tmp_path: Path) -> None:
    directory = make_directory(tmp_path, {"es": [*ALL_WORDS, "hold_music"]})
    prompts = PromptSet.load(directory, [], fallback="es")
    assert prompts.languages == ("es",)
    assert prompts.prompt("goodbye", "en").language == "es"


def test_override_fills_a_prompt_the_directory_lacks(tmp_path: Path) -> None:
    directory = make_directory(
        tmp_path, {"en": [n for n in ALL_WORDS if n != "goodbye"], "common": ["hold_music"]}
    )
    mine = tmp_path / "bye.wav"
    write_tone(mine, "pcm_s16le", "wav", 8000, "mono")
    assert PromptSet.load(directory, overrides={"goodbye": mine}).prompt("goodbye").source == mine


def test_two_files_for_one_prompt(tmp_path: Path) -> None:
    directory = make_directory(tmp_path, {"en": ALL_WORDS, "common": ["hold_music"]})
    (directory / "en" / "goodbye.mp3").write_bytes(b"")
    with pytest.raises(PromptError) as caught:
        PromptSet.load(directory)
    assert str(caught.value) == (
        f"prompt 'goodbye' is ambiguous: {directory / 'en' / 'goodbye.wav'}, {directory / 'en' / 'goodbye.mp3'}"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"welcome": Path("w.wav")}, "override 'welcome': unknown prompt 'welcome'"),
        ({"en/Goodbye": Path("w.wav")}, "override 'en/Goodbye': unknown prompt 'Goodbye'"),
        (
            {"de/goodbye": Path("w.wav")},
            "override 'de/goodbye': language 'de' is not loaded (loaded: en, es)",
        ),
    ],
)
def test_bad_override_key(overrides: dict[str, Path], message: str) -> None:
    with pytest.raises(PromptError) as caught:
        PromptSet.load(PROMPTS, LANGUAGES, overrides=overrides)
    assert str(caught.value) == message


def test_language_without_directory(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as caught:
        PromptSet.load(PROMPTS, ["fr"])
    assert str(caught.value) == f"no prompts for language 'fr': {PROMPTS / 'fr'} is not a directory"
    with pytest.raises(PromptError) as caught:
        PromptSet.load(tmp_path / "nothing")
    assert str(caught.value) == f"prompt directory {tmp_path / 'nothing'} is not a directory"


@pytest.mark.parametrize("language", ["../etc", "common", "EN", "", "en/us"])
def test_invalid_language_tag(language: str) -> None:
    with pytest.raises(PromptError) as caught:
        PromptSet.load(PROMPTS, [language])
    assert str(caught.value) == (
        f"invalid language tag {language!r}: expected a BCP 47 tag such as 'en' or 'pt-BR'"
    )


def test_prompt_set_checks_completeness() -> None:
    prompts = PromptSet.load(PROMPTS)
    partial = {key: value for key, value in prompts.prompts.items() if key[1] != PromptName.MUTED}
    with pytest.raises(PromptError) as caught:
        PromptSet(fallback=FALLBACK_LANGUAGE, languages=("en",), prompts=partial)
    assert str(caught.value) == "prompt 'muted' is missing for language 'en'"
    with pytest.raises(PromptError) as caught:
        PromptSet(fallback="es", languages=("en",), prompts=prompts.prompts)
    assert str(caught.value) == "the fallback language 'es' is not loaded"


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=2048), suffix=st.sampled_from([".wav", ".mp3", ".ogg", ".flac"]))
def test_arbitrary_bytes_raise_only_prompt_error(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        pcm = read_pcm(path)
    except PromptError as error:
        assert str(path) in str(error)
    else:
        assert pcm and len(pcm) % 2 == 0


@st.composite
def wav_like(draw: st.DrawFn) -> bytes:
    """A RIFF/WAVE file with arbitrary fmt fields and a data chunk whose size may lie."""
    fmt = struct.pack(
        "<HHIIHH",
        draw(st.sampled_from([1, 3, 6, 7, 0xFFFE]) | st.integers(0, 0xFFFF)),
        draw(st.integers(0, 3)),
        draw(st.sampled_from([0, 1, 8000, 44100]) | st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 8)),
        draw(st.sampled_from([0, 8, 16, 24, 32]) | st.integers(0, 0xFFFF)),
    )
    data = draw(st.binary(max_size=512))
    claimed = draw(st.sampled_from([len(data), 0, 2**32 - 1]) | st.integers(0, 2**32 - 1))
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", claimed) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=wav_like())
def test_arbitrary_wav_headers_raise_only_prompt_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(content)
    try:
        pcm = read_pcm(path)
    except PromptError as error:
        assert str(path) in str(error)
    else:
        assert pcm and len(pcm) % 2 == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(-32768, 32767), min_size=1, max_size=2000))
def test_telephone_wav_round_trip(tmp_path: Path, values: list[int]) -> None:
    path = tmp_path / "round.wav"
    pcm = array("h", values)
    if sys.byteorder == "big":
        pcm.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm.tobytes())
    assert samples_of(read_pcm(path)).tolist() == values
