"""Tests for lm.layout: id ranges, build/revert round trips, interleaving, slot masks, spans, records."""

from __future__ import annotations

import numpy as np
import pytest

from lm.layout import (
    AUDIO_CLOSE,
    SPECIAL_TOKENS,
    LayoutError,
    SectionTokens,
    SongTokens,
    Vocabulary,
    allowed_mask,
    build_sequence,
    deinterleave,
    interleave,
    revert_sequence,
    section_frame_spans,
    slot_kind,
    song_tokens_from_record,
)
from lm.lyrics import CANONICAL_TAGS, INSTRUMENTAL_TAGS, LyricSection, ParsedLyrics, format_lyrics

VOCAB = Vocabulary(n_text=50, codebook_size_vocal=17, codebook_size_accomp=23)  # unequal on purpose


def random_song(seed: int, vocab: Vocabulary = VOCAB) -> SongTokens:
    rng = np.random.default_rng(seed)
    sections = []
    for _ in range(int(rng.integers(0, 6))):
        instrumental = bool(rng.random() < 0.35)
        n_frames = int(rng.integers(0, 12))
        sections.append(SectionTokens(
            tag=str(rng.choice(CANONICAL_TAGS)),
            text_ids=[] if instrumental else rng.integers(0, vocab.n_text, int(rng.integers(0, 8))).tolist(),
            vocal=rng.integers(0, vocab.codebook_size_vocal, n_frames),
            accomp=rng.integers(0, vocab.codebook_size_accomp, n_frames),
            instrumental=instrumental))
    return SongTokens(rng.integers(0, vocab.n_text, int(rng.integers(0, 6))).tolist(), sections)


def test_id_ranges_partition_the_vocabulary():
    every_id = np.arange(VOCAB.size)
    kinds = np.stack([VOCAB.is_special(every_id), VOCAB.is_text(every_id), VOCAB.is_vocal(every_id),
                      VOCAB.is_accomp(every_id)])
    assert np.all(kinds.sum(axis=0) == 1)  # every id has exactly one kind
    assert kinds.sum(axis=1).tolist() == [len(SPECIAL_TOKENS), 50, 17, 23]
    # the documented order: specials | text | vocal | accompaniment
    assert [int(np.flatnonzero(row)[0]) for row in kinds] == [0, VOCAB.text_start, VOCAB.vocal_start,
                                                              VOCAB.accomp_start]
    assert VOCAB.pad_id == 0 and len(set(SPECIAL_TOKENS)) == len(SPECIAL_TOKENS)
    assert all(VOCAB.section_tag(VOCAB.section_id(tag)) == tag for tag in CANONICAL_TAGS)
    assert VOCAB.section_tag(VOCAB.bos_id) is None and VOCAB.section_tag(VOCAB.text_start) is None


def test_scalar_and_array_id_conversions_invert():
    assert VOCAB.vocal_id(0) == VOCAB.vocal_start and VOCAB.accomp_id(22) == VOCAB.size - 1
    assert VOCAB.text_piece(VOCAB.text_id(7)) == 7
    codes = np.arange(17)
    assert np.array_equal(VOCAB.vocal_code(VOCAB.vocal_id(codes)), codes)
    assert VOCAB.is_vocal(VOCAB.vocal_id(3)) is True and VOCAB.is_accomp(VOCAB.vocal_id(3)) is False
    for convert, bad in ((VOCAB.vocal_id, 17), (VOCAB.accomp_id, -1), (VOCAB.text_id, 50)):
        with pytest.raises(LayoutError, match="out of range"):
            convert(bad)
    with pytest.raises(LayoutError, match="is not a vocal id"):
        VOCAB.vocal_code(VOCAB.accomp_id(0))
    with pytest.raises(LayoutError, match="integers"):
        VOCAB.vocal_id(np.array([1.5]))


def test_vocabulary_dict_round_trip_and_validation():
    assert Vocabulary.from_dict(VOCAB.to_dict()) == VOCAB
    stored = VOCAB.to_dict() | {"special_tokens": list(reversed(SPECIAL_TOKENS))}
    with pytest.raises(LayoutError, match="another layout"):
        Vocabulary.from_dict(stored)
    with pytest.raises(LayoutError, match="lacks n_text"):
        Vocabulary.from_dict({"codebook_size_vocal": 2, "codebook_size_accomp": 2})
    with pytest.raises(LayoutError, match="positive integer"):
        Vocabulary(0, 4, 4)


@pytest.mark.parametrize("seed", range(25))
def test_build_revert_round_trip_on_random_songs(seed):
    song = random_song(seed)
    ids = build_sequence(song, VOCAB)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < VOCAB.size
    assert revert_sequence(ids, VOCAB) == song
    assert revert_sequence(np.concatenate([ids, [VOCAB.pad_id] * 3]), VOCAB) == song  # batch padding
    n_instrumental = sum(s.instrumental for s in song.sections)
    assert int(np.sum(ids == VOCAB.no_vocal_id)) == n_instrumental
    assert int(np.sum(ids == VOCAB.audio_open_id)) == len(song.sections)
    assert int(VOCAB.is_vocal(ids).sum()) == int(VOCAB.is_accomp(ids).sum()) == song.n_frames


def test_layout_is_exactly_the_documented_order():
    song = SongTokens([1, 2], [SectionTokens("verse", [3], [4, 5], [6, 7]),
                               SectionTokens("inst", [], [0], [1], instrumental=True)])
    names = [VOCAB.describe(i) for i in build_sequence(song, VOCAB)]
    assert names == ["<bos>", "<style>", "text:1", "text:2", "</style>",
                     "<section:verse>", "text:3", "<audio>", "vocal:4", "accomp:6", "vocal:5", "accomp:7", "</audio>",
                     "<section:inst>", "<no_vocal>", "<audio>", "vocal:0", "accomp:1", "</audio>", "<eos>"]


@pytest.mark.parametrize("n_frames", [0, 1, 7])
def test_interleave_deinterleave_invert(n_frames):
    rng = np.random.default_rng(n_frames)
    vocal, accomp = rng.integers(0, 17, n_frames), rng.integers(0, 23, n_frames)
    ids = interleave(vocal, accomp, VOCAB)
    assert len(ids) == 2 * n_frames
    assert np.all(VOCAB.is_vocal(ids[0::2])) and np.all(VOCAB.is_accomp(ids[1::2]))
    back_vocal, back_accomp = deinterleave(ids, VOCAB)
    assert np.array_equal(back_vocal, vocal) and np.array_equal(back_accomp, accomp)
    with pytest.raises(LayoutError, match="frame-aligned"):
        interleave(vocal, np.zeros(n_frames + 1, dtype=int), VOCAB)


def test_allowed_mask_matches_every_audio_position():
    vocal_mask, accomp_mask = allowed_mask("vocal", VOCAB), allowed_mask("accomp", VOCAB)
    assert vocal_mask.sum() == 17 + 1 and vocal_mask[VOCAB.special_id(AUDIO_CLOSE)]
    assert accomp_mask.sum() == 23 and not accomp_mask[VOCAB.audio_close_id]
    assert not np.any(vocal_mask & accomp_mask)
    for seed in range(10):
        ids = build_sequence(random_song(seed), VOCAB)
        for span in section_frame_spans(ids, VOCAB):
            # every real token in the section's audio and the closing </audio> (at an even position) is allowed
            for offset in range(2 * span.n_frames + 1):
                token = ids[span.token_start + offset]
                kind = slot_kind(offset)
                assert allowed_mask(kind, VOCAB)[token], (seed, span, offset)
                assert (token == VOCAB.audio_close_id) == (offset == 2 * span.n_frames)
                assert kind == ("vocal" if offset % 2 == 0 else "accomp")
    with pytest.raises(LayoutError, match="slot kind"):
        allowed_mask("text", VOCAB)
    with pytest.raises(LayoutError, match=">= 0"):
        slot_kind(-1)


def test_section_frame_spans_follow_the_song_timeline():
    song = random_song(3)
    while len(song.sections) < 2:
        song = random_song(int(np.random.default_rng(len(song.sections)).integers(100, 10_000)))
    ids = build_sequence(song, VOCAB)
    spans = section_frame_spans(ids, VOCAB)
    first_frame = 0
    for span, section in zip(spans, song.sections, strict=True):
        assert (span.tag, span.first_frame, span.n_frames) == (section.tag, first_frame, section.n_frames)
        vocal, accomp = deinterleave(ids[span.token_start:span.token_start + 2 * span.n_frames], VOCAB)
        assert np.array_equal(vocal, section.vocal) and np.array_equal(accomp, section.accomp)
        first_frame += span.n_frames


def _good_ids() -> list[int]:
    song = SongTokens([1], [SectionTokens("verse", [2, 3], [1, 2], [3, 4]),
                            SectionTokens("outro", [], [5], [6], instrumental=True)])
    return build_sequence(song, VOCAB).tolist()


def _splice(ids, keep_until, resume_at, token):
    """ids[:keep_until] + [token] + ids[resume_at:]: insert (resume_at == keep_until) or replace one token."""
    return [*ids[:keep_until], token, *ids[resume_at:]]


def _swap_first_audio_pair(ids):
    start = ids.index(VOCAB.audio_open_id) + 1
    ids[start], ids[start + 1] = ids[start + 1], ids[start]
    return ids


MALFORMED = {
    "no bos": (lambda ids: ids[1:], "must start with <bos>"),
    "no eos": (lambda ids: ids[:-1], "ends .* while expecting a section tag or <eos>"),
    "unclosed audio": (lambda ids: [t for t in ids if t != VOCAB.audio_close_id], "expected </audio> to close"),
    "unclosed style": (lambda ids: [t for t in ids if t != VOCAB.style_close_id],
                       "expected </style> to close the style text"),
    "nested audio": (lambda ids: _splice(ids, 9, 9, VOCAB.audio_open_id), "expected </audio>"),
    "accomp in a vocal slot": (_swap_first_audio_pair, "audio token 0 \\(frame 0\\) is a vocal slot but holds accomp"),
    "odd audio length": (lambda ids: ids[:8] + ids[9:], "odd number of audio tokens \\(3\\)"),
    "text inside audio": (lambda ids: _splice(ids, 9, 10, VOCAB.text_id(0)),
                          "audio token 1 is text \\(text:0\\) outside a <word> cue"),
    "code in lyric text": (lambda ids: _splice(ids, 5, 5, VOCAB.vocal_id(0)),
                           "position 5: vocal:0 in the lyric text of \\[verse\\]"),
    "code in style text": (lambda ids: _splice(ids, 2, 2, VOCAB.accomp_id(1)), "in the style text"),
    "text after no_vocal": (lambda ids: _splice(ids, -5, -5, VOCAB.text_id(1)), "after <no_vocal>"),
    "tokens after eos": (lambda ids: [*ids, VOCAB.text_id(0)], "after <eos>"),
    "stray text between sections": (lambda ids: _splice(ids, -7, -7, VOCAB.text_id(1)), "between sections"),
    "out of range id": (lambda ids: [*ids[:-1], VOCAB.size, VOCAB.eos_id], "outside the vocabulary"),
    "empty": (lambda ids: [], "empty"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_sequences_raise_specific_errors(case):
    mutate, message = MALFORMED[case]
    with pytest.raises(LayoutError, match=message):
        revert_sequence(mutate(_good_ids()), VOCAB)


def test_good_ids_fixture_is_valid():  # guards the malformed cases above against testing a broken base
    assert [VOCAB.describe(t) for t in _good_ids()][:9] == [
        "<bos>", "<style>", "text:1", "</style>", "<section:verse>", "text:2", "text:3", "<audio>", "vocal:1"]
    assert _good_ids()[-7:-5] == [VOCAB.section_id("outro"), VOCAB.no_vocal_id]
    revert_sequence(_good_ids(), VOCAB)


@pytest.mark.parametrize(("section", "message"), [
    (SectionTokens("inst", [1], [0], [0], instrumental=True), "instrumental but has 1 lyric ids"),
    (SectionTokens("verse", [1], [0, 1], [0]), "frame-aligned"),
    (SectionTokens("drop", [1], [0], [0]), "unknown section tag 'drop'"),
    (SectionTokens("verse", [1], [17], [0]), "vocal code 17 is out of range"),
    (SectionTokens("verse", [99], [0], [0]), "text piece 99 is out of range"),
])
def test_build_refuses_bad_songs(section, message):
    with pytest.raises(LayoutError, match=f"section 1 \\[{section.tag}\\]: .*{message}"):
        build_sequence(SongTokens([], [SectionTokens("verse", [], [], []), section]), VOCAB)


# --- records -------------------------------------------------------------------------------------------------


def fake_text_to_ids(text: str) -> list[int]:
    return [ord(char) % VOCAB.n_text for char in text]


def make_record(names=("intro", "verse", "chorus", "inst", "chorus", "outro"), frames=(3, 5, 4, 2, 4, 3)):
    rng = np.random.default_rng(0)
    lyrics = ParsedLyrics([LyricSection(name, [] if name in INSTRUMENTAL_TAGS else [f"{name} words {i}"])
                           for i, name in enumerate(names)])
    bounds = np.concatenate([[0], np.cumsum(frames)])
    return {"id": "song-1", "frame_rate": 25, "style": "pop, 120 bpm", "lyrics": format_lyrics(lyrics),
            "vocal": rng.integers(0, 17, bounds[-1]), "accomp": rng.integers(0, 23, bounds[-1]),
            "sections": [{"name": n, "start_frame": int(a), "end_frame": int(b)}
                         for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)]}


def test_record_splits_into_sections_with_their_lyrics():
    record = make_record()
    song = song_tokens_from_record(record, fake_text_to_ids)
    assert song.style_ids == fake_text_to_ids("pop, 120 bpm")
    assert [(s.tag, s.instrumental, s.n_frames) for s in song.sections] == [
        ("intro", True, 3), ("verse", False, 5), ("chorus", False, 4), ("inst", True, 2), ("chorus", False, 4),
        ("outro", True, 3)]
    assert song.sections[4].text_ids == fake_text_to_ids("chorus words 4")
    assert np.array_equal(np.concatenate([s.vocal for s in song.sections]), record["vocal"])
    spans = section_frame_spans(build_sequence(song, VOCAB), VOCAB)
    assert [(s.first_frame, s.first_frame + s.n_frames) for s in spans] == [
        (r["start_frame"], r["end_frame"]) for r in record["sections"]]


def test_record_last_section_absorbs_rounding_and_vocal_flag_wins():
    record = make_record()
    record["sections"][-1]["end_frame"] += 1  # one frame past the arrays: rounding, absorbed
    record["sections"][0]["vocal"] = False
    assert song_tokens_from_record(record, fake_text_to_ids).sections[-1].n_frames == 3


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["sections"][2].update(start_frame=9), "must be contiguous"),
    (lambda r: r["sections"][-1].update(end_frame=30), "sections end at frame 30 but the tracks have 21"),
    (lambda r: r.update(lyrics="[verse]\nonly one\n"), "1 sections with words but the record marks 3"),
    (lambda r: r.update(accomp=r["accomp"][:-1]), "equal length"),
    (lambda r: r.update(frame_rate=50), "frame rate 50 Hz"),
    (lambda r: r.update(sections=[]), "no sections"),
    (lambda r: r.update(lyrics="[verse]\n" + "a" * 300), "unusable lyrics: line 2 is 300 characters"),
])
def test_bad_records_raise(change, message):
    record = make_record()
    change(record)
    with pytest.raises(LayoutError, match=f"record song-1: .*{message}"):
        song_tokens_from_record(record, fake_text_to_ids)
