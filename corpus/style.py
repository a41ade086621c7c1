"""Style tags and a natural-language style prompt for a song, in varied phrasings, so the LM learns to
read prompts the way people write them ("upbeat pop, female vocal, 120 bpm, piano")."""

from __future__ import annotations

import numpy as np

from corpus.band import Instrumentation
from corpus.music import Genre, Key
from corpus.singer import Voice

# Plain words people use for General MIDI programs.
PROGRAM_WORDS = {
    0: "piano", 4: "electric piano", 11: "vibraphone", 16: "organ", 22: "harmonica", 24: "nylon guitar",
    25: "acoustic guitar", 26: "jazz guitar", 27: "clean electric guitar", 29: "overdriven guitar",
    30: "distorted guitar", 32: "upright bass", 33: "bass guitar", 34: "picked bass", 35: "fretless bass",
    38: "synth bass", 39: "synth bass", 40: "violin", 48: "strings", 49: "strings", 56: "trumpet",
    65: "alto sax", 66: "tenor sax", 73: "flute", 80: "synth lead", 81: "saw lead", 88: "synth pad",
    89: "warm pad", 90: "poly synth", 105: "banjo",
}

TEMPLATES = (
    "{mood} {genre}, {vocal}, {tempo} bpm, {instruments}",
    "a {mood} {genre} song with {vocal_phrase}, {instruments}, around {tempo} bpm",
    "{genre} in {key}, {tempo} bpm, {mood}, featuring {instruments} and {vocal}",
    "{Vocal} over {instruments}; {mood} {tempo_word} {genre}",
    "{tempo_word} {genre} track, {mood} mood, {vocal}, {instruments}",
    "{genre}, {mood}, {instruments}, {vocal}",
    "{mood} and {tempo_word}: {genre} with {instruments}, {vocal_phrase}",
)


def _tempo_word(tempo: int) -> str:
    if tempo < 80:
        return "slow"
    if tempo < 105:
        return "mid-tempo"
    if tempo < 125:
        return "upbeat"
    return "fast"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def style_prompt(rng: np.random.Generator, genre: Genre, tempo: int, key: Key, voice: Voice,
                 instrumentation: Instrumentation) -> dict:
    """Returns ``{"prompt", "tags", "mood"}``; the tags are the structured version of the prompt."""
    mood = genre.moods[int(rng.integers(len(genre.moods)))]
    genre_name = genre.prompt_names[int(rng.integers(len(genre.prompt_names)))]
    programs = [instrumentation.keys_program, instrumentation.bass_program, instrumentation.pad_program]
    instruments = list(dict.fromkeys(PROGRAM_WORDS.get(p, "keys") for p in programs))
    instruments.append("drums")
    shown = instruments[: int(rng.integers(2, len(instruments) + 1))]
    vocal = f"{voice.gender} vocal"
    fields = {
        "mood": mood, "genre": genre_name, "tempo": tempo, "key": key.name, "instruments": _join(shown),
        "vocal": vocal, "Vocal": vocal[0].upper() + vocal[1:] + "s",
        "vocal_phrase": f"a {voice.description}", "tempo_word": _tempo_word(tempo),
    }
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    tags = [genre.name, mood, vocal, f"{tempo} bpm", key.name, *instruments]
    return {"prompt": template.format(**fields), "tags": tags, "mood": mood}
