"""What a lyric-aware vocal decoder is told about the words: for every 50 Hz mel frame, the phones of the word
being sung and how long ago that word started.

The vocal tokens keep only part of the phone (about 60% of sung frames on the tokenizer's own head, model card),
so a decoder that reads tokens alone smears the words. In a lyrics-to-song system the words are known: the LM
places a ``<word>`` cue at the frame each word starts (``lm.layout.WordCue``), and a tokenized corpus stores the
same (``words`` column: ``text`` and ``start_frame``). A word's phones come from CMUdict (``lm.phonemes``, the
LM's pronunciations too). Where inside the word each phone falls is not given: the decoder learns it from the
tokens (a vowel's code looks unlike a consonant's) and from the frames since the word's start.

``word_context(words, n_tokens, frames_per_token, max_phones, max_since) -> (phones [F, max_phones], since [F])``

- ``phones``: ARPAbet ids + 1 of the current word (``0`` pads; words longer than ``max_phones`` are cut, which
  the reference corpus never needs at 12), all zero before the first word and for words CMUdict lacks;
- ``since``: 0 before the first word, else 1 + frames since the current word started, capped at ``max_since - 1``.

Computed once per song and sliced, so a decoding window that starts inside a word still knows the word.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lm.phonemes import ARPABET, word_phones

PHONE_IDS = {phone: index + 1 for index, phone in enumerate(ARPABET)}  # 0 pads
N_PHONE_IDS = len(ARPABET) + 1


def word_starts(words: Iterable) -> list[tuple[int, str]]:
    """``(start_frame, text)`` pairs from ``{"start_frame", "text"}`` dicts (token records, manifests) or pairs,
    sorted by frame. Anything else is a ``ValueError`` naming the word."""
    pairs = []
    for index, word in enumerate(words):
        if isinstance(word, dict):
            frame, text = word.get("start_frame"), word.get("text")
        elif isinstance(word, tuple | list) and len(word) == 2:
            frame, text = word
        else:
            raise ValueError(f"word {index}: expected {{'start_frame', 'text'}} or (frame, text), got {word!r}")
        if isinstance(frame, bool) or not isinstance(frame, int | np.integer) or not isinstance(text, str):
            raise ValueError(f"word {index}: start_frame must be an integer and text a string, got {word!r}")
        pairs.append((int(frame), text))
    return sorted(pairs, key=lambda pair: pair[0])


def word_context(words: Iterable, n_tokens: int, frames_per_token: int, max_phones: int, max_since: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame phones and word age of a song of ``n_tokens`` tokens (module docstring)."""
    n_frames = n_tokens * frames_per_token
    phones = np.zeros((n_frames, max_phones), dtype=np.int64)
    since = np.zeros(n_frames, dtype=np.int64)
    pairs = word_starts(words)
    for index, (start, text) in enumerate(pairs):
        if not 0 <= start < n_tokens:
            raise ValueError(f"word {text!r} starts at token frame {start}, outside the song's {n_tokens} frames")
        first = start * frames_per_token
        last = pairs[index + 1][0] * frames_per_token if index + 1 < len(pairs) else n_frames
        ids = [PHONE_IDS[p] for p in (word_phones(text) or [])][:max_phones]
        phones[first:last, : len(ids)] = ids
        since[first:last] = np.minimum(np.arange(last - first) + 1, max_since - 1)
    return phones, since
