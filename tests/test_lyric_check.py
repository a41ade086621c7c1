"""The lyric check (app.lyric_check): word alignment on text, Whisper on real corpus vocals, and bad input.

The audio tests render two short songs with the corpus generator (the slt voice, which Whisper tiny.en hears
best) and run the real Whisper model; the whole file takes ~20 s on one thread.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from app.lyric_check import (
    HYPOTHESIS_CAP,
    ROW_HEADERS,
    LyricReport,
    align,
    check_lyrics,
    sections_from_manifest,
    sections_from_meta,
    whisper_model,
)
from corpus.audio_io import read_audio, resample
from corpus.song import SongOptions, render_song

OPTIONS = SongOptions(min_seconds=8.0, max_seconds=14.0, voices=("slt",), write_score=False)


class _NoModel:
    """Stands in for Whisper where the check must decide without it (silence, instrumental, short)."""

    def transcribe(self, *args, **kwargs):
        raise AssertionError("Whisper was called where the check should not need it")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """(vocals, rate, sections) of a 14 s song with three sung sections."""
    out = tmp_path_factory.mktemp("songs")
    meta = render_song(0, "true", out, OPTIONS)
    vocals, rate = read_audio(out / "true" / "vocals.flac")
    return vocals, rate, sections_from_meta(meta)


@pytest.fixture(scope="module")
def other_vocals(tmp_path_factory, song):
    """Another song's vocal stem, cut or padded to the first song's length."""
    out = tmp_path_factory.mktemp("other")
    render_song(1, "other", out, OPTIONS)
    vocals, _ = read_audio(out / "other" / "vocals.flac")
    length = len(song[0])
    return np.pad(vocals, (0, max(0, length - len(vocals))))[:length]


@pytest.fixture(scope="module")
def true_report(song) -> LyricReport:
    vocals, rate, sections = song
    return check_lyrics(vocals, rate, sections)


# --- alignment on text -------------------------------------------------------------------------------------

def test_exact_transcript_has_no_errors():
    lines = ["Give me all your deer", "let the years appear"]
    errors, words, missed, heard, hits = align(lines, "give me all your deer, let the years appear!")
    assert (errors, words, missed, hits) == (0, 9, [], 9)
    assert heard == "give me all your deer let the years appear"


def test_deleted_line_is_reported_missed():
    lines = ["give me all your deer", "let the years appear", "i found a train in the skill"]
    errors, words, missed, _, hits = align(lines, "give me all your deer i found a train in the skill")
    assert missed == ["let the years appear"]
    assert (errors, words, hits) == (4, 16, 12)


def test_line_with_half_its_words_counts_as_sung():
    # 2 of 4 words matched: exactly half is recognisable; 1 of 4 is not
    assert align(["one two three four"], "one two bee see")[2] == []
    assert align(["one two three four"], "one bee see dee")[2] == ["one two three four"]


def test_contractions_hyphens_and_case_are_normalised():
    assert align(["We are well-known"], "we're well known")[0] == 0


def test_hallucination_loop_is_capped():
    errors, words, _, heard, hits = align(["la di da"], "la " * 200)
    assert len(heard.split()) == HYPOTHESIS_CAP * words == 6
    assert errors == 5 and hits == 1  # "la" matched, two substitutions, three insertions; uncapped 199 errors


def test_empty_transcript_misses_everything():
    assert align(["a line", "another line"], "") == (4, 4, ["a line", "another line"], "", 0)


# --- Whisper on real vocals --------------------------------------------------------------------------------

def test_true_vocals_are_mostly_recognised(song, true_report):
    sung = [section for section in true_report.sections if section.lines]
    assert len(sung) >= 2
    # Whisper tiny.en has WER ~0.4 on this corpus's singing; this song measures ~0.3
    assert true_report.wer < 0.6, true_report.to_dict()
    assert len(true_report.missed_lines) < sum(len(section.lines) for section in sung)
    assert all(section.hypothesis for section in sung)


def test_silence_misses_every_line(song):
    vocals, rate, sections = song
    report = check_lyrics(np.zeros_like(vocals), rate, sections, model=_NoModel())
    assert report.wer == 1.0
    assert report.missed_lines == [line for section in sections for line in section["lines"]]
    assert all(section.note == "(silence)" for section in report.sections if section.lines)


def test_noise_scores_far_worse_than_the_vocals(song, true_report):
    vocals, rate, sections = song
    noise = np.random.default_rng(0).normal(0, 0.05, len(vocals)).astype(np.float32)
    assert check_lyrics(noise, rate, sections).wer > true_report.wer + 0.3


def test_other_songs_vocals_score_worse(song, other_vocals, true_report):
    _, rate, sections = song
    assert check_lyrics(other_vocals, rate, sections).wer > true_report.wer + 0.3


def test_other_sample_rates_are_resampled(song, true_report):
    vocals, rate, sections = song
    report = check_lyrics(resample(vocals, rate, 44_100), 44_100, sections)
    assert abs(report.wer - true_report.wer) < 0.15


def test_instrumental_and_short_sections(song):
    vocals, rate, _ = song
    sections = [{"name": "intro", "start_seconds": 0.0, "end_seconds": 2.0, "lines": []},
                {"name": "verse", "start_seconds": 2.0, "end_seconds": 2.3, "lines": ["too short to sing"]},
                {"name": "outro", "start_seconds": 2.3, "end_seconds": 2.3, "lines": []}]  # zero-length span
    report = check_lyrics(vocals, rate, sections, model=_NoModel())
    intro, verse, outro = report.sections
    assert intro.wer is None and outro.wer is None
    assert verse.wer == 1.0 and verse.missed_lines == ["too short to sing"] and "shorter" in verse.note
    assert report.wer == 1.0


def test_sections_from_meta_skips_instrumental_lines():
    meta = {"sections": [{"name": "verse", "start": 0.0, "end": 4.0}, {"name": "inst", "start": 4.0, "end": 6.0,
                                                                       "vocal": False}],
            "lines": [{"section": 0, "text": "one line"}, {"section": 0, "text": "two lines"}]}
    assert sections_from_meta(meta) == [
        {"name": "verse", "start_seconds": 0.0, "end_seconds": 4.0, "lines": ["one line", "two lines"]},
        {"name": "inst", "start_seconds": 4.0, "end_seconds": 6.0, "lines": []}]


def test_sections_from_manifest_names_sections_in_order_and_checks_the_count():
    manifest_sections = [{"tag": "verse", "start_seconds": 0.0, "end_seconds": 4.0, "n_frames": 100},
                         {"tag": "chorus", "start_seconds": 4.0, "end_seconds": 7.0, "n_frames": 75}]
    assert sections_from_manifest(manifest_sections, [["a line"], []]) == [
        {"name": "1 [verse]", "start_seconds": 0.0, "end_seconds": 4.0, "lines": ["a line"]},
        {"name": "2 [chorus]", "start_seconds": 4.0, "end_seconds": 7.0, "lines": []}]
    with pytest.raises(ValueError, match="1 sections of lines for 2 manifest sections"):
        sections_from_manifest(manifest_sections, [["a line"]])


def test_report_rows_and_json(true_report):
    rows = true_report.to_rows()
    assert len(rows) == len(true_report.sections)
    assert all(len(row) == len(ROW_HEADERS) for row in rows)
    data = json.loads(json.dumps(true_report.to_dict()))
    assert data["wer"] == pytest.approx(true_report.wer, abs=1e-4)
    assert [section["name"] for section in data["sections"]] == [s.name for s in true_report.sections]


def test_model_loads_once_across_threads():
    models = []
    threads = [threading.Thread(target=lambda: models.append(whisper_model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(models) == 4 and all(model is models[0] for model in models)


# --- bad input ---------------------------------------------------------------------------------------------

SECTION = {"name": "verse", "start_seconds": 0.0, "end_seconds": 1.0, "lines": ["a line"]}


@pytest.mark.parametrize(("audio", "rate", "sections", "message"), [
    (np.zeros(0, np.float32), 24_000, [SECTION], "empty"),
    (np.full(24_000, np.nan, np.float32), 24_000, [SECTION], "NaN"),
    (np.zeros((2, 24_000), np.float32), 24_000, [SECTION], "mono"),
    (np.zeros(24_000, np.float32), 0, [SECTION], "sample_rate"),
    (np.zeros(24_000, np.float32), 24_000, [], "sections is empty"),
    (np.zeros(24_000, np.float32), 24_000, [{**SECTION, "end_seconds": 5.0}], "audio lasts"),
    (np.zeros(24_000, np.float32), 24_000, [{**SECTION, "start_seconds": 0.8, "end_seconds": 0.2}], "interval"),
    (np.zeros(24_000, np.float32), 24_000, [{**SECTION, "end_seconds": float("nan")}], "finite"),
    (np.zeros(24_000, np.float32), 24_000, [SECTION, {**SECTION, "start_seconds": 0.5}], "overlap"),
    (np.zeros(24_000, np.float32), 24_000, [{"name": "verse", "lines": []}], "lacks start_seconds"),
    (np.zeros(24_000, np.float32), 24_000, [{**SECTION, "lines": "a line"}], "list of strings"),
])
def test_bad_input_is_refused(audio, rate, sections, message):
    with pytest.raises(ValueError, match=message):
        check_lyrics(audio, rate, sections, model=_NoModel())

