"""``python -m tokenizer diagnose``: a song folder and a mix through the shipped tokenizer, the report's numbers
against the hop arithmetic, the decoded files, determinism, and one clear line per unusable source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tokenizer.__main__ import main
from tokenizer.diagnose import SourceError, describe, diagnose, read_source
from tokenizer.duotok import DuoTok

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "duotok-tiny"
RATE = 24_000
SECONDS = 3.0
FRAMES = int(SECONDS * 25)  # 25 Hz tokens; 960 samples each


@pytest.fixture(scope="module")
def tok() -> DuoTok:
    return DuoTok.from_pretrained(CHECKPOINT)


def _song(folder: Path, accompaniment_level: float = 0.2, rate: int = RATE) -> Path:
    """A song folder: a sung-like vowel (harmonics with vibrato) over a chord with a little noise."""
    t = np.arange(int(SECONDS * rate)) / rate
    f0 = 220 * 2 ** (0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    vocals = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) * (t % 1.0 < 0.8)
    noise = np.random.default_rng(0).normal(size=len(t))
    accompaniment = accompaniment_level * (sum(np.sin(2 * np.pi * f * t) for f in (131, 165, 196)) / 3
                                           + 0.05 * noise)
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.flac", vocals, rate)
    sf.write(folder / "accompaniment.wav", accompaniment, rate)  # any format soundfile reads
    sf.write(folder / "mix.wav", vocals + accompaniment, rate)
    return folder


def test_a_song_folder_and_its_mix_are_tokenized_and_decoded(tok, tmp_path):
    song = _song(tmp_path / "song")
    report, decoded = diagnose(tok, song)
    assert report["input"] == "stems" and report["frames"] == FRAMES and report["seconds"] == SECONDS
    assert report["bitrate"] == round(2 * 25 * math.log2(tok.config.codebook_size))  # 600 bit/s at 4,096 codes
    for stem in ("vocals", "accompaniment"):
        codes = report["codes"][stem]
        assert 1 <= codes["codes_used"] <= FRAMES and 1.0 <= codes["perplexity"] <= codes["codes_used"]
    for name in ("vocals", "accompaniment", "mix"):
        assert decoded[name].shape == (FRAMES * 960,) and np.isfinite(decoded[name]).all()
        scores = report["mel_l1"][name]
        assert not scores["silent"] and scores["vocoder"] > 0 and 0 < scores["decoded"] < 10
    np.testing.assert_allclose(decoded["mix"], decoded["vocals"] + decoded["accompaniment"], atol=1e-6)
    again, _ = diagnose(tok, song)
    assert again == report  # the decoders' noise is seeded
    from_mix, _ = diagnose(tok, song / "mix.wav")
    assert from_mix["input"] == "mix, separated by the tokenizer" and from_mix["frames"] == FRAMES
    assert "vocals" in describe(report) and f"{FRAMES} token frames" in describe(report)


def test_a_silent_stem_is_reported_as_silent_not_scored(tok, tmp_path):
    report, _ = diagnose(tok, _song(tmp_path / "song", accompaniment_level=0.0))
    assert report["mel_l1"]["accompaniment"] == {"decoded": None, "vocoder": None, "silent": True}
    assert report["mel_l1"]["vocals"]["decoded"] is not None
    assert "silent" in describe(report)


def test_sources_at_other_rates_are_resampled(tmp_path):
    stems, mix = read_source(_song(tmp_path / "song", rate=16_000), RATE)
    assert len(stems["vocals"]) == len(mix) == int(SECONDS * RATE)


@pytest.mark.parametrize(("make", "message"), [
    (lambda folder: folder / "missing.wav", "does not exist"),
    (lambda folder: folder.mkdir() or folder, "is a folder without a vocals.* file"),
    (lambda folder: (folder.with_suffix(".wav").write_text("not audio") and folder.with_suffix(".wav")),
     "cannot read as audio"),
    (lambda folder: (sf.write(folder.with_suffix(".wav"), np.zeros(100), RATE) or folder.with_suffix(".wav")),
     "shorter than one token frame"),
])
def test_unusable_sources_raise_a_clear_error(tok, tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        diagnose(tok, make(tmp_path / "source"))


def test_the_command_reports_each_source_writes_the_decoded_audio_and_skips_bad_ones(tmp_path, capsys):
    song = _song(tmp_path / "song")
    out = tmp_path / "out"
    assert main(["diagnose", str(song), str(tmp_path / "missing.wav"), str(song / "mix.wav"), "--steps", "0",
                 "--out", str(out)]) == 2  # one source failed
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"error: {tmp_path / 'missing.wav'} does not exist"]
    assert captured.out.count("mel L1") == 2
    record = json.loads((out / "diagnosis.json").read_text())
    assert [Path(r["source"]).name for r in record["sources"]] == ["song", "mix.wav"]
    for report in record["sources"]:
        for name in ("vocals", "accompaniment", "mix"):
            audio, rate = sf.read(Path(report["decoded_folder"]) / f"{name}.wav")
            assert rate == RATE and len(audio) == FRAMES * 960
    assert main(["diagnose", str(song)]) == 0
    assert main(["diagnose", str(song), "--steps", "-1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--steps must be 0 or more, got -1")
