"""Tests for corpus.reader (song folders: reading, validating) and corpus.splits (hash splits).

Every folder is built here with soundfile from 1 s sines, so the tests need no corpus and run in
about a second. Bad folders are checked for their specific message and for the file they name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.reader import (
    Problem,
    SongFolderError,
    add_validate_arguments,
    find_song_folders,
    read_song,
    run_validate,
    validate_folder,
)
from corpus.splits import (
    DEFAULT_FRACTIONS,
    add_split_arguments,
    assign_splits,
    load_splits,
    run_split,
    split_of,
)

RATE = 24_000


def sine(freq: float, seconds: float = 1.0, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_song(folder: Path, tracks=("mix", "vocals", "accompaniment"), rate: int = RATE,
              seconds: float = 1.0, suffix: str = ".flac", lyrics: str | None = "[verse]\nhello world\n",
              style: str | None = "bright pop") -> Path:
    """A song folder with vocals = 440 Hz, accompaniment = 220 Hz and mix = their sum."""
    folder.mkdir(parents=True, exist_ok=True)
    vocals, accompaniment = sine(440, seconds, rate), sine(220, seconds, rate)
    audio = {"mix": vocals + accompaniment, "vocals": vocals, "accompaniment": accompaniment}
    for name in tracks:
        sf.write(str(folder / f"{name}{suffix}"), audio[name], rate)
    if lyrics is not None:
        (folder / "lyrics.txt").write_text(lyrics, encoding="utf-8")
    if style is not None:
        (folder / "meta.json").write_text(json.dumps({"style_prompt": style, "bpm": 100}), encoding="utf-8")
    return folder


def problems_for(problems: list[Problem], path: Path, severity: str) -> list[str]:
    return [p.message for p in problems if p.path == path and p.severity == severity]


# ---------------------------------------------------------------- reading good folders


def test_reads_mix_and_stems(tmp_path):
    song = read_song(make_song(tmp_path / "song1"))
    assert song.id == "song1" and song.sample_rate == RATE
    assert song.lyrics == "[verse]\nhello world" and song.style == "bright pop"
    assert song.meta == {"style_prompt": "bright pop", "bpm": 100}
    assert len(song.mix) == len(song.vocals) == len(song.accompaniment) == RATE
    assert song.mix.dtype == np.float32 and song.has_stems
    assert song.full_mix is song.mix
    assert song.duration == pytest.approx(1.0)


def test_reads_mix_only_stereo_wav_and_resamples(tmp_path):
    folder = tmp_path / "mixonly"
    folder.mkdir()
    stereo = np.stack([sine(440, rate=44_100), sine(440, rate=44_100)], axis=1)
    sf.write(str(folder / "mix.wav"), stereo, 44_100)
    song = read_song(folder)
    assert song.vocals is None and song.accompaniment is None and not song.has_stems
    assert len(song.mix) == RATE  # 1 s at 44.1 kHz becomes exactly 1 s at 24 kHz
    assert np.abs(song.mix).max() == pytest.approx(0.3, abs=0.01)
    assert song.lyrics is None and song.style is None and song.meta == {}


def test_reads_stems_only_with_style_txt(tmp_path):
    folder = make_song(tmp_path / "stems", tracks=("vocals", "accompaniment"), style=None)
    (folder / "style.txt").write_text("dark synthwave\n", encoding="utf-8")
    song = read_song(folder)
    assert song.mix is None and song.style == "dark synthwave"
    np.testing.assert_allclose(song.full_mix, song.vocals + song.accompaniment)
    assert song.duration == pytest.approx(1.0)


@pytest.mark.parametrize("suffix", [".wav", ".ogg", ".mp3"])
def test_reads_other_formats(tmp_path, suffix):
    song = read_song(make_song(tmp_path / "s", tracks=("vocals", "accompaniment"), suffix=suffix))
    assert len(song.vocals) == len(song.accompaniment)
    assert song.duration == pytest.approx(1.0, abs=0.05)  # mp3 may add a frame of padding


def test_resampling_to_other_rate(tmp_path):
    song = read_song(make_song(tmp_path / "s", rate=44_100), sample_rate=16_000)
    assert song.sample_rate == 16_000 and len(song.mix) == 16_000


def test_small_length_difference_is_trimmed(tmp_path):
    folder = make_song(tmp_path / "s", tracks=("mix", "accompaniment"))
    sf.write(str(folder / "vocals.flac"), sine(440, seconds=1.03), RATE)  # 30 ms longer: tolerated
    song = read_song(folder)
    assert len(song.mix) == len(song.vocals) == len(song.accompaniment) == RATE


# ---------------------------------------------------------------- bad folders: specific messages


def _no_audio(folder):
    make_song(folder, tracks=())
    return folder, "no audio"


def _vocals_only(folder):
    make_song(folder, tracks=("vocals",))
    return folder / "vocals.flac", "vocals without accompaniment"


def _accompaniment_only(folder):
    make_song(folder, tracks=("accompaniment",))
    return folder / "accompaniment.flac", "accompaniment without vocals"


def _unreadable_mix(folder):
    make_song(folder, tracks=("vocals", "accompaniment"))
    (folder / "mix.flac").write_bytes(b"this is not a flac file")
    return folder / "mix.flac", "cannot read as audio"


def _long_vocals(folder):
    make_song(folder, tracks=("mix", "accompaniment"))
    sf.write(str(folder / "vocals.flac"), sine(440, seconds=1.2), RATE)
    return folder / "vocals.flac", "differs from mix.flac (1.000 s) by 200 ms"


def _silent_mix(folder):
    make_song(folder, tracks=())
    sf.write(str(folder / "mix.flac"), np.zeros(RATE, dtype=np.float32), RATE)
    return folder / "mix.flac", "silent"


def _bad_meta(folder):
    make_song(folder, style=None)
    (folder / "meta.json").write_text('{"style_prompt": "pop",', encoding="utf-8")
    return folder / "meta.json", "invalid JSON"


def _meta_not_object(folder):
    make_song(folder, style=None)
    (folder / "meta.json").write_text("[1, 2]", encoding="utf-8")
    return folder / "meta.json", "must hold a JSON object, not list"


def _style_not_string(folder):
    make_song(folder, style=None)
    (folder / "meta.json").write_text('{"style_prompt": 3}', encoding="utf-8")
    return folder / "meta.json", '"style_prompt" must be a string'


def _lyrics_not_utf8(folder):
    make_song(folder, lyrics=None)
    (folder / "lyrics.txt").write_bytes(b"[verse]\n\xff\xfe caf\xe9\n")
    return folder / "lyrics.txt", "not UTF-8"


BAD_FOLDERS = [_no_audio, _vocals_only, _accompaniment_only, _unreadable_mix, _long_vocals, _silent_mix,
               _bad_meta, _meta_not_object, _style_not_string, _lyrics_not_utf8]


@pytest.mark.parametrize("build", BAD_FOLDERS, ids=lambda build: build.__name__.strip("_"))
def test_bad_folder_names_file_and_reason(tmp_path, build):
    expected_path, expected_text = build(tmp_path / "bad")
    with pytest.raises(SongFolderError) as raised:
        read_song(tmp_path / "bad")
    assert raised.value.path == expected_path
    assert expected_text in str(raised.value) and str(expected_path) in str(raised.value)

    errors = [p for p in validate_folder(tmp_path) if p.severity == "error"]
    assert any(p.path == expected_path and expected_text in p.message for p in errors), errors


def test_read_song_missing_folder(tmp_path):
    with pytest.raises(SongFolderError, match="does not exist"):
        read_song(tmp_path / "nope")


# ---------------------------------------------------------------- validate: every problem


def test_validate_clean_corpus_has_no_problems(tmp_path):
    make_song(tmp_path / "a")
    make_song(tmp_path / "b", tracks=("mix",), rate=44_100, suffix=".wav")
    assert validate_folder(tmp_path) == []


def test_validate_lists_every_problem_of_a_folder(tmp_path):
    folder = make_song(tmp_path / "s", tracks=("mix", "vocals"), lyrics=None, style=None)
    (folder / "accompaniment.flac").write_bytes(b"garbage")
    (folder / "meta.json").write_text("{oops", encoding="utf-8")
    (folder / "notes.docx").write_bytes(b"unknown files are ignored")
    problems = validate_folder(tmp_path)
    assert problems_for(problems, folder / "accompaniment.flac", "error")[0].startswith("cannot read")
    assert problems_for(problems, folder / "meta.json", "error")[0].startswith("invalid JSON")
    missing_lyrics = problems_for(problems, folder / "lyrics.txt", "warning")
    assert missing_lyrics == ["missing: the song is used without lyrics"]
    assert "missing style" in problems_for(problems, folder / "style.txt", "warning")[0]
    assert not [p for p in problems if "notes.docx" in str(p.path)]
    assert len(problems) == 4


def test_validate_warnings(tmp_path):
    folder = make_song(tmp_path / "s", tracks=("accompaniment",), lyrics="   \n")
    sf.write(str(folder / "vocals.flac"), np.zeros(RATE, dtype=np.float32), RATE)  # instrumental
    loud = np.clip(4 * sine(220) + sine(440), -1, 1)  # clipped, and not vocals + accompaniment
    sf.write(str(folder / "mix.wav"), sine(220, rate=44_100), 44_100)  # a second mix: ignored
    sf.write(str(folder / "mix.flac"), loud, RATE)
    problems = validate_folder(tmp_path)
    assert all(p.severity == "warning" for p in problems), problems
    assert "silent" in problems_for(problems, folder / "vocals.flac", "warning")[0]
    mix_warnings = problems_for(problems, folder / "mix.flac", "warning")
    assert any(m.startswith("clipped") for m in mix_warnings)
    assert any(m.startswith("mix differs from vocals + accompaniment") for m in mix_warnings)
    second_mix = problems_for(problems, folder / "mix.wav", "warning")
    assert second_mix == ["ignored: mix.flac is used for the mix track"]
    empty_lyrics = problems_for(problems, folder / "lyrics.txt", "warning")
    assert empty_lyrics == ["empty: the song is used without lyrics"]


def test_validate_rate_mismatch_and_stems(tmp_path):
    folder = make_song(tmp_path / "s", tracks=("mix", "accompaniment"))
    sf.write(str(folder / "vocals.wav"), sine(440, rate=44_100), 44_100)
    (folder / "stems").mkdir()
    sf.write(str(folder / "stems" / "drums.flac"), sine(100), RATE)
    sf.write(str(folder / "stems" / "bass.flac"), np.zeros(RATE, dtype=np.float32), RATE)
    sf.write(str(folder / "stems" / "other.flac"), sine(300, seconds=0.5), RATE)
    problems = validate_folder(tmp_path)
    rate_warning = problems_for(problems, folder / "vocals.wav", "warning")
    assert rate_warning == ["sample rate 44100 Hz differs from mix.flac (24000 Hz); "
                            "both are resampled to 24000 Hz"]
    assert "silent" in problems_for(problems, folder / "stems" / "bass.flac", "warning")[0]
    assert "by 500 ms" in problems_for(problems, folder / "stems" / "other.flac", "error")[0]
    assert problems_for(problems, folder / "stems" / "drums.flac", "error") == []
    read_song(folder)  # stems do not stop training on the song


def test_validate_root_problems(tmp_path):
    assert validate_folder(tmp_path / "missing") == [Problem(tmp_path / "missing", "does not exist", "error")]
    (tmp_path / "file.txt").write_text("x")
    assert validate_folder(tmp_path / "file.txt")[0].message == "is not a folder"
    (tmp_path / "empty").mkdir()
    only = validate_folder(tmp_path / "empty")
    assert len(only) == 1 and only[0].message.startswith("no song folders")


def test_duplicate_song_ids_are_an_error(tmp_path):
    make_song(tmp_path / "x" / "same")
    make_song(tmp_path / "y" / "same")
    errors = [p for p in validate_folder(tmp_path) if p.severity == "error"]
    assert [p.path for p in errors] == [tmp_path / "y" / "same"]


def test_find_song_folders(tmp_path):
    make_song(tmp_path / "b")
    make_song(tmp_path / "a", tracks=("mix",))
    make_song(tmp_path / "group" / "c", tracks=("vocals", "accompaniment"))
    (tmp_path / "b" / "stems").mkdir()
    sf.write(str(tmp_path / "b" / "stems" / "mix.flac"), sine(100), RATE)  # inside a song: not a song
    (tmp_path / "notes").mkdir()
    assert find_song_folders(tmp_path) == [tmp_path / "a", tmp_path / "b", tmp_path / "group" / "c"]
    assert find_song_folders(tmp_path / "a") == [tmp_path / "a"]
    assert find_song_folders(tmp_path / "missing") == []


def _snapshot(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_validate_and_read_never_modify_files(tmp_path):
    make_song(tmp_path / "good", rate=44_100)
    _long_vocals(tmp_path / "bad")
    _bad_meta(tmp_path / "bad2")
    before = _snapshot(tmp_path)
    validate_folder(tmp_path)
    read_song(tmp_path / "good")
    with pytest.raises(SongFolderError):
        read_song(tmp_path / "bad")
    assert _snapshot(tmp_path) == before  # same files, same bytes, same mtimes, nothing added


# ---------------------------------------------------------------- validate CLI


def _run_validate_cli(root: Path) -> int:
    parser = argparse.ArgumentParser()
    add_validate_arguments(parser)
    return run_validate(parser.parse_args([str(root)]))


def test_validate_cli_exit_codes(tmp_path, capsys):
    make_song(tmp_path / "good")
    assert _run_validate_cli(tmp_path) == 0
    assert capsys.readouterr().out.strip().splitlines() == ["1 songs, 0 errors, 0 warnings"]

    make_song(tmp_path / "warn", lyrics=None)
    assert _run_validate_cli(tmp_path) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"WARNING {tmp_path / 'warn' / 'lyrics.txt'}: missing: the song is used without lyrics",
                     "2 songs, 0 errors, 1 warnings"]

    _vocals_only(tmp_path / "bad")
    assert _run_validate_cli(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"ERROR {tmp_path / 'bad' / 'vocals.flac'}: vocals without accompaniment" in out
    assert out.strip().splitlines()[-1] == "3 songs, 1 errors, 1 warnings"


# ---------------------------------------------------------------- splits


def test_splits_are_deterministic_and_proportional():
    ids = [f"song_{i:05d}" for i in range(4000)]
    splits = assign_splits(ids)
    assert splits == assign_splits(list(reversed(ids)))  # order of ids does not matter
    assert list(splits) == ["train", "validation", "test"]
    assert sorted(song_id for members in splits.values() for song_id in members) == ids
    for name, fraction in DEFAULT_FRACTIONS.items():
        assert abs(len(splits[name]) / len(ids) - fraction) < 0.02, (name, len(splits[name]))
    # a song keeps its split when the corpus grows
    grown = assign_splits([*ids, *(f"new_{i}" for i in range(500))])
    assert set(splits["test"]) <= set(grown["test"])
    assert all(split_of(song_id) == "test" for song_id in splits["test"])


def test_splits_configurable_fractions():
    ids = [f"id{i}" for i in range(2000)]
    halves = assign_splits(ids, {"a": 0.5, "b": 0.5})
    assert abs(len(halves["a"]) - 1000) < 100
    assert assign_splits(ids, {"train": 1.0, "test": 0.0}) == {"train": sorted(ids), "test": []}
    with pytest.raises(ValueError, match="sum to 1"):
        split_of("x", {"train": 0.9, "test": 0.2})
    with pytest.raises(ValueError, match="negative"):
        split_of("x", {"train": 1.2, "test": -0.2})


def test_split_cli(tmp_path, capsys):
    for name in ("a", "b", "c"):
        make_song(tmp_path / "corpus" / name, tracks=("mix",))
    parser = argparse.ArgumentParser()
    add_split_arguments(parser)
    out_file = tmp_path / "splits.json"
    assert run_split(parser.parse_args([str(tmp_path / "corpus"), "--out", str(out_file)])) == 0
    written = json.loads(out_file.read_text())
    assert load_splits(out_file) == written
    assert written == assign_splits(["a", "b", "c"])
    capsys.readouterr()
    assert run_split(parser.parse_args([str(tmp_path / "corpus")])) == 0
    assert json.loads(capsys.readouterr().out) == written
    assert run_split(parser.parse_args([str(tmp_path / "corpus"), "--train", "0.5"])) == 1
    assert run_split(parser.parse_args([str(tmp_path / "nothing")])) == 1


def test_load_splits_rejects_overlap(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["a", "b"], "test": ["b"]}))
    with pytest.raises(ValueError, match="'b' is in both 'train' and 'test'"):
        load_splits(path)
    path.write_text(json.dumps({"train": "a"}))
    with pytest.raises(ValueError, match="expected"):
        load_splits(path)
