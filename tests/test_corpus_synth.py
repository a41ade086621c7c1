"""The procedural corpus: determinism, exact stem sums, label consistency, every genre and voice."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from corpus.audio_io import read_int16
from corpus.cli import main as corpus_main
from corpus.music import GENRES, midi_to_hz
from corpus.singer import VOICES
from corpus.song import SongOptions, render_song

SHORT = {"min_seconds": 8.0, "max_seconds": 14.0}
GENRE_NAMES = sorted(GENRES)
VOICE_NAMES = sorted(VOICES)


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> dict[str, Path]:
    """One short song per genre; voices cycle so every voice sings at least twice."""
    out = tmp_path_factory.mktemp("songs")
    folders = {}
    for i, genre in enumerate(GENRE_NAMES):
        voice = VOICE_NAMES[i % len(VOICE_NAMES)]
        options = SongOptions(genres=(genre,), voices=(voice,), **SHORT)
        render_song(100 + i, f"{genre}-{voice}", out, options)
        folders[genre] = out / f"{genre}-{voice}"
    return folders


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def test_same_seed_gives_identical_bytes(tmp_path):
    options = SongOptions(**SHORT)
    for name in ("a", "b"):
        render_song(42, "song", tmp_path / name, options)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "song").rglob("*") if p.is_file())
    assert {"mix.flac", "vocals.flac", "accompaniment.flac", "lyrics.txt", "meta.json"} <= {f.name for f in files}
    for relative in files:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_different_seeds_give_different_songs(tmp_path):
    options = SongOptions(**SHORT)
    metas = [render_song(seed, f"s{seed}", tmp_path, options) for seed in (1, 2)]
    assert (tmp_path / "s1" / "lyrics.txt").read_text() != (tmp_path / "s2" / "lyrics.txt").read_text()
    assert metas[0]["f0"] != metas[1]["f0"]


@pytest.mark.parametrize("genre", GENRE_NAMES)
def test_every_genre_renders_with_exact_sums(songs, genre):
    folder = songs[genre]
    meta = _meta(folder)
    assert meta["genre"] == genre
    mix, rate = read_int16(folder / "mix.flac")
    vocals, _ = read_int16(folder / "vocals.flac")
    accompaniment, _ = read_int16(folder / "accompaniment.flac")
    stems = [read_int16(folder / "stems" / f"{name}.flac")[0] for name in ("drums", "bass", "other")]
    assert rate == meta["sample_rate"] == 24_000
    assert len(mix) == meta["num_samples"]
    assert abs(meta["duration"] * rate - len(mix)) < 1
    # sample-exact: the files store integers, and the mix is their sum
    np.testing.assert_array_equal(mix.astype(np.int32), vocals.astype(np.int32) + accompaniment)
    np.testing.assert_array_equal(accompaniment.astype(np.int32), np.sum(stems, axis=0, dtype=np.int32))
    assert np.abs(mix.astype(np.int32)).max() < 32767, "the mix clips"
    for signal in (vocals, *stems):
        assert np.abs(signal).max() > 300, "a stem is silent"
    assert -24.5 < meta["loudness_lufs"] < -21.5


def test_every_voice_sings(songs):
    voices = {_meta(folder)["voice"]["name"]: _meta(folder)["voice"]["gender"] for folder in songs.values()}
    assert set(voices) == set(VOICE_NAMES)
    assert "female" in voices.values() and "male" in voices.values()


def test_labels_are_consistent(songs):
    for folder in songs.values():
        meta = _meta(folder)
        duration = meta["duration"]
        sections = meta["sections"]
        assert sections[0]["start"] == 0.0 and sections[-1]["end"] <= duration
        for before, after in itertools.pairwise(sections):
            assert before["end"] == pytest.approx(after["start"], abs=2e-3)
        assert any(s["vocal"] for s in sections)
        tolerance = 0.06  # festival rounds segment times; label times are rounded to 1 ms
        for word in meta["words"]:
            section = sections[word["section"]]
            assert section["vocal"], "a word in an instrumental section"
            assert section["start"] - tolerance <= word["start"] < word["end"] <= section["end"] + tolerance
            for syllable in word["syllables"]:
                assert word["start"] - 1e-3 <= syllable["start"] <= syllable["end"] <= word["end"] + 1e-3
                for phone in syllable["phones"]:
                    assert syllable["start"] - 1e-3 <= phone["start"] <= phone["end"] <= syllable["end"] + 1e-3
        assert len(meta["melody"]) == sum(len(w["syllables"]) for w in meta["words"])
        assert all(b > a for a, b in zip(meta["beats"], meta["beats"][1:], strict=False))
        assert set(meta["downbeats"]) <= set(meta["beats"])


def test_lyrics_file_matches_word_labels(songs):
    for folder in songs.values():
        meta = _meta(folder)
        text = (folder / "lyrics.txt").read_text()
        tags = [line for line in text.splitlines() if line.startswith("[")]
        assert tags == [f"[{s['name']}]" for s in meta["sections"]]
        sung = [w for line in text.splitlines() if line and not line.startswith("[") for w in line.split()]
        assert sung == [w["text"] for w in meta["words"]]


def test_f0_is_voiced_where_notes_are_and_on_pitch(songs):
    for folder in songs.values():
        meta = _meta(folder)
        hop = meta["f0"]["hop_seconds"]
        f0 = np.array(meta["f0"]["hz"])
        assert len(f0) == int(np.ceil(meta["duration"] / hop))
        target = np.zeros_like(f0)
        for note in meta["melody"]:
            target[int(note["start"] / hop): int(np.ceil(note["end"] / hop)) + 1] = note["hz"]
        voiced = f0 > 0
        assert voiced.sum() > 0.3 * (target > 0).sum(), "too little of the sung time is voiced"
        # voiced only where notes are (allow a 100 ms release after each note)
        near_note = np.convolve(target > 0, np.ones(10), mode="full")[: len(f0)] > 0
        assert (voiced & ~near_note).sum() <= 0.03 * voiced.sum()
        both = voiced & (target > 0)
        cents = 1200 * np.abs(np.log2(f0[both] / target[both]))
        assert np.median(cents) < 60, f"{folder.name}: sung pitch is off the melody"


def test_melody_stays_in_the_voice_range(songs):
    for folder in songs.values():
        meta = _meta(folder)
        low, high = VOICES[meta["voice"]["name"]].vocal_range
        assert all(low <= n["pitch"] <= high for n in meta["melody"])
        assert all(n["hz"] == pytest.approx(midi_to_hz(n["pitch"]), abs=0.01) for n in meta["melody"])


def test_synth_cli_renders_in_parallel_and_resumes(tmp_path, capsys):
    args = ["synth", "--n", "2", "--out", str(tmp_path), "--seed", "3", "--workers", "2",
            "--min-seconds", "6", "--max-seconds", "8"]
    assert corpus_main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["rendered"] == 2 and first["failed"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3-00000", "s3-00001"]
    assert corpus_main(args) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["rendered"] == 0 and second["skipped"] == 2


def test_synth_cli_rejects_bad_arguments(capsys):
    assert corpus_main(["synth", "--n", "0", "--out", "unused"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    assert corpus_main(["synth", "--n", "1", "--out", "unused", "--min-seconds", "30", "--max-seconds", "10"]) == 2


def test_generated_songs_pass_the_user_folder_validator(songs):
    from corpus.reader import read_song, validate_folder

    root = next(iter(songs.values())).parent
    problems = validate_folder(root)
    assert problems == [], [str(p) for p in problems]
    song = read_song(songs["pop"])
    assert song.lyrics and song.style and song.vocals is not None and song.mix is not None
