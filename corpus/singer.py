"""Sung vocals from festival, with the exact timing of every syllable and phone.

Two engines (reference/libraries.md §3.1, §3.4, §3.6):
- festival's singing mode with the kal and ked diphone voices (US male): pitch in Hz and duration in
  seconds per festival syllable, one festival process for the whole song;
- festival's slt HTS voice (US female), which ignores singing mode: each line is spoken, then Praat's PSOLA
  (parselmouth) moves every syllable onto its note. Only vowels are stretched and consonants keep their
  spoken length, because stretched consonants are what makes synthetic singing hard to understand.

Phone times come from festival's own segment relation (dumped by a Scheme hook), so labels describe what
was rendered, not what was asked for."""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from corpus.audio_io import resample
from corpus.lyrics import VOWELS, Word
from corpus.music import midi_to_hz


@dataclass(frozen=True)
class Voice:
    name: str
    engine: str  # "singing" (festival singing mode) or "psola" (spoken, then re-pitched)
    festival_voice: str
    gender: str
    vocal_range: tuple[int, int]  # MIDI; festival's pitch accuracy drops above MIDI 62 for the diphone voices
    description: str


VOICES = {
    "kal": Voice("kal", "singing", "voice_kal_diphone", "male", (47, 62), "male vocal"),
    "ked": Voice("ked", "singing", "voice_ked_diphone", "male", (45, 60), "deep male vocal"),
    "slt": Voice("slt", "psola", "voice_cmu_us_slt_arctic_hts", "female", (57, 72), "female vocal"),
}


@dataclass(frozen=True)
class NoteTarget:
    """What one syllable should be: its word, its place in the word, start and length in seconds, pitch."""

    word_index: int
    syllable_index: int
    start: float
    duration: float
    pitch: int


@dataclass(frozen=True)
class SungSyllable:
    start: float
    end: float
    phones: tuple[tuple[str, float, float], ...]  # (phone, start, end) in song seconds


class FestivalError(RuntimeError):
    pass


# A Scheme hook that writes one line per segment: name, end time, id of its syllable ("0" for pauses).
_DUMP_SEGMENTS = """
(define (dump_segments utt file)
  (let ((fd (fopen file "w")))
    (mapcar (lambda (seg)
      (format fd "%s %f %s\\n" (item.name seg) (item.feat seg "end")
              (item.feat seg "R:SylStructure.parent.R:Syllable.id")))
      (utt.relation.items utt 'Segment))
    (fclose fd)))
"""


def _run_festival(script: str, workdir: Path) -> None:
    script_path = workdir / "run.scm"
    script_path.write_text(script)
    result = subprocess.run(["festival", "--batch", str(script_path)], cwd=workdir, capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        raise FestivalError(f"festival failed ({result.returncode}): {result.stderr[-500:]}")


def _read_syllables(segments_file: Path) -> list[list[tuple[str, float, float]]]:
    """Group festival's segments by syllable, in order; each phone gets (name, start, end)."""
    syllables: list[list[tuple[str, float, float]]] = []
    previous_end, previous_id = 0.0, None
    for line in segments_file.read_text().splitlines():
        name, end, syllable_id = line.split()
        end = float(end)
        if name == "pau":
            previous_id = None
        elif syllable_id == "0" and syllables and previous_id is not None:
            # a phone the voice's phoneset mapping inserted (ked sings "er" as "er r"): it belongs to
            # the syllable it follows
            syllables[-1].append((name, previous_end, end))
        else:
            if syllable_id != previous_id:
                syllables.append([])
            syllables[-1].append((name, previous_end, end))
            previous_id = syllable_id
        previous_end = end
    return syllables


def _check_count(expected: int, got: int, what: str) -> None:
    if expected != got:
        raise FestivalError(f"festival produced {got} syllables for {expected} notes ({what}); "
                            "the word bank's syllabification disagrees with festival's")


def sing(voice: Voice, words: list[Word], notes: list[NoteTarget], sample_rate: int,
         n_samples: int) -> tuple[np.ndarray, list[SungSyllable]]:
    """Render the notes (in time order, non-overlapping) as a dry mono vocal of ``n_samples``.
    Returns the audio and, per note, what was actually sung."""
    with tempfile.TemporaryDirectory(prefix="sing-") as tmp:
        workdir = Path(tmp)
        if voice.engine == "singing":
            return _sing_festival(voice, words, notes, sample_rate, n_samples, workdir)
        return _sing_psola(voice, words, notes, sample_rate, n_samples, workdir)


def _sing_festival(voice, words, notes, sample_rate, n_samples, workdir):
    # Singing-mode XML: a REST before every gap, one PITCH/DURATION pair per word with one entry per syllable.
    parts, clock = [], 0.0
    by_word: dict[int, list[NoteTarget]] = {}
    for note in notes:
        by_word.setdefault(note.word_index, []).append(note)
    for word_index in sorted(by_word, key=lambda i: by_word[i][0].start):
        word_notes = by_word[word_index]
        gap = word_notes[0].start - clock
        if gap > 0.005:
            parts.append(f'<REST SECONDS="{gap:.4f}"></REST>')
        freqs = ",".join(f"{midi_to_hz(n.pitch):.2f}" for n in word_notes)
        durations = ",".join(f"{n.duration:.4f}" for n in word_notes)
        parts.append(f'<PITCH FREQ="{freqs}"><DURATION SECONDS="{durations}">'
                     f"{escape(words[word_index].text)}</DURATION></PITCH>")
        clock = word_notes[-1].start + word_notes[-1].duration
    (workdir / "song.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
        '"Singing.v0_1.dtd" []>\n<SINGING BPM="60">\n' + "\n".join(parts) + "\n</SINGING>\n")
    _run_festival(f"""({voice.festival_voice})
{_DUMP_SEGMENTS}
(set! tts_hooks (list utt.synth (lambda (u) (dump_segments u "song.segs") (utt.save.wave u "song.wav" 'riff) u)))
(tts_file "song.xml" 'singing)
""", workdir)
    audio, rate = sf.read(workdir / "song.wav", dtype="float32")
    sung = _read_syllables(workdir / "song.segs")
    _check_count(len(notes), len(sung), voice.name)
    out = np.zeros(n_samples, dtype=np.float32)
    audio = resample(audio, rate, sample_rate)[:n_samples]
    out[: len(audio)] = audio
    return out, [SungSyllable(s[0][1], s[-1][2], tuple(s)) for s in sung]


def _sing_psola(voice, words, notes, sample_rate, n_samples, workdir):
    import parselmouth  # GPL (Praat): used by the data generator only, never by the shipped models
    from parselmouth.praat import call

    lines = _group_lines(notes)
    script = [f"({voice.festival_voice})", _DUMP_SEGMENTS]
    for i, line in enumerate(lines):
        text = " ".join(words[w].text for w in dict.fromkeys(n.word_index for n in line))
        script.append(f'(set! u (utt.synth (Utterance Text "{text}")))')
        script.append(f'(dump_segments u "line{i}.segs") (utt.save.wave u "line{i}.wav" \'riff)')
    _run_festival("\n".join(script) + "\n", workdir)

    out = np.zeros(n_samples, dtype=np.float32)
    sung_all: list[SungSyllable] = []
    for i, line in enumerate(lines):
        spoken, rate = sf.read(workdir / f"line{i}.wav", dtype="float64")
        syllables = _read_syllables(workdir / f"line{i}.segs")
        _check_count(len(line), len(syllables), f"{voice.name} line {i}")
        first, last = syllables[0][0][1], syllables[-1][-1][2]
        sound = parselmouth.Sound(spoken, sampling_frequency=rate).extract_part(first, last)
        duration = last - first
        # Praat's overlap-add draws random numbers (for unvoiced stretches); seed it per line so the same
        # song always renders the same bytes.
        parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({1000 + i})")
        manipulation = call(sound, "To Manipulation", 0.01, 75, 600)
        duration_tier = call("Create DurationTier", "stretch", 0, duration)
        pitch_tier = call("Create PitchTier", "melody", 0, duration)
        sung_line = []
        for note, phones in zip(line, syllables, strict=True):
            phones = [(p, s - first, e - first) for p, s, e in phones]
            consonant = sum(e - s for p, s, e in phones if p not in VOWELS)
            vowel = sum(e - s for p, s, e in phones if p in VOWELS)
            # Stretch only the vowel when the note is long enough; otherwise scale the whole syllable.
            if vowel > 0 and note.duration > consonant + 0.02:
                factors = {p: 1.0 for p, _, _ in phones}
                vowel_factor = (note.duration - consonant) / vowel
            else:
                total = consonant + vowel
                factors = {p: note.duration / total for p, _, _ in phones}
                vowel_factor = note.duration / total
            clock, sung_phones = note.start, []
            for phone, start, end in phones:
                factor = vowel_factor if phone in VOWELS else factors[phone]
                call(duration_tier, "Add point", start + 1e-4, factor)
                call(duration_tier, "Add point", end - 1e-4, factor)
                length = (end - start) * factor
                sung_phones.append((phone, clock, clock + length))
                clock += length
            hz = midi_to_hz(note.pitch)
            call(pitch_tier, "Add point", phones[0][1] + 0.005, hz)
            call(pitch_tier, "Add point", phones[-1][2] - 0.005, hz)
            sung_line.append(SungSyllable(note.start, note.start + note.duration, tuple(sung_phones)))
        call([manipulation, duration_tier], "Replace duration tier")
        call([manipulation, pitch_tier], "Replace pitch tier")
        resynthesised = call(manipulation, "Get resynthesis (overlap-add)")
        audio = resample(resynthesised.values[0].astype(np.float32), int(rate), sample_rate)
        # A speech voice is quieter and softer than the diphone singers; the mixer levels it later.
        begin = round(line[0].start * sample_rate)
        audio = audio[: max(0, n_samples - begin)]
        out[begin : begin + len(audio)] += audio
        sung_all.extend(sung_line)
    return out, sung_all


def _group_lines(notes: list[NoteTarget]) -> list[list[NoteTarget]]:
    """Split notes into phrases at gaps (the breaths between lyric lines)."""
    lines: list[list[NoteTarget]] = [[notes[0]]]
    for previous, note in itertools.pairwise(notes):
        if note.start - (previous.start + previous.duration) > 0.05:
            lines.append([])
        lines[-1].append(note)
    return lines
