"""The LM's id space and per-section sequence layout (DESIGN.md §6), with its exact inverse.

Id space, in this order (so each kind is one contiguous range and a range test is one comparison pair):

    specials [0, S) | text [S, S+T) | vocal codes [.., +Kv) | accompaniment codes [.., +Ka)

Specials, at fixed ids: ``<pad>`` (0), ``<bos>``, ``<eos>``, ``<style>``, ``</style>``, ``<audio>``,
``</audio>``, ``<no_vocal>``, one ``<section:TAG>`` per canonical tag (``lm.lyrics.CANONICAL_TAGS``), ``<word>``
(a word cue, below; it took the id of the first reserved one), then unused ``<reserved_i>`` ids so later
markers (e.g. a classifier-free-guidance null condition) can be added without shifting the text and code
ranges of trained checkpoints.
There is no ``<lyrics>`` marker: the section tag opens a section's lyric text and ``<audio>`` closes it, so a
third marker would only lengthen every sequence.

Sequence (per section, so lyrics sit right before the audio that sings them)::

    <bos> <style> style-text </style> { <section:TAG> lyric-text <audio> v0 a0 v1 a1 … </audio> }* <eos>

Word cues (optional, per section; the LM is trained with or without them, ``LMConfig.word_cues``): inside
``<audio>``, ``<word> word-text`` may stand right before a frame's vocal token, saying "the next word, sung
from this frame on". The section's whole lyric text still opens it (the singer sees the lines ahead), and the
cue tells the model where in that text the singing is, so it need not count hundreds of audio tokens to keep
its place. A cue stands only at a frame boundary, before a frame of the section (never after its last one);
several may stand before one frame; its text may be empty (the unconditional form, ``lm.data.drop_condition``,
keeps each marker and drops the word). Instrumental sections have none::

    <section:verse> lyric-text <audio> v0 a0 <word> give v1 a1 v2 a2 <word> me v3 a3 … </audio>

Phone cues (``LMConfig.phone_cues``) are word cues too, whose text is one piece naming a phone
(``lm.text.TextTokenizer.phone_piece``): each word's cue is followed by a cue for each of its sung phones at the
frame that phone starts in, so the model is told the sound it is about to sing, not only the word::

    … a0 <word> give <word> G v1 a1 v2 a2 <word> IH v3 a3 <word> V v4 a4 …

This layout does not tell the two kinds apart; the text model does (``TextTokenizer.is_phone_cue``).

Instrumental convention: a section with no sung words (``SectionTokens.instrumental``) has ``<no_vocal>`` in
place of lyric text: ``<section:inst> <no_vocal> <audio> v0 a0 … </audio>``. Its vocal slots still exist and
hold real vocal codes (whatever the tokenizer emits for a silent vocal track), so the interleaving is always
uniform ``v a v a``: slot kind depends only on the position inside ``<audio>``, never on the section, which
keeps constrained sampling and the forced-track modes trivial (word cues are not audio slots and do not count
as positions). ``</audio>`` may only appear at an even audio position (a frame boundary). Trailing ``<pad>``
after ``<eos>`` is accepted by ``revert_sequence`` (batch padding); ``build_sequence`` never writes it.

Interleaving lives only in ``interleave`` / ``deinterleave``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lm.lyrics import CANONICAL_TAGS, INSTRUMENTAL_TAGS, LyricsError, canonical_tag, parse_lyrics

LAYOUT_VERSION = 1
FRAME_RATE_HZ = 25  # Duo-Tok token rate, both tracks
SPAN_TOLERANCE_FRAMES = 2  # seconds -> frames rounding may leave the last section this far from the array end

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
STYLE_OPEN, STYLE_CLOSE = "<style>", "</style>"
AUDIO_OPEN, AUDIO_CLOSE = "<audio>", "</audio>"
NO_VOCAL = "<no_vocal>"
WORD = "<word>"
N_RESERVED = 8  # reserved ids at the end of the specials; the first has since become WORD
SECTION_TOKENS = tuple(f"<section:{tag}>" for tag in CANONICAL_TAGS)
SPECIAL_TOKENS = (PAD, BOS, EOS, STYLE_OPEN, STYLE_CLOSE, AUDIO_OPEN, AUDIO_CLOSE, NO_VOCAL, *SECTION_TOKENS,
                  WORD, *(f"<reserved_{i}>" for i in range(1, N_RESERVED)))
_SPECIAL_IDS = {name: index for index, name in enumerate(SPECIAL_TOKENS)}
# Checkpoints saved before WORD existed list "<reserved_0>" in its place; their ids mean the same otherwise.
_RENAMED_RESERVED = {WORD: "<reserved_0>"}


class LayoutError(ValueError):
    """A sequence, a song or a record that does not fit the layout; the message says where and why."""


def _int_array(values, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise LayoutError(f"{what} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


@dataclass(frozen=True)
class Vocabulary:
    """Sizes of the text and code ranges; every id computation goes through here."""

    n_text: int
    codebook_size_vocal: int
    codebook_size_accomp: int

    def __post_init__(self):
        for name in ("n_text", "codebook_size_vocal", "codebook_size_accomp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise LayoutError(f"Vocabulary.{name} must be a positive integer, got {value!r}")

    # ranges
    @property
    def n_special(self) -> int:
        return len(SPECIAL_TOKENS)

    @property
    def text_start(self) -> int:
        return self.n_special

    @property
    def vocal_start(self) -> int:
        return self.text_start + self.n_text

    @property
    def accomp_start(self) -> int:
        return self.vocal_start + self.codebook_size_vocal

    @property
    def size(self) -> int:
        return self.accomp_start + self.codebook_size_accomp

    # specials
    def special_id(self, name: str) -> int:
        if name not in _SPECIAL_IDS:
            raise LayoutError(f"unknown special token {name!r}")
        return _SPECIAL_IDS[name]

    pad_id = property(lambda self: _SPECIAL_IDS[PAD])
    bos_id = property(lambda self: _SPECIAL_IDS[BOS])
    eos_id = property(lambda self: _SPECIAL_IDS[EOS])
    style_open_id = property(lambda self: _SPECIAL_IDS[STYLE_OPEN])
    style_close_id = property(lambda self: _SPECIAL_IDS[STYLE_CLOSE])
    audio_open_id = property(lambda self: _SPECIAL_IDS[AUDIO_OPEN])
    audio_close_id = property(lambda self: _SPECIAL_IDS[AUDIO_CLOSE])
    no_vocal_id = property(lambda self: _SPECIAL_IDS[NO_VOCAL])
    word_id = property(lambda self: _SPECIAL_IDS[WORD])

    def section_id(self, tag: str) -> int:
        if tag not in CANONICAL_TAGS:
            raise LayoutError(f"unknown section tag {tag!r}; expected one of {', '.join(CANONICAL_TAGS)}")
        return _SPECIAL_IDS[f"<section:{tag}>"]

    def section_tag(self, token_id: int) -> str | None:
        """The canonical tag a section-marker id stands for, or None for any other id."""
        name = SPECIAL_TOKENS[token_id] if 0 <= token_id < self.n_special else ""
        return name[len("<section:"):-1] if name.startswith("<section:") else None

    # ids <-> pieces and codes; scalars give ints, arrays give int64 arrays
    def _shift(self, values, start: int, count: int, what: str):
        array = _int_array(values, what)
        if array.size and (array.min() < 0 or array.max() >= count):
            bad = int(array[(array < 0) | (array >= count)].flat[0])
            raise LayoutError(f"{what} {bad} is out of range 0..{count - 1}")
        shifted = array + start
        return int(shifted) if shifted.ndim == 0 else shifted

    def text_id(self, piece):
        return self._shift(piece, self.text_start, self.n_text, "text piece")

    def vocal_id(self, code):
        return self._shift(code, self.vocal_start, self.codebook_size_vocal, "vocal code")

    def accomp_id(self, code):
        return self._shift(code, self.accomp_start, self.codebook_size_accomp, "accompaniment code")

    def text_piece(self, ids):
        return self._unshift(ids, self.text_start, self.n_text, "text")

    def vocal_code(self, ids):
        return self._unshift(ids, self.vocal_start, self.codebook_size_vocal, "vocal")

    def accomp_code(self, ids):
        return self._unshift(ids, self.accomp_start, self.codebook_size_accomp, "accompaniment")

    def _unshift(self, ids, start: int, count: int, what: str):
        array = _int_array(ids, f"{what} ids")
        inside = (array >= start) & (array < start + count)
        if not np.all(inside):
            bad = int(array[~inside].flat[0])
            raise LayoutError(f"id {bad} ({self.describe(bad)}) is not a {what} id")
        local = array - start
        return int(local) if local.ndim == 0 else local

    def _in_range(self, ids, start: int, stop: int):
        inside = (np.asarray(ids) >= start) & (np.asarray(ids) < stop)
        return bool(inside) if inside.ndim == 0 else inside

    def is_special(self, ids):
        return self._in_range(ids, 0, self.text_start)

    def is_text(self, ids):
        return self._in_range(ids, self.text_start, self.vocal_start)

    def is_vocal(self, ids):
        return self._in_range(ids, self.vocal_start, self.accomp_start)

    def is_accomp(self, ids):
        return self._in_range(ids, self.accomp_start, self.size)

    def describe(self, token_id: int) -> str:
        """A readable name for one id, for error messages: '<audio>', 'text:12', 'vocal:7', 'accomp:3'."""
        token_id = int(token_id)
        if 0 <= token_id < self.text_start:
            return SPECIAL_TOKENS[token_id]
        for kind, start, stop in (("text", self.text_start, self.vocal_start),
                                  ("vocal", self.vocal_start, self.accomp_start),
                                  ("accomp", self.accomp_start, self.size)):
            if start <= token_id < stop:
                return f"{kind}:{token_id - start}"
        return f"out-of-range id {token_id}"

    # persistence (stored in the LM's config.json)
    def to_dict(self) -> dict:
        return {"layout_version": LAYOUT_VERSION, "n_text": self.n_text,
                "codebook_size_vocal": self.codebook_size_vocal,
                "codebook_size_accomp": self.codebook_size_accomp, "special_tokens": list(SPECIAL_TOKENS)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Vocabulary:
        """Rebuild from ``to_dict``; refuses a dictionary written with other special tokens, since every id
        of a trained model would then mean something else."""
        if data.get("layout_version", LAYOUT_VERSION) != LAYOUT_VERSION:
            raise LayoutError(f"layout version {data['layout_version']} is not {LAYOUT_VERSION}")
        specials = data.get("special_tokens")
        older = tuple(_RENAMED_RESERVED.get(name, name) for name in SPECIAL_TOKENS)
        if specials is not None and tuple(specials) not in (SPECIAL_TOKENS, older):
            raise LayoutError("the stored special tokens differ from this code's SPECIAL_TOKENS; "
                              "the checkpoint was made with another layout")
        missing = [k for k in ("n_text", "codebook_size_vocal", "codebook_size_accomp") if k not in data]
        if missing:
            raise LayoutError(f"vocabulary dictionary lacks {', '.join(missing)}")
        return cls(int(data["n_text"]), int(data["codebook_size_vocal"]), int(data["codebook_size_accomp"]))


# --- songs as token lists ----------------------------------------------------------------------------------


class WordCue(NamedTuple):
    """``<word> text`` right before the vocal token of ``frame`` (counted inside its section)."""

    frame: int
    text_ids: tuple[int, ...]  # raw sentencepiece pieces of the word; empty in the unconditional form


@dataclass(eq=False)
class SectionTokens:
    """One section: canonical tag, lyric text pieces (raw sentencepiece ids, not yet offset), the two
    frame-aligned code streams (raw codebook indices 0..K-1, 25 Hz) and optional word cues in frame order.
    ``instrumental`` sections have no text and no cues."""

    tag: str
    text_ids: list[int]
    vocal: np.ndarray
    accomp: np.ndarray
    instrumental: bool = False
    cues: list[WordCue] = field(default_factory=list)

    def __post_init__(self):
        self.text_ids = [int(piece) for piece in self.text_ids]
        self.vocal = _int_array(self.vocal, f"vocal codes of [{self.tag}]")
        self.accomp = _int_array(self.accomp, f"accompaniment codes of [{self.tag}]")
        self.cues = [WordCue(int(frame), tuple(int(piece) for piece in pieces)) for frame, pieces in self.cues]
        if self.cues and self.instrumental:
            raise LayoutError(f"[{self.tag}] is instrumental but has {len(self.cues)} word cues")
        frames = [cue.frame for cue in self.cues]
        if frames and (frames != sorted(frames) or frames[0] < 0 or frames[-1] >= self.n_frames):
            raise LayoutError(f"[{self.tag}]: word cues must lie in frame order inside 0..{self.n_frames - 1}, "
                              f"got frames {frames}")

    @property
    def n_frames(self) -> int:
        return len(self.vocal)

    def frames(self, start: int, stop: int) -> SectionTokens:
        """Frames ``start..stop-1`` of this section, with the cues that fall there (renumbered from 0)."""
        cues = [WordCue(cue.frame - start, cue.text_ids) for cue in self.cues if start <= cue.frame < stop]
        return SectionTokens(self.tag, self.text_ids, self.vocal[start:stop], self.accomp[start:stop],
                             self.instrumental, cues)

    def __eq__(self, other) -> bool:
        if not isinstance(other, SectionTokens):
            return NotImplemented
        return (self.tag == other.tag and self.text_ids == other.text_ids
                and self.instrumental == other.instrumental and self.cues == other.cues
                and np.array_equal(self.vocal, other.vocal) and np.array_equal(self.accomp, other.accomp))


@dataclass
class SongTokens:
    """A whole song in raw pieces/codes; ``build_sequence`` turns it into one id sequence."""

    style_ids: list[int]
    sections: list[SectionTokens] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return sum(section.n_frames for section in self.sections)


class SectionSpan(NamedTuple):
    """Where a section's audio sits: on the song's frame timeline and in the id sequence."""

    tag: str
    first_frame: int
    n_frames: int
    token_start: int  # index in the sequence of the section's first audio token (just after <audio>); with
    # word cues the frames lie further on (split_cues separates them)


# --- interleaving: the only place that knows the v a v a order ----------------------------------------------


def interleave(vocal, accomp, vocab: Vocabulary) -> np.ndarray:
    """Frame-aligned code streams (T,) + (T,) -> ids (2T,) as v0 a0 v1 a1 …"""
    vocal_ids, accomp_ids = vocab.vocal_id(np.asarray(vocal)), vocab.accomp_id(np.asarray(accomp))
    if np.ndim(vocal_ids) != 1 or np.shape(vocal_ids) != np.shape(accomp_ids):
        raise LayoutError(f"vocal codes {np.shape(vocal_ids)} and accompaniment codes {np.shape(accomp_ids)} "
                          "must be 1-D and frame-aligned (same length)")
    ids = np.empty(2 * len(vocal_ids), dtype=np.int64)
    ids[0::2], ids[1::2] = vocal_ids, accomp_ids
    return ids


def deinterleave(ids, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Ids (2T,) as v0 a0 v1 a1 … -> (vocal codes (T,), accompaniment codes (T,)); strict about slots."""
    ids = _int_array(ids, "audio ids")
    if ids.ndim != 1:
        raise LayoutError(f"audio ids must be 1-D, got shape {ids.shape}")
    if len(ids) % 2:
        raise LayoutError(f"odd number of audio tokens ({len(ids)}): every frame needs one vocal and one "
                          "accompaniment token")
    for kind, slots, ok in (("vocal", ids[0::2], vocab.is_vocal(ids[0::2])),
                            ("accompaniment", ids[1::2], vocab.is_accomp(ids[1::2]))):
        if not np.all(ok):
            frame = int(np.flatnonzero(~ok)[0])
            offset = 2 * frame + (kind != "vocal")
            article = "a" if kind == "vocal" else "an"
            raise LayoutError(f"audio token {offset} (frame {frame}) is {article} {kind} slot but holds "
                              f"{vocab.describe(slots[frame])}")
    return vocab.vocal_code(ids[0::2]), vocab.accomp_code(ids[1::2])


def audio_with_cues(section: SectionTokens, vocab: Vocabulary) -> np.ndarray:
    """A section's interleaved codes with its word cues in place: ``… a_{f-1} <word> text v_f a_f …``."""
    ids = interleave(section.vocal, section.accomp, vocab)
    if not section.cues:
        return ids
    pieces, previous = [], 0  # SectionTokens has checked that the cues are in order, in range, sung
    for cue in section.cues:
        pieces += [ids[previous:2 * cue.frame], [vocab.word_id], vocab.text_id(np.asarray(cue.text_ids, np.int64))]
        previous = 2 * cue.frame
    pieces.append(ids[previous:])
    return np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])


def split_cues(ids, vocab: Vocabulary) -> tuple[np.ndarray, list[WordCue]]:
    """The inverse of ``audio_with_cues``: a section's audio stretch -> (the ``v a`` ids alone, the cues).
    Raises ``LayoutError`` for a cue inside a frame, after the last frame, or text outside a cue."""
    ids = _int_array(ids, "audio ids")
    words = np.flatnonzero(ids == vocab.word_id)
    is_text = vocab.is_text(ids)
    if not words.size:
        if is_text.any():
            position = int(np.flatnonzero(is_text)[0])
            raise LayoutError(f"audio token {position} is text ({vocab.describe(ids[position])}) outside a "
                              f"{WORD} cue")
        return ids, []
    keep = np.ones(len(ids), dtype=bool)
    cues = []
    for position in words.tolist():
        stop = position + 1
        while stop < len(ids) and is_text[stop]:
            stop += 1
        keep[position:stop] = False
        audio_before = int(np.count_nonzero(keep[:position]))
        if audio_before % 2:
            raise LayoutError(f"audio token {position}: {WORD} inside frame {audio_before // 2} (between its vocal "
                              "and accompaniment token); a cue stands only before a frame")
        cues.append(WordCue(audio_before // 2, tuple(vocab.text_piece(ids[position + 1:stop]).tolist())))
    stray = np.flatnonzero(is_text & keep)
    if stray.size:
        position = int(stray[0])
        raise LayoutError(f"audio token {position} is text ({vocab.describe(ids[position])}) outside a {WORD} cue")
    audio = ids[keep]
    if cues[-1].frame >= len(audio) // 2:
        raise LayoutError(f"a {WORD} cue after the last frame ({len(audio) // 2 - 1}): a cue stands before the "
                          "frame that sings the word")
    return audio, cues


def slot_kind(position_in_audio: int) -> str:
    """'vocal' or 'accomp' for a position counted from the first token after ``<audio>``."""
    if position_in_audio < 0:
        raise LayoutError(f"audio position must be >= 0, got {position_in_audio}")
    return "vocal" if position_in_audio % 2 == 0 else "accomp"


def allowed_mask(kind: str, vocab: Vocabulary) -> np.ndarray:
    """Bool mask over the vocabulary of what a slot may emit: a vocal slot (even position, a frame boundary)
    a vocal code or ``</audio>``; an accompaniment slot only an accompaniment code (never a half frame)."""
    mask = np.zeros(vocab.size, dtype=bool)
    if kind == "vocal":
        mask[vocab.vocal_start:vocab.accomp_start] = True
        mask[vocab.audio_close_id] = True
    elif kind == "accomp":
        mask[vocab.accomp_start:vocab.size] = True
    else:
        raise LayoutError(f"slot kind must be 'vocal' or 'accomp', got {kind!r}")
    return mask


# --- build and revert ---------------------------------------------------------------------------------------


def build_sequence(song: SongTokens, vocab: Vocabulary) -> np.ndarray:
    """SongTokens -> one int64 id sequence in the layout of the module docstring."""
    pieces = [np.array([vocab.bos_id, vocab.style_open_id]), vocab.text_id(np.asarray(song.style_ids, dtype=np.int64)),
              np.array([vocab.style_close_id])]
    for index, section in enumerate(song.sections):
        where = f"section {index} [{section.tag}]"
        try:
            if section.instrumental and section.text_ids:
                raise LayoutError(f"is instrumental but has {len(section.text_ids)} lyric ids; "
                                  "instrumental sections carry <no_vocal> instead of text")
            text = ([vocab.no_vocal_id] if section.instrumental
                    else vocab.text_id(np.asarray(section.text_ids, dtype=np.int64)))
            pieces += [np.array([vocab.section_id(section.tag)]), np.asarray(text), np.array([vocab.audio_open_id]),
                       audio_with_cues(section, vocab), np.array([vocab.audio_close_id])]
        except LayoutError as error:
            raise LayoutError(f"{where}: {error}") from None
    pieces.append(np.array([vocab.eos_id]))
    return np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])


class _ParsedSection(NamedTuple):
    tag: str
    text_start: int  # ids[text_start:text_stop] are lyric text (empty for instrumental sections)
    text_stop: int
    instrumental: bool
    audio_start: int  # ids[audio_start:audio_stop] are the interleaved codes
    audio_stop: int


def _parse(ids, vocab: Vocabulary) -> tuple[np.ndarray, tuple[int, int], list[_ParsedSection]]:
    """Check the marker structure and return (ids, style text bounds, sections). Only special ids shape a
    sequence, so walk those and check that each stretch between two of them holds the right kind."""
    ids = _int_array(ids, "sequence ids")
    if ids.ndim != 1:
        raise LayoutError(f"a sequence must be 1-D, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab.size):
        bad = int(ids[(ids < 0) | (ids >= vocab.size)][0])
        raise LayoutError(f"id {bad} is outside the vocabulary (size {vocab.size})")
    end = len(ids)
    while end and ids[end - 1] == vocab.pad_id:  # batch padding after <eos>
        end -= 1
    if end == 0:
        raise LayoutError("the sequence is empty")
    markers = np.flatnonzero(ids[:end] < vocab.text_start).tolist()
    cursor = {"next": 0, "after": 0}  # next marker to read; first position after the last marker read

    def take(expected: set[int], what: str) -> tuple[int, int]:
        """Read the next marker, which must be in ``expected``; return (run start, marker position)."""
        if cursor["next"] >= len(markers):
            raise LayoutError(f"the sequence ends (position {end - 1}) while expecting {what}")
        position = markers[cursor["next"]]
        if int(ids[position]) not in expected:
            raise LayoutError(f"position {position}: expected {what}, got {vocab.describe(ids[position])}")
        run_start = cursor["after"]
        cursor["next"], cursor["after"] = cursor["next"] + 1, position + 1
        return run_start, position

    def nothing_between(start: int, stop: int, context: str) -> None:
        if stop > start:
            raise LayoutError(f"position {start}: unexpected {vocab.describe(ids[start])} {context}")

    def only_text(start: int, stop: int, context: str) -> None:
        wrong = np.flatnonzero(~vocab.is_text(ids[start:stop]))
        if wrong.size:
            position = start + int(wrong[0])
            raise LayoutError(f"position {position}: {vocab.describe(ids[position])} in {context}; "
                              "only text ids belong there")

    if ids[0] != vocab.bos_id:
        raise LayoutError(f"the sequence must start with {BOS}, got {vocab.describe(ids[0])}")
    take({vocab.bos_id}, BOS)
    nothing_between(*take({vocab.style_open_id}, STYLE_OPEN), f"before {STYLE_OPEN}")
    style_start = cursor["after"]
    run_start, style_stop = take({vocab.style_close_id}, f"{STYLE_CLOSE} to close the style text")
    only_text(run_start, style_stop, "the style text")

    section_ids = {vocab.section_id(tag): tag for tag in CANONICAL_TAGS}
    sections: list[_ParsedSection] = []
    while True:
        run_start, position = take({*section_ids, vocab.eos_id}, f"a section tag or {EOS}")
        nothing_between(run_start, position, "between sections")
        if ids[position] == vocab.eos_id:
            if position != end - 1:
                raise LayoutError(f"position {position + 1}: {vocab.describe(ids[position + 1])} after {EOS}")
            return ids[:end], (style_start, style_stop), sections
        tag, tag_position = section_ids[int(ids[position])], position
        run_start, position = take({vocab.no_vocal_id, vocab.audio_open_id},
                                   f"lyric text, {NO_VOCAL} or {AUDIO_OPEN} in [{tag}]")
        instrumental = bool(ids[position] == vocab.no_vocal_id)
        if instrumental:
            nothing_between(run_start, position, f"before {NO_VOCAL}: an instrumental section has no lyric text")
            nothing_between(*take({vocab.audio_open_id}, f"{AUDIO_OPEN} after {NO_VOCAL}"), f"after {NO_VOCAL}")
            text_bounds = (tag_position + 1, tag_position + 1)
        else:
            only_text(run_start, position, f"the lyric text of [{tag}]")
            text_bounds = (run_start, position)
        audio_start = cursor["after"]
        while True:  # word cues are the only markers allowed inside the audio (split_cues checks where)
            _, audio_stop = take({vocab.audio_close_id, vocab.word_id},
                                 f"{AUDIO_CLOSE} to close the {AUDIO_OPEN} at position {audio_start - 1}")
            if ids[audio_stop] == vocab.audio_close_id:
                break
        sections.append(_ParsedSection(tag, *text_bounds, instrumental, audio_start, audio_stop))


def revert_sequence(ids, vocab: Vocabulary) -> SongTokens:
    """The exact inverse of ``build_sequence``; raises ``LayoutError`` naming the first malformed position."""
    ids, (style_start, style_stop), parsed = _parse(ids, vocab)
    sections = []
    for index, section in enumerate(parsed):
        text = vocab.text_piece(ids[section.text_start:section.text_stop]).tolist()
        try:
            audio, cues = split_cues(ids[section.audio_start:section.audio_stop], vocab)
            vocal, accomp = deinterleave(audio, vocab)
            sections.append(SectionTokens(section.tag, text, vocal, accomp, section.instrumental, cues))
        except LayoutError as error:
            raise LayoutError(f"section {index} [{section.tag}], audio from position {section.audio_start}: "
                              f"{error}") from None
    return SongTokens(vocab.text_piece(ids[style_start:style_stop]).tolist(), sections)


def section_frame_spans(ids, vocab: Vocabulary) -> list[SectionSpan]:
    """Per section of a built sequence: tag, first frame on the song timeline, frame count, token start."""
    song = revert_sequence(ids, vocab)  # validates every slot, so spans never describe a malformed sequence
    _, _, parsed = _parse(ids, vocab)
    spans, first_frame = [], 0
    for section, tokens in zip(parsed, song.sections, strict=True):
        spans.append(SectionSpan(section.tag, first_frame, tokens.n_frames, section.audio_start))
        first_frame += tokens.n_frames
    return spans


# --- token-corpus records -> SongTokens ----------------------------------------------------------------------


def song_tokens_from_record(record: Mapping, text_to_ids: Callable[[str], Sequence[int]],
                            lyric_to_ids: Callable[[str], Sequence[int]] | None = None,
                            word_to_ids: Callable[[str], Sequence[int]] | None = None,
                            phone_to_ids: Callable[[str], Sequence[int]] | None = None) -> SongTokens:
    """Cut one token-corpus record into sections.

    Record fields used: ``vocal``, ``accomp`` (int arrays, 25 Hz, equal length), ``sections`` (list of
    ``{"name", "start_frame", "end_frame"}``, optional ``"vocal"`` flag; contiguous from frame 0),
    ``lyrics`` (canonical text, ``lm.lyrics.format_lyrics`` form), ``style`` (or ``style_prompt``), optional
    ``frame_rate`` and ``id``. ``text_to_ids`` maps text to raw text pieces (the sentencepiece model later);
    ``lyric_to_ids`` does so for a section's lyric lines (default ``text_to_ids``; a phoneme text model's
    ``encode_lyrics``). With ``word_to_ids``, the record's ``words`` (``{"text", "start_frame"}``, song
    frames) become word cues of the sung section each starts in; words in instrumental sections are dropped.
    With ``phone_to_ids`` too, each word's ``phones`` (``{"phone", "start_frame"}``, ARPAbet) follow its cue as
    phone cues (module docstring); a phone past its section's last frame is cued at that frame.

    Sections with words in the lyrics are matched, in order, to the record's vocal sections (``vocal`` flag,
    else every tag outside intro/inst/outro); the others become ``<no_vocal>`` sections.
    """
    name = f"record {record.get('id', '?')}"
    if record.get("frame_rate", FRAME_RATE_HZ) != FRAME_RATE_HZ:
        raise LayoutError(f"{name}: frame rate {record['frame_rate']} Hz, the layout expects {FRAME_RATE_HZ} Hz")
    vocal, accomp = _int_array(record["vocal"], "vocal"), _int_array(record["accomp"], "accomp")
    if vocal.ndim != 1 or vocal.shape != accomp.shape:
        raise LayoutError(f"{name}: vocal {vocal.shape} and accomp {accomp.shape} must be 1-D of equal length")
    spans = list(record.get("sections") or [])
    if not spans:
        raise LayoutError(f"{name}: no sections")
    bounds = [(int(s["start_frame"]), int(s["end_frame"])) for s in spans]
    previous_end = 0
    for index, (start, stop) in enumerate(bounds):
        if start != previous_end or stop < start:
            raise LayoutError(f"{name}: section {index} spans frames {start}..{stop}; sections must be contiguous "
                              f"from frame 0 (expected it to start at {previous_end})")
        previous_end = stop
    if abs(previous_end - len(vocal)) > SPAN_TOLERANCE_FRAMES:
        raise LayoutError(f"{name}: sections end at frame {previous_end} but the tracks have {len(vocal)} frames")
    # Rounding seconds to frames may leave the last section a frame or two off the array end; it absorbs that.
    bounds[-1] = (bounds[-1][0], len(vocal))
    if bounds[-1][1] < bounds[-1][0]:
        raise LayoutError(f"{name}: the last section starts after the tracks end")

    tags, vocal_flags = [], []
    for span in spans:
        sung = bool(span.get("vocal", canonical_tag(span["name"])[0] not in INSTRUMENTAL_TAGS))
        tags.append(canonical_tag(span["name"], has_words=sung)[0])
        vocal_flags.append(sung)
    lyrics_text = record.get("lyrics") or ""
    try:
        parsed = parse_lyrics(lyrics_text, require_vocals=False).sections if lyrics_text.strip() else []
    except LyricsError as error:
        raise LayoutError(f"{name}: unusable lyrics: {error}") from None
    sung_lyrics = [section for section in parsed if section.lines]
    if len(sung_lyrics) != sum(vocal_flags):
        raise LayoutError(f"{name}: the lyrics have {len(sung_lyrics)} sections with words but the record marks "
                          f"{sum(vocal_flags)} sections as vocal")
    lyric_iter = iter(sung_lyrics)
    lyric_to_ids = lyric_to_ids or text_to_ids
    words = sorted(record.get("words") or [], key=lambda word: int(word["start_frame"])) if word_to_ids else []
    sections = []
    for tag, sung, (start, stop) in zip(tags, vocal_flags, bounds, strict=True):
        text_ids = list(lyric_to_ids(next(lyric_iter).text)) if sung else []
        cues = []
        for word in words:
            if sung and start <= int(word["start_frame"]) < stop:
                cues.append(WordCue(int(word["start_frame"]) - start, tuple(word_to_ids(word["text"]))))
                for phone in (word.get("phones") or []) if phone_to_ids else []:
                    frame = min(max(int(phone["start_frame"]), int(word["start_frame"])), stop - 1) - start
                    cues.append(WordCue(frame, tuple(phone_to_ids(phone["phone"]))))
        cues.sort(key=lambda cue: cue.frame)  # stable: a frame's word cue stays before its phones
        sections.append(SectionTokens(tag, text_ids, vocal[start:stop], accomp[start:stop], instrumental=not sung,
                                      cues=cues))
    style = record.get("style") or record.get("style_prompt") or ""
    return SongTokens(list(text_to_ids(style)) if style else [], sections)
