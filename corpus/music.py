"""Musical content of a procedural song: genres, keys, chord progressions, song structure and the vocal
melody. Everything here is symbolic (times in seconds, pitches as MIDI numbers) and drawn from one
``numpy.random.Generator``, so a seed fixes the whole song (reference/libraries.md §4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

# Chord qualities as intervals above the root.
CHORD_INTERVALS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "sus4": (0, 5, 7),
}
CHORD_SUFFIX = {"maj": "", "min": "m", "dim": "dim", "7": "7", "maj7": "maj7", "min7": "m7", "sus4": "sus4"}

# Progressions as (scale degree 0-6, quality) per bar. Common pop/rock/jazz/blues progressions with the
# usual minor-key substitutions; one is drawn per section so verse and chorus differ.
MAJOR_PROGRESSIONS = (
    ((0, "maj"), (4, "maj"), (5, "min"), (3, "maj")),  # I V vi IV
    ((5, "min"), (3, "maj"), (0, "maj"), (4, "maj")),  # vi IV I V
    ((0, "maj"), (3, "maj"), (4, "maj"), (3, "maj")),  # I IV V IV
    ((0, "maj"), (5, "min"), (3, "maj"), (4, "maj")),  # I vi IV V (doo-wop)
    ((3, "maj"), (0, "maj"), (4, "maj"), (5, "min")),  # IV I V vi
    ((0, "maj"), (4, "maj"), (3, "maj"), (3, "maj")),  # I V IV IV
    ((0, "maj"), (2, "min"), (3, "maj"), (4, "sus4")),  # I iii IV Vsus
)
MINOR_PROGRESSIONS = (
    ((0, "min"), (5, "maj"), (2, "maj"), (6, "maj")),  # i VI III VII
    ((0, "min"), (3, "min"), (4, "min"), (0, "min")),  # i iv v i
    ((0, "min"), (6, "maj"), (5, "maj"), (6, "maj")),  # i VII VI VII
    ((0, "min"), (5, "maj"), (3, "min"), (4, "7")),  # i VI iv V7 (harmonic minor cadence)
    ((5, "maj"), (6, "maj"), (0, "min"), (0, "min")),  # VI VII i i
)
JAZZ_PROGRESSIONS = (
    ((1, "min7"), (4, "7"), (0, "maj7"), (0, "maj7")),  # ii7 V7 Imaj7
    ((0, "maj7"), (5, "min7"), (1, "min7"), (4, "7")),  # I vi ii V turnaround
    ((2, "min7"), (5, "min7"), (1, "min7"), (4, "7")),  # iii vi ii V
)
BLUES_PROGRESSIONS = (
    ((0, "7"), (3, "7"), (0, "7"), (4, "7")),  # compressed 12-bar
    ((0, "7"), (0, "7"), (3, "7"), (0, "7")),
)


@dataclass(frozen=True)
class Genre:
    """A style preset: tempo range, metres, instrumentation (General MIDI programs), drum and comping
    patterns, progression pools and words for the style prompt."""

    name: str
    tempo_range: tuple[int, int]
    meters: tuple[int, ...]  # beats per bar choices (4 = 4/4, 3 = 3/4)
    bass_programs: tuple[int, ...]
    keys_programs: tuple[int, ...]
    pad_programs: tuple[int, ...]
    lead_programs: tuple[int, ...]
    drum_style: str
    comp_style: str  # how the keys/guitar part plays the chords
    bass_style: str
    progressions: tuple[str, ...]  # names of the progression pools above
    minor_share: float
    swing: float  # 0 = straight eighths, up to ~0.33 = triplet swing
    moods: tuple[str, ...]
    prompt_names: tuple[str, ...]


GENRES: dict[str, Genre] = {
    genre.name: genre
    for genre in (
        Genre("pop", (92, 128), (4,), (33, 38), (0, 4), (89, 48), (80, 73), "pop", "pulse", "root_eighths",
              ("major", "minor"), 0.3, 0.0, ("upbeat", "happy", "bright", "catchy"), ("pop", "dance pop")),
        Genre("rock", (100, 140), (4,), (34, 33), (29, 30, 27), (48,), (30, 29), "rock", "power", "root_eighths",
              ("major", "minor", "blues"), 0.4, 0.0, ("energetic", "driving", "raw", "powerful"),
              ("rock", "hard rock", "indie rock")),
        Genre("ballad", (64, 84), (4, 3), (32, 35), (0, 4), (48, 49, 89), (40, 73), "ballad", "arpeggio",
              "root_whole", ("major", "minor"), 0.5, 0.0, ("tender", "melancholic", "emotional", "calm"),
              ("ballad", "piano ballad", "slow ballad")),
        Genre("folk", (84, 116), (4, 3), (32,), (25, 24, 105), (48, 22), (73, 22), "folk", "strum",
              "root_fifth", ("major",), 0.25, 0.0, ("warm", "nostalgic", "gentle", "hopeful"),
              ("folk", "acoustic folk", "singer-songwriter")),
        Genre("electronic", (118, 132), (4,), (38, 39), (81, 90), (88, 89, 90), (80, 81), "four_on_floor",
              "stabs", "offbeat", ("minor", "major"), 0.6, 0.0, ("hypnotic", "dark", "euphoric", "energetic"),
              ("electronic", "synth pop", "house")),
        Genre("jazz", (84, 132), (4,), (32,), (0, 4, 26), (65, 66, 11), (65, 66, 56), "swing", "comp",
              "walking", ("jazz", "blues"), 0.3, 0.3, ("smooth", "relaxed", "late-night", "mellow"),
              ("jazz", "swing jazz", "smooth jazz")),
        Genre("country", (88, 124), (4,), (33, 32), (25, 27), (48, 22), (40, 22), "train", "strum",
              "root_fifth", ("major",), 0.15, 0.0, ("warm", "heartfelt", "easygoing", "sunny"),
              ("country", "country pop", "americana")),
        Genre("reggae", (70, 96), (4,), (33, 38), (27, 16), (16, 48), (56, 73), "one_drop", "skank",
              "reggae", ("major", "minor"), 0.4, 0.1, ("laid-back", "sunny", "easygoing", "uplifting"),
              ("reggae", "roots reggae")),
    )
}

PROGRESSION_POOLS = {
    "major": MAJOR_PROGRESSIONS,
    "minor": MINOR_PROGRESSIONS,
    "jazz": JAZZ_PROGRESSIONS,
    "blues": BLUES_PROGRESSIONS,
}


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class 0-11
    quality: str
    start: float
    end: float

    @property
    def symbol(self) -> str:
        return PITCH_CLASS_NAMES[self.root] + CHORD_SUFFIX[self.quality]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + step) % 12 for step in CHORD_INTERVALS[self.quality])


@dataclass
class Section:
    name: str  # intro, verse, pre-chorus, chorus, bridge, inst, outro
    start_bar: int
    n_bars: int
    vocal: bool
    chords: list[tuple[int, str]] = field(default_factory=list)  # (root pitch class, quality) per bar


@dataclass(frozen=True)
class Note:
    pitch: int  # MIDI
    start: float
    end: float
    velocity: int = 90


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class
    mode: str  # "major" or "minor"

    @property
    def scale(self) -> tuple[int, ...]:
        steps = MAJOR_SCALE if self.mode == "major" else NATURAL_MINOR_SCALE
        return tuple((self.tonic + step) % 12 for step in steps)

    @property
    def name(self) -> str:
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"


# Section plans by target length in bars. Instrumental sections (intro, inst, outro) keep the LM honest about
# structure without vocals; vocal sections hold 2 lines of 2 bars each (4 bars) or 1 line (2 bars).
SECTION_ORDERS = (
    ("intro", "verse", "chorus", "outro"),
    ("verse", "chorus", "verse", "chorus"),
    ("intro", "verse", "pre-chorus", "chorus"),
    ("verse", "chorus", "bridge", "chorus"),
    ("intro", "verse", "chorus", "inst", "chorus"),
    ("chorus", "verse", "chorus", "outro"),
    ("intro", "verse", "verse", "chorus", "outro"),
)
INSTRUMENTAL_SECTIONS = frozenset({"intro", "inst", "outro"})
BARS_PER_LINE = 2


def sample_key(rng: np.random.Generator, genre: Genre) -> Key:
    mode = "minor" if rng.random() < genre.minor_share else "major"
    return Key(int(rng.integers(12)), mode)


def sample_structure(rng: np.random.Generator, target_seconds: float, bar_seconds: float) -> list[Section]:
    """Sections that fill about ``target_seconds``: a section order is drawn and trimmed or its
    sections shortened until it fits; every song has at least one vocal section."""
    target_bars = max(2, round(target_seconds / bar_seconds))
    order = list(SECTION_ORDERS[int(rng.integers(len(SECTION_ORDERS)))])
    lengths = [2 if name in INSTRUMENTAL_SECTIONS else 4 for name in order]
    # Shorten vocal sections to one line, then drop trailing sections, until the song fits.
    while sum(lengths) > target_bars:
        long_vocal = [i for i, (name, bars) in enumerate(zip(order, lengths, strict=True))
                      if name not in INSTRUMENTAL_SECTIONS and bars > 2]
        if long_vocal and sum(lengths) - 2 >= target_bars - 1:
            lengths[long_vocal[-1]] = 2
        elif len(order) > 1 and any(n not in INSTRUMENTAL_SECTIONS for n in order[:-1]):
            order.pop()
            lengths.pop()
        elif long_vocal:
            lengths[long_vocal[-1]] = 2
        else:
            break
    sections, bar = [], 0
    for name, n_bars in zip(order, lengths, strict=False):
        sections.append(Section(name, bar, n_bars, vocal=name not in INSTRUMENTAL_SECTIONS))
        bar += n_bars
    return sections


def assign_chords(rng: np.random.Generator, sections: list[Section], key: Key, genre: Genre) -> None:
    """One progression per section name (a repeated chorus keeps its chords), one chord per bar."""
    pools = [p for p in genre.progressions if (p != "minor") == (key.mode == "major") or p in ("jazz", "blues")]
    pools = pools or list(genre.progressions)
    by_name: dict[str, tuple] = {}
    for section in sections:
        if section.name not in by_name:
            pool = PROGRESSION_POOLS[pools[int(rng.integers(len(pools)))]]
            if key.mode == "minor" and pool is MAJOR_PROGRESSIONS:
                pool = MINOR_PROGRESSIONS
            by_name[section.name] = pool[int(rng.integers(len(pool)))]
        progression = by_name[section.name]
        scale = key.scale if key.mode == "major" or progression in MINOR_PROGRESSIONS else Key(
            key.tonic, "major").scale
        section.chords = [
            (scale[degree], quality) for degree, quality in (progression[i % len(progression)]
                                                             for i in range(section.n_bars))
        ]


def chord_timeline(sections: list[Section], bar_seconds: float) -> list[Chord]:
    chords = []
    for section in sections:
        for i, (root, quality) in enumerate(section.chords):
            start = (section.start_bar + i) * bar_seconds
            chords.append(Chord(root, quality, start, start + bar_seconds))
    return chords


def line_rhythm(rng: np.random.Generator, n_syllables: int, slots: int, min_slots: int,
                stresses: list[int]) -> list[int]:
    """Durations (in eighth-note slots) for the syllables of one line. Every syllable gets at least
    ``min_slots`` so it is held long enough to be understood; spare slots go preferably to stressed
    syllables and to the line's last syllable, and whatever is left stays as a breath at the end."""
    durations = [min_slots] * n_syllables
    spare = slots - sum(durations) - 2  # keep at least a quarter-note breath before the next line
    if spare < 0:
        raise ValueError(f"{n_syllables} syllables do not fit in {slots} slots")
    weights = np.array([1.0 + 2.0 * (s > 0) for s in stresses])
    weights[-1] += 3.0
    spend = int(rng.integers(spare // 2, spare + 1)) if spare > 0 else 0
    for _ in range(spend):
        index = int(rng.choice(n_syllables, p=weights / weights.sum()))
        durations[index] += 1
    return durations


def melody_for_line(rng: np.random.Generator, onsets: list[float], durations: list[float], key: Key,
                    chords: list[Chord], vocal_range: tuple[int, int], previous: int | None,
                    beat_seconds: float) -> list[int]:
    """Pitches for one sung line: chord tones on beats, scale steps between them, a contour kept inside
    the singer's range, and a chord tone to end the phrase."""
    low, high = vocal_range
    scale_pitches = [p for p in range(low, high + 1) if p % 12 in key.scale]
    centre = (low + high) // 2
    current = previous if previous is not None else min(scale_pitches, key=lambda p: abs(p - centre))
    pitches = []
    for i, onset in enumerate(onsets):
        chord = next((c for c in chords if c.start <= onset + 1e-6 < c.end), chords[-1])
        on_beat = abs(onset / beat_seconds - round(onset / beat_seconds)) < 1e-3
        last = i == len(onsets) - 1
        if on_beat or last:
            candidates = [p for p in range(low, high + 1) if p % 12 in chord.pitch_classes]
        else:
            index = min(range(len(scale_pitches)), key=lambda j: abs(scale_pitches[j] - current))
            step = int(rng.choice([-2, -1, -1, 1, 1, 2, 0]))
            candidates = [scale_pitches[int(np.clip(index + step, 0, len(scale_pitches) - 1))]]
        # Prefer small leaps and drift back toward the centre of the range.
        scores = [abs(p - current) + 0.15 * abs(p - centre) + rng.random() * 2.0 for p in candidates]
        current = candidates[int(np.argmin(scores))]
        pitches.append(current)
    return pitches


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
