"""Template-based lyric writer over a broad, festival-syllabified word bank.

Why this exists
---------------
* Whisper must be able to transcribe the sung result.  Random word strings gave a WER of about 0.8, so
  lines are built from grammatical templates ("i walked along the river in the rain") whose slots are
  filled with words of the right part of speech.  Real English n-grams give the recogniser's language
  model something to hold on to.
* Users type words the corpus never used, so the slots draw from several thousand common words
  (``corpus/data/wordbank.json``, built by ``corpus.wordbank_build``) instead of a small curated list.
* festival sings the lines, and its PITCH/DURATION lists need exactly one entry per *festival*
  syllable.  Every word of every line therefore comes from the bank, whose syllables and phones were
  taken from festival's own lexicon (``lex.lookup``), e.g. festival says "hour" has two syllables.
* Lines rhyme (AABB or ABAB) on a rhyme key: the phones from the vowel of the last stressed syllable
  to the end of the word.

This module is pure python + json at runtime: no festival calls, no wordfreq.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BANK_PATH = Path(__file__).parent / "data" / "wordbank.json"

# Slot classes (coarse Penn tags).  Templates name them as {nn}, {vbd}, ...
SLOT_CLASSES = ("nn", "nns", "vb", "vbz", "vbg", "vbd", "vbn", "jj", "rb")
VOWELS = frozenset(("aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "eh", "el", "em", "en", "er", "ey", "ih",
                    "iy", "ow", "oy", "uh", "uw"))
KINDS = ("verse", "pre-chorus", "chorus", "bridge")

# Every template ends with a slot so that the line-final word can be chosen from a rhyme class.
# Literal words are spelled out (function words are never drawn from the bank by POS) and must be in the
# bank too; wordbank_build collects them from here.  "a" is fixed to "a"/"an" after filling.
TEMPLATES: dict[str, tuple[str, ...]] = {
    # Verses are narrative: past tense, places, small scenes.
    "verse": (
        "i {vbd} along the {nn} in the {nn}",
        "you never said a word about the {nn}",
        "i {vbd} the {jj} {nn}",
        "we were {vbg} through the {nn}",
        "she {vbd} me by the {nn}",
        "the {nn} was {jj} and {jj}",
        "there was a {nn} on the {nn}",
        "i remember the {jj} {nns}",
        "he {vbz} the {nns} every {nn}",
        "my {nn} {vbd} when you {vbd}",
        "i was {vbg} in the {jj} {nn}",
        "the {nns} {vbd} {rb}",
        "you {vbd} a {nn} for the {nn}",
        "down by the {nn} where the {nns} {vb}",
        "i could {vb} the {nn} from my {nn}",
        "every {nn} was {jj}",
        "in the {nn} of the {jj} {nn}",
        "we had {vbn} it all {rb}",
        "they {vbd} about the {nn}",
        "she was {jj} and i was {jj}",
        "the {nn} {vbd} through the {nn}",
        "i found a {nn} in the {nn}",
        "you left your {nn} on the {nn}",
        "the {jj} {nn} {vbz} {rb}",
        "we {vbd} a {jj} {nn}",
    ),
    # Pre-choruses build tension: questions, present tense, "and now", "cause".
    "pre-chorus": (
        "and now the {nn} is {vbg}",
        "tell me why the {nn} {vbz} so {jj}",
        "can you feel the {nn}",
        "maybe we are {vbg} {rb}",
        "and i can hear the {nns}",
        "every {nn} {vbz} {rb}",
        "so hold on to the {nn}",
        "we don't have to {vb}",
        "cause the {nn} is {jj}",
        "i know the {nns} will {vb}",
        "just a little more {nn}",
        "it feels so {jj}",
        "don't you see the {nn}",
        "something is {vbg} in the {nn}",
        "and we are {vbg} to the {nn}",
    ),
    # Choruses are short and hooky: imperatives, "we", sparse "oh"/"yeah" fillers.
    "chorus": (
        "take me to the {nn}",
        "oh we are {vbg} {rb}",
        "tonight we {vb} the {nn}",
        "hold me in the {nn}",
        "you are my {jj} {nn}",
        "yeah we {vb} {rb}",
        "this is the {nn} of our {nns}",
        "we can {vb} the {nn}",
        "let the {nns} {vb}",
        "all the {nns} are {jj}",
        "i will {vb} you {rb}",
        "oh my {jj} {nn}",
        "come on and {vb}",
        "we are the {nns}",
        "you make me feel so {jj}",
        "never let the {nn} {vb}",
        "sing it to the {nn}",
        "give me all your {nns}",
        "light up the {jj} {nn}",
    ),
    # Bridges are reflective: conditionals, "maybe", "even when".
    "bridge": (
        "if the {nn} could {vb}",
        "maybe i was {jj}",
        "when the {nns} are {vbn}",
        "and if you {vb} the {nn}",
        "i don't know what the {nns} {vb}",
        "even when the {nn} is {jj}",
        "all i need is a {jj} {nn}",
        "somewhere in the {jj} {nn}",
        "we have {vbn} the {nn}",
        "i have never {vbn} a {nn}",
        "so let the {nn} {vb}",
        "nothing {vbz} like the {nn}",
        "you and i are {jj}",
        "what if the {nn} was {jj}",
    ),
}

# Fallback for very short lines (fast tempos leave room for only 2-4 syllables): borrowed by any kind
# when fewer than MIN_TEMPLATES of its own templates fit the syllable range.
SHORT_TEMPLATES = (
    "so {jj}",
    "the {nn}",
    "we {vb}",
    "you {vbd}",
    "oh {nn}",
    "my {jj} {nn}",
    "all the {nns}",
    "{jj} {nns}",
    "hold me {rb}",
    "feel the {nn}",
)
MIN_TEMPLATES = 4

# Recurring nouns for a few named themes; any other theme string seeds a handful of random nouns.
THEME_NOUNS: dict[str, tuple[str, ...]] = {
    "love": ("heart", "love", "kiss", "arms", "eyes", "night", "dream", "touch"),
    "night": ("night", "moon", "stars", "dark", "light", "city", "sky", "dream"),
    "sea": ("sea", "ocean", "wave", "shore", "wind", "water", "boat", "sand"),
    "road": ("road", "car", "highway", "town", "dust", "sun", "wheel", "map"),
    "summer": ("summer", "sun", "beach", "heat", "day", "sky", "water", "fire"),
    "rain": ("rain", "cloud", "storm", "window", "river", "water", "street", "sky"),
    "home": ("home", "door", "house", "family", "mother", "garden", "kitchen", "road"),
    "city": ("city", "street", "light", "train", "crowd", "night", "window", "corner"),
}

_SLOT_RE = re.compile(r"^\{(\w+)\}$")


@dataclass(frozen=True)
class Syllable:
    phones: tuple[str, ...]
    stress: int


@dataclass(frozen=True)
class Word:
    text: str
    syllables: tuple[Syllable, ...]


@dataclass(frozen=True)
class Line:
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def n_syllables(self) -> int:
        return sum(len(w.syllables) for w in self.words)


def rhyme_key(syllables: tuple[Syllable, ...] | list) -> str:
    """Phones from the vowel of the last stressed syllable (last syllable if none) to the word's end."""
    sylls = [s if isinstance(s, Syllable) else Syllable(tuple(s[0]), int(s[1])) for s in syllables]
    idx = max((i for i, s in enumerate(sylls) if s.stress > 0), default=len(sylls) - 1)
    phones = list(sylls[idx].phones)
    start = next((i for i, p in enumerate(phones) if p in VOWELS), 0)
    tail = phones[start:] + [p for s in sylls[idx + 1 :] for p in s.phones]
    return " ".join(tail)


def template_literals() -> set[str]:
    """Every literal (non-slot) word the templates spell out, plus both articles."""
    out = {"a", "an"}
    for templates in (*TEMPLATES.values(), SHORT_TEMPLATES):
        for tok in (t for tpl in templates for t in tpl.split()):
            if not _SLOT_RE.match(tok):
                out.add(tok)
    return out


class WordBank:
    """Read-only view of wordbank.json: words, their classes, weights and rhyme groups."""

    def __init__(self, data: dict):
        self.words: dict[str, Word] = {}
        self.classes: dict[str, tuple[str, ...]] = {}
        self.zipf: dict[str, float] = {}
        self.keys: dict[str, str] = {}
        for text, entry in data["words"].items():
            sylls = tuple(Syllable(tuple(ph), int(st)) for ph, st in entry["syl"])
            self.words[text] = Word(text, sylls)
            self.classes[text] = tuple(entry["cls"])
            self.zipf[text] = float(entry["zipf"])
            self.keys[text] = entry["rhyme"]
        self._by_class: dict[str, list[Word]] = {}
        # class -> rhyme key -> words; insertion order follows the JSON, so iteration is deterministic.
        self.rhymes: dict[str, dict[str, list[Word]]] = {}
        for text, classes in self.classes.items():
            for cls in classes:
                self._by_class.setdefault(cls, []).append(self.words[text])
                self.rhymes.setdefault(cls, {}).setdefault(self.keys[text], []).append(self.words[text])

    def __contains__(self, text: str) -> bool:
        return text in self.words

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, text: str) -> Word:
        try:
            return self.words[text]
        except KeyError:
            raise KeyError(f"word not in bank: {text!r}") from None

    def words_of(self, cls: str) -> list[Word]:
        return list(self._by_class.get(cls, []))

    def rhyme_key_of(self, text: str) -> str:
        return self.keys[text]


@functools.lru_cache(maxsize=1)
def load_word_bank(path: str | None = None) -> WordBank:
    with open(path or BANK_PATH, encoding="utf-8") as f:
        return WordBank(json.load(f))


def word_weight(zipf: float) -> float:
    """Sampling weight: zipf 3 -> 1, 4 -> 6, 5 -> 16, 6 -> 32.  Common words (easier for Whisper) recur,
    the long tail still shows up often enough for breadth."""
    return max(zipf - 2.0, 0.5) ** 5


class _Pool:
    """Weighted sampler over one class; weights favour common words but stay flat enough for breadth."""

    def __init__(self, words: list[Word], zipf: dict[str, float]):
        self.words = words
        weights = np.array([word_weight(zipf[w.text]) for w in words])
        self.cum = np.cumsum(weights).tolist()

    def sample(self, rng: np.random.Generator) -> Word:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.words[min(i, len(self.words) - 1)]


class LyricWriter:
    """Writes sections of rhyming, grammatical lines; deterministic for a given rng state."""

    def __init__(self, bank: WordBank, rng: np.random.Generator):
        self.bank = bank
        self.rng = rng
        self._pools = {c: _Pool(bank.words_of(c), bank.zipf) for c in SLOT_CLASSES}
        self._parsed = {k: [self._parse(t) for t in v] for k, v in TEMPLATES.items()}
        self._short = [self._parse(t) for t in SHORT_TEMPLATES]
        self._theme_cache: dict[str, list[Word]] = {}
        self._key_cache: dict[tuple[str, ...], tuple[list[str], np.ndarray]] = {}
        # Rhyme groups (line indices) of the last section written; tests and callers may inspect it.
        self.last_rhyme_groups: list[tuple[int, ...]] = []

    def _parse(self, template: str) -> tuple[tuple[tuple[bool, str], ...], int]:
        """Tokens as (is_slot, class-or-word) plus the syllables of the literal words."""
        toks, base = [], 0
        for tok in template.split():
            m = _SLOT_RE.match(tok)
            if m:
                toks.append((True, m.group(1)))
            else:
                toks.append((False, tok))
                base += len(self.bank.lookup(tok).syllables)
        return tuple(toks), base

    def theme_nouns(self, theme: str) -> list[Word]:
        """A handful of nouns that recur through a song; chosen once per theme per writer."""
        if theme not in self._theme_cache:
            nouns = [self.bank.lookup(t) for t in THEME_NOUNS.get(theme, ()) if t in self.bank]
            if theme in self.bank and "nn" in self.bank.classes[theme]:
                nouns.append(self.bank.lookup(theme))
            pool = self._pools["nn"]
            while len(nouns) < 5:  # unknown themes still get a consistent set of recurring nouns
                nouns.append(pool.sample(self.rng))
            self._theme_cache[theme] = nouns
        return self._theme_cache[theme]

    @staticmethod
    def _phones(word: Word) -> tuple[str, ...]:
        return tuple(p for s in word.syllables for p in s.phones)

    def _fits(self, parsed, lo: int, hi: int) -> bool:
        toks, base = parsed
        n_slots = sum(1 for is_slot, _ in toks if is_slot)
        return base + n_slots <= hi and base + 4 * n_slots >= lo

    def _candidate_keys(self, classes: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
        """Rhyme keys with enough distinct words across the line-final classes of one rhyme group."""
        cache_key = tuple(sorted(classes))
        if cache_key not in self._key_cache:
            keys, weights = [], []
            first = self.bank.rhymes.get(classes[0], {})
            for key in first:
                per_cls = [self.bank.rhymes.get(c, {}).get(key, []) for c in classes]
                union = {w.text for ws in per_cls for w in ws}
                if all(per_cls) and len(union) >= len(classes):
                    keys.append(key)
                    # Keys weighted by how common their words are: "ay t" (night, light) beats "oy z".
                    weights.append(sum(word_weight(self.bank.zipf[t]) for t in union) ** 0.5)
            w = np.array(weights, dtype=float)
            self._key_cache[cache_key] = (keys, np.cumsum(w) / w.sum() if len(w) else w)
        return self._key_cache[cache_key]

    def _fill(self, parsed, end_word: Word, theme_nouns: list[Word] | None, lo: int, hi: int):
        """Fill the slots of one template; the final slot is end_word.  None if the syllables miss."""
        toks, _ = parsed
        words: list[Word] = []
        last = len(toks) - 1
        for i, (is_slot, val) in enumerate(toks):
            if not is_slot:
                words.append(self.bank.lookup(val))
            elif i == last:
                words.append(end_word)
            elif val == "nn" and theme_nouns and self.rng.random() < 0.35:
                words.append(theme_nouns[int(self.rng.integers(len(theme_nouns)))])
            else:
                words.append(self._pools[val].sample(self.rng))
        words = self._fix_articles(words)
        line = Line(tuple(words))
        return line if lo <= line.n_syllables <= hi else None

    def _fix_articles(self, words: list[Word]) -> list[Word]:
        """'a' before consonant sounds, 'an' before vowel sounds (by festival phones, so 'an hour')."""
        out = list(words)
        for i in range(len(out) - 1):
            if out[i].text in ("a", "an"):
                first_phone = out[i + 1].syllables[0].phones[0]
                out[i] = self.bank.lookup("an" if first_phone in VOWELS else "a")
        return out

    def _rhyme_group(self, n: int, templates: list, lo: int, hi: int, theme_nouns, fixed_key=None,
                     used_ends: frozenset[str] = frozenset()) -> list[Line]:
        for _attempt in range(200):
            chosen = [templates[int(self.rng.integers(len(templates)))] for _ in range(n)]
            classes = tuple(p[0][-1][1] for p in chosen)
            if fixed_key is None:
                keys, cum = self._candidate_keys(classes)
                if not keys:
                    continue
                key = keys[min(int(np.searchsorted(cum, self.rng.random())), len(keys) - 1)]
            else:
                key = fixed_key
            lines: list[Line] = []
            taken = set(used_ends)
            for parsed, cls in zip(chosen, classes, strict=True):
                # Homophones ("disc"/"disk") are not a rhyme worth singing: compare phones, not spelling.
                taken_phones = {self._phones(self.bank.lookup(t)) for t in taken}
                options = [w for w in self.bank.rhymes.get(cls, {}).get(key, [])
                           if w.text not in taken and self._phones(w) not in taken_phones]
                if not options:
                    break
                cum = np.cumsum([word_weight(self.bank.zipf[w.text]) for w in options])
                line = None
                for _ in range(30):
                    pick = int(np.searchsorted(cum, self.rng.random() * cum[-1]))
                    end = options[min(pick, len(options) - 1)]
                    line = self._fill(parsed, end, theme_nouns, lo, hi)
                    if line is not None:
                        break
                if line is None:
                    break
                taken.add(line.words[-1].text)
                lines.append(line)
            if len(lines) == n:
                return lines
        raise RuntimeError(f"could not write a rhyming group of {n} lines in [{lo}, {hi}] syllables")

    def section(self, kind: str, n_lines: int, min_syllables: int = 5, max_syllables: int = 10,
                theme: str | None = None) -> list[Line]:
        if kind not in TEMPLATES:
            raise ValueError(f"unknown section kind {kind!r}; expected one of {KINDS}")
        if n_lines < 1 or min_syllables > max_syllables or max_syllables < 2:
            raise ValueError("need n_lines >= 1, min_syllables <= max_syllables and max_syllables >= 2")
        templates = [p for p in self._parsed[kind] if self._fits(p, min_syllables, max_syllables)]
        if len(templates) < MIN_TEMPLATES:
            # An unusual range: too few templates make rhyming groups fail, so borrow other kinds' and
            # the short ones.
            others = [p for ps in self._parsed.values() for p in ps if p not in templates] + self._short
            templates += [p for p in others if self._fits(p, min_syllables, max_syllables)]
        if not templates:
            raise ValueError(f"no template fits {min_syllables}-{max_syllables} syllables")
        theme_nouns = self.theme_nouns(theme) if theme else None

        scheme = "AABB" if self.rng.random() < 0.5 else "ABAB"
        # A chorus may end by repeating its first line (a hook).  The copy's rhyme partner, if any, is
        # keyed to line 0; AABB keeps the copy out of line 0's own group (else it would rhyme with itself).
        repeat = kind == "chorus" and n_lines >= 3 and self.rng.random() < 0.5
        last = n_lines - 1
        if repeat:
            scheme = "AABB"
            groups = _rhyme_groups(scheme, n_lines - 1)
            if groups[-1] == (last - 1,):
                groups[-1] = (last - 1, last)
            else:
                groups.append((last,))
        else:
            groups = _rhyme_groups(scheme, n_lines)

        lines: list[Line | None] = [None] * n_lines
        used: set[str] = set()  # end words already used in this section: no word rhymes with itself
        for group in groups:
            todo = [i for i in group if not (repeat and i == last)]
            if not todo:
                continue
            args = (templates, min_syllables, max_syllables, theme_nouns)
            if repeat and last in group:
                first = lines[0]
                assert first is not None  # the group holding line 0 is written first
                key = self.bank.rhyme_key_of(first.words[-1].text)
                try:
                    made = self._rhyme_group(len(todo), *args, fixed_key=key, used_ends=frozenset(used))
                except RuntimeError:  # line 0's rhyme has no third word of a fitting class: no hook
                    repeat, todo = False, list(group)
                    made = self._rhyme_group(len(todo), *args, used_ends=frozenset(used))
            else:
                made = self._rhyme_group(len(todo), *args, used_ends=frozenset(used))
            for i, line in zip(todo, made, strict=True):
                lines[i] = line
                used.add(line.words[-1].text)
        if repeat:
            lines[last] = lines[0]
        self.last_rhyme_groups = [tuple(g) for g in groups]
        return [ln for ln in lines if ln is not None]


def _rhyme_groups(scheme: str, n: int) -> list[tuple[int, ...]]:
    """Index groups that rhyme: AABB pairs neighbours, ABAB pairs lines two apart in blocks of four."""
    groups: list[tuple[int, ...]] = []
    if scheme == "AABB":
        for i in range(0, n - 1, 2):
            groups.append((i, i + 1))
        if n % 2:
            groups.append((n - 1,))
        return groups
    i = 0
    while i + 4 <= n:
        groups += [(i, i + 2), (i + 1, i + 3)]
        i += 4
    rest = n - i
    if rest >= 2:
        groups.append((i, i + 1))
        i += 2
    if n - i == 1:
        groups.append((i,))
    return groups
