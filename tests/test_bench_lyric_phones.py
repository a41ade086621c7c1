"""Reading phones off vocal tokens (bench/lyric_phones.py): runs collapse, one-frame flickers and silence drop
out, the reference is read the same way, and the control swaps only the lyrics."""

from __future__ import annotations

import numpy as np

from bench.lyric_phones import NOT_SUNG, collapse, read_phones, requests_for, sung_phones
from lm.layout import SectionTokens, SongTokens, WordCue
from tokenizer.phones import phone_id


def test_collapse_merges_runs_and_drops_short_runs_and_silence():
    # a pause does not split a repeated phone: the reference (sung_phones) has no pauses to split on either
    assert collapse([1, 1, 2, 2, 2, NOT_SUNG, 2, 3]) == [1, 2, 3]
    # with runs of 2 frames or more: the lone 9 is a flicker inside the 1s, which then join up
    assert collapse([1, 1, 9, 1, 1, 2, 2, NOT_SUNG, NOT_SUNG, 3], min_run=2) == [1, 2]


def test_tokens_read_through_the_table_with_unknown_tokens_as_not_sung():
    table = {10: 4, 11: 5, 12: NOT_SUNG}
    vocal = np.array([10, 10, 99, 99, 11, 11, 11, 12, 12, 10, 10])
    assert read_phones(vocal, table) == [4, 5, 4]


def test_sung_phones_follow_the_words_in_order_without_silences():
    meta = {"words": [{"syllables": [{"phones": [{"phone": "pau"}, {"phone": "hh"}, {"phone": "ow"}]}]},
                      {"syllables": [{"phones": [{"phone": "ow"}, {"phone": "k"}]}]}]}
    assert sung_phones(meta) == [phone_id("hh"), phone_id("ow"), phone_id("k")]


def test_the_control_keeps_sections_and_lengths_and_takes_the_other_lyrics_in_order():
    def section(tag, text, n, instrumental=False):
        return SectionTokens(tag, text, np.zeros(n, np.int64), np.zeros(n, np.int64), instrumental)

    song = SongTokens([1], [section("intro", [], 4, True), section("verse", [5, 6], 8), section("chorus", [7], 6)])
    other = SongTokens([2], [section("verse", [40], 3)])
    requests = requests_for(song, other)
    assert [(r.tag, r.n_frames, r.instrumental) for r in requests] == [("intro", 4, True), ("verse", 8, False),
                                                                      ("chorus", 6, False)]
    assert [r.text_ids for r in requests] == [[], [40], [40]]  # one sung section, cycled
    assert [r.text_ids for r in requests_for(song, song)] == [[], [5, 6], [7]]
    assert all(r.words is None for r in requests)  # no cues unless the LM places them
    other.sections[0].cues = [WordCue(0, (40,)), WordCue(2, (41, 42))]
    cued = requests_for(song, other, word_cues=True)
    assert [r.words for r in cued] == [None, [[40], [41, 42]], [[40], [41, 42]]]  # the text's own words
