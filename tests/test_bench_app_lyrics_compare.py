"""bench.app_lyrics_compare: songs paired by prompt and seed, totals and per-song differences."""

from __future__ import annotations

import pytest

from bench.app_lyrics_compare import compare, paired_rows
from bench.common import bootstrap_interval


def run(*songs) -> dict:
    return {"generated": {"per_prompt": [{"prompt": p, "seed": s, "words": 10, "errors": e, "hits": h,
                                          "whole_song_errors": w} for p, s, e, h, w in songs]}}


def test_songs_pair_by_prompt_and_seed_whatever_their_order():
    a = run((0, 0, 4, 6, 5), (1, 1, 8, 2, 9))
    b = run((1, 1, 9, 1, 9), (0, 0, 7, 3, 6))
    measures = compare(paired_rows([a], [b]))
    assert measures["errors"]["differences"] == [-3, -1] and measures["errors"]["a_total"] == 12
    assert measures["hits"]["mean_difference"] == pytest.approx(2.0)
    assert measures["whole_song_errors"]["b_total"] == 15


def test_runs_of_different_songs_are_refused():
    with pytest.raises(SystemExit, match="prompt 1 seed 1"):
        paired_rows([run((1, 1, 4, 6, 5))], [run((1, 2, 4, 6, 5))])


def test_bootstrap_interval_holds_the_mean_and_is_a_point_for_equal_values():
    low, high = bootstrap_interval([1.0, 2.0, 3.0, 10.0])
    assert low <= 4.0 <= high
    assert bootstrap_interval([2.0, 2.0, 2.0]) == [2.0, 2.0]
