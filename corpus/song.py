"""One procedural song, from a seed to a finished song folder (DESIGN.md §4):
plan (genre, tempo, key, structure, chords) → lyrics → melody → sung vocals → band → mix → labels."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from corpus import GENERATOR_VERSION, SAMPLE_RATE
from corpus.audio_io import atomic_write_json, atomic_write_text, give_default_mode, write_audio
from corpus.band import TRAINING_SOUNDFONTS, PartRenderer, PartWriter, sample_instrumentation
from corpus.lyrics import THEME_NOUNS, LyricWriter, Word, load_word_bank
from corpus.mixing import add_reverb, add_vibrato, mix_song
from corpus.music import (
    BARS_PER_LINE,
    GENRES,
    Section,
    assign_chords,
    chord_timeline,
    line_rhythm,
    melody_for_line,
    midi_to_hz,
    sample_key,
    sample_structure,
)
from corpus.singer import VOICES, FestivalError, NoteTarget, sing
from corpus.style import style_prompt

F0_HOP_SECONDS = 0.01
MIN_SYLLABLE_SECONDS = 0.24  # shorter sung syllables stop being intelligible (measured with Whisper)
TAIL_SECONDS = 1.0  # room for the last note's release and reverb
MAX_ATTEMPTS = 4


@dataclass(frozen=True)
class SongOptions:
    min_seconds: float = 10.0
    max_seconds: float = 30.0
    sample_rate: int = SAMPLE_RATE
    genres: tuple[str, ...] = tuple(GENRES)
    voices: tuple[str, ...] = tuple(VOICES)
    soundfonts: tuple[str, ...] = TRAINING_SOUNDFONTS
    write_score: bool = True


def _song_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed))


def _choice(rng: np.random.Generator, options):
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _seconds(sections: list[Section], bar: float) -> float:
    return (sections[-1].start_bar + sections[-1].n_bars) * bar + TAIL_SECONDS


def plan_song(seed: int, options: SongOptions) -> dict:
    """Everything symbolic about the song: style, structure, chords, lyrics, melody."""
    rng = _song_rng(seed)
    genre = GENRES[_choice(rng, options.genres)]
    beats_per_bar = _choice(rng, genre.meters)
    tempo = int(rng.integers(genre.tempo_range[0], genre.tempo_range[1] + 1))
    beat = 60.0 / tempo
    bar = beats_per_bar * beat
    key = sample_key(rng, genre)
    voice = VOICES[_choice(rng, options.voices)]
    instrumentation = sample_instrumentation(rng, genre, options.soundfonts)

    target = float(rng.uniform(options.min_seconds, options.max_seconds)) - TAIL_SECONDS
    sections = sample_structure(rng, target, bar)
    while (sections[-1].start_bar + sections[-1].n_bars) * bar + TAIL_SECONDS < options.min_seconds:
        last = sections[-1]
        sections.append(Section("outro" if last.vocal else "chorus", last.start_bar + last.n_bars, 2,
                                vocal=not last.vocal))
    # Long bars at slow tempos can overshoot: drop trailing sections (keeping a vocal one), then shorten.
    while _seconds(sections, bar) > options.max_seconds and len(sections) > 1 and any(
            s.vocal for s in sections[:-1]):
        sections.pop()
    if _seconds(sections, bar) > options.max_seconds:
        sections[-1].n_bars = BARS_PER_LINE
    duration = _seconds(sections, bar)
    assign_chords(rng, sections, key, genre)
    chords = chord_timeline(sections, bar)

    # Lyrics: a line is two bars; syllables must be held at least MIN_SYLLABLE_SECONDS.
    eighth = beat / 2
    min_slots = max(1, math.ceil(MIN_SYLLABLE_SECONDS / eighth))
    slots_per_line = BARS_PER_LINE * beats_per_bar * 2
    max_syllables = min(10, (slots_per_line - 2) // min_slots)
    writer = LyricWriter(load_word_bank(), rng)
    theme = _choice(rng, sorted(THEME_NOUNS))  # a few nouns that recur through the song, so it reads as one
    lyrics_by_name: dict[str, list] = {}
    words: list[Word] = []
    notes: list[NoteTarget] = []
    word_rows: list[dict] = []
    lines_out: list[dict] = []
    previous_pitch = None
    for section_index, section in enumerate(sections):
        if not section.vocal:
            continue
        n_lines = section.n_bars // BARS_PER_LINE
        cached = lyrics_by_name.get(section.name)
        if cached is not None and len(cached) >= n_lines:  # a repeated chorus sings the same words
            lines = cached[:n_lines]
        else:
            lines = writer.section(section.name, n_lines, min(5, max_syllables), max_syllables, theme=theme)
            lyrics_by_name[section.name] = lines
        for line_index, line in enumerate(lines):
            line_start = (section.start_bar + line_index * BARS_PER_LINE) * bar
            stresses = [s.stress for w in line.words for s in w.syllables]
            slots = line_rhythm(rng, len(stresses), slots_per_line, min_slots, stresses)
            onsets, lengths, clock = [], [], line_start
            for n in slots:
                onsets.append(clock)
                lengths.append(n * eighth)
                clock += n * eighth
            pitches = melody_for_line(rng, onsets, lengths, key, chords, voice.vocal_range, previous_pitch, beat)
            previous_pitch = pitches[-1]
            lines_out.append({"section": section_index, "text": line.text, "start": onsets[0],
                              "end": onsets[-1] + lengths[-1]})
            k = 0
            for word in line.words:
                word_rows.append({"text": word.text, "section": section_index, "line": len(lines_out) - 1})
                for syllable_index in range(len(word.syllables)):
                    notes.append(NoteTarget(len(words), syllable_index, onsets[k], lengths[k] * 0.97, pitches[k]))
                    k += 1
                words.append(word)
    return {
        "rng": rng, "genre": genre, "tempo": tempo, "beats_per_bar": beats_per_bar, "beat": beat, "bar": bar,
        "key": key, "voice": voice, "instrumentation": instrumentation, "sections": sections, "chords": chords,
        "words": words, "theme": theme, "word_rows": word_rows, "lines": lines_out, "notes": notes,
        "duration": duration,
        "n_samples": round(duration * options.sample_rate),
    }


def measure_f0(vocals: np.ndarray, sample_rate: int, n_frames: int) -> list[float]:
    """F0 of the rendered (dry) vocal every 10 ms, 0 where unvoiced (Praat's autocorrelation pitch)."""
    import parselmouth  # GPL, data tooling only

    pitch = parselmouth.Sound(vocals.astype(np.float64), sampling_frequency=sample_rate).to_pitch_ac(
        time_step=F0_HOP_SECONDS, pitch_floor=70.0, pitch_ceiling=800.0)
    frequencies = pitch.selected_array["frequency"]
    times = pitch.xs()
    grid = np.arange(n_frames) * F0_HOP_SECONDS
    index = np.clip(np.round((grid - times[0]) / F0_HOP_SECONDS).astype(int), 0, len(times) - 1)
    f0 = np.where(np.abs(times[index] - grid) <= F0_HOP_SECONDS, frequencies[index], 0.0)
    return [round(float(x), 1) for x in f0]


def _lyrics_text(plan: dict) -> str:
    blocks = []
    for index, section in enumerate(plan["sections"]):
        lines = [row["text"] for row in plan["lines"] if row["section"] == index]
        blocks.append("\n".join([f"[{section.name}]", *lines]))
    return "\n\n".join(blocks) + "\n"


def render_song(seed: int, song_id: str, out_dir: str | Path, options: SongOptions | None = None) -> dict:
    """Render one song into ``out_dir/song_id`` atomically (built in a temporary folder, then renamed),
    and return its meta dictionary."""
    options = options or SongOptions()
    # festival occasionally crashes or splits a line's syllables differently from its own lexicon (about
    # 1 song in 400); the song is then re-planned from a seed derived deterministically from its own, so
    # a corpus has no holes and re-runs stay byte-identical.
    for attempt in range(MAX_ATTEMPTS):
        plan_seed = seed if attempt == 0 else int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])
        plan = plan_song(plan_seed, options)
        try:
            dry, sung = sing(plan["voice"], plan["words"], plan["notes"], options.sample_rate, plan["n_samples"])
            break
        except FestivalError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    plan["attempt"] = attempt
    rng: np.random.Generator = plan["rng"]
    sr, n_samples = options.sample_rate, plan["n_samples"]
    vibrato_rate, vibrato_cents = float(rng.uniform(4.5, 6.5)), float(rng.uniform(0, 40))
    dry = add_vibrato(dry, sr, vibrato_rate, vibrato_cents)
    n_frames = math.ceil(plan["duration"] / F0_HOP_SECONDS)
    f0 = measure_f0(dry, sr, n_frames)
    rt60, wet = float(rng.uniform(0.3, 1.6)), float(rng.uniform(0.05, 0.3))
    vocals = add_reverb(dry, sr, rt60, wet, rng)

    writer = PartWriter(rng, plan["genre"], plan["beats_per_bar"], plan["beat"])
    inst = plan["instrumentation"]
    parts = {
        "drums": [writer.drums(plan["sections"])],
        "bass": [writer.bass(plan["chords"], inst.bass_program)],
        "other": [writer.keys(plan["chords"], inst.keys_program), writer.pad(plan["chords"], inst.pad_program),
                  writer.lead(plan["chords"], plan["sections"], plan["key"].scale, inst.lead_program)],
    }
    with PartRenderer(inst.soundfont, sr) as renderer:
        stems = {name: sum(renderer.render(p, n_samples) for p in group) for name, group in parts.items()}
    offsets = {name: float(rng.uniform(-3, 3)) for name in stems}
    mixed = mix_song(vocals, stems, sr, float(rng.uniform(-6, 6)), offsets)

    meta = _meta(seed, song_id, plan, sung, f0, mixed, options, vibrato_rate, vibrato_cents, rt60, wet, rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{song_id}.", dir=out_dir))
    give_default_mode(staging, directory=True)
    try:
        write_audio(staging / "mix.flac", mixed.mix, sr)
        write_audio(staging / "vocals.flac", mixed.vocals, sr)
        write_audio(staging / "accompaniment.flac", mixed.accompaniment, sr)
        for name, stem in mixed.stems.items():
            write_audio(staging / "stems" / f"{name}.flac", stem, sr)
        atomic_write_text(staging / "lyrics.txt", _lyrics_text(plan))
        if options.write_score:
            _score(plan, parts).write(str(staging / "score.mid"))
        atomic_write_json(staging / "meta.json", meta)
        target = out_dir / song_id
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _score(plan: dict, parts: dict) -> pretty_midi.PrettyMIDI:
    score = pretty_midi.PrettyMIDI(initial_tempo=float(plan["tempo"]))
    melody = pretty_midi.Instrument(program=52, name="vocal melody")
    melody.notes = [pretty_midi.Note(100, n.pitch, n.start, n.start + n.duration) for n in plan["notes"]]
    score.instruments = [melody, *(p for group in parts.values() for p in group)]
    return score


def _meta(seed, song_id, plan, sung, f0, mixed, options, vibrato_rate, vibrato_cents, rt60, wet, rng) -> dict:
    genre, key, voice, bar, beat = plan["genre"], plan["key"], plan["voice"], plan["bar"], plan["beat"]
    r3 = lambda x: round(float(x), 3)  # noqa: E731 - a local shorthand for label times
    sections = [{"name": s.name, "start": r3(s.start_bar * bar), "end": r3((s.start_bar + s.n_bars) * bar),
                 "vocal": s.vocal} for s in plan["sections"]]
    words, k = [], 0
    for word_index, (word, row) in enumerate(zip(plan["words"], plan["word_rows"], strict=True)):
        syllables = []
        for syllable in word.syllables:
            note, got = plan["notes"][k], sung[k]
            assert note.word_index == word_index
            syllables.append({"start": r3(got.start), "end": r3(got.end), "pitch": note.pitch,
                              "stress": syllable.stress,
                              "phones": [{"phone": p, "start": r3(s), "end": r3(e)} for p, s, e in got.phones]})
            k += 1
        words.append({"text": word.text, "section": row["section"], "line": row["line"],
                      "start": syllables[0]["start"], "end": syllables[-1]["end"], "syllables": syllables})
    n_beats = round((plan["sections"][-1].start_bar + plan["sections"][-1].n_bars) * plan["beats_per_bar"])
    style = style_prompt(rng, genre, plan["tempo"], key, voice, plan["instrumentation"])
    return {
        "id": song_id, "seed": seed, "plan_attempt": plan["attempt"], "generator_version": GENERATOR_VERSION,
        "sample_rate": options.sample_rate,
        "duration": round(plan["n_samples"] / options.sample_rate, 6), "num_samples": plan["n_samples"],
        "theme": plan["theme"], "style_prompt": style["prompt"], "style_tags": style["tags"], "genre": genre.name,
        "mood": style["mood"],
        "tempo": plan["tempo"], "key": key.name, "time_signature": [plan["beats_per_bar"], 4],
        "voice": {"name": voice.name, "engine": voice.engine, "gender": voice.gender,
                  "vibrato_hz": round(vibrato_rate, 2), "vibrato_cents": round(vibrato_cents, 1),
                  "reverb_rt60": round(rt60, 2), "reverb_wet": round(wet, 2)},
        "soundfont": plan["instrumentation"].soundfont, "instruments": plan["instrumentation"].as_dict(),
        "mix_gains_db": mixed.gains_db, "loudness_lufs": mixed.loudness_lufs,
        "sections": sections,
        "lines": [{**row, "start": r3(row["start"]), "end": r3(row["end"])} for row in plan["lines"]],
        "words": words,
        "melody": [{"pitch": n.pitch, "hz": round(midi_to_hz(n.pitch), 2), "start": r3(n.start),
                    "end": r3(n.start + n.duration), "syllable": i} for i, n in enumerate(plan["notes"])],
        "chords": [{"symbol": c.symbol, "root": c.root, "quality": c.quality, "start": r3(c.start),
                    "end": r3(c.end)} for c in plan["chords"]],
        "beats": [r3(i * beat) for i in range(n_beats)],
        "downbeats": [r3(i * bar) for i in range(n_beats // plan["beats_per_bar"])],
        "f0": {"hop_seconds": F0_HOP_SECONDS, "hz": f0},
    }
