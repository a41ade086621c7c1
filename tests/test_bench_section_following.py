"""bench.section_following: each section's transcript ranked against every section's lyrics, paired runs."""

from __future__ import annotations

import pytest

from bench.section_following import following, paired, sections_of

LYRICS = {"verse": ["we walked along the river"], "chorus": ["come home to me tonight"],
          "bridge": ["the road is long and cold"]}


def run(heard: dict[str, str], seed: int = 0) -> dict:
    sections = [{"name": name, "lines": lines, "hypothesis": heard.get(name, "")} for name, lines in LYRICS.items()]
    return {"generated": {"per_prompt": [{"prompt": 0, "seed": seed, "sections": sections}]},
            "corpus": {"per_song": [{"id": "s2-0", "sections": sections}]},
            "corpus_decoded": {"per_song": [{"id": "s2-0", "sections": sections}]}}


def test_sections_sung_with_their_own_words_rank_first():
    exact = run({name: lines[0] for name, lines in LYRICS.items()})
    result = following(sections_of([exact], "generated"))
    assert result["sections"] == 3 and result["distinct_lyrics"] == 3
    assert result["mean_rank"] == 1.0 and result["identified"] == 3
    swapped = run({"verse": "come home to me tonight", "chorus": "we walked along the river",
                   "bridge": "the road is long and cold"})
    rows = following(sections_of([swapped], "generated"))["per_section"]
    ranks = {row["key"][-1]: row["rank"] for row in rows}
    # the verse sings the chorus's words: the chorus's lyrics match better, the bridge's as badly as its own
    assert ranks == {"verse": 0.25, "chorus": 0.25, "bridge": 1.0}


def test_silence_ranks_at_chance_and_is_never_identified():
    result = following(sections_of([run({})], "generated"))
    assert result["mean_rank"] == 0.5 and result["identified"] == 0


def test_runs_pair_section_by_section_and_need_two_distinct_lyrics():
    good = following(sections_of([run({name: lines[0] for name, lines in LYRICS.items()})], "generated"))
    silent = following(sections_of([run({})], "generated"))
    assert paired(good, silent) == {"sections": 3, "mean_difference": 0.5, "interval": [0.5, 0.5]}
    other_seed = following(sections_of([run({}, seed=9)], "generated"))
    with pytest.raises(SystemExit, match="share no section"):
        paired(good, other_seed)
    one = {"generated": {"per_prompt": [{"prompt": 0, "seed": 0, "sections": [
        {"name": "verse", "lines": ["la la"], "hypothesis": "la"}]}]}}
    with pytest.raises(SystemExit, match="fewer than two distinct"):
        following(sections_of([one], "generated"))
    assert sections_of([run({})], "corpus")[0]["key"] == ("s2-0", "verse")
    assert sections_of([run({})], "corpus_decoded")[1]["key"] == ("s2-0", "chorus")
