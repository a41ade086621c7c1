"""Vocal takes (``SongOptions.takes``): each sung section sampled again and the take Whisper hears best kept.

The choice itself is tested with a scripted judge (so it is known which take must win); one real run checks that
the manifest's errors are what the app's lyric check says about the final vocal stem, and that the takes change
only the vocals. Songs are 6 s with 2 decoder steps, as in test_app_pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from app import lyric_check
from app.pipeline import InputError, SongGenerator
from tests.test_app_pipeline import CHECKPOINTS, LYRICS, STYLE

FAST = {"decoder_steps": 2}


@pytest.fixture(scope="module")
def generator() -> SongGenerator:
    return SongGenerator(CHECKPOINTS)


@pytest.fixture(scope="module")
def one_take(generator):
    return generator.generate(LYRICS, STYLE, duration=6, seed=21, options=FAST)


@pytest.fixture(scope="module")
def three_takes(generator):
    return generator.generate(LYRICS, STYLE, duration=6, seed=21, options={**FAST, "takes": 3})


def _section_frames(manifest: dict, index: int) -> slice:
    section = manifest["sections"][index]
    return slice(section["first_frame"], section["first_frame"] + section["n_frames"])


def test_takes_change_only_the_vocals_and_record_every_takes_errors(one_take, three_takes):
    manifest = three_takes.manifest
    assert one_take.manifest["takes"] == []
    assert [record["section"] for record in manifest["takes"]] == [0, 1]  # both sections are sung
    for record in manifest["takes"]:
        assert len(record["errors"]) == 3
        assert record["kept"] == int(np.argmin(record["errors"]))  # argmin: the first of equal takes
        frames = _section_frames(manifest, record["section"])
        if record["kept"] == 0:  # the first take is the song sampled without takes
            np.testing.assert_array_equal(three_takes.tokens.vocal[frames], one_take.tokens.vocal[frames])
    np.testing.assert_array_equal(three_takes.tokens.accomp, one_take.tokens.accomp)
    assert manifest["inputs"]["options"]["takes"] == 3 and manifest["timings"]["takes"] > 0


def test_recorded_errors_are_what_the_lyric_check_hears_in_the_final_vocals(generator, three_takes):
    manifest = three_takes.manifest
    sections = [{"name": s["tag"], "start_seconds": s["start_seconds"], "end_seconds": s["end_seconds"],
                 "lines": generator.section_lines(s["text_ids"], s["instrumental"])} for s in manifest["sections"]]
    report = lyric_check.check_lyrics(three_takes.vocals, three_takes.sample_rate, sections)
    for record in manifest["takes"]:
        checked = report.sections[record["section"]]
        assert record["errors"][record["kept"]] == checked.errors
        assert record["words"] == checked.words


def test_the_same_seed_gives_the_same_takes(generator, three_takes):
    again = generator.generate(LYRICS, STYLE, duration=6, seed=21, options={**FAST, "takes": 3})
    assert again.manifest["takes"] == three_takes.manifest["takes"]
    np.testing.assert_array_equal(again.vocals, three_takes.vocals)


def test_the_take_with_fewest_errors_is_kept(generator, one_take, monkeypatch):
    """A scripted judge: section 0's takes score 5, 2, 2 (the second wins, the tie keeps it), section 1's 1, 4."""
    scripted = {0: [5, 2, 2], 1: [1, 4, 4]}
    judged = {0: [], 1: []}

    def judge(vocals, song, index):
        judged[index].append(np.concatenate([s.vocal for s in song.sections]).copy())
        return scripted[index][len(judged[index]) - 1], 7

    monkeypatch.setattr(generator, "_take_errors", judge)
    result = generator.generate(LYRICS, STYLE, duration=6, seed=21, options={**FAST, "takes": 3})
    records = result.manifest["takes"]
    assert [(r["section"], r["errors"], r["kept"], r["words"]) for r in records] == [
        (0, [5, 2, 2], 1, 7), (1, [1, 4, 4], 0, 7)]
    verse, chorus = (_section_frames(result.manifest, i) for i in (0, 1))
    np.testing.assert_array_equal(result.tokens.vocal[verse], judged[0][1][verse])  # the second take of the verse
    assert not np.array_equal(judged[0][1][verse], judged[0][0][verse])  # which is a new take
    # the chorus's takes were sampled after the kept verse, and its first take (kept) is the original chorus
    np.testing.assert_array_equal(judged[1][0][verse], judged[0][1][verse])
    np.testing.assert_array_equal(result.tokens.vocal[chorus], one_take.tokens.vocal[chorus])
    np.testing.assert_array_equal(result.tokens.accomp, one_take.tokens.accomp)


def test_progress_reports_the_takes(generator, monkeypatch):
    monkeypatch.setattr(generator, "_take_errors", lambda vocals, song, index: (3, 5))
    events = []
    generator.generate(LYRICS, STYLE, duration=6, seed=2, options={**FAST, "takes": 2}, progress=events.append)
    takes = [event for event in events if event.stage == "takes"]
    assert takes and takes[-1].done == takes[-1].total == 150  # one more take of both sections' 150 frames
    assert any("vocal take 2 of 2" in event.message for event in takes)


def test_only_sections_whose_vocal_is_sampled_get_takes(generator, one_take, monkeypatch):
    calls = []
    monkeypatch.setattr(generator, "_take_errors", lambda vocals, song, index: calls.append(index) or (0, 1))
    instrumental = generator.generate("", STYLE, duration=6, seed=1, mode="instrumental",
                                      options={**FAST, "takes": 3})
    accompaniment = generator.generate("", "", duration=5, seed=3, mode="resample", manifest=one_take.manifest,
                                       track="accompaniment", options={**FAST, "takes": 3})
    assert instrumental.manifest["takes"] == accompaniment.manifest["takes"] == [] and calls == []
    chorus = generator.generate("", "", duration=5, seed=3, mode="resample", manifest=one_take.manifest,
                                track="vocal", section=1, options={**FAST, "takes": 2})
    assert [record["section"] for record in chorus.manifest["takes"]] == [1] and calls == [1, 1]


@pytest.mark.parametrize("takes", [0, 5, 1.5, None, "3", True])
def test_bad_takes_are_refused_naming_the_setting(generator, takes):
    with pytest.raises(InputError) as caught:
        generator.generate(LYRICS, STYLE, duration=6, seed=1, options={"takes": takes})
    assert caught.value.field == "options.takes"
