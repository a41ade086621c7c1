"""Tests for lm.lyrics: tag variants, normalisation, warnings, errors, and the canonical round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm.lyrics import (
    CANONICAL_TAGS,
    MAX_LINE_CHARS,
    MAX_LYRICS_CHARS,
    MAX_SECTIONS,
    LyricSection,
    LyricsError,
    ParsedLyrics,
    canonical_tag,
    format_lyrics,
    parse_lyrics,
)

CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "corpus"

# (tag as users write it, canonical tag) for spellings that must map silently.
SILENT_VARIANTS = [
    ("[Verse 1]", "verse"), ("[VERSE 2]", "verse"), ("[verse #3]", "verse"), ("[Verse 1: Drake]", "verse"),
    ("[Pre Chorus]", "pre-chorus"), ("[prechorus]", "pre-chorus"), ("[Pre-Chorus]", "pre-chorus"),
    ("[pre_chorus]", "pre-chorus"), ("[Chorus]", "chorus"), ("[Hook]", "chorus"), ("[Refrain]", "chorus"),
    ("[Bridge]", "bridge"), ("[Intro]", "intro"), ("[Outro]", "outro"), ("[End]", "outro"),
    ("[Ending]", "outro"), ("[Instrumental]", "inst"), ("[Interlude]", "inst"), ("[Solo]", "inst"),
    ("[Break]", "inst"), ("[inst]", "inst"),
]


def _variant_text(tag: str) -> str:
    # The variant is the second section and has no words, so instrumental tags keep an empty section and
    # sung tags are tested with words in a second copy below.
    return f"[verse]\nhello there\n\n{tag}\nsing this line\n"


@pytest.mark.parametrize(("written", "expected"), SILENT_VARIANTS)
def test_tag_variants_map_to_canonical_tags(written, expected):
    parsed = parse_lyrics(_variant_text(written))
    assert [s.tag for s in parsed.sections] == ["verse", expected]
    assert not any("tag" in w for w in parsed.warnings), parsed.warnings
    if expected == "inst":  # the tag promises no vocals: words under it are dropped, with a warning
        assert parsed.sections[1].lines == []
        assert any("ignored" in w and "line 4" in w for w in parsed.warnings)
    else:
        assert parsed.sections[1].lines == ["sing this line"]


@pytest.mark.parametrize(("written", "expected"), [
    ("[Post-Chorus]", "chorus"), ("[Final Chorus]", "chorus"), ("[Guitar Solo]", "inst"),
    ("[Instrumental Break]", "inst"), ("[Rap Verse]", "verse"),
])
def test_approximate_tags_map_with_a_warning(written, expected):
    parsed = parse_lyrics(_variant_text(written))
    assert parsed.sections[1].tag == expected
    assert any(f"line 4: tag {written}" in w and f"[{expected}]" in w for w in parsed.warnings), parsed.warnings


def test_unknown_tags_are_reported_with_line_numbers_and_a_choice():
    text = "[verse]\nfirst line\n[Drop]\n\n[Spoken Word]\nwe talk now\n"
    parsed = parse_lyrics(text)
    assert [s.tag for s in parsed.sections] == ["verse", "inst", "verse"]
    assert any("line 3: unknown tag [Drop]; treated as [inst]" in w for w in parsed.warnings)
    assert any("line 5: unknown tag [Spoken Word]; treated as [verse]" in w for w in parsed.warnings)
    assert canonical_tag("Drop", has_words=True)[0] == "verse"


@pytest.mark.parametrize("tag", ["[Chorus x2]", "[Chorus (x2)]", "[CHORUS 2x]"])
def test_repeat_marker_is_warned_and_not_expanded(tag):
    parsed = parse_lyrics(f"{tag}\nla la la\n")
    assert [s.tag for s in parsed.sections] == ["chorus"]
    assert any("repeat marker" in w and "line 1" in w for w in parsed.warnings)
    assert not any("read as" in w for w in parsed.warnings)


def test_words_on_the_tag_line_are_kept():
    assert parse_lyrics("[Chorus] we rise\nwe fall\n").sections == [
        LyricSection("chorus", ["we rise", "we fall"], ["we rise", "we fall"])]


def test_parenthesised_backing_vocals_keep_words_and_warn_once():
    parsed = parse_lyrics("[verse]\nI run (run away)\n(ooh yeah)\n")
    assert parsed.sections[0].lines == ["i run run away", "ooh yeah"]
    backing = [w for w in parsed.warnings if "parentheses" in w]
    assert len(backing) == 1 and backing[0].startswith("line 2:")


def test_normalisation_quotes_nfkc_emoji_whitespace_and_case():
    parsed = parse_lyrics("[verse]\n  \u201cHello\u201d   \uff37orld\u2019s\tend \U0001f3b5\u2764\ufe0f *\n")
    section = parsed.sections[0]
    assert section.lines == ['"hello" world\'s end']
    assert section.display_lines == ['"Hello" World\'s end']
    removed = [w for w in parsed.warnings if w.startswith("removed characters")]
    assert len(removed) == 1
    assert "'\U0001f3b5'" in removed[0] and "'\u2764'" in removed[0] and "'*'" in removed[0]


def test_letters_of_other_scripts_and_accents_survive():
    parsed = parse_lyrics("[verse]\nCafé niño naïve\nпривет мир\n")
    assert parsed.sections[0].lines == ["café niño naïve", "привет мир"]
    assert parsed.warnings == []


def test_empty_vocal_sections_are_dropped_but_instrumental_ones_kept():
    parsed = parse_lyrics("[intro]\n\n[verse]\nwords here\n\n[chorus]\n\n[inst]\n[outro]\n")
    assert [(s.tag, s.is_instrumental) for s in parsed.sections] == [
        ("intro", True), ("verse", False), ("inst", True), ("outro", True)]
    assert any("line 6: [chorus] has no words and was dropped" in w for w in parsed.warnings)


def test_untagged_blocks_become_verses_and_a_repeated_block_the_chorus():
    text = "walking down\nthe road\n\nhold on tight\nhold on\n\nanother day\n\nHold on tight\nhold on\n"
    parsed = parse_lyrics(text)
    assert [s.tag for s in parsed.sections] == ["verse", "chorus", "verse", "chorus"]
    assert parsed.sections[0].lines == ["walking down", "the road"]
    assert any("no section tags found" in w for w in parsed.warnings)


def test_text_before_the_first_tag_goes_into_a_verse():
    parsed = parse_lyrics("opening words\n\n[chorus]\nthe hook\n")
    assert [(s.tag, s.lines) for s in parsed.sections] == [("verse", ["opening words"]), ("chorus", ["the hook"])]
    assert any(w.startswith("line 1: lyrics before the first tag") for w in parsed.warnings)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("   \n\n\t", "empty"),
    ("[verse]\n" + "la " * (MAX_LYRICS_CHARS // 3 + 10), f"at most {MAX_LYRICS_CHARS:,}"),
    ("[verse]\nfine\n" + "a" * (MAX_LINE_CHARS + 1), f"line 3 is {MAX_LINE_CHARS + 1} characters"),
    ("".join(f"[verse]\nline {i}\n" for i in range(MAX_SECTIONS + 1)), f"{MAX_SECTIONS + 1} sections"),
    ("[intro]\n[inst]\n[outro]\n", "no words to sing"),
    ("[verse]\n\U0001f3b5\U0001f3b6\n", "no words to sing"),
    ("\U0001f3b5 \U0001f3b6", "nothing usable"),
])
def test_unusable_lyrics_raise_clear_errors(text, message):
    with pytest.raises(LyricsError, match=message.replace("[", r"\[")):
        parse_lyrics(text)


def test_tags_only_are_fine_without_vocals_and_non_text_is_refused():
    parsed = parse_lyrics("[intro]\n[inst]\n[outro]\n", require_vocals=False)
    assert [s.tag for s in parsed.sections] == ["intro", "inst", "outro"] and not parsed.has_words
    with pytest.raises(LyricsError, match="must be text"):
        parse_lyrics(None)  # type: ignore[arg-type]


ROUND_TRIP_TEXTS = [
    "[Verse 1]\nHello \u201cworld\u201d\n(ooh)\n[Hook]\nSing It\n[Drop]\n[Bridge]\n\n[Outro]\nbye\n",
    "no tags here\nat all\n\nrepeat me\n\nsomething else\n\nrepeat me\n",
    "lead in\n[Pre Chorus]\n\U0001f3b5 going up \U0001f3b5\n[Chorus x2]\nUP\n[Instrumental]\n",
    "[intro]\n\n[verse]\nthe unfortunate night counts nearly\n\n[chorus]\nsing it to the drain\n",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_canonical_round_trip(text):
    parsed = parse_lyrics(text)
    canonical = format_lyrics(parsed)
    again = parse_lyrics(canonical)
    assert again == parsed
    assert again.warnings == []  # the canonical form has nothing left to fix
    assert format_lyrics(again) == canonical
    assert all(s.tag in CANONICAL_TAGS for s in again.sections)


def test_equality_ignores_warnings_but_not_sections():
    section = LyricSection("verse", ["a"], ["A"])
    assert ParsedLyrics([section], ["w"]) == ParsedLyrics([section], [])
    assert ParsedLyrics([section]) != ParsedLyrics([LyricSection("chorus", ["a"], ["A"])])


def test_corpus_lyrics_txt_parses_to_the_planned_sections():
    from corpus.music import Section
    from corpus.song import _lyrics_text

    names = ["intro", "verse", "pre-chorus", "chorus", "inst", "verse", "chorus", "bridge", "outro"]
    sections = [Section(name, 0, 2, vocal=name not in ("intro", "inst", "outro")) for name in names]
    lines = [{"section": i, "text": f"{name} line {k} don't stop"} for i, name in enumerate(names)
             if sections[i].vocal for k in range(2)]
    parsed = parse_lyrics(_lyrics_text({"sections": sections, "lines": lines}))
    assert [s.tag for s in parsed.sections] == names
    for index, section in enumerate(parsed.sections):
        assert section.lines == [row["text"] for row in lines if row["section"] == index]
    assert parsed.warnings == []


@pytest.mark.skipif(not CORPUS_DIR.is_dir(), reason="no generated corpus in data/corpus")
def test_generated_corpus_lyrics_match_their_meta():
    for lyrics_path in sorted(CORPUS_DIR.glob("*/*/lyrics.txt"))[:40]:
        meta = json.loads((lyrics_path.parent / "meta.json").read_text())
        parsed = parse_lyrics(lyrics_path.read_text(), require_vocals=False)
        assert [(s.tag, not s.is_instrumental) for s in parsed.sections] == [
            (s["name"], s["vocal"]) for s in meta["sections"]], lyrics_path
        assert parsed.warnings == [], lyrics_path
