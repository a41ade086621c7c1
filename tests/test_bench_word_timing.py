"""The word timings of bench.decoder_word_timing: exact is the corpus's, words drops the phones' times, even puts
each section's word (and phone) cues at the LM's cue deadlines, shiftK moves each start by at most K frames in
order, none gives no words."""

from __future__ import annotations

import numpy as np
import pytest

from bench.decoder_word_timing import timed_words
from lm.generate import cue_deadline

RECORD = {"n_frames": 60, "sections": [{"start_frame": 0, "end_frame": 30}, {"start_frame": 30, "end_frame": 60}],
          "words": [{"text": "we", "start_frame": 0}, {"text": "walked", "start_frame": 2},
                    {"text": "home", "start_frame": 4}, {"text": "sing", "start_frame": 31},
                    {"text": "along", "start_frame": 50}]}


def test_exact_and_none():
    assert timed_words(RECORD, "exact", np.random.default_rng(0)) == RECORD["words"]
    assert timed_words(RECORD, "none", np.random.default_rng(0)) is None


PHONED = {**RECORD, "words": [{"text": "we", "start_frame": 0, "phones": [{"phone": "W", "start_frame": 0},
                                                                          {"phone": "IY", "start_frame": 1}]},
                              {"text": "sing", "start_frame": 31, "phones": [{"phone": "S", "start_frame": 31}]}]}


def test_words_drops_the_phone_times_and_even_spreads_every_cue():
    assert timed_words(PHONED, "words", np.random.default_rng(0)) == [{"text": "we", "start_frame": 0},
                                                                      {"text": "sing", "start_frame": 31}]
    even = timed_words(PHONED, "even", np.random.default_rng(0))
    deadlines = [cue_deadline(k, 3, 30) for k in range(3)]  # "we", W, IY: three cues in the first section
    assert even[0] == {"text": "we", "start_frame": deadlines[0],
                       "phones": [{"phone": "W", "start_frame": deadlines[1]},
                                  {"phone": "IY", "start_frame": deadlines[2]}]}
    assert even[1]["start_frame"] == 30 + cue_deadline(0, 2, 30)
    assert even[1]["phones"] == [{"phone": "S", "start_frame": 30 + cue_deadline(1, 2, 30)}]


def test_even_puts_each_sections_words_at_the_cue_deadlines():
    even = timed_words(RECORD, "even", np.random.default_rng(0))
    assert [word["text"] for word in even] == [word["text"] for word in RECORD["words"]]
    assert not any(word["phones"] for word in even)
    assert [word["start_frame"] for word in even] == [cue_deadline(k, 3, 30) for k in range(3)] + [
        30 + cue_deadline(k, 2, 30) for k in range(2)]


def test_shift_keeps_order_and_bounds():
    rng = np.random.default_rng(0)
    moved_any = False
    for _ in range(50):
        shifted = timed_words(RECORD, "shift3", rng)
        starts = [word["start_frame"] for word in shifted]
        assert starts == sorted(starts) and min(starts) >= 0 and max(starts) < RECORD["n_frames"]
        assert all(abs(new - word["start_frame"]) <= 3 for new, word in zip(starts, RECORD["words"], strict=True))
        moved_any |= shifted != RECORD["words"]
    assert moved_any


@pytest.mark.parametrize("timing", ["late", "shift", "shiftx"])
def test_unknown_timings_are_refused(timing):
    with pytest.raises(ValueError, match="unknown word timing"):
        timed_words(RECORD, timing, np.random.default_rng(0))
