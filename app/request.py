"""What a user asks ``SongGenerator`` for, checked before any model runs (DESIGN.md §1, §9).

``make_request`` turns the raw arguments of ``SongGenerator.generate`` into a ``SongRequest``: the mode, the
normalised lyrics and style, the seed, the sampling settings, an uploaded recording at the model's rate, a
previous song from a manifest, and the section plan (tag, lines and exact length in 25 Hz frames of every
section to sample). Every bad input raises ``InputError`` whose ``field`` names the argument, so the UI can
point at it and the CLI can print one line. Nothing here touches a model, so a request is checked in
milliseconds; the one check that needs the text tokenizer (does the song fit the LM's context?) happens in
``app.pipeline``.

Modes (DESIGN.md §1):

===============  ====================================================  ==========================  =========
mode             what is sampled                                       needs                       lyrics
===============  ====================================================  ==========================  =========
full             vocals and accompaniment                              —                           required
instrumental     accompaniment (and the silent-vocal codes)            —                           optional
a_cappella       both, returned as vocals only                         —                           required
accompany        accompaniment for an uploaded vocal                   ``audio`` (a vocal stem)    optional
sing_over        vocals over an uploaded instrumental                  ``audio`` (an instrumental) required
continue         ``duration`` more seconds after a song                ``audio`` or ``manifest``   optional
resample         one ``track`` (optionally one ``section``) again      ``manifest``                from it
===============  ====================================================  ==========================  =========

Durations: 5–120 s (``DURATION_RANGE``). 5 s is about one short section; 120 s is a whole pop song. The
shipped tiny LM has a 2,048-token context, which holds about 38 s of music, so ``app.pipeline`` refuses longer
songs for it with a message that says the limit; a larger LM lifts that without changing this range.
For ``accompany`` and ``sing_over`` the song is as long as the upload, cut to ``duration``; for ``continue``,
``duration`` is the length of the new part.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from app.manifest import ManifestError, read_manifest, song_from_manifest
from corpus.audio_io import AudioReadError, read_audio, resample
from lm.layout import FRAME_RATE_HZ, SongTokens
from lm.lyrics import INSTRUMENTAL_TAGS, LyricsError, format_lyrics, parse_lyrics

MODES = ("full", "instrumental", "a_cappella", "accompany", "sing_over", "continue", "resample")
SUNG_MODES = frozenset({"full", "a_cappella", "sing_over"})  # these sing the lyrics, so they need words
UPLOAD_MODES = frozenset({"accompany", "sing_over"})  # an uploaded track is kept and the other one sampled
TRACK_NAMES = {"vocal": "vocal", "vocals": "vocal", "accomp": "accomp", "accompaniment": "accomp"}

DURATION_RANGE = (5.0, 120.0)  # seconds; see the module docstring
MAX_SEED = 2**31 - 1  # what a 32-bit signed field (Gradio number, JSON in other tools) keeps exactly
MAX_STYLE_CHARS = 500  # a style prompt is a line of tags, not a paragraph
UPLOAD_SECONDS_RANGE = (2.0, 600.0)  # shorter has no room for a section; longer is a mistake or a whole album
UPLOAD_RATE_RANGE = (8_000, 384_000)
SILENT_PEAK = 10 ** (-60 / 20)  # an upload whose loudest sample is below -60 dBFS holds nothing to keep

# Section lengths, measured on the training corpus (data/tokens/train, 636 songs): a sung section lasts a
# median 0.58 s per syllable (4.5 s per lyric line), no sung section is shorter than 3.1 s; instrumental
# sections last 4.6 s on average; no section is longer than 12 s.
SECONDS_PER_SYLLABLE = 0.55
MIN_SUNG_SECTION_SECONDS = 3.0
INSTRUMENTAL_SECTION_SECONDS = 4.5
UNLABELLED_SECTION_SECONDS = 6.0  # untagged stretches (an uploaded song, lyric-less accompany) are cut this long
LONGEST_TRAINED_SECTION_SECONDS = 12.0
MIN_SECTION_SECONDS = 1.0  # below this a section is a blip: refuse rather than squeeze


class InputError(ValueError):
    """A request that cannot be served, with a message for the person who made it. ``field`` names the
    argument at fault (``"lyrics"``, ``"duration"``, ``"options.top_p"``, …); ``str(error)`` starts with it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


# --- sampling settings ----------------------------------------------------------------------------------------

OPTION_RANGES = {  # inclusive bounds the UI can show as slider limits
    "temperature": (0.0, 2.0),
    "top_k": (1, 4096),
    "top_p": (0.01, 1.0),
    "cfg_scale": (0.0, 10.0),
    "phone_guidance": (0.0, 4.0),
    "decoder_steps": (0, 64),
    "takes": (1, 4),
}


@dataclass(frozen=True)
class SongOptions:
    """Sampling settings of one song. ``temperature`` 0 is greedy; ``top_k`` None and ``top_p`` 1 switch those
    filters off; ``cfg_scale`` 1 is unguided (above 1 follows style and lyrics harder, at twice the LM cost);
    ``decoder_steps`` None is the decoders' own default, 0 their regression estimate without flow steps;
    ``takes`` is how many vocal takes each sung section gets, the one whose words Whisper hears best kept
    (``app.pipeline``; 1 = the first take, no check); ``phone_guidance`` weighs the LM's phone table after each
    phone cue (``lm.phone_prior``; 0 = the LM alone)."""

    # 0.7: over 16 songs (bench.app_lyrics, seeds 0 and 100) Whisper heard more of the lyrics than at 1.0, 0.8 or
    # 0.5 (WER 0.944 / 1.059 / 0.995 / 1.000); at 0.5 the LM fell silent in 2 of 48 sections
    temperature: float = 0.7
    top_k: int | None = 50  # the shipped-LM generation test samples with 50; the whole codebook adds stray codes
    top_p: float = 1.0
    cfg_scale: float = 1.0
    # 1.0: over 16 songs (bench.app_lyrics, seeds 0 and 100) Whisper heard 134 lyric words right against 57 without
    # (0.5: 97, 1.5: 141, 2.0: 136; 1.5 against 1.0 over 24 songs a tie, 207 / 204); at 1.0 the melody changes note
    # about as often as the corpus's (bench.vocal_melody), higher weights more often
    phone_guidance: float = 1.0
    decoder_steps: int | None = None
    # 1: best-of-N costs N times the LM's vocal sampling plus a Whisper pass per take, and the 30 s song must
    # generate faster than real time on a 2-core CPU (issue 7); users who can wait choose more
    takes: int = 1

    def __post_init__(self):
        for name in ("temperature", "top_p", "cfg_scale", "phone_guidance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not math.isfinite(value):
                raise InputError(f"options.{name}", f"must be a number, got {value!r}")
            _in_range(f"options.{name}", float(value), *OPTION_RANGES[name])
            object.__setattr__(self, name, float(value))
        for name in ("top_k", "decoder_steps", "takes"):
            value = getattr(self, name)
            if value is None and name != "takes":  # None: top-k off, the decoders' own steps
                continue
            value = _whole_number(f"options.{name}", value)
            _in_range(f"options.{name}", value, *OPTION_RANGES[name])
            object.__setattr__(self, name, value)

    @classmethod
    def from_any(cls, options) -> SongOptions:
        """``None``, a ``SongOptions`` or a mapping of its fields (unknown keys are refused, not ignored)."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if not isinstance(options, Mapping):
            raise InputError("options", f"expected a mapping of settings, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError("options", f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**options)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _whole_number(name: str, value) -> int:
    """An int, or a float holding one (Gradio number boxes send floats); booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError(name, f"must be a whole number, got {value!r}")
    if isinstance(value, float | np.floating) and not (math.isfinite(value) and float(value).is_integer()):
        raise InputError(name, f"must be a whole number, got {value!r}")
    return int(value)


def _in_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:
        raise InputError(name, f"{value:g}{unit} is out of range; choose {low:g}{unit} to {high:g}{unit}")


# --- the section plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedSection:
    """One section to sample: canonical tag, lyric lines (lower-cased, empty for instrumental and unlabelled
    sections), whether it is ``<no_vocal>``, and its exact length in 25 Hz frames."""

    tag: str
    lines: tuple[str, ...]
    instrumental: bool
    n_frames: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)  # what the LM's text tokenizer reads (lm.layout.song_tokens_from_record)


def count_syllables(line: str) -> int:
    """Vowel groups per word, at least one per word: crude, but section lengths only need proportions."""
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", line.lower())
    return sum(max(1, len(re.findall(r"[aeiouy]+", word))) for word in words)


def spread_frames(weights: list[float], total: int, minimum: int) -> list[int]:
    """Split ``total`` frames in proportion to ``weights`` with at least ``minimum`` each; the parts add up to
    ``total`` exactly (largest remainders get the leftover frames). Needs ``total >= minimum * len(weights)``."""
    count = len(weights)
    shares = np.asarray(weights, dtype=np.float64)
    fixed = np.zeros(count, dtype=bool)
    # A part below the minimum is pinned to it and the rest re-spread: pinning can only push others down.
    while True:
        free = total - minimum * fixed.sum()
        exact = np.where(fixed, minimum, free * shares / shares[~fixed].sum())
        low = ~fixed & (exact < minimum)
        if not low.any():
            break
        fixed |= low
    frames = np.floor(exact).astype(int)
    order = np.argsort(-(exact - frames), kind="stable")
    frames[order[: total - frames.sum()]] += 1
    return frames.tolist()


def plan_sections(parsed_sections: list[tuple[str, tuple[str, ...], bool]], n_frames: int,
                  field_name: str = "duration") -> tuple[list[PlannedSection], list[str]]:
    """Give each ``(tag, lines, instrumental)`` section its share of ``n_frames``: sung sections in proportion to
    their syllables (at least ``MIN_SUNG_SECTION_SECONDS`` worth), instrumental ones a fixed share; then scaled
    so the total is exactly ``n_frames``. Returns the plan and warnings about sections far from the training
    lengths."""
    minimum = round(MIN_SECTION_SECONDS * FRAME_RATE_HZ)
    if n_frames < minimum * len(parsed_sections):
        needed = MIN_SECTION_SECONDS * len(parsed_sections)
        raise InputError(field_name, f"{n_frames / FRAME_RATE_HZ:g} s is too short for {len(parsed_sections)} "
                                     f"sections (at least {needed:g} s); lengthen it or remove sections")
    weights = [INSTRUMENTAL_SECTION_SECONDS if instrumental or not lines
               else max(MIN_SUNG_SECTION_SECONDS, SECONDS_PER_SYLLABLE * sum(map(count_syllables, lines)))
               for _, lines, instrumental in parsed_sections]
    frames = spread_frames(weights, n_frames, minimum)
    plan = [PlannedSection(tag, tuple(lines), instrumental, n)
            for (tag, lines, instrumental), n in zip(parsed_sections, frames, strict=True)]
    warnings = []
    longest = max(plan, key=lambda s: s.n_frames)
    if longest.n_frames > LONGEST_TRAINED_SECTION_SECONDS * FRAME_RATE_HZ * 1.5:
        warnings.append(f"the [{longest.tag}] section gets {longest.n_frames / FRAME_RATE_HZ:.0f} s, far longer than "
                        f"the model's training sections (3–{LONGEST_TRAINED_SECTION_SECONDS:g} s); add sections or "
                        "shorten the duration for a better result")
    squeezed = [s for s in plan if not s.instrumental and s.lines
                and s.n_frames < 0.5 * SECONDS_PER_SYLLABLE * sum(map(count_syllables, s.lines)) * FRAME_RATE_HZ]
    if squeezed:
        warnings.append(f"the [{squeezed[0].tag}] section has {squeezed[0].n_frames / FRAME_RATE_HZ:.1f} s for its "
                        "words, about half what they need sung; lengthen the duration or shorten the lyrics")
    return plan, warnings


def unlabelled_sections(n_frames: int, tag: str = "verse", instrumental: bool = False
                        ) -> list[tuple[str, tuple[str, ...], bool]]:
    """Stretches without lyrics to follow, as sections of about ``UNLABELLED_SECTION_SECONDS``."""
    count = max(1, round(n_frames / (UNLABELLED_SECTION_SECONDS * FRAME_RATE_HZ)))
    return [(tag, (), instrumental)] * count


def instrumental_sections(n_frames: int, with_intro: bool = True) -> list[tuple[str, tuple[str, ...], bool]]:
    """The default form of a song without lyrics: ``intro``, ``inst`` sections, ``outro``, each about as long as
    a training section."""
    count = max(1, round(n_frames / (UNLABELLED_SECTION_SECONDS * FRAME_RATE_HZ)))
    tags = ["inst"] * count
    if count >= 2:
        tags[-1] = "outro"
    if count >= 3 and with_intro:
        tags[0] = "intro"
    return [(tag, (), True) for tag in tags]


# --- the request ----------------------------------------------------------------------------------------------


@dataclass
class Upload:
    """An uploaded recording, mono float32 at the model rate, and what the manifest records about it."""

    samples: np.ndarray
    info: dict


@dataclass
class SongRequest:
    """A checked request. ``sections`` is the plan of what the LM samples (empty for ``resample``);
    ``previous`` is the song a ``continue``/``resample`` builds on (from its manifest)."""

    mode: str
    lyrics: str  # as typed; the manifest keeps it
    lyrics_normalised: str  # lm.lyrics.format_lyrics of what was sung ("" without lyrics)
    style: str  # normalised: lower case, single spaces (the corpus's style prompts are lower case)
    duration: float
    seed: int
    options: SongOptions
    n_frames: int  # frames to sample: the whole song, or the new part for continue (0 for resample)
    sections: list[PlannedSection] = field(default_factory=list)
    upload: Upload | None = None
    previous: dict | None = None  # the manifest a continue/resample builds on
    previous_song: SongTokens | None = None
    track: str | None = None  # "vocal" or "accomp" (resample)
    section: int | None = None  # resample only this section
    warnings: list[str] = field(default_factory=list)

    def inputs(self) -> dict:
        """Every input as given (normalised), for the manifest."""
        return {"mode": self.mode, "lyrics": self.lyrics, "style": self.style, "duration": self.duration,
                "seed": self.seed, "options": self.options.to_dict(), "track": self.track, "section": self.section,
                "upload": None if self.upload is None else self.upload.info}


def _check_text(name: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(name, f"must be text, got {type(value).__name__}")
    return value


def _check_duration(duration) -> float:
    if isinstance(duration, bool) or not isinstance(duration, int | float | np.number) or not math.isfinite(duration):
        raise InputError("duration", f"must be a number of seconds, got {duration!r}")
    _in_range("duration", float(duration), *DURATION_RANGE, unit=" s")
    return float(duration)


def _check_seed(seed) -> int:
    seed = _whole_number("seed", seed)
    if not 0 <= seed <= MAX_SEED:
        raise InputError("seed", f"{seed} is out of range; choose 0 to {MAX_SEED}")
    return seed


def _check_style(style) -> str:
    style = " ".join(_check_text("style", style).split()).lower()
    if len(style) > MAX_STYLE_CHARS:
        raise InputError("style", f"is {len(style)} characters long (at most {MAX_STYLE_CHARS}); keep it to a line "
                                  "of genre, mood, voice and instruments")
    return style


def _parse(lyrics: str, mode: str):
    """``lm.lyrics.parse_lyrics`` for this mode, or None for empty lyrics where the mode allows them."""
    if not lyrics.strip() and mode not in SUNG_MODES:
        return None
    try:
        return parse_lyrics(lyrics, require_vocals=mode in SUNG_MODES)
    except LyricsError as error:
        raise InputError("lyrics", str(error)) from None


def load_upload(audio, audio_rate, sample_rate: int) -> Upload:
    """An upload as a path, a ``(rate, samples)`` pair (Gradio's numpy audio) or an array with ``audio_rate``
    -> mono float32 at ``sample_rate``, checked for length, rate, silence and bad samples."""
    source = "array"
    if isinstance(audio, str | Path):
        source = Path(audio).name
        try:
            samples, rate = read_audio(audio)
        except (AudioReadError, OSError) as error:
            raise InputError("audio", f"cannot read the uploaded file ({error})") from None
    else:
        if isinstance(audio, tuple) and len(audio) == 2 and not isinstance(audio[0], np.ndarray):
            rate, samples = audio
            if audio_rate is not None and audio_rate != rate:
                raise InputError("audio_rate", f"{audio_rate} differs from the rate {rate} given with the audio")
        else:
            rate, samples = audio_rate, audio
        if rate is None:
            raise InputError("audio_rate", "give the sample rate of the uploaded samples")
        samples = np.asarray(samples)
        if samples.dtype.kind == "i":  # integer PCM (Gradio sends int16): scale to [-1, 1)
            samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
        elif samples.dtype.kind != "f":
            raise InputError("audio", f"expected audio samples, got an array of {samples.dtype}")
        if samples.ndim == 2:  # [channels, N] or [N, channels]: average the channels
            samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1)
        if samples.ndim != 1:
            raise InputError("audio", f"expected mono or stereo samples, got an array of shape {samples.shape}")
    rate = _whole_number("audio_rate", rate)
    if not UPLOAD_RATE_RANGE[0] <= rate <= UPLOAD_RATE_RANGE[1]:
        raise InputError("audio_rate", f"{rate} Hz is not an audio rate ({UPLOAD_RATE_RANGE[0]:,}–"
                                       f"{UPLOAD_RATE_RANGE[1]:,} Hz)")
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise InputError("audio", "the upload contains NaN or infinite samples")
    seconds = len(samples) / rate
    low, high = UPLOAD_SECONDS_RANGE
    if not low <= seconds <= high:
        raise InputError("audio", f"the upload lasts {seconds:.1f} s; it must last {low:g} s to {high:g} s")
    peak = float(np.abs(samples).max())
    if peak < SILENT_PEAK:
        raise InputError("audio", f"the upload is silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS)")
    info = {"source": source, "sample_rate": rate, "seconds": round(seconds, 3), "peak": round(peak, 4)}
    return Upload(resample(samples, rate, sample_rate).astype(np.float32, copy=False), info)


def make_request(lyrics, style, duration=30.0, seed=0, mode="full", options=None, *, audio=None, audio_rate=None,
                 manifest=None, section=None, track=None, sample_rate: int = 24_000,
                 samples_per_frame: int = 960) -> SongRequest:
    """Check every argument of ``SongGenerator.generate`` (same meaning) and plan the sections; raises
    ``InputError``. ``sample_rate`` and ``samples_per_frame`` are the tokenizer's (uploads are resampled to
    the first; the second turns upload lengths into frames)."""
    if not isinstance(mode, str) or mode not in MODES:
        raise InputError("mode", f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    lyrics, style = _check_text("lyrics", lyrics), _check_style(style)
    duration, seed, options = _check_duration(duration), _check_seed(seed), SongOptions.from_any(options)

    # which extra inputs the mode takes
    wants_upload = mode in UPLOAD_MODES or (mode == "continue" and manifest is None)
    wants_manifest = mode == "resample" or (mode == "continue" and audio is None)
    if audio is not None and not wants_upload:
        raise InputError("audio", f"mode {mode!r} takes no upload" + (
            "; give either an upload or a manifest to continue, not both" if mode == "continue" else ""))
    if audio is None and wants_upload and mode != "continue":
        wanted = "the vocal to accompany" if mode == "accompany" else "the instrumental to sing over"
        raise InputError("audio", f"mode {mode!r} needs an upload: {wanted}")
    if manifest is not None and not wants_manifest:
        raise InputError("manifest", f"mode {mode!r} takes no manifest (only continue and resample do)")
    if mode in ("continue", "resample") and audio is None and manifest is None:
        raise InputError("manifest", f"mode {mode!r} needs the manifest of a previous song"
                                     + (" or an uploaded song" if mode == "continue" else ""))
    if mode != "resample" and (track is not None or section is not None):
        raise InputError("track" if track is not None else "section", "only applies to mode 'resample'")

    request = SongRequest(mode, lyrics, "", style, duration, seed, options, round(duration * FRAME_RATE_HZ))
    if audio is not None:
        request.upload = load_upload(audio, audio_rate, sample_rate)
    if manifest is not None:
        try:
            request.previous = read_manifest(manifest)
            request.previous_song = song_from_manifest(request.previous)
        except ManifestError as error:
            raise InputError("manifest", str(error)) from None

    if mode == "resample":
        return _resample_request(request, track, section)
    if request.upload is not None and mode in UPLOAD_MODES:
        upload_frames = len(request.upload.samples) // samples_per_frame
        if upload_frames < request.n_frames:
            request.duration = upload_frames / FRAME_RATE_HZ
        elif upload_frames > request.n_frames:
            request.warnings.append(f"the upload lasts {request.upload.info['seconds']:g} s; only its first "
                                    f"{duration:g} s are used (raise the duration to use more)")
        request.n_frames = min(request.n_frames, upload_frames)

    if mode == "continue" and request.previous is not None:
        _keep_previous_style(request)
    parsed = _parse(lyrics, mode)
    if parsed is not None:
        request.warnings.extend(parsed.warnings)
        sections = [(s.tag, tuple(s.lines), s.is_instrumental) for s in parsed.sections]
        if mode == "instrumental":
            if parsed.has_words:
                request.warnings.append("instrumental mode: the lyrics give the song's form; their words are not sung")
            sections = [(tag if tag in INSTRUMENTAL_TAGS else "inst", (), True) for tag, _, _ in sections]
        request.lyrics_normalised = format_lyrics(parsed) if parsed.has_words else ""
    elif mode == "accompany":  # the vocal sings words we do not know: untagged sung sections, no text
        sections = unlabelled_sections(request.n_frames)
    else:  # instrumental, or continue without lyrics: an instrumental form
        sections = instrumental_sections(request.n_frames, with_intro=mode != "continue")
    request.sections, plan_warnings = plan_sections(sections, request.n_frames,
                                                    "audio" if mode in UPLOAD_MODES else "duration")
    request.warnings.extend(plan_warnings)
    return request


def _resample_request(request: SongRequest, track, section) -> SongRequest:
    previous, song = request.previous, request.previous_song
    if not isinstance(track, str) or track not in TRACK_NAMES:
        raise InputError("track", f"choose the track to re-sample: {', '.join(TRACK_NAMES)}; got {track!r}")
    request.track = TRACK_NAMES[track]
    if section is not None:
        section = _whole_number("section", section)
        if not 0 <= section < len(song.sections):
            raise InputError("section", f"{section} is out of range: the song has {len(song.sections)} sections "
                                        f"(0 to {len(song.sections) - 1})")
    request.section = section
    # lyrics and style are the previous song's: its tokens were sampled under them
    given_lyrics = request.lyrics
    request.lyrics = str(previous["inputs"].get("lyrics", ""))
    request.lyrics_normalised = str(previous.get("lyrics_normalised", ""))
    if given_lyrics.strip() and given_lyrics.strip() != request.lyrics.strip():
        request.warnings.append("resample keeps the previous song's lyrics; the lyrics given here are ignored")
    _keep_previous_style(request)
    request.duration = song.n_frames / FRAME_RATE_HZ
    request.n_frames = 0
    return request


def _keep_previous_style(request: SongRequest) -> None:
    """A continued or re-sampled song keeps the style it was sampled under (the LM prompt starts with it)."""
    previous_style = _check_style(request.previous["inputs"].get("style", ""))
    if request.style and request.style != previous_style:
        request.warnings.append(f"{request.mode} keeps the previous song's style ({previous_style!r}); "
                                "the style given here is ignored")
    request.style = previous_style
