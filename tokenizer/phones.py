"""The CTC label set of the Duo-Tok vocal branch: a blank plus festival's US English "radio" phoneset.

The corpus labels every sung phone with festival's own names (``meta.json`` words → syllables → phones), so
the label set is that phoneset as defined in festival's ``radio_phones.scm``: 20 vowels and syllabic
consonants and 27 consonants. Only 40 of them occur in the corpus's word bank (the lexicon never produces
``axr el em en dx nx hv``), but the rest are kept so that ids stay stable if the word bank grows and so that
any festival transcription can be encoded. Festival's silences (``pau h# brth``) are not phones to
recognise: CTC's blank covers them, so they have no id and ``SILENCES`` lists them for the callers that
drop them. No word-boundary token: the vocal tokens only need to carry what is sung.

Index 0 is the CTC blank (``torch.nn.CTCLoss(blank=0)``); ``len(PHONES)`` = 48 = ``n_ctc_tokens``.
The order is part of every checkpoint trained with CTC: append, never reorder.
"""

from __future__ import annotations

from collections.abc import Iterable

BLANK = 0
BLANK_SYMBOL = "<blank>"

VOWELS = ("aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "eh", "el", "em", "en", "er", "ey", "ih", "iy",
          "ow", "oy", "uh", "uw")
CONSONANTS = ("b", "ch", "d", "dh", "dx", "f", "g", "hh", "hv", "jh", "k", "l", "m", "n", "ng", "nx", "p", "r",
              "s", "sh", "t", "th", "v", "w", "y", "z", "zh")
SILENCES = frozenset({"pau", "h#", "brth"})  # festival's PhoneSet.silences for radio

PHONES: tuple[str, ...] = (BLANK_SYMBOL, *VOWELS, *CONSONANTS)
N_PHONES = len(PHONES)  # blank included: the size of the CTC output layer

_ID_OF = {phone: index for index, phone in enumerate(PHONES)}


def phone_id(phone: str) -> int:
    """The CTC id of a festival phone name. Raises KeyError naming the phone for anything else,
    silences and the blank symbol included (neither is a target)."""
    index = _ID_OF.get(phone)
    if index is None or index == BLANK:
        if phone in SILENCES:
            raise KeyError(f"{phone!r} is a festival silence, not a CTC target; drop it before encoding")
        raise KeyError(f"unknown phone {phone!r}: not in festival's radio phoneset "
                       f"({' '.join(PHONES[1:])})")
    return index


def phones_to_ids(phones: Iterable[str]) -> list[int]:
    """``phone_id`` of each phone, in order."""
    return [phone_id(phone) for phone in phones]


def ids_to_phones(ids: Iterable[int], drop_blank: bool = True) -> list[str]:
    """Phone names of CTC ids (ints or 0-dim tensors). Blanks are dropped unless ``drop_blank`` is False;
    repeats are kept (collapsing them is the CTC decoder's job, not a lookup's)."""
    names = []
    for index in ids:
        index = int(index)
        if not 0 <= index < N_PHONES:
            raise KeyError(f"phone id {index} is out of range 0..{N_PHONES - 1}")
        if index == BLANK and drop_blank:
            continue
        names.append(PHONES[index])
    return names
