"""What a lyric-aware vocal decoder is told about the words: for every 50 Hz mel frame, the phones of the word
being sung and how long ago that word started, and, where the phones' own start frames are known, which of them
is being sung and since when.

The vocal tokens keep only part of the phone (about 60% of sung frames on the tokenizer's own head, model card),
so a decoder that reads tokens alone smears the words. In a lyrics-to-song system the words are known: the LM
places a ``<word>`` cue at the frame each word starts (``lm.layout.WordCue``), and a tokenized corpus stores the
same (``words`` column: ``text`` and ``start_frame``). A word's phones come from CMUdict (``lm.phonemes``, the
LM's pronunciations too). Where inside the word each phone falls is not given by the words alone: the decoder
learns it from the tokens (a vowel's code looks unlike a consonant's) and from the frames since the word's start.

Phone times: a phone-cue LM also places a cue at the frame each phone of a word starts (``lm.layout``), and a
tokenized corpus stores the sung phones with their start frames (the ``phones`` of each word). A decoder with
``phone_times`` reads them: the word's keys are then those phones (what was cued or sung, which may differ from
CMUdict's), and each frame is told which of them is being sung and for how long. The tokens keep the phone on only
about 60% of sung frames, and the LM's generated tokens far less often (``bench/results/lyric_phones*.md``); the
cues' times are the one place the app knows exactly which sound it asked for.

``word_context(words, n_tokens, frames_per_token, max_phones, max_since, phone_times) -> WordContext`` of arrays:

- ``phones [F, max_phones]``: ARPAbet ids + 1 of the current word (``0`` pads; words longer than ``max_phones``
  are cut, which the reference corpus never needs at 12), all zero before the first word and for words CMUdict
  lacks;
- ``since [F]``: 0 before the first word, else 1 + frames since the current word started, capped at
  ``max_since - 1``;
- ``current [F]``: with ``phone_times`` and a word whose phones are timed, 1 + the position (in ``phones``) of the
  phone being sung; 0 where that is unknown (no times, before the word's first phone, ``phone_times`` off);
- ``phone_since [F]``: 1 + frames since that phone started, capped like ``since``; 0 where ``current`` is 0.

Phone start frames are at the token rate; two phones that start in one token frame (a 40 ms frame holds a
short consonant and the vowel after it) are placed on successive mel frames, so each is named at least once.

Computed once per song and sliced, so a decoding window that starts inside a word still knows the word.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from lm.phonemes import ARPABET, word_phones

PHONE_IDS = {phone: index + 1 for index, phone in enumerate(ARPABET)}  # 0 pads
N_PHONE_IDS = len(ARPABET) + 1


class SungWord(NamedTuple):
    """One sung word: the token frame it starts in, its text, and its sung phones as ``(ARPAbet phone, start token
    frame)`` in sung order (empty when they are not known)."""

    start_frame: int
    text: str
    phones: tuple[tuple[str, int], ...] = ()


class WordContext(NamedTuple):
    """Per-frame word context of one song (``[F, …]`` arrays) or of a batch (``[B, F, …]`` tensors)."""

    phones: np.ndarray
    since: np.ndarray
    current: np.ndarray
    phone_since: np.ndarray


def _ages(length: int, cap: int) -> np.ndarray:
    """1, 2, … frames since a start, for ``length`` frames, held at ``cap``."""
    return np.minimum(np.arange(length) + 1, cap)


def _is_frame(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _timed_phones(phones, where: str) -> tuple[tuple[str, int], ...]:
    """``[{"phone", "start_frame"}]`` dicts or ``(phone, frame)`` pairs -> pairs; a clear error otherwise."""
    out = []
    for index, phone in enumerate(phones or ()):
        name, frame = ((phone.get("phone"), phone.get("start_frame")) if isinstance(phone, dict)
                       else tuple(phone) if isinstance(phone, tuple | list) and len(phone) == 2 else (None, None))
        if name not in PHONE_IDS or not _is_frame(frame) or frame < 0:
            raise ValueError(f"{where}, phone {index}: expected an ARPAbet phone and a start frame >= 0, "
                             f"got {phone!r}")
        out.append((name, int(frame)))
    return tuple(out)


def word_starts(words: Iterable) -> list[SungWord]:
    """``SungWord``s from ``{"start_frame", "text"[, "phones"]}`` dicts (token records, the app), ``(frame,
    text)`` pairs or ``SungWord``s, sorted by frame (stable). Anything else is a ``ValueError`` naming the word."""
    out = []
    for index, word in enumerate(words):
        phones = ()
        if isinstance(word, dict):
            frame, text, phones = word.get("start_frame"), word.get("text"), word.get("phones")
        elif isinstance(word, SungWord):
            frame, text, phones = word
        elif isinstance(word, tuple | list) and len(word) == 2:
            frame, text = word
        else:
            raise ValueError(f"word {index}: expected {{'start_frame', 'text'}} or (frame, text), got {word!r}")
        if not _is_frame(frame) or not isinstance(text, str):
            raise ValueError(f"word {index}: start_frame must be an integer and text a string, got {word!r}")
        out.append(SungWord(int(frame), text, _timed_phones(phones, f"word {index} ({text!r})")))
    return sorted(out, key=lambda word: word.start_frame)


def word_context(words: Iterable, n_tokens: int, frames_per_token: int, max_phones: int, max_since: int,
                 phone_times: bool = False) -> WordContext:
    """Per-frame phones, word age and (``phone_times``) sung phone of a song of ``n_tokens`` tokens (module
    docstring)."""
    n_frames = n_tokens * frames_per_token
    phones = np.zeros((n_frames, max_phones), dtype=np.int64)
    since = np.zeros(n_frames, dtype=np.int64)
    current = np.zeros(n_frames, dtype=np.int64)
    phone_since = np.zeros(n_frames, dtype=np.int64)
    sung = word_starts(words)
    for index, word in enumerate(sung):
        if not 0 <= word.start_frame < n_tokens:
            raise ValueError(f"word {word.text!r} starts at token frame {word.start_frame}, outside the song's "
                             f"{n_tokens} frames")
        first = word.start_frame * frames_per_token
        last = sung[index + 1].start_frame * frames_per_token if index + 1 < len(sung) else n_frames
        timed = phone_times and bool(word.phones)
        names = [name for name, _ in word.phones] if timed else (word_phones(word.text) or [])
        ids = [PHONE_IDS[p] for p in names][:max_phones]
        phones[first:last, : len(ids)] = ids
        since[first:last] = _ages(last - first, max_since - 1)
        if timed:
            previous = first - 1
            for position, (_, frame) in enumerate(word.phones[:max_phones]):
                begin = max(frame * frames_per_token, previous + 1, first)
                if begin >= last:  # a phone cued after the next word started (or the song's end) is not sung
                    break
                current[begin:last] = position + 1
                phone_since[begin:last] = _ages(last - begin, max_since - 1)
                previous = begin
    return WordContext(phones, since, current, phone_since)
