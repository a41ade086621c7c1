"""Mix levels (``app.mixing``): the checks, the saved files at levels other than 0 dB, a saved song read back
(``load_song``) and mixed again, the levels kept by redecode and re-sample, and the CLI's ``remix``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.cli import main
from app.manifest import ManifestError, read_manifest
from app.mixing import LEVEL_RANGE_DB, UNITY_LEVELS, LevelError, check_levels, describe, gain, mix_stems
from app.pipeline import InputError, SongGenerator, SongResult, load_song, save

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
LYRICS = "[verse]\nhold me close tonight\n\n[chorus]\nsing it loud\n"
RATE = 24_000


@pytest.fixture(scope="module")
def generator() -> SongGenerator:
    return SongGenerator(CHECKPOINTS)


@pytest.fixture(scope="module")
def song(generator) -> SongResult:
    return generator.generate(LYRICS, "upbeat pop, female vocal", duration=5, seed=4, options={"decoder_steps": 0})


def _int16(path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    return samples.astype(np.int32)


# --- the levels ------------------------------------------------------------------------------------------------


def test_levels_default_to_0_db_and_none_means_muted():
    assert check_levels(None) == UNITY_LEVELS == check_levels({})
    assert check_levels({"vocals_db": -3, "accompaniment_db": None}) == {"vocals_db": -3.0, "accompaniment_db": None}
    assert gain(0.0) == 1.0 and gain(None) == 0.0
    assert gain(-20.0) == pytest.approx(0.1) and gain(20 * np.log10(2)) == pytest.approx(2.0)
    assert describe({"vocals_db": -3.0, "accompaniment_db": None}) == "vocals −3.0 dB, accompaniment muted"


@pytest.mark.parametrize(("levels", "field", "message"), [
    ({"vocals_db": LEVEL_RANGE_DB[1] + 1}, "vocals_db", "13 dB is out of range; choose -30 to 12 dB"),
    ({"accompaniment_db": LEVEL_RANGE_DB[0] - 0.5}, "accompaniment_db", "-30.5 dB is out of range"),
    ({"vocals_db": "loud"}, "vocals_db", "must be a number of dB"),
    ({"vocals_db": True}, "vocals_db", "must be a number of dB"),
    ({"vocals_db": float("nan")}, "vocals_db", "must be a number of dB"),
    ({"drums_db": 0.0}, "mix", "unknown level 'drums_db'"),
    ([0.0, 0.0], "mix", "expected {'vocals_db'"),
])
def test_bad_levels_name_the_level(levels, field, message):
    with pytest.raises(LevelError, match=message) as caught:
        check_levels(levels)
    assert caught.value.field == field


def test_mix_is_each_stem_at_its_gain():
    vocals, accompaniment = np.full(8, 0.2, np.float32), np.full(8, -0.1, np.float32)
    np.testing.assert_allclose(mix_stems(vocals, accompaniment), vocals + accompaniment, atol=1e-7)
    np.testing.assert_allclose(mix_stems(vocals, accompaniment, {"vocals_db": -20.0, "accompaniment_db": None}),
                               0.02, atol=1e-7)
    with pytest.raises(ValueError, match="differ in length"):
        mix_stems(vocals, accompaniment[:4])


# --- a song's files --------------------------------------------------------------------------------------------


def test_saved_mix_is_the_stems_at_their_levels_and_the_stems_stay_as_decoded(song, tmp_path):
    plain = save(song, tmp_path / "plain")
    quiet = song.remixed({"vocals_db": -6.0, "accompaniment_db": None})
    assert quiet.levels == {"vocals_db": -6.0, "accompaniment_db": None} and song.levels == UNITY_LEVELS
    np.testing.assert_allclose(quiet.mix, gain(-6.0) * song.vocals, atol=1e-6)
    np.testing.assert_array_equal(quiet.vocals, song.vocals)  # the original result is left as it was
    paths = save(quiet, tmp_path / "quiet")
    assert read_manifest(tmp_path / "quiet")["mix"] == {"vocals_db": -6.0, "accompaniment_db": None}
    for stem in ("vocals", "accompaniment"):  # the stem files do not change with the levels
        np.testing.assert_array_equal(_int16(paths[f"{stem}.wav"]), _int16(plain[f"{stem}.wav"]))
    vocal_file = _int16(paths["vocals.wav"])
    assert np.abs(_int16(paths["mix.wav"]) - np.round(vocal_file * gain(-6.0))).max() <= 1
    assert np.abs(_int16(paths["mix.wav"])).max() < np.abs(vocal_file).max()


def test_a_stem_louder_than_full_scale_turns_the_whole_song_down(song, tmp_path):
    """Muting one track can leave the mix quiet while a stem file would clip: the gain covers the stems too."""
    loud = SongResult(song.mix, np.full_like(song.vocals, 1.5), song.accompaniment, RATE, song.manifest,
                      song.tokens).remixed({"vocals_db": None, "accompaniment_db": 0.0})
    save(loud, tmp_path)
    assert read_manifest(tmp_path)["files"]["gain"] == pytest.approx(0.999 / 1.5)
    assert _int16(tmp_path / "vocals.wav").max() == round(0.999 * 32767)


def test_load_song_reads_a_saved_song_back_and_remixes_it(song, tmp_path):
    save(song.remixed({"vocals_db": 3.0, "accompaniment_db": -12.0}), tmp_path, formats="flac")
    again = load_song(tmp_path / "manifest.json")
    assert again.sample_rate == RATE and again.levels == {"vocals_db": 3.0, "accompaniment_db": -12.0}
    for read, made in ((again.vocals, song.vocals), (again.accompaniment, song.accompaniment)):
        assert read.dtype == np.float32 and np.abs(read - made).max() <= 0.5 / 32767 + 1e-7
    np.testing.assert_array_equal(again.tokens.vocal, song.tokens.vocal)
    np.testing.assert_allclose(again.mix, gain(3.0) * again.vocals + gain(-12.0) * again.accompaniment, atol=1e-6)
    np.testing.assert_allclose(again.remixed(None).mix, again.vocals + again.accompaniment, atol=1e-6)


def test_load_song_refuses_a_folder_that_is_not_a_whole_song(song, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_song(tmp_path / "nothing")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text(json.dumps(song.manifest))  # a manifest without its audio
    with pytest.raises(InputError, match="lists no audio files"):
        load_song(bare)
    save(song, tmp_path / "whole")
    (tmp_path / "whole" / "accompaniment.wav").unlink()
    with pytest.raises(InputError, match=r"cannot read accompaniment\.wav"):
        load_song(tmp_path / "whole")
    other = song.remixed(None)
    save(other, tmp_path / "short")
    sf.write(tmp_path / "short" / "vocals.wav", np.zeros(RATE, np.int16), RATE)  # another song's stem
    with pytest.raises(InputError, match="the folder mixes two songs"):
        load_song(tmp_path / "short")


def test_a_manifest_with_bad_levels_is_refused_when_read(song):
    broken = json.loads(json.dumps(song.manifest))
    broken["mix"] = {"vocals_db": 40}
    with pytest.raises(ManifestError, match="the mix levels: vocals_db: 40 dB is out of range"):
        read_manifest(broken)


# --- the levels stay with the song -----------------------------------------------------------------------------


def test_redecode_and_resample_keep_the_songs_levels(generator, song):
    levels = {"vocals_db": -4.5, "accompaniment_db": 2.0}
    manifest = song.remixed(levels).manifest
    again = generator.redecode(manifest)
    assert again.levels == levels
    np.testing.assert_allclose(again.mix, gain(-4.5) * again.vocals + gain(2.0) * again.accompaniment, atol=1e-6)
    np.testing.assert_array_equal(again.vocals, song.vocals)
    retake = generator.generate("", "", duration=5, seed=9, mode="resample", manifest=manifest, track="vocal",
                                section=0, options={"decoder_steps": 0})
    assert retake.manifest["mix"] == levels
    assert generator.generate(LYRICS, "", duration=5, seed=4, options={"decoder_steps": 0}).levels == UNITY_LEVELS


# --- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_remix_rewrites_the_mix_in_place_or_into_another_folder(song, tmp_path, capsys):
    folder = tmp_path / "song"
    save(song, folder, formats=("wav", "flac"))
    vocals = _int16(folder / "vocals.wav")
    assert main(["remix", str(folder), "--vocals-db", "-6", "--accompaniment-db", "off"]) == 0
    assert "vocals −6.0 dB, accompaniment muted" in capsys.readouterr().out
    assert read_manifest(folder)["mix"] == {"vocals_db": -6.0, "accompaniment_db": None}
    for fmt in ("wav", "flac"):  # the folder keeps its formats
        assert np.abs(_int16(folder / f"mix.{fmt}") - np.round(vocals * gain(-6.0))).max() <= 1
    np.testing.assert_array_equal(_int16(folder / "vocals.wav"), vocals)
    assert main(["remix", str(folder / "manifest.json"), "--out", str(tmp_path / "back")]) == 0
    np.testing.assert_array_equal(_int16(tmp_path / "back" / "mix.wav"),
                                  vocals + _int16(folder / "accompaniment.wav"))
    assert read_manifest(tmp_path / "back")["mix"] == UNITY_LEVELS


def test_cli_remix_errors_are_one_line_and_write_nothing(song, tmp_path, capsys):
    save(song, tmp_path)
    before = (tmp_path / "mix.wav").read_bytes()
    assert main(["remix", str(tmp_path), "--vocals-db", "40"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["error: --vocals-db: 40 dB is out of range; choose -30 to 12 dB, or mute the track"]
    with pytest.raises(SystemExit) as exited:  # argparse's own check of the value, through our one-line parser
        main(["remix", str(tmp_path), "--accompaniment-db", "loud"])
    error = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(error) == 1
    assert error[0].startswith("error: argument --accompaniment-db: expected a number of dB or 'off', got 'loud'")
    assert main(["remix", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: song: ")
    assert (tmp_path / "mix.wav").read_bytes() == before
