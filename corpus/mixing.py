"""Vocal effects and the final mix. The mix must equal vocals + accompaniment sample-exactly in the
16-bit files, so every stem is quantised to int16 first and the sums are formed from the integers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.signal import fftconvolve

TARGET_LUFS = -23.0  # EBU R128; leaves room for the peaks of sparse mixes under PEAK_CEILING
PEAK_CEILING = 0.89  # -1 dBFS, so the integer sums never clip


def add_vibrato(signal: np.ndarray, sample_rate: int, rate_hz: float, depth_cents: float) -> np.ndarray:
    """Pitch vibrato by a sinusoidally modulated read position (a moving fractional delay): a delay
    of A·sin(2πft) shifts the frequency by up to 2πfA, so A = (2^(cents/1200) - 1) / (2πf)."""
    if depth_cents <= 0:
        return signal
    amplitude = (2.0 ** (depth_cents / 1200.0) - 1.0) / (2 * np.pi * rate_hz)
    t = np.arange(len(signal)) / sample_rate
    read_position = (t - amplitude * (1 + np.sin(2 * np.pi * rate_hz * t))) * sample_rate
    return np.interp(read_position, np.arange(len(signal)), signal, left=0.0).astype(np.float32)


def add_reverb(signal: np.ndarray, sample_rate: int, rt60: float, wet: float,
               rng: np.random.Generator) -> np.ndarray:
    """A small synthetic room: exponentially decaying noise as the impulse response (a plain
    numpy/scipy reverb keeps the licences clean, libraries.md §6). Output length equals input length."""
    if wet <= 0:
        return signal
    n = int(rt60 * sample_rate)
    decay = np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
    response = rng.standard_normal(n) * decay
    response /= np.sqrt(np.sum(response**2))
    tail = fftconvolve(signal, response)[: len(signal)]
    return ((1 - wet) * signal + wet * tail).astype(np.float32)


def rms(signal: np.ndarray) -> float:
    active = signal[np.abs(signal) > 1e-4]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


@dataclass
class MixResult:
    vocals: np.ndarray  # int16
    accompaniment: np.ndarray  # int16, = drums + bass + other
    mix: np.ndarray  # int16, = vocals + accompaniment
    stems: dict[str, np.ndarray]  # int16 drums, bass, other
    gains_db: dict[str, float]
    loudness_lufs: float


def _to_int16(signal: np.ndarray) -> np.ndarray:
    return np.round(np.clip(signal, -1.0, 1.0) * 32767.0).astype(np.int16)


def mix_song(vocals: np.ndarray, stems: dict[str, np.ndarray], sample_rate: int, vocal_to_accomp_db: float,
             stem_offsets_db: dict[str, float]) -> MixResult:
    """Level the stems, set the vocal-to-accompaniment ratio, normalise the mix's loudness to
    TARGET_LUFS (BS.1770 via pyloudnorm) and keep its peak under PEAK_CEILING."""
    accompaniment = np.zeros_like(vocals)
    leveled = {}
    for name, stem in stems.items():
        level = rms(stem)
        gain = 10 ** (stem_offsets_db.get(name, 0.0) / 20) / level if level > 0 else 0.0
        leveled[name] = stem * gain
        accompaniment = accompaniment + leveled[name]
    accomp_level, vocal_level = rms(accompaniment), rms(vocals)
    vocal_gain = (accomp_level / vocal_level) * 10 ** (vocal_to_accomp_db / 20) if vocal_level > 0 else 0.0
    vocals = vocals * vocal_gain
    mix = vocals + accompaniment
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(mix.astype(np.float64))
    gain = 10 ** ((TARGET_LUFS - loudness) / 20) if np.isfinite(loudness) else 1.0
    peak = np.max(np.abs(mix)) * gain
    if peak > PEAK_CEILING:
        gain *= PEAK_CEILING / peak
    int_stems = {name: _to_int16(stem * gain) for name, stem in leveled.items()}
    int_vocals = _to_int16(vocals * gain)
    int_accomp = np.sum([s.astype(np.int32) for s in int_stems.values()], axis=0)
    int_mix = int_vocals.astype(np.int32) + int_accomp
    if np.max(np.abs(int_mix)) > 32767 or np.max(np.abs(int_accomp)) > 32767:
        raise ValueError("mix overflows 16 bits")  # cannot happen with the peak ceiling above
    final_loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(int_mix / 32767.0)
    return MixResult(
        vocals=int_vocals,
        accompaniment=int_accomp.astype(np.int16),
        mix=int_mix.astype(np.int16),
        stems=int_stems,
        gains_db={"vocal_to_accompaniment": round(vocal_to_accomp_db, 2),
                  **{f"{k}_offset": round(v, 2) for k, v in stem_offsets_db.items()}},
        loudness_lufs=round(float(final_loudness), 2),
    )
