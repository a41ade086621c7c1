"""The pitch check of bench.vocoder_quality: what becomes of each voiced frame (close, no F0, wrong F0) and the
tracker's own floor."""

from __future__ import annotations

import numpy as np
import pytest

from bench.vocoder_quality import pitch_agreement, pitch_frames, with_inaudible_noise

SR = 24_000


def sung(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(4 * np.pi * freq * t)).astype(np.float32)


def test_each_voiced_frame_is_close_unvoiced_or_off():
    original = sung(220.0)
    same = pitch_frames(original, original, SR)
    assert same["voiced"] > 80 and same["close"] == same["voiced"]
    silent = pitch_frames(original, np.zeros_like(original), SR)
    assert silent["unvoiced"] == silent["voiced"] and silent["close"] == 0
    semitone_up = pitch_frames(original, sung(220.0 * 2 ** (1 / 12)), SR)  # 100 cents off
    assert semitone_up["off"] > 0.9 * semitone_up["voiced"]
    assert sum(semitone_up[k] for k in ("close", "unvoiced", "off")) == semitone_up["voiced"]
    # a steady tone is a held note (all but its edge frames); off there is off on a held note
    assert 0.8 * semitone_up["voiced"] < semitone_up["held"] <= semitone_up["voiced"]
    assert semitone_up["held_off"] > 0.9 * semitone_up["held"] and same["held_off"] == 0
    assert pitch_agreement(original, original, SR) == (same["close"], same["voiced"])


def test_a_glide_is_not_a_held_note():
    t = np.arange(SR) / SR
    glide = (0.3 * np.sin(2 * np.pi * 200.0 * (2 ** (t * 2) - 1) / (2 * np.log(2)))).astype(np.float32)  # 2 oct/s
    frames = pitch_frames(glide, glide, SR)
    assert frames["voiced"] > 80 and frames["held"] < 0.1 * frames["voiced"]


def test_inaudible_noise_is_seeded_and_50_db_down():
    original = sung(330.0)
    noisy = with_inaudible_noise(original, seed=1)
    assert np.array_equal(noisy, with_inaudible_noise(original, seed=1))
    ratio = np.sqrt(np.mean((noisy - original) ** 2) / np.mean(original ** 2))
    assert 20 * np.log10(ratio) == pytest.approx(-50.0, abs=0.5)
    assert pitch_frames(original, noisy, SR)["close"] == pitch_frames(original, original, SR)["voiced"]
