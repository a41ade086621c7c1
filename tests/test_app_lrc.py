"""Line times of a generated song (app.lrc): each line at its first word's cue, a clearing line where a sung
section ends, nothing when the cues do not match the words, and the LRC file's timestamps."""

from __future__ import annotations

import pytest

from app.lrc import lrc_text, timed_lines, timestamp


def test_each_line_starts_at_its_first_words_cue_and_sections_end_with_a_clearing_line():
    sections = [(4.0, [], []),  # an instrumental intro
                (10.0, ["we walked along", "the river"], [4.0, 4.5, 5.2, 7.0, 7.4]),
                (14.0, [], []),
                (20.0, ["come home"], [15.0, 15.5])]
    assert timed_lines(sections) == [{"seconds": 4.0, "text": "we walked along"}, {"seconds": 7.0, "text": "the river"},
                                     {"seconds": 10.0, "text": ""}, {"seconds": 15.0, "text": "come home"},
                                     {"seconds": 20.0, "text": ""}]


def test_no_clearing_line_where_the_next_section_starts_singing_at_once():
    lines = timed_lines([(5.0, ["one two"], [0.0, 1.0]), (9.0, ["three"], [5.0])])
    assert [line["text"] for line in lines] == ["one two", "three", ""]


@pytest.mark.parametrize("cues", [[], [6.0, 7.0], [6.0, 7.0, 8.0]])
def test_cues_that_do_not_match_the_words_give_no_times_at_all(cues):
    assert timed_lines([(5.0, ["sing it"], [0.5, 1.0]), (9.0, ["again"], cues)]) == []


def test_lrc_timestamps_round_to_hundredths_and_carry_into_the_minutes():
    assert timestamp(0) == "[00:00.00]" and timestamp(65.5) == "[01:05.50]" and timestamp(59.999) == "[01:00.00]"
    text = lrc_text([{"seconds": 1.25, "text": "hello"}, {"seconds": 62.0, "text": ""}], 75.4)
    assert text == "[length:01:15]\n[00:01.25]hello\n[01:02.00]\n"


@pytest.mark.parametrize("lines", [{"seconds": 1}, [{"seconds": -1, "text": "x"}], [{"seconds": True, "text": ""}],
                                   [{"seconds": 1.0}], ["[00:01.00]x"]])
def test_bad_lines_are_refused_with_the_entry_named(lines):
    with pytest.raises(ValueError, match="lines"):
        lrc_text(lines, 10.0)
