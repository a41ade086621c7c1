"""Tests for corpus.lyrics and the shipped word bank (fast: no festival, no wordfreq)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from corpus.lyrics import (
    BANK_PATH,
    KINDS,
    SLOT_CLASSES,
    TEMPLATES,
    VOWELS,
    Line,
    LyricWriter,
    Syllable,
    Word,
    load_word_bank,
    rhyme_key,
    template_literals,
)


@pytest.fixture(scope="module")
def bank():
    return load_word_bank()


@pytest.fixture(scope="module")
def sample(bank):
    """(kind, lines, rhyme groups) for 120 sections across kinds, lengths and themes."""
    writer = LyricWriter(bank, np.random.default_rng(123))
    out = []
    for i in range(120):
        kind = KINDS[i % len(KINDS)]
        lines = writer.section(kind, 2 + i % 5, theme=("love", "sea", None, "zebra")[i % 4])
        out.append((kind, lines, list(writer.last_rhyme_groups)))
    return out


def test_json_bank_has_syllables_for_every_word():
    data = json.loads(BANK_PATH.read_text(encoding="utf-8"))
    words = data["words"]
    assert len(words) > 5000
    for text, entry in words.items():
        assert entry["syl"], text
        for phones, stress in entry["syl"]:
            assert phones and all(isinstance(p, str) and p.isalpha() for p in phones), text
            assert stress in (0, 1, 2), text
            # festival syllables carry exactly one vowel nucleus
            assert sum(p in VOWELS for p in phones) == 1, (text, phones)
        assert entry["cls"], text
        assert entry["rhyme"] == rhyme_key(entry["syl"]), text


def test_bank_is_broad_per_class(bank):
    counts = {c: len(bank.words_of(c)) for c in SLOT_CLASSES}
    assert counts["nn"] > 1500 and counts["jj"] > 500 and counts["nns"] > 500
    assert min(counts.values()) >= 100, counts


def test_template_literals_in_bank(bank):
    assert sum(len(v) for v in TEMPLATES.values()) >= 60
    for word in template_literals():
        assert word in bank, word
        assert "function" in bank.classes[word]


def test_known_festival_syllabification(bank):
    # festival (cmu lexicon) gives "hour" and "fire" two syllables; the bank must follow festival.
    assert len(bank.lookup("hour").syllables) == 2
    assert len(bank.lookup("fire").syllables) == 2
    assert bank.lookup("morning").syllables == (Syllable(("m", "ao", "r"), 1), Syllable(("n", "ih", "ng"), 0))
    with pytest.raises(KeyError):
        bank.lookup("notaword")


def test_rhyme_key():
    sylls = (Syllable(("m", "ao", "r"), 1), Syllable(("n", "ih", "ng"), 0))
    assert rhyme_key(sylls) == "ao r n ih ng"
    assert rhyme_key([(("dh", "ax"), 0)]) == "ax"  # nothing stressed: last syllable
    assert rhyme_key([(("t", "ax"), 0), (("n", "ay", "t"), 1)]) == "ay t"


def test_line_properties():
    w1 = Word("the", (Syllable(("dh", "ax"), 0),))
    w2 = Word("morning", (Syllable(("m", "ao", "r"), 1), Syllable(("n", "ih", "ng"), 0)))
    line = Line((w1, w2))
    assert line.text == "the morning" and line.n_syllables == 3


def test_deterministic(bank):
    def run(seed):
        w = LyricWriter(bank, np.random.default_rng(seed))
        return [ln.text for k in KINDS for ln in w.section(k, 4, theme="night")]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_lines_well_formed(bank, sample):
    for _kind, lines, _groups in sample:
        for line in lines:
            assert 5 <= line.n_syllables <= 10, line.text
            assert line.text == line.text.lower()
            assert all(c.isalpha() or c in " '" for c in line.text), line.text
            for w in line.words:
                # every word comes from the bank, with the bank's exact syllables
                assert bank.lookup(w.text) == w, w.text


def test_section_lengths_and_custom_ranges(bank):
    writer = LyricWriter(bank, np.random.default_rng(9))
    for kind in KINDS:
        for n in (1, 2, 3, 4, 5, 8):
            assert len(writer.section(kind, n)) == n
        for lo, hi in ((2, 3), (3, 4), (3, 6), (8, 12), (7, 7)):
            for line in writer.section(kind, 4, min_syllables=lo, max_syllables=hi):
                assert lo <= line.n_syllables <= hi, (kind, lo, hi, line.text)
    with pytest.raises(ValueError):
        writer.section("outro", 4)
    with pytest.raises(ValueError):
        writer.section("verse", 4, min_syllables=6, max_syllables=5)


def test_rhyming_groups(bank, sample):
    schemes = set()
    for kind, lines, groups in sample:
        covered = sorted(i for g in groups for i in g)
        assert covered == list(range(len(lines)))
        for group in groups:
            ends = [lines[i].words[-1].text for i in group]
            keys = {bank.rhyme_key_of(t) for t in ends}
            assert len(keys) == 1, (kind, [lines[i].text for i in group])
            assert len(set(ends)) == len(ends), ends  # rhyming lines end on different words
        pairs = tuple(g for g in groups if len(g) == 2)
        if pairs:
            schemes.add("AABB" if pairs[0] == (0, 1) else "ABAB")
    assert schemes == {"AABB", "ABAB"}


def test_chorus_hook_repeat(sample):
    repeats = [lines for kind, lines, _ in sample if kind == "chorus" and len(lines) >= 3
               and lines[-1] == lines[0]]
    assert repeats, "some choruses should end on their first line"
    for _kind, lines, _ in sample:
        # apart from the hook, lines within a section are not copies of each other
        assert len({ln.text for ln in lines[:-1]}) == len(lines) - 1


def test_articles(bank, sample):
    for _kind, lines, _ in sample:
        for line in lines:
            for a, nxt in itertools.pairwise(line.words):
                if a.text in ("a", "an"):
                    vowel = nxt.syllables[0].phones[0] in VOWELS
                    assert a.text == ("an" if vowel else "a"), line.text


def test_theme_nouns_recur(bank):
    writer = LyricWriter(bank, np.random.default_rng(3))
    themed = writer.theme_nouns("sea")
    assert {"sea", "ocean"} <= {w.text for w in themed}
    texts = " ".join(ln.text for _ in range(10) for ln in writer.section("verse", 4, theme="sea"))
    assert sum(texts.split().count(w.text) for w in themed) >= 5
    # an unknown theme still gets a stable set of recurring nouns
    assert writer.theme_nouns("zebra") == writer.theme_nouns("zebra")


def test_breadth(bank):
    writer = LyricWriter(bank, np.random.default_rng(0))
    seen: set[str] = set()
    for i in range(300):
        for line in writer.section(KINDS[i % len(KINDS)], 4 + i % 3):
            seen.update(w.text for w in line.words)
    assert len(seen) > 1500, len(seen)
