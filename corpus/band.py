"""Accompaniment: MIDI parts per instrument (drums, bass, keys/guitar, pad or lead) written from the
song's chords and genre, humanised, and rendered with fluidsynth into one stem per instrument group.

The parts are built as pretty_midi instruments (so ``score.mid`` can be written), but rendered by our own
event loop (``PartRenderer``) on one fluidsynth synthesizer per song: pretty_midi's
``Instrument.fluidsynth`` loads the soundfont for every instrument, which costs about 1 s per load for the
sf3 soundfonts, and its 16-bit output path adds dither noise that depends on earlier calls."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from corpus.music import CHORD_INTERVALS, Chord, Genre, Section

SOUNDFONTS = {
    # name: path (Debian packages timgm6mb-soundfont, fluidr3mono-gm-soundfont,
    # musescore-general-soundfont-small)
    "TimGM6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "FluidR3Mono": "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
    "MuseScoreGeneralLite": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
}
TRAINING_SOUNDFONTS = ("TimGM6mb", "FluidR3Mono")  # MuseScore stays unseen, for generalisation tests

# General MIDI percussion keys
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, TAMBOURINE, SHAKER = (
    36, 37, 38, 39, 42, 44, 46, 49, 51, 54, 70)
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50

# Drum patterns on a sixteenth grid of one 4/4 bar (16 steps); 3/4 bars use the first 12 steps.
DRUM_PATTERNS: dict[str, dict[int, tuple[int, ...]]] = {
    "pop": {KICK: (0, 6, 8), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "rock": {KICK: (0, 8, 10), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "ballad": {KICK: (0, 8), SIDE_STICK: (4, 12), RIDE: (0, 4, 8, 12)},
    "folk": {KICK: (0, 8), TAMBOURINE: (4, 12), SHAKER: (0, 2, 4, 6, 8, 10, 12, 14)},
    "four_on_floor": {KICK: (0, 4, 8, 12), CLAP: (4, 12), OPEN_HAT: (2, 6, 10, 14), CLOSED_HAT: (0, 4, 8, 12)},
    "swing": {KICK: (0, 8), PEDAL_HAT: (4, 12), RIDE: (0, 4, 7, 8, 12, 15)},
    "train": {KICK: (0, 8), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14), SIDE_STICK: (2, 10)},
    "one_drop": {KICK: (8,), SIDE_STICK: (8,), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
}


@dataclass(frozen=True)
class Instrumentation:
    soundfont: str
    bass_program: int
    keys_program: int
    pad_program: int
    lead_program: int

    def as_dict(self) -> dict:
        def entry(program: int) -> dict:
            return {"program": program, "name": pretty_midi.program_to_instrument_name(program)}

        return {"bass": entry(self.bass_program), "keys": entry(self.keys_program),
                "pad": entry(self.pad_program), "lead": entry(self.lead_program),
                "drums": {"program": 0, "name": "Standard Drum Kit"}}


def sample_instrumentation(rng: np.random.Generator, genre: Genre, soundfonts=TRAINING_SOUNDFONTS) -> Instrumentation:
    def pick(options):
        return int(options[int(rng.integers(len(options)))])

    return Instrumentation(soundfonts[int(rng.integers(len(soundfonts)))], pick(genre.bass_programs),
                           pick(genre.keys_programs), pick(genre.pad_programs), pick(genre.lead_programs))


class PartWriter:
    """Writes the MIDI notes of each accompaniment part. Humanisation: up to ±15 ms timing and ±10
    velocity (libraries.md §4.2), drawn from the song's generator so it is reproducible."""

    def __init__(self, rng: np.random.Generator, genre: Genre, beats_per_bar: int, beat_seconds: float):
        self.rng = rng
        self.genre = genre
        self.beats_per_bar = beats_per_bar
        self.beat = beat_seconds
        self.bar = beats_per_bar * beat_seconds

    def _note(self, part: pretty_midi.Instrument, pitch: int, start: float, end: float, velocity: int) -> None:
        jitter = float(self.rng.uniform(-0.015, 0.015))
        start = max(0.0, start + jitter)
        velocity = int(np.clip(velocity + self.rng.integers(-10, 11), 20, 127))
        part.notes.append(pretty_midi.Note(velocity, int(pitch), start, max(start + 0.05, end + jitter)))

    def _swing(self, step: int) -> float:
        """Start offset of a sixteenth-grid step, with swung off-beat eighths."""
        position = step * self.beat / 4
        if step % 4 == 2:
            position += self.genre.swing * self.beat / 2
        return position

    def drums(self, sections: list[Section]) -> pretty_midi.Instrument:
        part = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        pattern = DRUM_PATTERNS[self.genre.drum_style]
        steps_per_bar = 4 * self.beats_per_bar
        for section in sections:
            for bar in range(section.n_bars):
                bar_start = (section.start_bar + bar) * self.bar
                last_bar = bar == section.n_bars - 1
                for key, steps in pattern.items():
                    for step in steps:
                        if step >= steps_per_bar or (last_bar and step >= steps_per_bar - 4):
                            continue
                        accent = 100 if step % 8 == 0 else 80
                        t = bar_start + self._swing(step)
                        self._note(part, key, t, t + 0.1, accent)
                if bar == 0:
                    self._note(part, CRASH, bar_start, bar_start + 0.5, 95)
                if last_bar:  # a fill into the next section
                    for i, tom in enumerate((HIGH_TOM, MID_TOM, LOW_TOM, SNARE)):
                        t = bar_start + (steps_per_bar - 4 + i) * self.beat / 4
                        self._note(part, tom, t, t + 0.1, 90)
        return part

    def bass(self, chords: list[Chord], program: int) -> pretty_midi.Instrument:
        part = pretty_midi.Instrument(program=program, name="bass")
        style = self.genre.bass_style
        for chord in chords:
            root = 36 + chord.root  # C2..B2
            fifth = root + 7
            third = root + CHORD_INTERVALS[chord.quality][1]
            if style == "root_whole":
                events = [(0, self.bar * 0.95, root)]
            elif style == "root_eighths":
                events = [(i * self.beat / 2, self.beat / 2 * 0.9, root) for i in range(2 * self.beats_per_bar)]
            elif style == "root_fifth":
                events = [(i * self.beat, self.beat * 0.9, root if i % 2 == 0 else fifth)
                          for i in range(self.beats_per_bar)]
            elif style == "walking":
                line = [root, third, fifth, fifth + 2 if fifth + 2 < root + 12 else root + 12]
                events = [(i * self.beat, self.beat * 0.95, line[i % 4]) for i in range(self.beats_per_bar)]
            elif style == "offbeat":
                events = [(i * self.beat + self.beat / 2, self.beat * 0.4, root + 12)
                          for i in range(self.beats_per_bar)]
            else:  # reggae: a syncopated root-fifth figure leaving beat one empty
                events = [(self.beat * 0.5, self.beat * 0.9, root), (self.beat * 2, self.beat * 0.5, fifth),
                          (self.beat * 2.5, self.beat * 0.9, root)]
            for offset, length, pitch in events:
                self._note(part, pitch, chord.start + offset, chord.start + offset + length, 95)
        return part

    def keys(self, chords: list[Chord], program: int) -> pretty_midi.Instrument:
        part = pretty_midi.Instrument(program=program, name="keys")
        style = self.genre.comp_style
        for chord in chords:
            voicing = [55 + (chord.root + step - 7) % 12 + (0 if (chord.root + step - 7) % 12 >= 0 else 12)
                       for step in CHORD_INTERVALS[chord.quality]]
            voicing = sorted(p if p >= 55 else p + 12 for p in voicing)
            if style == "arpeggio":
                pattern = [*voicing, voicing[0] + 12]
                for i in range(2 * self.beats_per_bar):
                    t = chord.start + i * self.beat / 2
                    self._note(part, pattern[i % len(pattern)], t, t + self.beat, 70)
                continue
            if style == "pulse":
                hits = [(i * self.beat, self.beat * 0.9) for i in range(self.beats_per_bar)]
            elif style == "power":
                voicing = [voicing[0] - 12, voicing[0] - 5, voicing[0]]
                hits = [(i * self.beat / 2, self.beat / 2 * 0.8) for i in range(2 * self.beats_per_bar)]
            elif style == "strum":
                hits = [(0, self.beat * 1.4), (self.beat * 1.5, self.beat * 0.5)] + [
                    (i * self.beat, self.beat * 0.9) for i in range(2, self.beats_per_bar)]
            elif style == "stabs":
                hits = [(i * self.beat + self.beat * 0.75, self.beat * 0.2) for i in range(self.beats_per_bar)]
            elif style == "comp":
                hits = [(self.beat * 1.5, self.beat * 0.4), (self.beat * 3, self.beat * 0.8)]
            else:  # skank: chords on the off-beats
                hits = [(i * self.beat + self.beat / 2, self.beat * 0.3) for i in range(self.beats_per_bar)]
            for offset, length in hits:
                if offset >= self.bar:
                    continue
                for pitch in voicing:
                    self._note(part, pitch, chord.start + offset, chord.start + offset + length, 72)
        return part

    def pad(self, chords: list[Chord], program: int) -> pretty_midi.Instrument:
        """A quiet sustained chord an octave above the keys, for colour under the voice."""
        part = pretty_midi.Instrument(program=program, name="pad")
        for chord in chords:
            for step in CHORD_INTERVALS[chord.quality][:3]:
                self._note(part, 60 + (chord.root + step) % 12, chord.start, chord.end, 45)
        return part

    def lead(self, chords: list[Chord], sections: list[Section], scale: tuple[int, ...],
             program: int) -> pretty_midi.Instrument:
        """A lead melody in instrumental sections only, so there is a melody where nobody sings."""
        part = pretty_midi.Instrument(program=program, name="lead")
        pitches = [p for p in range(67, 86) if p % 12 in scale]
        current = len(pitches) // 2
        for section in sections:
            if section.vocal:
                continue
            start = section.start_bar * self.bar
            end = start + section.n_bars * self.bar
            t = start
            while t < end - self.beat / 2:
                length = self.beat * float(self.rng.choice([0.5, 1.0, 1.0, 2.0]))
                current = int(np.clip(current + self.rng.choice([-2, -1, 1, 2, 0]), 0, len(pitches) - 1))
                self._note(part, pitches[current], t, min(t + length, end) * 0.999, 85)
                t += length
        return part


@functools.cache
def _write_float():
    """fluidsynth's float output. pyfluidsynth only wraps the 16-bit writer, which adds dither noise from
    a table whose position carries over between calls."""
    import ctypes

    import fluidsynth

    return fluidsynth.cfunc("fluid_synth_write_float", ctypes.c_int, ("synth", ctypes.c_void_p, 1),
                            ("len", ctypes.c_int, 1), ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                            ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1),
                            ("rincr", ctypes.c_int, 1))


class PartRenderer:
    """Renders a song's parts, one after the other, on a fluidsynth synthesizer of its own.

    Why a synthesizer per song and not per process: fluidsynth reuses voice objects whose filter and
    interpolation state leak into the next notes (differences of a few LSB), so a song would sound
    slightly different depending on which songs its worker process rendered before, and same-seed re-runs
    would not be byte-identical. A fresh synthesizer per song, with the parts always rendered in the same
    order, makes the audio a function of the seed alone. Loading costs 0.04 s for TimGM6mb and about 1 s
    for the compressed sf3 soundfonts."""

    def __init__(self, soundfont: str, sample_rate: int):
        import fluidsynth  # imported here: it needs Debian's libfluidsynth3, only the generator uses it

        path = SOUNDFONTS[soundfont]
        if not Path(path).exists():
            raise FileNotFoundError(f"soundfont {path} is missing: run scripts/setup.sh")
        self.sample_rate = sample_rate
        # fluidsynth's reverb and chorus start from random modulation phases, so they are switched off
        # (before the synthesizer is created: they are not real-time settings); room sound comes from our
        # own seeded reverb.
        self.synth = fluidsynth.Synth(samplerate=float(sample_rate), gain=0.5,
                                      **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        self.font_id = self.synth.sfload(path)

    def __enter__(self) -> PartRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.synth.delete()

    def _render(self, n_samples: int) -> np.ndarray:
        stereo = np.zeros((n_samples, 2), dtype=np.float32)
        pointer = stereo.ctypes.data
        _write_float()(self.synth.synth, n_samples, pointer, 0, 2, pointer + 4, 0, 2)
        return stereo.mean(axis=1)

    def render(self, part: pretty_midi.Instrument, n_samples: int) -> np.ndarray:
        """One instrument's notes as a mono float32 signal of exactly ``n_samples``."""
        channel = 9 if part.is_drum else 0
        self.synth.program_select(channel, self.font_id, 128 if part.is_drum else 0,
                                  0 if part.is_drum else part.program)
        events = sorted([(n.start, 1, n.pitch, n.velocity) for n in part.notes]
                        + [(n.end, 0, n.pitch, 0) for n in part.notes])
        chunks, position = [], 0
        for time, is_on, pitch, velocity in events:
            target = min(n_samples, round(time * self.sample_rate))
            if target > position:
                chunks.append(self._render(target - position))
                position = target
            if is_on:
                self.synth.noteon(channel, pitch, velocity)
            else:
                self.synth.noteoff(channel, pitch)
        if position < n_samples:
            chunks.append(self._render(n_samples - position))
        # Silence every voice and let releases die out before the next part.
        self.synth.cc(channel, 123, 0)  # all notes off
        self.synth.cc(channel, 120, 0)  # all sound off
        self._render(self.sample_rate)
        return np.concatenate(chunks)
