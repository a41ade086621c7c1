"""Lyrics parsing and normalisation, shared by the LM (text for the model) and the app's lyric checker.

Users paste lyrics written for other systems (Suno, Udio, Genius), so tags come in many spellings:
``[Verse 1]``, ``[PRE CHORUS]``, ``[Hook]``, ``[Guitar Solo]``, ``[Chorus x2]``. ``parse_lyrics`` maps them
onto the seven canonical tags the corpus uses and says in ``warnings`` (with line numbers) everything it
changed, so the checker can show it and the user can fix the source. What it cannot use raises
``LyricsError`` with a message fit for the UI.

Decisions, each reported as a warning when it applies:
- unknown tags (``[Drop]``, ``[Spoken Word]``) become ``verse`` when words follow them, ``inst`` when none do
  (a wordless unknown part is most likely instrumental, and dropping it would lose its length);
- ``[Post-Chorus]`` becomes ``chorus``; ``[Chorus x2]`` keeps one copy (repeats are not expanded);
- words in parentheses (backing vocals) are kept as lead words without the parentheses; inline ``[...]``
  directions inside a line are removed;
- words under ``[inst]`` are dropped (the tag promises no vocals); ``intro``/``outro`` may hold words;
- vocal sections left without words are dropped; ``intro``/``inst``/``outro`` without words are kept as
  instrumental sections;
- lines before the first tag form a ``verse``; untagged text is split at blank lines, a block that repeats
  verbatim is a ``chorus`` and every other block a ``verse``.

``format_lyrics`` writes the canonical form the corpus writes to ``lyrics.txt`` (``corpus/song.py``):
``[tag]`` then one line per lyric line, sections separated by a blank line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

CANONICAL_TAGS = ("intro", "verse", "pre-chorus", "chorus", "bridge", "inst", "outro")
# Tags that may stand without words: they are played, not sung.
INSTRUMENTAL_TAGS = frozenset({"intro", "inst", "outro"})

MAX_LYRICS_CHARS = 5_000  # about three times the longest pop lyric; keeps the LM prompt bounded
MAX_LINE_CHARS = 200  # a longer "line" is almost always a pasted paragraph without line breaks
MAX_SECTIONS = 40
LONG_SECTION_LINES = 16  # warn only: a section this long is usually two sections missing a tag between them

# Exact spellings (after `_tag_key`) that map without a warning: they mean the same thing everywhere.
_TAG_ALIASES = {
    "intro": "intro",
    "verse": "verse",
    "pre chorus": "pre-chorus", "prechorus": "pre-chorus", "pre": "pre-chorus",
    "build": "pre-chorus", "build up": "pre-chorus", "buildup": "pre-chorus",
    "chorus": "chorus", "hook": "chorus", "refrain": "chorus",
    "bridge": "bridge",
    "inst": "inst", "instrumental": "inst", "interlude": "inst", "solo": "inst", "break": "inst",
    "outro": "outro", "end": "outro", "ending": "outro",
}
# Spellings that map to a canonical tag with a warning, because the canonical tag only approximates them.
_TAG_APPROXIMATIONS = {"post chorus": "chorus", "postchorus": "chorus"}
# Keywords tried in this order inside longer tags ("[Final Chorus]", "[Guitar Solo]"); multi-word keys first
# so "pre chorus" is not read as "chorus".
_TAG_KEYWORDS = (
    ("pre chorus", "pre-chorus"), ("post chorus", "chorus"), ("chorus", "chorus"), ("hook", "chorus"),
    ("refrain", "chorus"), ("verse", "verse"), ("bridge", "bridge"), ("intro", "intro"), ("outro", "outro"),
    ("instrumental", "inst"), ("interlude", "inst"), ("solo", "inst"), ("break", "inst"),
)

_TAG_LINE = re.compile(r"^\[([^\[\]]*)\]\s*(.*)$")
_INLINE_DIRECTION = re.compile(r"\[[^\[\]]*\]")
_REPEAT_MARKER = re.compile(r"\s*\b(?:x\s*\d+|\d+\s*x)\s*$")  # "chorus x2", "chorus 2x"
_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
})
_PUNCTUATION = frozenset("'\",.!?-:;")
_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd"})


class LyricsError(ValueError):
    """Lyrics that cannot be used; the message is written for the person who typed them."""


@dataclass
class LyricSection:
    """One section: a canonical tag and its lines, lower-cased for the model.

    ``display_lines`` are the same lines with the user's casing, for the checker and ``format_lyrics``.
    """

    tag: str
    lines: list[str]
    display_lines: list[str] = field(default_factory=list)

    @property
    def is_instrumental(self) -> bool:
        return not self.lines

    @property
    def text(self) -> str:
        """The lines joined by newlines: what the text tokenizer sees for this section."""
        return "\n".join(self.lines)


@dataclass
class ParsedLyrics:
    """Sections plus human-readable warnings. Equality compares sections only, so a round trip through
    ``format_lyrics`` (which has nothing left to warn about) compares equal."""

    sections: list[LyricSection]
    warnings: list[str] = field(default_factory=list, compare=False)

    @property
    def has_words(self) -> bool:
        return any(section.lines for section in self.sections)


def _tag_words(raw: str) -> str:
    """A tag's name part in plain lower-case words: 'Chorus (x2): Drake' -> 'chorus x2'."""
    return " ".join(re.sub(r"[^\w\s#]|_", " ", raw.split(":", 1)[0].lower()).split())


def _tag_key(raw: str) -> str:
    """Reduce a tag to comparable words: '[VERSE 2: Drake]' -> 'verse', 'Pre_Chorus' -> 'pre chorus'."""
    key = _REPEAT_MARKER.sub("", _tag_words(raw))
    key = re.sub(r"[#\d]+", " ", key)  # section numbers: "verse 1", "verse #2"
    return " ".join(key.split())


def canonical_tag(raw: str, has_words: bool = True) -> tuple[str, str | None]:
    """Map a tag's inner text to a canonical tag; return ``(tag, note)`` where ``note`` explains a guess.

    ``has_words`` decides the fallback for unknown tags: sung parts become ``verse``, wordless ones ``inst``.
    """
    key = _tag_key(raw)
    if key in _TAG_ALIASES:
        return _TAG_ALIASES[key], None
    if key in _TAG_APPROXIMATIONS:
        tag = _TAG_APPROXIMATIONS[key]
        return tag, f"tag [{raw}] has no canonical equivalent; treated as [{tag}]"
    for keyword, tag in _TAG_KEYWORDS:
        if re.search(rf"\b{keyword}\b", key):
            return tag, f"tag [{raw}] read as [{tag}]"
    fallback = "verse" if has_words else "inst"
    return fallback, f"unknown tag [{raw}]; treated as [{fallback}] ({'it has' if has_words else 'no'} words)"


def _char_label(char: str) -> str:
    return repr(char) if char.isprintable() and not char.isspace() else f"U+{ord(char):04X}"


def _is_kept_char(char: str) -> bool:
    if char == " " or char in _PUNCTUATION:
        return True
    # Variation selectors are combining marks (Mn) but only decorate emoji.
    if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
        return False
    return unicodedata.category(char) in _LETTER_CATEGORIES


@dataclass
class _Cleaner:
    """Per-line normalisation that collects what it removed, so each kind is warned about once."""

    removed: set[str] = field(default_factory=set)
    backing_vocal_line: int | None = None
    direction_line: int | None = None

    def clean(self, line: str, number: int) -> str:
        if "(" in line or ")" in line:
            self.backing_vocal_line = self.backing_vocal_line or number
            line = line.replace("(", " ").replace(")", " ")
        if _INLINE_DIRECTION.search(line):
            self.direction_line = self.direction_line or number
            line = _INLINE_DIRECTION.sub(" ", line)
        kept = []
        for char in line:
            if char.isspace():
                kept.append(" ")
            elif _is_kept_char(char):
                kept.append(char)
            else:
                self.removed.add(char)
        line = " ".join("".join(kept).split())
        if len(line) > MAX_LINE_CHARS:
            raise LyricsError(f"line {number} is {len(line)} characters long (at most {MAX_LINE_CHARS}); "
                              "break it into shorter lines")
        return line

    def warnings(self) -> list[str]:
        notes = []
        if self.backing_vocal_line is not None:
            notes.append(f"line {self.backing_vocal_line}: words in parentheses (backing vocals) are sung as "
                         "lead words; parentheses removed")
        if self.direction_line is not None:
            notes.append(f"line {self.direction_line}: bracketed directions inside lines were removed")
        if self.removed:
            listed = ", ".join(_char_label(c) for c in sorted(self.removed))
            notes.append(f"removed characters that are not letters, digits or basic punctuation: {listed}")
        return notes


@dataclass
class _RawSection:
    tag_text: str | None  # None: untagged text
    line_number: int
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, cleaned line)
    blocks: list[list[str]] = field(default_factory=list)  # blank-line blocks, for untagged text


def _split(text: str, cleaner: _Cleaner) -> list[_RawSection]:
    """Cut normalised text into raw sections at tag lines; untagged lines keep their blank-line blocks."""
    raw_sections: list[_RawSection] = []
    current: _RawSection | None = None
    block_open = False
    for number, source in enumerate(text.split("\n"), start=1):
        stripped = source.strip()
        tag_match = _TAG_LINE.match(stripped)
        if tag_match:
            current = _RawSection(tag_match.group(1).strip(), number)
            raw_sections.append(current)
            stripped = tag_match.group(2)  # "[Chorus] words" keeps the words as the first line
        if not stripped:
            block_open = False
            continue
        line = cleaner.clean(stripped, number)
        if not line:
            continue
        if current is None:
            current = _RawSection(None, number)
            raw_sections.append(current)
        current.lines.append((number, line))
        if current.tag_text is None:
            if not block_open:
                current.blocks.append([])
            current.blocks[-1].append(line)
        block_open = True
    return raw_sections


def _sections_from_blocks(blocks: list[list[str]]) -> list[tuple[str, list[str]]]:
    """Untagged text: a block that appears more than once (case-insensitively) is the chorus."""
    keys = [tuple(line.lower() for line in block) for block in blocks]
    return [("chorus" if keys.count(key) > 1 else "verse", block) for key, block in zip(keys, blocks, strict=True)]


def parse_lyrics(text: str, require_vocals: bool = True) -> ParsedLyrics:
    """Parse and normalise lyrics; raise ``LyricsError`` when they cannot be used.

    ``require_vocals``: the generation mode sings, so lyrics without any words are an error. With
    ``require_vocals=False`` (instrumental modes, the corpus reader) tags alone are fine.
    """
    if not isinstance(text, str):
        raise LyricsError(f"lyrics must be text, got {type(text).__name__}")
    if not text.strip():
        raise LyricsError("the lyrics are empty; write at least one line, e.g. '[verse]' then a line of words")
    if len(text) > MAX_LYRICS_CHARS:
        raise LyricsError(f"the lyrics are {len(text):,} characters long (at most {MAX_LYRICS_CHARS:,}); "
                          "shorten them")
    # NFKC folds full-width letters, ligatures and "…" to plain forms; curly quotes survive it, hence _QUOTES.
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    cleaner = _Cleaner()
    warnings: list[str] = []
    sections: list[LyricSection] = []
    raw_sections = _split(text, cleaner)
    has_tags = any(raw.tag_text is not None for raw in raw_sections)
    for raw in raw_sections:
        words = [line for _, line in raw.lines]
        if raw.tag_text is None:
            if has_tags:
                warnings.append(f"line {raw.line_number}: lyrics before the first tag were put in a [verse]")
                pieces = [("verse", words)]
            else:
                pieces = _sections_from_blocks(raw.blocks)
                warnings.append(f"no section tags found; read {len(pieces)} blank-line-separated blocks as "
                                + ", ".join(f"[{tag}]" for tag, _ in pieces))
        else:
            tag, note = canonical_tag(raw.tag_text, has_words=bool(words))
            if note:
                warnings.append(f"line {raw.line_number}: {note}")
            if _REPEAT_MARKER.search(_tag_words(raw.tag_text)):
                warnings.append(f"line {raw.line_number}: repeat marker in [{raw.tag_text}] ignored; "
                                "write the section out again to repeat it")
            if tag == "inst" and words:
                warnings.append(f"line {raw.line_number}: words under [{raw.tag_text}] ignored: "
                                "[inst] sections are instrumental")
                words = []
            if not words and tag not in INSTRUMENTAL_TAGS:
                warnings.append(f"line {raw.line_number}: [{raw.tag_text}] has no words and was dropped "
                                "(use [inst] for an instrumental part)")
                continue
            if len(words) > LONG_SECTION_LINES:
                warnings.append(f"line {raw.line_number}: [{raw.tag_text}] has {len(words)} lines; "
                                "consider splitting it (a missing tag?)")
            pieces = [(tag, words)]
        sections.extend(LyricSection(tag, [w.lower() for w in lines], list(lines)) for tag, lines in pieces)

    warnings.extend(cleaner.warnings())
    if len(sections) > MAX_SECTIONS:
        raise LyricsError(f"the lyrics have {len(sections)} sections (at most {MAX_SECTIONS}); merge or remove some")
    parsed = ParsedLyrics(sections, warnings)
    if not has_tags and not sections:
        raise LyricsError("nothing usable is left in the lyrics: no section tags and no words "
                          "(only symbols or emoji were found)")
    if (require_vocals or not sections) and not parsed.has_words:
        raise LyricsError("the lyrics have section tags but no words to sing; add lyric lines under "
                          "[verse]/[chorus], or choose an instrumental mode")
    return parsed


def format_lyrics(parsed: ParsedLyrics) -> str:
    """Write the canonical text (the corpus's ``lyrics.txt`` form) with the user's casing."""
    blocks = ["\n".join([f"[{section.tag}]", *(section.display_lines or section.lines)])
              for section in parsed.sections]
    return "\n\n".join(blocks) + "\n"
